"""Flax (``nnx``) modules for the losses that own parameters.

A margin-softmax head is a classifier whose class weights *are* the class centers, and a
center loss keeps one center per class; these modules own those arrays so that a model and
its loss are saved, sharded and optimized together. They call the functional losses of
:mod:`jaxloss`, so they give exactly the same numbers.

Needs ``flax`` (``pip install "jaxloss[flax]"``); ``import jaxloss`` itself does not.

- :class:`MarginSoftmaxHead`: any of ``norm_softmax``, ``cosface``, ``arcface``,
  ``sphereface``, ``combined_margin``, ``subcenter_arcface``, ``magface`` and
  ``elasticface``, owning its ``[num_classes, features]`` centers (``[num_classes,
  sub_centers, features]`` for Sub-center ArcFace), optionally sharded by class over a
  mapped axis (model parallel, as in Partial FC).
- :class:`CenterLoss`: Wen et al.'s center loss, its centers either moved by their own
  update rule (a non-trainable variable) or learned by the optimizer (a parameter).
- :class:`CurricularFaceHead` and :class:`AdaFaceHead`: the face heads with running
  statistics, owning their centers (parameters) and their statistics (``nnx.BatchStat``).

Evaluation: the state of :class:`CenterLoss`, :class:`CurricularFaceHead` and
:class:`AdaFaceHead` moves at every call unless the call says ``update=False``; flax's
``model.eval()`` does not reach it (the modules have no ``use_running_average`` of theirs),
so a validation pass calls them with ``update=False``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

try:
    from flax import nnx
except ImportError as error:  # pragma: no cover - exercised only without flax
    raise ImportError(
        'jaxloss.nn needs flax: pip install "jaxloss[flax]" (or pip install flax).'
    ) from error

from jaxloss import _checks, _numerics
from jaxloss._sharding import AxisName
from jaxloss.margin import adaptive
from jaxloss.margin.center import center_loss, center_loss_and_update
from jaxloss.margin.face import FACE_HEADS, subcenter_cosines
from jaxloss.margin.heads import HEADS

MARGIN_LOSSES: dict[str, Callable[..., jax.Array]] = {
    head.__name__: head for head in (*HEADS, *FACE_HEADS)
}
"""The margin losses a :class:`MarginSoftmaxHead` can use, by the name its ``loss`` takes."""


def _centers_init(key: jax.Array, shape: tuple[int, ...], dtype: DTypeLike) -> jax.Array:
    """Unit-variance normal rows: their direction is uniform on the sphere."""
    return jax.random.normal(key, shape, dtype)


class MarginSoftmaxHead(nnx.Module):
    """A margin-softmax loss that owns its class centers.

    ``head(embeddings, labels)`` is ``jaxloss.<loss>(embeddings, head.centers, labels,
    **hyperparameters)``. Hyperparameters given to the constructor are the defaults; the
    same names given to the call override them, and may be traced arrays (a margin
    warm-up from an optax schedule does not recompile).

    Class sharding: with ``class_axis_name``, the centers carry the partition spec
    ``P(class_axis_name, None)`` (``nnx.get_partition_spec`` reads it), so a
    ``shard_map`` over that axis hands each device its slice of the classes; the call then
    passes ``class_axis_name`` to the loss. If the batch is split over the same axis
    (``axis_name=class_axis_name`` in the call), each device scores every device's
    embeddings against its own classes (Partial FC).

    ``loss="subcenter_arcface"`` needs ``sub_centers`` (its centers are ``[num_classes,
    sub_centers, features]``); ``loss="elasticface"`` needs a fresh ``key=`` in every call.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxloss.nn import MarginSoftmaxHead
      >>> head = MarginSoftmaxHead(4, 10, loss="arcface", scale=16.0, rngs=nnx.Rngs(0))
      >>> head.centers.shape
      (10, 4)
      >>> x, y = jnp.ones((3, 4)), jnp.array([0, 5, 9])
      >>> bool(head(x, y) > head(x, y, margin=0.0))  # the margin makes the loss larger
      True

    Args:
      features: embedding size ``D``.
      num_classes: the number of classes ``C`` (the global count when class-sharded).
      loss: the margin loss, a name of :data:`MARGIN_LOSSES`.
      rngs: ``nnx.Rngs`` for the initial centers.
      chunk_size: classes per block (see the losses); None materializes the logits.
      class_axis_name: mapped axis over which the centers are split by class, or None.
      param_dtype: dtype of the centers.
      centers_init: ``(key, shape, dtype) -> array``; default unit normal rows.
      sub_centers: centers per class, for ``loss="subcenter_arcface"`` only.
      **hyperparameters: the loss's options (``scale``, ``margin``, ``m1``, ...), as
        numbers (a scalar array is read as its number; arrays and traced values go at the
        call).
    """

    def __init__(
        self,
        features: int,
        num_classes: int,
        *,
        loss: str = "arcface",
        rngs: nnx.Rngs,
        chunk_size: int | None = None,
        class_axis_name: AxisName = None,
        param_dtype: Any = jnp.float32,
        centers_init: Callable[..., jax.Array] = _centers_init,
        sub_centers: int | None = None,
        **hyperparameters: Any,
    ) -> None:
        _checks.choice(loss, tuple(MARGIN_LOSSES), "loss")
        _checks.chunk_size(chunk_size)
        if (loss == "subcenter_arcface") != (sub_centers is not None):
            raise ValueError(
                "`sub_centers` (centers per class) is needed by loss='subcenter_arcface' and "
                f"taken by no other loss; got loss={loss!r}, sub_centers={sub_centers!r}."
            )
        self.loss = loss
        self.chunk_size = chunk_size
        self.class_axis_name = class_axis_name
        self.hyperparameters = _constructor_options(MARGIN_LOSSES[loss], hyperparameters)
        shape = (
            (num_classes, features) if sub_centers is None else (num_classes, sub_centers, features)
        )
        self.centers = _class_centers(rngs, shape, param_dtype, centers_init, class_axis_name)

    def __call__(
        self,
        embeddings: ArrayLike,
        labels: ArrayLike,
        *,
        where: ArrayLike | None = None,
        reduction: str = "mean",
        axis_name: AxisName = None,
        **hyperparameters: Any,
    ) -> jax.Array:
        """The loss of ``embeddings [batch, features]`` with ``labels [batch]``.

        Args:
          embeddings: ``[batch, features]``.
          labels: ``[batch]`` global class ids.
          where: optional ``[batch]`` mask.
          reduction: ``"mean"``, ``"sum"`` or ``"none"``.
          axis_name: mapped axis over which the batch is split (global mean).
          **hyperparameters: overrides of the constructor's options; may be traced.
        """
        options = {
            **self.hyperparameters,
            **_known_options(MARGIN_LOSSES[self.loss], hyperparameters),
        }
        return MARGIN_LOSSES[self.loss](
            embeddings,
            self.centers[...],
            labels,
            where=where,
            reduction=reduction,
            chunk_size=self.chunk_size,
            axis_name=axis_name,
            class_axis_name=self.class_axis_name,
            **options,
        )

    def cosines(self, embeddings: ArrayLike) -> jax.Array:
        """``cos θ`` between each embedding and each (local) center, ``[batch, classes]``.

        The scores for inference: the predicted class is the argmax (over every shard's
        classes when class-sharded), and verification compares embeddings directly. With
        sub-centers, a class's cosine is that of its closest sub-center.
        """
        x = _checks.rows(embeddings, "embeddings")
        w = self.centers[...].astype(x.dtype)
        if w.ndim == 3:
            return subcenter_cosines(_numerics.l2_normalize(x), w)
        return _numerics.l2_normalize(x) @ _numerics.l2_normalize(w).T


# Keyword options of every margin loss that the head sets itself.
_HEAD_OPTIONS = ("where", "reduction", "chunk_size", "axis_name", "class_axis_name")


def _constructor_options(loss: Callable[..., jax.Array], options: dict, state: tuple = ()) -> dict:
    """A constructor's ``options`` for ``loss``, kept as Python numbers.

    A module's options are static configuration (flax refuses arrays inside an attribute's
    dict), so a concrete scalar array (``jnp.float32(16.0)``, ``np.float64(0.5)``) becomes its
    Python number; anything else array-like is an error pointing at the call, where a value
    may be an array or traced.
    """
    options = _known_options(loss, options, state)
    for name, value in options.items():
        if isinstance(value, (jax.Array, np.ndarray, np.generic)):
            if isinstance(value, jax.core.Tracer) or np.ndim(value) != 0:
                got = (
                    "a traced value"
                    if isinstance(value, jax.core.Tracer)
                    else f"an array of shape {np.shape(value)}"
                )
                raise TypeError(
                    f"The constructor's `{name}` must be a number (a static option of the "
                    f"module); got {got}. Pass an array or traced value at the call instead: "
                    f"head(embeddings, labels, {name}=...)."
                )
            options[name] = value.item()
    return options


def _known_options(loss: Callable[..., jax.Array], options: dict, state: tuple = ()) -> dict:
    """``options``, checked to be hyperparameters of ``loss`` (a typo is an error); the
    names in ``state`` are a module's own state, not options."""
    parameters = inspect.signature(loss).parameters.values()
    allowed = [
        p.name
        for p in parameters
        if p.kind is p.KEYWORD_ONLY and p.name not in _HEAD_OPTIONS + state
    ]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{loss.__name__} has no option {unknown}; its options are {allowed}.")
    return dict(options)


def _class_centers(
    rngs: nnx.Rngs,
    shape: tuple[int, ...],
    param_dtype: Any,
    centers_init: Callable[..., jax.Array],
    class_axis_name: AxisName,
) -> nnx.Param:
    """The head's ``[num_classes, ...]`` centers, with the partition spec
    ``P(class_axis_name, None, ...)`` when split by class."""
    metadata: dict[str, Any] = {}
    if class_axis_name is not None:
        spec = (class_axis_name,) + (None,) * (len(shape) - 1)
        metadata = {"out_sharding": spec, "eager_sharding": False}
    return nnx.Param(centers_init(rngs.params(), shape, param_dtype), **metadata)


class CenterBuffer(nnx.Variable):
    """Centers moved by their own update rule: state, not a parameter.

    ``nnx.Optimizer(model, tx, wrt=nnx.Param)`` leaves them alone, and ``nnx.grad``
    (which differentiates ``nnx.Param`` by default) does not differentiate them.
    """


class CenterLoss(nnx.Module):
    """Center loss (Wen et al. 2016) owning its class centers.

    ``module(features, labels)`` returns ``jaxloss.center_loss(features, centers,
    labels)``. With ``alpha`` (the paper's method) the centers are a :class:`CenterBuffer`
    moved by ``jaxloss.center_update`` on every call with ``update=True``, and the loss's
    gradient reaches only the features. With ``alpha=None`` the centers are an
    ``nnx.Param`` learned by the optimizer like any weight.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss.nn import CenterLoss
      >>> center = CenterLoss(2, 3, alpha=1.0)
      >>> float(center(jnp.array([[2.0, 0.0]]), jnp.array([1])))  # ½‖x − 0‖²
      2.0
      >>> center.centers[...].tolist()  # class 1 moved halfway to its feature
      [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]

    Args:
      features: feature size ``D``.
      num_classes: the number of classes.
      alpha: the centers' rate in Wen et al.'s update, or None to learn them by gradient.
      rngs: ``nnx.Rngs`` for random initial centers; None starts them at 0 (the paper).
      param_dtype: dtype of the centers.
    """

    def __init__(
        self,
        features: int,
        num_classes: int,
        *,
        alpha: ArrayLike | None = 0.5,
        rngs: nnx.Rngs | None = None,
        param_dtype: Any = jnp.float32,
    ) -> None:
        shape = (num_classes, features)
        if rngs is None:
            value = jnp.zeros(shape, param_dtype)
        else:
            value = _centers_init(rngs.params(), shape, param_dtype)
        self.alpha = alpha
        self.centers = CenterBuffer(value) if alpha is not None else nnx.Param(value)

    def __call__(
        self,
        features: ArrayLike,
        labels: ArrayLike,
        *,
        where: ArrayLike | None = None,
        reduction: str = "mean",
        axis_name: AxisName = None,
        update: bool = True,
    ) -> jax.Array:
        """The center loss; with ``alpha`` and ``update``, the centers then move.

        Args:
          features: ``[batch, features]``.
          labels: ``[batch]`` class ids (others are left out).
          where: optional ``[batch]`` mask (masked rows neither count nor move a center).
          reduction: ``"mean"``, ``"sum"`` or ``"none"``.
          axis_name: mapped axis over which the batch is split: a global mean, and the
            same center update on every device.
          update: apply Wen et al.'s update (False for evaluation).
        """
        centers = self.centers[...]
        if self.alpha is None or not update:
            if self.alpha is not None:
                centers = jax.lax.stop_gradient(centers)
            return center_loss(
                features, centers, labels, where=where, reduction=reduction, axis_name=axis_name
            )
        loss, new_centers = center_loss_and_update(
            features,
            centers,
            labels,
            alpha=self.alpha,
            where=where,
            reduction=reduction,
            axis_name=axis_name,
        )
        self.centers[...] = new_centers
        return loss


class _RunningStatisticsHead(nnx.Module):
    """A margin head owning its centers and the running statistics its margin reads.

    Subclasses name the loss, its ``*_and_update`` step and the statistics with their
    initial values (``nnx.BatchStat`` attributes, so ``nnx.Optimizer(..., wrt=nnx.Param)``
    and ``nnx.grad`` leave them alone); the constructor takes those values by name among
    the loss's options.
    """

    _loss: Callable[..., jax.Array]
    _and_update: Callable[..., tuple[jax.Array, Any]]
    _initial: ClassVar[dict[str, float]]

    @property
    def _statistics(self) -> tuple[str, ...]:
        return tuple(self._initial)

    def __init__(
        self,
        features: int,
        num_classes: int,
        *,
        rngs: nnx.Rngs,
        momentum: ArrayLike = 0.01,
        chunk_size: int | None = None,
        class_axis_name: AxisName = None,
        param_dtype: Any = jnp.float32,
        centers_init: Callable[..., jax.Array] = _centers_init,
        **hyperparameters: Any,
    ) -> None:
        _checks.chunk_size(chunk_size)
        self.momentum = momentum
        self.chunk_size = chunk_size
        self.class_axis_name = class_axis_name
        statistics = {
            name: hyperparameters.pop(name, value) for name, value in self._initial.items()
        }
        self.hyperparameters = _constructor_options(
            type(self)._loss, hyperparameters, self._statistics
        )
        self.centers = _class_centers(
            rngs, (num_classes, features), param_dtype, centers_init, class_axis_name
        )
        for name, value in statistics.items():
            setattr(self, name, nnx.BatchStat(jnp.asarray(value, jnp.float32)))

    def _options(self, options: dict) -> dict:
        return _known_options(type(self)._loss, options, self._statistics)

    def __call__(
        self,
        embeddings: ArrayLike,
        labels: ArrayLike,
        *,
        where: ArrayLike | None = None,
        reduction: str = "mean",
        axis_name: AxisName = None,
        update: bool = True,
        **hyperparameters: Any,
    ) -> jax.Array:
        """The loss of ``embeddings [batch, features]`` with ``labels [batch]``.

        Args:
          embeddings: ``[batch, features]``.
          labels: ``[batch]`` global class ids.
          where: optional ``[batch]`` mask (masked rows do not move the statistics).
          reduction: ``"mean"``, ``"sum"`` or ``"none"``.
          axis_name: mapped axis over which the batch is split: a global mean, and the
            same statistics on every device.
          update: update the statistics on the batch before the loss, as the official
            forward pass (True in training); False uses them as they are (evaluation).
          **hyperparameters: overrides of the constructor's options; may be traced.
        """
        options = {
            **self.hyperparameters,
            **self._options(hyperparameters),
            "where": where,
            "reduction": reduction,
            "chunk_size": self.chunk_size,
            "axis_name": axis_name,
            "class_axis_name": self.class_axis_name,
        }
        statistics = [getattr(self, name)[...] for name in self._statistics]
        centers = self.centers[...]
        if not update:
            # State, not parameters: no gradient reaches them (the official buffers; the
            # update below holds them apart itself).
            state = dict(zip(self._statistics, jax.lax.stop_gradient(statistics), strict=True))
            return type(self)._loss(embeddings, centers, labels, **state, **options)
        loss, new = type(self)._and_update(
            embeddings, centers, labels, *statistics, momentum=self.momentum, **options
        )
        new = new if len(self._statistics) > 1 else (new,)
        for name, value in zip(self._statistics, new, strict=True):
            getattr(self, name)[...] = value
        return loss


class CurricularFaceHead(_RunningStatisticsHead):
    """CurricularFace (Huang et al. 2020) owning its centers and its running t.

    ``head(embeddings, labels)`` updates ``head.t`` (an ``nnx.BatchStat``) on the batch with
    ``jaxloss.curricularface_update``, then returns ``jaxloss.curricularface`` with the new
    t, as the official module's forward pass; ``update=False`` (evaluation) uses t as it
    is. Centers and class sharding as :class:`MarginSoftmaxHead`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxloss.nn import CurricularFaceHead
      >>> head = CurricularFaceHead(4, 10, scale=16.0, momentum=0.5, rngs=nnx.Rngs(0))
      >>> x, y = jnp.ones((3, 4)), jnp.array([0, 5, 9])
      >>> loss = head(x, y)
      >>> bool(head.t[...] != 0)  # moved halfway to the batch's mean cos θ_y
      True

    Args:
      features: embedding size ``D``.
      num_classes: the number of classes ``C`` (the global count when class-sharded).
      rngs: ``nnx.Rngs`` for the initial centers.
      momentum: the batch's weight in the running mean of cos θ_y.
      chunk_size: classes per block; None materializes the logits.
      class_axis_name: mapped axis over which the centers are split by class, or None.
      param_dtype: dtype of the centers.
      centers_init: ``(key, shape, dtype) -> array``; default unit normal rows.
      **hyperparameters: ``scale``, ``margin``, and ``t``, the initial t (default 0).
    """

    _loss = staticmethod(adaptive.curricularface)
    _and_update = staticmethod(adaptive.curricularface_and_update)
    _initial: ClassVar[dict[str, float]] = {"t": 0.0}


class AdaFaceHead(_RunningStatisticsHead):
    """AdaFace (Kim et al. 2022) owning its centers and its running norm statistics.

    ``head(features, labels)`` (features *before* normalization: their norms carry the
    image quality) updates ``head.batch_mean`` and ``head.batch_std`` (``nnx.BatchStat``)
    on the batch with ``jaxloss.adaface_update``, then returns ``jaxloss.adaface`` with
    them, as the official module's forward pass; ``update=False`` (evaluation) uses them as
    they are. Centers and class sharding as :class:`MarginSoftmaxHead`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from flax import nnx
      >>> from jaxloss.nn import AdaFaceHead
      >>> head = AdaFaceHead(2, 10, momentum=1.0, rngs=nnx.Rngs(0))
      >>> loss = head(jnp.array([[3.0, 4.0], [0.0, 1.0]]), jnp.array([0, 5]))
      >>> float(head.batch_mean[...]), round(float(head.batch_std[...]), 4)  # norms 5, 1
      (3.0, 2.8284)

    Args:
      features: embedding size ``D``.
      num_classes: the number of classes ``C`` (the global count when class-sharded).
      rngs: ``nnx.Rngs`` for the initial centers.
      momentum: the batch's weight (the official ``t_alpha``).
      chunk_size: classes per block; None materializes the logits.
      class_axis_name: mapped axis over which the centers are split by class, or None.
      param_dtype: dtype of the centers.
      centers_init: ``(key, shape, dtype) -> array``; default unit normal rows.
      **hyperparameters: ``scale``, ``margin``, ``h``, ``eps``, and ``batch_mean`` and
        ``batch_std``, the initial statistics of the norms (default 20 and 100).
    """

    _loss = staticmethod(adaptive.adaface)
    _and_update = staticmethod(adaptive.adaface_and_update)
    _initial: ClassVar[dict[str, float]] = {"batch_mean": 20.0, "batch_std": 100.0}

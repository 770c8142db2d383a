"""Combinators in optax's style: weighted sums of named terms, scheduled hyperparameters, state.

Losses in training loops are rarely alone: cross-entropy plus 0.01 × center loss, a margin
that warms up over the first epochs, centers updated by their own rule. This module makes
those pure and jit-friendly, the way optax does for optimizers:

* ``weighted_terms`` sums named loss terms with weights that may be numbers, arrays or
  optax schedules of the step, and returns every term's value for logging.
* ``StatefulLoss`` is the protocol of losses with state, modelled on
  ``optax.GradientTransformation``: a NamedTuple of pure ``init`` and ``apply``, the state a
  pytree that ``jit``, ``pmap`` and checkpointing handle.
* ``inject_hyperparams`` turns hyperparameters (margins, scales, γ, temperatures) into
  state, so schedules or manual changes between steps never recompile, like
  ``optax.inject_hyperparams``.
* ``center_loss_with_update`` is center loss with Wen et al.'s center update, as a
  ``StatefulLoss``.
* ``curricularface_with_state`` and ``adaface_with_state`` are the face heads with running
  statistics, updated on each batch before its loss as the official modules do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss._sharding import AxisName
from jaxloss.margin.adaptive import adaface_and_update, curricularface_and_update
from jaxloss.margin.center import center_loss_and_update

# A weight or hyperparameter: a number, an array, or an optax-style schedule step -> value.
Schedulable = ArrayLike | Callable[[jax.Array], ArrayLike]


def _value_at(value: Schedulable, step: ArrayLike, name: str) -> jax.Array:
    """The scalar ``value`` (or its schedule's value) at ``step``, a float array: a Python
    number weakly typed (float32 beside float32 losses; under ``jax_enable_x64``, exact beside
    float64 ones), an array or a schedule's value in its own float dtype."""
    # A schedule is typed on arrays, as optax's are; ``weighted_terms`` hands it the
    # caller's step as given (a Python int too, which optax's schedules accept).
    value = value(cast(jax.Array, step)) if callable(value) else value
    if isinstance(value, (int, float)):  # a Python number stays weakly typed (the loss's dtype)
        return jnp.asarray(float(value))
    out = jnp.asarray(value)
    out = out if jnp.issubdtype(out.dtype, jnp.floating) else out.astype(float)
    if out.shape != ():
        raise ValueError(
            f"{name} must be a scalar (or a schedule of scalars), got shape {out.shape}."
        )
    return out


def weighted_terms(
    **terms: tuple[Callable[..., jax.Array], Schedulable],
) -> Callable[..., tuple[jax.Array, dict[str, jax.Array]]]:
    r"""Sums named loss terms with (scheduled) weights, keeping each term's value for logging.

    .. math::
      L(s, \cdot) = \sum_k w_k(s)\, \ell_k(\cdot)

    Args:
      **terms: ``name=(loss_fn, weight)``. Every ``loss_fn`` is called with the same
        arguments and returns a scalar; ``weight`` is a number, an array, or a schedule
        ``step -> weight`` (any optax schedule).

    Returns:
      ``objective(step, *args, **kwargs) -> (total, values)``: the weighted sum, and a dict
      of each term's unweighted value (for logging; the weights are known). ``step`` may be
      traced: a schedule changes the weights inside ``jit`` without recompiling.

    Examples:
      >>> import jax.numpy as jnp, jaxloss, optax
      >>> from jaxloss import compose
      >>> objective = compose.weighted_terms(
      ...     mse=(jaxloss.mse, 1.0),
      ...     mae=(jaxloss.mae, optax.linear_schedule(0.0, 1.0, transition_steps=10)),
      ... )
      >>> total, values = objective(5, jnp.array([3.0]), jnp.array([1.0]))
      >>> float(total), {k: float(v) for k, v in values.items()}  # 4 + 0.5·2
      (5.0, {'mse': 4.0, 'mae': 2.0})
    """
    if not terms:
        raise ValueError("`weighted_terms` needs at least one term.")
    for name, term in terms.items():
        if not (isinstance(term, tuple) and len(term) == 2 and callable(term[0])):
            raise TypeError(f"Term {name!r} must be a (loss_fn, weight) pair, got {term!r}.")

    def objective(
        step: ArrayLike, *args: Any, **kwargs: Any
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        values = {name: _scalar_term(name, fn(*args, **kwargs)) for name, (fn, _) in terms.items()}
        weights = {
            name: _value_at(terms[name][1], step, f"The weight of {name!r}") for name in terms
        }
        # At least one term, so the sum is an array (never ``sum``'s start, the int 0).
        total = cast(jax.Array, sum(weights[name] * value for name, value in values.items()))
        return total, values

    return objective


def _scalar_term(name: str, value: Any) -> jax.Array:
    if isinstance(value, (tuple, list, dict)):
        raise TypeError(
            f"Term {name!r} must return a scalar, got a {type(value).__name__} (a "
            "StatefulLoss's apply returns (loss, state), and a weighted_terms objective "
            "(total, values): call it in a function that returns the loss alone)."
        )
    value = jnp.asarray(value)
    if value.shape != ():
        raise ValueError(f"Term {name!r} must return a scalar, got shape {value.shape}.")
    return value


class StatefulLoss(NamedTuple):
    """A loss with state, as ``optax.GradientTransformation`` is an optimizer with state.

    Attributes:
      init: ``init(*args) -> state``, pure; the state is a pytree.
      apply: ``apply(state, *inputs, **options) -> (loss, new_state)``, pure; differentiate
        the loss with ``jax.grad(..., has_aux=True)`` and carry the new state to the next
        step.
    """

    init: Callable[..., Any]
    apply: Callable[..., tuple[jax.Array, Any]]


class InjectHyperparamsState(NamedTuple):
    """The step count and the current value of each injected hyperparameter."""

    # The field shadows ``tuple.count``, as in optax's states; renaming it would break users.
    count: jax.Array  # type: ignore[assignment]
    hyperparams: dict[str, jax.Array]


def inject_hyperparams(
    loss_fn: Callable[..., jax.Array], **hyperparams: Schedulable
) -> StatefulLoss:
    """Makes hyperparameters of ``loss_fn`` state: scheduled or changed without recompiling.

    Like ``optax.inject_hyperparams``: each hyperparameter is a number or a schedule
    ``step -> value``; the state holds the step count and the current values, as arrays.
    ``apply`` calls ``loss_fn`` with them and advances the step; a compiled training step
    sees new values as new array contents, never as new constants, so it is traced once.
    A value can also be set by hand between steps, and a constant keeps it until it is set
    again (a schedule's value is recomputed at every step, as in optax):
    ``state._replace(hyperparams={**state.hyperparams, "margin": jnp.float32(0.3)})``.
    Options that are not numbers (``None``, strings, booleans such as ``easy_margin``) go
    to ``loss_fn`` as they are; static integers such as ``chunk_size`` go to ``apply``.

    The first users: a margin warm-up for ArcFace or SphereFace-style heads
    (``inject_hyperparams(jaxloss.arcface, margin=optax.linear_schedule(0.0, 0.5, 1000))``),
    a temperature schedule for ``nt_xent``.

    Args:
      loss_fn: any jaxloss loss (or function) taking the hyperparameters as keywords.
      **hyperparams: name -> number, array or schedule.

    Returns:
      A ``StatefulLoss``: ``init() -> InjectHyperparamsState`` and
      ``apply(state, *inputs, **options) -> (loss, new_state)``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss, optax
      >>> from jaxloss import compose
      >>> huber = compose.inject_hyperparams(
      ...     jaxloss.huber, delta=optax.linear_schedule(2.0, 1.0, transition_steps=1))
      >>> state = huber.init()
      >>> first, state = huber.apply(state, jnp.array([3.0]), jnp.array([0.0]))
      >>> second, state = huber.apply(state, jnp.array([3.0]), jnp.array([0.0]))
      >>> float(first), float(second)  # delta 2: 2·(3 − 1); delta 1: 1·(3 − 0.5)
      (4.0, 2.5)
    """
    if not hyperparams:
        raise ValueError("`inject_hyperparams` needs at least one hyperparameter.")

    static = {k: v for k, v in hyperparams.items() if v is None or isinstance(v, (str, bool))}
    injected = {k: v for k, v in hyperparams.items() if k not in static}

    def init() -> InjectHyperparamsState:
        count = jnp.zeros((), jnp.int32)
        return InjectHyperparamsState(
            count, {name: _value_at(v, count, repr(name)) for name, v in injected.items()}
        )

    def apply(
        state: InjectHyperparamsState, *inputs: Any, **options: Any
    ) -> tuple[jax.Array, InjectHyperparamsState]:
        loss = loss_fn(*inputs, **{**static, **state.hyperparams, **options})
        count = state.count + 1
        values = dict(state.hyperparams)  # constants, and values set by hand, stay
        values.update((k, _value_at(v, count, repr(k))) for k, v in injected.items() if callable(v))
        return loss, InjectHyperparamsState(count, values)

    return StatefulLoss(init, apply)


class CenterLossState(NamedTuple):
    """The class centers ``[num_classes, dim]`` of ``center_loss_with_update``."""

    centers: jax.Array


def center_loss_with_update(alpha: ArrayLike = 0.5) -> StatefulLoss:
    """Center loss (Wen et al. 2016) whose centers follow their own update rule.

    ``apply(state, features, labels, where=None, reduction="mean", axis_name=None)``
    returns ``center_loss(features, state.centers, labels)`` and the centers moved by
    ``center_update`` with rate ``alpha``; with ``axis_name`` both are those of the global
    batch, so the replicated centers stay equal on every device. The centers are state,
    not parameters: no optimizer touches them, and the loss's gradient reaches only the
    features.

    Args:
      alpha: the centers' learning rate (number or traced).

    Returns:
      A ``StatefulLoss``: ``init(centers) -> CenterLossState``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import compose
      >>> center = compose.center_loss_with_update(alpha=1.0)
      >>> state = center.init(jnp.zeros((2, 2)))
      >>> loss, state = center.apply(state, jnp.array([[2.0, 0.0]]), jnp.array([1]))
      >>> float(loss), state.centers.tolist()  # ½‖x − 0‖²; the center moves halfway
      (2.0, [[0.0, 0.0], [1.0, 0.0]])
    """

    def init(centers: ArrayLike) -> CenterLossState:
        return CenterLossState(jnp.asarray(centers))

    def apply(
        state: CenterLossState,
        features: ArrayLike,
        labels: ArrayLike,
        *,
        where: ArrayLike | None = None,
        reduction: str = "mean",
        axis_name: AxisName = None,
    ) -> tuple[jax.Array, CenterLossState]:
        loss, new_centers = center_loss_and_update(
            features,
            state.centers,
            labels,
            alpha=alpha,
            where=where,
            reduction=reduction,
            axis_name=axis_name,
        )
        return loss, CenterLossState(new_centers)

    return StatefulLoss(init, apply)


class CurricularFaceState(NamedTuple):
    """CurricularFace's running mean of cos θ_y (the official module's buffer ``t``)."""

    t: jax.Array


def curricularface_with_state(momentum: ArrayLike = 0.01) -> StatefulLoss:
    """CurricularFace (Huang et al. 2020) with its running t, as the official module.

    ``apply(state, embeddings, centers, labels, **options)`` updates t on the batch
    (``jaxloss.curricularface_update``), then returns ``jaxloss.curricularface`` with the
    new t, and the new state: the official forward pass, which updates its buffer before
    reweighting the hard negatives. ``options`` are ``curricularface``'s (``scale``,
    ``margin``, ``where``, ``reduction``, ``chunk_size``, ``axis_name``,
    ``class_axis_name``); with ``axis_name`` t is that of the global batch, the same on
    every device. t is state: the loss's gradient does not flow into it, and it keeps its
    dtype (float32 from ``init``) whatever the inputs' dtype.

    Args:
      momentum: the batch's weight in the running mean (number or traced).

    Returns:
      A ``StatefulLoss``: ``init(t=0.0) -> CurricularFaceState``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import compose
      >>> head = compose.curricularface_with_state(momentum=0.5)
      >>> state = head.init()
      >>> x, w = jnp.array([[1.0, 0.0]]), jnp.eye(2)
      >>> loss, state = head.apply(state, x, w, jnp.array([0]), scale=1.0, margin=0.0)
      >>> float(state.t)  # ½ · cos θ_y + ½ · 0
      0.5
    """

    def init(t: ArrayLike = 0.0) -> CurricularFaceState:
        return CurricularFaceState(jnp.asarray(t, jnp.float32))

    def apply(
        state: CurricularFaceState,
        embeddings: ArrayLike,
        centers: ArrayLike,
        labels: ArrayLike,
        **options: Any,
    ) -> tuple[jax.Array, CurricularFaceState]:
        loss, t = curricularface_and_update(
            embeddings, centers, labels, state.t, momentum=momentum, **options
        )
        return loss, CurricularFaceState(t)

    return StatefulLoss(init, apply)


class AdaFaceState(NamedTuple):
    """AdaFace's running mean and standard deviation of the feature norms."""

    batch_mean: jax.Array
    batch_std: jax.Array


def adaface_with_state(momentum: ArrayLike = 0.01) -> StatefulLoss:
    """AdaFace (Kim et al. 2022) with its running norm statistics, as the official module.

    ``apply(state, embeddings, centers, labels, **options)`` updates the statistics on the
    norms of the rows the loss counts (``jaxloss.adaface_update``), then returns
    ``jaxloss.adaface`` with the new statistics, and the new state: the official forward
    pass. ``embeddings`` are the features before normalization. ``options`` are
    ``adaface``'s; with ``axis_name`` the statistics are those of the global batch. The
    statistics are state: the loss's gradient does not flow into them, and they keep their
    dtype (float32 from ``init``) whatever the inputs' dtype.

    Args:
      momentum: the batch's weight (the official ``t_alpha``; number or traced).

    Returns:
      A ``StatefulLoss``: ``init(batch_mean=20.0, batch_std=100.0) -> AdaFaceState``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import compose
      >>> head = compose.adaface_with_state(momentum=0.5)
      >>> state = head.init()
      >>> x, w = jnp.array([[3.0, 4.0], [0.0, 2.0]]), jnp.eye(2)
      >>> loss, state = head.apply(state, x, w, jnp.array([0, 1]))
      >>> float(state.batch_mean), round(float(state.batch_std), 4)  # norms 5 and 2
      (11.75, 51.0607)
    """

    def init(batch_mean: ArrayLike = 20.0, batch_std: ArrayLike = 100.0) -> AdaFaceState:
        return AdaFaceState(
            jnp.asarray(batch_mean, jnp.float32), jnp.asarray(batch_std, jnp.float32)
        )

    def apply(
        state: AdaFaceState,
        embeddings: ArrayLike,
        centers: ArrayLike,
        labels: ArrayLike,
        **options: Any,
    ) -> tuple[jax.Array, AdaFaceState]:
        loss, statistics = adaface_and_update(
            embeddings, centers, labels, *state, momentum=momentum, **options
        )
        return loss, AdaFaceState(*statistics)

    return StatefulLoss(init, apply)

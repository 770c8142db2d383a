"""Losses of given triplets: the triplet margin loss, with a p-norm or any distance.

Each example is a triplet of embeddings ``[..., dim]`` (anchor, positive, negative); the
per-example loss has their leading shape.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName
from jaxloss.pairwise.pairs import _embeddings, _hinge


def _lp_distance(diff: jax.Array, p: ArrayLike) -> jax.Array:
    """``(Σ |d|^p)^(1/p)`` over the last axis, finite gradients where ``d = 0``.

    A concrete ``p`` of 1 or inf takes its direct form; other values (and traced ones) the
    general one. (A concrete 2 is :func:`_numerics.distance`, see :func:`_pairwise_distance`.)
    """
    if isinstance(p, (int, float)):
        if p == 1:
            return jnp.sum(_numerics.abs_zero_subgradient(diff), axis=-1)
        if p == np.inf:
            return jnp.max(_numerics.abs_zero_subgradient(diff), axis=-1)
    # A traced p may be inf: the max norm, selected (the general branch computed at p = 2).
    p = jnp.asarray(p, diff.dtype)
    finite_p = jnp.where(jnp.isinf(p), 2, p)
    magnitude = _numerics.abs_zero_subgradient(diff)
    powered = jnp.sum(_numerics.safe_pow(magnitude, finite_p), axis=-1)
    general = _numerics.safe_pow(powered, 1 / finite_p)
    return jnp.where(jnp.isinf(p), jnp.max(magnitude, axis=-1), general)


def triplet_margin(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    margin: ArrayLike = 1.0,
    p: ArrayLike = 2.0,
    eps: ArrayLike = 1e-6,
    swap: bool = False,
    squared: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Triplet margin loss, as ``torch.nn.functional.triplet_margin_loss``.

    .. math::
      \ell_i = \max(0,\ d(a_i, p_i) - d(a_i, n_i) + m), \qquad
      d(x, y) = \|x - y + \epsilon\|_p

    as torch's ``pairwise_distance`` (the ε is added to the difference). With ``swap``
    (Balntas et al. 2016) the negative distance is ``min(d(a, n), d(p, n))``. With
    ``squared=True`` it is FaceNet's form, ``d(x, y) = ‖x - y‖²`` (no ε; ``p`` must be 2).

    Every ``p > 0`` is a true norm of the absolute difference (optax's triplet loss omits
    the absolute value, so odd ``p`` give wrong distances there). Gradients are finite at
    zero differences for any ``p``, and NaN in an input gives NaN (the hinge keeps it).

    Args:
      anchor: ``[..., dim]`` anchor embeddings.
      positive: ``[..., dim]`` embeddings of the anchor's class.
      negative: ``[..., dim]`` embeddings of another class.
      margin: m, how much closer the positive must be than the negative.
      p: the norm's order (> 0; ``float("inf")`` for the max norm).
      eps: added to each difference, as torch.
      swap: use the harder of the two negative distances.
      squared: FaceNet's squared Euclidean distances instead.
      where: optional boolean mask of the per-triplet shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per triplet, ``[...]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-triplet losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> a, pos, neg = jnp.zeros((1, 2)), jnp.array([[1.0, 0.0]]), jnp.array([[3.0, 0.0]])
      >>> float(jaxloss.triplet_margin(a, pos, neg, margin=1.0, eps=0.0))
      0.0
      >>> float(jaxloss.triplet_margin(a, pos, neg, margin=3.0, eps=0.0))
      1.0

    References:
      Schroff, Kalenichenko and Philbin, "FaceNet: A Unified Embedding for Face
      Recognition and Clustering", CVPR 2015. Balntas, Riba, Ponsa and Mikolajczyk,
      "Learning local feature descriptors with triplets and shallow convolutional neural
      networks", BMVC 2016.
    """
    _checks.in_range(p, "p", low=0, low_open=True)
    _checks.in_range(eps, "eps", low=0)
    number = _checks.concrete_number(p)  # NumPy and concrete JAX scalars as Python's
    p = p if number is None or isinstance(p, (int, float)) else number
    if isinstance(p, (int, float)) and not p > 0:
        raise ValueError(f"`p` must be > 0, got {p}.")
    if squared and not (isinstance(p, (int, float)) and p == 2):
        raise ValueError(f"`squared=True` is the squared Euclidean distance; got p={p}.")
    if squared:

        def distance(x: jax.Array, y: jax.Array) -> jax.Array:
            return jnp.square(_numerics.distance(x, y))

    else:
        distance = functools.partial(_pairwise_distance, p=p, eps=eps)
    return _triplet(anchor, positive, negative, distance, margin, swap, where, reduction, axis_name)


def triplet_margin_with_distance(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    *,
    distance_function: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    margin: ArrayLike = 1.0,
    swap: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Triplet margin loss of any distance, as torch's ``triplet_margin_with_distance_loss``.

    .. math::
      \ell_i = \max(0,\ d(a_i, p_i) - d(a_i, n_i) + m)

    for the distance :math:`d` = ``distance_function``, by default torch's
    ``pairwise_distance``, :math:`d(x, y) = \|x - y + 10^{-6}\|_2` (then it equals
    ``triplet_margin(anchor, positive, negative, margin=margin, swap=swap)``). With ``swap``
    the negative distance is ``min(d(a, n), d(p, n))``. A similarity is turned into a
    distance by the caller: ``distance_function=jaxloss.cosine_distance`` is 1 − cos.

    The default distance has a finite gradient where two embeddings are equal. A custom one
    is called on the broadcast ``[..., dim]`` float inputs, the rows masked by ``where``
    replaced by zeros: it must be a JAX function whose gradient is finite at ``d(0, 0)``
    (``jnp.linalg.norm`` is not) for those rows to get exactly zero gradients.

    Args:
      anchor: ``[..., dim]`` anchor embeddings.
      positive: ``[..., dim]`` embeddings of the anchor's class.
      negative: ``[..., dim]`` embeddings of another class.
      distance_function: ``(x, y) -> [...]`` distances of two ``[..., dim]`` arrays (static),
        or None for torch's default.
      margin: m (> 0, as torch requires).
      swap: use the harder of the two negative distances (static).
      where: optional boolean mask of the per-triplet shape.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per triplet, ``[...]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-triplet losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> a, pos, neg = jnp.zeros((1, 2)), jnp.array([[1.0, 0.0]]), jnp.array([[0.0, 3.0]])
      >>> l1 = lambda x, y: jnp.sum(jnp.abs(x - y), axis=-1)
      >>> float(jaxloss.triplet_margin_with_distance(a, pos, neg, distance_function=l1,
      ...                                            margin=3.0))
      1.0

    References:
      Balntas, Riba, Ponsa and Mikolajczyk, "Learning local feature descriptors with
      triplets and shallow convolutional neural networks", BMVC 2016.
    """
    _checks.in_range(margin, "margin", low=0, low_open=True)
    if distance_function is None:
        distance_function = functools.partial(_pairwise_distance, p=2.0, eps=1e-6)
    elif not callable(distance_function):
        raise TypeError(
            f"`distance_function` must be a callable (x, y) -> distances or None, got "
            f"{type(distance_function).__name__}."
        )
    return _triplet(
        anchor, positive, negative, distance_function, margin, swap, where, reduction, axis_name
    )


def _pairwise_distance(x: jax.Array, y: jax.Array, *, p: ArrayLike, eps: ArrayLike) -> jax.Array:
    """torch's ``pairwise_distance``: ``‖x − y + eps‖_p`` over the last axis (safe at 0)."""
    if isinstance(p, (int, float)) and p == 2:
        return _numerics.distance(x, y, eps)
    return _lp_distance(x - y + jnp.asarray(eps, x.dtype), p)


def _triplet(
    anchor: ArrayLike,
    positive: ArrayLike,
    negative: ArrayLike,
    distance: Callable[[jax.Array, jax.Array], jax.Array],
    margin: ArrayLike,
    swap: bool,
    where: ArrayLike | None,
    reduction: str,
    axis_name: AxisName,
) -> jax.Array:
    """``max(0, d(a, p) − d(a, n) + margin)`` per triplet, reduced; with ``swap``,
    ``d(a, n)`` is ``min(d(a, n), d(p, n))``. ``distance`` maps two ``[..., dim]`` arrays
    to ``[...]``."""
    (a, pos, neg), shape = _embeddings(anchor=anchor, positive=positive, negative=negative)
    mask, (a, pos, neg) = masked_inputs(where, shape, a, pos, neg)

    def d(x: jax.Array, y: jax.Array) -> jax.Array:
        value = jnp.asarray(distance(x, y))
        if value.shape != shape:
            raise ValueError(
                f"`distance_function` must return one distance per triplet, shape {shape}, "
                f"got {value.shape}."
            )
        return value

    d_neg = d(a, neg)
    if swap:
        d_neg = jnp.minimum(d_neg, d(pos, neg))
    loss = _hinge(d(a, pos) - d_neg + jnp.asarray(margin, a.dtype))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)

"""Cosine similarity and cosine distance of vectors: optax's utilities, safe at zero vectors.

Not losses: they return one value per pair of vectors, with no reduction and no ``where``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics


def _axes(axis: int | tuple[int, ...], ndim: int) -> tuple[int, ...]:
    """``axis`` (an int or a tuple of ints) as a tuple of nonnegative axes of ``x1``."""
    axes = axis if isinstance(axis, tuple) else (axis,)
    axes = tuple(_checks.class_axis(a, ndim, "x1") for a in axes)
    if len(set(axes)) != len(axes):
        raise ValueError(f"`axis` repeats an axis: {axis}.")
    return axes


def cosine_similarity(
    x1: ArrayLike,
    x2: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    eps: ArrayLike = 1e-8,
) -> jax.Array:
    r"""Cosine similarity of vectors along ``axis``, as optax's ``cosine_similarity``.

    .. math::
      \cos(x_1, x_2) = \sum_k \frac{x_{1,k}}{\max(\|x_1\|_2, \epsilon)}
      \frac{x_{2,k}}{\max(\|x_2\|_2, \epsilon)}

    Each vector is divided by its norm floored at ``eps``, as
    ``torch.nn.functional.cosine_similarity`` does; optax floors the *squared* norm at its
    ``epsilon``, so optax's ``epsilon=e`` is ``eps=e ** 0.5`` here.

    Numerics: a zero vector has cosine 0 with every vector and finite gradients (up to
    about ``1/eps`` in size, as torch's; optax's default ``epsilon=0`` gives NaN there, as
    ``eps=0`` does here). Finite while the squared norms fit float32 (``‖x‖ ≲ 1.8e19``);
    NaN in an input gives NaN.

    Args:
      x1: ``[..., dim, ...]`` vectors along ``axis``.
      x2: vectors broadcastable with ``x1``.
      axis: the vectors' axis, or a tuple of axes (static).
      eps: ε ≥ 0, the floor of each norm.

    Returns:
      The cosines, float32 (or float64), of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[1.0, 0.0], [0.0, 0.0]])
      >>> jaxloss.cosine_similarity(x, jnp.array([[3.0, 4.0], [1.0, 1.0]])).tolist()
      [0.6000000238418579, 0.0]
    """
    _checks.in_range(eps, "eps", low=0)
    (x1, x2), shape = _checks.broadcast_floats(x1=x1, x2=x2)
    axes = _axes(axis, len(shape))
    eps = jnp.asarray(eps, x1.dtype)

    def unit(x: jax.Array) -> jax.Array:
        norm = _numerics.safe_sqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=True))
        return x / jnp.maximum(norm, eps)

    return jnp.sum(unit(x1) * unit(x2), axis=axes)


def cosine_distance(
    x1: ArrayLike,
    x2: ArrayLike,
    *,
    axis: int | tuple[int, ...] = -1,
    eps: ArrayLike = 1e-8,
) -> jax.Array:
    r"""Cosine distance ``1 − cosine_similarity(x1, x2)``, as optax's ``cosine_distance``.

    .. math::
      d(x_1, x_2) = 1 - \cos(x_1, x_2)

    In ``[0, 2]``: 0 for vectors pointing the same way, 1 for orthogonal ones and for a zero
    vector, 2 for opposite ones. Safe at zero vectors as ``cosine_similarity``; optax's
    ``epsilon=e`` is ``eps=e ** 0.5`` here.

    Args:
      x1: ``[..., dim, ...]`` vectors along ``axis``.
      x2: vectors broadcastable with ``x1``.
      axis: the vectors' axis, or a tuple of axes (static).
      eps: ε ≥ 0, the floor of each norm.

    Returns:
      The distances, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> float(jaxloss.cosine_distance(jnp.array([1.0, 1.0]), jnp.array([-2.0, -2.0])))
      2.0
    """
    return 1 - cosine_similarity(x1, x2, axis=axis, eps=eps)

"""Label smoothing of probability targets, as optax's ``smooth_labels`` (not a loss)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks


def smooth_labels(
    labels: ArrayLike,
    alpha: ArrayLike,
    *,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""Label smoothing: the targets mixed with the uniform distribution over the classes.

    .. math::
      t'_c = (1 - \alpha)\, t_c + \frac{\alpha}{C}

    over the :math:`C` classes of ``axis``, as optax's ``smooth_labels``. With ``where``,
    :math:`C` counts the classes it keeps and the others are 0, so a class left out of the
    softmax (a logit of −inf) keeps a target of 0, which :func:`cross_entropy` reads as
    :math:`0 \log 0 = 0`; optax spreads the same :math:`\alpha / C` but adds it to the
    classes left out too. :func:`cross_entropy`'s ``label_smoothing`` is this for integer
    labels.

    Args:
      labels: float targets (one-hot rows or probabilities), classes at ``axis``; any float
        dtype, half precision returned in float32.
      alpha: the smoothing :math:`\alpha \in [0, 1]`; may be traced.
      axis: the class axis.
      where: optional boolean mask of the classes that exist, broadcastable to the shape of
        ``labels``.

    Returns:
      The smoothed targets, the shape of ``labels``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> jaxloss.smooth_labels(jnp.array([0.0, 1.0, 0.0, 0.0]), 0.2)
      Array([0.05, 0.85, 0.05, 0.05], dtype=float32)

    References:
      Szegedy, Vanhoucke, Ioffe, Shlens and Wojna, "Rethinking the Inception Architecture
      for Computer Vision", 2016. https://arxiv.org/abs/1512.00567
    """
    _checks.in_range(alpha, "alpha", low=0, high=1)
    labels = _checks.float_array(labels, "labels")
    if labels.ndim == 0:
        raise ValueError("`labels` must have a class axis, got a scalar.")
    axis = _checks.class_axis(axis, labels.ndim, "labels")
    alpha = jnp.asarray(alpha, labels.dtype)
    if where is None:
        return (1 - alpha) * labels + alpha / labels.shape[axis]
    where = jnp.asarray(where)
    if where.dtype != jnp.bool_:
        raise TypeError(f"`where` must be a boolean mask, got dtype {where.dtype}.")
    keep = _checks.broadcast_to(where, labels.shape, "where", "`labels`")
    num_classes = jnp.maximum(jnp.sum(keep, axis=axis, keepdims=True), 1).astype(labels.dtype)
    return jnp.where(keep, (1 - alpha) * labels + alpha / num_classes, 0)

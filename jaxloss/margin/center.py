"""Center loss (Wen et al. 2016): the loss, the centers' own update rule, and both at once.

``center_loss_and_update`` is the training step that ``compose.center_loss_with_update``
and ``nn.CenterLoss`` share.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _deprecation
from jaxloss._deprecation import renamed
from jaxloss._reduce import reduce_loss
from jaxloss._sharding import AxisName, global_sum
from jaxloss.margin.classes import check_labels, counted_rows, label_rows

F = TypeVar("F", bound=Callable[..., Any])


def _old_order_with_keyword_centers(fn: F) -> F:
    """0.1's order with the centers by keyword, ``center_loss(features, labels,
    centers=c)``, which Python cannot bind to the new signature (``centers`` twice)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 2 and "centers" in kwargs and "labels" not in kwargs:
            _deprecation.warn(
                "center_loss",
                "the order (features, labels, centers) is now (embeddings, centers, labels)",
            )
            args = (args[0], kwargs.pop("centers"), args[1])
        return fn(*args, **kwargs)

    return cast(F, wrapper)


@_old_order_with_keyword_centers
@renamed(features="embeddings")
def center_loss(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Center loss: half the squared distance of each embedding to its class center.

    .. math::
      \ell_i = \tfrac12 \|x_i - c_{y_i}\|^2

    Added to a softmax loss, it makes each class compact. The centers are not learned by
    gradient descent in the paper but moved by :func:`center_update`; pass them through
    ``jax.lax.stop_gradient`` (or exclude them from the optimizer) to follow it.

    Numerics: nothing is clamped; a term is +inf only where ``‖x − c‖²`` passes the float32
    maximum (distances beyond ~1.8e19). Rows masked by ``where`` or with labels outside
    ``[0, num_classes)`` are replaced by 0 before any arithmetic and left out of the value:
    NaN or inf there reaches no gradient (the centers' included), and theirs is exactly 0.

    The arguments are in the order of the margin heads, ``(embeddings, centers, labels)``;
    jaxloss 0.1's order ``(features, labels, centers)`` still works until 0.3, with a
    ``DeprecationWarning`` (recognised by the integer labels in second place).

    Args:
      embeddings: ``[batch, dim]``.
      centers: ``[num_classes, dim]``.
      labels: ``[batch]`` integer class ids; labels outside ``[0, num_classes)`` are
        excluded.
      where: optional ``[batch]`` boolean mask.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis over which the batch is split (global mean and sum).

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> c = jnp.array([[0.0, 0.0], [1.0, 1.0]])
      >>> float(jaxloss.center_loss(jnp.array([[3.0, 4.0]]), c, jnp.array([0])))
      12.5

    References:
      Wen, Zhang, Li and Qiao, "A Discriminative Feature Learning Approach for Deep Face
      Recognition", ECCV 2016. https://doi.org/10.1007/978-3-319-46478-7_31
    """
    if _old_center_loss_order(centers, labels):
        _deprecation.warn(
            "center_loss",
            "the order (features, labels, centers) is now (embeddings, centers, labels)",
        )
        centers, labels = labels, centers
    x, c, labels = _checks.rows_and_classes(embeddings, centers, labels, "embeddings", "centers")
    check_labels(labels, c, None, where)
    counted, x = counted_rows(x, labels, c, where, None)
    target, _ = label_rows(c, labels, None)
    loss = 0.5 * jnp.sum(jnp.square(x - target), axis=1)
    return reduce_loss(loss, reduction, where=counted, axis_name=axis_name)


def _old_center_loss_order(centers: ArrayLike, labels: ArrayLike) -> bool:
    """Whether ``center_loss`` was called as in 0.1: integer labels where the centers go.

    The dtypes are read from the arrays, or from NumPy's reading of a list (``result_type``
    refuses lists)."""

    def dtype(x: ArrayLike) -> np.dtype:
        return x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype

    return jnp.issubdtype(dtype(centers), jnp.integer) and jnp.issubdtype(
        dtype(labels), jnp.floating
    )


@renamed(features="embeddings")
def center_update(
    centers: ArrayLike,
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike = 0.5,
    where: ArrayLike | None = None,
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The center update rule of Wen et al. (2016).

    .. math::
      c_j \leftarrow c_j - \alpha \frac{\sum_{i: y_i = j} (c_j - x_i)}{1 + n_j}

    with :math:`n_j` the number of (unmasked) examples of class :math:`j` in the batch;
    classes absent from the batch do not move. Like optax's update functions, it takes the
    state it returns (the centers) first.

    Numerics: the step divides by ``1 + n_j ≥ 1``, so it is finite for finite inputs (unless
    the per-class sums overflow float32), and classes absent from the batch get a step of
    exactly 0. Masked rows and labels outside ``[0, num_classes)`` are replaced by 0 before the
    sums, so a NaN or inf in them changes nothing.

    Args:
      centers: ``[num_classes, dim]`` current centers.
      embeddings: ``[batch, dim]`` (treated as constants).
      labels: ``[batch]`` integer class ids; others are ignored.
      alpha: the center learning rate, ≥ 0; may be traced.
      where: optional ``[batch]`` boolean mask of the examples that count.
      axis_name: mapped axis (or axes) over which the batch is split (the centers are
        replicated): the counts and sums are those of the global batch, so every device
        computes the same new centers.

    Returns:
      The new centers, ``[num_classes, dim]``, in the dtype of ``centers``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> c = jnp.zeros((2, 2))
      >>> jaxloss.center_update(c, jnp.array([[2.0, 2.0]]), jnp.array([1]), alpha=1.0).tolist()
      [[0.0, 0.0], [1.0, 1.0]]
    """
    _checks.in_range(alpha, "alpha", low=0)
    centers_in = jnp.asarray(centers)
    x, c, labels = _checks.rows_and_classes(embeddings, centers, labels, "embeddings", "centers")
    check_labels(labels, c, None, where)
    # Zeroed, not multiplied by 0: a NaN in a masked row must not reach the sums.
    counted, x = counted_rows(jax.lax.stop_gradient(x), labels, c, where, None)
    safe = jnp.where(counted, labels, 0)
    counts = jax.ops.segment_sum(counted.astype(c.dtype), safe, num_segments=c.shape[0])
    feature_sums = jax.ops.segment_sum(x, safe, num_segments=c.shape[0])
    counts, feature_sums = global_sum((counts, feature_sums), axis_name)
    delta = (counts[:, None] * c - feature_sums) / (1 + counts[:, None])
    return (c - jnp.asarray(alpha, c.dtype) * delta).astype(centers_in.dtype)


def center_loss_and_update(
    embeddings: ArrayLike,
    centers: ArrayLike,
    labels: ArrayLike,
    *,
    alpha: ArrayLike,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> tuple[jax.Array, jax.Array]:
    """Wen et al.'s training step: ``center_loss`` and the centers moved by ``center_update``.

    The centers enter the loss through ``stop_gradient``: they follow their own update rule,
    so the loss's gradient reaches only the embeddings.

    Returns:
      ``(loss, new_centers)``.
    """
    centers = jax.lax.stop_gradient(centers)
    loss = center_loss(
        embeddings, centers, labels, where=where, reduction=reduction, axis_name=axis_name
    )
    new_centers = center_update(
        centers, embeddings, labels, alpha=alpha, where=where, axis_name=axis_name
    )
    return loss, new_centers

"""Point clouds: the Chamfer distance between padded batches of clouds.

The nearest neighbours come from the kernel ``_kernels.nearest_neighbours`` (blocked, never
the ``num_x × num_y`` matrix; its gradient from the neighbours' indices alone).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._kernels.nearest_neighbours import nearest_squared_distances
from jaxloss._reduce import masked_inputs, reduce_loss, safe_divide, zero_masked
from jaxloss._sharding import AxisName

POINT_REDUCTIONS = ("mean", "sum")


def _point_cloud(points: ArrayLike, name: str) -> jax.Array:
    points = _checks.float_array(points, name)
    if points.ndim != 3:
        raise ValueError(f"`{name}` must be [batch, num_points, dim], got shape {points.shape}.")
    return points


def _counted_points(lengths: ArrayLike | None, num_points: int, batch: int, name: str) -> jax.Array:
    """``[batch, num_points]``: which points lie within their cloud's length."""
    lengths = _checks.lengths(lengths, num_points, batch, name)
    return jnp.arange(num_points)[None, :] < lengths[:, None]


def _reduce_points(distances: jax.Array, counted: jax.Array, point_reduction: str) -> jax.Array:
    total = jnp.sum(distances, axis=1)
    if point_reduction == "sum":
        return total
    return safe_divide(total, jnp.sum(counted, axis=1).astype(total.dtype))


def chamfer(
    x: ArrayLike,
    y: ArrayLike,
    *,
    x_lengths: ArrayLike | None = None,
    y_lengths: ArrayLike | None = None,
    squared: bool = True,
    point_reduction: str = "mean",
    single_directional: bool = False,
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Chamfer distance between batches of point clouds, as PyTorch3D's ``chamfer_distance``.

    .. math::
      \ell_b = \operatorname*{red}_{i < n_x} \min_{j < n_y} d(x_{b,i}, y_{b,j})
             + \operatorname*{red}_{j < n_y} \min_{i < n_x} d(y_{b,j}, x_{b,i})

    where ``red`` is the mean (or sum) over a cloud's points, ``n_x``, ``n_y`` are the
    clouds' lengths, and ``d`` is the squared Euclidean distance (PyTorch3D's ``norm=2``) or,
    with ``squared=False``, the Euclidean distance. ``single_directional`` keeps only the
    first term (``x → y``: how far each point of ``x`` is from ``y``, as when fitting a
    partial scan into a full model). Points past a cloud's length are padding: they are
    neither counted nor anyone's neighbour, and may hold anything (NaN, ±inf): they are
    zeroed before the search, so their gradient is exactly 0.

    Edge cases, finite by definition: an empty cloud contributes 0 to its direction, and a
    direction whose other cloud is empty contributes 0 (no nearest neighbour exists).
    Where a distance is 0, the plain (``squared=False``) distance has a zero gradient.

    The nearest neighbours are found in blocks of ``chunk_size`` points of ``x`` against all
    of ``y``, with a running minimum for the ``y → x`` direction, so memory grows as
    ``(num_x + num_y)·dim + chunk_size·num_y``; the gradient is computed from the
    neighbours' indices (a ``custom_vjp``), never from the distance matrix, so the backward
    pass is linear in the number of points too. ``chunk_size=None`` compares all points in
    one block. Values and gradients do not depend on the chunk size.

    Args:
      x: ``[batch, num_x, dim]`` points (padded past ``x_lengths``).
      y: ``[batch, num_y, dim]`` points (padded past ``y_lengths``).
      x_lengths: ``[batch]`` int number of valid points of each ``x`` cloud, in ``[0, num_x]``
        (a concrete one outside raises; a traced one is clipped); None: all.
      y_lengths: ``[batch]`` int, the same for ``y``.
      squared: squared Euclidean distances (True, the default, as PyTorch3D) or Euclidean.
      point_reduction: ``"mean"`` or ``"sum"`` over each cloud's points.
      single_directional: only the ``x → y`` term.
      chunk_size: points of ``x`` per block, or None for one block (a ``[batch, num_x,
        num_y]`` matrix in the forward pass).
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per cloud pair, ``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-pair distances for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[[0.0, 0.0], [1.0, 0.0]]])
      >>> y = jnp.array([[[0.0, 1.0]]])
      >>> # x → y: mean(1, 2) = 1.5; y → x: 1
      >>> float(jaxloss.chamfer(x, y))
      2.5
      >>> float(jaxloss.chamfer(x, y, single_directional=True, point_reduction="sum"))
      3.0

    References:
      Fan, Su and Guibas, "A Point Set Generation Network for 3D Object Reconstruction
      from a Single Image", CVPR 2017. Ravi et al., "Accelerating 3D Deep Learning with
      PyTorch3D", arXiv:2007.08501, 2020.
    """
    _checks.choice(point_reduction, POINT_REDUCTIONS, "point_reduction")
    x, y = _point_cloud(x, "x"), _point_cloud(y, "y")
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(
            "`x` [batch, num_x, dim] and `y` [batch, num_y, dim] need the same batch and "
            f"dim, got {x.shape} and {y.shape}."
        )
    _checks.chunk_size(chunk_size)
    dtype = jnp.promote_types(x.dtype, y.dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    batch, num_x, _ = x.shape
    num_y = y.shape[1]
    mask, (x, y) = masked_inputs(where, (batch,), x, y)
    x_counted = _counted_points(x_lengths, num_x, batch, "x_lengths")
    y_counted = _counted_points(y_lengths, num_y, batch, "y_lengths")
    # Points past a length are padding too: zeroed before the search computes on them.
    (x,), (y,) = zero_masked(x_counted, x), zero_masked(y_counted, y)
    if num_x and num_y:
        block = num_x if chunk_size is None else min(chunk_size, num_x)
        x_distances, y_distances = nearest_squared_distances(x, y, x_counted, y_counted, block)
    else:
        # A cloud with no points at all: no nearest neighbour in either direction, which
        # contributes 0 (as lengths of 0 do); the search has no block to run on.
        x_distances, y_distances = (
            jnp.zeros((batch, num_x), dtype),
            jnp.zeros((batch, num_y), dtype),
        )
    if not squared:
        x_distances = _numerics.safe_sqrt(x_distances)
        y_distances = _numerics.safe_sqrt(y_distances)
    loss = _reduce_points(x_distances, x_counted, point_reduction)
    if not single_directional:
        loss = loss + _reduce_points(y_distances, y_counted, point_reduction)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)

"""Chamfer's nearest-neighbour search, blocked, and its gradient from the indices alone.

Notation: ``B`` clouds (the batch), ``N`` points of ``x``, ``M`` points of ``y``, ``D``
coordinates, ``K`` points of ``x`` per block (``block``).

Forward: blocks of ``K`` points of ``x`` are compared with all of ``y``; a block gives its
rows' nearest ``y`` directly, and the ``y → x`` direction keeps a running minimum over the
blocks. The distances are then recomputed exactly from the neighbours' indices.

Backward (``jax.custom_vjp``): ``d‖x_i − y_a(i)‖²`` moves each point and, with the opposite
sign, its neighbour, a scatter-add over the indices; no distance matrix is involved.

Memory: a ``[B, K, M]`` block of distances at a time (XLA fuses it into the two
reductions), the ``[B, N]`` and ``[B, M]`` indices, and the residuals ``[B, N, D]`` and
``[B, M, D]`` (the differences to the neighbours): ``O(B (N + M) D + B K M)``.
"""

from __future__ import annotations

import functools
from typing import cast

import jax
import jax.numpy as jnp

from jaxloss import _numerics
from jaxloss._kernels.blocks import blocked, num_blocks, unblocked
from jaxloss._sharding import vary_like

# Up to this many coordinates the search computes Σ_k (x_k − y_k)² directly, which is exact
# and, for point clouds, faster than a matmul with a tiny contraction; above, it uses the
# Gram form ‖x‖² + ‖y‖² − 2 x·y (one matmul), the library's ``_numerics.squared_distances``.
_DIRECT_MAX_DIM = 16


def _squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """``[batch, n, m]`` squared distances between ``x`` ``[batch, n, dim]`` and ``y``."""
    if x.shape[-1] <= _DIRECT_MAX_DIM:
        # ``sum`` starts from the int 0; with at least one coordinate the result is an array.
        return cast(
            jax.Array,
            sum(jnp.square(x[:, :, None, k] - y[:, None, :, k]) for k in range(x.shape[-1])),
        )
    return _numerics.squared_distances(x, y)


def _nearest_neighbours(
    x: jax.Array, y: jax.Array, x_valid: jax.Array, y_valid: jax.Array, block: int
) -> tuple[jax.Array, jax.Array]:
    """Indices of each point's nearest valid neighbour in the other cloud.

    Blocks of ``block`` points of ``x`` are compared with all of ``y``; a block gives its
    rows' nearest ``y`` directly, and the ``y → x`` direction keeps a running minimum over
    the blocks. Only a ``[batch, block, num_y]`` block exists at a time (XLA fuses it into
    the two reductions). Points without a valid neighbour get index 0; callers mask them.

    Returns:
      ``(x_to_y [batch, num_x], y_to_x [batch, num_y])`` int32 indices.
    """
    num_x = x.shape[1]

    def step(
        carry: tuple[jax.Array, jax.Array], inputs: tuple[jax.Array, jax.Array, jax.Array]
    ) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
        best, best_index = carry
        x_block, valid_block, first = inputs
        distances = _squared_distances(x_block, y)
        distances = jnp.where(valid_block[:, :, None] & y_valid[:, None, :], distances, jnp.inf)
        block_min = jnp.min(distances, axis=1)
        closer = block_min < best  # strict: the first of equal minima wins, as argmin
        block_index = jnp.argmin(distances, axis=1).astype(jnp.int32) + first
        carry = (jnp.where(closer, block_min, best), jnp.where(closer, block_index, best_index))
        return carry, jnp.argmin(distances, axis=2).astype(jnp.int32)

    start = (jnp.full(y.shape[:2], jnp.inf, x.dtype), jnp.zeros(y.shape[:2], jnp.int32))
    start = vary_like(start, x, y, x_valid, y_valid)
    firsts = jnp.arange(num_blocks(num_x, block), dtype=jnp.int32) * block
    (_, y_to_x), x_to_y = jax.lax.scan(
        step, start, (blocked(x, block, axis=1), blocked(x_valid, block, axis=1), firsts)
    )
    return unblocked(x_to_y, num_x, axis=1), y_to_x


def _gather_points(points: jax.Array, indices: jax.Array) -> jax.Array:
    return jnp.take_along_axis(points, indices[..., None], axis=1)


def _scatter_points(values: jax.Array, indices: jax.Array, num_points: int) -> jax.Array:
    """Adds ``values`` ``[batch, n, dim]`` into ``num_points`` rows at ``indices``."""
    return jax.vmap(lambda v, i: jnp.zeros((num_points, v.shape[-1]), v.dtype).at[i].add(v))(
        values, indices
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def nearest_squared_distances(
    x: jax.Array, y: jax.Array, x_counted: jax.Array, y_counted: jax.Array, block: int
) -> tuple[jax.Array, jax.Array]:
    """Squared distance of every counted point to its nearest point of the other cloud.

    ``x_counted`` / ``y_counted`` mark the points whose distance is wanted and that may be
    a neighbour; the result is 0 where a point is not counted or the other cloud is empty.

    Args:
      x: ``[B, N, D]`` points, zero where not counted.
      y: ``[B, M, D]`` points, zero where not counted.
      x_counted: ``[B, N]`` bool.
      y_counted: ``[B, M]`` bool.
      block: ``K``, points of ``x`` per block (static).

    Returns:
      ``([B, N], [B, M])``: each point's squared distance to its nearest neighbour.
    """
    distances, _ = _nearest_squared_distances_fwd(x, y, x_counted, y_counted, block)
    return distances


# What the forward pass keeps: the differences to the neighbours and the two index arrays.
_Residuals = tuple[jax.Array, jax.Array, jax.Array, jax.Array]


def _nearest_squared_distances_fwd(
    x: jax.Array, y: jax.Array, x_counted: jax.Array, y_counted: jax.Array, block: int
) -> tuple[tuple[jax.Array, jax.Array], _Residuals]:
    x_to_y, y_to_x = _nearest_neighbours(x, y, x_counted, y_counted, block)
    # The distances are recomputed exactly from the indices: the search's own (possibly
    # Gram-form) values are never returned.
    x_diff = x - _gather_points(y, x_to_y)
    y_diff = y - _gather_points(x, y_to_x)
    x_term = x_counted & jnp.any(y_counted, axis=1, keepdims=True)
    y_term = y_counted & jnp.any(x_counted, axis=1, keepdims=True)
    x_diff = jnp.where(x_term[..., None], x_diff, 0)
    y_diff = jnp.where(y_term[..., None], y_diff, 0)
    distances = (jnp.sum(jnp.square(x_diff), -1), jnp.sum(jnp.square(y_diff), -1))
    return distances, (x_diff, y_diff, x_to_y, y_to_x)


def _nearest_squared_distances_bwd(
    block: int, saved: _Residuals, cotangents: tuple[jax.Array, jax.Array]
) -> tuple[jax.Array, jax.Array, None, None]:
    del block
    x_diff, y_diff, x_to_y, y_to_x = saved
    # d‖x_i − y_a(i)‖² = 2 (x_i − y_a(i)) · (dx_i − dy_a(i)): each term moves its point and,
    # with the opposite sign, its neighbour (a scatter-add over the indices).
    x_pull = 2 * cotangents[0][..., None] * x_diff
    y_pull = 2 * cotangents[1][..., None] * y_diff
    dx = x_pull - _scatter_points(y_pull, y_to_x, x_diff.shape[1])
    dy = y_pull - _scatter_points(x_pull, x_to_y, y_diff.shape[1])
    return dx, dy, None, None


nearest_squared_distances.defvjp(_nearest_squared_distances_fwd, _nearest_squared_distances_bwd)

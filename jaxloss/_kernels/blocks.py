"""Block padding: an axis split into equal blocks for a ``lax.scan``, and joined back.

A kernel that scans over blocks of rows (or points) pads the axis up to a whole number of
blocks, scans over the leading block axis, and slices the padding off its outputs. The
padding is zeros; each kernel keeps it out of its results (masked, or sliced off).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def num_blocks(length: int, block: int) -> int:
    """How many blocks of ``block`` entries cover ``length`` entries (the last one padded)."""
    return -(-length // block)


def blocked(a: jax.Array, block: int, axis: int = 0, fill: float = 0) -> jax.Array:
    """``a`` with ``axis`` padded to whole blocks (with ``fill``, 0 by default) and split:
    ``[num_blocks, ..., block, ...]``.

    The block axis comes first (what ``scan`` iterates over); the ``block`` entries of each
    take the place of ``axis``.
    """
    length = a.shape[axis]
    count = num_blocks(length, block)
    padding = [(0, 0)] * a.ndim
    padding[axis] = (0, count * block - length)
    a = jnp.pad(a, padding, constant_values=fill)
    a = a.reshape((*a.shape[:axis], count, block, *a.shape[axis + 1 :]))
    return jnp.moveaxis(a, axis, 0)


def unblocked(a: jax.Array, length: int, axis: int = 0) -> jax.Array:
    """The inverse of ``blocked``: ``[num_blocks, ..., block, ...]`` to ``length`` entries.

    ``axis`` is where the blocks' entries sit once the block axis is gone, as in ``blocked``.
    """
    a = jnp.moveaxis(a, 0, axis)
    a = a.reshape((*a.shape[:axis], a.shape[axis] * a.shape[axis + 1], *a.shape[axis + 2 :]))
    return jax.lax.slice_in_dim(a, 0, length, axis=axis)

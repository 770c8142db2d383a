"""Log-sum-exp over the non-target classes of ``x @ w.T + b``, without the batch × classes matrix.

Every softmax over many classes in jaxloss (margin softmax heads, ``linear_cross_entropy``)
reduces to one quantity per row, the log-sum-exp of the *other* classes' logits,

.. math::
  r_i = \\log \\sum_{j \\ne y_i} \\exp(x_i \\cdot w_j + b_j),

because the target logit is treated apart (its margin applied outside, then
``logaddexp(r_i, t_i)`` is the full normalizer). The gradient is
``dr_i/dz_ij = softmax over j != y_i``, so with ``chunk_size`` the kernel is a
``jax.custom_vjp``: the forward pass scans class blocks with an online log-sum-exp and keeps
only ``r`` (``[N]``); the backward pass recomputes each block's logits and accumulates
``dx`` and writes ``dw``/``db`` block by block (rows by blocks too). Neither pass holds
more than ``N × chunk`` logits. Exact gradients this way take four matmuls per block where
the materialized softmax takes three (the backward pass recomputes the block's logits).
Matmuls accumulate in float32 for half-precision inputs (float64 for float64).

Without ``chunk_size`` it is the plain expression, differentiated by autodiff.

``weighted_lse_sum`` is the three-matmul alternative for a loss whose rows are summed with
known coefficients (a ``"mean"`` or ``"sum"``): rows in blocks, each block's logits over
*every* class held at once (``rows × C``), so its softmax, and with it the gradient, is
complete in the forward pass. The backward pass only scales the stored gradients. It pays
when ``rows`` can be large (measured on CPU: 0.85× the materialized time with 512 rows at
``C`` = 32768, 1.28× with 64 rows, which stream ``w`` too often).

Notation: ``N`` rows, ``D`` features, ``C`` classes, ``K`` the chunk size.

Memory: with ``chunk_size`` the forward pass holds ``N × K`` logits and keeps ``N`` floats
(``r``) for the backward pass, which holds ``K × K`` logits per step (rows in blocks of
``K``) besides the gradients themselves (``N × D``, ``C × D``). ``weighted_lse_sum`` holds
``rows × C`` logits per block and keeps ``dx``, ``dw`` (and ``db``) from its forward pass.
"""

from __future__ import annotations

import functools
from typing import cast

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _numerics
from jaxloss._kernels.blocks import blocked, num_blocks, unblocked
from jaxloss._sharding import sum_to, vary_like

# What ``_chunked``'s forward pass keeps: x, w, labels, b, scale and the result.
_ChunkedResiduals = tuple[
    jax.Array, jax.Array, jax.Array, jax.Array | None, jax.Array | None, jax.Array
]
# The gradients ``_chunked``'s backward pass accumulates over class blocks: dx, dw, db, dscale.
_ClassCarry = tuple[jax.Array, jax.Array, jax.Array | None, jax.Array | None]
# dw and db, accumulated over ``weighted_lse_sum``'s row blocks (None without gradients).
_WeightedCarry = tuple[jax.Array | None, jax.Array | None]
# What ``weighted_lse_sum``'s forward pass keeps: dx, dw, db, the masked log-sum-exps, and
# the primals x, w, b and coefficients.
_WeightedResiduals = tuple[
    jax.Array,
    jax.Array,
    jax.Array | None,
    jax.Array,
    jax.Array,
    jax.Array,
    jax.Array | None,
    jax.Array,
]


def accumulation_dtype(*arrays: ArrayLike) -> np.dtype:
    """float32 for half-precision (and float32) inputs, float64 for float64 ones."""
    return jnp.promote_types(jnp.result_type(*arrays), jnp.float32)


def class_logits(
    x: jax.Array, w: jax.Array, b: jax.Array | None, scale: jax.Array | None
) -> tuple[jax.Array, jax.Array]:
    """``(x @ w.T) * scale + b``, ``[N, K]``, accumulated in at least float32.

    Returns the logits and the plain products ``x @ w.T`` (the scale's gradient needs them).
    """
    dtype = accumulation_dtype(x, w)
    products = jnp.einsum("nd,kd->nk", x, w, preferred_element_type=dtype)
    z = products if scale is None else products * scale.astype(dtype)[None, :]
    return (z if b is None else z + b.astype(dtype)[None, :]), products


def _others(
    z: jax.Array, labels: jax.Array, first_class: ArrayLike, new_from: ArrayLike
) -> jax.Array:
    """``z`` with each row's target class, and classes an earlier block covered, at -inf."""
    classes = first_class + jnp.arange(z.shape[1])[None, :]
    keep = (classes != labels[:, None]) & (classes >= new_from)
    return jnp.where(keep, z, -jnp.inf)


def lse_excluding_targets(
    x: jax.Array,
    w: jax.Array,
    labels: jax.Array,
    b: jax.Array | None = None,
    *,
    column_scale: jax.Array | None = None,
    chunk_size: int | None = None,
) -> jax.Array:
    """``log Σ_{j != y_i} exp(s_j x_i · w_j + b_j)`` per row, ``[N]``.

    Args:
      x: ``[N, D]`` rows (any float dtype).
      w: ``[C, D]`` class vectors.
      labels: ``[N]`` int target class of each row; a label outside ``[0, C)`` excludes
        nothing.
      b: optional ``[C]`` bias.
      column_scale: optional ``[C]`` per-class scale s, e.g. ``1 / ‖w_j‖``: cosine logits
        without a normalized copy of ``w`` (and its gradient) as large as ``w``.
      chunk_size: classes per block (static), or None for the unchunked expression.
    """
    if chunk_size is None:
        z = _others(class_logits(x, w, b, column_scale)[0], labels, 0, 0)
        return _numerics.logsumexp(z)
    return _chunked(x, w, labels, b, column_scale, int(chunk_size))


def _block(
    w: jax.Array, vectors: tuple[jax.Array | None, ...], index: jax.Array, chunk_size: int
) -> tuple[jax.Array, jax.Array, jax.Array, tuple[jax.Array | None, ...]]:
    """Block ``index`` of ``chunk_size`` classes, sliced in place (no padded copy of ``w``).

    The last block starts early enough to end at the last class; the classes it shares
    with the block before are masked as already counted (``new_from``).
    Returns ``(first class, new_from, w block, per-class vector blocks)``.
    """
    first = jnp.minimum(index * chunk_size, w.shape[0] - chunk_size)
    w_block = jax.lax.dynamic_slice_in_dim(w, first, chunk_size)
    vector_blocks = tuple(
        None if v is None else jax.lax.dynamic_slice_in_dim(v, first, chunk_size) for v in vectors
    )
    return first, index * chunk_size, w_block, vector_blocks


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _chunked(
    x: jax.Array,
    w: jax.Array,
    labels: jax.Array,
    b: jax.Array | None,
    scale: jax.Array | None,
    chunk_size: int,
) -> jax.Array:
    return _chunked_fwd(x, w, labels, b, scale, chunk_size)[0]


def _chunked_fwd(
    x: jax.Array,
    w: jax.Array,
    labels: jax.Array,
    b: jax.Array | None,
    scale: jax.Array | None,
    chunk_size: int,
) -> tuple[jax.Array, _ChunkedResiduals]:
    chunk_size = min(chunk_size, w.shape[0])
    dtype = accumulation_dtype(x, w)
    # A finite floor for the running max keeps exp(-inf - -inf) out of the update.
    floor = jnp.finfo(dtype).min

    def step(
        carry: tuple[jax.Array, jax.Array], index: jax.Array
    ) -> tuple[tuple[jax.Array, jax.Array], None]:
        running_max, running_sum = carry
        first, new_from, w_block, (b_block, scale_block) = _block(w, (b, scale), index, chunk_size)
        z = class_logits(x, w_block, b_block, scale_block)[0]
        z = _others(z, labels, first, new_from)
        new_max = jnp.maximum(running_max, jnp.max(z, axis=1))
        running_sum = running_sum * jnp.exp(running_max - new_max) + jnp.sum(
            jnp.exp(z - new_max[:, None]), axis=1
        )
        return (new_max, running_sum), None

    start = (jnp.full(x.shape[:1], floor, dtype), jnp.zeros(x.shape[:1], dtype))
    start = vary_like(start, x, w, labels, b, scale)
    (running_max, running_sum), _ = jax.lax.scan(
        step, start, jnp.arange(num_blocks(w.shape[0], chunk_size))
    )
    result = running_max + jnp.log(running_sum)  # -inf when no other class exists
    return result, (x, w, labels, b, scale, result)


def _chunked_bwd(
    chunk_size: int, saved: _ChunkedResiduals, cotangent: jax.Array
) -> tuple[jax.Array, jax.Array, None, jax.Array | None, jax.Array | None]:
    x, w, labels, b, scale, result = saved
    num_rows, num_classes = x.shape[0], w.shape[0]
    chunk_size = min(chunk_size, num_classes)
    reached = jnp.isfinite(result)
    # dr_i / dz_ij = exp(z_ij - r_i), scaled by the cotangent; rows with no other class pass
    # nothing back.
    dtype = accumulation_dtype(x, w)
    row_scale = jnp.where(reached, cotangent.astype(dtype), 0)
    safe_result = jnp.where(reached, result, 0)
    # Rows go by blocks too, so a block's logits and softmax stay [chunk, chunk] however
    # large the batch (measured: 116 MiB instead of 132 at N=8192, D=1024, C=131072).
    # At least 1: an empty batch is then zero blocks, not a division by zero.
    row_block = max(1, min(num_rows, chunk_size))
    x_rows, label_rows, scale_rows = (blocked(a, row_block) for a in (x, labels, row_scale))
    # The padding rows' results are +inf, not 0: their logits are the biases, and
    # exp(b_j - 0) overflows past b_j = 88.7 (float32), where inf * 0 would be NaN in dw, db.
    result_rows = blocked(safe_result, row_block, fill=jnp.inf)
    inputs = (x, w, labels, b, scale, cotangent)

    def class_step(carry: _ClassCarry, index: jax.Array) -> tuple[_ClassCarry, None]:
        dx, dw, db, dscale = carry
        first, new_from, w_block, (b_block, scale_block) = _block(w, (b, scale), index, chunk_size)

        def row_step(
            dw_block: jax.Array, row_block: tuple[jax.Array, jax.Array, jax.Array, jax.Array]
        ) -> tuple[jax.Array, tuple[jax.Array, jax.Array, jax.Array | None]]:
            x_row, label_row, result_row, cotangent_row = row_block
            z, products = class_logits(x_row, w_block, b_block, scale_block)
            z = _others(z, label_row, first, new_from)
            p = jnp.exp(z - result_row[:, None]) * cotangent_row[:, None]
            q = p if scale_block is None else p * scale_block.astype(dtype)[None, :]
            dw_block = dw_block + jnp.einsum("nk,nd->kd", q, x_row, preferred_element_type=dtype)
            dx_row = jnp.einsum("nk,kd->nd", q, w_block, preferred_element_type=dtype)
            dscale_part = None if scale_block is None else jnp.sum(p * products, axis=0)
            return dw_block, (dx_row, jnp.sum(p, axis=0), dscale_part)

        dw_block, (dx_rows, db_parts, dscale_parts) = jax.lax.scan(
            row_step,
            vary_like(jnp.zeros(w_block.shape, dtype), *inputs),
            (x_rows, label_rows, result_rows, scale_rows),
        )
        dx = dx + unblocked(dx_rows, num_rows)
        # Add (not set): the last block overlaps the one before, with zeros there.
        dw = _add_block(dw, dw_block.astype(dw.dtype), first)
        db = None if db is None else _add_block(db, jnp.sum(db_parts, axis=0), first)
        if dscale is not None:
            # With a scale, row_step returns its parts (never None).
            dscale_parts = cast(jax.Array, dscale_parts)
            dscale = _add_block(dscale, jnp.sum(dscale_parts, axis=0), first)
        return (dx, dw, db, dscale), None

    start: _ClassCarry = (
        jnp.zeros(x.shape, dtype),
        jnp.zeros(w.shape, w.dtype),
        None if b is None else jnp.zeros(b.shape, dtype),
        None if scale is None else jnp.zeros(scale.shape, dtype),
    )
    (dx, dw, db, dscale), _ = jax.lax.scan(
        class_step, vary_like(start, *inputs), jnp.arange(num_blocks(num_classes, chunk_size))
    )

    def per_class(gradient: jax.Array | None, primal: jax.Array | None) -> jax.Array | None:
        # ``gradient`` is None exactly when ``primal`` is (db with b, dscale with scale).
        if primal is None or gradient is None:
            return None
        return sum_to(gradient.astype(primal.dtype), primal)

    return (
        sum_to(dx.astype(x.dtype), x),
        sum_to(dw, w),
        None,
        per_class(db, b),
        per_class(dscale, scale),
    )


def _add_block(total: jax.Array, block: jax.Array, first: jax.Array) -> jax.Array:
    """``total[first : first + len(block)] += block``, in place."""
    current = jax.lax.dynamic_slice_in_dim(total, first, block.shape[0])
    return jax.lax.dynamic_update_slice_in_dim(total, current + block, first, axis=0)


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def weighted_lse_sum(
    x: jax.Array,
    w: jax.Array,
    b: jax.Array | None,
    coefficients: jax.Array,
    rows_per_block: int,
) -> jax.Array:
    """``Σ_i a_i log Σ_j exp(x_i · w_j + b_j)``, a scalar, with ``a`` = ``coefficients``.

    Rows with ``a_i = 0`` are left out entirely (a NaN there stays out of the value and
    the gradients, which autodiff of the plain expression would not give). Under
    differentiation the forward pass computes the gradients, block by block of
    ``rows_per_block`` rows, holding ``rows_per_block × C`` logits at a time.

    Args:
      x: ``[N, D]`` rows.
      w: ``[C, D]`` class vectors.
      b: optional ``[C]`` bias.
      coefficients: ``[N]`` float weight of each row's log-sum-exp.
      rows_per_block: rows per block (static).
    """
    return _weighted_lse_sum_fwd(x, w, b, coefficients, rows_per_block, gradients=False)[0]


def _weighted_lse_sum_fwd(
    x: jax.Array,
    w: jax.Array,
    b: jax.Array | None,
    coefficients: jax.Array,
    rows_per_block: int,
    gradients: bool = True,
) -> tuple[jax.Array, _WeightedResiduals | None]:
    num_rows = x.shape[0]
    rows_per_block = max(1, min(rows_per_block, num_rows))  # an empty batch: zero blocks
    dtype = accumulation_dtype(x, w)
    active = coefficients != 0
    weights = jnp.where(active, coefficients, 0).astype(dtype)

    def step(
        carry: _WeightedCarry, block: tuple[jax.Array, ...]
    ) -> tuple[_WeightedCarry, tuple[jax.Array, ...]]:
        x_block, weight_block, active_block = block
        # Inactive rows are zeroed: a NaN there would reach dw through p.T @ x.
        x_block = jnp.where(active_block[:, None], x_block, 0)
        z = class_logits(x_block, w, b, None)[0]
        top = jnp.max(z, axis=1)
        e = jnp.exp(z - top[:, None])
        total = jnp.sum(e, axis=1)
        lse = top + jnp.log(total)
        value = jnp.sum(jnp.where(active_block, weight_block * lse, 0))
        if not gradients:
            return carry, (value,)
        # With ``gradients`` the carry holds dw (and db with b), never None.
        dw, db = cast(jax.Array, carry[0]), carry[1]
        # d(a_i lse_i) / dz_ij = a_i softmax_ij, only in the active rows.
        p = jnp.where(active_block[:, None], e * (weight_block / total)[:, None], 0)
        dx_block = jnp.einsum("nk,kd->nd", p, w, preferred_element_type=dtype)
        dw = dw + jnp.einsum("nk,nd->kd", p, x_block, preferred_element_type=dtype)
        db = None if db is None else db + jnp.sum(p, axis=0)
        return (dw, db), (value, lse, dx_block)

    inputs = (x, w, b, coefficients)
    start: _WeightedCarry = (None, None)
    if gradients:
        start = (jnp.zeros(w.shape, dtype), None if b is None else jnp.zeros(b.shape, dtype))
        start = vary_like(start, *inputs)
    blocks = tuple(blocked(a, rows_per_block) for a in (x, weights, active))
    (dw, db), outputs = jax.lax.scan(step, start, blocks)
    value = jnp.sum(outputs[0])
    if not gradients:
        return value, None
    lse, dx = unblocked(outputs[1], num_rows), unblocked(outputs[2], num_rows)
    dw = cast(jax.Array, dw)  # with gradients the carry started from an array
    return value, (dx, dw, db, jnp.where(active, lse, 0), x, w, b, coefficients)


def _weighted_lse_sum_bwd(
    rows_per_block: int, saved: _WeightedResiduals, cotangent: jax.Array
) -> tuple[jax.Array | None, ...]:
    dx, dw, db, lse, x, w, b, coefficients = saved

    def scaled(gradient: jax.Array | None, primal: jax.Array | None) -> jax.Array | None:
        # ``gradient`` is None exactly when ``primal`` is (db with b).
        if primal is None or gradient is None:
            return None
        return sum_to((cotangent * gradient).astype(primal.dtype), primal)

    return scaled(dx, x), scaled(dw, w), scaled(db, b), scaled(lse, coefficients)


weighted_lse_sum.defvjp(_weighted_lse_sum_fwd, _weighted_lse_sum_bwd)

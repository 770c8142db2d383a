"""Class matrices in blocks for any per-block logit function: the kernel of the proxy losses
and of the face heads whose class scores are not one plain dot product.

``chunked_logsumexp`` serves the heads whose non-target logits are ``s_j x_i · w_j + b_j``;
SoftTriple, Sub-center ArcFace and CurricularFace score a class by a function of several
dot products (a max or a softmax over sub-centers, a per-row reweighting of hard negatives),
and ProxyAnchor sums a term per class over the batch. Both kernels here take that function
of one block of classes and never form the ``N × C`` matrix, in the forward or the backward
pass:

* ``class_logsumexp(logits, rows, classes, labels, chunk_size=...)``:
  ``r_i = log Σ_{j ≠ y_i} exp(z_ij)`` with ``z[:, block] = logits(rows, classes[block], ids)``.
* ``class_sum(terms, rows, classes, chunk_size=...)``: ``Σ_blocks terms(rows,
  classes[block], ids, new)`` for a per-block value (a scalar or any pytree).

``rows`` and ``classes`` are pytrees of float arrays; every leaf of ``classes`` has the
classes on its leading axis (``[C, ...]``: centers ``[C, D]``, sub-centers ``[C, K, D]``,
per-class scalars ``[C]``). ``ids`` are the global class ids of the block (``first_id`` plus
the local index, so a class-sharded caller passes its shard's offset), and ``new`` marks the
block's classes not counted by an earlier block. The functions must be pure functions of
their arguments (they are re-run in the backward pass): close over Python constants only,
and pass anything traced (a scale, a margin) in ``rows``.

Without ``chunk_size`` both are the plain expressions over one block of every class,
differentiated by autodiff. With it they are ``jax.custom_vjp``: the forward pass scans
class blocks (an online log-sum-exp, or a running sum) and keeps ``[N]`` floats at most; the
backward pass re-runs each block under ``jax.vjp`` with the block's cotangent (the softmax
over the other classes, or the incoming cotangent of the sum), adds the rows' gradient and
writes the block's class gradient in place. Exact gradients, at the cost of computing each
block's logits twice.

Notation: ``N`` rows, ``C`` classes, ``K`` the chunk size. Memory with ``chunk_size``: the
block's logits and whatever ``logits``/``terms`` computes from them (``N × K`` times a small
factor, ``N × K × sub-centers`` for sub-centers), plus the gradients themselves.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxloss import _numerics
from jaxloss._kernels.blocks import num_blocks
from jaxloss._kernels.chunked_logsumexp import accumulation_dtype
from jaxloss._sharding import sum_to, vary_like

Pytree = Any
BlockLogits = Callable[[Pytree, Pytree, jax.Array], jax.Array]
"""``(rows, class_block, ids) -> [N, K]`` logits of the block's classes."""
BlockTerms = Callable[[Pytree, Pytree, jax.Array, jax.Array], Pytree]
"""``(rows, class_block, ids, new) -> value`` of the block, summed over blocks."""


def _num_classes(classes: Pytree) -> int:
    return jax.tree.leaves(classes)[0].shape[0]


def _class_block(
    classes: Pytree, index: jax.Array, chunk_size: int
) -> tuple[jax.Array, jax.Array, Pytree]:
    """Block ``index``: ``(first class, new_from, leaves sliced)``, in place, no padded copy.

    The last block starts early enough to end at the last class; the classes it shares with
    the block before are marked as already counted (``new_from``).
    """
    first = jnp.minimum(index * chunk_size, _num_classes(classes) - chunk_size)
    block = jax.tree.map(lambda a: jax.lax.dynamic_slice_in_dim(a, first, chunk_size), classes)
    return first, index * chunk_size, block


def _add_block(total: jax.Array, block: jax.Array, first: jax.Array) -> jax.Array:
    """``total[first : first + len(block)] += block``, in place."""
    current = jax.lax.dynamic_slice_in_dim(total, first, block.shape[0])
    return jax.lax.dynamic_update_slice_in_dim(total, current + block, first, axis=0)


def _zeros(tree: Pytree) -> Pytree:
    return jax.tree.map(lambda a: jnp.zeros(a.shape, accumulation_dtype(a)), tree)


def _cast_like(gradients: Pytree, primals: Pytree) -> Pytree:
    return jax.tree.map(lambda g, p: sum_to(g.astype(p.dtype), p), gradients, primals)


def _others(z: jax.Array, ids: jax.Array, labels: jax.Array, new: jax.Array) -> jax.Array:
    """``z`` with each row's target class, and classes counted before, at -inf."""
    keep = (ids[None, :] != labels[:, None]) & new[None, :]
    return jnp.where(keep, z, -jnp.inf)


def class_logsumexp(
    logits: BlockLogits,
    rows: Pytree,
    classes: Pytree,
    labels: jax.Array,
    *,
    first_id: jax.Array | int = 0,
    chunk_size: int | None = None,
    class_terms: BlockTerms | None = None,
) -> Any:
    """``log Σ_{j ≠ y_i} exp(z_ij)`` per row, ``[N]``; -inf for a row with no other class.

    With ``class_terms`` it returns ``(r, Σ_blocks class_terms(rows, class_block, ids,
    new))``: a per-class quantity (a regularizer of the class rows) computed in the same
    pass, so its class gradient is written into the same buffer as the log-sum-exp's
    (two kernels would each hold a gradient as large as the classes).

    Args:
      logits: ``(rows, class_block, ids) -> [N, K]``, pure.
      rows: pytree of float arrays (the row vectors and any traced hyperparameter).
      classes: pytree of float arrays with the classes on the leading axis.
      labels: ``[N]`` int global class ids (an id no class has excludes nothing).
      first_id: global id of the first local class (a class shard's offset).
      chunk_size: classes per block (static), or None for the unchunked expression.
      class_terms: optional ``(rows, class_block, ids, new) -> value`` as in
        :func:`class_sum`.
    """
    first_id = jnp.asarray(first_id, jnp.int32)
    labels = labels.astype(jnp.int32)
    if chunk_size is None:
        num_classes = _num_classes(classes)
        ids = first_id + jnp.arange(num_classes)
        new = jnp.ones(num_classes, bool)
        z = logits(rows, classes, ids)
        result = _numerics.logsumexp(_others(z, ids, labels, new))
        if class_terms is None:
            return result
        return result, class_terms(rows, classes, ids, new)
    chunk_size = min(int(chunk_size), _num_classes(classes))
    result, terms = _lse(logits, class_terms, chunk_size, rows, classes, labels, first_id)
    return result if class_terms is None else (result, terms)


def _block_logits(
    logits: BlockLogits,
    class_terms: BlockTerms | None,
    chunk_size: int,
    classes: Pytree,
    labels: jax.Array,
    first_id: jax.Array,
    index: jax.Array,
) -> tuple[Callable[[Pytree, Pytree], tuple[jax.Array, Pytree]], jax.Array, Pytree]:
    """The block's masked logits and class terms (0 without ``class_terms``) as a function
    of ``(rows, class_block)``, its first class and its slice of ``classes``."""
    first, new_from, block = _class_block(classes, index, chunk_size)
    local = first + jnp.arange(chunk_size)
    ids, new = first_id + local, local >= new_from

    def masked(r: Pytree, c: Pytree) -> tuple[jax.Array, Pytree]:
        z = _others(logits(r, c, ids), ids, labels, new)
        terms = jnp.zeros(()) if class_terms is None else class_terms(r, c, ids, new)
        return z, terms

    return masked, first, block


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _lse(
    logits: BlockLogits,
    class_terms: BlockTerms | None,
    chunk_size: int,
    rows: Pytree,
    classes: Pytree,
    labels: jax.Array,
    first_id: jax.Array,
) -> tuple[jax.Array, Pytree]:
    return _lse_fwd(logits, class_terms, chunk_size, rows, classes, labels, first_id)[0]


def _lse_fwd(
    logits: BlockLogits,
    class_terms: BlockTerms | None,
    chunk_size: int,
    rows: Pytree,
    classes: Pytree,
    labels: jax.Array,
    first_id: jax.Array,
) -> tuple[tuple[jax.Array, Pytree], tuple]:
    num_rows = labels.shape[0]
    dtype = accumulation_dtype(*jax.tree.leaves((rows, classes)))
    floor = jnp.finfo(dtype).min  # keeps exp(-inf - -inf) out of the running update

    def block_of(index: jax.Array) -> tuple[jax.Array, Pytree]:
        masked, _, block = _block_logits(
            logits, class_terms, chunk_size, classes, labels, first_id, index
        )
        return masked(rows, block)

    def step(carry: tuple, index: jax.Array) -> tuple[tuple, None]:
        running_max, running_sum, terms = carry
        z, block_terms = block_of(index)
        z = z.astype(dtype)
        new_max = jnp.maximum(running_max, jnp.max(z, axis=1))
        running_sum = running_sum * jnp.exp(running_max - new_max) + jnp.sum(
            jnp.exp(z - new_max[:, None]), axis=1
        )
        return (new_max, running_sum, jax.tree.map(jnp.add, terms, block_terms)), None

    terms_shape = jax.eval_shape(block_of, jnp.int32(0))[1]
    start = (
        jnp.full((num_rows,), floor, dtype),
        jnp.zeros((num_rows,), dtype),
        jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), terms_shape),
    )
    start = vary_like(start, *jax.tree.leaves((rows, classes, labels)))
    (running_max, running_sum, terms), _ = jax.lax.scan(
        step, start, jnp.arange(num_blocks(_num_classes(classes), chunk_size))
    )
    result = running_max + jnp.log(running_sum)
    return (result, terms), (rows, classes, labels, first_id, result)


def _lse_bwd(
    logits: BlockLogits,
    class_terms: BlockTerms | None,
    chunk_size: int,
    saved: tuple,
    cotangents: tuple[jax.Array, Pytree],
) -> tuple[Pytree, Pytree, None, None]:
    rows, classes, labels, first_id, result = saved
    cotangent, terms_cotangent = cotangents
    axes = jax.tree.leaves((rows, classes, labels, cotangents))
    reached = jnp.isfinite(result)
    weight = jnp.where(reached, cotangent, 0)
    safe_result = jnp.where(reached, result, 0)

    def step(carry: tuple[Pytree, Pytree], index: jax.Array) -> tuple[tuple, None]:
        d_rows, d_classes = carry
        masked, first, block = _block_logits(
            logits, class_terms, chunk_size, classes, labels, first_id, index
        )
        # Both varying over every axis: a replicated input mixed with a sharded one inside
        # ``masked`` would otherwise be cast there, and its pullback psum the gradient that
        # ``_cast_like`` sums over the devices once more.
        (z, _), pullback = jax.vjp(masked, *vary_like((rows, block), *axes))
        # dr_i / dz_ij = exp(z_ij - r_i): the softmax over the other classes.
        p = jnp.exp(z - safe_result[:, None].astype(z.dtype)) * weight[:, None].astype(z.dtype)
        # Without class terms the block's terms are a constant 0 of no mapped axis, while
        # the unused output's cotangent may vary over them: pull back a matching 0.
        terms_ct = jnp.zeros(()) if class_terms is None else terms_cotangent
        d_rows_block, d_block = pullback((p, terms_ct))
        d_rows = jax.tree.map(lambda a, g: a + g.astype(a.dtype), d_rows, d_rows_block)
        d_classes = jax.tree.map(
            lambda a, g: _add_block(a, g.astype(a.dtype), first), d_classes, d_block
        )
        return (d_rows, d_classes), None

    start = vary_like((_zeros(rows), _zeros(classes)), *axes)
    (d_rows, d_classes), _ = jax.lax.scan(
        step, start, jnp.arange(num_blocks(_num_classes(classes), chunk_size))
    )
    return _cast_like(d_rows, rows), _cast_like(d_classes, classes), None, None


_lse.defvjp(_lse_fwd, _lse_bwd)


def class_sum(
    terms: BlockTerms,
    rows: Pytree,
    classes: Pytree,
    *,
    first_id: jax.Array | int = 0,
    chunk_size: int | None = None,
) -> Pytree:
    """``Σ_blocks terms(rows, class_block, ids, new)``: a per-class quantity summed.

    ``terms`` must leave out the classes where ``new`` is False (an earlier block counted
    them); it returns a pytree of float arrays of fixed shapes.

    Args:
      terms: ``(rows, class_block, ids, new) -> value``, pure.
      rows: pytree of float arrays.
      classes: pytree of float arrays with the classes on the leading axis.
      first_id: global id of the first local class (a class shard's offset).
      chunk_size: classes per block (static), or None for one block of every class.
    """
    first_id = jnp.asarray(first_id, jnp.int32)
    if chunk_size is None:
        num_classes = _num_classes(classes)
        return terms(rows, classes, first_id + jnp.arange(num_classes), jnp.ones(num_classes, bool))
    return _sum(terms, min(int(chunk_size), _num_classes(classes)), rows, classes, first_id)


def _block_terms(
    terms: BlockTerms, chunk_size: int, classes: Pytree, first_id: jax.Array, index: jax.Array
) -> tuple[Callable[[Pytree, Pytree], Pytree], jax.Array, Pytree]:
    first, new_from, block = _class_block(classes, index, chunk_size)
    local = first + jnp.arange(chunk_size)

    def of_block(r: Pytree, c: Pytree) -> Pytree:
        return terms(r, c, first_id + local, local >= new_from)

    return of_block, first, block


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _sum(
    terms: BlockTerms, chunk_size: int, rows: Pytree, classes: Pytree, first_id: jax.Array
) -> Pytree:
    return _sum_fwd(terms, chunk_size, rows, classes, first_id)[0]


def _sum_fwd(
    terms: BlockTerms, chunk_size: int, rows: Pytree, classes: Pytree, first_id: jax.Array
) -> tuple[Pytree, tuple]:
    def step(total: Pytree, index: jax.Array) -> tuple[Pytree, None]:
        of_block, _, block = _block_terms(terms, chunk_size, classes, first_id, index)
        return jax.tree.map(jnp.add, total, of_block(rows, block)), None

    shapes = jax.eval_shape(
        lambda: _block_terms(terms, chunk_size, classes, first_id, jnp.int32(0))[0](
            rows, jax.tree.map(lambda a: a[:chunk_size], classes)
        )
    )
    start = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    start = vary_like(start, *jax.tree.leaves((rows, classes)))
    total, _ = jax.lax.scan(step, start, jnp.arange(num_blocks(_num_classes(classes), chunk_size)))
    return total, (rows, classes, first_id)


def _sum_bwd(
    terms: BlockTerms, chunk_size: int, saved: tuple, cotangent: Pytree
) -> tuple[Pytree, Pytree, None]:
    rows, classes, first_id = saved
    axes = jax.tree.leaves((rows, classes, cotangent))

    def step(carry: tuple[Pytree, Pytree], index: jax.Array) -> tuple[tuple, None]:
        d_rows, d_classes = carry
        of_block, first, block = _block_terms(terms, chunk_size, classes, first_id, index)
        _, pullback = jax.vjp(of_block, *vary_like((rows, block), *axes))  # as in _lse_bwd
        d_rows_block, d_block = pullback(cotangent)
        d_rows = jax.tree.map(lambda a, g: a + g.astype(a.dtype), d_rows, d_rows_block)
        d_classes = jax.tree.map(
            lambda a, g: _add_block(a, g.astype(a.dtype), first), d_classes, d_block
        )
        return (d_rows, d_classes), None

    start = vary_like((_zeros(rows), _zeros(classes)), *jax.tree.leaves((rows, classes, cotangent)))
    (d_rows, d_classes), _ = jax.lax.scan(
        step, start, jnp.arange(num_blocks(_num_classes(classes), chunk_size))
    )
    return _cast_like(d_rows, rows), _cast_like(d_classes, classes), None


_sum.defvjp(_sum_fwd, _sum_bwd)

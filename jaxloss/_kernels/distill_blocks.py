r"""Distillation between two linear heads in blocks of tokens: the kernel of ``linear_distill``.

A block of ``K`` tokens forms both heads' tempered logits over the whole (local) vocabulary,
``z^s = (h^s W_s^T + b_s) / T`` and ``z^t`` (``[K, V]``), their softmaxes :math:`q` and
:math:`p`, the per-token divergence and its gradient with respect to both logits in closed
form, then the gradients of the hidden states, weights and biases from those: two matmuls
per head for the logits, two per head whose gradients are asked for. Nothing ``[N, V]``
exists and no autodiff tape is kept.

Closed forms, per token, with :math:`t^p_v = p_v (\log p_v - \log m^p_v)`,
:math:`t^q_v = q_v (\log q_v - \log m^q_v)` (0 where the probability is 0) and their sums
:math:`K_p = \mathrm{KL}(p \| m^p)`, :math:`K_q = \mathrm{KL}(q \| m^q)`:

* ``0 < β < 1`` (GKD's JSD): :math:`m^p = m^q = m = \beta p + (1 - \beta) q`,
  :math:`\ell = \beta K_p + (1 - \beta) K_q`, :math:`\partial\ell/\partial z^s = (1 - \beta)
  (t^q - q K_q)`, :math:`\partial\ell/\partial z^t = \beta (t^p - p K_p)` (``ℓ = β Σp log p +
  (1−β) Σq log q − Σm log m``, whose derivative in :math:`q_v` is :math:`(1-\beta)(\log q_v -
  \log m_v)`, through the softmax), and :math:`\partial\ell/\partial\beta = K_p - K_q`.
* ``β = 0`` (forward KL, as TRL defines the endpoint): :math:`m^p = q`, :math:`\ell = K_p`,
  :math:`\partial\ell/\partial z^s = q - p`, :math:`\partial\ell/\partial z^t = t^p - p K_p`.
* ``β = 1`` (reverse KL): :math:`m^q = p`, :math:`\ell = K_q`, :math:`\partial\ell/\partial z^s
  = t^q - q K_q`, :math:`\partial\ell/\partial z^t = p - q`.
* The temperature: :math:`\partial\ell/\partial(1/T) = \sum_v (g^s_v z^s_v + g^t_v z^t_v)\,T`
  for :math:`g = \partial\ell/\partial z`.

Two entry points share the block:

* ``weighted_divergence(...)``: :math:`\sum_n c_n \ell_n` for token weights :math:`c` that
  get no gradient (the mask, divided by the count for a mean). The gradients are formed in
  the forward pass and saved; the backward pass scales them by the scalar cotangent. Which
  gradients are formed follows what is differentiated (``symbolic_zeros``): a teacher under
  ``stop_gradient`` costs its logits' matmul only.
* ``token_divergence(...)``: :math:`\ell_n` per token (``reduction="none"``): the backward
  pass re-forms each block with the cotangents as the weights (two more matmuls per head).

With ``class_axis_name`` the vocabulary is split over devices: the softmax's maximum and
sum and every sum over the vocabulary are combined over the axis (``[K]`` collectives), and
the hidden states' gradients summed over it (``sum_to``).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxloss._kernels.blocks import blocked, unblocked
from jaxloss._kernels.chunked_logsumexp import accumulation_dtype, class_logits
from jaxloss._sharding import AxisName, global_sum, sum_to, vary_like

Head = tuple[jax.Array, jax.Array, jax.Array | None]
"""``(hidden [N, D], weight [V, D], bias [V] or None)``."""


class Options(NamedTuple):
    """Static choices: tokens per block, the endpoint (0, 1 or None for a traced β strictly
    handled by ``where``), and the vocabulary's mapped axis."""

    chunk_size: int
    endpoint: int | None
    class_axis_name: AxisName


def _tempered_logits(
    h: jax.Array, w: jax.Array, b: jax.Array | None, inverse_t: jax.Array
) -> jax.Array:
    """``(h @ w.T + b) / T``, ``[N, V]``, with the class-logit matmul rule of
    ``chunked_logsumexp.class_logits`` (default precision, accumulated in float32 or wider)."""
    z = class_logits(h, w, b, None)[0]
    return z * inverse_t.astype(z.dtype)


def _softmax(z: jax.Array, axis: AxisName) -> tuple[jax.Array, jax.Array]:
    """Log-softmax and softmax over the last axis (and the vocabulary's devices).

    ``_sharding.logsumexp_over_shards`` combines finished per-device log-sum-exps; here the
    shifted exponentials are also the probabilities, so the shift is shared first and each
    entry is exponentiated once.
    """
    top = jnp.maximum(jnp.max(z, axis=-1, keepdims=True), jnp.finfo(z.dtype).min)
    if axis is not None:
        top = jax.lax.pmax(top, axis)
    e = jnp.exp(z - top)
    total = global_sum(jnp.sum(e, axis=-1, keepdims=True), axis)
    return z - top - jnp.log(total), e * (1 / total)


def _weighted_log_ratio(p: jax.Array, log_p: jax.Array, log_r: jax.Array) -> jax.Array:
    """``p (log p - log r)``, 0 where ``p`` is 0 (NaN stays NaN), except +inf where ``p``'s
    mass underflowed (``log p`` finite) and ``r`` rules the entry out, as where it did not."""
    underflow_against_zero = (log_r == -jnp.inf) & (log_p > -jnp.inf)
    return jnp.where(p == 0, jnp.where(underflow_against_zero, jnp.inf, 0), p * (log_p - log_r))


def _block(
    z_s: jax.Array, z_t: jax.Array, beta: jax.Array, options: Options
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Per-token divergence ``[K]``, its gradients w.r.t. ``z_s`` and ``z_t`` (``[K, V]``)
    and w.r.t. ``beta`` (``[K]``), as the module docstring writes them."""
    axis = options.class_axis_name

    def vocab_sum(a: jax.Array) -> jax.Array:
        return global_sum(jnp.sum(a, axis=-1, keepdims=True), axis)

    log_q, q = _softmax(z_s, axis)
    log_p, p = _softmax(z_t, axis)
    zero = jnp.zeros(z_s.shape[:1], z_s.dtype)
    if options.endpoint == 0:
        t_p = _weighted_log_ratio(p, log_p, log_q)
        k_p = vocab_sum(t_p)
        return k_p[:, 0], q - p, t_p - p * k_p, zero
    if options.endpoint == 1:
        t_q = _weighted_log_ratio(q, log_q, log_p)
        k_q = vocab_sum(t_q)
        return k_q[:, 0], t_q - q * k_q, p - q, zero
    at_0, at_1 = beta == 0, beta == 1
    safe_beta = jnp.where(at_0 | at_1, 0.5, beta)
    mixture = safe_beta * p + (1 - safe_beta) * q
    # Where the mixture underflows so do p and q: those entries weigh 0 below.
    log_m = jnp.log(jnp.where(mixture == 0, 1, mixture))
    t_p = _weighted_log_ratio(p, log_p, jnp.where(at_0, log_q, log_m))
    t_q = _weighted_log_ratio(q, log_q, jnp.where(at_1, log_p, log_m))
    k_p, k_q = vocab_sum(t_p), vocab_sum(t_q)
    w_p = jnp.where(at_0, 1, jnp.where(at_1, 0, beta))
    w_q = jnp.where(at_1, 1, jnp.where(at_0, 0, 1 - beta))
    loss = w_p * k_p + w_q * k_q
    g_s = w_q * (t_q - q * k_q) + jnp.where(at_0, q - p, 0)
    g_t = w_p * (t_p - p * k_p) + jnp.where(at_1, p - q, 0)
    d_beta = jnp.where(at_0 | at_1, 0, k_p - k_q)[:, 0]
    return loss[:, 0], g_s, g_t, d_beta


ROWS_PER_UPDATE = 8192
"""Vocabulary rows of a weight gradient updated by one matmul: its product is a temporary."""


def _add_outer(total: jax.Array, g: jax.Array, h: jax.Array) -> jax.Array:
    """``total + g.T @ h`` (``[V, D]``) in slices of the vocabulary updated in place, so
    the product never needs a second ``[V, D]`` buffer."""
    for first in range(0, total.shape[0], ROWS_PER_UPDATE):
        rows = slice(first, min(first + ROWS_PER_UPDATE, total.shape[0]))
        total = total.at[rows].add(jnp.einsum("nk,nd->kd", g[:, rows], h))
    return total


Want = tuple[tuple[bool, bool, bool], tuple[bool, bool, bool], tuple[bool, bool]]
"""Which gradients to form: ``((h_s, w_s, b_s), (h_t, w_t, b_t), (inverse_t, beta))``."""

NOTHING: Want = ((False,) * 3, (False,) * 3, (False,) * 2)


def _blocks(
    student: Head,
    teacher: Head,
    inverse_t: jax.Array,
    beta: jax.Array,
    weights: jax.Array,
    options: Options,
    want: Want,
) -> tuple[jax.Array, Any]:
    """Per-token divergences ``[N]`` and the gradients ``want`` asks for of
    ``Σ_n weights_n ℓ_n`` (None for the others), in one scan over blocks of tokens."""
    (h_s, w_s, b_s), (h_t, w_t, b_t) = student, teacher
    n, k = h_s.shape[0], options.chunk_size
    (want_hs, want_ws, want_bs), (want_ht, want_wt, want_bt), (want_t, want_beta) = want
    dtype = accumulation_dtype(h_s, w_s, h_t, w_t)
    axes = jax.tree.leaves((student, teacher, inverse_t, beta, weights))

    def zeros_if(flag: bool, like: jax.Array | None) -> jax.Array | None:
        return jnp.zeros(like.shape, dtype) if flag and like is not None else None

    start = vary_like(
        (
            zeros_if(want_ws, w_s),
            zeros_if(want_bs, b_s),
            zeros_if(want_wt, w_t),
            zeros_if(want_bt, b_t),
        ),
        *axes,
    )

    def step(carry: tuple, block: tuple) -> tuple[tuple, tuple]:
        hs, ht, c = block
        z_s = _tempered_logits(hs, w_s, b_s, inverse_t)
        z_t = _tempered_logits(ht, w_t, b_t, inverse_t)
        loss, g_s, g_t, d_beta = _block(z_s, z_t, beta, options)
        c = c.astype(dtype)[:, None]
        d_inverse_t = None
        if want_t:  # Σ_v g z / (1/T), weighted
            rows = jnp.sum(g_s * z_s + g_t * z_t, axis=-1, keepdims=True)
            d_inverse_t = jnp.sum(c * global_sum(rows, options.class_axis_name)) / inverse_t
        # d/d(h w^T + b) = (dℓ/dz) / T, weighted per token.
        scale = c * inverse_t.astype(dtype)
        g_s, g_t = g_s * scale, g_t * scale
        dw_s, db_s, dw_t, db_t = carry
        outputs = []
        for flag, g, w in ((want_hs, g_s, w_s), (want_ht, g_t, w_t)):
            outputs.append(jnp.einsum("nk,kd->nd", g, w.astype(dtype)) if flag else None)
        if dw_s is not None:
            dw_s = _add_outer(dw_s, g_s, hs.astype(dtype))
        if dw_t is not None:
            dw_t = _add_outer(dw_t, g_t, ht.astype(dtype))
        if db_s is not None:
            db_s = db_s + jnp.sum(g_s, axis=0)
        if db_t is not None:
            db_t = db_t + jnp.sum(g_t, axis=0)
        beta_sum = jnp.sum(c[:, 0] * d_beta) if want_beta else None
        return (dw_s, db_s, dw_t, db_t), (loss, *outputs, d_inverse_t, beta_sum)

    blocks = (blocked(h_s, k), blocked(h_t, k), blocked(weights, k))
    (dw_s, db_s, dw_t, db_t), (loss, dh_s, dh_t, d_inverse_t, d_beta) = jax.lax.scan(
        step, start, blocks
    )
    dh_s = None if dh_s is None else unblocked(dh_s, n)
    dh_t = None if dh_t is None else unblocked(dh_t, n)
    d_inverse_t = None if d_inverse_t is None else jnp.sum(d_inverse_t)
    d_beta = None if d_beta is None else jnp.sum(d_beta)
    grads = ((dh_s, dw_s, db_s), (dh_t, dw_t, db_t), (d_inverse_t, d_beta))
    return unblocked(loss, n), grads


def _divergences(options: Options, student: Head, teacher: Head, rows: tuple) -> jax.Array:
    """The per-token divergences alone (no gradient formed)."""
    weights = jnp.zeros(student[0].shape[:1], accumulation_dtype(student[0]))
    return _blocks(student, teacher, rows[0], rows[1], weights, options, NOTHING)[0]


def _values(tree: Any) -> Any:
    """The values of ``symbolic_zeros``' wrapped primals."""
    return jax.tree.map(lambda a: a.value, tree, is_leaf=lambda a: hasattr(a, "perturbed"))


def _perturbed(tree: Any) -> Any:
    return jax.tree.map(lambda a: a.perturbed, tree, is_leaf=lambda a: hasattr(a, "perturbed"))


def _want(student: Any, teacher: Any, rows: Any) -> Want:
    """Which primals are differentiated; False for an absent bias."""

    def flags(group: Any, size: int) -> tuple:
        return tuple(False if a is None else a.perturbed for a in group)[:size]

    return flags(student, 3), flags(teacher, 3), flags(rows, 2)


def _scaled(grads: Any, primals: Any, cotangent: jax.Array | None) -> Any:
    """Each formed gradient times ``cotangent`` (if any), cast like and summed to its primal."""

    def one(g: jax.Array | None, p: jax.Array | None) -> jax.Array | None:
        if g is None or p is None:
            return None
        if cotangent is not None:
            g = g * cotangent.astype(g.dtype)
        return sum_to(g.astype(p.dtype), p)

    return jax.tree.map(one, grads, primals, is_leaf=lambda a: a is None)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def weighted_divergence(
    options: Options,
    student: Head,
    teacher: Head,
    rows: tuple[jax.Array, jax.Array],
    weights: jax.Array,
) -> jax.Array:
    """``Σ_n weights_n ℓ_n`` over this device's tokens, float32 (float64 for float64).

    ``rows`` is ``(1 / T, β)``; ``weights`` ``[N]`` get no gradient.
    """
    loss = _divergences(options, student, teacher, rows)
    return jnp.sum(weights.astype(loss.dtype) * loss)


def _weighted_fwd(
    options: Options, student: Any, teacher: Any, rows: Any, weights: Any
) -> tuple[jax.Array, tuple]:
    want = _want(student, teacher, rows)
    student, teacher, rows, weights = _values((student, teacher, rows, weights))
    loss, grads = _blocks(student, teacher, rows[0], rows[1], weights, options, want)
    return jnp.sum(weights.astype(loss.dtype) * loss), (grads, (student, teacher, rows))


def _weighted_bwd(options: Options, saved: tuple, cotangent: jax.Array) -> tuple:
    del options
    grads, primals = saved
    if isinstance(cotangent, jax.custom_derivatives.SymbolicZero):
        return jax.tree.map(lambda _: None, (*primals, None))
    return (*_scaled(grads, primals, cotangent), None)


weighted_divergence.defvjp(_weighted_fwd, _weighted_bwd, symbolic_zeros=True)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def token_divergence(
    options: Options, student: Head, teacher: Head, rows: tuple[jax.Array, jax.Array]
) -> jax.Array:
    """``ℓ_n`` per token ``[N]``; ``rows`` is ``(1 / T, β)``."""
    return _divergences(options, student, teacher, rows)


def _token_fwd(options: Options, student: Any, teacher: Any, rows: Any) -> tuple[jax.Array, tuple]:
    want = _want(student, teacher, rows)
    student, teacher, rows = _values((student, teacher, rows))
    loss = _divergences(options, student, teacher, rows)
    # The flags travel as which primals are kept: None for what needs no gradient.
    kept = jax.tree.map(
        lambda a, flag: a if flag else None,
        (student, teacher, rows),
        want,
        is_leaf=lambda a: a is None,
    )
    return loss, ((student, teacher, rows), kept)


def _token_bwd(options: Options, saved: tuple, cotangent: jax.Array) -> tuple:
    primals, kept = saved
    want = jax.tree.map(lambda a: a is not None, kept, is_leaf=lambda a: a is None)
    student, teacher, rows = primals
    if isinstance(cotangent, jax.custom_derivatives.SymbolicZero):
        cotangent = jnp.zeros(cotangent.shape, cotangent.dtype)
    _, grads = _blocks(student, teacher, rows[0], rows[1], cotangent, options, want)
    return _scaled(grads, kept, None)


token_divergence.defvjp(_token_fwd, _token_bwd, symbolic_zeros=True)

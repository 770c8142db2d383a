r"""The KL divergence between two softmaxes, row by row, with no intermediate array.

Notation: logits ``x`` (the first distribution, :math:`p`) and ``y`` (the second,
:math:`q`) ``[..., V]``, an inverse temperature :math:`\tau` (scalar), :math:`a = \tau x`,
:math:`b = \tau y`, :math:`p = \mathrm{softmax}(a)`, :math:`q = \mathrm{softmax}(b)` over the
last axis. Per row: :math:`\mathrm{KL}(p \| q) = \sum_v p_v (\log p_v - \log q_v)` with
:math:`0 \log 0 = 0`.

The value is five sums over the rows: the maxima of :math:`a` and :math:`b`, then
:math:`Z_a = \sum_v e^{a_v - \max a}`, :math:`Z_b`, and
:math:`W = \sum_v e^{a_v - \max a} ((a_v - \max a) - (b_v - \max b))`, and
:math:`\mathrm{KL} = W / Z_a - \log Z_a + \log Z_b` (the shifted logits exact near the
maxima, as ``log_softmax`` forms its result; within a few 1e-7 of float64, as before). On
XLA:CPU each sum is one YNNPACK kernel reading the logits, whose ``exp`` is several times
faster than XLA's own: that needs every operand a sum broadcasts (a row's shift, τ) to be
its own, so each sum gets copies behind ``lax.optimization_barrier`` (:func:`_separate`).
An entry that ``p`` rules out (:math:`a_v = -\infty`) makes :math:`W` hold
:math:`0 \cdot \infty = \mathrm{NaN}`; its true term is 0. As in ``soft_cross_entropy``, the
sums are formed again with the exception only when a row came out NaN (a ``lax.cond`` over
the whole batch; ``_numerics.row_sums``, as YNNPACK takes no select). Where ``q`` rules out
an entry that ``p`` keeps, the divergence is +inf.

Derivatives (``jax.custom_jvp``, so forward mode and higher orders work):
:math:`\partial/\partial b_v = q_v - p_v` and :math:`\partial/\partial a_v = p_v(\log p_v -
\log q_v - \mathrm{KL})` (0 where :math:`p_v = 0`), times :math:`\tau` for the logits and
summed against them for :math:`\tau`. They are formed from the inputs passed through
``lax.optimization_barrier`` and the rows' statistics, so XLA neither shares the
exponentials of the value with the gradient nor writes them out: the gradient reads the
inputs once more and writes itself. Autodiff of the plain expression keeps both
log-softmaxes (two arrays of the inputs' size). Measured against it (paired, float32, value
and gradient): at ``[512, 32768]`` XLA's temporary memory 128 → 4 MiB (the NaN branch's
partial sums) for the student's gradient, 256 → 4 MiB for both; 1.5x faster for the
student's, 1.7x for both; at ``[4096, 1000]`` 1.6x and 2.8x.

Half-precision logits are read as they are and computed in float32; the gradients come back
in their dtype.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jaxloss import _numerics
from jaxloss._kernels.chunked_logsumexp import accumulation_dtype


class _Stats(NamedTuple):
    """Each row's shifts (maxima, 0 where not finite) and log-normalisers, ``[..., 1]``."""

    shift_p: jax.Array
    shift_q: jax.Array
    log_total_p: jax.Array
    log_total_q: jax.Array


def _scaled(logits: jax.Array, tau: jax.Array) -> jax.Array:
    return logits.astype(tau.dtype) * tau


def _value(first: jax.Array, second: jax.Array, tau: jax.Array) -> tuple[jax.Array, _Stats]:
    """KL per row and the rows' statistics: five sums over the rows, each its own YNNPACK
    kernel on XLA:CPU (two maxima, two normalisers, the weighted sum)."""
    shift_p, shift_q = (
        _numerics.exp_shift(jnp.max(_scaled(x, tau), axis=-1, keepdims=True, initial=-jnp.inf))
        for x in (first, second)
    )
    total_p, total_q = (
        _numerics.fenced(jnp.sum(jnp.exp(_scaled(x, t) - shift), axis=-1))
        for x, (t, shift) in ((first, _separate(tau, shift_p)), (second, _separate(tau, shift_q)))
    )
    t, s_p, s_q = _separate(tau, shift_p, shift_q)

    def kl(guarded: bool) -> jax.Array:
        a, b = _scaled(first, t) - s_p, _scaled(second, t) - s_q
        terms = jnp.exp(a) * (a - b)
        if not guarded:
            weighted, normalizer = jnp.sum(terms, axis=-1), total_p
        else:  # 0 log 0 = 0 where p rules an entry out. YNNPACK takes no select: the
            # terms go to XLA's own reduction (two sums), not to an array first.
            guarded_terms = jnp.where(a == -jnp.inf, 0, terms)
            weighted, normalizer = _numerics.row_sums(guarded_terms, jnp.exp(a))
        return weighted / normalizer - jnp.log(normalizer) + jnp.log(total_q)

    plain = kl(False)
    value = jax.lax.cond(jnp.any(jnp.isnan(plain)), lambda: kl(True), lambda: plain)
    stats = _Stats(shift_p, shift_q, jnp.log(total_p)[..., None], jnp.log(total_q)[..., None])
    return value, stats


def _separate(*values: jax.Array) -> tuple[jax.Array, ...]:
    """``values`` as new values to XLA (``lax.optimization_barrier``).

    XLA:CPU sums a row's terms in one YNNPACK kernel when every operand it broadcasts (a
    row's shift, the temperature) is its own: one broadcast shared by two sums (XLA's CSE
    merges them) is written out as an array of the rows' size for both, and so is whatever
    they share of the terms. Each sum and the gradient get their own copies.
    """
    return tuple(jax.lax.optimization_barrier(values))


@jax.custom_jvp
def kl_rows(first: jax.Array, second: jax.Array, inverse_t: jax.Array) -> jax.Array:
    """``KL(softmax(τ first) ‖ softmax(τ second))`` per row (the module docstring), float32
    or wider; ``inverse_t`` is τ, a scalar."""
    return _value(first, second, _accumulated(first, second, inverse_t))[0]


def _accumulated(first: jax.Array, second: jax.Array, inverse_t: jax.Array) -> jax.Array:
    return jnp.asarray(inverse_t, accumulation_dtype(first, second))


def _kl_rows_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    first, second, inverse_t = primals
    d_first, d_second, d_inverse_t = tangents
    tau = _accumulated(first, second, inverse_t)
    value, stats = _value(first, second, tau)
    # The partials from the inputs (and statistics) behind a barrier: recomputed in the
    # gradient's own loop, not shared with (and written out for) the value's sums.
    x, y, tau, stats = jax.lax.optimization_barrier((first, second, tau, stats))
    log_p = (_scaled(x, tau) - stats.shift_p) - stats.log_total_p
    log_q = (_scaled(y, tau) - stats.shift_q) - stats.log_total_q
    p = jnp.exp(log_p)

    def wanted(*t: object) -> bool:
        return any(type(d) is not SymbolicZero for d in t)

    # d KL / d b = q - p; d KL / d a = p (log p - log q - KL), 0 where p is 0.
    slope_b = jnp.exp(log_q) - p if wanted(d_second, d_inverse_t) else jnp.zeros(())
    slope_a = jnp.zeros(())
    if wanted(d_first, d_inverse_t):
        slope_a = jnp.where(log_p == -jnp.inf, 0, p * (log_p - log_q - value[..., None]))
    tangent = jnp.zeros_like(value)
    for slope, d in ((slope_a, d_first), (slope_b, d_second)):
        if wanted(d):
            tangent = tangent + jnp.sum(slope * (tau * d.astype(tau.dtype)), axis=-1)
    if wanted(d_inverse_t):
        per_logit = slope_a * x.astype(tau.dtype) + slope_b * y.astype(tau.dtype)
        tangent = tangent + jnp.sum(per_logit, axis=-1) * d_inverse_t.astype(tau.dtype)
    return value, tangent


kl_rows.defjvp(_kl_rows_jvp, symbolic_zeros=True)

r"""The KL divergence, GKD's generalized JSD, DistiLLM's skew KL and the total variation
distance between two softmaxes, row by row, with no intermediate array.

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
an entry that ``p`` keeps, the divergence is +inf, also where ``p``'s mass there underflows
float32 (:math:`e^{a_v} = 0` with :math:`a_v` finite: the same NaN, resolved to +inf by the
same branch).

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

``jsd_rows`` is GKD's :math:`\beta\,\mathrm{KL}(p \| m) + (1 - \beta)\,\mathrm{KL}(q \| m)`,
:math:`m = \beta p + (1 - \beta) q` (``p`` the teacher's, ``q`` the student's), the same way:
the four sums of the normalisers, then :math:`K_q = \sum_v q_v (\log q_v - \log m_v)` and
:math:`K_p` each its own YNNPACK kernel (a ``log`` per entry), the NaN of an entry either
distribution rules out caught by the same ``lax.cond``; the gradients in closed form
(``_kernels.distill_blocks``): :math:`(1 - \beta)(t^q - q K_q)` for the student,
:math:`\beta (t^p - p K_p)` for the teacher, :math:`K_p - K_q` for β. Measured against
autodiff of the log-space expression (paired, float32): at ``[512, 32768]`` the student's
value and gradient 1.8x faster, temporary memory 256 → 2 MiB; both gradients 1.7x, 320 → 68
MiB; at ``[4096, 1000]`` 2.0x and 2.1x.

``skew_rows`` is DistiLLM's skew KL, :math:`\mathrm{KL}(p \| w p + (1 - w) q)`, the same
way: the normalisers, then :math:`K = \sum_v t_v`, :math:`t = p (\log p - \log m)`, and
for the gradients :math:`S = \sum_v p_v r_v`, :math:`r = p / m`; :math:`\partial/\partial
a = t - p (K + w (r - S))` and :math:`\partial/\partial b = q (1 - w S - (1 - w) r)`
(the softmax's Jacobian applied to :math:`\partial K/\partial p = \log p + 1 - \log m -
w r` and :math:`\partial K/\partial q = -(1 - w) r`), :math:`-\sum_v r_v (p_v - q_v)`
for :math:`w`. Since :math:`m \ge w p`, :math:`\log m \ge \log w + \log p` and
:math:`r \le 1/w` bound both where XLA:CPU flushes a subnormal :math:`w p` to 0. Measured
against autodiff of the log-space expression (paired, float32): at ``[512, 32768]`` the
student's value and gradient 1.3-1.5x faster, temporary memory 192 → 2 MiB; both
gradients 1.3-1.4x, 256 → 130 MiB; at ``[4096, 1000]`` 1.7-2x and 1.4-1.7x.

``tvd_rows`` is the total variation distance :math:`\tfrac12 \sum_v |p_v - q_v|`: the
normalisers and one sum (an entry either distribution rules out is an exact 0 of it, so no
NaN branch); with :math:`s = \mathrm{sign}(p - q)` and :math:`A = \sum_v q_v s_v`, the
gradients :math:`\tfrac12 q (A - s)` and :math:`\tfrac12 p (s - A - 2\,\mathrm{TVD})`
(:math:`\sum_v p_v s_v = A + \sum_v |p_v - q_v|`).

Half-precision logits are read as they are and computed in float32; the gradients come back
in their dtype.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


def _log_probs(
    first: jax.Array, second: jax.Array, tau: jax.Array, stats: _Stats
) -> tuple[jax.Array, jax.Array]:
    """``log p`` and ``log q`` per entry from the logits and the rows' statistics (``_p`` the
    first distribution's): the shifted logits less their log-normaliser."""
    log_p = (_scaled(first, tau) - stats.shift_p) - stats.log_total_p
    log_q = (_scaled(second, tau) - stats.shift_q) - stats.log_total_q
    return log_p, log_q


def _normalizer(logits: jax.Array, tau: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A row's shift (its maximum, 0 where not finite) ``[..., 1]`` and ``Σ exp(τx -
    shift)`` ``[...]``: two sums, each one YNNPACK kernel on XLA:CPU."""
    top = jnp.max(_scaled(logits, tau), axis=-1, keepdims=True, initial=-jnp.inf)
    shift = _numerics.exp_shift(top)
    t, s = _separate(tau, shift)
    return shift, _numerics.fenced(jnp.sum(jnp.exp(_scaled(logits, t) - s), axis=-1))


def _value(first: jax.Array, second: jax.Array, tau: jax.Array) -> tuple[jax.Array, _Stats]:
    """KL per row and the rows' statistics: five sums over the rows, each its own YNNPACK
    kernel on XLA:CPU (two maxima, two normalisers, the weighted sum)."""
    (shift_p, total_p), (shift_q, total_q) = (_normalizer(x, tau) for x in (first, second))
    t, s_p, s_q = _separate(tau, shift_p, shift_q)

    def kl(guarded: bool) -> jax.Array:
        a, b = _scaled(first, t) - s_p, _scaled(second, t) - s_q
        terms = jnp.exp(a) * (a - b)
        if not guarded:
            weighted, normalizer = jnp.sum(terms, axis=-1), total_p
        else:  # 0 log 0 = 0 where p rules an entry out; +inf where only q does (p's
            # mass there may underflow to 0: 0 · inf). YNNPACK takes no select: the
            # terms go to XLA's own reduction (two sums), not to an array first.
            only_q = (b == -jnp.inf) & (a > -jnp.inf)
            guarded_terms = jnp.where(a == -jnp.inf, 0, jnp.where(only_q, jnp.inf, terms))
            weighted, normalizer = _numerics.row_sums(guarded_terms, jnp.exp(a))
        return weighted / normalizer - jnp.log(normalizer) + jnp.log(total_q)

    plain = kl(False)
    value = jax.lax.cond(jnp.any(jnp.isnan(plain)), lambda: kl(True), lambda: plain)
    stats = _Stats(shift_p, shift_q, jnp.log(total_p)[..., None], jnp.log(total_q)[..., None])
    return value, stats


def _separate(*values: Any) -> tuple[Any, ...]:
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
    log_p, log_q = _log_probs(x, y, tau, stats)
    p = jnp.exp(log_p)

    # d KL / d b = q - p; d KL / d a = p (log p - log q - KL), 0 where p is 0.
    slope_b = jnp.exp(log_q) - p if _wanted(d_second, d_inverse_t) else jnp.zeros(())
    slope_a = jnp.zeros(())
    if _wanted(d_first, d_inverse_t):
        slope_a = jnp.where(log_p == -jnp.inf, 0, p * (log_p - log_q - value[..., None]))
    tangent = _logit_tangent((slope_a, slope_b), (x, y), tau, tangents)
    return value, tangent


def _wanted(*tangents: object) -> bool:
    return any(type(d) is not SymbolicZero for d in tangents)


def _logit_tangent(
    slopes: tuple[jax.Array, jax.Array],
    logits: tuple[jax.Array, jax.Array],
    tau: jax.Array,
    tangents: tuple,
) -> jax.Array:
    """``Σ_v`` of each slope (with respect to the tempered logits ``τ x``) times the
    tangent of its tempered logits: ``τ dx`` for each logit, ``x dτ`` for the temperature
    (``tangents`` = the logits', then τ's; symbolic zeros skipped)."""
    *d_logits, d_tau = tangents[:3]
    tangent = jnp.zeros(logits[0].shape[:-1], tau.dtype)
    for slope, d in zip(slopes, d_logits, strict=True):
        if _wanted(d):
            tangent = tangent + jnp.sum(slope * (tau * d.astype(tau.dtype)), axis=-1)
    if _wanted(d_tau):
        # A −inf logit (a ruled-out entry) is −inf at every temperature: it adds nothing,
        # where its slope 0 times x would be NaN.
        per_logit = sum(
            s * jnp.where(x == -jnp.inf, 0, x).astype(tau.dtype)
            for s, x in zip(slopes, logits, strict=True)
        )
        tangent = tangent + jnp.sum(per_logit, axis=-1) * d_tau.astype(tau.dtype)
    return tangent


kl_rows.defjvp(_kl_rows_jvp, symbolic_zeros=True)


def _jsd_terms(
    student: jax.Array,
    teacher: jax.Array,
    tau: jax.Array,
    beta: jax.Array,
    stats: _Stats,
    guarded: bool,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Per entry: ``q``, ``p``, ``t^q = q (log q - log m)``, ``t^p = p (log p - log m)``
    with ``m = β p + (1 - β) q`` (``stats``: ``_p`` the teacher's, ``_q`` the student's).

    Plain, an entry that either distribution rules out gives NaN (``0 · (-inf)``), which
    the value's ``lax.cond`` catches; ``guarded``, it gives 0 there, as ``0 log 0``.
    """
    log_p, log_q = _log_probs(teacher, student, tau, stats)
    q, p = jnp.exp(log_q), jnp.exp(log_p)
    mixture = beta * p + (1 - beta) * q
    if not guarded:
        log_m = jnp.log(mixture)
        return q, p, q * (log_q - log_m), p * (log_p - log_m)
    # Where the mixture is 0, so are p and q.
    log_m = jnp.log(jnp.where(mixture == 0, 1, mixture))
    t_q = jnp.where(q == 0, 0, q * (log_q - log_m))
    t_p = jnp.where(p == 0, 0, p * (log_p - log_m))
    return q, p, t_q, t_p


def _jsd_value(
    student: jax.Array, teacher: jax.Array, tau: jax.Array, beta: jax.Array
) -> tuple[jax.Array, _Stats, jax.Array, jax.Array]:
    """JSD per row, the rows' statistics and ``K_q = KL(q ‖ m)``, ``K_p = KL(p ‖ m)``
    ``[..., 1]``: six sums over the rows, each its own YNNPACK kernel on XLA:CPU."""
    (shift_p, total_p), (shift_q, total_q) = (_normalizer(x, tau) for x in (teacher, student))
    stats = _Stats(shift_p, shift_q, jnp.log(total_p)[..., None], jnp.log(total_q)[..., None])

    def sums(guarded: bool) -> tuple[jax.Array, jax.Array]:
        if guarded:  # XLA's own reduction, which takes the selects
            _, _, t_q, t_p = _jsd_terms(student, teacher, tau, beta, stats, True)
            return _numerics.row_sums(t_q, t_p)  # type: ignore[return-value]
        # Each sum with its own copies of the statistics (the tuples differ, so XLA does
        # not merge the two barriers).
        t1, b1, s1 = _separate(tau, beta, stats)
        s2, b2, t2 = _separate(stats, beta, tau)
        t_q = _jsd_terms(student, teacher, t1, b1, s1, False)[2]
        t_p = _jsd_terms(student, teacher, t2, b2, s2, False)[3]
        return jnp.sum(t_q, axis=-1), jnp.sum(t_p, axis=-1)

    plain = sums(False)
    # (A NaN test on the rows, not on a total: XLA would fold a sum of the row sums into a
    # second reduction of the terms, and write the terms out for both.)
    any_nan = jnp.any(jnp.isnan(plain[0]) | jnp.isnan(plain[1]))
    k_q, k_p = jax.lax.cond(any_nan, lambda: sums(True), lambda: plain)
    value = beta * k_p + (1 - beta) * k_q
    return value, stats, k_q[..., None], k_p[..., None]


@jax.custom_jvp
def jsd_rows(
    student: jax.Array, teacher: jax.Array, inverse_t: jax.Array, beta: jax.Array
) -> jax.Array:
    """GKD's generalized JSD per row, ``β KL(p ‖ m) + (1 - β) KL(q ‖ m)`` with ``m = β p +
    (1 - β) q``, ``q = softmax(τ student)``, ``p = softmax(τ teacher)``, for ``0 < β < 1``
    (the endpoints are ``kl_rows``); float32 or wider."""
    tau = _accumulated(student, teacher, inverse_t)
    return _jsd_value(student, teacher, tau, jnp.asarray(beta, tau.dtype))[0]


def _jsd_rows_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    student, teacher, inverse_t, beta = primals
    d_student, d_teacher, d_inverse_t, d_beta = tangents
    tau = _accumulated(student, teacher, inverse_t)
    beta = jnp.asarray(beta, tau.dtype)
    value, stats, k_q, k_p = _jsd_value(student, teacher, tau, beta)

    tangent = jnp.zeros_like(value)
    if _wanted(d_beta):  # K_p - K_q: the mixture's own term sums to Σ (p - q) = 0
        tangent = tangent + (k_p - k_q)[..., 0] * d_beta.astype(tau.dtype)
    if not _wanted(d_student, d_teacher, d_inverse_t):
        return value, tangent
    # As kl_rows: the partials from the inputs and statistics behind a barrier.
    x, y, tau, beta, stats, k_q, k_p = jax.lax.optimization_barrier(
        (student, teacher, tau, beta, stats, k_q, k_p)
    )
    q, p, t_q, t_p = _jsd_terms(x, y, tau, beta, stats, True)
    # dℓ/da = (1 - β)(t^q - q K_q), dℓ/db = β (t^p - p K_p) (_kernels.distill_blocks).
    slope_s = (1 - beta) * (t_q - q * k_q)
    slope_t = beta * (t_p - p * k_p)
    return value, tangent + _logit_tangent((slope_s, slope_t), (x, y), tau, tangents)


jsd_rows.defjvp(_jsd_rows_jvp, symbolic_zeros=True)


def _skew_terms(
    first: jax.Array,
    second: jax.Array,
    tau: jax.Array,
    weight: jax.Array,
    stats: _Stats,
    guarded: bool,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Per entry: ``p``, ``q``, ``t = p (log p - log m)`` and ``r = p / m`` with ``m = w p +
    (1 - w) q``, ``w > 0`` (``stats``: ``_p`` the first distribution's, ``_q`` the second's).

    ``m >= w p`` bounds ``log m`` below by ``log w + log p`` and ``r`` above by ``1 / w``:
    where ``w p`` underflows (``p`` subnormal) the mixture may round to 0, and the bounds
    keep ``t`` and ``r`` finite. Plain, an entry that ``p`` rules out gives NaN (``0 ·
    (-inf)``, or ``0 / 0`` where ``q`` does too), which the value's ``lax.cond`` catches;
    ``guarded``, 0 there.
    """
    log_p, log_q = _log_probs(first, second, tau, stats)
    p, q = jnp.exp(log_p), jnp.exp(log_q)
    mixture = weight * p + (1 - weight) * q
    if guarded:
        ruled_out = p == 0
        mixture = jnp.where(ruled_out, 1, mixture)
    log_m = jnp.maximum(jnp.log(mixture), jnp.log(weight) + log_p)
    t, r = p * (log_p - log_m), jnp.minimum(p / mixture, 1 / weight)
    if guarded:
        t, r = jnp.where(ruled_out, 0, t), jnp.where(ruled_out, 0, r)
    return p, q, t, r


def _skew_value(
    first: jax.Array, second: jax.Array, tau: jax.Array, weight: jax.Array, ratio: bool
) -> tuple[jax.Array, _Stats, jax.Array | None]:
    """The skew KL per row, the rows' statistics and, if ``ratio``, ``S = Σ p r`` ``[...]``
    (the gradient's): each sum its own YNNPACK kernel on XLA:CPU, as in ``_jsd_value``."""
    (shift_p, total_p), (shift_q, total_q) = (_normalizer(x, tau) for x in (first, second))
    stats = _Stats(shift_p, shift_q, jnp.log(total_p)[..., None], jnp.log(total_q)[..., None])

    def sums(guarded: bool) -> tuple[jax.Array, jax.Array]:
        if guarded:  # XLA's own reduction, which takes the selects
            p, _, t, r = _skew_terms(first, second, tau, weight, stats, True)
            return _numerics.row_sums(t, p * r)  # type: ignore[return-value]
        t1, w1, s1 = _separate(tau, weight, stats)
        divergence = jnp.sum(_skew_terms(first, second, t1, w1, s1, False)[2], axis=-1)
        if not ratio:
            return divergence, divergence
        s2, w2, t2 = _separate(stats, weight, tau)
        p, _, _, r = _skew_terms(first, second, t2, w2, s2, False)
        return divergence, jnp.sum(p * r, axis=-1)

    plain = sums(False)
    any_nan = jnp.any(jnp.isnan(plain[0]) | jnp.isnan(plain[1]))
    divergence, ratio_sum = jax.lax.cond(any_nan, lambda: sums(True), lambda: plain)
    return divergence, stats, ratio_sum if ratio else None


@jax.custom_jvp
def skew_rows(
    first: jax.Array, second: jax.Array, inverse_t: jax.Array, weight: jax.Array
) -> jax.Array:
    """DistiLLM's skew KL per row, ``KL(p ‖ w p + (1 - w) q)`` with ``p = softmax(τ first)``,
    ``q = softmax(τ second)``, for ``0 < w <= 1`` (``w = 0`` is ``kl_rows``); float32 or
    wider."""
    tau = _accumulated(first, second, inverse_t)
    return _skew_value(first, second, tau, jnp.asarray(weight, tau.dtype), False)[0]


def _skew_rows_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    first, second, inverse_t, weight = primals
    d_first, d_second, d_inverse_t, d_weight = tangents
    tau = _accumulated(first, second, inverse_t)
    weight = jnp.asarray(weight, tau.dtype)
    value, stats, ratio_sum = _skew_value(first, second, tau, weight, True)
    # As kl_rows: the partials from the inputs and statistics behind a barrier.
    x, y, tau, weight, stats, value, ratio_sum = jax.lax.optimization_barrier(
        (first, second, tau, weight, stats, value, ratio_sum)
    )
    p, q, t, r = _skew_terms(x, y, tau, weight, stats, True)
    tangent = jnp.zeros_like(value)
    if _wanted(d_weight):  # dK/dw = -Σ r (p - q)
        tangent = -jnp.sum(r * (p - q), axis=-1) * d_weight.astype(tau.dtype)
    if not _wanted(d_first, d_second, d_inverse_t):
        return value, tangent
    # With S = Σ p r: dK/da = t - p (K + w r - w S) and dK/db = q (1 - w S - (1 - w) r),
    # the softmax's Jacobian applied to dK/dp = log p + 1 - log m - w r and dK/dq = -(1 - w) r.
    k, s = value[..., None], ratio_sum[..., None]
    slope_first = t - p * (k + weight * (r - s))
    slope_second = q * (1 - weight * s - (1 - weight) * r)
    return value, tangent + _logit_tangent((slope_first, slope_second), (x, y), tau, tangents)


skew_rows.defjvp(_skew_rows_jvp, symbolic_zeros=True)


def _tvd_terms(
    first: jax.Array, second: jax.Array, tau: jax.Array, stats: _Stats
) -> tuple[jax.Array, jax.Array]:
    """Per entry: ``p`` and ``q`` (``stats``: ``_p`` the first distribution's)."""
    log_p, log_q = _log_probs(first, second, tau, stats)
    return jnp.exp(log_p), jnp.exp(log_q)


def _tvd_value(first: jax.Array, second: jax.Array, tau: jax.Array) -> tuple[jax.Array, _Stats]:
    """½ Σ |p − q| per row and the rows' statistics: five sums, each its own YNNPACK kernel
    on XLA:CPU. An entry either distribution rules out is an exact 0 of it: no NaN."""
    (shift_p, total_p), (shift_q, total_q) = (_normalizer(x, tau) for x in (first, second))
    stats = _Stats(shift_p, shift_q, jnp.log(total_p)[..., None], jnp.log(total_q)[..., None])
    t, s = _separate(tau, stats)
    p, q = _tvd_terms(first, second, t, s)
    return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1), stats


@jax.custom_jvp
def tvd_rows(first: jax.Array, second: jax.Array, inverse_t: jax.Array) -> jax.Array:
    """The total variation distance ``½ Σ |p − q|`` per row, ``p = softmax(τ first)``,
    ``q = softmax(τ second)``; float32 or wider."""
    return _tvd_value(first, second, _accumulated(first, second, inverse_t))[0]


def _tvd_rows_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    first, second, inverse_t = primals
    d_first, d_second, d_inverse_t = tangents
    tau = _accumulated(first, second, inverse_t)
    value, stats = _tvd_value(first, second, tau)
    # With s = sign(p − q) (0 where they are equal, as |·|'s subgradient) and A = Σ q s:
    # d/db = ½ q (A − s) and d/da = ½ p (s − B), B = Σ p s = A + 2 TVD (Σ (p − q) s = Σ |p − q|).
    # A is one more sum; it and each slope recompute p and q from the inputs and statistics
    # behind a barrier of their own (differently ordered tuples: XLA merges equal ones, and
    # would then write p and q out for all three).
    p, q = _tvd_terms(*jax.lax.optimization_barrier((first, second, tau, stats)))
    mean_sign = jnp.sum(q * jnp.sign(p - q), axis=-1, keepdims=True)
    slopes = []
    for index, wanted in ((0, _wanted(d_first, d_inverse_t)), (1, _wanted(d_second, d_inverse_t))):
        if not wanted:
            slopes.append(jnp.zeros(()))
            continue
        inputs = (first, second, tau, stats, mean_sign, value[..., None])
        if index:
            x, y, t, s, a, v = jax.lax.optimization_barrier(inputs)
        else:
            v, a, s, t, y, x = jax.lax.optimization_barrier(inputs[::-1])
        p, q = _tvd_terms(x, y, t, s)
        sign = jnp.sign(p - q)
        slopes.append(0.5 * p * (sign - a - 2 * v) if index == 0 else 0.5 * q * (a - sign))
    tangent = _logit_tangent((slopes[0], slopes[1]), (first, second), tau, tangents)
    return value, tangent


tvd_rows.defjvp(_tvd_rows_jvp, symbolic_zeros=True)

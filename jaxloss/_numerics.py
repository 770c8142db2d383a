"""Shared numerically stable pieces.

Each uses the double-``where`` pattern where a branch would be undefined: the unsafe input
is replaced *before* the undefined operation, so neither the value nor the gradient of the
discarded branch can be NaN or inf (``jnp.where`` alone passes ``0 * inf = NaN`` back).

The special branch is always selected by a comparison that is False for NaN (``x <= 0``,
``x == 0``), never by its negation (``x > 0``): a NaN input then takes the ordinary branch
and stays NaN, instead of being laundered into the special value (0, 1 or the floor).

Matmul precision: a Gram or distance matmul (``x·y`` of embeddings, points or features:
``squared_distances``, ``gram_matrix``, ``nt_xent``'s similarities) runs at
``GRAM_PRECISION``, full float32 on every backend. Its operands are small next to the
class-logit matmuls, and a difference of large terms (``‖x‖² + ‖y‖² − 2 x·y``) would lose
the TF32 or bfloat16 passes' error many times over. The class-logit matmuls of the kernels
(``_kernels/chunked_logsumexp.py``, ``linear_cross_entropy``) keep the backend's default
precision and accumulate in float32 (``preferred_element_type``), as a model's own
projection does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeGuard

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike


def xlogx(x: jax.Array) -> jax.Array:
    """``x log x`` for ``x >= 0``, with its limit 0 at ``x = 0``, and NaN for ``x < 0`` (as
    ``log``): ``x log(x + tiny)``. That is ``0 · log tiny = 0`` at 0, exactly ``x log x``
    from ``x = 2^-101`` on (``tiny`` is below half an ulp of ``x``; below, both are under
    ``3e-29``), and the log of a negative number below 0, where ``x log max(x, tiny)`` gave
    the finite ``-87 x``, a plausible-looking loss. Written without a select so that XLA:CPU
    can sum it in one YNNPACK kernel; its own derivative is not guarded, it is the value of
    :func:`elementwise` functions, whose partials use :func:`xlogx_slope`."""
    return x * jnp.log(x + jnp.finfo(x.dtype).tiny)


def xlogx_slope(x: jax.Array) -> jax.Array:
    """``d(x log x)/dx = log x + 1``, and 0 at ``x = 0`` (where :func:`xlogx` is held at its
    limit), finite there and in its own derivative."""
    zero = x == 0
    return jnp.where(zero, 0, jnp.log(jnp.where(zero, 1, x)) + 1)


def softplus_tail(x: jax.Array) -> jax.Array:
    """``log1p(e^{-|x|})``: what a softplus adds to ``max(x, 0)``, in ``(0, log 2]``."""
    return jnp.log1p(jnp.exp(-jnp.abs(x)))


def log1p_unit(u: jax.Array) -> jax.Array:
    """``log1p(u)`` for ``u`` in ``[0, 1]`` (an ``exp(-|x|)``): ``log(w) - ((w - 1) - u) / w``
    with ``w = 1 + u``, where the second term puts back the rounding of ``w`` (Goldberg's
    correction). The ``1`` is ``1 + u (-0.0)``, which XLA cannot fold, so its simplifier
    does not turn ``(1 + u) - 1`` into ``u``; -0.0, not 0, so that XLA does not share the
    literal with a value's ``max(x, 0)`` and write it out (see :func:`elementwise`). Within
    3e-7 relative of float64 over [1e-37, 1] (tests/test_numerics.py), and in a loop fusion
    of XLA:CPU 1.4x faster than its ``log1p`` routine (2^22 elements: 3.4 against 4.8 ms).
    In a sum (YNNPACK's own ``log1p``) keep ``jnp.log1p``."""
    one = 1 + u * -0.0
    w = u + one
    return jnp.log(w) - ((w - one) - u) / w


def written_out(x: jax.Array) -> jax.Array:
    """``x``, bit for bit, but written out as an array by the loop that computes it before
    a sum reads it, where XLA:CPU would compute it inside its YNNPACK reduction.

    ``lax.reduce_precision`` to ``x``'s own exponent and mantissa widths is the identity
    (subnormals and signed zeros included, NaN stays NaN: ``tests/test_numerics.py``), and
    XLA keeps it while YNNPACK's reduction fusion does not take it. The reduction then sums
    one array. It pays where the formula reuses intermediates (YNNPACK materializes each
    reused value per tile; a loop fusion keeps it in a register) and has no ``exp``/``log1p``
    (which YNNPACK computes faster than a loop fusion): value and gradient, paired with the
    unwritten form at 2^16, 2^20 and 2^22 float32 elements, ``huber`` 1.05–1.66x faster,
    ``smooth_l1`` 1.18–1.61x, ``charbonnier`` 1.20–1.44x, ``kl_div`` 1.05–1.22x, for one
    array of temp memory; ``log_cosh`` and the logistic losses 1.1–2x slower, ``mse``,
    ``mae`` and ``hinge`` 1.1–1.6x slower at 2^22. On other backends it fuses into the loop
    as nothing.
    """
    info = jnp.finfo(x.dtype)
    return jax.lax.reduce_precision(x, exponent_bits=info.nexp, mantissa_bits=info.nmant)


def elementwise(
    partials: Callable[..., Sequence[jax.Array | None]], *, written: bool = False
) -> Callable:
    """Decorator: an elementwise function of arrays, differentiated by its written-out
    ``partials`` (``partials(*args)``: one array per argument, ∂f/∂arg, or ``None`` for an
    argument it is not differentiable in, such as a hard label). With ``written``, the
    values are :func:`written_out` before anything sums them.

    The partials are computed from the arguments passed through
    ``lax.optimization_barrier``, so XLA neither shares intermediates between the value and
    the gradient nor fuses them together: the value's sum reads the inputs once (on XLA:CPU,
    one YNNPACK reduction), the gradient reads them once more and writes itself (one loop),
    and no intermediate array of the inputs' size is written at all (with ``written``, one:
    the values). Shared, XLA writes the common intermediates out for both (``mae`` at 2^22
    elements: 9.2 ms with the difference and its sign written out, against 2.9 ms). The
    partials are themselves differentiable, so higher derivatives hold.

    The barrier does not separate literal constants: a constant the value and the partials
    both broadcast to the inputs' shape (a ``1 - t``, a floor, XLA's own ``1`` in a
    logistic) is shared again and written out as an array. Write the partials' constants
    differently (``sigmoid_focal``, ``binary_cross_entropy``); the memory test of
    ``tests/_suite/test_fast_path.py`` catches a shared one.
    """

    def decorate(value: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
        function = jax.custom_jvp(value)

        def jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
            out = function(*primals)
            slopes = partials(*jax.lax.optimization_barrier(primals))
            tangent = jnp.zeros_like(out)
            for slope, dot in zip(slopes, tangents, strict=True):
                if slope is not None and type(dot) is not jax.custom_derivatives.SymbolicZero:
                    tangent = tangent + slope * dot
            return out, tangent

        function.defjvp(jvp, symbolic_zeros=True)
        if not written:
            return function

        @functools.wraps(value)
        def written_function(*args: jax.Array) -> jax.Array:
            return written_out(function(*args))

        return written_function

    return decorate


@jax.custom_jvp
def softplus(x: jax.Array) -> jax.Array:
    """``log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})``, with its derivative ``σ(x)`` written
    out, where ``jax.nn.softplus`` (``logaddexp(x, 0)``) differentiates through a second
    ``exp`` and a division (measured: ``gan_discriminator``'s value and gradient 1.2x faster
    at 2^20 logits). Exact and finite for every finite ``x``; 0 with a zero derivative at
    ``-inf``, ``+inf`` with slope 1 at ``+inf``."""
    return jnp.maximum(x, 0) + softplus_tail(x)


@softplus.defjvp
def _softplus_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (x,), (x_dot,) = primals, tangents
    # ``jax.nn.sigmoid`` (XLA's logistic), not ``e / (1 + e)`` from the exponential above:
    # its own derivative σ(1 - σ) holds at 0, where one through ``|x|`` would be 0.
    return softplus(x), jax.nn.sigmoid(x) * x_dot


def log_sigmoid(x: jax.Array) -> jax.Array:
    """``log σ(x) = -softplus(-x)``, with :func:`softplus`'s derivative rule."""
    return -softplus(-x)


def safe_pow(base: jax.Array, exponent: ArrayLike) -> jax.Array:
    """``base ** exponent`` for ``base >= 0`` with finite gradients at ``base = 0``.

    ``0 ** 0 = 1``. The focal modulating factor ``(1 - p) ** gamma`` needs this: plain
    ``jnp.power`` differentiates to ``gamma * 0 ** (gamma - 1)``, which is inf or NaN at
    ``p = 1`` for ``gamma < 1``, and its gradient in ``gamma`` holds ``log 0``.

    A whole exponent from 0 to 8 given as a Python number (the focal losses' default
    ``gamma=2``) is repeated multiplication: exact, with no log and exp per element. A half
    one up to 8.5 (YOLOv5's focal ``gamma=1.5``) is that times a square root, a few ulp from
    the exact power, where XLA:CPU's ``pow`` costs about 2 ns an element and ``sqrt``
    nothing measurable beside the memory traffic.
    """
    if multiplies(exponent):
        return jax.lax.integer_pow(base, int(exponent))
    special = base <= 0
    safe = jnp.where(special, 1, base)
    if (
        isinstance(exponent, (int, float))
        and float(2 * exponent).is_integer()
        and 0 < exponent <= 8.5
    ):
        root = jnp.sqrt(safe)
        powered = root if exponent == 0.5 else jax.lax.integer_pow(safe, int(exponent)) * root
        return jnp.where(special, 0, powered)
    exponent = jnp.asarray(exponent, base.dtype)
    at_zero = jnp.where(exponent == 0, 1.0, 0.0).astype(base.dtype)
    return jnp.where(special, at_zero, jnp.power(safe, exponent))


def multiplies(exponent: ArrayLike) -> TypeGuard[int | float]:
    """Whether :func:`safe_pow` takes ``exponent`` by repeated multiplication: a whole
    number from 0 to 8 given as a Python number."""
    return (
        isinstance(exponent, (int, float)) and float(exponent).is_integer() and 0 <= exponent <= 8
    )


def abs_zero_subgradient(x: jax.Array) -> jax.Array:
    """``|x|`` with torch's subgradient 0 at ``x = 0`` (``jnp.abs`` differentiates to 1 there)."""
    return x * jnp.sign(x)


def clamp(x: jax.Array, low: ArrayLike | None = None, high: ArrayLike | None = None) -> jax.Array:
    """``x`` clipped to ``[low, high]`` (a None bound is left open) with torch's ``clamp``
    gradient: 1 on the closed interval, bounds included (``jnp.clip``, ``jnp.minimum`` and
    ``jnp.maximum`` pass ½ where ``x`` equals a bound)."""
    if high is not None:
        x = jnp.where(x > high, high, x)
    if low is not None:
        x = jnp.where(x < low, low, x)
    return x


# cos θ is clipped this far inside [-1, 1] before arccos: the angle's derivative,
# -1/sqrt(1 - cos²), stays finite (below ~700) at θ = 0 and θ = π.
COS_LIMIT = 1.0 - 1e-6


@jax.custom_jvp
def angle(cos_theta: jax.Array) -> jax.Array:
    """θ = arccos(cos θ), cos θ clipped to [−1, 1], with the derivative of the arccos of cos θ
    clipped to ±(1 − 1e-6): finite gradients at θ = 0 and π (0 past the limit, as the
    clip's). The value is not clipped: an angle of 0 stays 0, where arccos(1 − 1e-6) =
    1.4e-3 moved ArcFace's target logit by s · sin m · 1.4e-3 (0.04 at s = 64)."""
    return jnp.arccos(jnp.clip(cos_theta, -1, 1))


@angle.defjvp
def _angle_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    (cos_theta,), (cos_dot,) = primals, tangents
    inside = jnp.abs(cos_theta) < COS_LIMIT
    safe = jnp.where(inside, cos_theta, 0)
    slope = jnp.where(inside, -jax.lax.rsqrt(1 - jnp.square(safe)), 0)
    return angle(cos_theta), slope * cos_dot


def safe_sqrt(x: jax.Array) -> jax.Array:
    """``sqrt(x)`` for ``x >= 0`` with a zero (not inf or NaN) gradient at ``x = 0``."""
    special = x <= 0
    return jnp.where(special, 0, jnp.sqrt(jnp.where(special, 1, x)))


def safe_norm(x: jax.Array) -> jax.Array:
    """The L2 norm over the last axis, with a zero (not NaN) gradient at ``x = 0``."""
    return safe_sqrt(jnp.sum(jnp.square(x), axis=-1))


@jax.custom_jvp
def _shifted_distance(x: jax.Array, y: jax.Array, shift: jax.Array) -> jax.Array:
    # The barrier gives each call its own copy of ``shift``: XLA would otherwise share one
    # broadcast of a literal shift between the calls (CSE) and write it out as an array.
    x, y, shift = jax.lax.optimization_barrier((x, y, shift))
    return safe_norm(x - y + shift)


@_shifted_distance.defjvp
def _shifted_distance_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    out = _shifted_distance(*primals)
    # A barrier of another tuple than the value's (XLA merges identical ones): the
    # difference is recomputed here, not shared with the value's sum and written out.
    shift, y, x = jax.lax.optimization_barrier(primals[::-1])
    x_dot, y_dot, shift_dot = tangents
    inverse = jnp.where(out == 0, 0, 1 / jnp.where(out == 0, 1, out))
    return out, jnp.sum((x - y + shift) * (x_dot - y_dot + shift_dot), axis=-1) * inverse


def distance(x: jax.Array, y: jax.Array, shift: ArrayLike = 0.0) -> jax.Array:
    """``‖x − y + shift‖₂`` over the last axis (torch's ``pairwise_distance`` with ``eps =
    shift``), with a zero (not NaN) gradient where it is 0.

    The derivative ``(x − y + shift) / ‖·‖`` is written out (``custom_jvp``) and recomputes
    the difference from the inputs: on XLA:CPU the value is then one YNNPACK row sum that
    reads ``x`` and ``y`` (nothing written), and each gradient one loop over them. Through
    ``safe_norm(x - y + shift)``, XLA writes the difference out, since both the sum and the
    gradient read it (measured, value and gradient of 8192 pairs or triplets of 128:
    ``triplet_margin_with_distance`` with ``swap`` 1.2-1.4x faster, ``ratio_loss`` 1.2x,
    ``contrastive`` 1.15x).
    """
    return _shifted_distance(x, y, jnp.asarray(shift, x.dtype))


NORM_EPS = 1e-12


def l2_normalize(x: jax.Array, eps: float = NORM_EPS) -> jax.Array:
    """``x / max(‖x‖, eps)`` over the last axis, as ``torch.nn.functional.normalize``."""
    return x / jnp.maximum(safe_norm(x), eps)[..., None]


GRAM_PRECISION = jax.lax.Precision.HIGHEST
"""The matmul precision of every Gram and distance matmul (see the module docstring)."""


def squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """``[..., n, m]`` squared Euclidean distances between ``x`` ``[..., n, dim]`` and ``y``.

    The Gram form ``‖x‖² + ‖y‖² − 2 x·y``: one matmul, at ``GRAM_PRECISION``. Clamped at 0,
    since rounding can make it slightly negative; it loses absolute precision for nearby
    points far from the origin (the rounding error grows with ``‖x‖²``).
    """
    norms_x, norms_y = jnp.sum(jnp.square(x), -1), jnp.sum(jnp.square(y), -1)
    gram = jnp.einsum("...nd,...md->...nm", x, y, precision=GRAM_PRECISION)
    return jnp.maximum(norms_x[..., :, None] + norms_y[..., None, :] - 2 * gram, 0)


def fast_logaddexp(a: jax.Array, b: jax.Array) -> jax.Array:
    """``log(e^a + e^b)``: one ``exp`` and one ``log``; -inf (not NaN) when both are -inf.

    Cheaper than ``jnp.logaddexp`` (which uses ``log1p`` and inf checks) in the inner loop
    of the lattice recursions (CTC, RNN-T), where the transcendental functions dominate the
    time. ``log(1 + x)`` in place of ``log1p(x)`` costs at most an absolute 6e-8, below an
    ulp of the result except when the result itself is within ~1 of 0.
    """
    return logaddexp_and_split(a, b)[0]


def logaddexp_and_split(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:func:`fast_logaddexp` and how its inputs split the sum, for its adjoint.

    Returns ``(log(e^a + e^b), split)``: ``split = ±exp(-|a - b|)``, negative (its sign
    bit set, -0.0 included) where ``b`` is the larger input. The shares of the sum are then
    ``1 / (1 + |split|)`` for the larger input and ``|split| / (1 + |split|)`` for the
    smaller (:func:`logaddexp_shares`), each to full relative precision, with no ``exp``.
    Where both inputs are -inf the split is +0: shares (1, 0) of nothing.
    """
    top, low = jnp.maximum(a, b), jnp.minimum(a, b)
    # Flooring the shift keeps -inf - -inf out; the result still adds the true top.
    e = jnp.exp(low - jnp.maximum(top, jnp.finfo(top.dtype).min))
    split = jnp.where(a >= b, e, -e)
    # The sum from the split, not from e: XLA then writes the split once and reads it for
    # both (CTC value and gradient 1.02-1.10x faster paired; fast_logaddexp's callers, which
    # drop the split, no slower).
    return top + jnp.log(1 + jnp.abs(split)), split


def logaddexp_shares(split: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The shares ``(e^a, e^b) / (e^a + e^b)`` of a :func:`logaddexp_and_split` sum."""
    e = jnp.abs(split)
    larger = 1 / (1 + e)
    smaller = e * larger
    b_larger = jnp.signbit(split)
    return jnp.where(b_larger, smaller, larger), jnp.where(b_larger, larger, smaller)


# Up to this many classes, a softmax, log-sum-exp, sum or max over the last axis is written
# class by class. XLA's CPU backend reduces a short minor axis (the 2 to 7 classes of a
# segmentation map, channel last) one pixel at a time; class by class, every step is an
# elementwise operation over all pixels and vectorizes. Measured at 2 x 64³ voxels and 4
# classes, value and gradient (benchmarks/cases/segmentation.py): the softmax Dice 17.1 ->
# 9.7 ms, Dice + cross-entropy 31.2 -> 17.5 ms. Past it, one reduction is cheaper than the
# unrolled columns (2^21 logits, paired, the columns' time over the reduction's): at 8
# classes the softmax Dice 1.43, integer-label cross-entropy 1.47, the softmax focal loss
# 0.69; at 12 classes 1.1-2.3 for all of them; at 5-6 classes 0.36-0.95.
UNROLLED_CLASSES = 7


def _unrolled(x: jax.Array) -> bool:
    """Whether ``x``'s last axis is short enough (and not empty) to go class by class."""
    return is_short(x.shape[-1])


def class_columns(x: jax.Array) -> tuple[list[jax.Array], jax.Array]:
    """The columns ``x[..., k]`` and their maximum as the shift of an exp
    (:func:`exp_shift`)."""
    columns = [x[..., k] for k in range(x.shape[-1])]
    return columns, exp_shift(class_max(x))


def exp_shift(top: jax.Array) -> jax.Array:
    """The rows' maxima as the shift of an exp, as ``jax.nn.logsumexp`` chooses it: constant
    for the gradient, 0 where it is not finite (a row of -inf then sums exp(-inf) = 0, not
    exp(nan))."""
    return jax.lax.stop_gradient(jnp.where(jnp.isfinite(top), top, 0))


def fenced(total: jax.Array) -> jax.Array:
    """``total`` unchanged, as a boundary XLA's CPU backend does not fuse across.

    A ``reduce_precision`` to the dtype's own precision is the identity, and YNNPACK (which
    XLA:CPU gives the reductions to) has no such operation, so its fusion of the sum ends
    here and what follows (the ``log``) runs as XLA's own elementwise code. Fused, the same
    log-sum-exp of ``[4, 500, 101, 1024]`` float32 logits took 250-270 ms; fenced, 100 ms
    (``[202000, 1024]``: 320 against 100 ms; ``[65536, 64]``: 3.6 against 1.9 ms; no shape
    measured slower). Other backends see an elementwise identity.
    """
    info = jnp.finfo(total.dtype)
    return jax.lax.reduce_precision(total, exponent_bits=info.nexp, mantissa_bits=info.nmant)


def softmax(x: jax.Array) -> jax.Array:
    """``jax.nn.softmax(x, axis=-1)``, class by class for a short class axis."""
    if not _unrolled(x):
        return jax.nn.softmax(x, axis=-1)
    columns = softmax_columns([x[..., k] for k in range(x.shape[-1])])
    return jnp.stack(columns.probs, axis=-1)


def is_short(num_classes: int) -> bool:
    """Whether a class axis this long goes class by class (``UNROLLED_CLASSES``)."""
    return 0 < num_classes <= UNROLLED_CLASSES


class SoftmaxColumns(NamedTuple):
    """A softmax computed class by class (:func:`softmax_columns`), one array per class."""

    probs: list[jax.Array]
    shifted: list[jax.Array]
    """The logits minus their maximum (``exp_shift``)."""
    log_total: jax.Array
    """``log Σ_c exp(shifted_c)``: ``log p_c = shifted_c - log_total``."""


def softmax_columns(columns: Sequence[jax.Array]) -> SoftmaxColumns:
    """The softmax over the classes of logits given as one array per class (each of the
    rows' shape). XLA computes only the parts that are used: a cross-entropy reading
    ``log_total`` and the shifted logit of the label, ``log_total - shifted_y``, ran
    1.2-1.35x faster beside soft Dice than reading ``shifted_c - log_total`` per class."""
    shift = exp_shift(_columns_max(columns))
    shifted = [column - shift for column in columns]
    exps = [jnp.exp(column) for column in shifted]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    inverse = 1 / total
    return SoftmaxColumns([e * inverse for e in exps], shifted, jnp.log(total))


def logsumexp(x: jax.Array) -> jax.Array:
    """``jax.nn.logsumexp(x, axis=-1)``, class by class for a short class axis, and past it
    with its sum fenced off from the ``log`` (:func:`fenced`)."""
    shift, log_total = shifted_logsumexp(x)
    return shift + log_total


def shifted_logsumexp(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """:func:`logsumexp` as its two parts ``(shift, log Σ exp(x − shift))``, ``[...]``: a
    log-probability ``(x_y − shift) − log_total`` is then exact near the maximum, where
    ``x_y − logsumexp(x)`` rounds to an ulp of the largest logit (a loss of ``log 2``
    between two logits of 1e30 came out 0; at logits near 2000, 4% off a mean loss of
    0.003), as ``jax.nn.log_softmax`` and torch form it."""
    if not _unrolled(x):
        shift = exp_shift(jnp.max(x, axis=-1, initial=-jnp.inf))
        return shift, _log_of_total(fenced(jnp.sum(jnp.exp(x - shift[..., None]), axis=-1)))
    columns, shift = class_columns(x)
    total = jnp.exp(columns[0] - shift)
    for column in columns[1:]:
        total = total + jnp.exp(column - shift)
    return shift, _log_of_total(total)


def _log_of_total(total: jax.Array) -> jax.Array:
    """``log total``: −inf for a row of nothing but −inf (total 0), with a zero gradient
    there, where ``log``'s 1/0 times the exponentials' 0 is NaN."""
    empty = total == 0
    return jnp.where(empty, -jnp.inf, jnp.log(jnp.where(empty, 1, total)))


def log_softmax_at(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``log_softmax(x)[..., labels]`` per row, ``labels`` in ``[0, num_classes)``, from the
    shifted logit (:func:`shifted_logsumexp`): no ``[..., C]`` array of log-probabilities."""
    shift, log_total = shifted_logsumexp(x)
    return (take_class(x, labels) - shift) - log_total


def _variadic_row_reduce(
    arrays: Sequence[jax.Array], initial: float, combine: Callable[..., tuple]
) -> tuple[jax.Array, ...]:
    init = tuple(jnp.asarray(initial, x.dtype) for x in arrays)
    return tuple(jax.lax.reduce(tuple(arrays), init, combine, (arrays[0].ndim - 1,)))


ROW_BLOCK = 32
"""Most entries of a row that :func:`row_sums` adds in one run before a pairwise sum."""


def _row_block(size: int) -> int | None:
    """The largest divisor of ``size`` in ``[8, ROW_BLOCK]``, ``size`` itself up to
    ``ROW_BLOCK``, or None."""
    if size <= ROW_BLOCK:
        return size
    return next((b for b in range(ROW_BLOCK, 7, -1) if size % b == 0), None)


def _two_sum(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``a + b`` and its rounding error, exactly (Knuth's TwoSum)."""
    total = a + b
    b_part = total - a
    return total, (a - (total - b_part)) + (b - b_part)


def _compensated(x: tuple, y: tuple) -> tuple:
    """Combines ``(sum, error)`` pairs of partial sums with :func:`_two_sum`."""
    out = []
    for i in range(0, len(x), 2):
        total, error = _two_sum(x[i], y[i])
        out += [total, error + x[i + 1] + y[i + 1]]
    return tuple(out)


def _added(x: tuple, y: tuple) -> tuple:
    return tuple(u + v for u, v in zip(x, y, strict=True))


@jax.custom_jvp
def row_sums(*arrays: jax.Array) -> tuple[jax.Array, ...]:
    """The sums over the last axis of two or more same-shape arrays, without writing them
    out.

    One reduction of several operands, which XLA:CPU runs itself with the arrays' producers
    fused in, selects included (it gives a single sum to YNNPACK, which takes no select: a
    select's result would be written out first). XLA's reduction loop accumulates nearly in
    order: over a whole row of 131,072 exponentials it loses about 3e-5 (relative) in
    float32. So the row is summed in blocks (at most :data:`ROW_BLOCK` entries, a divisor of
    its length, so that the blocks are a reshape and not a copy), then ``jnp.sum``
    (pairwise) adds the blocks' ``[..., V / block]`` partial sums: within 1e-7 of float64,
    as ``jnp.sum``. A row longer than 32 with no divisor in ``[8, 32]`` (a prime length) is
    summed whole, each sum carrying its rounding error (TwoSum): as precise, about 1.4x
    slower.

    Differentiable to any order in either mode (``custom_jvp``): each sum's tangent is
    ``jnp.sum`` of its array's tangent, 0 for an array constant in the input.
    """
    size = arrays[0].shape[-1]
    block = _row_block(size)
    if block is None:
        paired = [a for x in arrays for a in (x, jnp.zeros_like(x))]
        sums = _variadic_row_reduce(paired, 0.0, _compensated)
        return tuple(sums[i] + sums[i + 1] for i in range(0, len(sums), 2))
    if block == size:
        return _variadic_row_reduce(arrays, 0.0, _added)
    blocks = [x.reshape(*x.shape[:-1], size // block, block) for x in arrays]
    return tuple(jnp.sum(part, axis=-1) for part in _variadic_row_reduce(blocks, 0.0, _added))


def _row_sums_jvp(primals: tuple, tangents: tuple) -> tuple[tuple, tuple]:
    # The sums are linear: each tangent is the sum of its own tangent (``jnp.sum``, which
    # transposes). JAX's own rule for a variadic ``lax.reduce`` reshapes every operand's
    # tangent and fails on a symbolic zero (an operand constant in the input: the ``exp(a)``
    # of ``kl_rows`` differentiated in the second logits, and always the TwoSum's zero
    # error terms); it also forms the value again by a tree of slices of its own.
    sums = row_sums(*primals)
    return sums, tuple(
        jnp.zeros_like(total)
        if type(dot) is jax.custom_derivatives.SymbolicZero
        else jnp.sum(dot, axis=-1)
        for total, dot in zip(sums, tangents, strict=True)
    )


row_sums.defjvp(_row_sums_jvp, symbolic_zeros=True)


def log_softmax(x: jax.Array) -> jax.Array:
    """``jax.nn.log_softmax(x, axis=-1)``: ``(x - max) - log Σ exp(x - max)``, as precise as
    jax's (the shifted logits are exact near the maximum; ``x - logsumexp(x)`` would round
    them to an ulp of the logits' size), with the sum fenced off from the ``log``
    (:func:`fenced`). Value and gradient on XLA:CPU, paired against jax's: 1.35x faster at
    ``[4096, 1000]``, 1.14x at ``[65536, 64]``, 1.17x at ``[4, 256, 32000]``.

    A short class axis (``UNROLLED_CLASSES``) is ``x - logsumexp(x)`` class by class, off
    by up to an ulp of the logits' size: the shifted form there took 1.3x longer for the
    value and gradient of ``dice_ce`` (2 x 64³ voxels, 4 classes, paired)."""
    if _unrolled(x):
        return x - logsumexp(x)[..., None]
    shifted = x - exp_shift(jnp.max(x, axis=-1, keepdims=True, initial=-jnp.inf))
    return shifted - jnp.log(fenced(jnp.sum(jnp.exp(shifted), axis=-1, keepdims=True)))


def class_sum(x: jax.Array) -> jax.Array:
    """``jnp.sum(x, axis=-1)``, class by class for a short class axis."""
    if not _unrolled(x):
        return jnp.sum(x, axis=-1)
    total = x[..., 0]
    for k in range(1, x.shape[-1]):
        total = total + x[..., k]
    return total


def take_class(x: jax.Array, labels: jax.Array) -> jax.Array:
    """``x[..., labels]`` per row, ``labels`` in ``[0, num_classes)``; for a short class
    axis a select per class (twice as fast as the gather, value and gradient, at 4 classes)."""
    if not _unrolled(x):
        return jnp.take_along_axis(x, labels[..., None], axis=-1)[..., 0]
    picked = jnp.where(labels == 0, x[..., 0], 0)
    for k in range(1, x.shape[-1]):
        picked = picked + jnp.where(labels == k, x[..., k], 0)
    return picked


def class_max(x: jax.Array) -> jax.Array:
    """``jnp.max(x, axis=-1)``, class by class for a short class axis; −inf with no class
    (the maximum of nothing, where ``jnp.max`` raises)."""
    if x.shape[-1] == 0:
        return jnp.full(x.shape[:-1], -jnp.inf, x.dtype)
    if not _unrolled(x):
        return jnp.max(x, axis=-1)
    return _columns_max([x[..., k] for k in range(x.shape[-1])])


def _columns_max(columns: Sequence[jax.Array]) -> jax.Array:
    """The elementwise maximum of one array per class."""
    top = columns[0]
    for column in columns[1:]:
        top = jnp.maximum(top, column)
    return top

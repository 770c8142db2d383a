"""The shared numerics of ``jaxloss._numerics`` (softplus, log-sum-exp, log-softmax) against
float64 NumPy: their values, derivative rules and edge cases, which every loss built on them
inherits."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxloss
from jaxloss import _numerics
from tests._suite.compiled import compile_as_users


def test_softplus_rule_matches_float64_and_has_the_right_second_derivative():
    # The GAN losses' softplus has its own derivative rule (σ written out):
    # values and first derivatives against float64 log1p(e^x) and 1 / (1 + e^-x) from
    # -1e4 to 1e4 and at ±inf, the second derivative at 0 (1/4, which autodiff of |x| at
    # its kink would get wrong), and check_grads to second order in both modes.
    x = np.concatenate([np.linspace(-30, 30, 121), [-1e4, -90.0, 90.0, 1e4]]).astype(np.float32)

    @jax.jit
    def run(x, zero, infinities):
        value_and_slope = jax.vmap(jax.value_and_grad(_numerics.softplus))
        curvature = jax.grad(jax.grad(_numerics.softplus))(zero)
        return value_and_slope(x), curvature, value_and_slope(infinities)

    (value, slope), curvature, ends = run(
        x, np.float32(0.0), np.array([-np.inf, np.inf], np.float32)
    )
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(value, np.logaddexp(0.0, x64), rtol=2e-7, atol=1e-37)
    np.testing.assert_allclose(slope, np.exp(-np.logaddexp(0.0, -x64)), rtol=2e-7, atol=1e-37)
    assert float(curvature) == 0.25
    np.testing.assert_array_equal(np.asarray(ends[0]), [0.0, np.inf])
    np.testing.assert_array_equal(np.asarray(ends[1]), [0.0, 1.0])
    # float32 finite differences, 0 included (on the device without compiling)
    moderate = jax.device_put(np.linspace(-6.0, 6.0, 13, dtype=np.float32))
    check_grads(jax.jit(_numerics.softplus), (moderate,), order=2, modes=("fwd", "rev"))


def test_fenced_logsumexp_matches_float64_at_the_edges():
    # _numerics.logsumexp past the unrolled classes (the cross-entropy, CTC and RNN-T
    # normalizers): the sum fenced off from the log by an identity reduce_precision. Values
    # and gradients (the softmax) against float64 NumPy, rows holding -inf, all -inf, +inf and
    # NaN as jax.nn.logsumexp gives them, half precision kept, check_grads to second order.
    rng = np.random.default_rng(0)
    x = rng.normal(scale=30.0, size=(6, 40)).astype(np.float32)
    x[1, ::3] = -np.inf
    edges = np.zeros((3, 20), np.float32)
    edges[0] = -np.inf
    edges[1, 4] = np.inf
    edges[2, 7] = np.nan
    half = x[:, :30].astype(jnp.bfloat16)

    @jax.jit
    def run(x, edges, half):
        value_and_grad = jax.vmap(jax.value_and_grad(_numerics.logsumexp))(x)
        edge_values = _numerics.logsumexp(edges), jax.nn.logsumexp(edges, axis=-1)
        return value_and_grad, edge_values, _numerics.logsumexp(half)

    (value, grad), (edge_values, jax_edge_values), half_value = run(x, edges, half)
    x64 = x.astype(np.float64)
    top = x64.max(axis=-1, keepdims=True)
    expected = np.log(np.exp(x64 - top).sum(axis=-1)) + top[:, 0]
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, np.exp(x64 - expected[:, None]), rtol=1e-5, atol=1e-30)
    np.testing.assert_array_equal(np.asarray(edge_values), np.asarray(jax_edge_values))
    rounded = np.asarray(half, np.float64)
    top = rounded.max(axis=-1, keepdims=True)
    half_expected = np.log(np.exp(rounded - top).sum(axis=-1)) + top[:, 0]
    assert half_value.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(half_value, np.float64), half_expected, rtol=1e-2)
    moderate = jax.device_put(rng.normal(scale=0.5, size=(2, 24)).astype(np.float32))
    check_grads(jax.jit(_numerics.logsumexp), (moderate,), order=2, modes=("fwd", "rev"))


def test_log_softmax_keeps_the_precision_of_the_shifted_logits():
    # _numerics.log_softmax (the distillation losses' log-probabilities) against float64
    # NumPy at logits near 1000, where x - logsumexp(x) would be off by an ulp of 1000
    # (6e-5): the shifted form keeps the error at float32's for values of order 1. Its
    # gradient is jax.nn.log_softmax's, and rows of -inf entries stay -inf there.
    rng = np.random.default_rng(3)
    x = (rng.normal(scale=3.0, size=(64, 40)) + 1000).astype(np.float32)
    x64 = x.astype(np.float64)
    top = x64.max(axis=-1, keepdims=True)
    expected = x64 - top - np.log(np.exp(x64 - top).sum(axis=-1, keepdims=True))
    weights = rng.normal(size=x.shape).astype(np.float32)
    padded = np.array([[0.0, -np.inf] + [1.0] * 20], np.float32)

    @jax.jit
    def run(x, weights, padded):
        grad = jax.grad(lambda z: jnp.sum(_numerics.log_softmax(z) * weights))(x)
        reference = jax.grad(lambda z: jnp.sum(jax.nn.log_softmax(z) * weights))(x)
        return _numerics.log_softmax(x), grad, reference, _numerics.log_softmax(padded)

    log_probs, grad, reference, padded_log_probs = run(x, weights, padded)
    np.testing.assert_allclose(log_probs, expected, rtol=0, atol=4e-6)
    np.testing.assert_allclose(grad, reference, rtol=1e-5, atol=1e-6)
    assert float(np.asarray(padded_log_probs)[0, 1]) == -np.inf


def test_short_class_axes_go_class_by_class_with_the_same_numbers():
    # Up to UNROLLED_CLASSES, log_softmax is x - logsumexp(x) and take_class a select per
    # class; both against float64 NumPy and jax's gathers, with -inf padding and NaN in
    # the classes not taken (the select keeps them out of the value and the gradient).
    rng = np.random.default_rng(5)
    x = rng.normal(scale=3.0, size=(64, _numerics.UNROLLED_CLASSES)).astype(np.float32)
    x64 = x.astype(np.float64)
    top = x64.max(axis=-1, keepdims=True)
    expected = x64 - top - np.log(np.exp(x64 - top).sum(axis=-1, keepdims=True))
    padded = np.array([[0.0, -np.inf, 1.0]], np.float32)
    labels = rng.integers(0, x.shape[-1], x.shape[0]).astype(np.int32)

    @jax.jit
    def run(x, padded, labels):
        picked = _numerics.take_class(x, labels)
        grad = jax.grad(lambda z: jnp.sum(_numerics.take_class(z, labels) ** 2))(x)
        one_hot = jax.nn.one_hot(labels, x.shape[-1])
        poisoned = jnp.where(one_hot > 0, x, jnp.nan)
        poisoned_finite = jnp.all(jnp.isfinite(_numerics.take_class(poisoned, labels)))
        poisoned_grad = jax.grad(lambda z: jnp.sum(_numerics.take_class(z, labels)))(poisoned)
        log_probs = _numerics.log_softmax(x), _numerics.log_softmax(padded)
        return log_probs, picked, grad, poisoned_finite, poisoned_grad, one_hot

    (log_probs, padded_log_probs), picked, grad, poisoned_finite, poisoned_grad, one_hot = run(
        x, padded, labels
    )
    np.testing.assert_allclose(log_probs, expected, rtol=0, atol=2e-6)
    assert float(np.asarray(padded_log_probs)[0, 1]) == -np.inf
    check_grads(jax.jit(_numerics.log_softmax), (jax.device_put(x[:4] / 3),), order=2, eps=1e-2)

    np.testing.assert_array_equal(picked, x[np.arange(x.shape[0]), labels])
    expected_grad = np.zeros_like(x)
    expected_grad[np.arange(x.shape[0]), labels] = 2 * np.asarray(picked)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6)
    assert bool(poisoned_finite)
    np.testing.assert_array_equal(poisoned_grad, one_hot)


def _log_cosh_partials(x, y):
    return jnp.tanh(x - y), jnp.tanh(y - x)


@_numerics.elementwise(_log_cosh_partials)
def _log_cosh(x, y):
    return jnp.log(jnp.cosh(x - y))


def test_elementwise_uses_its_partials_to_any_order():
    # On the device without compiling (jax arrays for check_grads, as jnp.array gives them).
    x = jax.device_put(np.array([-3.0, -0.5, 0.0, 0.25, 2.0], np.float32))
    y = jax.device_put(np.array([0.5, 0.5, 0.0, -1.0, 2.5], np.float32))
    d = np.float64(np.asarray(x)) - np.float64(np.asarray(y))

    @jax.jit
    def run(x, y):
        grads = jax.grad(lambda x, y: jnp.sum(_log_cosh(x, y)), argnums=(0, 1))(x, y)
        # One argument differentiated (the other's tangent a symbolic zero), forward mode too.
        jacobian = jax.jacfwd(lambda x: _log_cosh(x, y))(x)
        # The partials are differentiated in turn: d² log cosh / dx² = 1 - tanh².
        hessian = jax.hessian(lambda x: jnp.sum(_log_cosh(x, y)))(x)
        batched = jax.vmap(jax.grad(lambda x, y: jnp.sum(_log_cosh(x, y))))(x[None], y[None])
        return grads, jacobian, hessian, batched

    (grad_x, grad_y), jacobian, hessian, batched = run(x, y)
    np.testing.assert_allclose(grad_x, np.tanh(d), rtol=1e-6)
    np.testing.assert_allclose(grad_y, -np.tanh(d), rtol=1e-6)
    np.testing.assert_allclose(jacobian, np.diag(np.tanh(d)), rtol=1e-6)
    np.testing.assert_allclose(hessian, np.diag(1 - np.tanh(d) ** 2), rtol=1e-5, atol=1e-7)
    check_grads(jax.jit(_log_cosh), (x, y), order=2, modes=("fwd", "rev"))
    np.testing.assert_allclose(batched[0], np.tanh(d), rtol=1e-6)


def test_elementwise_leaves_out_an_argument_without_partial():
    @_numerics.elementwise(lambda x, scale: (scale * jnp.ones_like(x), None))
    def scaled(x, scale):
        return scale * x

    @jax.jit
    def grads(x, scale):
        # The scale a traced argument of the first gradient, a Python number in the second.
        grad_scale = jax.grad(lambda s: jnp.sum(scaled(x, s)))(scale)
        return grad_scale, jax.grad(lambda x: jnp.sum(scaled(x, 2.0)))(x)

    grad_scale, grad_x = grads(np.arange(3.0, dtype=np.float32), 2.0)
    # The partial in ``scale`` is None: its tangent is dropped, by design for hyperparameters.
    assert float(grad_scale) == 0.0
    np.testing.assert_allclose(grad_x, [2.0] * 3)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_written_out_is_the_identity_bit_for_bit(dtype):
    info = np.finfo(dtype)
    width = {2: np.uint16, 4: np.uint32}[info.bits // 8]
    bits = np.random.default_rng(0).integers(0, np.iinfo(width).max, 1 << 16, dtype=np.uint64)
    # Zeros of both signs, the smallest subnormals, ±inf and NaNs with payloads.
    top = 1 << (info.bits - 1)
    exponent = ((1 << info.nexp) - 1) << info.nmant
    specials = [0, top, 1, top | 1, exponent, top | exponent, exponent | 1, exponent | 3]
    pattern = np.concatenate([bits.astype(width), np.asarray(specials, width)])
    got = np.asarray(jax.jit(_numerics.written_out)(pattern.view(dtype))).view(width)
    # NaNs stay NaN (the CPU computes bfloat16 in float32, which quiets a signaling NaN, as
    # any bfloat16 operation there does); every other value keeps its bits.
    nan = np.isnan(pattern.view(dtype).astype(np.float32))
    assert np.isnan(got.view(dtype).astype(np.float32))[nan].all()
    np.testing.assert_array_equal(got[~nan], pattern[~nan])
    # It is linear: a tangent and a cotangent pass through unchanged.
    ones = np.ones(3, dtype)

    @jax.jit
    def tangent_and_cotangent(ones):
        tangent = jax.jvp(_numerics.written_out, (ones,), (ones,))[1]
        return tangent, jax.grad(lambda v: jnp.sum(_numerics.written_out(v * 2.0)))(ones)

    tangent, cotangent = tangent_and_cotangent(ones)
    assert tangent.tolist() == ones.tolist()
    assert cotangent.tolist() == [2.0] * 3


def test_written_elementwise_has_the_values_and_partials_of_the_unwritten():
    def partials(x, y):
        return y, x

    def product(x, y):
        return x * y

    plain = _numerics.elementwise(partials)(product)
    written = _numerics.elementwise(partials, written=True)(product)
    x, y = np.array([1.0, -2.0, 3.0], np.float32), np.array([0.5, 4.0, -1.0], np.float32)

    @jax.jit
    def run(x, y):
        values = written(x, y), plain(x, y)
        grads = [
            (
                jax.grad(lambda *a: jnp.sum(written(*a)), argnums)(x, y),
                jax.grad(lambda *a: jnp.sum(plain(*a)), argnums)(x, y),
            )
            for argnums in (0, 1)
        ]
        # Second derivatives through the written values: the product's own Hessian.
        joined = jnp.concatenate([x, y])
        hessian = jax.hessian(lambda v: jnp.sum(written(v[:3], v[3:])))(joined)
        return values, grads, hessian

    (written_values, plain_values), grads, hessian = run(x, y)
    np.testing.assert_array_equal(written_values, plain_values)
    for g_written, g_plain in grads:
        np.testing.assert_array_equal(g_written, g_plain)
    np.testing.assert_array_equal(hessian, np.roll(np.eye(6), 3, axis=1))  # [[0, I], [I, 0]]
    # The marker survives XLA's optimizations (what makes XLA:CPU write the values out).
    text = compile_as_users(jax.jit(lambda *a: jnp.sum(written(*a))).lower(x, y)).as_text()
    assert "reduce-precision(" in text


def test_logaddexp_split_gives_both_shares_to_full_precision():
    # The CTC kernel's adjoint reads how each logaddexp split its sum: the shares
    # e^a / (e^a + e^b) and e^b / (e^a + e^b), against float64, relative to each share (a
    # share of 1e-30 keeps its digits: no 1 - share), with ties, -inf inputs and -0.0.
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(scale=30, size=200), [0, -np.inf, -np.inf, 5, -80, 3]])
    b = np.concatenate([rng.normal(scale=30, size=200), [0, 2, -np.inf, -np.inf, 0, 3]])
    a, b = a.astype(np.float32), b.astype(np.float32)
    total, split = jax.device_get(jax.jit(_numerics.logaddexp_and_split)(a, b))
    share_a, share_b = jax.device_get(jax.jit(_numerics.logaddexp_shares)(split))
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    expected = np.logaddexp(a64, b64)
    np.testing.assert_allclose(total, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(total, jax.jit(_numerics.fast_logaddexp)(a, b))
    reached = np.isfinite(expected)
    # Relative to each share: float32's rounding of a - b (up to |a - b| 2^-24, 4e-6 at a
    # difference of 70) bounds it, not the share's size.
    for share, x in ((share_a, a64), (share_b, b64)):
        truth = np.exp(x[reached] - expected[reached])
        np.testing.assert_allclose(np.asarray(share)[reached], truth, rtol=1e-5, atol=1e-37)
    # The shares of a sum always add to 1, even of nothing (both -inf: 1 and 0).
    np.testing.assert_allclose(np.asarray(share_a) + np.asarray(share_b), 1, rtol=1e-6)
    assert (share_a[-4], share_b[-4]) == (1, 0)
    # -inf against a finite input: all of it to the finite one (the split is -0.0 there).
    assert (share_a[-5], share_b[-5]) == (0, 1)
    assert np.signbit(split[-5]) and split[-5] == 0


@pytest.mark.parametrize("exponent", [0.5, 1.5, 2.5, 8.5])
def test_safe_pow_of_a_half_exponent_is_a_square_root_within_a_few_ulp(exponent):
    # A half exponent given as a Python number is whole powers times a square root, no pow:
    # against float64 over normal bases (and 0, negatives: 0, NaN stays NaN), with the
    # gradient finite (0) at base 0 and matching finite differences elsewhere.
    base = np.concatenate([np.logspace(-37, 4, 400), [0, -1, np.nan]]).astype(np.float32)
    function = jax.jit(lambda x: _numerics.safe_pow(x, exponent))
    assert " power(" not in compile_as_users(function.lower(base)).as_text()
    ours = np.asarray(function(base), np.float64)
    with np.errstate(invalid="ignore"):
        expected = np.power(base.astype(np.float64), exponent)
    normal = np.isfinite(expected) & (expected > np.finfo(np.float32).tiny)
    normal &= expected < np.finfo(np.float32).max
    np.testing.assert_allclose(ours[normal], expected[normal], rtol=4e-7)
    assert ours[-3] == 0 and ours[-2] == 0 and np.isnan(ours[-1])
    gradient = jax.jit(jax.vmap(jax.grad(lambda x: _numerics.safe_pow(x, exponent))))
    assert np.all(gradient(np.array([0.0, -1.0], np.float32)) == 0)
    check_grads(lambda x: _numerics.safe_pow(x, exponent), (np.float32(0.7),), 2, eps=1e-3)


def test_log1p_unit_matches_float64_log1p_on_the_unit_interval():
    # log1p of an exp(-|x|): log(1 + u) with Goldberg's correction, as precise as log1p.
    u = np.concatenate([np.logspace(-37, 0, 2000), [0.0, 1.0]]).astype(np.float32)
    ours = np.asarray(jax.jit(_numerics.log1p_unit)(u), np.float64)
    expected = np.log1p(u.astype(np.float64))
    np.testing.assert_allclose(ours, expected, rtol=3e-7, atol=0)
    assert ours[-2] == 0


def test_xlogx_is_x_log_x_with_its_limit_at_0():
    x = np.array([0.0, 1e-30, 0.5, 1.0, 3e38, np.inf, np.nan, -1e-30, -0.5], np.float32)
    # 3e38 log 3e38 overflows float32 to inf, as the float64 value rounded to float32; a
    # negative x gives NaN, as log (not a finite -87 x from a floor at the smallest normal).
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        wide = x.astype(np.float64)
        expected = np.where(x == 0, 0.0, wide * np.log(wide)).astype(np.float32)
    values, slopes = jax.jit(lambda x: (_numerics.xlogx(x), _numerics.xlogx_slope(x[:4])))(x)
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    # Its slope, for the partials: log x + 1, and 0 at x = 0.
    np.testing.assert_allclose(
        slopes,
        [0.0, np.log(1e-30) + 1, np.log(0.5) + 1, 1.0],
        rtol=1e-6,
    )


_RNG = np.random.default_rng(1)
_X = jnp.asarray(_RNG.normal(size=64) * 2, jnp.float32)
_Y = jnp.asarray(_RNG.normal(size=64), jnp.float32)
_HARD = (_Y > 0).astype(jnp.float32)
_SOFT = jax.nn.sigmoid(_Y)

# Losses whose derivative in a hyperparameter is one of ``_numerics.elementwise``'s (or a
# row kernel's) written partials (the shared suite differentiates the arrays only).
HYPERPARAMETER_PARTIALS = {
    "huber delta": (lambda d: jaxloss.huber(_X, _Y, delta=d), 0.8),
    "smooth_l1 beta": (lambda b: jaxloss.smooth_l1(_X, _Y, beta=b), 0.8),
    "charbonnier epsilon": (lambda e: jaxloss.charbonnier(_X, _Y, epsilon=e), 0.5),
    "sigmoid_focal alpha": (lambda a: jaxloss.sigmoid_focal(_X, _HARD, alpha=a), 0.3),
    "sigmoid_focal gamma": (lambda g: jaxloss.sigmoid_focal(_X, _SOFT, gamma=g), 0.7),
    "binary_cross_entropy_with_logits pos_weight": (
        lambda w: jaxloss.binary_cross_entropy_with_logits(
            _X.reshape(16, 4), _SOFT.reshape(16, 4), pos_weight=w
        ),
        [0.5, 1.0, 2.0, 3.0],
    ),
    "dpo beta": (lambda b: jaxloss.dpo(_X, _Y, 0.5 * _Y, 0.3 * _X, beta=b), 0.3),
    "dpo label_smoothing": (
        lambda s: jaxloss.dpo(_X, _Y, 0.5 * _Y, 0.3 * _X, label_smoothing=s),
        0.2,
    ),
    # The row kernels' written partials (``_kernels.row_kl``) in α and 1/T.
    "skew_kl alpha": (lambda a: jaxloss.skew_kl(_X.reshape(8, 8), _Y.reshape(8, 8), alpha=a), 0.3),
    "skew_kl[reverse] alpha": (
        lambda a: jaxloss.skew_kl(_X.reshape(8, 8), _Y.reshape(8, 8), alpha=a, direction="reverse"),
        0.3,
    ),
    "skew_kl temperature": (
        lambda t: jaxloss.skew_kl(_X.reshape(8, 8), 2 * _Y.reshape(8, 8), temperature=t),
        1.5,
    ),
    "tvd temperature": (
        lambda t: jaxloss.tvd(_X.reshape(8, 8), 2 * _Y.reshape(8, 8), temperature=t),
        1.5,
    ),
}


@pytest.mark.parametrize("name", HYPERPARAMETER_PARTIALS)
def test_hyperparameter_partials_match_finite_differences(name):
    loss, value = HYPERPARAMETER_PARTIALS[name]
    check_grads(
        jax.jit(loss),
        (jnp.asarray(value, jnp.float32),),
        order=1,
        modes=("rev",),
        eps=1e-2,
        rtol=1e-3,
    )


@pytest.mark.parametrize("length", [20, 50257, 1009 * 7, 1 << 15])
def test_row_sums_match_float64_without_writing_the_rows(length):
    # _numerics.row_sums: several sums over the last axis in one reduction, by blocks of a
    # divisor of the length (20: one block; 50257 = 29 · 1733; 1 << 15: blocks of 32) or, for
    # a length with no divisor in [8, 32] (7063 = 7 · 1009), compensated (TwoSum). Against
    # float64 NumPy sums of the float32 exponentials (positive terms: XLA's plain reduction
    # loop loses ~3e-5 of such a sum at 131,072 entries), and no array of the rows' size
    # written (XLA's memory analysis).
    x = np.random.default_rng(0).normal(scale=2.0, size=(4, length)).astype(np.float32)

    def sums(x):
        return _numerics.row_sums(jnp.exp(x), jnp.exp(-x), x * jnp.exp(x))

    program = compile_as_users(jax.jit(sums).lower(x))
    assert program.memory_analysis().temp_size_in_bytes < x.nbytes // 4
    x64 = np.asarray(x, np.float64)
    for got, expected in zip(
        program(x),
        (np.exp(x64).sum(-1), np.exp(-x64).sum(-1), (x64 * np.exp(x64)).sum(-1)),
        strict=True,
    ):
        np.testing.assert_allclose(got, expected, rtol=5e-7)


@pytest.mark.parametrize("length", [20, 64, 37])
def test_row_sums_derivatives_to_second_order_with_a_constant_operand(length):
    # _numerics.row_sums' own derivative rule: JAX's rule for its variadic lax.reduce raised
    # a TypeError on an operand constant in the input (a symbolic-zero tangent: jax.hessian
    # of distill_kl in the student) and, at a length summed by TwoSum (37), on any input.
    # For one block (20), blocks (64) and TwoSum (37): the value under jvp is the plain one,
    # bit for bit; the tangents, the gradient of w · sums and its derivative along the
    # tangent v (forward over reverse and reverse over reverse) against float64 closed
    # forms: (w0 + w2 (1 + x)) e^x and (w0 + w2 (2 + x)) e^x v.
    rng = np.random.default_rng(1)
    x, tangent = rng.normal(size=(2, 3, length)).astype(np.float32)
    constant = np.cos(np.arange(length, dtype=np.float32))
    weights = (0.7, 0.4, -1.3)

    def sums(x):
        return _numerics.row_sums(jnp.exp(x), jnp.broadcast_to(constant, x.shape), x * jnp.exp(x))

    def weighted(x):
        return sum(w * jnp.sum(s) for w, s in zip(weights, sums(x), strict=True))

    @jax.jit  # one compilation for every derivative below
    def run(x, tangent):
        primal, tangents = jax.jvp(sums, (x,), (tangent,))
        curvature = jax.jvp(jax.grad(weighted), (x,), (tangent,))[1]
        reverse = jax.grad(lambda x: jnp.vdot(jax.grad(weighted)(x), tangent))(x)
        return sums(x), primal, tangents, jax.grad(weighted)(x), curvature, reverse

    plain, primal, tangents, gradient, curvature, reverse = run(x, tangent)
    for got, expected in zip(primal, plain, strict=True):
        np.testing.assert_array_equal(got, expected)
    x64, v64 = np.asarray(x, np.float64), np.asarray(tangent, np.float64)
    e = np.exp(x64)
    np.testing.assert_allclose(tangents[0], (e * v64).sum(-1), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(tangents[1], 0)
    np.testing.assert_allclose(tangents[2], ((1 + x64) * e * v64).sum(-1), rtol=1e-6, atol=1e-6)
    w0, _, w2 = weights
    np.testing.assert_allclose(gradient, (w0 + w2 * (1 + x64)) * e, rtol=1e-6, atol=1e-6)
    for got in (curvature, reverse):
        np.testing.assert_allclose(got, (w0 + w2 * (2 + x64)) * e * v64, rtol=1e-6, atol=1e-6)


def _arrays_written(program: jax.stages.Compiled, shape: tuple[int, ...]) -> int:
    """How many instructions of the compiled program's entry computation produce an array of
    ``shape`` (float32): its outputs, and whatever it writes out between its fusions."""
    text = program.as_text()
    entry = text[text.index("\nENTRY") :]
    dims = ",".join(map(str, shape))
    return len(re.findall(rf"= f32\[{dims}\]\{{[0-9,]*\}} (?:fusion|add|subtract)\(", entry))


def test_distance_matches_float64_with_zero_gradient_at_zero():
    # _numerics.distance, ‖x − y + shift‖ with its derivative written out: values and
    # gradients (in x, y and a traced shift) against float64, an exact zero distance with a
    # zero gradient (not NaN), NaN kept, check_grads to second order, and the compiled value
    # and gradient writing no [n, d] array besides the two gradients (through safe_norm of the
    # difference, XLA writes the difference out: three).
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(2, 6, 5)).astype(np.float32)
    x[1] = np.round(4 * x[1]) / 4
    y[1] = x[1] + 0.5  # shifted by -0.5 below: an exact zero distance (quarters are exact)
    x[2, 3] = np.nan

    def total(x, y, shift):
        return jnp.sum(_numerics.distance(x, y, shift) * jnp.arange(1.0, 7.0))

    value, grads = jax.device_get(jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2)))(x, y, 0.5))
    u = x.astype(np.float64) - y + 0.5
    norms = np.sqrt(np.sum(u**2, -1))
    weights = np.arange(1.0, 7.0)[:, None]
    with np.errstate(invalid="ignore"):
        slope = np.where(norms[:, None] == 0, 0, u / norms[:, None]) * weights
    finite = np.arange(6) != 2

    @jax.jit
    def distance_and_shift_grad(x, y, x_finite):
        # The shift a Python number for the distance, as given eagerly.
        return _numerics.distance(x, y, 0.5), jax.grad(total, argnums=2)(x_finite, y, 0.5)

    distances, shift_grad = distance_and_shift_grad(x, y, np.where(finite[:, None], x, y))
    np.testing.assert_allclose(distances, norms, rtol=1e-6)
    np.testing.assert_allclose(grads[0], slope, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(grads[1], -slope, rtol=1e-6, atol=1e-7)
    assert np.isnan(value) and np.all(np.isnan(grads[0][2])) and np.isnan(grads[2])
    assert np.all(np.asarray(grads[0][1]) == 0)
    np.testing.assert_allclose(
        shift_grad,
        slope[finite].sum() + 3 * np.sqrt(5),  # row 2 (weight 3) replaced: u = 0.5
        rtol=1e-5,
    )
    check_grads(
        jax.jit(lambda x, y: _numerics.distance(x, y, 1e-3)),
        (x[3:], y[3:]),
        order=2,
        modes=("fwd", "rev"),
    )
    rows = np.zeros((512, 64), np.float32)
    program = jax.jit(
        jax.value_and_grad(lambda x, y: jnp.sum(_numerics.distance(x, y, 1e-6)), argnums=(0, 1))
    )
    assert _arrays_written(compile_as_users(program.lower(rows, rows)), (512, 64)) == 2

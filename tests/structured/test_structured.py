"""Sparsemax, its losses and the Fenchel–Young factory: the paper's algorithm (float64),
optax's functions, hand-worked values and the edge cases the shared suite cannot know."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.experimental import checkify

import jaxloss
from tests._suite import compiled
from tests.structured import reference as ref
from tests.structured.cases import sparsemax_max

# Every JAX computation of a test runs in one compiled function (eager dispatch would compile
# each operation on its own).


def _sparsemax_vjp(x, cotangent, axis=-1):
    probs, pullback = jax.vjp(functools.partial(jaxloss.sparsemax, axis=axis), x)
    return probs, pullback(cotangent)[0]


def _jacobian_vjp(probs, cotangent):
    """The sparsemax Jacobian diag(s) − s sᵀ/|S| applied to a cotangent, float64, rows last."""
    support = np.asarray(probs) > 0
    c = np.where(support, np.asarray(cotangent, np.float64), 0)
    mean = c.sum(-1, keepdims=True) / support.sum(-1, keepdims=True)
    return np.where(support, c - mean, 0)


def _structured_rows(num_classes: int) -> np.ndarray:
    """Rows on which a careless threshold search takes many steps or rounds badly."""
    i = np.arange(1, num_classes + 1, dtype=np.float64)
    rows = [-i / num_classes, -np.sqrt(i), 1 / i, np.exp(-i / 10), -((i / num_classes) ** 3)]
    return np.stack([a * row for row in rows for a in (0.3, 3.0, 30.0)])


SCALES = (1e-3, 1.0, 100.0)


@functools.cache
def _sparsemax_random():
    rng = np.random.default_rng(0)
    xs = [(s * rng.normal(size=(2, 7, 33))).astype(np.float32) for s in SCALES]
    xs.append(_structured_rows(33).reshape(3, 5, 33).astype(np.float32))
    cotangents = [rng.normal(size=x.shape).astype(np.float32) for x in xs]
    return (
        xs,
        cotangents,
        jax.tree.map(
            np.asarray,
            jax.jit(lambda *a: [_sparsemax_vjp(x, c) for x, c in zip(*a, strict=True)])(
                xs, cotangents
            ),
        ),
    )


@pytest.mark.parametrize("index", range(len(SCALES) + 1), ids=[*map(str, SCALES), "structured"])
def test_sparsemax_is_the_papers_projection_with_its_jacobian(index):
    xs, cotangents, outs = _sparsemax_random()
    x, cotangent, (probs, grad) = xs[index], cotangents[index], outs[index]
    expected = ref.sparsemax(x)
    scale = np.abs(x).max()
    np.testing.assert_allclose(probs, expected, atol=2e-6 * max(1.0, scale))
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-5)
    # The support is the paper's (exact zeros where it has them) and so is the Jacobian.
    np.testing.assert_array_equal(probs > 0, expected > 1e-6 * max(1.0, scale))
    np.testing.assert_allclose(grad, _jacobian_vjp(probs, cotangent), atol=1e-5)


@functools.cache
def _sparsemax_against_optax():
    rng = np.random.default_rng(1)
    x = (2 * rng.normal(size=(16, 9))).astype(np.float32)
    cotangent = rng.normal(size=x.shape).astype(np.float32)

    @jax.jit
    def run(x, cotangent):
        peer = jax.vjp(jax.vmap(optax.projections.projection_simplex), x)
        return _sparsemax_vjp(x, cotangent), (peer[0], peer[1](cotangent)[0])

    return jax.tree.map(np.asarray, run(x, cotangent))


def test_sparsemax_equals_optax_projection_simplex():
    (probs, grad), (expected, expected_grad) = _sparsemax_against_optax()
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, atol=1e-6)


def test_sparsemax_is_exact_for_ties_and_large_scores():
    x = np.array(
        [
            [1.0, 1.0, 0.0, 0.0],  # two equal winners
            [0.0, 0.0, 0.0, 0.0],  # uniform
            [2.0, 1.0, 1.0, 0.5],  # a tie exactly at the threshold: left out
            [1e4, 0.0, -1e4, 1e4 - 0.5],  # large scores a half apart
            [3.0, 3.0, 3.0, -np.inf],  # -inf: probability 0
        ],
        np.float32,
    )
    probs = np.asarray(jax.jit(jaxloss.sparsemax)(x))
    expected = [
        [0.5, 0.5, 0, 0],
        [0.25, 0.25, 0.25, 0.25],
        [1, 0, 0, 0],
        [0.75, 0, 0, 0.25],
        [1 / 3, 1 / 3, 1 / 3, 0],
    ]
    np.testing.assert_array_equal(probs[:4], expected[:4])
    np.testing.assert_allclose(probs[4], expected[4], rtol=1e-7)


@functools.cache
def _sparsemax_edge_cases():
    x = np.array([[-np.inf, 0.5, 0.0, -np.inf], [np.nan, 0.0, 1.0, 2.0], [-np.inf] * 4])
    cotangent = np.arange(12.0).reshape(3, 4)
    half = np.array([[0.3, 0.1, -2.0]])
    batch = np.random.default_rng(2).normal(size=(4, 3, 5)).astype(np.float32)

    @jax.jit
    def run(x, cotangent, half, batch):
        return (
            _sparsemax_vjp(x, cotangent),
            jaxloss.sparsemax(half.astype(jnp.bfloat16)),
            jaxloss.sparsemax(half.astype(jnp.float16)),
            jaxloss.sparsemax(batch, axis=1),
            jax.vmap(jaxloss.sparsemax, in_axes=2, out_axes=2)(batch),
            jaxloss.sparsemax(jnp.zeros((0, 3))),
        )

    return jax.tree.map(np.asarray, run(x.astype(np.float32), cotangent, half, batch))


def test_sparsemax_minus_inf_nan_half_precision_and_axis():
    (probs, grad), bf16, f16, along_axis, vmapped, empty = _sparsemax_edge_cases()
    # -inf classes get 0 and no gradient; the others are the finite classes' projection.
    np.testing.assert_allclose(probs[0], [0, 0.75, 0.25, 0], rtol=1e-7)
    np.testing.assert_allclose(grad[0], [0, -0.5, 0.5, 0])
    # NaN propagates to the row; a row of only -inf has no projection.
    assert np.all(np.isnan(probs[1])) and np.all(np.isnan(probs[2]))
    assert bf16.dtype == f16.dtype == np.float32
    np.testing.assert_allclose(bf16, [[0.6, 0.4, 0]], atol=1e-2)
    np.testing.assert_allclose(f16, [[0.6, 0.4, 0]], atol=1e-3)
    np.testing.assert_allclose(along_axis, vmapped, rtol=1e-6)
    np.testing.assert_allclose(along_axis.sum(1), 1, rtol=1e-6)
    assert empty.shape == (0, 3)


def test_multiclass_sparsemax_loss_second_order_gradients():
    # Its Hessian is sparsemax's Jacobian: both custom JVPs, at second order, against finite
    # differences in float64, jitted (compiled once per transformation).
    with jax.enable_x64(True):
        x = np.random.default_rng(3).normal(size=(3, 6))
        labels = np.array([0, 3, 5])
        loss = jax.jit(lambda x: jaxloss.multiclass_sparsemax_loss(x, labels))
        jax.test_util.check_grads(loss, (x,), order=2, modes=("rev",))


def test_sparsemax_errors_name_the_input():
    with pytest.raises(ValueError, match="`logits` must have a class axis"):
        jaxloss.sparsemax(jnp.float32(1.0))
    with pytest.raises(TypeError, match="`logits`"):
        jaxloss.sparsemax(jnp.ones((2, 3), jnp.int32))
    with pytest.raises(ValueError, match="`axis`=2"):
        jaxloss.sparsemax(jnp.ones((2, 3)), axis=2)
    # No classes: no simplex (was JAX's "zero-size array to reduction operation max").
    with pytest.raises(ValueError, match="`logits` must have at least one class"):
        jaxloss.sparsemax(jnp.ones((0, 2)), axis=0)
    with pytest.raises(ValueError, match="`logits` must have at least one class"):
        jaxloss.multiclass_sparsemax_loss(jnp.ones((3, 0)), jnp.zeros(3, jnp.int32))


BINARY_EDGES = np.array([np.inf, -np.inf, 1e30, -1e30, 1.0, -1.0, 0.0, 0.5, -3.0], np.float32)


@functools.cache
def _binary_against_optax():
    x = np.tile(BINARY_EDGES, 2)
    labels = np.repeat(np.array([0, 1], np.int8), BINARY_EDGES.size)

    @jax.jit
    def run(x):
        ours = compiled.value_and_grads(
            lambda x: jaxloss.sparsemax_loss(x, labels, reduction="none"), x
        )
        theirs = compiled.value_and_grads(lambda x: optax.losses.sparsemax_loss(x, labels), x)
        return ours, theirs

    return jax.tree.map(np.asarray, run(x))


def test_sparsemax_loss_equals_optax_at_every_edge():
    # Including ±inf and 1e30: jax.nn.sparse_plus's own gradient is NaN at ±inf.
    (value, (grad,)), (expected, (expected_grad,)) = _binary_against_optax()
    np.testing.assert_array_equal(value, expected)
    finite = np.isfinite(expected_grad)
    np.testing.assert_array_equal(grad[finite], expected_grad[finite])
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[:2], [1, 0])  # label 0 at ±inf


def test_sparsemax_loss_labels_as_optax_and_nan_propagates():
    x = np.array([-0.6, 0.0, 0.2, 0.9, -5.0, 5.0, 1.0], np.float32)
    float_labels = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0, np.nan], np.float32)
    other_labels = np.array([0, 2, 0, -1, 0, 7, 1], np.int32)  # any nonzero counts as 1

    @jax.jit
    def run(x):
        return [
            jaxloss.sparsemax_loss(x, labels, reduction="none")
            for labels in (float_labels, float_labels.astype(bool), other_labels)
        ] + [optax.losses.sparsemax_loss(x, other_labels)]

    floats, booleans, others, optax_others = map(np.asarray, run(x))
    np.testing.assert_allclose(floats[:6], ref.sparsemax_loss(x[:6], float_labels[:6]), atol=1e-7)
    assert np.isnan(floats[6])
    np.testing.assert_array_equal(booleans[:6], floats[:6])
    np.testing.assert_array_equal(others, optax_others)
    # Zero exactly where sparse_sigmoid(x) equals the label.
    assert floats[5] == 0 and floats[4] == 0 and np.all(floats[:4] > 0)


def test_sparsemax_loss_checked_mode_rejects_other_labels():
    checked = jaxloss.checked(jaxloss.sparsemax_loss)
    with pytest.raises(checkify.JaxRuntimeError, match="`labels` must be 0 or 1"):
        checked(jnp.zeros(3), jnp.array([0, 1, 2]))
    with pytest.raises(TypeError, match="`labels`"):
        jaxloss.sparsemax_loss(jnp.zeros(2), jnp.zeros(2, jnp.complex64))


@functools.cache
def _multiclass_cases():
    logits = np.array(
        [
            [1.5, 1.0, -2.0, 0.0],  # worked below
            [1e4, 0.0, 0.0, 0.0],  # confident and correct: exactly 0
            [-np.inf, 0.0, 0.5, -np.inf],  # row 0 with impossible classes for -2 and 0
            [-np.inf, 0.0, 0.5, 0.0],  # an impossible label: +inf
            [0.1, 0.2, 0.3, 0.4],  # out-of-range labels below: excluded
            [0.1, 0.2, 0.3, 0.4],
            [0.1, 0.2, 0.3, 0.4],
        ],
        np.float32,
    )
    labels = np.array([1, 0, 1, 0, -1, 4, 1000], np.int64)
    counted = np.arange(7) < 3

    @jax.jit
    def run(logits):
        return (
            jaxloss.multiclass_sparsemax_loss(logits, labels, reduction="none"),
            compiled.value_and_grads(
                lambda x: jaxloss.multiclass_sparsemax_loss(x, labels, where=counted), logits
            ),
            compiled.value_and_grads(
                lambda x: jaxloss.multiclass_sparsemax_loss(x, labels[4:], reduction="sum"),
                logits[4:],
            ),
            jaxloss.multiclass_sparsemax_loss(logits[4:], labels[4:]),
        )

    return jax.tree.map(np.asarray, run(logits))


def test_multiclass_sparsemax_loss_worked_values_and_excluded_labels():
    none, (mean, (grad,)), (total, (excluded_grad,)), all_excluded = _multiclass_cases()
    # Row 0: p = (0.75, 0.25, 0, 0); ⟨p, x − x_1⟩ = 0.375, ½(1 − ‖p‖²) = 0.1875.
    np.testing.assert_allclose(none[:3], [0.5625, 0.0, 0.5625], atol=1e-7)
    assert none[3] == np.inf
    np.testing.assert_array_equal(none[4:], 0)
    np.testing.assert_allclose(mean, 2 * 0.5625 / 3, rtol=1e-6)
    # The gradient is (p − onehot(y)) / count, also through the impossible classes.
    np.testing.assert_allclose(grad[0], np.array([0.75, -0.75, 0, 0]) / 3, rtol=1e-6)
    np.testing.assert_array_equal(grad[1], 0)
    np.testing.assert_allclose(grad[2], np.array([0, -0.75, 0.75, 0]) / 3, rtol=1e-6)
    np.testing.assert_array_equal(grad[3:], 0)
    assert float(total) == 0.0 and float(all_excluded) == 0.0
    np.testing.assert_array_equal(excluded_grad, 0)


def test_multiclass_sparsemax_loss_unlike_optax_does_not_wrap_minus_one():
    logits = np.array([[0.0, 0.0, 3.0], [0.0, 0.0, 3.0]], np.float32)
    labels = np.array([-1, 0])

    @jax.jit
    def run(logits):
        return (
            optax.losses.multiclass_sparsemax_loss(logits, labels),
            jaxloss.multiclass_sparsemax_loss(logits, labels, reduction="none"),
            jaxloss.multiclass_sparsemax_loss(logits, labels),
        )

    wrapped, ours, mean = map(np.asarray, run(logits))
    # optax reads class 2 for the label -1 (a loss of 0); jaxloss excludes the row, and
    # the mean is over the other one.
    np.testing.assert_allclose(wrapped, [0.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(ours, [0.0, 3.0], atol=1e-6)
    np.testing.assert_allclose(mean, 3.0, rtol=1e-6)


def _perceptron(scores, labels, where, reduction):
    """optax's multiclass perceptron loss over the rows ``where`` counts, reduced."""
    flat = optax.losses.multiclass_perceptron_loss(
        scores.reshape(-1, scores.shape[-1]), labels.reshape(-1)
    )
    loss = jnp.where(where, flat.reshape(where.shape), 0)
    if reduction == "none":
        return loss
    return loss.sum() / (where.sum() if reduction == "mean" else 1)


FENCHEL_YOUNG = ("logsumexp", "sparsemax", "max")
REDUCTIONS = ("none", "mean")  # "sum": the shared suite checks it is the mean times the count


@functools.cache
def _fenchel_young_against_the_losses():
    rng = np.random.default_rng(4)
    scores = (2 * rng.normal(size=(2, 5, 6))).astype(np.float32)
    probabilities = rng.dirichlet(np.ones(6), size=(2, 5)).astype(np.float32)
    labels = rng.integers(0, 6, size=(2, 5))
    one_hot = np.eye(6, dtype=np.float32)[labels]
    where = rng.uniform(size=(2, 5)) < 0.7
    where[0, 0] = True

    def pair(ours, theirs, *inputs):
        return compiled.value_and_grads(ours, *inputs), compiled.value_and_grads(theirs, *inputs)

    @jax.jit
    def run(scores, probabilities, one_hot):
        out = {}
        for r in REDUCTIONS:
            out["logsumexp", r] = pair(
                lambda s, t, r=r: jaxloss.fenchel_young(jax.nn.logsumexp)(
                    s, t, where=where, reduction=r
                ),
                lambda s, t, r=r: jaxloss.cross_entropy(s, t, where=where, reduction=r),
                scores,
                probabilities,
            )
            out["sparsemax", r] = pair(
                lambda s, r=r: jaxloss.fenchel_young(sparsemax_max)(
                    s, one_hot, where=where, reduction=r
                ),
                lambda s, r=r: jaxloss.multiclass_sparsemax_loss(
                    s, labels, where=where, reduction=r
                ),
                scores,
            )
            out["max", r] = pair(
                lambda s, r=r: jaxloss.fenchel_young(jnp.max)(s, one_hot, where=where, reduction=r),
                lambda s, r=r: _perceptron(s, labels, where, r),
                scores,
            )
        return out

    return scores, where, jax.tree.map(np.asarray, run(scores, probabilities, one_hot))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("max_fun", FENCHEL_YOUNG)
def test_fenchel_young_is_cross_entropy_sparsemax_and_perceptron_losses(max_fun, reduction):
    # logsumexp: cross-entropy on probabilities (scores and targets differentiated); the
    # sparsemax conjugate: the multiclass sparsemax loss; the max: optax's perceptron.
    scores, where, out = _fenchel_young_against_the_losses()
    (value, grads), (expected, expected_grads) = out[max_fun, reduction]
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
    if max_fun == "logsumexp":
        # The targets' gradient is −θ (optax's value leaves out Ω(y)); cross-entropy's,
        # −log softmax(θ), differs from it by the log-normalizer.
        weight = {"none": 1, "sum": 1, "mean": 1 / where.sum()}[reduction]
        targets_grad = -weight * np.where(where[..., None], scores, 0)
        np.testing.assert_allclose(grads[1], targets_grad, rtol=1e-5, atol=1e-6)
        grads, expected_grads = grads[:1], expected_grads[:1]
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)


@functools.cache
def _fenchel_young_edge_cases():
    scores = np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -1.0]], np.float32)
    targets = np.array([[0.3, 0.0, 0.7], [0.0, 1.0, 0.0]], np.float32)
    tempered = functools.partial(jax.nn.logsumexp, b=0.5)

    def one_dimensional(theta):
        assert theta.ndim == 1  # the factory applies max_fun to one score vector
        return jnp.max(theta)

    @jax.jit
    def run(scores, targets):
        loss = jaxloss.fenchel_young(jax.nn.logsumexp)
        return (
            compiled.value_and_grads(lambda s, t: loss(s, t, reduction="none"), scores, targets),
            optax.losses.make_fenchel_young_loss(jax.nn.logsumexp)(scores, targets),
            jaxloss.fenchel_young(tempered)(scores[1:], targets[1:]),
            jaxloss.fenchel_young(one_dimensional)(scores[1:], targets[1:], reduction="sum"),
            loss(scores.astype(jnp.bfloat16), targets.astype(jnp.bfloat16), reduction="none"),
            loss(jnp.zeros((0, 3)), jnp.zeros((0, 3))),
        )

    return jax.tree.map(np.asarray, run(scores, targets))


def test_fenchel_young_edge_cases():
    (value, grads), optax_value, tempered, plain_max, half, empty = _fenchel_young_edge_cases()
    # A zero target never reads its score: -inf there is finite (optax: NaN).
    lse = np.log(1 + np.e)
    np.testing.assert_allclose(
        value,
        [lse - 0.7, ref.fenchel_young_logsumexp([[2.0, 0.5, -1.0]], [[0, 1, 0]])[0]],
        rtol=1e-6,
    )
    assert np.isnan(optax_value[0]) and np.isclose(optax_value[1], value[1])
    assert all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(
        grads[0][0], [1 / (1 + np.e) - 0.3, 0, np.e / (1 + np.e) - 0.7], rtol=1e-5
    )
    np.testing.assert_allclose(grads[1][0, [0, 2]], [0.0, -1.0])
    # Options of max_fun go through functools.partial.
    np.testing.assert_allclose(tempered, value[1] + np.log(0.5), rtol=1e-6)
    np.testing.assert_allclose(plain_max, 1.5)
    assert half.dtype == np.float32
    np.testing.assert_allclose(half, value, rtol=1e-2)
    assert float(empty) == 0.0


def test_fenchel_young_errors_name_the_inputs():
    loss = jaxloss.fenchel_young(jax.nn.logsumexp)
    assert loss.__name__ == "fenchel_young(logsumexp)"
    with pytest.raises(ValueError, match=r"`scores` \(2, 3\), `targets` \(2, 4\)"):
        loss(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="`scores` must have a class axis"):
        loss(jnp.float32(0.0), jnp.float32(0.0))
    with pytest.raises(TypeError, match="`scores`"):
        loss(jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 3)))


def test_fenchel_young_targets_gradient_is_minus_the_scores():
    # ∂ℓ/∂y = −θ, a target of 0 included (optax's): a zero target did not read its score,
    # so its gradient was 0. Only a −inf score under a zero target is left unread.
    scores = np.array([[0.3, -1.2, 2.0, 0.7]], np.float32)
    targets = np.array([[0.0, 0.0, 1.0, 0.0]], np.float32)
    ours = jaxloss.fenchel_young(jax.nn.logsumexp)
    theirs = optax.losses.make_fenchel_young_loss(jax.nn.logsumexp)
    banned = scores.copy()
    banned[0, 1] = -np.inf
    grad, optax_grad, (value, banned_grad) = jax.tree.map(
        np.asarray,
        jax.jit(  # one compilation for the three
            lambda: (
                jax.grad(lambda t: ours(scores, t, reduction="sum"))(targets),
                jax.grad(lambda t: theirs(scores, t).sum())(targets),
                jax.value_and_grad(lambda t: ours(banned, t, reduction="sum"))(targets),
            )
        )(),
    )
    np.testing.assert_allclose(grad, -scores, rtol=1e-6)
    np.testing.assert_allclose(grad, optax_grad)
    assert np.isfinite(value) and banned_grad[0, 1] == 0
    np.testing.assert_allclose(np.delete(banned_grad, 1, axis=1), -np.delete(scores, 1, axis=1))

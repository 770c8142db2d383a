"""Margin softmax, center loss and linear cross-entropy: the papers' formulas in their
special regions, chunked == unchunked, torch parity for linear_cross_entropy."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from jaxloss import compose
from jaxloss._kernels.chunked_logsumexp import weighted_lse_sum
from jaxloss._reduce import linear_weights, reduce_loss
from jaxloss.margin.linear import _rows_per_block
from tests._suite import compiled
from tests._suite.registry import REGISTRY
from tests.margin import reference as ref

# The margin heads' options, from their cases (tests/margin/cases.py).
MARGIN_LOSSES = {
    name: case.kwargs
    for name, case in REGISTRY.items()
    if case.margin_head and case.fn is getattr(jaxloss, name, None)
}


def _head(batch=9, classes=23, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(batch, dim)).astype(np.float32)
    centers = rng.normal(size=(classes, dim)).astype(np.float32)
    labels = rng.integers(0, classes, size=batch).astype(np.int32)
    return embeddings, centers, labels


@pytest.mark.parametrize("name", sorted(MARGIN_LOSSES))
def test_chunked_equals_unchunked(name):
    # 23 classes: chunks of 5 (not a divisor), 23 (one whole block) and 64 (a block larger
    # than the classes), all compiled in one function with the unchunked loss.
    embeddings, centers, labels = _head()
    fn = getattr(jaxloss, name)
    options = MARGIN_LOSSES[name]
    where = np.arange(9) != 4
    chunk_sizes = (None, 5, 23, 64)

    @jax.jit
    def run(x, w):
        def loss(x, w, chunk):
            return fn(x, w, labels, chunk_size=chunk, where=where, **options)

        return [jax.value_and_grad(loss, argnums=(0, 1))(x, w, c) for c in chunk_sizes]

    (value, grads), *chunked_runs = run(embeddings, centers)
    for chunk_size, (chunked, chunked_grads) in zip(chunk_sizes[1:], chunked_runs, strict=True):
        np.testing.assert_allclose(chunked, value, rtol=1e-5, err_msg=str(chunk_size))
        for g, cg in zip(grads, chunked_grads, strict=True):
            np.testing.assert_allclose(
                cg, g, rtol=1e-5, atol=1e-6 * np.abs(g).max(), err_msg=str(chunk_size)
            )


@pytest.mark.parametrize("name", sorted(MARGIN_LOSSES))
def test_chunked_matches_the_reference(name):
    embeddings, centers, labels = _head(seed=1)
    options = MARGIN_LOSSES[name]
    loss = functools.partial(getattr(jaxloss, name), chunk_size=4, reduction="none", **options)
    np.testing.assert_allclose(
        jax.jit(loss)(embeddings, centers, labels),
        getattr(ref, name)(embeddings, centers, labels, **options),
        rtol=1e-5,
    )


def _aligned(cos_targets, classes=4):
    """Embeddings whose cosine to their class center (class 0, e0) is each of
    ``cos_targets``; they turn in the (e0, e1) plane, and the other centers (e2, e3, ...)
    are orthogonal to it, so only the target logit changes."""
    dim = classes + 1
    centers = np.zeros((classes, dim), np.float32)
    centers[0, 0] = 1.0
    centers[np.arange(1, classes), np.arange(2, classes + 1)] = 1.0
    angles = np.arccos(np.clip(cos_targets, -1, 1))
    embeddings = np.zeros((len(angles), dim), np.float32)
    embeddings[:, 0], embeddings[:, 1] = np.cos(angles), np.sin(angles)
    return embeddings, centers, np.zeros(len(cos_targets), np.int32)


# m = 0.5: the fallback starts at cos θ = cos(π - 0.5) ≈ -0.878; cos θ <= 0 for easy.
FALLBACK_COS = np.array([0.95, 0.3, -0.2, -0.85, -0.9, -0.99, -1.0])


@functools.cache
def _arcface_fallback():
    """Both ``easy_margin`` cases of the test below, from one compiled function."""
    options = {easy: {"scale": 4.0, "margin": 0.5, "easy_margin": easy} for easy in (False, True)}

    @jax.jit
    def run(embeddings, centers, labels):
        return {
            easy: jaxloss.arcface(embeddings, centers, labels, reduction="none", **o)
            for easy, o in options.items()
        }

    return options, run(*_aligned(FALLBACK_COS))


@pytest.mark.parametrize("easy_margin", [False, True])
def test_arcface_fallback_region(easy_margin):
    embeddings, centers, labels = _aligned(FALLBACK_COS)
    options, ours = _arcface_fallback()
    expected = ref.arcface(embeddings, centers, labels, **options[easy_margin])
    np.testing.assert_allclose(ours[easy_margin], expected, rtol=1e-5, atol=1e-5)


def test_arcface_target_logit_decreases_through_the_fallback():
    # The point of the fallback: a worse angle never gives a larger target logit.
    cos = np.linspace(0.999, -0.999, 41)
    embeddings, centers, labels = _aligned(cos)
    loss = functools.partial(jaxloss.arcface, scale=4.0, reduction="none")
    losses = jax.jit(loss)(embeddings, centers, labels)
    assert np.all(np.diff(np.asarray(losses)) > 0)


SPHEREFACE_OPTIONS = list(itertools.product([1, 2, 3, 4], [None, 5.0]))  # margin, scale


def _sphereface_inputs():
    # Angles across [0, π] visit every k = 0 .. m-1.
    cos = np.cos(np.linspace(0.05, np.pi - 0.05, 17))
    embeddings, centers, labels = _aligned(cos)
    embeddings = embeddings * np.linspace(0.5, 3.0, 17, dtype=np.float32)[:, None]
    return embeddings, centers, labels


@functools.cache
def _sphereface_every_option():
    """Every (margin, scale) case of the test below, from one compiled function."""

    @jax.jit
    def run(embeddings, centers, labels):
        return [
            jaxloss.sphereface(
                embeddings, centers, labels, margin=margin, scale=scale, lam=0.7, reduction="none"
            )
            for margin, scale in SPHEREFACE_OPTIONS
        ]

    return run(*_sphereface_inputs())


@pytest.mark.parametrize("margin", [1, 2, 3, 4])
@pytest.mark.parametrize("scale", [None, 5.0])
def test_sphereface_every_piece(margin, scale):
    embeddings, centers, labels = _sphereface_inputs()
    options = {"margin": margin, "scale": scale, "lam": 0.7}
    np.testing.assert_allclose(
        _sphereface_every_option()[SPHEREFACE_OPTIONS.index((margin, scale))],
        ref.sphereface(embeddings, centers, labels, **options),
        rtol=1e-5,
        atol=1e-6,
    )


@functools.cache
def _head_grads(name):
    """``jit(grad)`` of a head over its embeddings and centers: ``(x, w, labels)``."""
    loss = functools.partial(getattr(jaxloss, name), **MARGIN_LOSSES[name])
    return jax.jit(jax.grad(loss, argnums=(0, 1)))


@pytest.mark.parametrize("name", sorted(MARGIN_LOSSES))
def test_gradients_are_finite_at_zero_and_pi(name):
    for cos in (1.0, -1.0):
        embeddings, centers, labels = _aligned(np.array([cos, 0.5]))
        grads = _head_grads(name)(embeddings, centers, labels)
        assert all(np.all(np.isfinite(g)) for g in grads), cos


def test_zero_embedding_has_finite_gradients():
    # The shapes of the test above (2 x 5 embeddings, 4 classes): its compilations serve.
    embeddings, centers, labels = _head(batch=2, classes=4, dim=5)
    embeddings[1] = 0.0
    for name in MARGIN_LOSSES:
        grads = _head_grads(name)(embeddings, centers, labels)
        assert all(np.all(np.isfinite(g)) for g in grads), name


def test_am_softmax_is_cosface():
    assert jaxloss.am_softmax is jaxloss.cosface


def test_combined_margin_special_cases():
    embeddings, centers, labels = _head(seed=2)
    s = {"scale": 6.0}

    @jax.jit
    def run(*args):
        return (
            jaxloss.combined_margin(*args, m1=1.0, m2=0.0, m3=0.3, **s),
            jaxloss.cosface(*args, margin=0.3, **s),
            jaxloss.combined_margin(*args, m1=1.0, m2=0.0, m3=0.0, **s),
            jaxloss.norm_softmax(*args, **s),
        )

    combined_cos, cosface, combined_plain, norm_softmax = run(embeddings, centers, labels)
    np.testing.assert_allclose(combined_cos, cosface, rtol=1e-5)
    np.testing.assert_allclose(combined_plain, norm_softmax, rtol=1e-5)


# --- linear_cross_entropy ------------------------------------------------------------------

LCE_GRID = list(itertools.product([False, True], [None, 3], [0.0, 0.2], [None, 7]))


@pytest.mark.parametrize(
    "with_bias, ignore_index, label_smoothing, chunk_size",
    LCE_GRID,
    ids=[f"bias{b}-ignore{i}-ls{ls}-chunk{c}" for b, i, ls, c in LCE_GRID],
)
def test_linear_cross_entropy_matches_torch(with_bias, ignore_index, label_smoothing, chunk_size):
    # Every reduction's value and gradients, from one compiled function per configuration.
    rng = np.random.default_rng(
        LCE_GRID.index((with_bias, ignore_index, label_smoothing, chunk_size))
    )
    hidden = rng.normal(size=(10, 8)).astype(np.float32)
    weight = rng.normal(size=(30, 8)).astype(np.float32)
    bias = rng.normal(size=30).astype(np.float32)
    labels = rng.integers(0, 30, size=10)
    labels[:2] = 3

    def loss(hidden, weight, reduction):
        return jaxloss.linear_cross_entropy(
            hidden,
            weight,
            labels,
            bias=bias if with_bias else None,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction=reduction,
            chunk_size=chunk_size,
        )

    got = compiled.reductions_and_grads(loss, argnums=(0, 1))(hidden, weight)
    for reduction in ("mean", "sum", "none"):
        h = torch.tensor(hidden, dtype=torch.float64, requires_grad=True)
        w = torch.tensor(weight, dtype=torch.float64, requires_grad=True)
        expected = F.linear_cross_entropy(
            h,
            w,
            torch.tensor(labels),
            linear_bias=torch.tensor(bias, dtype=torch.float64) if with_bias else None,
            reduction=reduction,
            ignore_index=-100 if ignore_index is None else ignore_index,
            label_smoothing=label_smoothing,
        )
        expected.sum().backward()
        value, grads = got[reduction]
        np.testing.assert_allclose(
            value, expected.detach().numpy(), rtol=2e-5, atol=1e-6, err_msg=reduction
        )
        for g, expected_grad in zip(grads, (h.grad.numpy(), w.grad.numpy()), strict=True):
            np.testing.assert_allclose(g, expected_grad, rtol=1e-4, atol=1e-6, err_msg=reduction)


def test_linear_cross_entropy_with_every_other_class_banned():
    # A −inf bias on every class but the label's (decoding constrained to one token): loss
    # 0 with zero gradients, as torch. Unchunked, the non-target log-sum-exp of nothing was
    # log 0 with gradient 1/0 · 0 = NaN for the hidden states and the whole weight.
    h = np.array([[0.5, -1.0], [2.0, 0.3]], np.float32)
    w = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    b = np.array([0.0, -np.inf, -np.inf], np.float32)
    labels = np.array([0, 0])
    ht, wt, bt = (torch.tensor(a, requires_grad=True) for a in (h, w, b))
    F.cross_entropy(ht @ wt.T + bt, torch.tensor(labels)).backward()
    chunk_sizes = (None, 2)

    @jax.jit
    def run(h, w, b):
        return [
            jax.value_and_grad(
                lambda h, w, b, c=chunk_size: jaxloss.linear_cross_entropy(
                    h, w, labels, bias=b, chunk_size=c
                ),
                (0, 1, 2),
            )(h, w, b)
            for chunk_size in chunk_sizes
        ]

    for chunk_size, (value, grads) in zip(chunk_sizes, run(h, w, b), strict=True):
        assert float(value) == 0.0
        for ours, theirs in zip(grads, (ht.grad, wt.grad, bt.grad), strict=True):
            np.testing.assert_array_equal(ours, theirs.numpy(), err_msg=str(chunk_size))


def test_linear_cross_entropy_bias_gradient_chunked():
    rng = np.random.default_rng(3)
    hidden, weight = rng.normal(size=(6, 4)), rng.normal(size=(11, 4))
    bias, labels = rng.normal(size=11), rng.integers(0, 11, size=6)

    @jax.jit
    def run(hidden, weight, bias):
        return [
            jax.grad(
                lambda b, chunk=chunk: jaxloss.linear_cross_entropy(
                    hidden, weight, labels, bias=b, chunk_size=chunk, label_smoothing=0.1
                )
            )(bias)
            for chunk in (None, 4)
        ]

    grads = run(*(a.astype(np.float32) for a in (hidden, weight, bias)))
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-7)


def test_chunked_gradients_with_a_bias_past_exp_overflow():
    # 3 rows in blocks of 2: the padding row's logits are the biases, and e^90 overflows in
    # float32; its cotangent 0 times that was NaN in dw and db (the unchunked path's are
    # finite). Both blocked paths: linear_cross_entropy "none" and linear_token_logprobs.
    hidden = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    weight = np.eye(2, dtype=np.float32)
    bias, labels = np.array([0.0, 90.0], np.float32), np.array([0, 1, 1])

    @jax.jit
    def run(weight, bias):
        def ce(w, b, chunk):
            return jaxloss.linear_cross_entropy(
                hidden, w, labels, bias=b, chunk_size=chunk, reduction="none"
            ).sum()

        def logprobs(w, b, chunk):
            return jaxloss.linear_token_logprobs(
                hidden[None], w, labels[None], bias=b, chunk_size=chunk
            ).sum()

        return [
            jax.grad(fn, argnums=(0, 1))(weight, bias, chunk)
            for fn in (ce, logprobs)
            for chunk in (None, 2)
        ]

    ce_whole, ce_chunked, logprobs_whole, logprobs_chunked = run(weight, bias)
    # Every row's softmax is one-hot on class 1 (logit 90 + ...), so d/db sums softmax minus
    # one-hot: [-1, 1] from row 0 (label 0), nothing from rows 1 and 2 (label 1).
    np.testing.assert_allclose(ce_whole[1], [-1.0, 1.0], atol=1e-6)
    for whole, chunked in ((ce_whole, ce_chunked), (logprobs_whole, logprobs_chunked)):
        for a, b in zip(whole, chunked, strict=True):
            np.testing.assert_allclose(b, a, atol=1e-6)


def test_linear_cross_entropy_bfloat16_accumulates_in_float32():
    rng = np.random.default_rng(4)
    hidden = rng.normal(size=(16, 32)).astype(jnp.bfloat16)
    weight = (rng.normal(size=(50, 32)) / 4).astype(jnp.bfloat16)
    labels = rng.integers(0, 50, size=16)
    value = jax.jit(functools.partial(jaxloss.linear_cross_entropy, chunk_size=16))(
        hidden, weight, labels
    )
    assert value.dtype == jnp.float32
    exact = ref.linear_cross_entropy(
        np.asarray(hidden, np.float64), np.asarray(weight, np.float64), labels
    ).mean()
    np.testing.assert_allclose(value, exact, rtol=1e-5)


ROWS_PER_BLOCK = [1, 3, 10, 64]


def _weighted_lse_inputs():
    rng = np.random.default_rng(5)
    x, w, b = rng.normal(size=(10, 4)), rng.normal(size=(13, 4)), rng.normal(size=13)
    a = rng.uniform(0.1, 2.0, size=10)
    a[[2, 7]] = 0.0
    return x, w, b, a


@functools.cache
def _weighted_lse_every_block_size():
    """Value, gradients and forward-only value for every ``rows_per_block``, compiled once."""
    x, w, b, a = _weighted_lse_inputs()
    x_nan = x.copy()
    x_nan[7] = np.nan

    @jax.jit
    def run(*args):
        out = {}
        for rows in ROWS_PER_BLOCK:
            loss = functools.partial(weighted_lse_sum, rows_per_block=rows)
            value_and_grads = jax.value_and_grad(loss, argnums=(0, 1, 2, 3))(*args)
            out[rows] = (value_and_grads, loss(*args))
        return out

    return run(*(np.asarray(v, np.float32) for v in (x_nan, w, b, a)))


@pytest.mark.parametrize("rows_per_block", ROWS_PER_BLOCK)
def test_weighted_lse_sum_matches_the_formula(rows_per_block):
    # 10 rows in blocks of 3: the last block is padded; rows with a zero coefficient (one of
    # them NaN) stay out of the value and every gradient.
    x, w, b, a = _weighted_lse_inputs()
    value, dx, dw, db, lse = ref.weighted_lse_sum(x, w, b, a)
    (got, grads), forward_only = _weighted_lse_every_block_size()[rows_per_block]
    np.testing.assert_allclose(got, value, rtol=1e-5)
    dx[[2, 7]] = 0.0
    for g, e in zip(grads, (dx, dw, db, np.where(a != 0, lse, 0)), strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    # Without differentiation the value comes from the forward-only scan.
    np.testing.assert_allclose(forward_only, value, rtol=1e-5)


def test_linear_weights_reproduce_reduce_loss():
    rng = np.random.default_rng(6)
    loss = rng.normal(size=12).astype(np.float32)
    wheres = [None, rng.uniform(size=12) < 0.6, np.zeros(12, bool)]

    @jax.jit
    def run(loss, wheres):
        # Every (where, reduction) case in one compiled function.
        return [
            (
                jnp.sum(linear_weights(where, (12,), reduction) * loss),
                reduce_loss(loss, reduction, where=where),
            )
            for where in wheres
            for reduction in ("mean", "sum")
        ]

    for weighted, reduced in run(loss, wheres):
        np.testing.assert_allclose(weighted, reduced, rtol=1e-6, atol=1e-7)


def test_linear_cross_entropy_path_selection():
    # The configurations of benchmarks/bench_linear_cross_entropy.py: the row-blocked kernel
    # (three matmuls, 512 rows x 32768 logits) where it is faster, the class-blocked one
    # where holding enough rows would cost too much memory.
    assert _rows_per_block(2048, 32768, 1024, "mean") == 512
    assert _rows_per_block(2048, 32768, 1024, "sum") == 512
    assert _rows_per_block(8192, 131072, 1024, "mean") is None
    assert _rows_per_block(2048, 32768, 1024, "none") is None
    assert _rows_per_block(2048, 32768, None, "mean") is None
    # The registry's linear_cross_entropy[rows] and [classes] (tests/margin/cases.py) at the
    # shared suites' batch, whole and on each of the 8 devices: the whole batch at once, or
    # the class-blocked kernel.
    _, weight, _ = REGISTRY["linear_cross_entropy[rows]"].make_inputs(
        np.random.default_rng(0), compiled.BATCH
    )
    for rows in (compiled.BATCH, compiled.BATCH // compiled.DEVICES):
        assert _rows_per_block(rows, len(weight), 4, "mean") == rows
        assert _rows_per_block(rows, len(weight), 1, "mean") is None


def test_linear_cross_entropy_row_blocks_equal_unchunked():
    # 600 rows in blocks of 256 (the last one padded), both reductions, a mask, smoothing.
    rng = np.random.default_rng(7)
    hidden = rng.normal(size=(600, 8)).astype(np.float32)
    weight = rng.normal(size=(256, 8)).astype(np.float32)
    bias = rng.normal(size=256).astype(np.float32)
    labels = rng.integers(0, 256, size=600)
    where = rng.uniform(size=600) < 0.8
    assert _rows_per_block(600, 256, 64, "mean") == 256

    @jax.jit
    def run(*args):
        # Both reductions, unchunked and chunked, in one compiled function.
        out = {}
        for reduction, chunk in itertools.product(("mean", "sum"), (0, 64)):

            def loss(h, w, b, reduction=reduction, chunk=chunk):
                return jaxloss.linear_cross_entropy(
                    h,
                    w,
                    labels,
                    bias=b,
                    where=where,
                    label_smoothing=0.1,
                    reduction=reduction,
                    chunk_size=chunk or None,  # 0: unchunked
                )

            out[reduction, chunk] = jax.value_and_grad(loss, argnums=(0, 1, 2))(*args)
        return out

    got = run(hidden, weight, bias)
    for reduction in ("mean", "sum"):
        value, grads = got[reduction, 0]
        chunked, chunked_grads = got[reduction, 64]
        np.testing.assert_allclose(chunked, value, rtol=1e-5)
        for g, cg in zip(grads, chunked_grads, strict=True):
            np.testing.assert_allclose(cg, g, rtol=1e-5, atol=1e-6 * np.abs(g).max())


# --- center loss and its update -------------------------------------------------------------

# ``alpha`` and ``where`` are traced: the two tests below with the same shapes share one compile.
_center_update = jax.jit(jaxloss.center_update)


def test_center_update_matches_the_paper():
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(6, 3)).astype(np.float32)
    features = rng.normal(size=(10, 3)).astype(np.float32)
    labels = rng.integers(0, 4, size=10)  # classes 4 and 5 are absent: they must not move
    new = _center_update(centers, features, labels, alpha=0.3)
    np.testing.assert_allclose(new, ref.center_update(centers, features, labels, 0.3), rtol=1e-5)
    np.testing.assert_array_equal(new[4:], centers[4:])


def test_center_update_where_and_out_of_range_labels():
    rng = np.random.default_rng(6)
    centers = rng.normal(size=(4, 2)).astype(np.float32)
    features = rng.normal(size=(6, 2)).astype(np.float32)
    labels = np.array([0, 1, 9, 2, -1, 1])
    keep = np.array([True, False, True, True, True, True])
    counted = keep & (labels >= 0) & (labels < 4)
    np.testing.assert_allclose(
        _center_update(centers, features, labels, where=keep),
        ref.center_update(centers, features[counted], labels[counted]),
        rtol=1e-5,
    )


def test_center_update_masked_or_invalid_rows_with_nan_move_no_center():
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(4, 2)).astype(np.float32)
    features = rng.normal(size=(6, 2)).astype(np.float32)
    labels = np.array([0, 1, 9, 2, 3, 1])
    keep = np.array([True, False, True, True, True, True])
    features[1] = np.nan  # masked
    features[2] = np.inf  # label 9 is no class
    new = _center_update(centers, features, labels, where=keep)
    counted = keep & (labels < 4)
    np.testing.assert_allclose(
        new, ref.center_update(centers, features[counted], labels[counted]), rtol=1e-5
    )


def test_center_update_under_jit_with_a_traced_alpha():
    centers, features = jnp.zeros((2, 2)), jnp.ones((3, 2))
    update = jax.jit(
        lambda a: jaxloss.center_update(centers, features, jnp.array([1, 1, 1]), alpha=a)
    )
    np.testing.assert_allclose(update(1.0)[1], [0.75, 0.75])
    np.testing.assert_allclose(update(0.5)[1], [0.375, 0.375])


def test_shape_errors_name_the_argument():
    embeddings, centers, labels = _head()
    with pytest.raises(ValueError, match=r"`embeddings`.*`centers`"):
        jaxloss.arcface(embeddings, centers[:, :3], labels)
    with pytest.raises(ValueError, match="`labels`"):
        jaxloss.cosface(embeddings, centers, labels[:3])
    with pytest.raises(ValueError, match="`bias`"):
        jaxloss.linear_cross_entropy(embeddings, centers, labels, bias=np.zeros(3))
    with pytest.raises(ValueError, match="`margin`"):
        jaxloss.sphereface(embeddings, centers, labels, margin=2.5)
    # SphereFace's margin is static: injected as state it becomes an array, and the error
    # says so (it used to show only "got Array(4., dtype=float32)").
    injected = compose.inject_hyperparams(jaxloss.sphereface, margin=4)
    with pytest.raises(ValueError, match=r"`margin` must be a positive int.*static option"):
        injected.apply(injected.init(), embeddings, centers, labels)
    np.testing.assert_array_equal(
        jaxloss.sphereface(embeddings, centers, labels, margin=np.int64(3)),
        jaxloss.sphereface(embeddings, centers, labels, margin=3),
    )


@pytest.mark.parametrize("chunk_size", [0, -3, 2.5])
def test_invalid_chunk_size_is_a_value_error(chunk_size):
    x, w = np.ones((2, 3), np.float32), np.ones((4, 3), np.float32)
    labels = np.array([0, 1], np.int32)
    with pytest.raises(ValueError, match="chunk_size"):
        jaxloss.arcface(x, w, labels, chunk_size=chunk_size)
    with pytest.raises(ValueError, match="chunk_size"):
        jaxloss.linear_cross_entropy(x, w, labels, chunk_size=chunk_size)


def test_float64_means_of_the_weighted_kernels_are_float64():
    # The row-blocked linear_cross_entropy and linear_distill take a mean as Σ c_n ℓ_n with
    # c_n = 1 / count, formed in float32 under x64 too: 3e-8 off a float64 reference at a
    # count of 6 (0 at powers of two).
    rng = np.random.default_rng(0)
    h, w = rng.normal(size=(6, 3)), rng.normal(size=(9, 3))
    labels = rng.integers(0, 9, size=6)
    z, z_teacher = h @ w.T, h @ w[::-1].T
    log_q = z - np.log(np.exp(z).sum(1, keepdims=True))
    log_p = z_teacher - np.log(np.exp(z_teacher).sum(1, keepdims=True))
    with jax.enable_x64(True):

        @jax.jit
        def run(h, w, w_teacher):
            ce = jaxloss.linear_cross_entropy(h, w, labels, chunk_size=4)  # row blocks
            return ce, jaxloss.linear_distill(h, w, h, w_teacher, beta=0.0)

        ce, kl = run(h, w, w[::-1].copy())
        assert ce.dtype == kl.dtype == np.float64
    np.testing.assert_allclose(ce, np.mean(-log_q[np.arange(6), labels]), rtol=1e-13)
    np.testing.assert_allclose(kl, np.mean((np.exp(log_p) * (log_p - log_q)).sum(1)), rtol=1e-13)

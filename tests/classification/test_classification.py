"""Classification losses: torch parity over every option, and the edge cases torch and optax
get wrong or leave undefined."""

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
from tests._suite import compiled
from tests._suite.numpy_reference import log_softmax
from tests.classification import reference as ref

RTOL = 2e-5  # the acceptance bound: float32 jaxloss against float64 torch
REDUCTIONS = ["mean", "sum", "none"]

# Random shapes, classes last: (batch..., num_classes).
_shape_rng = np.random.default_rng(1234)
SHAPES = [
    (int(_shape_rng.integers(2, 40)), int(_shape_rng.integers(2, 12))),
    (
        int(_shape_rng.integers(2, 9)),
        int(_shape_rng.integers(2, 9)),
        int(_shape_rng.integers(3, 12)),
    ),
    (3, 2, 4, 7),
]


def _torch(x, dtype=torch.float64):
    return torch.tensor(np.asarray(x), dtype=dtype)


def _classes_second(x):
    """jaxloss's classes-last layout to torch's classes-second."""
    return torch.movedim(x, -1, 1)


def _ce_inputs(shape, seed, ignore_index, probability_targets):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.normal(size=shape)).astype(np.float32)
    num_classes = shape[-1]
    if probability_targets:
        labels = np.exp(log_softmax(rng.normal(size=shape))).astype(np.float32)
    else:
        labels = rng.integers(0, num_classes, size=shape[:-1]).astype(np.int32)
        flat = labels.reshape(-1)
        # torch's default ignore_index (-100) is out of range, so excluded here too.
        flat[-1] = -100 if ignore_index is None else ignore_index
        flat[0] = ignore_index if ignore_index is not None else flat[0]
    weights = rng.uniform(0.2, 2.0, size=num_classes).astype(np.float32)
    return logits, labels, weights


GRID = list(
    itertools.product(range(len(SHAPES)), [False, True], [None, 1], [0.0, 0.15], [False, True])
)


def _grid_id(params):
    shape, weighted, ignore, smoothing, probs = params
    return (
        f"shape{shape}-{'weights' if weighted else 'noweights'}-ignore{ignore}-"
        f"ls{smoothing}-{'probs' if probs else 'labels'}"
    )


def _ce_options(params, weights):
    _, weighted, ignore_index, smoothing, _ = params
    return {
        "label_smoothing": smoothing,
        "class_weights": weights if weighted else None,
        "ignore_index": ignore_index,
    }


@functools.cache
def _cross_entropy_of_shape(shape_index):
    """``{GRID index: {reduction: (value, gradient)}}`` for every configuration of one shape
    that torch accepts (not ignore_index with probability targets): one compiled function
    for the shape instead of one per configuration."""
    cases = {
        index: params
        for index, params in enumerate(GRID)
        if params[0] == shape_index and not (params[4] and params[2] is not None)
    }
    inputs = {
        index: _ce_inputs(SHAPES[shape_index], index, params[2], params[4])
        for index, params in cases.items()
    }

    @jax.jit
    def run(inputs):
        out = {}
        for index, (logits, labels, weights) in inputs.items():
            loss = functools.partial(
                jaxloss.cross_entropy, labels=labels, **_ce_options(cases[index], weights)
            )
            out[index] = compiled.reductions_and_grads(loss)(logits)
        return out

    return run(inputs)


@pytest.mark.parametrize("params", GRID, ids=[_grid_id(p) for p in GRID])
def test_cross_entropy_matches_torch(params):
    # Every reduction's value and gradient; the configurations of a shape are compiled together.
    shape_index, weighted, ignore_index, smoothing, probability_targets = params
    shape = SHAPES[shape_index]
    logits, labels, weights = _ce_inputs(
        shape, GRID.index(params), ignore_index, probability_targets
    )
    ours = _ce_options(params, weights)
    if probability_targets and ignore_index is not None:
        # torch raises for ignore_index with probability targets, and so do we.
        with pytest.raises(ValueError, match="ignore_index"):
            jax.eval_shape(lambda x: jaxloss.cross_entropy(x, labels, **ours), logits)
        return
    got = _cross_entropy_of_shape(shape_index)[GRID.index(params)]
    for reduction in REDUCTIONS:
        torch_logits = _torch(logits).requires_grad_(True)
        torch_labels = (
            _torch(labels) if probability_targets else torch.tensor(labels, dtype=torch.long)
        )
        theirs = {
            "label_smoothing": smoothing,
            "reduction": reduction,
            "weight": _torch(weights) if weighted else None,
        }
        if ignore_index is not None:
            theirs["ignore_index"] = ignore_index
        expected = F.cross_entropy(
            _classes_second(torch_logits),
            _classes_second(torch_labels) if probability_targets else torch_labels,
            **theirs,
        )
        value, grad = got[reduction]
        assert value.dtype == jnp.float32
        np.testing.assert_allclose(
            value, expected.detach().numpy(), rtol=RTOL, atol=1e-6, err_msg=reduction
        )
        # Gradients agree too (of the sum of the per-example losses for "none").
        expected.sum().backward()
        scale = np.abs(torch_logits.grad.numpy()).max()
        np.testing.assert_allclose(
            grad, torch_logits.grad.numpy(), rtol=RTOL, atol=1e-6 * scale, err_msg=reduction
        )


@jax.jit
def _cross_entropy_classes_second(logits, labels, weights):
    # Every reduction in one compilation.
    return {
        reduction: jaxloss.cross_entropy(
            logits, labels, axis=1, class_weights=weights, label_smoothing=0.1, reduction=reduction
        )
        for reduction in REDUCTIONS
    }


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_class_axis_in_torch_layout(reduction):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4, 6, 5)).astype(np.float32)  # (batch, classes, length)
    labels = rng.integers(0, 6, size=(4, 5))
    weights = rng.uniform(0.5, 2, size=6).astype(np.float32)
    ours = _cross_entropy_classes_second(logits, labels, weights)[reduction]
    theirs = F.cross_entropy(
        _torch(logits),
        torch.tensor(labels),
        weight=_torch(weights),
        label_smoothing=0.1,
        reduction=reduction,
    )
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=RTOL, atol=1e-6)


@functools.partial(jax.jit, static_argnames="ignore_index")
def _nll_options(log_probs, labels, weights, ignore_index):
    # With and without class weights, every reduction: one compilation per ignore_index.
    return {
        (weighted, reduction): jaxloss.nll(
            log_probs,
            labels,
            class_weights=weights if weighted else None,
            ignore_index=ignore_index,
            reduction=reduction,
        )
        for weighted in (False, True)
        for reduction in REDUCTIONS
    }


@pytest.mark.parametrize(
    "weighted, ignore_index, reduction",
    list(itertools.product([False, True], [None, 2], REDUCTIONS)),
)
def test_nll_matches_torch(weighted, ignore_index, reduction):
    rng = np.random.default_rng(7)
    log_probs = log_softmax(rng.normal(size=(9, 4, 6))).astype(np.float32)
    labels = rng.integers(0, 6, size=(9, 4))
    labels[0, 0] = -100 if ignore_index is None else ignore_index
    weights = rng.uniform(0.2, 2, size=6).astype(np.float32)
    theirs = {"weight": _torch(weights) if weighted else None, "reduction": reduction}
    if ignore_index is not None:
        theirs["ignore_index"] = ignore_index
    expected = F.nll_loss(_classes_second(_torch(log_probs)), torch.tensor(labels), **theirs)
    ours = _nll_options(log_probs, labels, weights, ignore_index=ignore_index)[weighted, reduction]
    np.testing.assert_allclose(ours, expected.numpy(), rtol=RTOL, atol=1e-6)


@jax.jit
def _bce_options(probs, targets, weights):
    # With and without weights, every reduction: one compilation.
    return {
        (weighted, reduction): jaxloss.binary_cross_entropy(
            probs, targets, weights=weights if weighted else None, reduction=reduction
        )
        for weighted in (False, True)
        for reduction in REDUCTIONS
    }


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_matches_torch(weighted, reduction):
    rng = np.random.default_rng(3)
    probs = rng.uniform(size=(8, 5)).astype(np.float32)
    probs[0, :3] = [0.0, 1.0, 1.0]  # the clamped logs
    targets = rng.uniform(size=(8, 5)).astype(np.float32)
    targets[0, :3] = [1.0, 0.0, 1.0]
    weights = rng.uniform(size=(5,)).astype(np.float32)
    ours = _bce_options(probs, targets, weights)[weighted, reduction]
    expected = F.binary_cross_entropy(
        _torch(probs),
        _torch(targets),
        weight=_torch(weights) if weighted else None,
        reduction=reduction,
    )
    np.testing.assert_allclose(ours, expected.numpy(), rtol=RTOL, atol=1e-6)


def test_binary_cross_entropy_gradients_are_finite_at_zero_and_one():
    probs = np.array([0.0, 1.0, 0.0, 1.0], np.float32)
    targets = np.array([0.0, 1.0, 1.0, 0.0], np.float32)
    grad = jax.jit(jax.grad(jaxloss.binary_cross_entropy))(probs, targets)
    assert np.all(np.isfinite(grad))


@jax.jit
def _bce_with_logits_options(logits, targets, weights, pos_weight):
    # With and without each weight, every reduction: one compilation.
    return {
        (weighted, pos_weighted, reduction): jaxloss.binary_cross_entropy_with_logits(
            logits,
            targets,
            weights=weights if weighted else None,
            pos_weight=pos_weight if pos_weighted else None,
            reduction=reduction,
        )
        for weighted, pos_weighted in itertools.product([False, True], [False, True])
        for reduction in REDUCTIONS
    }


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("pos_weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits_matches_torch(weighted, pos_weighted, reduction):
    rng = np.random.default_rng(4)
    logits = (4 * rng.normal(size=(6, 3, 4))).astype(np.float32)
    logits[0, 0, :2] = [80.0, -80.0]  # saturated sigmoids stay exact
    targets = rng.uniform(size=(6, 3, 4)).astype(np.float32)
    weights = rng.uniform(size=(3, 4)).astype(np.float32)
    pos_weight = rng.uniform(0.5, 3, size=(4,)).astype(np.float32)
    ours = _bce_with_logits_options(logits, targets, weights, pos_weight)[
        weighted, pos_weighted, reduction
    ]
    expected = F.binary_cross_entropy_with_logits(
        _torch(logits),
        _torch(targets),
        weight=_torch(weights) if weighted else None,
        pos_weight=_torch(pos_weight) if pos_weighted else None,
        reduction=reduction,
    )
    np.testing.assert_allclose(ours, expected.numpy(), rtol=RTOL, atol=1e-6)


# --- Labels torch would reject, and the masked mean of nothing ---------------------------


def test_out_of_range_labels_are_excluded_not_wrapped():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    labels = np.array([0, -1, 3, 4, 2, -100])
    valid = (labels >= 0) & (labels < 4)

    @jax.jit
    def run(first, labels, first_valid, labels_valid):
        # Both losses in one compilation: per example, the mean, the mean of the valid
        # examples alone, and the gradient of the mean.
        return [
            (
                fn(x, labels, reduction="none"),
                fn(x, labels),
                fn(x_valid, labels_valid),
                jax.grad(lambda x, fn=fn: fn(x, labels))(x),
            )
            for fn, x, x_valid in [
                (jaxloss.cross_entropy, first[0], first_valid[0]),
                (jaxloss.nll, first[1], first_valid[1]),
            ]
        ]

    first = [logits, log_softmax(logits).astype(np.float32)]
    results = run(first, labels, [x[valid] for x in first], labels[valid])
    for none, mean, mean_of_valid, grad in results:
        assert np.all(np.asarray(none)[~valid] == 0)
        np.testing.assert_allclose(mean, mean_of_valid, rtol=1e-6)
        assert np.all(np.asarray(grad)[~valid] == 0)
        assert np.all(np.isfinite(grad))


@jax.jit
def _all_ignored(logits, labels, weights):
    # With and without class weights in one compilation.
    return {
        weighted: jax.value_and_grad(
            lambda x, weighted=weighted: jaxloss.cross_entropy(
                x,
                labels,
                label_smoothing=0.1,
                ignore_index=2,
                class_weights=weights if weighted else None,
            )
        )(logits)
        for weighted in (False, True)
    }


@pytest.mark.parametrize("weighted", [False, True])
def test_mean_over_only_ignored_targets_is_zero_not_nan(weighted):
    logits = np.ones((3, 4), np.float32)
    labels = np.array([2, 2, 2], np.int32)
    value, grad = _all_ignored(logits, labels, np.ones(4, np.float32))[weighted]
    assert float(value) == 0.0
    assert np.all(np.asarray(grad) == 0)


@pytest.mark.parametrize("ignore_index", ["0", 0.5, True, np.float32(0)])
@pytest.mark.parametrize(
    "loss", ["cross_entropy", "nll", "poly_cross_entropy", "multi_margin", "lovasz_softmax"]
)
def test_an_ignore_index_that_is_not_an_int_is_a_type_error(loss, ignore_index):
    # "0" (a command line's value without type=int) or 0.5 equalled no label: nothing was
    # left out, silently; True left out class 1. torch raises a TypeError too.
    probs = np.full((3, 4), 0.25, np.float32)
    with pytest.raises(TypeError, match="`ignore_index` must be an int"):
        getattr(jaxloss, loss)(probs, np.array([0, 2, 1]), ignore_index=ignore_index)


@pytest.mark.parametrize("loss", ["cross_entropy", "poly_cross_entropy"])
def test_float_class_ids_and_integer_one_hot_targets_are_explained(loss):
    # Float labels are probability targets; class ids read from pandas or NumPy as floats
    # got "Expected equal shapes", and integer one-hot targets no hint that they need floats.
    logits, labels = np.zeros((3, 4), np.float32), np.array([0, 2, 1])
    fn = getattr(jaxloss, loss)
    with pytest.raises(ValueError, match=r"class ids must be an integer array"):
        fn(logits, labels.astype(np.float32))
    with pytest.raises(ValueError, match=r"one-hot or probability targets .* must be float"):
        fn(logits, np.eye(4, dtype=np.int32)[labels])


def test_ignore_index_inside_the_class_range():
    # ignore_index = 0 as a padding class: excluded, and never counted in the weighted mean.
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(5, 3)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1])
    weights = np.array([10.0, 1.0, 2.0], np.float32)
    keep = labels != 0
    value = jax.jit(functools.partial(jaxloss.cross_entropy, ignore_index=0))(
        logits, labels, class_weights=weights
    )
    nll = -log_softmax(logits)[keep, labels[keep]]
    expected = np.sum(weights[labels[keep]] * nll) / np.sum(weights[labels[keep]])
    np.testing.assert_allclose(value, expected, rtol=1e-6)


def test_where_combines_with_ignore_index_and_weights():
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(8, 5)).astype(np.float32)
    labels = rng.integers(0, 5, size=8)
    labels[2] = 3
    weights = rng.uniform(0.5, 2, size=5).astype(np.float32)
    where = np.array([True, True, False, True, False, True, True, True])
    options = {"ignore_index": 3, "class_weights": weights, "label_smoothing": 0.2}

    @jax.jit
    def run(logits, labels, where, logits_kept, labels_kept):
        masked = jaxloss.cross_entropy(logits, labels, where=where, **options)
        return masked, jaxloss.cross_entropy(logits_kept, labels_kept, **options)

    masked, dropped = run(logits, labels, where, logits[where], labels[where])
    np.testing.assert_allclose(masked, dropped, rtol=1e-6)


def test_large_logits_are_stable():
    logits = np.array([[1e4, -1e4, 0.0], [3e38, 0.0, -3e38]], np.float32)
    labels = np.array([1, 0], np.int32)
    value, grad = jax.jit(jax.value_and_grad(jaxloss.cross_entropy))(logits, labels)
    np.testing.assert_allclose(value, 1e4, rtol=1e-6)
    assert np.all(np.isfinite(grad))


_LOGISTIC = {
    "binary_cross_entropy_with_logits": jaxloss.binary_cross_entropy_with_logits,
    "sigmoid_focal": jaxloss.sigmoid_focal,
    "multilabel_soft_margin": jaxloss.multilabel_soft_margin,
}


@pytest.mark.parametrize("name", _LOGISTIC)
def test_infinite_logits_give_nan_and_where_leaves_them_out(name):
    # The documented behaviour (the docstrings' Numerics): an infinite logit's term is NaN,
    # even where its limit is 0; `where` excluding it gives the loss of the other entries.
    loss = jax.jit(functools.partial(_LOGISTIC[name], reduction="none"))
    targets = np.array([[0.0, 1.0, 1.0, 0.0]], np.float32)
    for poison in (-np.inf, np.inf):
        logits = np.array([[poison, 0.5, -1.0, 2.0]], np.float32)
        assert np.isnan(np.ravel(loss(logits, targets))[0])  # the element, or the sample
    logits = np.array([[-np.inf, 0.5, -1.0, 2.0], [0.3, 0.5, -1.0, 2.0]], np.float32)
    targets = np.repeat(targets, 2, axis=0)
    # A mask of samples for multilabel_soft_margin, of elements for the others.
    keep = np.array([False, True]) if name == "multilabel_soft_margin" else logits > -np.inf

    @jax.jit
    def masked_and_kept(logits, targets, kept_logits, kept_targets):
        # `keep` closed over: a NumPy mask at trace time, as given eagerly.
        masked = _LOGISTIC[name](logits, targets, where=keep, reduction="sum")
        return masked, _LOGISTIC[name](kept_logits, kept_targets, reduction="sum")

    masked, expected = masked_and_kept(logits, targets, logits[keep], targets[keep])
    np.testing.assert_allclose(masked, expected, rtol=1e-6)


def test_label_smoothing_can_be_traced_without_retracing():
    logits, labels = jnp.ones((2, 3)), jnp.array([0, 1])
    traces = []

    @jax.jit
    def loss(smoothing):
        traces.append(None)
        return jaxloss.cross_entropy(logits, labels, label_smoothing=smoothing)

    loss(0.0)
    loss(0.3)
    assert len(traces) == 1


def test_a_traced_label_smoothing_of_0_leaves_a_minus_inf_class_out():
    # ε = 0 given as an array or traced took the smoothing path, whose ε/C Σ_c (lse − z_c)
    # is 0 · inf = NaN at a class left out by −inf; torch gives the plain loss (and +inf
    # for ε > 0, whose uniform target reaches that class). Both class-axis paths.
    @jax.jit
    def loss(logits, labels, eps):
        return jaxloss.cross_entropy(logits, labels, label_smoothing=eps, reduction="none")

    for classes in (3, 10):
        rng = np.random.default_rng(classes)
        logits = rng.normal(size=(4, classes)).astype(np.float32)
        logits[0, 1] = -np.inf
        labels = np.array([0, 2, 1, 0])
        expected = F.cross_entropy(torch.tensor(logits), torch.tensor(labels), reduction="none")
        for eps in (np.float32(0.0), jnp.float32(0.0)):
            np.testing.assert_allclose(loss(logits, labels, eps), expected.numpy(), rtol=1e-6)
        smoothed = loss(logits, labels, np.float32(0.1))
        assert smoothed[0] == np.inf and np.all(np.isfinite(smoothed[1:]))


def test_label_log_probabilities_are_exact_at_large_logits():
    # log p_y as (z_y − max) − log Σ exp(z − max), as torch's log_softmax: z_y − logsumexp(z)
    # rounded to an ulp of the largest logit (log 2 between two logits of 1e30 came out 0).
    rng = np.random.default_rng(1)
    for classes in (3, 10):  # the class-by-class path and the reductions
        logits = (rng.normal(size=(256, classes)) * 300 + 2000).astype(np.float32)
        labels = np.argmax(logits, axis=1)
        wide = logits.astype(np.float64)
        top = wide.max(axis=1, keepdims=True)
        log_p = wide[np.arange(256), labels] - top[:, 0]
        log_p -= np.log(np.exp(wide - top).sum(axis=1))

        @jax.jit
        def ours(logits, labels):
            return {
                "cross_entropy": jaxloss.cross_entropy(logits, labels, reduction="none"),
                "smoothed": jaxloss.cross_entropy(
                    logits, labels, label_smoothing=1e-30, reduction="none"
                ),
                "softmax_focal": -jaxloss.softmax_focal(
                    logits, labels, gamma=0.0, reduction="none"
                ),
                "poly_cross_entropy": jaxloss.poly_cross_entropy(
                    logits, labels, epsilon=0.0, reduction="none"
                ),
                "token_logprobs": -jaxloss.token_logprobs(logits[None], labels[None])[0],
            }

        for name, value in ours(logits, labels).items():
            expected = log_p if name == "softmax_focal" else -log_p
            # torch's float32 log_softmax: within 6e-8 (log Σ rounds near 1); the old form 1e-4.
            np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7, err_msg=name)
    two = np.array([[1e30, 1e30, 0.0]], np.float32)
    value = jax.jit(lambda z: jaxloss.cross_entropy(z, np.array([1])))(two)
    np.testing.assert_allclose(value, np.log(2), rtol=1e-6)


# --- Focal losses: reductions to known losses, and the torchvision formula ---------------


SIGMOID_FOCAL_OPTIONS = [(0.25, 2.0), (-1.0, 2.0), (0.6, 0.0), (0.25, 0.5), (0.25, 1.5)]


@jax.jit
def _sigmoid_focal_options(logits, targets):
    # Every (alpha, gamma) in one compilation; Python floats, as a user passes them.
    return {
        (alpha, gamma): jaxloss.sigmoid_focal(
            logits, targets, alpha=alpha, gamma=gamma, reduction="none"
        )
        for alpha, gamma in SIGMOID_FOCAL_OPTIONS
    }


@pytest.mark.parametrize("alpha, gamma", SIGMOID_FOCAL_OPTIONS)
def test_sigmoid_focal_matches_torchvision_formula(alpha, gamma):
    rng = np.random.default_rng(9)
    logits = (3 * rng.normal(size=(7, 4))).astype(np.float32)
    targets = (rng.uniform(size=(7, 4)) < 0.4).astype(np.float32)
    ours = _sigmoid_focal_options(logits, targets)[alpha, gamma]
    np.testing.assert_allclose(
        ours, ref.sigmoid_focal(logits, targets, alpha=alpha, gamma=gamma), rtol=1e-5, atol=1e-7
    )


def test_sigmoid_focal_gradients_match_torch_for_any_gamma():
    # A whole γ is repeated multiplication, a half one that times a square root, any other
    # (or a traced one) XLA's pow, whose value is written out before the sum: value and
    # gradient (in the logits, the targets and γ) against float64 torch autograd of
    # torchvision's formula, hard and soft targets, a logit of 60 where 1 - p_t is 0.
    GAMMAS = (None, 1.5, 0.5, 2.5, 2.0)  # None: traced, 1.5
    rng = np.random.default_rng(11)
    logits = np.concatenate([3 * rng.normal(size=30), [60.0, -60.0]]).astype(np.float32)
    targets = np.concatenate([rng.uniform(size=15), rng.uniform(size=15) < 0.4, [1, 0]])
    targets = targets.astype(np.float32)

    @jax.jit
    def run(logits, targets, traced):
        def grads(gamma):
            def loss(x, t, g):
                return jaxloss.sigmoid_focal(x, t, alpha=0.25, gamma=g if gamma is None else gamma)

            return jax.value_and_grad(loss, argnums=(0, 1, 2))(logits, targets, traced)

        return [grads(gamma) for gamma in GAMMAS]

    # NumPy arrays: indexed with masks below (a compiled gather each on jax arrays).
    results = jax.device_get(run(logits, targets, np.float32(1.5)))
    for gamma, (value, (by_logits, by_targets, by_gamma)) in zip(GAMMAS, results, strict=True):
        x, t = (_torch(a).requires_grad_() for a in (logits, targets))
        g = torch.tensor(1.5 if gamma is None else gamma, dtype=torch.float64, requires_grad=True)
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        expected = ((0.25 * t + 0.75 * (1 - t)) * ce * (1 - p_t) ** g).mean()
        expected.backward()
        np.testing.assert_allclose(value, expected.item(), rtol=RTOL)
        # torch's pow differentiates to 0.5 * 0^-0.5 = inf where 1 - p_t = 0 (NaN there).
        for ours, theirs in ((by_logits, x.grad.numpy()), (by_targets, t.grad.numpy())):
            assert np.all(np.isfinite(ours))
            finite = np.isfinite(theirs)
            assert finite[:-2].all()  # the two certain entries at most
            np.testing.assert_allclose(ours[finite], theirs[finite], rtol=1e-4, atol=1e-9)
        if gamma is None:  # traced: differentiated in γ too
            np.testing.assert_allclose(by_gamma, g.grad.item(), rtol=1e-4)


@pytest.mark.parametrize("alpha", [-1.0, None], ids=["negative", "None"])
def test_sigmoid_focal_without_focusing_is_bce(alpha):
    # No α weighting: a negative alpha as torchvision, or None as softmax_focal and
    # dice_focal (it raised an unclear error).
    rng = np.random.default_rng(10)
    logits = rng.normal(size=(5, 3)).astype(np.float32)
    targets = rng.uniform(size=(5, 3)).astype(np.float32)
    ours = jax.jit(functools.partial(jaxloss.sigmoid_focal, alpha=alpha, gamma=0.0))
    np.testing.assert_allclose(
        ours(logits, targets),
        F.binary_cross_entropy_with_logits(_torch(logits), _torch(targets)).numpy(),
        rtol=RTOL,
    )


def test_focal_gradients_are_finite_at_certainty():
    # (1 - p)^γ with γ < 1 has an infinite derivative at p = 1 unless guarded.
    logits = np.array([[60.0, -60.0]], np.float32)
    labels = np.array([0], np.int32)
    targets = np.array([1.0, 0.0], np.float32)

    @jax.jit
    def run(logits, labels, targets, gammas):
        # Every gamma (traced, differentiated too) for both losses, in one compilation.
        softmax = jax.grad(lambda x, g: jaxloss.softmax_focal(x, labels, gamma=g), argnums=(0, 1))
        sigmoid = jax.grad(lambda x, g: jaxloss.sigmoid_focal(x, targets, gamma=g), argnums=(0, 1))
        return [(softmax(logits, gamma), sigmoid(logits[0], gamma)) for gamma in gammas]

    for both in run(logits, labels, targets, (0.0, 0.5, 2.0)):
        for grads in both:
            assert all(np.all(np.isfinite(g)) for g in grads)


def test_softmax_focal_without_focusing_is_cross_entropy():
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=6)
    np.testing.assert_allclose(
        jax.jit(functools.partial(jaxloss.softmax_focal, gamma=0.0))(logits, labels),
        F.cross_entropy(_torch(logits), torch.tensor(labels)).numpy(),
        rtol=RTOL,
    )


def test_softmax_focal_alpha_per_class():
    rng = np.random.default_rng(12)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=6)
    alpha = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    ours = jax.jit(functools.partial(jaxloss.softmax_focal, gamma=2.0, reduction="none"))
    np.testing.assert_allclose(
        ours(logits, labels, alpha=alpha),
        ref.softmax_focal(logits, labels, alpha=alpha, gamma=2.0),
        rtol=1e-5,
    )


# --- Errors name the argument and the shapes ----------------------------------------------


def test_shape_and_dtype_errors_name_the_argument():
    logits = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match=r"`labels`.*\(4,\).*\(5,\)"):
        jaxloss.cross_entropy(logits, jnp.zeros(5, jnp.int32))
    with pytest.raises(ValueError, match=r"`class_weights`.*\(3,\)"):
        jaxloss.cross_entropy(logits, jnp.zeros(4, jnp.int32), class_weights=jnp.ones(4))
    with pytest.raises(TypeError, match="`logits`"):
        jaxloss.cross_entropy(jnp.zeros((4, 3), jnp.int32), jnp.zeros(4, jnp.int32))
    with pytest.raises(ValueError, match=r"`labels`.*`logits` \(4, 3\), got \(4, 2\)"):
        jaxloss.cross_entropy(logits, jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="axis"):
        jaxloss.cross_entropy(logits, jnp.zeros(4, jnp.int32), axis=2)
    with pytest.raises(ValueError, match=r"`probs`.*`targets`"):
        jaxloss.binary_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="`pos_weight`"):
        jaxloss.binary_cross_entropy_with_logits(
            jnp.zeros((2, 3)), jnp.zeros((2, 3)), pos_weight=jnp.ones(4)
        )
    with pytest.raises(TypeError, match="`where`"):
        jaxloss.cross_entropy(logits, jnp.zeros(4, jnp.int32), where=jnp.ones(4))

"""``jaccard``, class weights of ``dice``/``tversky``, ``dice_ce`` and ``dice_focal``: MONAI
parity on 2-D and 3-D inputs (values, and gradients through torch autograd), float64
references, hand-worked values, the reductions and the terms, errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

import jaxloss
from tests.dense import reference as ref
from tests.dense import reference_compound as refc
from tests.dense.cases_compound import PEERS

# ---------------------------------------------------------------------------- MONAI parity

SHAPES = {"2d": (2, 5, 4), "3d": (2, 3, 4, 2)}  # batch, then the spatial axes
SAMPLE_MASK = np.array([True, False])
SAMPLE_MASK3 = np.array([[True], [False], [True]])


def _inputs(shape, num_classes=4, seed=0):
    rng = np.random.default_rng(seed)
    logits = (2 * rng.normal(size=(*shape, num_classes))).astype(np.float32)
    labels = rng.integers(0, num_classes, size=shape).astype(np.int32)
    weight = rng.uniform(0.2, 2.0, size=num_classes).astype(np.float32)
    return logits, labels, weight


def _torch_value_and_grad(entry, inputs, options, rng):
    """MONAI's float64 value and the pullback of a normal cotangent (returned too)."""
    tensors = [
        torch.tensor(x, dtype=torch.float64, requires_grad=i == 0)
        if np.issubdtype(x.dtype, np.floating)
        else torch.tensor(x, dtype=torch.int64)
        for i, x in enumerate(inputs)
    ]
    value = entry.peer(*tensors, **options)
    cotangent = rng.normal(size=tuple(value.shape))
    (grad,) = torch.autograd.grad(value, tensors[:1], torch.tensor(cotangent))
    return value.detach().numpy(), grad.numpy(), cotangent


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize(
    "key",
    ["monai:DiceLoss", "monai:DiceLoss[jaccard]", "monai:DiceCELoss", "monai:DiceFocalLoss"],
)
def test_monai_parity_in_2d_and_3d(key, dims):
    entry = PEERS[key]
    inputs = _inputs(SHAPES[dims])
    rng = np.random.default_rng(1)
    expected = [_torch_value_and_grad(entry, inputs, o, rng) for o in entry.options]

    @jax.jit
    def ours(logits, labels, weight, cotangents):
        out = []
        for options, cotangent in zip(entry.options, cotangents, strict=True):
            value, pullback = jax.vjp(
                lambda z, o=options: entry.ours(z, labels, weight, **o), logits
            )
            out.append((value, pullback(cotangent.astype(value.dtype))[0]))
        return out

    results = ours(*inputs, [np.asarray(c, np.float32) for *_, c in expected])
    for options, (value, grad), (want, want_grad, _) in zip(
        entry.options, results, expected, strict=True
    ):
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-6, err_msg=str(options))
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-6, err_msg=str(options))


# ------------------------------------------------------------------------ jaccard by hand


def test_jaccard_by_hand():
    # Two classes, two pixels: p = (0.75, 0.25), (0.25, 0.75); labels 0, 1.
    # Per class I = 0.75, Σp = Σt = 1, U = 2 − 0.75 = 1.25; with s_nr = s_dr = 0.25:
    # 1 − (0.75 + 0.25) / (1.25 + 0.25) = 1/3, times the class weights 1 and 3.
    probs = np.array([[[0.75, 0.25], [0.25, 0.75]]], np.float32)
    labels = np.array([[0, 1]], np.int32)

    @jax.jit
    def run(p, y):
        loss = jaxloss.jaccard(
            p,
            y,
            smooth_nr=0.25,
            smooth_dr=0.25,
            class_weights=np.array([1.0, 3.0], np.float32),
            reduction="none",
        )
        # Squared: U = 0.75² + 0.25² + 1 − 0.75 = 0.875, so 1 − 1 / 1.125 = 1/9 per class.
        return loss, jaxloss.jaccard(p, y, smooth_nr=0.25, smooth_dr=0.25, squared=True)

    loss, squared = run(probs, labels)
    np.testing.assert_allclose(loss, [[1 / 3, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(squared, 1 / 9, rtol=1e-6)


def test_jaccard_is_dice_over_two_minus_dice():
    logits, labels = _inputs((3, 5, 4), num_classes=3)[:2]
    options = {"smooth_nr": 0.0, "smooth_dr": 0.0, "reduction": "none"}

    @jax.jit
    def run(z, y):
        probs = jax.nn.softmax(z)
        return jaxloss.dice(probs, y, **options), jaxloss.jaccard(probs, y, **options)

    dice, jaccard = jax.tree.map(np.asarray, run(logits, labels))
    score = 1 - dice
    np.testing.assert_allclose(1 - jaccard, score / (2 - score), rtol=1e-5)


# ------------------------------------------------------------------------- class weights


@jax.jit
def _weighted_overlaps(probs, labels, weights):
    kept = weights[1:]
    return {
        "dice": jaxloss.dice(probs, labels, class_weights=weights, reduction="none"),
        "dice_kept": jaxloss.dice(
            probs, labels, class_weights=kept, include_background=False, reduction="none"
        ),
        "dice_full": jaxloss.dice(
            probs, labels, class_weights=weights, include_background=False, reduction="none"
        ),
        "tversky": jaxloss.tversky(
            probs, labels, class_weights=weights, alpha=0.3, beta=0.7, reduction="none"
        ),
        "mean": jaxloss.dice(probs, labels, class_weights=weights),
        "grad": jax.grad(lambda w: jaxloss.dice(probs, labels, class_weights=w))(weights),
    }


def test_class_weights_multiply_each_class_and_may_be_traced():
    logits, labels, weights = _inputs(SHAPES["3d"], num_classes=3)
    probs = np.asarray(jax.nn.softmax(logits))
    out = _weighted_overlaps(probs, labels, weights)
    plain = ref.dice(probs, labels)
    np.testing.assert_allclose(out["dice"], plain * weights, rtol=1e-5)
    kept = ref.dice(probs, labels, include_background=False) * weights[1:]
    np.testing.assert_allclose(out["dice_kept"], kept, rtol=1e-5)
    np.testing.assert_allclose(out["dice_full"], kept, rtol=1e-5)
    tversky = ref.tversky(probs, labels, alpha=0.3, beta=0.7) * weights
    np.testing.assert_allclose(out["tversky"], tversky, rtol=1e-5)
    # MONAI's mean: of the weighted losses, not divided by the weights.
    np.testing.assert_allclose(out["mean"], (plain * weights).mean(), rtol=1e-5)
    np.testing.assert_allclose(out["grad"], plain.mean(0) / plain.shape[1], rtol=1e-5)


# ---------------------------------------------------------------------- dice_ce, dice_focal

COMPOUND_OPTIONS = {
    "dice_ce": (
        {},
        {"class_weights": (0.5, 1.0, 2.0), "include_background": False, "lambda_ce": 0.7},
        {"class_weights": (0.5, 1.0, 2.0), "label_smoothing": 0.2, "squared": True},
        {"from_logits": "sigmoid", "class_weights": (0.5, 1.0, 2.0), "pos_weight": (2.0, 0.5, 1.0)},
    ),
    "dice_focal": (
        {},
        {"from_logits": "softmax", "class_weights": (2.0, 0.5), "include_background": False},
        {"gamma": 0.5, "alpha": 0.25, "lambda_dice": 0.3, "lambda_focal": 2.0},
    ),
}
REFERENCES = {
    "dice_ce": (refc.dice_ce, refc.dice_ce_mean),
    "dice_focal": (refc.dice_focal, refc.dice_focal_mean),
}


def _void_inputs(shape):
    """Logits and labels with void pixels (255, −1), NaN logits there; one-hot targets."""
    logits, labels, _ = _inputs(shape, num_classes=3)
    labels = labels.copy()
    labels[0, 0] = 255
    labels[1].flat[:3] = -1
    logits = np.where((labels == 255)[..., None], np.nan, logits).astype(np.float32)
    return logits, labels


@pytest.mark.parametrize("dims", sorted(SHAPES))
@pytest.mark.parametrize("name", sorted(COMPOUND_OPTIONS))
def test_compound_matches_the_reference(name, dims):
    logits, labels = _void_inputs(SHAPES[dims])
    options = COMPOUND_OPTIONS[name]
    fn = getattr(jaxloss, name)

    @jax.jit
    def run(z, y):
        out = []
        for o in options:
            none = fn(z, y, reduction="none", **o)
            mean, grad = jax.value_and_grad(lambda z, o=o: fn(z, y, **o))(z)
            out.append((none, fn(z, y, reduction="sum", **o), mean, grad))
        return out

    reference, reference_mean = REFERENCES[name]
    clean = np.where(np.isnan(logits), 0.0, logits)
    for o, (none, total, mean, grad) in zip(options, run(logits, labels), strict=True):
        expected = reference(clean, labels, **o)
        np.testing.assert_allclose(none, expected, rtol=1e-5, atol=1e-6, err_msg=str(o))
        np.testing.assert_allclose(total, expected.sum(), rtol=1e-5, err_msg=str(o))
        want = reference_mean(expected, clean, labels, **o)
        np.testing.assert_allclose(mean, want, rtol=1e-5, err_msg=str(o))
        # Void pixels (NaN logits there) reach neither the value nor the gradient.
        assert np.all(np.isfinite(grad))
        np.testing.assert_array_equal(grad[labels == 255], 0.0)


def test_mean_weighs_samples_by_their_counted_pixels():
    logits, labels = _void_inputs(SHAPES["2d"])
    clean_logits, clean_labels, _ = _inputs(SHAPES["2d"], num_classes=3)

    @jax.jit
    def run(z, y):
        return jaxloss.dice_ce(z, y, reduction="none"), jaxloss.dice_ce(z, y)

    none, mean = run(logits, labels)
    assert not np.isclose(mean, none.mean(), rtol=1e-4)  # void pixels: counts differ
    none, mean = run(clean_logits, clean_labels)
    np.testing.assert_allclose(mean, none.mean(), rtol=1e-6)


@pytest.mark.parametrize(
    "name, term, weight",
    [("dice_ce", "cross_entropy", "lambda_ce"), ("dice_focal", "focal", "lambda_focal")],
)
def test_terms_for_logging_with_value_and_grad(name, term, weight):
    logits, labels, _ = _inputs(SHAPES["3d"], num_classes=3)
    fn = getattr(jaxloss, name)
    lambdas = {"lambda_dice": 0.4, weight: 1.7}
    activation = "softmax" if name == "dice_ce" else "sigmoid"

    @jax.jit
    def run(z):
        with_terms = jax.value_and_grad(
            lambda z: fn(z, labels, return_terms=True, **lambdas), has_aux=True
        )(z)
        return (
            with_terms,
            jax.value_and_grad(lambda z: fn(z, labels, **lambdas))(z),
            jaxloss.dice(z, labels, from_logits=activation),
            fn(z, labels, reduction="none", return_terms=True)[1],
        )

    ((total, terms), grad), (plain, plain_grad), dice, none = jax.tree.map(np.asarray, run(logits))
    assert set(terms) == {"dice", term}
    np.testing.assert_allclose(total, plain, rtol=1e-6)
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-6)
    np.testing.assert_allclose(total, 0.4 * terms["dice"] + 1.7 * terms[term], rtol=1e-6)
    np.testing.assert_allclose(terms["dice"], dice, rtol=1e-6)
    assert none["dice"].shape == none[term].shape == (2,)


def test_dice_ce_with_one_hot_targets_is_torch_unweighted_mean():
    # torch (and MONAI) divide by the number of pixels with probability targets, by the
    # weights of the labels with integer labels.
    logits, labels, weights = _inputs(SHAPES["2d"], num_classes=3)
    one_hot = np.eye(3, dtype=np.float32)[labels]

    @jax.jit
    def run(z):
        ce = {
            target: jaxloss.dice_ce(
                z, y, class_weights=weights, return_terms=True, lambda_dice=0.0
            )[1]["cross_entropy"]
            for target, y in (("labels", labels), ("one_hot", one_hot))
        }
        pixels = jaxloss.cross_entropy(z, labels, class_weights=weights, reduction="none")
        return ce, pixels

    ce, pixels = jax.tree.map(np.asarray, run(logits))
    np.testing.assert_allclose(ce["one_hot"], pixels.mean(), rtol=1e-5)
    np.testing.assert_allclose(ce["labels"], pixels.sum() / weights[labels].sum(), rtol=1e-5)


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda z, y: jaxloss.dice(z, y, class_weights=np.ones(4)), "class_weights"),
        (lambda z, y: jaxloss.jaccard(z, y, class_weights=np.ones((3, 1))), "class_weights"),
        (lambda z, y: jaxloss.tversky(z, y, class_weights=[1.0, -1.0, 1.0]), ">= 0"),
        (
            lambda z, y: jaxloss.dice_ce(z, y, class_weights=np.ones(2), include_background=False),
            "class_weights",
        ),
        (lambda z, y: jaxloss.dice_ce(z, y, lambda_ce=-1.0), "lambda_ce"),
        (lambda z, y: jaxloss.dice_focal(z, y, lambda_dice=-0.1), "lambda_dice"),
        (lambda z, y: jaxloss.dice_focal(z, y, alpha=1.5), "alpha"),
        (lambda z, y: jaxloss.dice_ce(z, y, from_logits=None), "from_logits"),
        (lambda z, y: jaxloss.dice_ce(z, y, pos_weight=2.0), "pos_weight"),
        (
            lambda z, y: jaxloss.dice_ce(z, y, from_logits="sigmoid", label_smoothing=0.1),
            "label_smoothing",
        ),
        (lambda z, y: jaxloss.dice_ce(z, y, reduction="batchmean"), "reduction"),
        (lambda z, y: jaxloss.dice_focal(z, y[:, :2]), "targets"),
        # The focal term always reads logits: probabilities would be taken as logits there.
        (lambda z, y: jaxloss.dice_focal(z, y, from_logits=None), "from_logits"),
        # The first argument is `logits`, in the messages of the Dice term too.
        (lambda z, y: jaxloss.dice_ce(z, y[:, :2]), r"shape of `logits`"),
        (lambda z, y: jaxloss.dice_focal(z[..., :1], y), r"`logits` \(.*\) has one class"),
    ],
)
def test_errors_name_the_argument(call, message):
    logits, labels, _ = _inputs(SHAPES["2d"], num_classes=3)
    with pytest.raises(ValueError, match=message):
        call(logits, labels)


# ------------------------------------------------------- class by class against the arrays

CLASS_PATH_OPTIONS = {
    "dice": ({}, {"squared": True, "include_background": False}, {"where": SAMPLE_MASK[:, None]}),
    "jaccard": ({}, {"class_weights": (0.5, 1.0, 2.0)}),
    "tversky": ({"alpha": 0.3, "beta": 0.7}, {"include_background": False}),
    "generalized_dice": ({}, {"weight_type": "simple"}),
    "dice_ce": (
        {},
        {"class_weights": (0.5, 1.0, 2.0), "squared": True},
        {"class_weights": (0.5, 1.0, 2.0), "label_smoothing": 0.2},
        {"include_background": False, "where": SAMPLE_MASK},
    ),
}


@pytest.mark.parametrize("name", sorted(CLASS_PATH_OPTIONS))
def test_class_by_class_paths_give_the_array_paths_numbers(name, monkeypatch):
    # Up to UNROLLED_CLASSES classes, the overlap losses from softmax logits or integer
    # labels (and dice_ce's shared softmax) work on one map per class; past it, on
    # [..., classes] arrays. Both paths, on void labels (NaN logits there), a -inf logit,
    # integer and one-hot targets and the options: the same values and gradients.
    from jaxloss import _numerics

    logits, labels = _void_inputs(SHAPES["3d"])
    pixel = tuple(np.argwhere(labels[1] == 1)[0])  # a -inf logit, not the label's class
    logits[(1, *pixel, 2)] = -np.inf
    one_hot = np.eye(3, dtype=np.float32)[np.clip(labels, 0, 2)]
    fn = getattr(jaxloss, name)
    activation = {} if name == "dice_ce" else {"from_logits": "softmax"}

    cases = []
    for targets in (labels, one_hot):
        z = logits if targets is labels else np.where(np.isnan(logits), 0, logits)
        for o in CLASS_PATH_OPTIONS[name]:
            # Smoothed labels give every class a target: a -inf logit an infinite loss.
            finite = np.maximum(z, -30) if "label_smoothing" in o else z
            f = lambda z, o=o, t=targets: fn(z, t, **activation, **o)  # noqa: E731
            cases.append((o, f, finite))

    def run():  # traced afresh: UNROLLED_CLASSES is read at trace time
        @jax.jit
        def values(zs):
            return [jax.value_and_grad(f)(z) for (_, f, _), z in zip(cases, zs, strict=True)]

        outs = values([finite for *_, finite in cases])
        return [(o, *out) for (o, *_), out in zip(cases, outs, strict=True)]

    by_class = run()
    monkeypatch.setattr(_numerics, "UNROLLED_CLASSES", 0)
    arrays = run()
    for (o, value, grad), (_, value_arrays, grad_arrays) in zip(by_class, arrays, strict=True):
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        np.testing.assert_allclose(value, value_arrays, rtol=1e-6, err_msg=str(o))
        np.testing.assert_allclose(grad, grad_arrays, rtol=1e-5, atol=1e-8, err_msg=str(o))


@pytest.mark.parametrize("name", ["dice", "jaccard", "tversky", "generalized_dice"])
def test_a_single_class_is_its_own_column(name, monkeypatch):
    # Binary overlap losses ([..., 1], sigmoid logits or probabilities) sum their one class
    # as a [batch, ...] map; the [..., 1] array path gives the same numbers.
    from jaxloss import _numerics

    rng = np.random.default_rng(3)
    logits = (2 * rng.normal(size=(3, 5, 4, 1))).astype(np.float32)
    targets = rng.uniform(size=logits.shape).astype(np.float32)
    fn = getattr(jaxloss, name)
    options = [{"from_logits": "sigmoid"}, {"from_logits": "sigmoid", "where": SAMPLE_MASK3}]
    if name == "generalized_dice":
        options = options[:1]

    def run():  # traced afresh: UNROLLED_CLASSES is read at trace time
        @jax.jit
        def values(z):
            return [jax.value_and_grad(lambda z, o=o: fn(z, targets, **o))(z) for o in options] + [
                jax.value_and_grad(lambda p: fn(p, targets))(jax.nn.sigmoid(z))
            ]

        return values(logits)

    by_class = run()
    monkeypatch.setattr(_numerics, "UNROLLED_CLASSES", 0)
    for (value, grad), (value_arrays, grad_arrays) in zip(by_class, run(), strict=True):
        assert np.isfinite(value) and np.all(np.isfinite(grad))
        np.testing.assert_allclose(value, value_arrays, rtol=1e-6)
        np.testing.assert_allclose(grad, grad_arrays, rtol=1e-5, atol=1e-8)

"""Dense prediction and point sets: overlap losses, Chamfer distance, Gram/style/perceptual."""

from __future__ import annotations

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

import jaxloss
from jaxloss._kernels import nearest_neighbours as _dense
from tests._suite.compiled import compile_as_users
from tests._suite.numpy_reference import log_softmax
from tests.dense import reference as ref


def _segmentation(seed, shape=(3, 4, 5), num_classes=4):
    rng = np.random.default_rng(seed)
    logits = 2 * rng.normal(size=(*shape, num_classes))
    probs = np.exp(log_softmax(logits)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=shape).astype(np.int32)
    return probs, labels


def _one_hot(labels, num_classes):
    return np.eye(num_classes, dtype=np.float32)[labels]


# ---------------------------------------------------------------------------- dice, tversky

DICE_GRID = list(itertools.product([False, True], [False, True], ["labels", "one_hot", "soft"]))


@jax.jit
def _dice_options(probs, target):
    # Every (squared, include_background) in one compilation per kind of target.
    return {
        (squared, background): jaxloss.dice(
            probs,
            target,
            reduction="none",
            squared=squared,
            include_background=background,
            smooth_nr=0.1,
        )
        for squared, background in itertools.product([False, True], [False, True])
    }


@pytest.mark.parametrize(
    "squared, include_background, targets",
    DICE_GRID,
    ids=[f"squared{s}-background{b}-{t}" for s, b, t in DICE_GRID],
)
def test_dice_matches_the_reference(squared, include_background, targets):
    # Two spatial axes and a third sample: the sums run over every axis between batch and class.
    probs, labels = _segmentation(DICE_GRID.index((squared, include_background, targets)))
    target = {
        "labels": labels,
        "one_hot": _one_hot(labels, 4),
        "soft": np.random.default_rng(7).uniform(size=probs.shape).astype(np.float32),
    }[targets]
    options = {"squared": squared, "include_background": include_background, "smooth_nr": 0.1}
    expected = ref.dice(probs, target, **options)
    ours = _dice_options(probs, target)[squared, include_background]
    assert ours.shape == (3, 4 if include_background else 3)
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["dice", "jaccard", "tversky"])
def test_without_the_background_a_mask_may_cover_every_class(loss):
    # As class_weights: [batch, num_classes] with class 0's column unused, or
    # [batch, num_classes - 1]; both mean the same (the first raised a shape error).
    probs, labels = _segmentation(0)
    every = np.array([[True, False, True, True], [True, True, False, True], [False] * 4])
    fn = functools.partial(getattr(jaxloss, loss), include_background=False, reduction="sum")
    both = jax.jit(lambda p, y: (fn(p, y, where=every), fn(p, y, where=every[:, 1:])))
    with_every, with_kept = both(probs, labels)
    np.testing.assert_array_equal(with_every, with_kept)
    assert with_every != jax.jit(fn)(probs, labels)


@pytest.mark.parametrize("loss", ["dice", "jaccard", "tversky", "boundary", "hausdorff_dt"])
def test_without_the_background_a_batch_mask_masks_samples_or_is_refused(loss):
    # A [batch] mask masks samples, also where the batch is as long as the class axis that
    # the background's removal cuts (it used to be cut as a class mask: 2 samples of 2
    # classes, [True, False] became [False] over the one class kept, a loss of 0).
    probs, labels = _segmentation(1, shape=(4, 6, 5), num_classes=3)
    fn = functools.partial(getattr(jaxloss, loss), include_background=False)
    rows = np.array([True, False, True, True])
    masked, kept = jax.jit(lambda p, y, p3, y3: (fn(p, y, where=rows), fn(p3, y3)))(
        probs, labels, probs[rows], labels[rows]
    )
    np.testing.assert_allclose(masked, kept, rtol=1e-6)
    # Two samples of two classes, or of three (two kept): the mask reads as samples and
    # as classes, so it is refused, asking for [2, 1] or [1, 2].
    for num_classes in (2, 3):
        probs, labels = _segmentation(2, shape=(2, 6, 5), num_classes=num_classes)
        with pytest.raises(ValueError, match=r"matches both .* give \(2, 1\)"):
            fn(probs, labels, where=np.array([True, False]))


def test_a_dropped_background_of_sigmoid_logits_is_not_read():
    # Sigmoid logits without the background: class 0's logits are not activated, so NaN there
    # reaches neither the value nor a gradient (its sigmoid's derivative passed NaN back).
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
    targets = _one_hot(rng.integers(0, 3, size=(2, 6, 5)), 3)
    names = ["dice", "jaccard", "tversky", "generalized_dice", "boundary", "hausdorff_dt"]

    @jax.jit
    def values_and_grads(x):
        def loss(name, x):
            return getattr(jaxloss, name)(
                x, targets, from_logits="sigmoid", include_background=False
            )

        return [jax.value_and_grad(functools.partial(loss, name))(x) for name in names]

    poisoned = logits.copy()
    poisoned[..., 0] = np.nan
    clean, poisoned = values_and_grads(logits), values_and_grads(poisoned)
    for name, (value, grad), (expected, expected_grad) in zip(names, poisoned, clean, strict=True):
        np.testing.assert_array_equal(value, expected, err_msg=name)
        np.testing.assert_array_equal(grad[..., 1:], expected_grad[..., 1:], err_msg=name)
        np.testing.assert_array_equal(grad[..., 0], 0, err_msg=name)


OPTAX_GRID = [(0.5, 0.5), (0.3, 0.7), (0.8, 0.2)]
OPTAX_SMOOTH = 0.3


@jax.jit
def _overlaps_for_optax(probs, labels):
    # Every (alpha, beta) of the grid in one compilation, and Dice with 2s.
    smooth = OPTAX_SMOOTH
    tversky = {
        (alpha, beta): jaxloss.tversky(
            probs,
            labels,
            alpha=alpha,
            beta=beta,
            smooth_nr=smooth,
            smooth_dr=smooth,
            reduction="none",
        )
        for alpha, beta in OPTAX_GRID
    }
    return tversky, jaxloss.dice(probs, labels, smooth_nr=2 * smooth, smooth_dr=2 * smooth)


@pytest.mark.parametrize("alpha, beta", OPTAX_GRID)
def test_dice_and_tversky_match_optax_where_it_runs(alpha, beta):
    # optax's dice_loss is the Tversky index with one smoothing s in numerator and
    # denominator; at alpha = beta = 0.5 that is Dice with 2s on both. It only runs eagerly
    # with apply_softmax=False, so optax runs eagerly (ours is compiled).
    probs, labels = _segmentation(1)
    onehot, smooth = _one_hot(labels, 4), OPTAX_SMOOTH
    theirs = optax.losses.dice_loss(
        probs, onehot, smooth=smooth, alpha=alpha, beta=beta, apply_softmax=False, reduction="none"
    )
    tversky, dice = _overlaps_for_optax(probs, labels)
    np.testing.assert_allclose(tversky[alpha, beta], theirs, rtol=1e-5, atol=1e-6)
    if alpha == beta == 0.5:
        np.testing.assert_allclose(dice, jnp.mean(theirs), rtol=1e-5)


TVERSKY_GAMMAS = [1.0, 0.75, 2.0]


@jax.jit
def _tversky_gammas(probs, labels):
    # Every gamma in one compilation; a Python float each, as a user passes it.
    options = {"alpha": 0.3, "beta": 0.7, "include_background": False, "reduction": "none"}
    return {g: jaxloss.tversky(probs, labels, gamma=g, **options) for g in TVERSKY_GAMMAS}


@pytest.mark.parametrize("gamma", TVERSKY_GAMMAS)
def test_tversky_matches_the_reference(gamma):
    probs, labels = _segmentation(2, shape=(2, 3, 3, 2), num_classes=3)
    options = {"alpha": 0.3, "beta": 0.7, "gamma": gamma, "include_background": False}
    np.testing.assert_allclose(
        _tversky_gammas(probs, labels)[gamma],
        ref.tversky(probs, labels, **options),
        rtol=1e-5,
        atol=1e-6,
    )


def test_tversky_at_one_half_is_dice_and_at_one_is_jaccard():
    probs, labels = _segmentation(3)
    onehot = _one_hot(labels, 4)
    zero = {"smooth_nr": 0.0, "smooth_dr": 0.0, "reduction": "none"}

    @jax.jit
    def run(probs, labels):
        return (
            jaxloss.tversky(probs, labels, **zero),
            jaxloss.dice(probs, labels, **zero),
            jaxloss.tversky(probs, labels, alpha=1.0, beta=1.0, **zero),
        )

    tversky, dice, jaccard = run(probs, labels)
    np.testing.assert_allclose(tversky, dice, rtol=1e-5)
    intersection = (probs * onehot).sum(axis=(1, 2))
    union = probs.sum(axis=(1, 2)) + onehot.sum(axis=(1, 2)) - intersection
    np.testing.assert_allclose(
        jaccard,
        1 - intersection / union,
        rtol=1e-5,
    )


def test_dice_hand_computed():
    # One sample, 4 pixels, 2 classes. Class 0: Σpt = 0.9 + 0.6 = 1.5, Σp = 2.1, Σt = 2.
    probs = np.array([[[0.9, 0.1], [0.6, 0.4], [0.4, 0.6], [0.2, 0.8]]], np.float32)
    labels = np.array([[0, 0, 1, 1]], np.int32)
    zero = {"smooth_nr": 0.0, "smooth_dr": 0.0, "reduction": "none"}

    @jax.jit
    def run(probs, labels):
        plain = jaxloss.dice(probs, labels, **zero)
        return plain, jaxloss.dice(probs, labels, squared=True, **zero)

    plain, squared = run(probs, labels)
    expected = [1 - 3.0 / 4.1, 1 - 2 * 1.4 / 3.9]
    np.testing.assert_allclose(plain[0], expected, rtol=1e-6)
    # Squared: Σp² = 0.81 + 0.36 + 0.16 + 0.04 = 1.37 for class 0, Σt² = 2.
    squared = squared[0, 0]
    np.testing.assert_allclose(squared, 1 - 3.0 / 3.37, rtol=1e-6)


def test_absent_classes_are_finite_and_documented():
    # Class 2 is absent from the target and never predicted; class 1 is absent from the
    # target but predicted.
    probs = np.array([[[0.7, 0.3, 0.0], [1.0, 0.0, 0.0]]], np.float32)
    labels = np.array([[0, 0]], np.int32)
    unsmoothed = {"smooth_nr": 0.0, "smooth_dr": 0.0, "reduction": "none"}

    @jax.jit
    def run(probs, labels):
        # Both losses, unsmoothed and smoothed, and the unsmoothed gradient, in one compilation.
        out = {}
        for fn in (jaxloss.dice, jaxloss.tversky):
            values = fn(probs, labels, **unsmoothed)
            smoothed = fn(probs, labels, reduction="none")
            grads = jax.grad(lambda p, fn=fn: jnp.sum(fn(p, labels, **unsmoothed)))(probs)
            out[fn.__name__] = values, smoothed, grads
        return out

    for values, smoothed, grads in run(probs, labels).values():
        # 0/0 for class 2 scores 1: no loss. Class 1: Σpt = 0, so the loss is 1.
        np.testing.assert_allclose(values[0, 1:], [1.0, 0.0], atol=1e-7)
        np.testing.assert_allclose(smoothed[0, 1:], [1.0, 0.0], atol=1e-4)
        assert np.all(np.isfinite(grads))
        np.testing.assert_array_equal(np.asarray(grads)[..., 2], 0.0)
        np.testing.assert_allclose(values, ref.dice(probs, labels, smooth_nr=0, smooth_dr=0))


def test_void_labels_leave_the_pixel_out():
    probs, labels = _segmentation(4)
    void = labels.copy()
    void[:, 0, :] = 255
    void[:, 1, 0] = -1
    kept = (void >= 0) & (void < 4)
    # The same sums with those pixels zeroed in both the probabilities and the targets.
    dropped_probs = np.where(kept[..., None], probs, 0.0)
    dropped_targets = np.where(kept[..., None], _one_hot(np.clip(void, 0, 3), 4), 0.0)
    fns = (jaxloss.dice, jaxloss.tversky)

    @jax.jit
    def run(probs, void):
        # Both losses' values and gradients in one compilation.
        return [
            (fn(probs, void, reduction="none"), jax.grad(lambda p, fn=fn: fn(p, void))(probs))
            for fn in fns
        ]

    for (values, grads), reference in zip(run(probs, void), (ref.dice, ref.tversky), strict=True):
        np.testing.assert_allclose(
            values,
            reference(dropped_probs, dropped_targets),
            rtol=1e-5,
            atol=1e-6,
        )
        assert np.all(np.asarray(grads)[~kept] == 0)


def test_tversky_gradient_where_the_index_is_one():
    # A perfect prediction, and an empty prediction of an empty target: indices of exactly
    # 1, where the clamp at 0 (for indices above 1) halved the gradient. At α = β = ½ and no
    # smoothing it is Dice's; on the empty map it is α / smooth_dr per pixel (the
    # derivative of 1 − (TP + s) / (TP + α FP + β FN + s) at 0, as MONAI's TverskyLoss).
    labels = np.array([[0, 1, 1, 2]], np.int32)
    perfect = _one_hot(labels, 3)
    empty = np.zeros((1, 4, 1), np.float32)
    zero = {"smooth_nr": 0.0, "smooth_dr": 0.0}

    @jax.jit
    def run(perfect, empty):
        tversky = jax.grad(lambda p: jaxloss.tversky(p, labels, **zero))(perfect)
        dice = jax.grad(lambda p: jaxloss.dice(p, labels, **zero))(perfect)
        on_empty = jax.grad(lambda p: jaxloss.tversky(p, empty, alpha=0.3, beta=0.7))(empty)
        return tversky, dice, on_empty

    tversky, dice, on_empty = run(perfect, empty)
    assert np.any(dice != 0)
    np.testing.assert_allclose(tversky, dice, rtol=1e-6)
    np.testing.assert_allclose(on_empty, 0.3 / 1e-5, rtol=1e-5)


def test_focal_tversky_has_finite_gradients_at_a_perfect_prediction():
    labels = np.array([[0, 1, 1]], np.int32)
    perfect = _one_hot(labels, 2)

    @jax.jit
    def run(perfect, labels):
        # Every gamma's gradient in one compilation.
        return [
            jax.grad(
                lambda p, g=gamma: jaxloss.tversky(p, labels, gamma=g, smooth_nr=0.0, smooth_dr=0.0)
            )(perfect)
            for gamma in (0.5, 0.75, 2.0)
        ]

    for grads in run(perfect, labels):
        assert np.all(np.isfinite(grads))


def test_overlap_losses_run_under_jit_with_traced_hyperparameters():
    probs, labels = _segmentation(5)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(alpha, beta, smooth):
        return jaxloss.tversky(probs, labels, alpha=alpha, beta=beta, smooth_nr=smooth)

    for alpha, beta in [(0.5, 0.5), (0.2, 0.8)]:
        expected = ref.tversky(probs, labels, alpha=alpha, beta=beta, smooth_nr=0.01).mean()
        np.testing.assert_allclose(loss(alpha, beta, 0.01), expected, rtol=1e-5)


# ------------------------------------------------------------------ logits, generalized Dice


def _torch_generalized_dice(x, labels, *, w_type, batch, include_background, activation):
    """MONAI's ``GeneralizedDiceLoss.forward`` transcribed in torch float64 (channel last in,
    moved first as MONAI takes it): per-sample values, or the one ``batch=True`` value, and
    the gradient of their sum."""
    x = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    num_classes = x.shape[-1]
    inputs = x.movedim(-1, 1)
    if activation == "sigmoid":
        inputs = torch.sigmoid(inputs)
    elif activation == "softmax":
        inputs = torch.softmax(inputs, 1)
    target = torch.nn.functional.one_hot(torch.tensor(labels).long(), num_classes)
    target = target.movedim(-1, 1).double()
    if not include_background:
        inputs, target = inputs[:, 1:], target[:, 1:]
    reduce_axis = list(range(2, inputs.ndim))
    if batch:
        reduce_axis = [0, *reduce_axis]
    intersection = torch.sum(target * inputs, reduce_axis)
    ground_o = torch.sum(target, reduce_axis)
    denominator = ground_o + torch.sum(inputs, reduce_axis)
    w = {"simple": torch.reciprocal(ground_o), "square": torch.reciprocal(ground_o * ground_o)}
    w = w.get(w_type, torch.ones_like(ground_o))
    infs = torch.isinf(w)
    w[infs] = 0.0
    w = w + infs * (torch.max(w) if batch else torch.max(w, dim=1)[0].unsqueeze(1))
    reduce = 0 if batch else 1
    numer = 2.0 * (intersection * w).sum(reduce, keepdim=True) + 1e-5
    denom = (denominator * w).sum(reduce, keepdim=True) + 1e-5
    f = (1.0 - numer / denom).reshape(-1)
    f.sum().backward()
    return f.detach().numpy(), x.grad.numpy()


MONAI_GRID = list(
    itertools.product(["square", "simple", "uniform"], [None, "sigmoid", "softmax"], [True, False])
)


@jax.jit
def _generalized_dice_grid(x, labels):
    # Every (weight type, activation, background) of the grid, per sample and with MONAI's
    # batch=True (the batch folded into one sample), values and gradients in one compilation.
    out = {}
    for weight_type, from_logits, background in MONAI_GRID:
        for batch in (False, True):

            def loss(x, o=(weight_type, from_logits, background, batch)):
                weight_type, from_logits, background, batch = o
                if batch:
                    x, labels_ = x.reshape(1, -1, x.shape[-1]), labels.reshape(1, -1)
                else:
                    labels_ = labels
                return jaxloss.generalized_dice(
                    x,
                    labels_,
                    weight_type=weight_type,
                    from_logits=from_logits,
                    include_background=background,
                    reduction="none",
                )

            values, pullback = jax.vjp(loss, x)
            out[str((weight_type, from_logits, background, batch))] = (
                values,
                pullback(jnp.ones_like(values))[0],
            )
    return out


@pytest.mark.parametrize(
    "weight_type, from_logits, include_background",
    MONAI_GRID,
    ids=[f"{w}-{a}-background{b}" for w, a, b in MONAI_GRID],
)
def test_generalized_dice_matches_monai_in_torch(weight_type, from_logits, include_background):
    # Class 3 is absent from sample 0 and class 1 from every sample: the infinite weights
    # become the largest finite one, per sample or over the batch.
    probs, labels = _segmentation(8)
    labels = np.where(labels == 1, 2, labels)
    labels[0] = np.where(labels[0] == 3, 0, labels[0])
    x = probs if from_logits is None else 3 * np.log(probs)
    grid = _generalized_dice_grid(x, labels)
    for batch in (False, True):
        values, grads = grid[str((weight_type, from_logits, include_background, batch))]
        expected, expected_grads = _torch_generalized_dice(
            x,
            labels,
            w_type=weight_type,
            batch=batch,
            include_background=include_background,
            activation=from_logits,
        )
        np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6, err_msg=f"{batch}")
        np.testing.assert_allclose(grads, expected_grads, rtol=1e-4, atol=1e-6)


GENERALIZED_OPTIONS = list(itertools.product([False, True], [False, True], ["labels", "soft"]))


@jax.jit
def _generalized_dice_options(probs, labels, soft):
    return {
        (batch_weights, weighted_mean, kind): jaxloss.generalized_dice(
            probs,
            {"labels": labels, "soft": soft}[kind],
            batch_weights=batch_weights,
            weighted_mean=weighted_mean,
            smooth_nr=0.1,
            smooth_dr=0.2,
            reduction="none",
        )
        for batch_weights, weighted_mean, kind in GENERALIZED_OPTIONS
    }


def test_generalized_dice_options_match_the_reference():
    probs, labels = _segmentation(9)
    labels[1] = np.where(labels[1] == 2, 0, labels[1])  # class 2 absent from sample 1
    soft = np.random.default_rng(9).uniform(size=probs.shape).astype(np.float32)
    ours = _generalized_dice_options(probs, labels, soft)
    for batch_weights, weighted_mean, kind in GENERALIZED_OPTIONS:
        options = {"batch_weights": batch_weights, "weighted_mean": weighted_mean}
        target = {"labels": labels, "soft": soft}[kind]
        expected = ref.generalized_dice(probs, target, smooth_nr=0.1, smooth_dr=0.2, **options)
        np.testing.assert_allclose(
            ours[batch_weights, weighted_mean, kind], expected, rtol=1e-5, err_msg=str(options)
        )


def test_generalized_dice_of_a_sample_without_classes_is_smoothing_only():
    # Sample 1 holds only void pixels: no class present, every weight 0. Its loss is
    # 1 − s_nr/s_dr whatever it predicts, 0 (not NaN) without smoothing, and it has no
    # gradient; sample 0 is unaffected.
    probs, labels = _segmentation(10, shape=(2, 3, 3), num_classes=3)
    labels[1] = 255

    @jax.jit
    def run(probs):
        def loss(p, smooth):
            return jaxloss.generalized_dice(
                p, labels, smooth_nr=smooth[0], smooth_dr=smooth[1], reduction="none"
            )

        out = {}
        for smooth in ((0.0, 0.0), (0.1, 0.4), (1.0, 1.0)):
            values, pullback = jax.vjp(lambda p, s=smooth: loss(p, s), probs)
            out[smooth] = values, pullback(jnp.ones_like(values))[0]
        return out

    for (smooth_nr, smooth_dr), (values, grads) in run(probs).items():
        np.testing.assert_allclose(values[1], 1 - (smooth_nr / smooth_dr if smooth_dr else 1))
        assert np.all(np.isfinite(grads)) and np.all(np.asarray(grads)[1] == 0)
        np.testing.assert_allclose(
            values[0],
            ref.generalized_dice(probs[:1], labels[:1], smooth_nr=smooth_nr, smooth_dr=smooth_dr)[
                0
            ],
            rtol=1e-5,
        )


def test_from_logits_is_the_activation_then_the_loss():
    # Values and gradients through the logits equal those of the activated probabilities
    # (jax.nn's activations, whose gradients are chained by hand below). A softmax reads a
    # sample's every class, so masking one (sample, class) entry leaves its other entries.
    rng = np.random.default_rng(11)
    logits = (3 * rng.normal(size=(3, 4, 5, 4))).astype(np.float32)
    labels = rng.integers(0, 4, size=(3, 4, 5)).astype(np.int32)
    where = np.ones((3, 4), bool)
    where[0, 2] = False
    activations = {"sigmoid": jax.nn.sigmoid, "softmax": lambda z: jax.nn.softmax(z, axis=-1)}

    @jax.jit
    def run(logits):
        out = {}
        for fn in (jaxloss.dice, jaxloss.tversky, jaxloss.generalized_dice):
            for name, activation in activations.items():

                def through_logits(z, fn=fn, name=name):
                    return fn(z, labels, from_logits=name, reduction="sum")

                def through_probs(z, fn=fn, activation=activation):
                    return fn(activation(z), labels, reduction="sum")

                out[fn.__name__, name] = (
                    jax.value_and_grad(through_logits)(logits),
                    jax.value_and_grad(through_probs)(logits),
                )
        masked = jaxloss.dice(logits, labels, from_logits="softmax", where=where, reduction="none")
        unmasked = jaxloss.dice(logits, labels, from_logits="softmax", reduction="none")
        return out, masked, unmasked

    out, masked, unmasked = run(logits)
    for key, ((value, grad), (expected, expected_grad)) in out.items():
        np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=str(key))
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7, err_msg=str(key))
    np.testing.assert_allclose(masked, np.where(where, unmasked, 0), rtol=1e-6)


def test_optax_probability_paths_fail_under_jit_where_ours_run():
    # optax 0.2.8 checks `jnp.allclose(sum(predictions), 1)` in Python when
    # apply_softmax=False: under jit that is a TracerBoolConversionError, and for one
    # sigmoid channel (binary_dice_loss(apply_sigmoid=False)) a ValueError even eagerly,
    # since binary probabilities do not sum to 1. Our translations run compiled.
    probs, labels = _segmentation(12)
    onehot = _one_hot(labels, 4)
    for fn in (optax.losses.dice_loss, optax.losses.multiclass_generalized_dice_loss):
        with pytest.raises(jax.errors.TracerBoolConversionError):
            jax.jit(lambda p, t, fn=fn: fn(p, t, apply_softmax=False))(probs, onehot)
    binary_probs, binary_targets = probs[..., 0], onehot[..., 0]
    with pytest.raises(ValueError, match="sum to 1"):
        optax.losses.binary_dice_loss(binary_probs, binary_targets, apply_sigmoid=False)

    @jax.jit
    def ours(probs, labels, binary_logits, binary_targets):
        return (
            jaxloss.dice(probs, labels, smooth_nr=2.0, smooth_dr=2.0, reduction="none").mean(-1),
            jaxloss.generalized_dice(
                probs, labels, batch_weights=True, weighted_mean=True, smooth_nr=2.0, smooth_dr=2.0
            ),
            jaxloss.dice(
                binary_logits[..., None],
                binary_targets[..., None],
                from_logits="sigmoid",
                smooth_nr=2.0,
                smooth_dr=2.0,
                reduction="none",
            )[..., 0],
        )

    binary_logits = np.log(binary_probs) - np.log1p(-binary_probs)
    dice, generalized, binary = ours(probs, labels, binary_logits, binary_targets)
    with jax.numpy_rank_promotion("allow"):  # optax's class weights broadcast by promotion
        expected_generalized = optax.losses.multiclass_generalized_dice_loss(
            probs, onehot, apply_softmax=False
        )
    np.testing.assert_allclose(
        dice, optax.losses.dice_loss(probs, onehot, apply_softmax=False), rtol=1e-5
    )
    np.testing.assert_allclose(generalized, expected_generalized, rtol=1e-5)
    np.testing.assert_allclose(
        binary, optax.losses.binary_dice_loss(binary_logits, binary_targets), rtol=1e-5
    )


OVERLAP_LOSSES = [jaxloss.dice, jaxloss.tversky, jaxloss.generalized_dice]


@pytest.mark.parametrize("fn", OVERLAP_LOSSES, ids=["dice", "tversky", "generalized_dice"])
def test_overlap_shape_errors(fn):
    probs, labels = _segmentation(6)
    with pytest.raises(ValueError, match=r"`targets` must have the shape of `probs`"):
        fn(probs, labels[:, :2])
    with pytest.raises(TypeError, match="`targets` must hold integer"):
        fn(probs, labels.astype(np.float32))
    with pytest.raises(ValueError, match="`probs` must be"):
        fn(probs[0, 0, 0], labels[0, 0, 0])
    with pytest.raises(ValueError, match="`probs` must be"):
        fn(probs[0, 0, 0, 0], labels[0, 0])  # a scalar: no class axis
    with pytest.raises(ValueError, match="include_background"):
        fn(probs[..., :1], labels, include_background=False)
    with pytest.raises(ValueError, match="where"):
        fn(probs, labels, where=np.ones((3, 5), bool))
    with pytest.raises(ValueError, match="`from_logits`"):
        fn(probs, labels, from_logits="tanh")
    with pytest.raises(ValueError, match="from_logits='sigmoid'"):
        fn(probs[..., :1], labels, from_logits="softmax")
    # One class and integer labels: every label but 0 would be void, the loss 0 (MONAI
    # ignores to_onehot_y with one channel, so a ported binary mask arrives this way).
    with pytest.raises(ValueError, match="one class: every label but 0 would be void"):
        fn(probs[..., :1], (labels > 0).astype(np.int32))


def test_generalized_dice_option_errors():
    probs, labels = _segmentation(13)
    with pytest.raises(ValueError, match="`weight_type`"):
        jaxloss.generalized_dice(probs, labels, weight_type="cube")
    with pytest.raises(ValueError, match="`smooth_dr`"):
        jaxloss.generalized_dice(probs, labels, smooth_dr=-1.0)


# ---------------------------------------------------------------------------------- chamfer


def _clouds(seed, batch=3, num_x=9, num_y=6, dim=3, scale=1.0):
    rng = np.random.default_rng(seed)
    x = scale * rng.normal(size=(batch, num_x, dim))
    y = scale * rng.normal(size=(batch, num_y, dim))
    return x.astype(np.float32), y.astype(np.float32)


def _torch_chamfer(x, y, x_lengths, y_lengths, squared, point_reduction, single_directional):
    """Brute force in torch, float64: an independent value and autograd gradient."""
    x = torch.tensor(np.asarray(x, np.float64), requires_grad=True)
    y = torch.tensor(np.asarray(y, np.float64), requires_grad=True)
    total = 0.0
    for b in range(x.shape[0]):
        xb, yb = x[b, : x_lengths[b]], y[b, : y_lengths[b]]
        if len(xb) == 0 or len(yb) == 0:
            continue
        d = ((xb[:, None] - yb[None]) ** 2).sum(-1)
        if not squared:
            d = d.sqrt()
        for nearest in [d.min(1).values] + ([] if single_directional else [d.min(0).values]):
            total = total + (nearest.sum() if point_reduction == "sum" else nearest.mean())
    total.backward()
    return total.item(), x.grad.numpy(), y.grad.numpy()


CHAMFER_GRID = list(itertools.product([True, False], ["mean", "sum"], [False, True]))
CHUNK_SIZES = (None, 1, 4, 64)


@jax.jit
def _chamfer_grid(x, y, x_lengths, y_lengths):
    # Every option set of the grid in one compilation (the cases share one input shape): for
    # each, every chunk size's summed value and gradients, and the per-pair values.
    out = {}
    for squared, point_reduction, single_directional in CHAMFER_GRID:
        options = {
            "squared": squared,
            "point_reduction": point_reduction,
            "single_directional": single_directional,
            "x_lengths": x_lengths,
            "y_lengths": y_lengths,
        }

        def loss(x, y, chunk_size, options=options):
            return jaxloss.chamfer(x, y, chunk_size=chunk_size, reduction="sum", **options)

        runs = [jax.value_and_grad(loss, argnums=(0, 1))(x, y, c) for c in CHUNK_SIZES]
        none = jaxloss.chamfer(x, y, reduction="none", **options)
        out[squared, point_reduction, single_directional] = runs, none
    return out


@pytest.mark.parametrize(
    "squared, point_reduction, single_directional",
    CHAMFER_GRID,
    ids=[f"squared{s}-{r}-single{d}" for s, r, d in CHAMFER_GRID],
)
def test_chamfer_matches_brute_force_values_and_gradients(
    squared, point_reduction, single_directional
):
    x, y = _clouds(CHAMFER_GRID.index((squared, point_reduction, single_directional)))
    # Padded clouds: one full, one with empty y (its x → y term has no neighbour), one short.
    x_lengths, y_lengths = np.array([9, 5, 3], np.int32), np.array([6, 0, 2], np.int32)
    options = {
        "squared": squared,
        "point_reduction": point_reduction,
        "single_directional": single_directional,
    }
    grid = _chamfer_grid(x, y, x_lengths, y_lengths)
    runs, none = grid[squared, point_reduction, single_directional]
    expected, ex, ey = _torch_chamfer(x, y, x_lengths, y_lengths, **options)
    np.testing.assert_allclose(
        none,
        ref.chamfer(x, y, x_lengths, y_lengths, **options),
        rtol=1e-5,
        atol=1e-6,
    )
    for chunk_size, (value, (dx, dy)) in zip(CHUNK_SIZES, runs, strict=True):
        message = f"chunk_size={chunk_size}"
        np.testing.assert_allclose(value, expected, rtol=1e-5, err_msg=message)
        np.testing.assert_allclose(dx, ex, rtol=1e-4, atol=1e-6, err_msg=message)
        np.testing.assert_allclose(dy, ey, rtol=1e-4, atol=1e-6, err_msg=message)
        # Padding gets no gradient.
        assert np.all(np.asarray(dx)[1, 5:] == 0) and np.all(np.asarray(dy)[2, 2:] == 0)


def test_chamfer_empty_clouds_are_zero():
    x, y = _clouds(1, batch=2)
    lengths = np.array([0, 0], np.int32)

    @jax.jit
    def run(x, y, lengths):
        return (
            jaxloss.chamfer(x, y, x_lengths=lengths),
            jaxloss.chamfer(x, y, x_lengths=lengths, y_lengths=lengths),
            jaxloss.chamfer(x, y, y_lengths=lengths),
        )

    x_empty, both_empty, y_empty = run(x, y, lengths)
    assert float(x_empty) == 0.0
    assert float(both_empty) == 0.0
    # y empty: x → y has no neighbour (0); y → x is over no points (0).
    assert float(y_empty) == 0.0


def test_chamfer_clouds_with_no_points_are_zero_as_lengths_of_zero():
    # A point axis of size 0 (it crashed: no block for the search) means what lengths of 0
    # mean: 0, with zero gradients of the inputs' shapes, chunked or not.
    x, y = _clouds(1, batch=2)

    @jax.jit
    def run(x, y):
        calls = [
            lambda a, b: jaxloss.chamfer(a[:, :0], b),
            lambda a, b: jaxloss.chamfer(a, b[:, :0], chunk_size=2),
            lambda a, b: jaxloss.chamfer(a[:, :0], b[:, :0], point_reduction="sum"),
        ]
        return [jax.value_and_grad(f, (0, 1))(x, y) for f in calls]

    for value, grads in run(x, y):
        assert float(value) == 0.0
        assert all(
            g.shape == a.shape and np.all(g == 0) for g, a in zip(grads, (x, y), strict=True)
        )


def test_chamfer_hand_computed_with_padding():
    x = np.array([[[0.0, 0.0], [3.0, 4.0], [99.0, 99.0]]], np.float32)  # last point is padding
    y = np.array([[[0.0, 1.0], [3.0, 3.0]]], np.float32)
    lengths = np.array([2], np.int32)

    @jax.jit
    def run(x, y, lengths):
        return (
            jaxloss.chamfer(x, y, x_lengths=lengths),
            jaxloss.chamfer(x, y, x_lengths=lengths, squared=False),
            jaxloss.chamfer(x, y, single_directional=True, point_reduction="sum"),
        )

    squared, plain, full = run(x, y, lengths)
    # x → y squared: (1, 1), mean 1; y → x: (1, 1), mean 1.
    assert float(squared) == pytest.approx(2.0)
    # Plain distances from (0,0): to (0,1) is 1; from (3,4): to (3,3) is 1.
    assert float(plain) == pytest.approx(2.0)
    # Without the lengths the padding point counts: its nearest is (3, 3), 96² + 96².
    assert float(full) == pytest.approx(1 + 1 + 2 * 96.0**2)


def test_chamfer_high_dimensional_points_use_the_gram_form():
    x, y = _clouds(2, dim=_dense._DIRECT_MAX_DIM + 4)
    lengths = np.array([9, 9, 9], np.int32), np.array([6, 6, 6], np.int32)

    @jax.jit
    def run(x, y):
        # Both chunk sizes' values and gradients in one compilation.
        return [
            jax.value_and_grad(
                lambda a, b, c=chunk_size: jaxloss.chamfer(a, b, chunk_size=c, reduction="sum"),
                argnums=(0, 1),
            )(x, y)
            for chunk_size in (None, 4)
        ]

    expected, ex, ey = _torch_chamfer(x, y, *lengths, True, "mean", False)
    for value, (dx, dy) in run(x, y):
        np.testing.assert_allclose(value, expected, rtol=1e-5)
        np.testing.assert_allclose(dx, ex, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(dy, ey, rtol=1e-4, atol=1e-6)


def test_chamfer_is_exact_far_from_the_origin():
    # Clouds at 1e4 with spacing 1e-2: ‖x‖² + ‖y‖² − 2x·y would lose the distances to
    # cancellation; the direct form and the exact recomputation from indices do not.
    # The float64 reference sees the same float32 coordinates.
    x, y = (cloud + np.float32(1e4) for cloud in _clouds(3, scale=1e-2))
    ours = jax.jit(lambda x, y: jaxloss.chamfer(x, y, reduction="none"))(x, y)
    np.testing.assert_allclose(ours, ref.chamfer(x, y), rtol=1e-5)


def test_chamfer_plain_distances_have_zero_gradients_at_coincident_points():
    x, _ = _clouds(4)

    @jax.jit
    def run(x, y):
        # Both chunk sizes' gradients in one compilation.
        return [
            jax.grad(
                lambda a, b, c=chunk_size: jaxloss.chamfer(a, b, squared=False, chunk_size=c),
                argnums=(0, 1),
            )(x, y)
            for chunk_size in (None, 2)
        ]

    for grads in run(x, x):
        for g in grads:
            assert np.all(np.isfinite(g))
            np.testing.assert_array_equal(g, 0.0)


def test_chamfer_gradient_is_linear_in_the_points():
    # The backward pass must not rebuild the distance matrix: at B=4, N=M=16384 (issue 6)
    # the chunked value_and_grad needs at least 64 times less temporary memory than the
    # dense one (compiled only, XLA's exact memory analysis; the dense one needs 24 GiB).
    points = jax.ShapeDtypeStruct((4, 16384, 3), jnp.float32)

    def dense(x, y):
        d = jnp.sum(jnp.square(x[:, :, None] - y[:, None]), axis=-1)
        return jnp.mean(jnp.mean(d.min(axis=2), axis=1) + jnp.mean(d.min(axis=1), axis=1))

    def temp_mib(fn):
        lowered = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(points, points)
        compiled = compile_as_users(lowered)
        return compiled.memory_analysis().temp_size_in_bytes / 2**20

    chunked = temp_mib(lambda x, y: jaxloss.chamfer(x, y, chunk_size=1024))
    assert temp_mib(dense) >= 64 * chunked


def test_chamfer_errors():
    x, y = _clouds(5)
    with pytest.raises(ValueError, match="same batch and dim"):
        jaxloss.chamfer(x, y[:2])
    with pytest.raises(ValueError, match="same batch and dim"):
        jaxloss.chamfer(x, y[..., :2])
    with pytest.raises(ValueError, match=r"`x` must be \[batch, num_points, dim\]"):
        jaxloss.chamfer(x[0], y)
    with pytest.raises(ValueError, match="point_reduction"):
        jaxloss.chamfer(x, y, point_reduction="max")
    with pytest.raises(ValueError, match="chunk_size"):
        jaxloss.chamfer(x, y, chunk_size=0)
    with pytest.raises(TypeError, match="`x_lengths` must hold integer lengths, got dtype float"):
        jaxloss.chamfer(x, y, x_lengths=np.full(x.shape[0], 3.0))
    with pytest.raises(ValueError, match="x_lengths"):
        jaxloss.chamfer(x, y, x_lengths=np.array([1, 2], np.int32))
    with pytest.raises(TypeError, match="y_lengths"):
        jaxloss.chamfer(x, y, y_lengths=np.array([1.0, 2.0, 3.0]))


# ---------------------------------------------------------------- gram, style, perceptual


def test_gram_matrix_matches_the_reference():
    features = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    gram = jax.jit(jaxloss.gram_matrix)(features)
    assert gram.shape == (2, 5, 5)
    np.testing.assert_allclose(gram, ref.gram_matrix(features), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gram, np.swapaxes(gram, 1, 2))


def test_style_loss_takes_one_style_image_of_another_size():
    rng = np.random.default_rng(1)
    features = [rng.normal(size=(3, 8, 8, 4)), rng.normal(size=(3, 4, 4, 6))]
    style = [rng.normal(size=(1, 6, 5, 4)), rng.normal(size=(1, 3, 2, 6))]
    weights = [0.2, 1.5]
    ours = jax.jit(
        lambda features, style: jaxloss.style_loss(
            features, style, weights=weights, reduction="none"
        )
    )(features, style)
    expected = ref.style_loss(features, [np.repeat(s, 3, axis=0) for s in style], weights=weights)
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


def test_style_loss_is_gatys_formula():
    # E = Σ(G − A)² / (4 C² P²) on unnormalized Gram matrices, written out for one layer.
    rng = np.random.default_rng(2)
    f, a = rng.normal(size=(1, 5, 3)), rng.normal(size=(1, 5, 3))
    g_raw, a_raw = f[0].T @ f[0], a[0].T @ a[0]
    expected = np.sum((g_raw - a_raw) ** 2) / (4 * 3**2 * 5**2)
    np.testing.assert_allclose(jax.jit(jaxloss.style_loss)(f, a), expected, rtol=1e-5)


def test_perceptual_loss_broadcasts_targets_and_weights_layers():
    rng = np.random.default_rng(3)
    features = [rng.normal(size=(2, 4, 4, 3)), rng.normal(size=(2, 2, 2, 5))]
    targets = [rng.normal(size=(1, 4, 4, 3)), rng.normal(size=(2, 2, 2, 5))]
    ours = jax.jit(
        lambda features, targets: jaxloss.perceptual_loss(
            features, targets, weights=[1.0, 3.0], reduction="none"
        )
    )(features, targets)
    expected = ref.perceptual_loss(features, targets, weights=[1.0, 3.0])
    np.testing.assert_allclose(ours, expected, rtol=1e-5)


@pytest.mark.parametrize(
    "fn", [jaxloss.style_loss, jaxloss.perceptual_loss], ids=["style", "perceptual"]
)
def test_layer_weights_are_traceable(fn):
    rng = np.random.default_rng(4)
    features = [rng.normal(size=(2, 3, 3, 2)).astype(np.float32) for _ in range(2)]
    targets = [rng.normal(size=(2, 3, 3, 2)).astype(np.float32) for _ in range(2)]
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(w):
        return fn(features, targets, weights=[w, 1.0])

    reference = getattr(ref, fn.__name__)
    for w in (0.5, 2.0):
        np.testing.assert_allclose(
            loss(w), reference(features, targets, weights=[w, 1.0]).mean(), rtol=1e-5
        )


@pytest.mark.parametrize(
    "fn", [jaxloss.style_loss, jaxloss.perceptual_loss], ids=["style", "perceptual"]
)
def test_layer_errors(fn):
    f = np.ones((2, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match="same number of layers"):
        fn([f, f], [f])
    with pytest.raises(ValueError, match="one weight per layer"):
        fn([f], [f], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="`weights` must lie in"):  # it would reward a distance
        fn([f, f], [f, f], weights=[1.0, -0.5])
    with pytest.raises(ValueError, match="at least one"):
        fn([], [])
    with pytest.raises(ValueError, match="batch size"):
        fn([f, f[:1]], [f, f[:1]])
    with pytest.raises(ValueError, match=r"targets\[0\]"):
        fn([f], [f[..., :3]])
    with pytest.raises(ValueError, match=r"features\[0\]"):
        fn([f[0, 0, 0]], [f[0, 0, 0]])


def test_gram_matrix_errors():
    with pytest.raises(TypeError, match="one array"):
        jaxloss.gram_matrix([np.ones((1, 2, 2))])
    with pytest.raises(ValueError, match="features"):
        jaxloss.gram_matrix(np.ones(3))
    with pytest.raises(TypeError, match="floating-point"):
        jaxloss.gram_matrix(np.ones((1, 2, 2), np.int32))


@pytest.mark.parametrize("num_classes", [3, 12], ids=["by_class", "arrays"])
def test_sigmoid_logits_of_masked_sample_class_entries_are_never_read(num_classes):
    # where [batch, classes] masks one (sample, class) entry; its sigmoid logits hold NaN
    # and inf. A sigmoid reads its own class only, so neither the value nor any gradient
    # may see them: the value equals that with finite logits there, the gradient there is
    # exactly 0 and finite elsewhere (short class axes go class by class, long ones as
    # arrays).
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(2, 5, 4, num_classes)).astype(np.float32)
    labels = rng.integers(0, num_classes, size=(2, 5, 4)).astype(np.int32)
    where = np.ones((2, num_classes), bool)
    where[1, 2] = False
    padded = logits.copy()
    padded[1, ..., 2] = np.nan
    padded[1, 0, 0, 2] = np.inf
    names = ["dice", "jaccard", "tversky", "boundary", "hausdorff_dt"]
    losses = [getattr(jaxloss, name) for name in names]

    @jax.jit
    def run(z):
        return [
            jax.value_and_grad(lambda z, f=f: f(z, labels, where=where, from_logits="sigmoid"))(z)
            for f in losses
        ]

    for name, (value, grad), (clean, _) in zip(names, run(padded), run(logits), strict=True):
        np.testing.assert_allclose(value, clean, rtol=1e-6, err_msg=name)
        assert np.all(grad[1, ..., 2] == 0), name
        assert np.all(np.isfinite(grad)) and np.any(grad != 0), name

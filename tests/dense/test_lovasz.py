"""Lovász-Softmax and Lovász hinge: the float64 reference of Berman et al.'s Algorithm 1,
finite differences, kornia, hand-worked cases, left-out pixels and the global sort."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import kornia
import numpy as np
import pytest
import torch
from jax.sharding import PartitionSpec as P

import jaxloss
from tests.dense import reference_lovasz as ref

IGNORE = 255
NUM_CLASSES = 3
SHAPES = {"2d": (2, 4, 5), "3d": (2, 2, 3, 4)}
SOFTMAX_GRID = list(itertools.product(["present", "all"], [True, False], [None, "softmax"]))


def _segmentation(seed, shape, num_classes=NUM_CLASSES, ignored=0.2):
    """Logits ``[*shape, classes]`` and labels with ignored (255) and out-of-range (-1, 7)
    pixels; class 2 absent from the first image."""
    rng = np.random.default_rng(seed)
    logits = (2 * rng.normal(size=(*shape, num_classes))).astype(np.float32)
    labels = rng.integers(0, num_classes, size=shape)
    labels[0][labels[0] == 2] = 1
    odd = rng.uniform(size=shape) < ignored
    labels[odd] = rng.choice([IGNORE, -1, 7], size=odd.sum())
    return logits, labels.astype(np.int32)


def _probs(logits):
    return np.exp(ref.log_softmax(logits)).astype(np.float32)


def _binary(seed, shape, ignored=0.2):
    rng = np.random.default_rng(seed)
    logits = (2 * rng.normal(size=shape)).astype(np.float32)
    labels = rng.integers(0, 2, size=shape)
    odd = rng.uniform(size=shape) < ignored
    labels[odd] = rng.choice([IGNORE, 2, -1], size=odd.sum())
    return logits, labels.astype(np.int32)


@jax.jit
def _softmax_options(probs, logits, labels):
    # Every option combination in one compilation per shape.
    out = {}
    for classes, per_image, from_logits in SOFTMAX_GRID:
        x = probs if from_logits is None else logits
        options = {"classes": classes, "per_image": per_image, "from_logits": from_logits}
        out[str((classes, per_image, from_logits))] = {
            reduction: jaxloss.lovasz_softmax(
                x, labels, ignore_index=IGNORE, reduction=reduction, **options
            )
            for reduction in ("none", "mean", "sum")
        }
    return out


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_lovasz_softmax_matches_the_reference(shape):
    logits, labels = _segmentation(0, SHAPES[shape])
    probs = _probs(logits)
    out = _softmax_options(probs, logits, labels)
    for classes, per_image, from_logits in SOFTMAX_GRID:
        ours = out[str((classes, per_image, from_logits))]
        x = probs if from_logits is None else logits
        options = {"classes": classes, "per_image": per_image, "from_logits": from_logits}
        expected = ref.lovasz_softmax(x, labels, ignore_index=IGNORE, **options)
        msg = str(options)
        assert ours["none"].shape == ((2,) if per_image else (NUM_CLASSES,)), msg
        np.testing.assert_allclose(ours["none"], expected, rtol=1e-5, atol=1e-6, err_msg=msg)
        np.testing.assert_allclose(ours["sum"], expected.sum(), rtol=1e-5, err_msg=msg)
        counted = ref.counted_images(labels, NUM_CLASSES, IGNORE) if per_image else (expected != 0)
        np.testing.assert_allclose(
            ours["mean"], expected.sum() / counted.sum(), rtol=1e-5, err_msg=msg
        )
    # The first image lacks class 2: "present" leaves it out, "all" does not.
    assert out["('present', True, None)"]["none"][0] != out["('all', True, None)"]["none"][0]


def _finite_differences(fn, x, eps=1e-6):
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (fn(up) - fn(down)) / (2 * eps)
    return grad


GRADIENT_GRID = [("present", True), ("all", True), ("present", False), ("all", False)]


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_lovasz_softmax_gradients_match_finite_differences(shape):
    # Piecewise linear in the probabilities: central differences are exact between ties.
    logits, labels = _segmentation(1, SHAPES[shape])

    @jax.jit
    def grads(x):
        return {
            (classes, per_image): jax.grad(
                lambda z, c=classes, i=per_image: jaxloss.lovasz_softmax(
                    z, labels, classes=c, per_image=i, from_logits="softmax", ignore_index=IGNORE
                )
            )(x)
            for classes, per_image in GRADIENT_GRID
        }

    ours = grads(logits)
    x64 = logits.astype(np.float64)
    for classes, per_image in GRADIENT_GRID:

        def mean(z, c=classes, i=per_image):
            values = ref.lovasz_softmax(
                z, labels, classes=c, per_image=i, ignore_index=IGNORE, from_logits="softmax"
            )
            counted = ref.counted_images(labels, NUM_CLASSES, IGNORE)
            return values.sum() / (counted.sum() if i else (values != 0).sum())

        expected = _finite_differences(mean, x64)
        np.testing.assert_allclose(
            ours[classes, per_image], expected, rtol=1e-4, atol=1e-6, err_msg=classes
        )
        ignored = (labels < 0) | (labels >= NUM_CLASSES)
        assert np.all(np.asarray(ours[classes, per_image])[ignored] == 0)


def _softmax_value_and_grad(logits, labels, per_image):
    """The "none" values and the gradient of their sum."""

    def total(z):
        values = jaxloss.lovasz_softmax(
            z,
            labels,
            per_image=per_image,
            ignore_index=IGNORE,
            from_logits="softmax",
            reduction="none",
        )
        return jnp.sum(values), values

    return tuple(reversed(jax.grad(total, has_aux=True)(logits)))


def test_lovasz_softmax_ignored_pixels_equal_dropping_them():
    logits, labels = _segmentation(2, SHAPES["2d"], ignored=0.3)
    # Padding in a left-out pixel reaches neither the value nor a gradient.
    left_out = (labels < 0) | (labels >= NUM_CLASSES)
    padded = np.where(left_out[..., None], np.nan, logits).astype(np.float32)
    kept_logits = [logits[b][~left_out[b]] for b in range(2)]
    kept_labels = [labels[b][~left_out[b]] for b in range(2)]

    @jax.jit  # every shape in one compilation
    def run(padded, labels, kept_logits, kept_labels, both_logits, both_labels):
        full = {i: _softmax_value_and_grad(padded, labels, i) for i in (True, False)}
        kept = [
            _softmax_value_and_grad(z[None], y[None], True)
            for z, y in zip(kept_logits, kept_labels, strict=True)
        ]
        # One set of the kept pixels of both images.
        return full, kept, _softmax_value_and_grad(both_logits, both_labels, False)

    outputs = run(
        padded,
        labels,
        kept_logits,
        kept_labels,
        np.concatenate(kept_logits)[None],
        np.concatenate(kept_labels)[None],
    )
    full, kept, (value, grad) = jax.tree.map(np.asarray, outputs)  # indexed in NumPy below
    for b in range(2):
        np.testing.assert_allclose(full[True][0][b], kept[b][0][0], rtol=1e-6)
        np.testing.assert_allclose(
            full[True][1][b][~left_out[b]], kept[b][1][0], rtol=1e-6, atol=1e-7
        )
    assert np.all(np.asarray(full[True][1])[left_out] == 0)
    np.testing.assert_allclose(full[False][0], value, rtol=1e-6)
    np.testing.assert_allclose(full[False][1][~left_out], grad[0], rtol=1e-6, atol=1e-7)
    assert np.all(np.isfinite(full[False][1]))


def test_lovasz_softmax_absent_classes_and_empty_images():
    # Two images of 3 pixels, 3 classes; the second has every pixel ignored.
    probs = np.array(
        [[[0.8, 0.1, 0.1], [0.4, 0.5, 0.1], [0.5, 0.2, 0.3]], [[0.2, 0.3, 0.5]] * 3], np.float32
    )
    labels = np.array([[0, 1, 1], [IGNORE] * 3])

    @jax.jit
    def run(p):
        def loss(p, **o):
            return jaxloss.lovasz_softmax(p, labels, ignore_index=IGNORE, **o)

        return {
            "present": loss(p, reduction="none"),
            "all": loss(p, classes="all", reduction="none"),
            "mean": loss(p),
            "grad": jax.grad(lambda p: loss(p, classes="all"))(p),
            "empty": jaxloss.lovasz_softmax(p[1:], labels[1:], ignore_index=IGNORE),
        }

    out = run(probs)
    # Class 2 is absent: with "all" it costs its largest probability, 0.3.
    present = ref.lovasz_softmax(probs, labels, ignore_index=IGNORE)
    assert present[1] == 0
    np.testing.assert_allclose(out["present"], present, rtol=1e-6)
    np.testing.assert_allclose(out["all"][0], (2 * present[0] + 0.3) / 3, rtol=1e-6)
    # The empty image is left out of the mean, with zero gradients.
    np.testing.assert_allclose(out["mean"], present[0], rtol=1e-6)
    assert np.all(np.isfinite(out["grad"])) and np.all(np.asarray(out["grad"])[1] == 0)
    assert float(out["empty"]) == 0


def test_lovasz_softmax_hand_worked():
    # One class present at all: its loss is the Lovász extension of the Jaccard loss with
    # one foreground pixel; sorted errors 0.7 (bg), 0.4 (bg), 0.2 (fg): 0.7/2 + 0.4/6 + 0.2/3.
    probs = np.array([[[0.8, 0.2], [0.4, 0.6], [0.7, 0.3]]], np.float32)
    # At 0/1 probabilities the loss is 1 − IoU: class 0 predicted on pixels {0, 2}, true {0}.
    hard = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]], np.float32)
    loss = jax.jit(  # probs and hard: one shape, one compilation
        lambda p: jaxloss.lovasz_softmax(
            p, np.array([[0, 1, 1]]), reduction="none", per_image=False
        )
    )
    out = loss(probs)
    np.testing.assert_allclose(out, [0.7 / 2 + 0.4 / 6 + 0.2 / 3, 0.7 / 2 + 0.4 / 2], rtol=1e-6)
    out = loss(hard)
    np.testing.assert_allclose(out, [1 - 1 / 2, 1 - 1 / 2], rtol=1e-6)


@jax.jit
def _hinge_options(logits, labels):
    return {
        f"{per_image}-{reduction}": jaxloss.lovasz_hinge(
            logits, labels, per_image=per_image, ignore_index=IGNORE, reduction=reduction
        )
        for per_image in (True, False)
        for reduction in ("none", "mean")
    } | {
        f"grad-{per_image}": jax.grad(
            lambda z, i=per_image: jaxloss.lovasz_hinge(z, labels, per_image=i)
        )(logits)
        for per_image in (True, False)
    }


@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_lovasz_hinge_matches_the_reference_and_finite_differences(shape):
    logits, labels = _binary(3, SHAPES[shape])
    out = _hinge_options(logits, labels)
    for per_image in (True, False):
        expected = ref.lovasz_hinge(logits, labels, per_image=per_image, ignore_index=IGNORE)
        np.testing.assert_allclose(out[f"{per_image}-none"], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out[f"{per_image}-mean"], expected.mean(), rtol=1e-5)
        gradient = _finite_differences(
            lambda z, i=per_image: ref.lovasz_hinge(z, labels, per_image=i).mean(),
            logits.astype(np.float64),
        )
        np.testing.assert_allclose(out[f"grad-{per_image}"], gradient, rtol=1e-4, atol=1e-6)
        left_out = (labels != 0) & (labels != 1)
        assert np.all(np.asarray(out[f"grad-{per_image}"])[left_out] == 0)


def test_lovasz_hinge_ignored_pixels_equal_dropping_them():
    logits, labels = _binary(4, (2, 3, 5), ignored=0.3)
    left_out = (labels != 0) & (labels != 1)
    padded = np.where(left_out, np.nan, logits).astype(np.float32)

    @functools.partial(jax.jit, static_argnums=2)
    def value_and_grad(z, y, per_image):
        return jax.value_and_grad(
            lambda z: jnp.sum(jaxloss.lovasz_hinge(z, y, per_image=per_image, reduction="none"))
        )(z)

    value, grad = value_and_grad(padded, labels, False)
    kept = value_and_grad(logits[~left_out][None], labels[~left_out][None], False)
    np.testing.assert_allclose(value, kept[0], rtol=1e-6)
    np.testing.assert_allclose(grad[~left_out], kept[1][0], rtol=1e-6, atol=1e-7)
    assert np.all(np.asarray(grad)[left_out] == 0)
    per_image = jax.jit(jaxloss.lovasz_hinge, static_argnames="reduction")(
        padded, labels, reduction="none"
    )
    for b in range(2):
        single = value_and_grad(logits[b][~left_out[b]][None], labels[b][~left_out[b]][None], True)
        np.testing.assert_allclose(per_image[b], single[0], rtol=1e-6)


def test_lovasz_hinge_hand_worked():
    # Errors −1, 1.5, 1.5 sorted 1.5 (fg), 1.5 (bg), −1 (fg): 1.5/2 + 1.5/6 + 0 = 1 (any
    # order of the tie gives 1); ±1 logits predicting {1, 2} of truth {0, 1}: 2 (1 − 1/3).
    logits = np.array([[2.0, -0.5, 0.5], [-1.0, 1.0, 1.0]])
    # The same labels as a boolean mask, as the BCE pair and the Dice take them.
    mask = np.array([[True, True, False]] * 2)
    out, masked = jax.jit(
        lambda z: (jaxloss.lovasz_hinge(z, [[1, 1, 0]] * 2), jaxloss.lovasz_hinge(z, mask))
    )(logits)
    np.testing.assert_allclose(out, (1 + 2 * (1 - 1 / 3)) / 2, rtol=1e-6)
    np.testing.assert_allclose(masked, out, rtol=1e-6)


# ------------------------------------------------------------------------------------ kornia


def _torch(x, grad=False):
    return torch.tensor(np.asarray(x, np.float64), requires_grad=grad)


@pytest.mark.parametrize("shape", [(2, 4, 5), (3, 6, 2), (1, 3, 3)], ids=str)
def test_lovasz_losses_match_kornia(shape):
    rng = np.random.default_rng(sum(shape))
    logits = (2 * rng.normal(size=(*shape, NUM_CLASSES))).astype(np.float32)
    labels = rng.integers(0, NUM_CLASSES, size=shape).astype(np.int32)
    binary = rng.integers(0, 2, size=shape).astype(np.int32)
    scores = (2 * rng.normal(size=shape)).astype(np.float32)

    @jax.jit
    def ours(z, s):
        return jax.value_and_grad(
            lambda z: jaxloss.lovasz_softmax(z, labels, from_logits="softmax", classes="all")
        )(z), jax.value_and_grad(lambda s: jaxloss.lovasz_hinge(s, binary))(s)

    (softmax, softmax_grad), (hinge, hinge_grad) = ours(logits, scores)
    z, s = _torch(logits, True), _torch(scores, True)
    expected = kornia.losses.lovasz_softmax_loss(z.movedim(-1, 1), torch.tensor(labels).long())
    expected.backward()
    np.testing.assert_allclose(softmax, expected.item(), rtol=1e-5)
    np.testing.assert_allclose(softmax_grad, z.grad.numpy(), rtol=1e-4, atol=1e-6)
    expected = kornia.losses.lovasz_hinge_loss(s[:, None], torch.tensor(binary).long())
    expected.backward()
    np.testing.assert_allclose(hinge, expected.item(), rtol=1e-5)
    np.testing.assert_allclose(hinge_grad, s.grad.numpy(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------- the global sort

DEVICES = 8


@pytest.mark.skipif(jax.device_count() < DEVICES, reason="needs 8 devices")
def test_per_batch_losses_over_devices_sort_globally():
    logits, labels = _segmentation(5, (DEVICES, 2, 3))
    scores, binary = _binary(5, (DEVICES, 2, 3))
    where = np.arange(DEVICES) % 3 != 1
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    options = {"per_image": False, "ignore_index": IGNORE}

    def softmax(z, y, w, **o):
        return jaxloss.lovasz_softmax(z, y, from_logits="softmax", where=w, **options, **o)

    def hinge(z, y, w, **o):
        return jaxloss.lovasz_hinge(z, y, where=w, **options, **o)

    def both(*o, **kw):
        return tuple(
            jax.value_and_grad(fn, argnums=0)(z, y, w, **kw)
            for fn, (z, y, w) in ((softmax, o[:3]), (hinge, o[3:]))
        )

    def sharded(**kw):
        return jax.shard_map(
            lambda *a: both(*a, axis_name="batch", **kw),
            mesh=mesh,
            in_specs=(P("batch"),) * 6,
            out_specs=((P(), P("batch")), (P(), P("batch"))),
        )

    @jax.jit
    def run(*a):
        return {
            "devices": sharded()(*a),
            "one": both(*a),
            "none": jax.shard_map(
                lambda *a: softmax(*a[:3], axis_name="batch", reduction="none"),
                mesh=mesh,
                in_specs=(P("batch"),) * 3,
                out_specs=P(),
            )(*a[:3]),
        }

    out = run(logits, labels, where, scores, binary, where)
    for (value, grad), (whole, whole_grad) in zip(out["devices"], out["one"], strict=True):
        np.testing.assert_allclose(value, whole, rtol=1e-5)
        np.testing.assert_allclose(grad, whole_grad, rtol=1e-5, atol=1e-7)
    expected = ref.lovasz_softmax(logits, labels, from_logits="softmax", where=where, **options)
    np.testing.assert_allclose(out["none"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["one"][0][0], expected[expected != 0].mean(), rtol=1e-5)


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda p, y: jaxloss.lovasz_softmax(p, y, classes="some"), ValueError, "classes"),
        (lambda p, y: jaxloss.lovasz_softmax(p, y, from_logits="sigmoid"), ValueError, "from_"),
        (lambda p, y: jaxloss.lovasz_softmax(p, y[:, :2]), ValueError, "labels"),
        (lambda p, y: jaxloss.lovasz_softmax(p, y.astype(np.float32)), TypeError, "labels"),
        (lambda p, y: jaxloss.lovasz_softmax(p[0, 0, 0], y), ValueError, "channel last"),
        (
            lambda p, y: jaxloss.lovasz_softmax(p[..., :1], y, from_logits="softmax"),
            ValueError,
            "lovasz_hinge",
        ),
        (lambda p, y: jaxloss.lovasz_softmax(p, y, where=np.ones(3, bool)), ValueError, "where"),
        (lambda p, y: jaxloss.lovasz_softmax(p, y, reduction="batch"), ValueError, "reduction"),
        (lambda p, y: jaxloss.lovasz_hinge(p[..., 0], y[:, :2]), ValueError, "labels"),
        (lambda p, y: jaxloss.lovasz_hinge(p[0, 0, 0, 0], y), ValueError, "logits"),
        (lambda p, y: jaxloss.lovasz_hinge(y, y), TypeError, "logits"),
    ],
    ids=[
        "classes",
        "from_logits",
        "label-shape",
        "float-labels",
        "rank",
        "softmax-one-class",
        "where-shape",
        "reduction",
        "hinge-label-shape",
        "hinge-rank",
        "hinge-integer-logits",
    ],
)
def test_bad_inputs_raise(call, error, match):
    logits, labels = _segmentation(6, (2, 3, 4))
    with pytest.raises(error, match=match):
        call(logits, labels)

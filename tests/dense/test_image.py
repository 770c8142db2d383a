"""Total variation and the gradient difference loss: the float64 references, torch autograd
of the definitions, hand-worked images and volumes, and kornia."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from tests._suite.test_catalogues import _compiled_values_and_grads, _torch_value_and_grads
from tests.dense import reference_image as ref
from tests.dense.cases_image import PEERS

# [batch, (depth,) height, width, channels]: 2-D, 3-D, 1-D, and an axis without neighbours.
SHAPES = {
    "image": (3, 5, 4, 2),
    "volume": (2, 3, 4, 3, 2),
    "signal": (2, 6, 1),
    "single_row": (2, 1, 4, 3),
}
TV_OPTIONS = [
    {"isotropic": isotropic, "squared": squared, "pixel_reduction": pixel_reduction}
    for isotropic, squared, pixel_reduction in itertools.product(
        [False, True], [False, True], ["sum", "mean"]
    )
]
GDL_OPTIONS = [
    {"alpha": alpha, "pixel_reduction": pixel_reduction}
    for alpha, pixel_reduction in itertools.product([0.5, 1.0, 2.0], ["sum", "mean"])
]


def _key(options):
    return tuple(sorted(options.items()))


@jax.jit
def _all_options(predictions, targets, cotangent):
    """Every option's per-sample values and pullbacks of ``cotangent``, in one compilation."""
    out = {}
    for options in TV_OPTIONS:
        value, pullback = jax.vjp(
            lambda x, o=options: jaxloss.total_variation(x, reduction="none", **o), predictions
        )
        out["tv", _key(options)] = value, pullback(cotangent)
    for options in GDL_OPTIONS:
        value, pullback = jax.vjp(
            lambda p, t, o=options: jaxloss.gradient_difference(p, t, reduction="none", **o),
            predictions,
            targets,
        )
        out["gdl", _key(options)] = value, pullback(cotangent)
    return out


def _torch_definitions(predictions, targets, options, kind):
    """The definitions in torch float64, differentiated by autograd (|x|' = 0 at 0)."""
    p = torch.tensor(predictions, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(targets, dtype=torch.float64, requires_grad=True)
    axes = range(1, p.ndim - 1)
    mean = options["pixel_reduction"] == "mean"

    def per_sample(terms):
        total = terms.flatten(1).sum(1)
        count = terms[0].numel()
        return total / count if mean and count else total

    if kind == "gdl":
        value = sum(
            per_sample((t.diff(dim=k).abs() - p.diff(dim=k).abs()).abs() ** options["alpha"])
            for k in axes
        )
        return value, (p, t)
    differences = [p.diff(dim=k) for k in axes]
    if options["squared"]:
        value = sum(per_sample(d**2) for d in differences)
    elif options["isotropic"]:
        padded = [
            torch.nn.functional.pad(d, [0, 0] * (p.ndim - 1 - k) + [0, 1])
            for d, k in zip(differences, axes, strict=True)
        ]
        value = per_sample(torch.sqrt(sum(d**2 for d in padded)))
    else:
        value = sum(per_sample(d.abs()) for d in differences)
    return value, (p,)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_every_option_matches_the_reference_and_torch_autograd(shape):
    rng = np.random.default_rng(len(shape) + shape[1])
    predictions, targets = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
    cotangent = rng.normal(size=shape[0]).astype(np.float32)
    ours = _all_options(predictions, targets, cotangent)
    for kind, grid, reference in (
        ("tv", TV_OPTIONS, lambda o: ref.total_variation(predictions, **o)),
        ("gdl", GDL_OPTIONS, lambda o: ref.gradient_difference(predictions, targets, **o)),
    ):
        for options in grid:
            value, grads = ours[kind, _key(options)]
            message = f"{kind} {options}"
            np.testing.assert_allclose(
                value, reference(options), rtol=1e-5, atol=1e-5, err_msg=message
            )
            expected, inputs = _torch_definitions(predictions, targets, options, kind)
            np.testing.assert_allclose(value, expected.detach().numpy(), rtol=1e-5, atol=1e-5)
            expected_grads = torch.autograd.grad(expected, inputs, torch.tensor(cotangent))
            for grad, expected_grad in zip(grads, expected_grads, strict=True):
                np.testing.assert_allclose(
                    grad, expected_grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=message
                )


# --------------------------------------------------------------------------------- by hand


def test_hand_worked_image():
    image = np.array([[0.0, 1.0], [3.0, 1.0]], np.float32)[None, :, :, None]
    tv = jaxloss.total_variation
    plain, squared, mean, isotropic = jax.jit(
        lambda x: (
            tv(x),
            tv(x, squared=True),
            tv(x, pixel_reduction="mean"),
            tv(x, isotropic=True),
        )
    )(image)
    # down: |3 − 0| + |1 − 1|, right: |1 − 0| + |1 − 3|; squares 9 + 0 + 1 + 4.
    assert float(plain) == 6.0
    assert float(squared) == 14.0
    assert float(mean) == 3.0
    # Gradient norms per pixel: √(3² + 1²), 0 (both past the edge or flat), |−2|, 0.
    np.testing.assert_allclose(float(isotropic), np.sqrt(10) + 2, rtol=1e-6)


def test_a_step_in_a_volume_costs_its_area():
    # A step of height 2 across the width of a [depth 3, height 4, width 5, 2 channels] volume.
    volume = np.zeros((1, 3, 4, 5, 2), np.float32)
    volume[:, :, :, 3:] = 2.0
    area = 3 * 4 * 2
    tv = jaxloss.total_variation
    plain, isotropic, squared, mean = jax.jit(
        lambda x: (
            tv(x),
            tv(x, isotropic=True),
            tv(x, squared=True),
            tv(x, pixel_reduction="mean"),
        )
    )(volume)
    assert float(plain) == 2 * area
    assert float(isotropic) == 2 * area
    assert float(squared) == 4 * area
    # Averaged over the 3·4·4·2 differences along the width; none along depth or height.
    assert float(mean) == 2 * area / 96


def test_gradient_difference_compares_edges_not_intensities():
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(2, 4, 5, 3)).astype(np.float32)
    predictions = rng.normal(size=targets.shape).astype(np.float32)
    loss = jaxloss.gradient_difference

    @jax.jit  # every call in one compilation
    def run(targets, offset, flipped, flat, predictions):
        return (
            loss(offset, targets),
            loss(flipped, targets),
            loss(flat, targets, reduction="none"),
            jaxloss.total_variation(targets, reduction="none"),
            loss(predictions, targets),
            loss(targets, predictions),
        )

    offset, flipped, flat, tv, forward, backward = run(
        targets, targets + 3.0, -targets, np.zeros_like(targets), predictions
    )
    # A constant offset or a flipped sign keeps every edge's strength.
    assert float(offset) == pytest.approx(0.0, abs=1e-5)
    assert float(flipped) == 0.0
    # Against a flat prediction, every edge of the targets is missed: their total variation.
    np.testing.assert_allclose(flat, tv, rtol=1e-6)
    assert float(forward) == pytest.approx(float(backward))


def test_flat_images_and_zero_gaps_have_zero_gradients():
    flat = np.ones((2, 3, 4, 3, 2), np.float32)
    rng = np.random.default_rng(1)
    images = rng.normal(size=(2, 4, 4, 1)).astype(np.float32)

    @jax.jit  # every gradient in one compilation, not dispatched op by op
    def run(flat, predictions):
        tv = [
            jax.grad(lambda x, o=options: jaxloss.total_variation(x, **o))(flat)
            for options in TV_OPTIONS
        ]
        gdl = jax.grad(lambda p: jaxloss.gradient_difference(p, images, alpha=0.5))(predictions)
        return tv, gdl

    tv, grads = run(flat, images)
    for options, grad in zip(TV_OPTIONS, tv, strict=True):
        assert np.all(np.asarray(grad) == 0), options
    assert np.all(np.asarray(grads) == 0)


def test_padding_in_a_masked_sample_reaches_nothing():
    images = np.random.default_rng(2).normal(size=(2, 3, 4, 2)).astype(np.float32)
    images[1] = np.nan
    images[1, 0, 0, 0] = np.inf
    keep = np.array([True, False])
    losses = (
        lambda x: jaxloss.total_variation(x, isotropic=True, where=keep),
        lambda x: jaxloss.gradient_difference(x, images, alpha=0.5, where=keep),
    )
    outputs = jax.jit(lambda x: [jax.value_and_grad(loss)(x) for loss in losses])(images)
    for value, grad in jax.tree.map(np.asarray, outputs):
        assert np.isfinite(float(value))
        assert np.all(np.isfinite(grad[0])) and np.all(np.asarray(grad[1]) == 0)


def test_half_precision_is_computed_in_float32():
    images = np.random.default_rng(3).normal(size=(2, 3, 3, 1)).astype(jnp.bfloat16)
    tv, gdl = jax.jit(lambda x: (jaxloss.total_variation(x), jaxloss.gradient_difference(x, x)))(
        images
    )
    assert tv.dtype == jnp.float32
    assert gdl.dtype == jnp.float32


# ----------------------------------------------------------------------------------- errors


def test_bad_inputs_raise():
    images = np.zeros((2, 3, 4, 1), np.float32)
    with pytest.raises(ValueError, match="spatial axis"):
        jaxloss.total_variation(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="spatial axis"):
        jaxloss.gradient_difference(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="pixel_reduction"):
        jaxloss.total_variation(images, pixel_reduction="max")
    with pytest.raises(ValueError, match="pixel_reduction"):
        jaxloss.gradient_difference(images, images, pixel_reduction="none")
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.gradient_difference(images, images, alpha=-1.0)
    with pytest.raises(ValueError, match="targets"):
        jaxloss.gradient_difference(images, images[:, :, :3])
    with pytest.raises(TypeError, match="images"):
        jaxloss.total_variation(images.astype(np.int32))
    with pytest.raises(ValueError, match="where"):
        jaxloss.total_variation(images, where=np.ones(3, bool))


# ----------------------------------------------------------------------------------- kornia


@pytest.mark.parametrize("key", sorted(PEERS))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kornia_gives_the_same_numbers(key, seed):
    # The catalogue test draws seed 0; these draw other sizes (lengths 1 included).
    entry = PEERS[key]
    inputs = tuple(np.asarray(x) for x in entry.make_inputs(np.random.default_rng(seed)))
    peers = [
        _torch_value_and_grads(key, inputs, options, np.random.default_rng(seed))
        for options in entry.options
    ]
    ours = _compiled_values_and_grads(
        entry.ours, inputs, entry.differentiable, entry.options, [c for _, c, _ in peers]
    )
    for (expected, _, expected_grads), (value, grads) in zip(peers, ours, strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
        for grad, expected_grad in zip(grads, expected_grads, strict=True):
            np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)

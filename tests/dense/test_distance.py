"""The distance transform against scipy's, and the boundary and Hausdorff (distance
transform) losses against their float64 references and MONAI."""

from __future__ import annotations

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from scipy import ndimage

import jaxloss
from tests.dense import reference_distance as ref
from tests.dense.cases_distance import PEERS, _away_from_the_threshold


def _scipy(mask, num_spatial_dims, sampling=None):
    """scipy's EDT of every image of ``mask`` ``[..., *spatial]``, float32."""
    batch = mask.shape[: mask.ndim - num_spatial_dims]
    images = mask.reshape(-1, *mask.shape[len(batch) :])
    out = [ndimage.distance_transform_edt(m, sampling=sampling) for m in images]
    return np.stack(out).reshape(mask.shape).astype(np.float32)


def _masks(seed, shape, zero_fraction):
    """Random masks whose zeros are a ``zero_fraction`` of the elements (at least one per image)."""
    mask = np.random.default_rng(seed).uniform(size=shape) >= zero_fraction
    mask.reshape(shape[0], -1)[:, 0] = False
    return mask


# ------------------------------------------------------------------------ distance_transform
EDT_SHAPES = {"2d": ((4, 23, 17), 2), "3d": ((2, 9, 12, 7), 3)}
DENSITIES = {"sparse_zeros": 0.01, "half": 0.5, "dense_zeros": 0.95}


@jax.jit
def _transforms(masks_2d, masks_3d):
    # Every spatial rank and spacing in one compilation.
    out = {}
    for name, mask in (("2d", masks_2d), ("3d", masks_3d)):
        dims = EDT_SHAPES[name][1]
        out[name, "unit"] = jaxloss.distance_transform(mask, num_spatial_dims=dims)
        out[name, "scalar"] = jaxloss.distance_transform(mask, num_spatial_dims=dims, sampling=0.7)
        out[name, "axes"] = jaxloss.distance_transform(
            mask, num_spatial_dims=dims, sampling=SAMPLINGS[name]
        )
    return out


SAMPLINGS = {"2d": (2.5, 0.4), "3d": (3.0, 0.8, 1.3)}


@pytest.mark.parametrize("density", DENSITIES, ids=list(DENSITIES))
def test_distance_transform_equals_scipy(density):
    masks = {
        name: _masks(seed, shape, DENSITIES[density])
        for seed, (name, (shape, _)) in enumerate(EDT_SHAPES.items())
    }
    out = _transforms(masks["2d"], masks["3d"])
    for name, (_, dims) in EDT_SHAPES.items():
        # Unit spacing: integer squared distances, exact in float32, and a correctly
        # rounded square root.
        np.testing.assert_array_equal(out[name, "unit"], _scipy(masks[name], dims))
        for spacing, sampling in (("scalar", 0.7), ("axes", SAMPLINGS[name])):
            np.testing.assert_array_max_ulp(
                out[name, spacing], _scipy(masks[name], dims, sampling), maxulp=2
            )


def test_distance_transform_of_one_image_is_scipys_on_the_whole_array():
    # num_spatial_dims=mask.ndim: no batch axis; integer masks, nonzero counts as True.
    mask = np.random.default_rng(3).integers(-2, 3, size=(6, 11, 5))
    line = np.array([1, 1, 0, 1, 1, 1, 0, 1])
    ours, line_distances = jax.jit(  # both in one compilation
        lambda m, line: (
            jaxloss.distance_transform(m, num_spatial_dims=3),
            jaxloss.distance_transform(line, num_spatial_dims=1),
        )
    )(mask, line)
    np.testing.assert_array_equal(ours, ndimage.distance_transform_edt(mask).astype(np.float32))
    np.testing.assert_array_equal(line_distances, [2, 1, 0, 1, 2, 1, 0, 1])


def test_distance_transform_batch_axes_and_vmap():
    masks = _masks(5, (6, 10, 9), 0.1).reshape(2, 3, 10, 9)
    expected = _scipy(masks, 2)
    batched, mapped = jax.jit(  # both in one compilation
        lambda m: (
            jaxloss.distance_transform(m, num_spatial_dims=2),
            jax.vmap(lambda m: jaxloss.distance_transform(m, num_spatial_dims=2))(m),
        )
    )(masks)
    np.testing.assert_array_equal(batched, expected)
    np.testing.assert_array_equal(mapped, expected)


def test_an_image_without_zeros_is_infinitely_far():
    # scipy measures to a phantom zero at index −1 of every axis; jaxloss says +inf, and
    # the other images of the batch are unaffected.
    masks = np.ones((3, 4, 5), bool)
    masks[1, 2, 3] = False
    masks[2] = False
    out = np.asarray(jax.jit(partial(jaxloss.distance_transform, num_spatial_dims=2))(masks))
    assert np.all(np.isposinf(out[0]))
    np.testing.assert_array_equal(out[1], _scipy(masks[1], 2))
    np.testing.assert_array_equal(out[2], 0)


def test_distance_transform_has_no_gradient_and_takes_traced_sampling():
    mask = np.random.default_rng(1).uniform(size=(7, 6)).astype(np.float32)
    mask[mask < 0.3] = 0

    def total(mask, sampling):
        return jnp.sum(jaxloss.distance_transform(mask, num_spatial_dims=2, sampling=sampling))

    grads = jax.jit(jax.grad(total, argnums=(0, 1)))(mask, jnp.array([1.0, 2.0]))
    np.testing.assert_array_equal(grads[0], 0)
    np.testing.assert_array_equal(grads[1], 0)
    value = jax.jit(total)(mask, jnp.array([1.0, 2.0]))
    np.testing.assert_allclose(value, _scipy(mask, 2, (1.0, 2.0)).sum(), rtol=1e-6)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"num_spatial_dims": 0}, "num_spatial_dims"),
        ({"num_spatial_dims": 4}, "num_spatial_dims"),
        ({"num_spatial_dims": True}, "num_spatial_dims"),
        ({"num_spatial_dims": 2, "sampling": (1.0, 2.0, 3.0)}, "sampling"),
        ({"num_spatial_dims": 2, "sampling": (1.0, 0.0)}, "sampling"),
        ({"num_spatial_dims": 2, "sampling": -1.0}, "sampling"),
    ],
    ids=["zero_dims", "too_many_dims", "bool_dims", "sampling_length", "zero_spacing", "negative"],
)
def test_distance_transform_errors(options, match):
    with pytest.raises(ValueError, match=match):
        jaxloss.distance_transform(np.ones((2, 3, 4)), **options)


# ------------------------------------------------------------------ boundary and hausdorff_dt
def _segmentation(seed, spatial, num_classes=3, batch=2):
    rng = np.random.default_rng(seed)
    logits = 2 * rng.normal(size=(batch, *spatial, num_classes))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = rng.integers(0, num_classes, size=(batch, *spatial)).astype(np.int32)
    labels[0, ..., 0] = 255  # a "void" column: adds nothing, outside every class
    labels[1] = np.where(labels[1] == 2, 0, labels[1])  # class 2 absent from sample 1
    return _away_from_the_threshold(probs), labels, logits.astype(np.float32)


SPATIAL = {"2d": (7, 6), "3d": (4, 5, 3)}


def _options(name, dims):
    """Every option combination checked, by key."""
    sampling = (1.5, 0.5) if dims == "2d" else (2.0, 1.0, 0.5)
    grid = {
        "plain": {},
        "no_background": {"include_background": False},
        "sampling": {"sampling": sampling},
        "sigmoid": {"from_logits": "sigmoid"},
        "softmax": {"from_logits": "softmax", "include_background": False},
    }
    if name == "hausdorff_dt":
        grid["alpha"] = {"alpha": 1.0, "sampling": 0.7}
    return grid


@jax.jit
def _losses(probs, logits, targets):
    dims = "2d" if probs.ndim == 4 else "3d"
    out = {}
    for name in ("boundary", "hausdorff_dt"):
        for key, options in _options(name, dims).items():
            x = logits if "from_logits" in options else probs
            out[name, key] = getattr(jaxloss, name)(x, targets, reduction="none", **options)
    return out


@pytest.mark.parametrize(
    "dims, targets", list(itertools.product(SPATIAL, ["labels", "one_hot", "soft"]))
)
def test_losses_match_the_reference(dims, targets):
    probs, labels, logits = _segmentation(len(dims) + len(targets), SPATIAL[dims])
    target = {
        "labels": labels,
        "one_hot": np.eye(3, dtype=np.float32)[np.where(labels == 255, 0, labels)],
        "soft": np.random.default_rng(7).uniform(size=probs.shape).astype(np.float32),
    }[targets]
    out = _losses(probs, logits, target)
    for name in ("boundary", "hausdorff_dt"):
        for key, options in _options(name, dims).items():
            x = logits if "from_logits" in options else probs
            expected = getattr(ref, name)(x, target, **options)
            assert out[name, key].shape == expected.shape
            np.testing.assert_allclose(
                out[name, key], expected, rtol=1e-5, atol=1e-6, err_msg=f"{name} {key}"
            )


def test_boundary_by_hand():
    # One 3 × 3 image, the target a single centre pixel: φ is −(1 − 1) = 0 at the centre, 1
    # at its four neighbours and √2 at the corners.
    targets = np.zeros((1, 3, 3, 1), np.float32)
    targets[0, 1, 1, 0] = 1
    probs = np.full((1, 3, 3, 1), 0.5, np.float32)
    unit, spaced = jax.jit(  # both in one compilation
        lambda p, t: (jaxloss.boundary(p, t), jaxloss.boundary(p, t, sampling=(2.0, 1.0)))
    )(probs, targets)
    expected = 0.5 * (4 * 1 + 4 * np.sqrt(2)) / 9
    np.testing.assert_allclose(unit, expected, rtol=1e-6)
    # Spacing 2 along the rows: the neighbours above and below are 2 away, corners √5.
    expected = 0.5 * (2 * 2 + 2 * 1 + 4 * np.sqrt(5)) / 9
    np.testing.assert_allclose(spaced, expected, rtol=1e-6)


def test_a_class_without_a_boundary_costs_nothing():
    # Class 0 fills sample 0 and class 1 is absent from it: no boundary, maps of 0 (MONAI).
    probs = np.random.default_rng(0).uniform(size=(2, 4, 5, 2)).astype(np.float32)
    probs = _away_from_the_threshold(probs)
    labels = np.zeros((2, 4, 5), np.int32)
    labels[1, 1:3, 2:4] = 1
    boundary, hausdorff_dt = jax.jit(  # both in one compilation
        lambda p, y: (
            jaxloss.boundary(p, y, reduction="none"),
            jaxloss.hausdorff_dt(p, y, reduction="none"),
        )
    )(probs, labels)
    for out in (np.asarray(boundary), np.asarray(hausdorff_dt)):
        assert np.isfinite(out).all()
        assert out[1].min() != 0
    np.testing.assert_array_equal(boundary[0], 0)
    # hausdorff_dt: the target maps are 0, the predicted masks' maps still weigh the errors.
    np.testing.assert_allclose(hausdorff_dt, ref.hausdorff_dt(probs, labels), rtol=1e-5)


def test_distance_maps_are_constants_of_the_gradient():
    probs, labels, _ = _segmentation(4, (6, 5))
    t = np.eye(3)[np.where(labels == 255, 0, labels)] * (labels != 255)[..., None]
    p = probs * (labels != 255)[..., None]
    grads = jax.jit(jax.grad(lambda p: jaxloss.boundary(p, labels, reduction="sum")))(probs)
    phi = np.stack(
        [
            np.stack([ref.signed_distance(t[b, ..., c] > 0.5) for c in range(3)], -1)
            for b in range(2)
        ]
    )
    np.testing.assert_allclose(grads, phi / 30 * (labels != 255)[..., None], rtol=1e-5, atol=1e-7)
    grads = jax.jit(jax.grad(lambda p: jaxloss.hausdorff_dt(p, labels, reduction="sum")))(probs)
    weights = np.stack(
        [
            np.stack(
                [
                    ref.across_the_boundary(p[b, ..., c] > 0.5) ** 2
                    + ref.across_the_boundary(t[b, ..., c] > 0.5) ** 2
                    for c in range(3)
                ],
                -1,
            )
            for b in range(2)
        ]
    )
    np.testing.assert_allclose(
        grads, 2 * (p - t) * weights / 30 * (labels != 255)[..., None], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("fn", [jaxloss.boundary, jaxloss.hausdorff_dt], ids=lambda f: f.__name__)
def test_loss_errors(fn):
    probs = np.full((2, 3, 4, 3), 1 / 3, np.float32)
    with pytest.raises(ValueError, match="spatial"):
        fn(probs[:, 0, 0], np.zeros((2,), np.int32))
    with pytest.raises(ValueError, match="targets"):
        fn(probs, np.zeros((2, 3, 3), np.int32))
    with pytest.raises(ValueError, match="sampling"):
        fn(probs, np.zeros((2, 3, 4), np.int32), sampling=(1.0, 2.0, 3.0))
    with pytest.raises(ValueError, match="from_logits"):
        fn(probs, np.zeros((2, 3, 4), np.int32), from_logits="tanh")


# ------------------------------------------------------------------------------- MONAI parity
def _torch_value_and_grad(entry, inputs, options, cotangent_rng):
    x = torch.tensor(inputs[0], dtype=torch.float64, requires_grad=True)
    value = entry.peer(x, torch.tensor(inputs[1], dtype=torch.int64), **options)
    cotangent = cotangent_rng.normal(size=tuple(value.shape))
    (grad,) = torch.autograd.grad(value, [x], torch.tensor(cotangent))
    return value.detach().numpy(), cotangent, grad.numpy()


@pytest.mark.parametrize("key", sorted(PEERS))
def test_translation_gives_monais_numbers(key):
    # Until the catalogue runs the MONAI entries: values and gradients, 2-D and 3-D.
    entry = PEERS[key]
    ranks = set()

    @jax.jit  # one compilation per shape of the inputs
    def ours(x, labels, cotangents):
        out = []
        for options, cotangent in zip(entry.options, cotangents, strict=True):
            value, pullback = jax.vjp(partial(entry.ours, labels=labels, **options), x)
            out.append((value, pullback(cotangent.astype(value.dtype))[0]))
        return out

    for seed in range(4):
        inputs = entry.make_inputs(np.random.default_rng(seed))
        ranks.add(inputs[0].ndim)
        peers = [
            _torch_value_and_grad(entry, inputs, o, np.random.default_rng(seed))
            for o in entry.options
        ]
        results = ours(*inputs, [np.asarray(c, np.float32) for _, c, _ in peers])
        for options, (value, _, grad), (our_value, our_grad) in zip(
            entry.options, peers, results, strict=True
        ):
            where = f"{key}, seed {seed}, {options}"
            assert our_value.shape == value.shape, where
            np.testing.assert_allclose(our_value, value, entry.rtol, entry.atol, err_msg=where)
            np.testing.assert_allclose(our_grad, grad, entry.rtol, entry.atol, err_msg=where)
    assert ranks == {4, 5}, f"seeds 0 to 3 drew only ranks {ranks}"

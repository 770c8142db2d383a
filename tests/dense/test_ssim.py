"""SSIM and MS-SSIM: pytorch-msssim parity (values and gradients, 2-D and 3-D), the float64
reference, hand-worked values, finite gradients where cs ≤ 0, and errors.

MONAI's ``SSIMLoss`` and kornia's ``ssim_loss``/``ssim3d_loss`` are checked by the catalogue
test (``tests/dense/cases_ssim.py``'s ``PEERS``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import pytorch_msssim
import torch

import jaxloss
from tests.dense import reference_ssim as ref


def _pair(shape, seed=0, noise=0.3):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=shape)
    y = np.clip(x + noise * rng.normal(size=shape), 0, 1)
    return x.astype(np.float32), y.astype(np.float32)


def _channels_first(a):
    return torch.tensor(np.moveaxis(np.asarray(a, np.float64), -1, 1), requires_grad=True)


def _peer_values_and_grads(peer, x, y, cotangent, **options):
    """pytorch-msssim's per-sample ``1 − value`` and the pullback of ``cotangent`` to both
    images, channel last."""
    tx, ty = _channels_first(x), _channels_first(y)
    value = 1 - peer(tx, ty, size_average=False, **options)
    grads = torch.autograd.grad(value, [tx, ty], torch.tensor(cotangent))
    return value.detach().numpy(), [np.moveaxis(g.numpy(), 1, -1) for g in grads]


def _ours_values_and_grads(fn, x, y, cotangent, option_sets):
    """Every option set's per-sample values and pullbacks, from one compilation."""

    @jax.jit
    def run(x, y):
        out = []
        for options in option_sets:
            value, pullback = jax.vjp(
                lambda a, b, options=options: fn(a, b, reduction="none", **options), x, y
            )
            out.append((value, pullback(jnp.asarray(cotangent, value.dtype))))
        return out

    return jax.tree.map(np.asarray, run(x, y))


# (jaxloss options, pytorch-msssim options)
SSIM_OPTIONS = [
    ({}, {"data_range": 1.0}),
    (
        {"data_range": 2.0, "window_size": 7, "sigma": 1.0},
        {"data_range": 2.0, "win_size": 7, "win_sigma": 1.0},
    ),
    (
        {"data_range": 255.0, "window_size": 5, "k1": 0.02, "k2": 0.05},
        {"data_range": 255.0, "win_size": 5, "K": (0.02, 0.05)},
    ),
]


@pytest.mark.parametrize("shape", [(2, 24, 21, 3), (2, 14, 13, 12, 2)], ids=["2d", "3d"])
def test_ssim_matches_pytorch_msssim(shape):
    x, y = _pair(shape)
    cotangent = np.random.default_rng(1).normal(size=shape[0])
    ours = _ours_values_and_grads(jaxloss.ssim, x, y, cotangent, [o for o, _ in SSIM_OPTIONS])
    for (value, grads), (options, peer_options) in zip(ours, SSIM_OPTIONS, strict=True):
        expected, expected_grads = _peer_values_and_grads(
            pytorch_msssim.ssim, x, y, cotangent, **peer_options
        )
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6, err_msg=str(options))
        for grad, expected_grad in zip(grads, expected_grads, strict=True):
            np.testing.assert_allclose(
                grad, expected_grad, rtol=1e-4, atol=1e-6, err_msg=str(options)
            )


MS_SSIM_CASES = {
    # The default window and weights: 161 is the smallest size, and the first scales take
    # the blocked banded product (more than 64 outputs per line).
    "2d-default": ((2, 161, 166, 3), {}, {}),
    "2d-three-scales": (
        (2, 37, 40, 2),
        {"window_size": 3, "sigma": 1.0, "weights": (0.5, 0.3, 0.2), "data_range": 2.0},
        {"win_size": 3, "win_sigma": 1.0, "weights": [0.5, 0.3, 0.2], "data_range": 2.0},
    ),
    # pytorch-msssim checks only the last two axes for its four hard-coded halvings.
    "3d-three-scales": (
        (1, 20, 34, 33, 2),
        {"window_size": 3, "weights": (0.5, 0.3, 0.2)},
        {"win_size": 3, "weights": [0.5, 0.3, 0.2]},
    ),
}


@pytest.mark.parametrize("name", sorted(MS_SSIM_CASES))
def test_ms_ssim_matches_pytorch_msssim(name):
    shape, options, peer_options = MS_SSIM_CASES[name]
    x, y = _pair(shape)
    cotangent = np.random.default_rng(1).normal(size=shape[0])
    ((value, grads),) = _ours_values_and_grads(jaxloss.ms_ssim, x, y, cotangent, [options])
    expected, expected_grads = _peer_values_and_grads(
        pytorch_msssim.ms_ssim, x, y, cotangent, **{"data_range": 1.0, **peer_options}
    )
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    for grad, expected_grad in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-7)


REFERENCE_CASES = {
    "ssim-3d-uniform-even": (
        jaxloss.ssim,
        ref.ssim,
        (2, 7, 6, 8, 2),
        {"window_size": 4, "sigma": float("inf"), "k1": 0.05},
    ),
    "ssim-2d-same": (jaxloss.ssim, ref.ssim, (2, 6, 7, 3), {"window_size": 5, "padding": "same"}),
    "ssim-3d-same": (
        jaxloss.ssim,
        ref.ssim,
        (1, 5, 4, 6, 2),
        {"window_size": 3, "sigma": 0.8, "padding": "same"},
    ),
    "ms_ssim-3d": (
        jaxloss.ms_ssim,
        ref.ms_ssim,
        (2, 9, 10, 11, 1),
        {"window_size": 3, "weights": (0.6, 0.4), "data_range": 1.5},
    ),
}


@pytest.mark.parametrize("name", sorted(REFERENCE_CASES))
def test_matches_the_float64_reference(name):
    fn, reference, shape, options = REFERENCE_CASES[name]
    x, y = _pair(shape, seed=2)
    value = jax.jit(lambda a, b: fn(a, b, reduction="none", **options))(x, y)
    np.testing.assert_allclose(value, reference(x, y, **options), rtol=1e-5, atol=1e-6)


def test_hand_worked_values():
    @jax.jit
    def values(x, y):
        return {
            "identical": jaxloss.ssim(x, x, window_size=3, reduction="none"),
            "ms_identical": jaxloss.ms_ssim(x, x, window_size=2, weights=(0.5, 0.5)),
            # Flat images a and b: σ = 0, SSIM = (2ab + C₁)/(a² + b² + C₁).
            "flat": jaxloss.ssim(jnp.full_like(x, 0.2), jnp.full_like(x, 0.6), window_size=3),
        }

    x, _ = _pair((2, 6, 5, 2))
    out = values(x, x)
    np.testing.assert_allclose(out["identical"], 0.0, atol=1e-6)
    np.testing.assert_allclose(out["ms_identical"], 0.0, atol=1e-6)
    c1 = 0.01**2
    np.testing.assert_allclose(out["flat"], 1 - (0.24 + c1) / (0.4 + c1), rtol=1e-6)


def test_gradients_are_finite_where_cs_is_not_positive():
    # Anti-correlated images: cs < 0 at the first scale, clipped to 0, so MS-SSIM is 0 and
    # a fractional power of the clipped 0 would give 0 · inf = NaN gradients.
    x, _ = _pair((2, 34, 33, 2))  # pytorch-msssim's smallest size for window_size=3
    options = {"window_size": 3, "weights": (0.3, 0.7)}
    value, grads = jax.jit(
        jax.value_and_grad(lambda a, b: jaxloss.ms_ssim(a, b, **options), argnums=(0, 1))
    )(x, 1 - x)
    np.testing.assert_allclose(value, 1.0)
    assert all(np.all(np.isfinite(g)) for g in grads)
    tx, ty = _channels_first(x), _channels_first(1 - x)
    peer = pytorch_msssim.ms_ssim(tx, ty, data_range=1.0, win_size=3, weights=[0.3, 0.7])
    np.testing.assert_allclose(value, 1 - peer.item())
    # Identical images: the minimum, with zero (finite) gradients.
    grads = jax.jit(jax.grad(lambda a, b: jaxloss.ms_ssim(a, b, **options), argnums=(0, 1)))(x, x)
    assert all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(grads[0], 0.0, atol=1e-6)


def test_masked_samples_reach_neither_value_nor_gradient():
    x, y = _pair((3, 12, 12, 1))
    x[1] = np.nan
    y[1] = np.inf
    keep = np.array([True, False, True])
    for fn in (jaxloss.ssim, jaxloss.ms_ssim):
        options = {"window_size": 3} | ({"weights": (0.5, 0.5)} if fn is jaxloss.ms_ssim else {})
        # Jitted: eager dispatch compiles each convolution on its own (5 s of the suite).
        value, grads = jax.jit(
            jax.value_and_grad(
                lambda a, b, fn=fn, options=options: fn(a, b, where=keep, **options),
                argnums=(0, 1),
            )
        )(x, y)
        dropped = jax.jit(lambda a, b, fn=fn, options=options: fn(a, b, **options))(
            x[keep], y[keep]
        )
        np.testing.assert_allclose(value, dropped, rtol=1e-6)
        assert all(np.all(np.isfinite(g)) and np.all(g[1] == 0) for g in grads)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_gives_float32(dtype):
    x, y = _pair((2, 8, 8, 1))
    x, y = x.astype(dtype), y.astype(dtype)  # NumPy arrays: nothing compiled here

    @jax.jit  # both losses in one compilation, not dispatched op by op
    def run(x, y):
        return (
            jaxloss.ssim(x, y, window_size=3),
            jaxloss.ms_ssim(x, y, window_size=3, weights=(0.5, 0.5)),
        )

    ssim, ms_ssim = run(x, y)
    assert x.dtype == dtype
    assert ssim.dtype == jnp.float32
    assert ms_ssim.dtype == jnp.float32


def test_errors():
    x = np.zeros((2, 8, 7, 1), np.float32)
    with pytest.raises(ValueError, match="window_size`=11 is larger than the images"):
        jaxloss.ssim(x, x)
    with pytest.raises(ValueError, match="too small for 5 scales"):
        jaxloss.ms_ssim(np.zeros((1, 160, 200, 1), np.float32), np.zeros((1, 160, 200, 1)))
    with pytest.raises(ValueError, match="odd `window_size`"):
        jaxloss.ssim(x, x, window_size=4, padding="same")
    with pytest.raises(ValueError, match="padding"):
        jaxloss.ssim(x, x, window_size=3, padding="reflect")
    with pytest.raises(ValueError, match="equal shapes"):
        jaxloss.ssim(x, x[:, :, :6], window_size=3)
    with pytest.raises(ValueError, match="at least one spatial"):
        jaxloss.ssim(x[:, 0, 0], x[:, 0, 0], window_size=1)
    with pytest.raises(ValueError, match="positive int"):
        jaxloss.ssim(x, x, window_size=0)
    with pytest.raises(ValueError, match="num_scales"):
        jaxloss.ms_ssim(x, x, window_size=3, weights=((0.5, 0.5),))
    with pytest.raises(ValueError, match="`weights` must lie in"):  # 0 ** -0.5 = inf
        jaxloss.ms_ssim(x, x, window_size=3, weights=(0.5, -0.5))
    with pytest.raises(ValueError, match="data_range"):
        jaxloss.ssim(x, x, window_size=3, data_range=-1.0)

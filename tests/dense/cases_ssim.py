"""SSIM and MS-SSIM as the shared suites see them, and their MONAI and kornia translations.

pytorch-msssim, the reference implementation of both, is not a catalogued library: it is
checked in ``tests/dense/test_ssim.py``.
"""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.peer import Peer
from tests.dense import reference_ssim as ref

IMAGE = (8, 7, 2)  # height, width, channels: 6 × 5 windows of 3 × 3
PYRAMID = (9, 10, 2)  # three scales: 9 × 10, 5 × 5 (an odd axis padded), 3 × 3


def _image_pairs(shape):
    """Images in [0, 1] and targets near them (SSIM well inside (0, 1))."""

    def make(rng: np.random.Generator, batch: int) -> tuple:
        x = rng.uniform(size=(batch, *shape))
        y = np.clip(x + 0.3 * rng.normal(size=x.shape), 0, 1)
        return x.astype(np.float32), y.astype(np.float32)

    return make


CASES: dict[str, Case] = {
    "ssim": Case(
        jaxloss.ssim,
        _image_pairs(IMAGE),
        ref.ssim,
        kwargs={"window_size": 3, "sigma": 1.0, "data_range": 1.5},
        differentiable=(0, 1),
        hyperparameters={"data_range": 2.0},
        invalid={"data_range": 0.0, "sigma": -1.0, "k2": 0.0},
    ),
    "ms_ssim": Case(
        jaxloss.ms_ssim,
        _image_pairs(PYRAMID),
        ref.ms_ssim,
        kwargs={"window_size": 3, "sigma": 1.0, "weights": (0.5, 0.3, 0.2)},
        differentiable=(0, 1),
        hyperparameters={"k2": 0.05},
        invalid={"k1": -0.01},
    ),
}


# ------------------------------------------------------------------------------ MONAI, kornia
def _images_2d_or_3d(smallest: int):
    """Channel-last image pairs of random sizes, 2-D or 3-D, no side below ``smallest``."""

    def make(rng: np.random.Generator) -> tuple:
        spatial = rng.integers(smallest, smallest + 4, size=rng.integers(2, 4))
        shape = (rng.integers(1, 3), *spatial, rng.integers(1, 3))
        x = rng.uniform(size=shape)
        y = np.clip(x + 0.3 * rng.normal(size=shape), 0, 1)
        return x.astype(np.float32), y.astype(np.float32)

    return make


def _images_of_rank(spatial_axes: int):
    def make(rng: np.random.Generator) -> tuple:
        shape = (rng.integers(1, 3), *rng.integers(6, 10, size=spatial_axes), rng.integers(1, 4))
        x = rng.uniform(size=shape)
        y = np.clip(x + 0.3 * rng.normal(size=shape), 0, 1)
        return x.astype(np.float32), y.astype(np.float32)

    return make


def _monai_ssim(input, target, **options):
    from monai.losses import SSIMLoss

    loss = SSIMLoss(spatial_dims=input.ndim - 2, **options)
    return loss(input.movedim(-1, 1), target.movedim(-1, 1))


def _ours_monai(
    input,
    target,
    *,
    data_range=1.0,
    kernel_type="gaussian",
    win_size=11,
    kernel_sigma=1.5,
    k1=0.01,
    k2=0.03,
    reduction="mean",
):
    value = jaxloss.ssim(
        input,
        target,
        data_range=data_range,
        window_size=win_size,
        sigma=float("inf") if kernel_type == "uniform" else kernel_sigma,
        k1=k1,
        k2=k2,
        reduction=reduction,
    )
    return value[:, None] if reduction == "none" else value


def _kornia_ssim(name):
    def peer(img1, img2, **options):
        import kornia.losses

        return getattr(kornia.losses, name)(img1.movedim(-1, 1), img2.movedim(-1, 1), **options)

    return peer


def _ours_kornia(img1, img2, *, window_size, max_val=1.0, padding="same"):
    return (
        jaxloss.ssim(img1, img2, window_size=window_size, data_range=max_val, padding=padding) / 2
    )


KORNIA_OPTIONS = (
    {"window_size": 5},
    {"window_size": 3, "max_val": 2.0},
    {"window_size": 5, "padding": "valid"},
)

# MONAI computes in float32 whatever the inputs' dtype: both sides are float32 here.
PEERS: dict[str, Peer] = {
    "monai:SSIMLoss": Peer(
        _monai_ssim,
        _ours_monai,
        _images_2d_or_3d(11),
        "ssim(input, target, data_range=data_range, window_size=win_size, sigma=kernel_sigma, "
        "k1=k1, k2=k2)",
        options=(
            {},
            {"reduction": "none"},
            {
                "reduction": "sum",
                "data_range": 2.0,
                "win_size": 5,
                "kernel_sigma": 1.0,
                "k1": 0.02,
                "k2": 0.05,
            },
        ),
        differentiable=(0, 1),
        rtol=1e-4,
        atol=1e-6,
    ),
    "monai:SSIMLoss[uniform]": Peer(
        _monai_ssim,
        _ours_monai,
        _images_2d_or_3d(7),
        'ssim(input, target, data_range=data_range, window_size=win_size, sigma=float("inf"))',
        options=(
            {"kernel_type": "uniform", "win_size": 7},
            {"kernel_type": "uniform", "win_size": 4, "reduction": "none"},
        ),
        differentiable=(0, 1),
        rtol=1e-4,
        atol=1e-6,
    ),
    "kornia:ssim_loss": Peer(
        _kornia_ssim("ssim_loss"),
        _ours_kornia,
        _images_of_rank(2),
        'ssim(img1, img2, window_size=window_size, data_range=max_val, padding="same") / 2',
        options=KORNIA_OPTIONS,
        differentiable=(0, 1),
    ),
    "kornia:ssim3d_loss": Peer(
        _kornia_ssim("ssim3d_loss"),
        _ours_kornia,
        _images_of_rank(3),
        'ssim(img1, img2, window_size=window_size, data_range=max_val, padding="same") / 2',
        options=KORNIA_OPTIONS,
        differentiable=(0, 1),
    ),
}

"""Total variation and the gradient difference loss as the shared suites see them, and
their kornia translation."""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.peer import Peer
from tests.dense import reference_image as ref

IMAGE = (5, 4, 3)  # height, width, channels
VOLUME = (3, 4, 3, 2)  # depth, height, width, channels


def _images(rng: np.random.Generator, batch: int) -> tuple:
    return (rng.normal(size=(batch, *IMAGE)).astype(np.float32),)


def _volumes(rng: np.random.Generator, batch: int) -> tuple:
    return (rng.normal(size=(batch, *VOLUME)).astype(np.float32),)


def _image_pairs(rng: np.random.Generator, batch: int) -> tuple:
    return tuple(rng.normal(size=(batch, *IMAGE)).astype(np.float32) for _ in range(2))


CASES: dict[str, Case] = {
    "total_variation": Case(jaxloss.total_variation, _images, ref.total_variation, free=(0,)),
    # The isotropic norm (a safe sqrt of summed squares over a padded grid) on volumes: a
    # code path the anisotropic sum does not take.
    "total_variation[isotropic,mean,volumes]": Case(
        jaxloss.total_variation,
        _volumes,
        ref.total_variation,
        kwargs={"isotropic": True, "pixel_reduction": "mean"},
        free=(0,),
    ),
    "gradient_difference": Case(
        jaxloss.gradient_difference,
        _image_pairs,
        ref.gradient_difference,
        kwargs={"alpha": 1.5},
        differentiable=(0, 1),
        hyperparameters={"alpha": 0.7},
        invalid={"alpha": 0.0},
        free=(0, 1),
    ),
}


# ----------------------------------------------------------------------------------- kornia
def _kornia_images(rng: np.random.Generator) -> tuple:
    """Channel-last images of random sizes, an axis of length 1 now and then."""
    batch, channels = rng.integers(1, 4), rng.integers(1, 4)
    height, width = rng.integers(1, 7), rng.integers(2, 7)
    return (rng.normal(size=(batch, height, width, channels)).astype(np.float32),)


def _kornia_total_variation(over_channels: str):
    """kornia's per-(sample, channel) values ``[batch, channels]``, channels summed or
    averaged."""

    def peer(images, **options):
        import kornia.losses

        per_channel = kornia.losses.total_variation(images.movedim(-1, 1), **options)
        return getattr(per_channel, over_channels)(-1)

    return peer


PEERS: dict[str, Peer] = {
    "kornia:total_variation": Peer(
        _kornia_total_variation("sum"),
        lambda images, reduction="sum": jaxloss.total_variation(images, reduction="none"),
        _kornia_images,
        'total_variation(images, reduction="none")',
        options=({}, {"reduction": "sum"}),
    ),
    "kornia:total_variation[mean]": Peer(
        _kornia_total_variation("mean"),
        lambda images, reduction: jaxloss.total_variation(
            images, pixel_reduction="mean", reduction="none"
        ),
        _kornia_images,
        'total_variation(images, pixel_reduction="mean", reduction="none")',
        options=({"reduction": "mean"},),
    ),
}

"""The robust elementwise losses as the shared suites see them, and their kornia
translation."""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import pair
from tests._suite.numpy_reference import f64 as _f64
from tests._suite.peer import Peer


def charbonnier_reference(predictions, targets, epsilon=1e-3):
    """Charbonnier et al.'s penalty per element, float64."""
    p, t = _f64(predictions, targets)
    return np.sqrt((p - t) ** 2 + epsilon**2)


CASES: dict[str, Case] = {
    "charbonnier": Case(
        jaxloss.charbonnier,
        pair,
        charbonnier_reference,
        kwargs={"epsilon": 0.1},
        differentiable=(0, 1),
        hyperparameters={"epsilon": 0.5},
        invalid={"epsilon": -1.0},
        free=(0, 1),
    ),
}


def _kornia_image_pair(rng: np.random.Generator) -> tuple:
    shape = (rng.integers(1, 4), rng.integers(1, 6), rng.integers(1, 6), rng.integers(1, 4))
    return tuple(rng.normal(size=shape).astype(np.float32) for _ in range(2))


def _kornia_charbonnier(img1, img2, **options):
    import kornia.losses

    return kornia.losses.charbonnier_loss(img1, img2, **options)


PEERS: dict[str, Peer] = {
    # Barron's form at scale 1; elementwise, so the layout of the channels does not matter.
    "kornia:charbonnier_loss": Peer(
        _kornia_charbonnier,
        lambda img1, img2, reduction="none": (
            jaxloss.charbonnier(img1, img2, epsilon=1.0, reduction=reduction) - 1.0
        ),
        _kornia_image_pair,
        'charbonnier(img1, img2, epsilon=1.0, reduction="none") - 1.0',
        options=({}, {"reduction": "mean"}),
        differentiable=(0, 1),
    ),
}

"""The Lovász-Softmax and Lovász hinge losses as the shared suites see them, and their
kornia translations."""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.peer import Peer
from tests.dense import reference_lovasz as ref

IMAGE = (5, 4)  # height, width
NUM_CLASSES = 3
IGNORE = 255


def _ignoring(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """``labels`` with a fifth of the pixels ignored, as int32."""
    return np.where(rng.uniform(size=labels.shape) < 0.2, IGNORE, labels).astype(np.int32)


def _logits_labels(rng: np.random.Generator, batch: int) -> tuple:
    logits = 2 * rng.normal(size=(batch, *IMAGE, NUM_CLASSES))
    labels = rng.integers(0, NUM_CLASSES, size=(batch, *IMAGE))
    return logits.astype(np.float32), _ignoring(rng, labels)


def _scores_labels(rng: np.random.Generator, batch: int) -> tuple:
    scores = 2 * rng.normal(size=(batch, *IMAGE))
    return scores.astype(np.float32), _ignoring(rng, rng.integers(0, 2, size=(batch, *IMAGE)))


def _ignored_logits(logits, labels) -> dict[int, np.ndarray]:
    ignored = np.asarray(labels) == IGNORE
    return {
        0: np.broadcast_to(
            ignored.reshape(ignored.shape + (1,) * (np.ndim(logits) - ignored.ndim)),
            np.shape(logits),
        )
    }


# Per image (the default), so each row's value depends on its own pixels alone.
CASES: dict[str, Case] = {
    "lovasz_softmax": Case(
        jaxloss.lovasz_softmax,
        _logits_labels,
        ref.lovasz_softmax,
        kwargs={"from_logits": "softmax", "ignore_index": IGNORE},
        free=(0,),
        padding=_ignored_logits,
    ),
    "lovasz_hinge": Case(
        jaxloss.lovasz_hinge,
        _scores_labels,
        ref.lovasz_hinge,
        kwargs={"ignore_index": IGNORE},
        free=(0,),
        padding=_ignored_logits,
    ),
}


# ----------------------------------------------------------------------------------- kornia
def _kornia_segmentation(rng: np.random.Generator) -> tuple:
    """Channel-last logits of random sizes (a side of 1 now and then) and integer labels."""
    batch, height, width = rng.integers(1, 4), rng.integers(1, 6), rng.integers(2, 6)
    num_classes = rng.integers(2, 5)
    logits = 2 * rng.normal(size=(batch, height, width, num_classes))
    labels = rng.integers(0, num_classes, size=(batch, height, width))
    return logits.astype(np.float32), labels.astype(np.int32)


def _kornia_binary(rng: np.random.Generator) -> tuple:
    """Channel-last logits of one channel ``[batch, height, width, 1]`` and 0/1 labels."""
    batch, height, width = rng.integers(1, 4), rng.integers(1, 6), rng.integers(2, 6)
    logits = 2 * rng.normal(size=(batch, height, width, 1))
    return logits.astype(np.float32), rng.integers(0, 2, size=(batch, height, width)).astype(
        np.int32
    )


def _kornia(name: str):
    def peer(logits, labels):
        import kornia.losses

        return getattr(kornia.losses, name)(logits.movedim(-1, 1), labels)

    return peer


PEERS: dict[str, Peer] = {
    # kornia averages every class (an absent one costs its largest probability) and has no
    # ignore_index; its ``weight`` (per-class factors, still divided by C) is not translated.
    "kornia:lovasz_softmax_loss": Peer(
        _kornia("lovasz_softmax_loss"),
        lambda logits, labels: jaxloss.lovasz_softmax(
            logits, labels, from_logits="softmax", classes="all"
        ),
        _kornia_segmentation,
        'lovasz_softmax(logits, labels, from_logits="softmax", classes="all")',
    ),
    "kornia:lovasz_hinge_loss": Peer(
        _kornia("lovasz_hinge_loss"),
        lambda logits, labels: jaxloss.lovasz_hinge(logits[..., 0], labels),
        _kornia_binary,
        "lovasz_hinge(logits[..., 0], labels)",
    ),
}

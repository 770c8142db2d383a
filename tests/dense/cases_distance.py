"""The distance-transform losses as the shared suites see them, and their MONAI peers."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.numpy_reference import log_softmax
from tests._suite.peer import Peer
from tests.dense import reference_distance as ref

HEIGHT, WIDTH, CLASSES = 5, 4, 3
# A probability this close to 0.5 could fall on the other side of the predicted mask's
# threshold in a finite difference (or in float32 against float64), a step of the loss.
THRESHOLD_MARGIN = 0.02


def _away_from_the_threshold(probs: np.ndarray) -> np.ndarray:
    """``probs`` with every pixel that has a probability near 0.5 replaced by a fixed one."""
    near = np.any(np.abs(probs - 0.5) < THRESHOLD_MARGIN, axis=-1)
    fixed = np.roll(np.linspace(1.0, 0.2, probs.shape[-1]), 1)
    probs = np.where(near[..., None], fixed / fixed.sum(), probs)
    return probs.astype(np.float32)


def _probs_labels(rng: np.random.Generator, batch: int) -> tuple:
    probs = np.exp(log_softmax(2 * rng.normal(size=(batch, HEIGHT, WIDTH, CLASSES))))
    labels = rng.integers(0, CLASSES, size=(batch, HEIGHT, WIDTH)).astype(np.int32)
    return _away_from_the_threshold(probs), labels


CASES: dict[str, Case] = {
    "boundary": Case(
        jaxloss.boundary,
        _probs_labels,
        ref.boundary,
        kwargs={"sampling": 1.5},
        hyperparameters={"sampling": 0.5},
        signed=True,
        invalid={"sampling": 0.0},
    ),
    "hausdorff_dt": Case(
        jaxloss.hausdorff_dt,
        _probs_labels,
        ref.hausdorff_dt,
        kwargs={"alpha": 2.0, "include_background": False},
        hyperparameters={"alpha": 1.0},
        invalid={"alpha": -1.0},
    ),
}

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {"distance_transform": "tests/dense/test_distance.py"}


# ---------------------------------------------------------------- MONAI's BoundaryLoss, Hausdorff
def _segmentation_labels(rng: np.random.Generator) -> tuple:
    """Values in ``[0, 1]`` (probabilities, or logits for an activation option)
    ``[batch, *spatial, classes]``, 2-D or 3-D, and integer labels."""
    spatial = tuple(rng.integers(3, 8, size=rng.integers(2, 4)))
    batch, classes = rng.integers(1, 4), rng.integers(2, 5)
    probs = _away_from_the_threshold(rng.uniform(size=(batch, *spatial, classes)))
    # Rare classes, so some images have one class everywhere or nowhere.
    labels = np.minimum(rng.geometric(0.5, size=(batch, *spatial)) - 1, classes - 1)
    return probs, labels.astype(np.int32)


def _activation(sigmoid=False, softmax=False):
    return "sigmoid" if sigmoid else "softmax" if softmax else None


def _monai(name):
    def peer(x, labels, *, batch=False, reduction="mean", **options):
        import monai.losses

        loss = getattr(monai.losses, name)(
            to_onehot_y=True, batch=batch, reduction=reduction, **options
        )
        out = loss(x.movedim(-1, 1), labels[:, None])
        # HausdorffDTLoss keeps singleton spatial axes in "none" ([batch, classes, 1, ...]).
        return out.flatten(0 if batch else 1) if reduction == "none" else out

    return peer


def _ours(fn, include_background=True):
    """``fn`` with MONAI's options, and its class's default ``include_background``."""

    def ours(x, labels, *, batch=False, sigmoid=False, softmax=False, reduction="mean", **options):
        options = {
            "include_background": include_background,
            "from_logits": _activation(sigmoid, softmax),
            **options,
        }
        if batch:  # MONAI's batch=True: the mean over the batch of each class's losses
            return fn(x, labels, reduction="none", **options).mean(0)
        return fn(x, labels, reduction=reduction, **options)

    return ours


def _ours_log_hausdorff(*inputs, **options):
    return jnp.log1p(_ours(jaxloss.hausdorff_dt, include_background=False)(*inputs, **options))


PEER_OPTIONS = (
    {},
    {"reduction": "none"},
    {"include_background": False, "reduction": "sum"},
    {"softmax": True, "reduction": "none"},
    {"sigmoid": True, "include_background": False},
    {"batch": True, "reduction": "none"},
)

PEERS: dict[str, Peer] = {
    "monai:BoundaryLoss": Peer(
        _monai("BoundaryLoss"),
        _ours(jaxloss.boundary),
        _segmentation_labels,
        "boundary(probs, labels, include_background=include_background)",
        options=PEER_OPTIONS,
    ),
    "monai:HausdorffDTLoss": Peer(
        _monai("HausdorffDTLoss"),
        _ours(jaxloss.hausdorff_dt, include_background=False),
        _segmentation_labels,
        "hausdorff_dt(probs, labels, alpha=alpha, include_background=False)",
        options=(
            {"include_background": True},
            {"include_background": True, "alpha": 1.0, "reduction": "none"},
            {"reduction": "sum", "softmax": True, "alpha": 3.0},
            {"sigmoid": True, "include_background": True},
            {"batch": True, "reduction": "none", "include_background": False},
        ),
    ),
    "monai:LogHausdorffDTLoss": Peer(
        _monai("LogHausdorffDTLoss"),
        _ours_log_hausdorff,
        _segmentation_labels,
        "jnp.log1p(hausdorff_dt(probs, labels, alpha=alpha, include_background=False))",
        options=({"include_background": True}, {"reduction": "none", "softmax": True}),
    ),
}

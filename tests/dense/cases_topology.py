"""The topology losses as the shared suites see them, and their MONAI peers."""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.peer import Peer
from tests.dense import reference_topology as ref

HEIGHT, WIDTH, CLASSES = 5, 4, 3


def _logits_labels(rng: np.random.Generator, batch: int) -> tuple:
    logits = 2 * rng.normal(size=(batch, HEIGHT, WIDTH, CLASSES))
    labels = rng.integers(0, CLASSES, size=(batch, HEIGHT, WIDTH))
    return logits.astype(np.float32), labels.astype(np.int32)


CASES: dict[str, Case] = {
    "soft_cldice": Case(
        jaxloss.soft_cldice,
        _logits_labels,
        ref.soft_cldice,
        kwargs={
            "num_iters": 2,
            "smooth_nr": 0.5,
            "from_logits": "softmax",
            "include_background": False,
        },
        hyperparameters={"smooth": 0.3},
        free=(0,),
        invalid={"smooth_dr": -1.0, "smooth": -0.1},
    ),
}


# ------------------------------------------------------------------------------ MONAI's clDice
def _channels_first(x):
    return x.movedim(-1, 1)


def _segmentation(rng: np.random.Generator) -> tuple:
    """Values in ``[0, 1]`` (probabilities, or logits for an activation option)
    ``[batch, *spatial, classes]``, 2-D or 3-D, and one-hot targets."""
    spatial = tuple(rng.integers(3, 8, size=rng.integers(2, 4)))
    batch, classes = rng.integers(1, 4), rng.integers(2, 4)
    probs = rng.uniform(size=(batch, *spatial, classes))
    labels = rng.integers(0, classes, size=(batch, *spatial))
    return probs.astype(np.float32), np.eye(classes, dtype=np.float32)[labels]


def _segmentation_labels(rng: np.random.Generator) -> tuple:
    probs, targets = _segmentation(rng)
    return probs, targets.argmax(-1).astype(np.int32)


def _activation(sigmoid=False, softmax=False):
    return "sigmoid" if sigmoid else "softmax" if softmax else None


def _monai_cldice(x, y, *, to_onehot_y=False, **options):
    from monai.losses import SoftclDiceLoss

    if to_onehot_y:
        return SoftclDiceLoss(to_onehot_y=True, **options)(_channels_first(x), y[:, None])
    return SoftclDiceLoss(**options)(_channels_first(x), _channels_first(y))


def _monai_dice_cldice(x, y, **options):
    from monai.losses import SoftDiceclDiceLoss

    return SoftDiceclDiceLoss(**options)(_channels_first(x), _channels_first(y))


def _ours_cldice(
    probs,
    targets,
    *,
    iter_=3,
    smooth_nr=1.0,
    smooth_dr=1.0,
    smooth=1e-4,
    include_background=True,
    to_onehot_y=False,
    sigmoid=False,
    softmax=False,
    reduction="mean",
):
    return jaxloss.soft_cldice(
        probs,
        targets,
        num_iters=iter_,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        smooth=smooth,
        include_background=include_background,
        from_logits=_activation(sigmoid, softmax),
        reduction=reduction,
    )


def _ours_dice_cldice(probs, targets, *, alpha=0.5, smooth_nr=1.0, smooth_dr=1.0, **options):
    reduction = options.get("reduction", "mean")
    dice = jaxloss.dice(
        probs,
        targets,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        include_background=options.get("include_background", True),
        from_logits=_activation(options.get("sigmoid", False), options.get("softmax", False)),
        reduction=reduction,
    )
    cldice = _ours_cldice(probs, targets, smooth_nr=smooth_nr, smooth_dr=smooth_dr, **options)
    return (1 - alpha) * dice + alpha * cldice


CLDICE_OPTIONS = (
    {},
    {"iter_": 0, "reduction": "none"},
    {"iter_": 5, "smooth_nr": 0.5, "smooth_dr": 2.0, "smooth": 1.0, "reduction": "sum"},
    {"include_background": False, "sigmoid": True, "reduction": "none"},
    {"softmax": True, "iter_": 1},
)

PEERS: dict[str, Peer] = {
    "monai:SoftclDiceLoss": Peer(
        _monai_cldice,
        _ours_cldice,
        _segmentation,
        "soft_cldice(probs, targets, num_iters=iter_, smooth_nr=smooth_nr, "
        "smooth_dr=smooth_dr, smooth=smooth)",
        options=CLDICE_OPTIONS,
    ),
    "monai:SoftclDiceLoss[labels]": Peer(
        _monai_cldice,
        _ours_cldice,
        _segmentation_labels,
        'soft_cldice(logits, labels, from_logits="softmax")',
        options=(
            {"to_onehot_y": True, "softmax": True},
            {"to_onehot_y": True, "include_background": False, "iter_": 2, "reduction": "none"},
        ),
    ),
    # MONAI's "none" adds a [batch, classes, 1, ...] Dice to a [batch] clDice by
    # broadcasting, which has no per-sample meaning: "mean" and "sum" only.
    "monai:SoftDiceclDiceLoss": Peer(
        _monai_dice_cldice,
        _ours_dice_cldice,
        _segmentation,
        "(1 - alpha) * dice(probs, targets, smooth_nr=smooth_nr, smooth_dr=smooth_dr) "
        "+ alpha * soft_cldice(probs, targets, num_iters=iter_, smooth_nr=smooth_nr, "
        "smooth_dr=smooth_dr, smooth=smooth)",
        options=(
            {},
            {"alpha": 0.2, "iter_": 2, "smooth_nr": 0.1, "smooth_dr": 0.3, "reduction": "sum"},
            {"alpha": 0.9, "include_background": False, "softmax": True},
        ),
    ),
}

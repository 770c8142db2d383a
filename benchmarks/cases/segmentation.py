"""Segmentation and image losses against MONAI (torch on the CPU), on one 3-D volume.

The issue's shape: a batch of 2 volumes of 64³ voxels with 4 classes, softmax logits and
one-hot targets, forward and backward. MONAI takes channels first: its contender gets the
same channel-last tensors and moves the channels with ``movedim`` (a view, no copy), as a
user porting a channel-last model would; torch's kernels read the strided view directly.
"""

from __future__ import annotations

import numpy as np
from _harness import Case, normal

import jaxloss

ORDER = 18


def _monai(name: str, **options):
    """A MONAI loss object's fwd on channel-last ``(logits, targets)``, as a torch maker."""

    def make(torch):
        import monai.losses

        loss = getattr(monai.losses, name)(**options)

        def run(z, t):
            # Integer labels [B, ...] take MONAI's [B, 1, ...] (``to_onehot_y``).
            return loss(z.movedim(-1, 1), t[:, None] if t.ndim < z.ndim else t.movedim(-1, 1))

        return run

    return make


def _monai_ssim(spatial_dims: int):
    def make(torch):
        import monai.losses

        loss = monai.losses.SSIMLoss(spatial_dims=spatial_dims, data_range=1.0)

        def run(x, y):
            # MONAI's SSIMLoss takes [B, C, *spatial] and averages its channels.
            return loss(x.movedim(-1, 1), y.movedim(-1, 1))

        return run

    return make


def cases(quick: bool, rng) -> list[Case]:
    b, side, c = (1, 16, 4) if quick else (2, 64, 4)
    shape = f"{b} x {side}³, {c} classes"
    logits = normal(rng, b, side, side, side, c, scale=2.0)
    labels = rng.integers(0, c, (b, side, side, side))
    # Blocky labels (8³ cells), so the distance maps have interiors and boundaries.
    cells = rng.integers(0, c, (b, side // 8 + 1, side // 8 + 1, side // 8 + 1))
    blocky = cells[:, :, None, :, None, :, None].repeat(8, 2).repeat(8, 4).repeat(8, 6)
    blocky = blocky.reshape(b, 8 * (side // 8 + 1), 8 * (side // 8 + 1), -1)[:, :side, :side, :side]
    onehot = np.eye(c, dtype=np.float32)[labels]
    blocky_onehot = np.eye(c, dtype=np.float32)[blocky]
    softmax = {"from_logits": "softmax"}

    def row(label, ours, monai, targets=onehot, rounds=None, note=""):
        return Case(
            "segmentation",
            f"{label}, {shape}",
            [logits, targets],
            (0,),
            {"jaxloss": ours},
            {"MONAI": monai},
            note=note,
            rounds=rounds,
        )

    x = rng.uniform(size=(b, side, side, side, c)).astype(np.float32)
    y = np.clip(x + 0.1 * normal(rng, *x.shape), 0, 1).astype(np.float32)

    return [
        row(
            "dice (softmax logits)",
            lambda z, t: jaxloss.dice(z, t, **softmax),
            _monai("DiceLoss", softmax=True),
        ),
        row(
            "jaccard (softmax logits)",
            lambda z, t: jaxloss.jaccard(z, t, **softmax),
            _monai("DiceLoss", softmax=True, jaccard=True),
        ),
        row(
            "tversky α=0.3 β=0.7 (softmax logits)",
            lambda z, t: jaxloss.tversky(z, t, alpha=0.3, beta=0.7, **softmax),
            _monai("TverskyLoss", softmax=True, alpha=0.3, beta=0.7),
        ),
        row(
            "generalized_dice (softmax logits)",
            lambda z, t: jaxloss.generalized_dice(z, t, **softmax),
            _monai("GeneralizedDiceLoss", softmax=True),
        ),
        row(
            "dice_ce (logits)",
            lambda z, t: jaxloss.dice_ce(z, t, **softmax),
            _monai("DiceCELoss", softmax=True),
        ),
        row(
            "dice_ce (logits, integer labels)",
            lambda z, t: jaxloss.dice_ce(z, t, **softmax),
            _monai("DiceCELoss", softmax=True, to_onehot_y=True),
            targets=labels,
        ),
        row(
            "dice_focal (logits)",
            lambda z, t: jaxloss.dice_focal(z, t, **softmax),
            _monai("DiceFocalLoss", softmax=True),
        ),
        row(
            "boundary (softmax logits, blocky labels)",
            lambda z, t: jaxloss.boundary(z, t, **softmax),
            _monai("BoundaryLoss", softmax=True),
            targets=blocky_onehot,
            rounds=5,
            note="MONAI's distance maps: scipy on the CPU, one image and class at a time",
        ),
        row(
            "hausdorff_dt (softmax logits, blocky labels)",
            lambda z, t: jaxloss.hausdorff_dt(z, t, include_background=False, **softmax),
            _monai("HausdorffDTLoss", softmax=True),
            targets=blocky_onehot,
            rounds=5,
            note="distance maps of the prediction and of the target in every step",
        ),
        row(
            "soft_cldice (softmax logits, blocky labels)",
            lambda z, t: jaxloss.soft_cldice(z, t, **softmax),
            _monai("SoftclDiceLoss", softmax=True),
            targets=blocky_onehot,
            rounds=5,
        ),
        Case(
            "segmentation",
            f"ssim (11³ Gaussian window), {b} x {side}³, {c} channels",
            [x, y],
            (0,),
            {"jaxloss": lambda x, y: jaxloss.ssim(x, y)},
            {"MONAI": _monai_ssim(3)},
            rounds=5,
            note="MONAI convolves with the full 11³ kernel, jaxloss with three 1-D passes",
        ),
    ]

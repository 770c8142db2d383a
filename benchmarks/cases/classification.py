"""Classification losses against optax and torch (focal: torchvision's formula)."""

from __future__ import annotations

import jax
import numpy as np
import optax
from _harness import Case, normal

import jaxloss

ORDER = 2


def cases(quick: bool, rng) -> list[Case]:
    b, c = (256, 100) if quick else (4096, 1000)
    logits, labels = normal(rng, b, c, scale=2.0), rng.integers(0, c, b).astype(np.int32)
    n = 1 << 14 if quick else 1 << 20
    binary_logits = normal(rng, n, scale=2.0)
    binary_targets = rng.integers(0, 2, n).astype(np.float32)
    one_hot = np.eye(c, dtype=np.float32)[labels]
    signs = 2 * binary_targets - 1  # ±1 targets of the binary hinge and perceptron
    # Per-voxel classes (a 3-D segmentation map, channel last): many rows of few classes.
    side, few = (16, 4) if quick else (64, 4)
    pixel_shape = f"2 x {side}³"
    pixel_logits = normal(rng, 2, side, side, side, few, scale=2.0)
    pixel_labels = rng.integers(0, few, (2, side, side, side)).astype(np.int32)

    def focal_torch(torch):
        # torchvision.ops.sigmoid_focal_loss's formula (torchvision has no CPU build here).
        def loss(x, t, alpha=0.25, gamma=2.0):
            p = torch.sigmoid(x)
            ce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
            p_t = p * t + (1 - p) * (1 - t)
            return (ce * (1 - p_t) ** gamma * (alpha * t + (1 - alpha) * (1 - t))).mean()

        return loss

    return [
        Case(
            "classification",
            f"cross_entropy, B={b}, C={c}",
            [logits, labels],
            (0,),
            {
                "jaxloss": jaxloss.cross_entropy,
                "optax": lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean(),
            },
            {"torch": lambda torch: torch.nn.functional.cross_entropy},
        ),
        Case(
            "classification",
            f"cross_entropy per voxel (a segmentation map), {pixel_shape}, {few} classes",
            [pixel_logits, pixel_labels],
            (0,),
            {
                "jaxloss": jaxloss.cross_entropy,
                "optax": lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).mean(),
            },
            # torch takes the classes first: a view of the same channel-last tensor.
            {
                "torch": lambda torch: (
                    lambda z, y: torch.nn.functional.cross_entropy(z.movedim(-1, 1), y)
                )
            },
        ),
        Case(
            "classification",
            f"binary_cross_entropy_with_logits, N={n}",
            [binary_logits, binary_targets],
            (0,),
            {
                "jaxloss": jaxloss.binary_cross_entropy_with_logits,
                "optax": lambda z, t: optax.sigmoid_binary_cross_entropy(z, t).mean(),
            },
            {"torch": lambda torch: torch.nn.functional.binary_cross_entropy_with_logits},
        ),
        Case(
            "classification",
            f"sigmoid_focal (alpha=0.25, gamma=2), N={n}",
            [binary_logits, binary_targets],
            (0,),
            {
                "jaxloss": jaxloss.sigmoid_focal,
                "optax": lambda z, t: optax.losses.sigmoid_focal_loss(z, t, alpha=0.25).mean(),
            },
            {"torch (torchvision's formula)": focal_torch},
        ),
        Case(
            "classification",
            f"sigmoid_focal (alpha=0.25, gamma=1.5), N={n}",
            [binary_logits, binary_targets],
            (0,),
            {
                # YOLOv5's fl_gamma: a half power, a square root since session 45.
                "jaxloss": lambda z, t: jaxloss.sigmoid_focal(z, t, gamma=1.5),
                "optax": lambda z, t: optax.losses.sigmoid_focal_loss(
                    z, t, alpha=0.25, gamma=1.5
                ).mean(),
            },
            {
                "torch (torchvision's formula)": lambda torch: (
                    lambda x, t: focal_torch(torch)(x, t, gamma=1.5)
                )
            },
        ),
        Case(
            "classification",
            f"hinge, N={n}",
            [binary_logits, signs],
            (0,),
            {
                "jaxloss": jaxloss.hinge,
                "optax": lambda s, t: optax.losses.hinge_loss(s, t).mean(),
            },
        ),
        Case(
            "classification",
            f"perceptron, N={n}",
            [binary_logits, signs],
            (0,),
            {
                "jaxloss": jaxloss.perceptron,
                "optax": lambda s, t: optax.losses.perceptron_loss(s, t).mean(),
            },
        ),
        Case(
            "classification",
            f"poly_cross_entropy (epsilon=2), B={b}, C={c}",
            [logits, labels],
            (0,),
            {
                "jaxloss": jaxloss.poly_cross_entropy,
                "optax (one-hot labels)": lambda z, y: optax.losses.poly_loss_cross_entropy(
                    z, jax.nn.one_hot(y, c)
                ).mean(),
            },
        ),
        Case(
            "classification",
            f"poly_cross_entropy, probabilities (one-hot), B={b}, C={c}",
            [logits, one_hot],
            (0,),
            {
                "jaxloss": jaxloss.poly_cross_entropy,
                "optax": lambda z, t: optax.losses.poly_loss_cross_entropy(z, t).mean(),
            },
        ),
        Case(
            "classification",
            f"multiclass_hinge, B={b}, C={c}",
            [logits, labels],
            (0,),
            {
                "jaxloss": jaxloss.multiclass_hinge,
                "optax": lambda s, y: optax.losses.multiclass_hinge_loss(s, y).mean(),
            },
        ),
        Case(
            "classification",
            f"multiclass_perceptron, B={b}, C={c}",
            [logits, labels],
            (0,),
            {
                "jaxloss": jaxloss.multiclass_perceptron,
                "optax": lambda s, y: optax.losses.multiclass_perceptron_loss(s, y).mean(),
            },
        ),
        *_torch_margin_cases(quick, rng, logits, labels),
    ]


def _torch_margin_cases(quick: bool, rng, logits: np.ndarray, labels: np.ndarray) -> list[Case]:
    """torch's multi-class and multi-label margin losses (optax has none of them)."""
    b, c = logits.shape
    # Multi-label problems: 1 to 10 labels per sample, torch's -1-padded target lists.
    lengths = rng.integers(1, 11, b)
    order = np.argsort(rng.uniform(size=(b, c)), axis=1)
    target_lists = np.where(np.arange(c) < lengths[:, None], order, -1).astype(np.int32)
    multi_hot = np.zeros((b, c), np.float32)
    np.put_along_axis(multi_hot, np.maximum(target_lists, 0), (target_lists >= 0), axis=1)
    return [
        Case(
            "classification",
            f"multi_margin (p=1), B={b}, C={c}",
            [logits, labels],
            (0,),
            {"jaxloss": jaxloss.multi_margin},
            {"torch": lambda torch: torch.nn.functional.multi_margin_loss},
        ),
        Case(
            "classification",
            f"multilabel_margin (1-10 labels, -1-padded), B={b}, C={c}",
            [logits, target_lists],
            (0,),
            {"jaxloss": jaxloss.multilabel_margin},
            {"torch": lambda torch: torch.nn.functional.multilabel_margin_loss},
        ),
        Case(
            "classification",
            f"multilabel_soft_margin (1-10 labels), B={b}, C={c}",
            [logits, multi_hot],
            (0,),
            {"jaxloss": jaxloss.multilabel_soft_margin},
            {"torch": lambda torch: torch.nn.functional.multilabel_soft_margin_loss},
        ),
    ]

"""Classification losses against optax and torch (focal: torchvision's formula)."""

from __future__ import annotations

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
    ]

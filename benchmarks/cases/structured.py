"""Sparsemax losses against optax (torch has none)."""

from __future__ import annotations

import numpy as np
import optax
from _harness import Case, normal

import jaxloss

ORDER = 15


def cases(quick: bool, rng) -> list[Case]:
    b, c = (256, 100) if quick else (4096, 1000)
    logits, labels = normal(rng, b, c, scale=2.0), rng.integers(0, c, b).astype(np.int32)
    n = 1 << 14 if quick else 1 << 20
    binary_logits = normal(rng, n, scale=2.0)
    binary_labels = rng.integers(0, 2, n).astype(np.int32)
    return [
        Case(
            "structured",
            f"multiclass_sparsemax_loss, B={b}, C={c}",
            [logits, labels],
            (0,),
            {
                "jaxloss": jaxloss.multiclass_sparsemax_loss,
                "optax": lambda z, y: optax.losses.multiclass_sparsemax_loss(z, y).mean(),
            },
            {},
            note="jaxloss: threshold by Michelot's algorithm; optax: a sort per row",
        ),
        Case(
            "structured",
            f"sparsemax_loss, N={n}",
            [binary_logits, binary_labels],
            (0,),
            {
                "jaxloss": jaxloss.sparsemax_loss,
                "optax": lambda z, y: optax.losses.sparsemax_loss(z, y).mean(),
            },
            {},
        ),
    ]

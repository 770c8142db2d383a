"""Ranking losses against optax (``ranking_softmax_loss``; the pairwise losses have no peer)."""

from __future__ import annotations

import numpy as np
import optax
from _harness import Case, normal

import jaxloss

ORDER = 13


def cases(quick: bool, rng) -> list[Case]:
    lists, size = (256, 50) if quick else (4096, 200)
    scores = normal(rng, lists, size, scale=2.0)
    labels = rng.choice(4, p=[0.7, 0.15, 0.1, 0.05], size=(lists, size)).astype(np.float32)
    # Lists of different lengths, padded: the item mask (optax's `where`).
    lengths = rng.integers(size // 4, size + 1, size=(lists, 1))
    items = np.arange(size) < lengths
    weights = rng.uniform(0.5, 2.0, size=(lists, size)).astype(np.float32)
    return [
        Case(
            "ranking",
            f"ranking_softmax, {lists} lists × {size} items",
            [scores, labels],
            (0,),
            {
                "jaxloss": jaxloss.ranking_softmax,
                "optax": optax.losses.ranking_softmax_loss,
            },
        ),
        Case(
            "ranking",
            f"ranking_softmax, padded lists and item weights, {lists} × {size}",
            [scores, labels, items, weights],
            (0,),
            {
                "jaxloss": lambda s, y, m, w: jaxloss.ranking_softmax(s, y, item_mask=m, weights=w),
                "optax": lambda s, y, m, w: optax.losses.ranking_softmax_loss(
                    s, y, where=m, weights=w
                ),
            },
        ),
    ]

"""Pair and triplet losses against optax, torch and pytorch-metric-learning."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from _harness import PML, Case, normal

import jaxloss

ORDER = 6


def cases(quick: bool, rng) -> list[Case]:
    b, d, ids = (128, 32, 16) if quick else (1024, 128, 64)
    out = [batch_triplet_case(b, d, ids, rng)]
    p = 64 if quick else 256
    z1, z2 = normal(rng, p, d), normal(rng, p, d)
    view_labels = np.concatenate([np.arange(p), np.arange(p)]).astype(np.int32)

    def pml_ntxent(torch):
        from pytorch_metric_learning import losses

        loss, labels = losses.NTXentLoss(temperature=0.1), torch.tensor(view_labels)
        return lambda a, b: loss(torch.cat([a, b]), labels.to(a.device))

    out.append(
        Case(
            "pairs",
            f"nt_xent (τ=0.1), 2 x {p} views, D={d}",
            [z1, z2],
            (0, 1),
            {
                "jaxloss": lambda a, b: jaxloss.nt_xent(a, b, temperature=0.1),
                "optax": lambda a, b: optax.losses.ntxent(
                    jnp.concatenate([a, b]), jnp.asarray(view_labels), 0.1
                ),
            },
            {f"{PML} NTXentLoss": pml_ntxent},
        )
    )
    # The same 2p rows as one labelled batch (no new draws): 2p / 8 labels of 8 rows each.
    embeddings = np.concatenate([z1, z2])
    class_labels = (np.arange(2 * p) % (p // 4)).astype(np.int32)

    out.append(
        Case(
            "pairs",
            f"nt_xent with labels (τ=0.07), B={2 * p}, {p // 4} labels, D={d}",
            [embeddings, class_labels],
            (0,),
            {
                "jaxloss": lambda x, y: jaxloss.nt_xent(x, labels=y, temperature=0.07),
                "optax": lambda x, y: optax.losses.ntxent(x, y, 0.07),
            },
            # pytorch-metric-learning's labelled NTXentLoss is in the two-view row above; with
            # 64 labels its pair enumeration takes minutes per call at this size.
        )
    )
    t = 256 if quick else 8192
    a, pos, neg = (normal(rng, t, d) for _ in range(3))
    out.append(
        Case(
            "pairs",
            f"triplet_margin (margin 0.2), {t} triplets, D={d}",
            [a, pos, neg],
            (0, 1, 2),
            {
                "jaxloss": lambda a, p, n: jaxloss.triplet_margin(a, p, n, margin=0.2),
                "optax": lambda a, p, n: optax.losses.triplet_margin_loss(
                    a, p, n, margin=0.2
                ).mean(),
            },
            {
                "torch": lambda torch: (
                    lambda a, p, n: torch.nn.functional.triplet_margin_loss(a, p, n, margin=0.2)
                )
            },
        )
    )
    out.append(
        Case(
            "pairs",
            f"triplet_margin_with_distance (default distance, swap), {t} triplets, D={d}",
            [a, pos, neg],
            (0, 1, 2),
            {
                "jaxloss": lambda a, p, n: jaxloss.triplet_margin_with_distance(
                    a, p, n, margin=0.2, swap=True
                )
            },
            {
                "torch": lambda torch: (
                    lambda a, p, n: torch.nn.functional.triplet_margin_with_distance_loss(
                        a, p, n, margin=0.2, swap=True
                    )
                )
            },
        )
    )
    y = np.sign(rng.standard_normal(t)).astype(np.float32)
    out.append(
        Case(
            "pairs",
            f"cosine_embedding (margin 0.2), {t} pairs, D={d}",
            [a, pos, y],
            (0, 1),
            {"jaxloss": lambda a, b, y: jaxloss.cosine_embedding(a, b, y, margin=0.2)},
            {
                "torch": lambda torch: (
                    lambda a, b, y: torch.nn.functional.cosine_embedding_loss(a, b, y, margin=0.2)
                )
            },
        )
    )
    out.append(
        Case(
            "pairs",
            f"cosine_similarity (negative mean, BYOL's loss), {t} pairs, D={d}",
            [a, pos],
            (0, 1),
            {
                "jaxloss": lambda a, b: -jnp.mean(jaxloss.cosine_similarity(a, b)),
                "optax": lambda a, b: -optax.losses.cosine_similarity(a, b).mean(),
            },
            {
                "torch": lambda torch: (
                    lambda a, b: -torch.nn.functional.cosine_similarity(a, b).mean()
                )
            },
        )
    )
    n = 1 << 14 if quick else 1 << 20
    x1, x2 = normal(rng, n), normal(rng, n)
    ranking = np.sign(rng.standard_normal(n)).astype(np.float32)
    out.append(
        Case(
            "pairs",
            f"margin_ranking (margin 0.1), N={n}",
            [x1, x2, ranking],
            (0, 1),
            {"jaxloss": lambda a, b, y: jaxloss.margin_ranking(a, b, y, margin=0.1)},
            {
                "torch": lambda torch: (
                    lambda a, b, y: torch.nn.functional.margin_ranking_loss(a, b, y, margin=0.1)
                )
            },
        )
    )
    return out


def batch_triplet_case(b: int, d: int, identities: int, rng) -> Case:
    """Batch-hard triplets (Hermans et al.) of B embeddings, identities of B / identities."""
    labels = np.repeat(np.arange(identities), b // identities).astype(np.int32)
    centers = rng.standard_normal((identities, d)) / np.sqrt(d)
    embeddings = (centers[labels] + rng.standard_normal((b, d)) / np.sqrt(d)).astype(np.float32)

    def pml_hard(torch):
        from pytorch_metric_learning import distances, losses, miners

        distance = distances.LpDistance(normalize_embeddings=False)
        loss = losses.TripletMarginLoss(margin=0.2, distance=distance)
        miner = miners.BatchHardMiner(distance=distance)
        return lambda x, y: loss(x, y, miner(x, y))

    return Case(
        "pairs",
        f"batch_triplet (hard, margin 0.2), B={b}, D={d}",
        [embeddings, labels],
        (0,),
        {"jaxloss": lambda x, y: jaxloss.batch_triplet(x, y, margin=0.2, mining="hard")},
        {f"{PML} TripletMarginLoss + BatchHardMiner": pml_hard},
        rtol=None,
        note=f"{PML} averages over the triplets with a nonzero loss; jaxloss over anchors",
    )

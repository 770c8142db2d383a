"""pytorch-metric-learning's batch losses that jaxloss's pairwise family translates
(``PEERS`` keyed ``"pml:<ClassName>"``, checked by ``tests/_suite/test_catalogues.py``).

Each peer calls PML's loss as ``loss(embeddings, labels)``: no miner, every pair or
triplet of the batch, as jaxloss's ``mining="all"``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxloss
from tests._suite.peer import Peer, pml_reducer


def _labelled_embeddings(rng: np.random.Generator) -> tuple:
    # Three labels in 5 to 10 rows: most anchors have positives and negatives.
    batch, dim = rng.integers(5, 11), rng.integers(2, 6)
    embeddings = rng.normal(size=(batch, dim)).astype(np.float32)
    return embeddings, rng.integers(0, 3, size=batch).astype(np.int32)


def _pml_ntxent(embeddings, labels, *, temperature=0.07, reduction="mean"):
    from pytorch_metric_learning import losses

    loss = losses.NTXentLoss(temperature=temperature, reducer=pml_reducer(reduction))
    return loss(embeddings, labels)


def _nt_xent(embeddings, labels, *, temperature=0.07, reduction="mean"):
    return jaxloss.nt_xent(embeddings, labels=labels, temperature=temperature, reduction=reduction)


def _pml_triplet(embeddings, labels, *, distance="lp", reduction="mean", **options):
    from pytorch_metric_learning import distances, losses

    metric = {
        "lp": distances.LpDistance(),
        "unnormalized": distances.LpDistance(normalize_embeddings=False),
        "squared": distances.LpDistance(power=2),
        "cosine": distances.CosineSimilarity(),
    }[distance]
    reducer = {"reducer": pml_reducer("sum")} if reduction == "sum" else {}  # else AvgNonZero
    loss = losses.TripletMarginLoss(distance=metric, **reducer, **options)
    return loss(embeddings, labels)


def _batch_triplet(embeddings, labels, *, distance="lp", margin=0.05, reduction="mean"):
    # PML's AvgNonZeroReducer: the mean over the triplets with a positive loss, jaxloss's
    # "mean" of mining="all".
    if distance != "unnormalized":
        embeddings = embeddings / jnp.linalg.norm(embeddings, axis=1, keepdims=True)
    if distance == "cosine":
        # Unit vectors: the squared distance is 2 - 2 cos, so the cosine margin m is half a
        # squared-distance margin 2m.
        return 0.5 * jaxloss.batch_triplet(
            embeddings, labels, margin=2 * margin, squared=True, reduction=reduction
        )
    squared = distance == "squared"
    return jaxloss.batch_triplet(
        embeddings, labels, margin=margin, squared=squared, reduction=reduction
    )


PEERS: dict[str, Peer] = {
    "pml:NTXentLoss": Peer(
        _pml_ntxent,
        _nt_xent,
        _labelled_embeddings,
        "nt_xent(embeddings, labels=labels, temperature=0.07)",
        options=({}, {"temperature": 0.5}, {"temperature": 1.0, "reduction": "sum"}),
    ),
    "pml:TripletMarginLoss": Peer(
        _pml_triplet,
        _batch_triplet,
        _labelled_embeddings,
        "batch_triplet(embeddings / jnp.linalg.norm(embeddings, axis=1, keepdims=True), "
        "labels, margin=margin)",
        options=(
            {},
            {"margin": 0.5},
            {"margin": 1.0, "reduction": "sum"},
            {"margin": 0.3, "distance": "unnormalized"},
            {"margin": 0.5, "distance": "squared"},
        ),
    ),
    "pml:TripletMarginLoss[cosine]": Peer(
        _pml_triplet,
        _batch_triplet,
        _labelled_embeddings,
        "0.5 * batch_triplet(embeddings / jnp.linalg.norm(embeddings, axis=1, keepdims=True), "
        "labels, margin=2 * margin, squared=True)",
        options=({"distance": "cosine"}, {"distance": "cosine", "margin": 0.4}),
    ),
}

"""Metric learning and face heads (issue 21) against pytorch-metric-learning.

Pair losses on one labelled batch (B = 1024, D = 128, 64 identities of 16; 256 rows where
PML cannot run at 1024, said on the row); proxy losses and
face heads at B = 512, D = 512, C = 100,000 classes, where the chunked kernel matters: each
of those rows has jaxloss chunked (the baseline) and jaxloss unchunked, so the memory column
reads unchunked / chunked. PML's losses run with their miners off, as jaxloss's equivalents.
The heads PML lacks (MagFace, ElasticFace, CurricularFace, AdaFace) have rows of their own,
chunked against unchunked.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _harness import PML, Case, normal, torch_device

import jaxloss

ORDER = 16
CHUNK = 2048


def _pml(loss_name: str, **options):
    """``make(torch)`` for a PML loss without weights: ``loss(embeddings, labels)``."""

    def make(torch):
        from pytorch_metric_learning import losses

        loss = getattr(losses, loss_name)(**options)
        return lambda x, y: loss(x, y)

    return make


def _pml_owning(loss_name: str, weights: np.ndarray, attribute: str, **options):
    """``make(torch)`` for a PML loss that owns its class weights, set to ``weights``
    (jaxloss's centers in PML's layout); the weights are an input, differentiated."""

    def make(torch):
        from pytorch_metric_learning import losses

        loss = getattr(losses, loss_name)(**options)
        getattr(loss, attribute).data = torch.tensor(weights)
        loss.to(torch_device(torch))
        return lambda x, w, y: loss(x, y)

    return make


def _n_pairs_of_labels(num_labels: int):
    """PML's ``NPairsLoss`` pairs (the first two rows of each label, docs/porting_pml.md),
    gathered into ``num_labels`` pairs (a static bound) before the loss."""

    def loss(x: jax.Array, labels: jax.Array) -> jax.Array:
        same = labels[:, None] == labels[None, :]
        later = jnp.triu(same, 1)
        first = ~jnp.any(jnp.tril(same, -1), axis=1) & jnp.any(later, axis=1)
        anchors = jnp.nonzero(first, size=num_labels, fill_value=0)[0]
        positives = jnp.argmax(later, axis=1)[anchors]
        valid = jnp.arange(num_labels) < jnp.sum(first)
        return jaxloss.n_pairs(x[anchors], x[positives], where=valid, normalize=True)

    return loss


def _pair_cases(quick: bool, rng) -> list[Case]:
    b, d, ids = (128, 32, 8) if quick else (1024, 128, 64)
    embeddings = normal(rng, b, d)
    labels = np.repeat(np.arange(ids), b // ids).astype(np.int32)
    rng.shuffle(labels)
    shape = f"B={b}, D={d}, {ids} identities"
    # PML's LiftedStructureLoss and TupletMarginLoss form a positive-pairs × negative-pairs
    # array (15k × 1M entries at B = 1024: 63 GB for the tuplet loss, out of memory here):
    # they run on 256 rows, 4 per identity.
    small = 64 if quick else 256
    small_labels = np.repeat(np.arange(small // 4), 4).astype(np.int32)

    def small_case(label: str, ours, pml_name: str) -> Case:
        return Case(
            "metric",
            f"{label}, B={small}, D={d}, {small // 4} identities",
            [embeddings[:small], small_labels],
            (0,),
            {"jaxloss": ours},
            {f"{PML} {pml_name}": _pml(pml_name)},
        )

    def case(label: str, ours, pml_name: str, **pml_options) -> Case:
        return Case(
            "metric",
            f"{label}, {shape}",
            [embeddings, labels],
            (0,),
            {"jaxloss": ours},
            {f"{PML} {pml_name}": _pml(pml_name, **pml_options)},
        )

    # PML's NTXentLoss forms a positive-pairs × negative-pairs mask (b × b² entries): 256
    # queries keep it to seconds per call.
    q = 64 if quick else 256
    queries, positives = embeddings[:q], normal(rng, q, d)
    query_ids = np.arange(q)

    def pml_info_nce(torch):
        from pytorch_metric_learning import losses

        loss = losses.NTXentLoss(temperature=0.1)
        ids_a, ids_b = torch.tensor(query_ids), torch.tensor(query_ids)
        return lambda q, k: loss(q, ids_a, ref_emb=k, ref_labels=ids_b)

    return [
        case("supcon (τ=0.1)", lambda x, y: jaxloss.supcon(x, y), "SupConLoss"),
        Case(
            "metric",
            f"info_nce (τ=0.1, in-batch negatives), B={q}, D={d}",
            [queries, positives],
            (0, 1),
            {"jaxloss": lambda q, k: jaxloss.info_nce(q, k, temperature=0.1)},
            {f"{PML} NTXentLoss(ref_emb=)": pml_info_nce},
        ),
        case("n_pairs (normalized)", _n_pairs_of_labels(ids), "NPairsLoss"),
        case(
            "multi_similarity (no mining)",
            lambda x, y: jaxloss.multi_similarity(x, y, mining=False),
            "MultiSimilarityLoss",
        ),
        case(
            "circle (m=0.4, γ=80)",
            lambda x, y: jaxloss.circle(x, y, margin=0.4, gamma=80.0),
            "CircleLoss",
            m=0.4,
            gamma=80,
        ),
        small_case(
            "lifted_structure (normalized)",
            lambda x, y: jaxloss.lifted_structure(x, y, normalize=True),
            "LiftedStructureLoss",
        ),
        case("margin_loss (β=1.2)", lambda x, y: jaxloss.margin_loss(x, y), "MarginLoss"),
        small_case("tuplet_margin", lambda x, y: jaxloss.tuplet_margin(x, y), "TupletMarginLoss"),
        case("fast_ap (10 bins)", lambda x, y: jaxloss.fast_ap(x, y), "FastAPLoss"),
    ]


def _class_cases(quick: bool, rng) -> list[Case]:
    b, d, c = (64, 32, 2000) if quick else (512, 512, 100_000)
    chunk = 256 if quick else CHUNK
    embeddings = normal(rng, b, d)
    labels = rng.integers(0, c, b).astype(np.int32)
    proxies = normal(rng, c, d)
    sub_centers = normal(rng, c, 3, d)
    triple_centers = normal(rng, c, 2, d)
    shape = f"B={b}, D={d}, C={c}"
    key = jax.random.key(0)

    def case(label: str, fn, centers: np.ndarray, pml=None, **options) -> Case:
        return Case(
            "metric",
            f"{label}, {shape}",
            [embeddings, centers, labels],
            (0, 1),
            {
                f"jaxloss (chunk {chunk})": lambda *a: fn(*a, chunk_size=chunk, **options),
                "jaxloss (unchunked)": lambda *a: fn(*a, **options),
            },
            {} if pml is None else {f"{PML} {pml[0]}": pml[1]},
            rounds=5,  # seconds per call at C = 100,000
        )

    def owning(name: str, weights: np.ndarray, attribute: str, **options):
        return name, _pml_owning(
            name, weights, attribute, num_classes=c, embedding_size=d, **options
        )

    arc = {"margin": np.degrees(0.5), "scale": 64}
    return [
        case("proxy_nca", jaxloss.proxy_nca, proxies, owning("ProxyNCALoss", proxies, "proxies")),
        case(
            "proxy_anchor (δ=0.1, α=32)",
            jaxloss.proxy_anchor,
            proxies,
            owning("ProxyAnchorLoss", proxies, "proxies"),
        ),
        case(
            "soft_triple (K=2, no regularizer)",
            jaxloss.soft_triple,
            triple_centers,
            owning(
                "SoftTripleLoss",
                triple_centers.reshape(2 * c, d).T.copy(),
                "fc",
                centers_per_class=2,
            ),
            reg_weight=0.0,
        ),
        case(
            "subcenter_arcface (K=3, s=64, m=0.5)",
            jaxloss.subcenter_arcface,
            sub_centers,
            owning(
                "SubCenterArcFaceLoss",
                sub_centers.reshape(3 * c, d).T.copy(),
                "W",
                sub_centers=3,
                **arc,
            ),
        ),
        case(
            "arcface (s=64, m=0.5)",
            jaxloss.arcface,
            proxies,
            owning("ArcFaceLoss", proxies.T.copy(), "W", **arc),
        ),
        case(
            "cosface (s=64, m=0.35)",
            jaxloss.cosface,
            proxies,
            owning("CosFaceLoss", proxies.T.copy(), "W", margin=0.35, scale=64),
        ),
        case("magface", jaxloss.magface, proxies),
        case("elasticface (arc)", jaxloss.elasticface, proxies, key=key),
        case("curricularface (t=0.3)", jaxloss.curricularface, proxies, t=0.3),
        case("adaface", jaxloss.adaface, proxies),
    ]


def cases(quick: bool, rng) -> list[Case]:
    return _pair_cases(quick, rng) + _class_cases(quick, rng)

"""``supcon``, ``info_nce`` and ``n_pairs`` as the shared suites see them, and their
pytorch-metric-learning translations."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import EMBEDDING_DIM
from tests._suite.peer import Peer
from tests.pairwise import reference_supervised as ref
from tests.pairwise.cases import _labelled_batch, _random_labelled_rows, _views

QUEUE = 5
PER_QUERY = 3


def _unpaired_batch(rng: np.random.Generator, batch: int) -> tuple:
    # About two rows per label: some anchors have no positive, at any batch size.
    labels = rng.integers(0, max(batch // 2, 1), size=batch).astype(np.int32)
    return rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32), labels


def _queue(rng: np.random.Generator, batch: int) -> tuple:
    return *_views(rng, batch), rng.normal(size=(QUEUE, EMBEDDING_DIM)).astype(np.float32)


def _per_query(rng: np.random.Generator, batch: int) -> tuple:
    negatives = rng.normal(size=(batch, PER_QUERY, EMBEDDING_DIM)).astype(np.float32)
    return *_views(rng, batch), negatives


def _pairs_of_labels(rng: np.random.Generator, batch: int) -> tuple:
    labels = rng.integers(0, max(batch // 2, 1), size=batch).astype(np.int32)
    return *_views(rng, batch), labels


def _n_pairs_of_labels(anchors, positives, labels, **options):
    return jaxloss.n_pairs(anchors, positives, labels=labels, **options)


def _supcon_case(make_inputs) -> Case:
    return Case(
        jaxloss.supcon,
        make_inputs,
        ref.supcon,
        kwargs={"temperature": 0.2},
        hyperparameters={"temperature": 0.5},
        # "none" is per anchor; the mean is over the anchors with a positive and a negative.
        reference_mean=lambda values, *inputs, **options: ref.supcon_mean(*inputs, **options),
        invalid={"temperature": 0.0},
        free=(0,),
    )


def _info_nce_case(make_inputs, differentiable, batched=None) -> Case:
    return Case(
        jaxloss.info_nce,
        make_inputs,
        ref.info_nce,
        kwargs={"temperature": 0.2},
        differentiable=differentiable,
        hyperparameters={"temperature": 0.5},
        batched=batched,
        invalid={"temperature": 0.0},
        free=differentiable,
    )


CASES: dict[str, Case] = {
    "supcon": _supcon_case(_labelled_batch),
    "supcon[unpaired]": _supcon_case(_unpaired_batch),
    "info_nce": _info_nce_case(_views, (0, 1)),
    # The queue is shared by every query: not a batch input.
    "info_nce[queue]": _info_nce_case(_queue, (0, 1, 2), batched=(0, 1)),
    "info_nce[per_query]": _info_nce_case(_per_query, (0, 1, 2)),
    "n_pairs": Case(jaxloss.n_pairs, _views, ref.n_pairs, differentiable=(0, 1), free=(0, 1)),
    # The regularizer is of the embeddings as given, before normalize.
    "n_pairs[labels,l2_reg,normalize]": Case(
        _n_pairs_of_labels,
        _pairs_of_labels,
        ref.n_pairs,
        kwargs={"l2_reg": 0.1, "normalize": True},
        differentiable=(0, 1),
        hyperparameters={"l2_reg": 0.5},
        invalid={"l2_reg": -1.0},
        free=(0, 1),
    ),
}

# --- pytorch-metric-learning -------------------------------------------------------------------


def _pml(name: str, **options):
    from pytorch_metric_learning import losses

    return getattr(losses, name)(**options)


def _pml_supcon(embeddings, labels, **options):
    return _pml("SupConLoss", **options)(embeddings, labels)


def _pml_n_pairs(embeddings, labels):
    return _pml("NPairsLoss")(embeddings, labels)


def _first_two_of_each_label(embeddings, labels):
    """PML's ``NPairsLoss`` pairs at fixed shapes: each label's first row (if the label has
    another) as the anchor, and the label's next row as its positive."""
    same = labels[:, None] == labels[None, :]
    first = ~jnp.any(jnp.tril(same, -1), axis=1)
    later = jnp.triu(same, 1)
    second = jnp.argmax(later, axis=1)
    return jaxloss.n_pairs(
        embeddings, embeddings[second], where=first & jnp.any(later, axis=1), normalize=True
    )


def _pml_ntxent_of_two_views(query, positive, **options):
    import torch

    ids = torch.arange(len(query))
    return _pml("NTXentLoss", **options)(query, ids, ref_emb=positive, ref_labels=ids.clone())


def _random_views(rng: np.random.Generator) -> tuple:
    batch, dim = rng.integers(2, 9), rng.integers(1, 7)
    return tuple(rng.normal(size=(batch, dim)).astype(np.float32) for _ in range(2))


def _random_classes(rng: np.random.Generator) -> tuple:
    batch, dim = rng.integers(2, 11), rng.integers(1, 7)
    labels = rng.integers(0, 4, size=batch).astype(np.int32)
    return rng.normal(size=(batch, dim)).astype(np.float32), labels


PEERS: dict[str, Peer] = {
    "pml:SupConLoss": Peer(
        _pml_supcon,
        jaxloss.supcon,
        _random_labelled_rows,
        "supcon(embeddings, labels, temperature=0.1)",
        options=({}, {"temperature": 0.5}, {"temperature": 2.0}),
    ),
    "pml:NPairsLoss": Peer(
        _pml_n_pairs,
        _first_two_of_each_label,
        _random_classes,
        "n_pairs(embeddings, embeddings[second], where=first, normalize=True)",
    ),
    # NTXentLoss against reference embeddings, each query labelled as its own key: in-batch
    # InfoNCE (nt_xent's PEERS entry is that of the labelled batch).
    "pml:NTXentLoss[info_nce]": Peer(
        _pml_ntxent_of_two_views,
        lambda query, positive, **options: jaxloss.info_nce(
            query, positive, **{"temperature": 0.07, **options}
        ),
        _random_views,
        "info_nce(query, positive, temperature=0.07)",
        options=({}, {"temperature": 0.5}),
        differentiable=(0, 1),
    ),
}

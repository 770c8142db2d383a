"""The pairwise losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import dataclasses

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import EMBEDDING_DIM
from tests.pairwise import reference as ref


def _pairs(rng: np.random.Generator, batch: int) -> tuple:
    x1, x2 = (rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32) for _ in range(2))
    return x1, x2, (rng.uniform(size=batch) < 0.5).astype(np.float32)


def _signed_pairs(rng: np.random.Generator, batch: int) -> tuple:
    x1, x2, similar = _pairs(rng, batch)
    return x1, x2, (2 * similar - 1).astype(np.int32)


def _scores(rng: np.random.Generator, batch: int) -> tuple:
    x1, x2 = rng.normal(size=batch).astype(np.float32), rng.normal(size=batch).astype(np.float32)
    return x1, x2, np.where(rng.uniform(size=batch) < 0.5, 1.0, -1.0).astype(np.float32)


def _triplets(rng: np.random.Generator, batch: int) -> tuple:
    return tuple(rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32) for _ in range(3))


def _views(rng: np.random.Generator, batch: int) -> tuple:
    return _triplets(rng, batch)[:2]


def _labelled_batch(rng: np.random.Generator, batch: int) -> tuple:
    # Three identities, each twice in a batch of 6: every anchor has positives and negatives.
    labels = rng.permutation(np.arange(batch) % 3).astype(np.int32)
    return rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32), labels


def _pair_case(fn, reference, make_inputs, differentiable, **kwargs) -> Case:
    hyperparameters = {"margin": kwargs["margin"] + 2.0} if "margin" in kwargs else {}
    if "temperature" in kwargs:
        hyperparameters = {"temperature": 0.5}
    return Case(
        fn,
        make_inputs,
        reference,
        kwargs=kwargs,
        differentiable=differentiable,
        hyperparameters=hyperparameters,
    )


def _batch_triplet_case(**kwargs) -> Case:
    kwargs = {"margin": 4.0 if kwargs.get("squared") else 1.5, **kwargs}
    return Case(
        jaxloss.batch_triplet,
        _labelled_batch,
        ref.batch_triplet,
        kwargs=kwargs,
        hyperparameters={"margin": 0.5},
        # The mean divides by the mode's number of terms (triplets, pairs or anchors).
        reference_mean=lambda totals, *inputs, **options: ref.batch_triplet_mean(
            *inputs, **options
        ),
    )


CASES: dict[str, Case] = {
    "contrastive": dataclasses.replace(
        _pair_case(jaxloss.contrastive, ref.contrastive, _pairs, (0, 1), margin=2.0), free=(0, 1)
    ),
    "triplet_margin": dataclasses.replace(
        dataclasses.replace(
            _pair_case(
                jaxloss.triplet_margin, ref.triplet_margin, _triplets, (0, 1, 2), margin=1.0
            ),
            invalid={"p": -1.0, "eps": -1e-3},
        ),
        free=(0, 1, 2),
    ),
    "triplet_margin[p=1,swap]": dataclasses.replace(
        _pair_case(
            jaxloss.triplet_margin,
            ref.triplet_margin,
            _triplets,
            (0, 1, 2),
            margin=1.0,
            p=1.0,
            swap=True,
        ),
        free=(0, 1, 2),
    ),
    "triplet_margin[p=3]": dataclasses.replace(
        _pair_case(
            jaxloss.triplet_margin, ref.triplet_margin, _triplets, (0, 1, 2), margin=1.0, p=3.0
        ),
        free=(0, 1, 2),
    ),
    "triplet_margin[squared]": dataclasses.replace(
        _pair_case(
            jaxloss.triplet_margin,
            ref.triplet_margin,
            _triplets,
            (0, 1, 2),
            margin=2.0,
            squared=True,
            swap=True,
        ),
        free=(0, 1, 2),
    ),
    "ratio_loss": dataclasses.replace(
        _pair_case(jaxloss.ratio_loss, ref.ratio_loss, _triplets, (0, 1, 2)), free=(0, 1, 2)
    ),
    "margin_ranking": dataclasses.replace(
        _pair_case(jaxloss.margin_ranking, ref.margin_ranking, _scores, (0, 1), margin=0.3),
        free=(0, 1),
    ),
    "cosine_embedding": dataclasses.replace(
        _pair_case(
            jaxloss.cosine_embedding, ref.cosine_embedding, _signed_pairs, (0, 1), margin=-0.2
        ),
        free=(0, 1),
    ),
    "nt_xent": dataclasses.replace(
        dataclasses.replace(
            _pair_case(jaxloss.nt_xent, ref.nt_xent, _views, (0, 1), temperature=0.2),
            invalid={"temperature": 0.0},
        ),
        free=(0, 1),
    ),
    "batch_triplet[all]": dataclasses.replace(_batch_triplet_case(mining="all"), free=(0,)),
    "batch_triplet[hard]": dataclasses.replace(_batch_triplet_case(mining="hard"), free=(0,)),
    "batch_triplet[semihard,squared]": dataclasses.replace(
        _batch_triplet_case(mining="semihard", squared=True), free=(0,)
    ),
}

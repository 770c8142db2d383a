"""The pairwise losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import EMBEDDING_DIM
from tests._suite.peer import Peer
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


def _nt_xent_of_labels(embeddings, labels, **options):
    return jaxloss.nt_xent(embeddings, labels=labels, **options)


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
    "triplet_margin_with_distance": dataclasses.replace(
        _pair_case(
            jaxloss.triplet_margin_with_distance,
            ref.triplet_margin_with_distance,
            _triplets,
            (0, 1, 2),
            margin=1.0,
        ),
        invalid={"margin": 0.0},
        free=(0, 1, 2),
    ),
    "triplet_margin_with_distance[cosine,swap]": dataclasses.replace(
        _pair_case(
            functools.partial(
                jaxloss.triplet_margin_with_distance, distance_function=jaxloss.cosine_distance
            ),
            ref.triplet_margin_with_cosine_distance,
            _triplets,
            (0, 1, 2),
            margin=0.5,
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
    "nt_xent[labels]": Case(
        _nt_xent_of_labels,
        _labelled_batch,
        ref.nt_xent_of_labels,
        kwargs={"temperature": 0.2},
        hyperparameters={"temperature": 0.5},
        # "none" is each anchor's sum over its positives; the mean is over positive pairs.
        reference_mean=lambda totals, *inputs, **options: ref.nt_xent_of_labels_mean(
            *inputs, **options
        ),
        invalid={"temperature": 0.0},
        free=(0,),
    ),
    "batch_triplet[all]": dataclasses.replace(_batch_triplet_case(mining="all"), free=(0,)),
    "batch_triplet[hard]": dataclasses.replace(_batch_triplet_case(mining="hard"), free=(0,)),
    "batch_triplet[semihard,squared]": dataclasses.replace(
        _batch_triplet_case(mining="semihard", squared=True), free=(0,)
    ),
}


NOT_LOSSES = {
    "cosine_similarity": "tests/pairwise/test_pairwise.py",
    "cosine_distance": "tests/pairwise/test_pairwise.py",
}

# --- torch and optax ---------------------------------------------------------------------------


def _random_rows(rng: np.random.Generator, count: int) -> tuple:
    """``count`` float arrays of one random shape, ``[batch, dim]`` or ``[dim]``."""
    shape = tuple(rng.integers(1, 7, size=rng.integers(1, 3)))
    return tuple(rng.normal(size=shape).astype(np.float32) for _ in range(count))


def _random_triplets(rng: np.random.Generator) -> tuple:
    return _random_rows(rng, 3)


def _random_signed_pairs(rng: np.random.Generator) -> tuple:
    x1, x2 = _random_rows(rng, 2)
    return x1, x2, rng.choice([-1.0, 1.0], size=x1.shape[:-1])


def _random_scores(rng: np.random.Generator) -> tuple:
    shape = tuple(rng.integers(1, 6, size=rng.integers(1, 4)))
    x1, x2 = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
    return x1, x2, rng.choice([-1.0, 1.0], size=shape)


def _random_labelled_rows(rng: np.random.Generator) -> tuple:
    batch, dim = rng.integers(2, 9), rng.integers(1, 7)
    labels = rng.integers(0, 3, size=batch).astype(np.int32)
    labels[1] = labels[0]  # a positive pair at least: optax's mean over none is NaN
    return rng.normal(size=(batch, dim)).astype(np.float32), labels


def _random_vectors(rng: np.random.Generator) -> tuple:
    """Two float arrays of one random shape of 2 or 3 axes."""
    shape = tuple(rng.integers(1, 6, size=rng.integers(2, 4)))
    return tuple(rng.normal(size=shape).astype(np.float32) for _ in range(2))


def _random_masked_vectors(rng: np.random.Generator) -> tuple:
    x1, x2 = _random_vectors(rng)
    return x1, x2, rng.uniform(size=x1.shape) < 0.7


def _torch_distance(name: str | None):
    """``triplet_margin_with_distance_loss``'s ``distance_function`` for a name: torch's."""
    import torch

    return {
        None: None,
        "cosine": lambda x, y: 1 - torch.nn.functional.cosine_similarity(x, y, dim=-1),
        "squared": lambda x, y: torch.sum(torch.square(x - y), dim=-1),
    }[name]


JAX_DISTANCES = {
    None: None,
    "cosine": jaxloss.cosine_distance,
    "squared": lambda x, y: jnp.sum(jnp.square(x - y), axis=-1),
}


def _torch_triplet_margin_with_distance(anchor, positive, negative, distance=None, **options):
    import torch

    return torch.nn.functional.triplet_margin_with_distance_loss(
        anchor, positive, negative, distance_function=_torch_distance(distance), **options
    )


def _triplet_margin_with_distance(anchor, positive, negative, distance=None, **options):
    return jaxloss.triplet_margin_with_distance(
        anchor, positive, negative, distance_function=JAX_DISTANCES[distance], **options
    )


def _torch_functional(name: str):
    def peer(*inputs, **options):
        import torch

        return getattr(torch.nn.functional, name)(*inputs, **options)

    return peer


def _optax_triplet_margin(anchors, positives, negatives, axis=-1, norm_degree=2, **options):
    moved = (jnp.moveaxis(x, axis, -1) for x in (anchors, positives, negatives))
    return jaxloss.triplet_margin(*moved, p=norm_degree, reduction="none", **options)


def _optax_triplet_margin_with_eps(
    anchors, positives, negatives, axis=-1, norm_degree=2, margin=1.0, eps=1e-6
):
    def distance(x, y):  # optax's: eps under the root
        return (jnp.sum(jnp.abs(x - y) ** norm_degree, -1) + eps) ** (1 / norm_degree)

    moved = (jnp.moveaxis(x, axis, -1) for x in (anchors, positives, negatives))
    return jaxloss.triplet_margin_with_distance(
        *moved, distance_function=distance, margin=margin, reduction="none"
    )


def _optax_cosine(fn):
    def ours(predictions, targets, *, epsilon=0.0, axis=-1):
        return fn(predictions, targets, axis=axis, eps=epsilon**0.5)

    return ours


def _optax_masked_cosine(fn):
    def ours(predictions, targets, where):
        return fn(jnp.where(where, predictions, 0), jnp.where(where, targets, 0))

    return ours


REDUCED = ({"reduction": "mean"}, {"reduction": "sum"}, {"reduction": "none"})
COSINE_OPTIONS = ({}, {"epsilon": 0.25}, {"axis": 0}, {"axis": (0, -1), "epsilon": 1e-3})

PEERS: dict[str, Peer] = {
    "torch:triplet_margin_loss": Peer(
        _torch_functional("triplet_margin_loss"),
        jaxloss.triplet_margin,
        _random_triplets,
        "triplet_margin(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False)",
        options=(
            *REDUCED,
            {"p": 1.0, "swap": True, "reduction": "none"},
            {"p": 3.0, "margin": 0.3},
            {"p": 0.5, "eps": 0.0, "reduction": "sum"},
            {"p": float("inf"), "swap": True, "margin": 2.0, "reduction": "none"},
            {"eps": 1e-2, "swap": True},
        ),
        differentiable=(0, 1, 2),
    ),
    "torch:triplet_margin_with_distance_loss": Peer(
        _torch_triplet_margin_with_distance,
        _triplet_margin_with_distance,
        _random_triplets,
        "triplet_margin_with_distance(anchor, positive, negative, distance_function=None, "
        "margin=1.0, swap=False)",
        options=(
            *REDUCED,
            {"swap": True, "margin": 2.0, "reduction": "none"},
            {"distance": "cosine", "margin": 0.5, "reduction": "none"},
            {"distance": "cosine", "swap": True, "reduction": "sum"},
            {"distance": "squared", "swap": True, "margin": 3.0},
        ),
        differentiable=(0, 1, 2),
    ),
    "torch:margin_ranking_loss": Peer(
        _torch_functional("margin_ranking_loss"),
        jaxloss.margin_ranking,
        _random_scores,
        "margin_ranking(x1, x2, targets, margin=0.0)",
        options=(*REDUCED, {"margin": 0.5, "reduction": "none"}, {"margin": -0.2}),
        differentiable=(0, 1),
    ),
    "torch:cosine_embedding_loss": Peer(
        _torch_functional("cosine_embedding_loss"),
        jaxloss.cosine_embedding,
        _random_signed_pairs,
        "cosine_embedding(x1, x2, targets, margin=0.0)",
        options=(*REDUCED, {"margin": 0.3, "reduction": "none"}, {"margin": -0.5}),
        differentiable=(0, 1),
    ),
    "optax:triplet_margin_loss": Peer(
        optax.losses.triplet_margin_loss,
        _optax_triplet_margin,
        _random_triplets,
        "triplet_margin(anchors, positives, negatives, p=norm_degree, margin=margin, eps=0.0, "
        'reduction="none")',
        # optax drops the |·| of odd p (jaxloss keeps it): p = 2 and 4 agree. Its eps is added
        # to the sum of powers, jaxloss's (torch's) to each difference: equal at eps = 0; the
        # [eps] entry translates any eps.
        options=(
            {"eps": 0.0},
            {"eps": 0.0, "norm_degree": 4, "margin": 0.5},
            {"eps": 0.0, "axis": 0, "margin": 2.0},
        ),
        differentiable=(0, 1, 2),
    ),
    "optax:triplet_margin_loss[eps]": Peer(
        optax.losses.triplet_margin_loss,
        _optax_triplet_margin_with_eps,
        _random_triplets,
        "triplet_margin_with_distance(anchors, positives, negatives, distance_function=lambda "
        "x, y: (jnp.sum(jnp.abs(x - y) ** norm_degree, -1) + eps) ** (1 / norm_degree), "
        'margin=margin, reduction="none")',
        options=({}, {"eps": 1e-2}, {"norm_degree": 4, "margin": 0.5}, {"axis": 0}),
        differentiable=(0, 1, 2),
    ),
    "optax:ntxent": Peer(
        optax.losses.ntxent,
        lambda embeddings, labels, **options: jaxloss.nt_xent(
            embeddings, labels=labels, **{"temperature": 0.07, **options}
        ),
        _random_labelled_rows,
        "nt_xent(embeddings, labels=labels, temperature=0.07)",
        options=({}, {"temperature": 0.5}, {"temperature": 2.0}),
    ),
    "optax:cosine_similarity": Peer(
        optax.losses.cosine_similarity,
        _optax_cosine(jaxloss.cosine_similarity),
        _random_vectors,
        "cosine_similarity(predictions, targets, axis=axis, eps=epsilon ** 0.5)",
        options=COSINE_OPTIONS,
        differentiable=(0, 1),
    ),
    "optax:cosine_similarity[where]": Peer(
        lambda predictions, targets, where: optax.losses.cosine_similarity(
            predictions, targets, where=where
        ),
        _optax_masked_cosine(jaxloss.cosine_similarity),
        _random_masked_vectors,
        "cosine_similarity(jnp.where(where, predictions, 0), jnp.where(where, targets, 0))",
        differentiable=(0, 1),
    ),
    "optax:cosine_distance": Peer(
        optax.losses.cosine_distance,
        _optax_cosine(jaxloss.cosine_distance),
        _random_vectors,
        "cosine_distance(predictions, targets, axis=axis, eps=epsilon ** 0.5)",
        options=COSINE_OPTIONS,
        differentiable=(0, 1),
    ),
}

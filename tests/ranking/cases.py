"""The ranking losses as the shared suites see them: one ``Case`` per loss and variant,
and the optax function they translate (``PEERS``)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from tests._suite.case import Case
from tests._suite.peer import Peer
from tests.ranking import reference as ref

LIST_SIZE = 5
GRADES = 4  # relevance labels 0, 1, 2, 3


def _graded(rng: np.random.Generator, batch: int) -> tuple:
    """Scores and integer relevance; some lists hold no relevant item."""
    scores = 2 * rng.normal(size=(batch, LIST_SIZE))
    labels = rng.choice(GRADES, p=[0.55, 0.25, 0.15, 0.05], size=(batch, LIST_SIZE))
    return scores.astype(np.float32), labels.astype(np.int32)


def _ordered(rng: np.random.Generator, batch: int) -> tuple:
    """``_graded`` with an ordered pair in every list (the first two items)."""
    scores, labels = _graded(rng, batch)
    labels[:, 0] = 0
    labels[:, 1] = rng.integers(1, GRADES, size=batch)
    return scores, labels


def _padded(make_lists):
    """``make_lists``'s lists as floats, with item weights and an item mask.

    The first list keeps three items, the third (if any) none; the others a random subset.
    """

    def make_inputs(rng: np.random.Generator, batch: int) -> tuple:
        scores, labels = make_lists(rng, batch)
        labels = labels * rng.uniform(0.5, 1.0, size=labels.shape)
        weights = rng.uniform(0.5, 2.0, size=scores.shape)
        items = rng.uniform(size=scores.shape) < 0.7
        if batch > 0:
            items[0] = [True, True, True, False, False]
        if batch > 2:
            items[2] = False
        return scores, labels.astype(np.float32), weights.astype(np.float32), items

    return make_inputs


def _with_items(fn):
    """``fn`` with the item weights and mask as positional inputs, so the suite drops rows."""

    def with_items(scores, labels, weights, item_mask, **options):
        return fn(scores, labels, weights=weights, item_mask=item_mask, **options)

    return with_items


def _mean_with_items(reference_mean):
    """``reference_mean`` with the item weights and mask as positional inputs."""

    def mean(none, scores, labels, weights, item_mask, **options):
        return reference_mean(none, scores, labels, weights=weights, item_mask=item_mask, **options)

    return mean


def _masked_items(scores, labels, weights, item_mask) -> dict[int, np.ndarray]:
    return {position: ~np.asarray(item_mask) for position in (0, 1, 2)}


def _masked_case(fn, reference, reference_mean, make_lists, differentiable) -> Case:
    return Case(
        _with_items(fn),
        _padded(make_lists),
        _with_items(reference),
        differentiable=differentiable,
        reference_mean=_mean_with_items(reference_mean),
        free=(0,),
        padding=_masked_items,
    )


def _pairwise_case(name: str) -> Case:
    return Case(
        getattr(jaxloss, name),
        _ordered,
        getattr(ref, name),
        reference_mean=ref.pairwise_mean,
        free=(0,),
    )


CASES: dict[str, Case] = {
    "ranking_softmax": Case(
        jaxloss.ranking_softmax,
        _graded,
        ref.ranking_softmax,
        reference_mean=ref.ranking_softmax_mean,
        free=(0,),
    ),
    "ranking_softmax[items]": _masked_case(
        jaxloss.ranking_softmax,
        ref.ranking_softmax,
        ref.ranking_softmax_mean,
        _graded,
        (0, 1, 2),
    ),
    "pairwise_hinge_ranking": _pairwise_case("pairwise_hinge_ranking"),
    # The pairwise losses share their masking; labels only order the pairs (no gradient).
    "pairwise_hinge_ranking[items]": _masked_case(
        jaxloss.pairwise_hinge_ranking,
        ref.pairwise_hinge_ranking,
        ref.pairwise_mean,
        _ordered,
        (0, 2),
    ),
    "pairwise_logistic_ranking": _pairwise_case("pairwise_logistic_ranking"),
}


# --- optax ---------------------------------------------------------------------------------

REDUCE_FNS = {None: "none", jnp.sum: "sum", jnp.mean: "mean"}


def _lists_of_random_shape(rng: np.random.Generator) -> tuple:
    """``(scores, labels, item_mask, weights)``: 0 to 2 leading axes, lists of 1 to 8 items;
    some lists without a relevant item, some without a valid one."""
    shape = (*rng.integers(1, 5, size=rng.integers(0, 3)), int(rng.integers(1, 9)))
    scores = 2 * rng.normal(size=shape)
    labels = rng.choice(GRADES, p=[0.5, 0.3, 0.15, 0.05], size=shape)
    items = rng.uniform(size=shape) < 0.75
    weights = rng.uniform(0.2, 3.0, size=shape)
    if items.ndim > 1 and items.size > 2 * shape[-1]:
        items.reshape(-1, shape[-1])[0] = False
        labels.reshape(-1, shape[-1])[1] = 0
    return scores.astype(np.float32), labels.astype(np.float32), items, weights.astype(np.float32)


def _optax_ranking_softmax(scores, labels, items, weights, *, where, weights_on, reduce_fn):
    return optax.losses.ranking_softmax_loss(
        scores,
        labels,
        where=items if where else None,
        weights=weights if weights_on else None,
        reduce_fn=reduce_fn,
    )


def _ours_ranking_softmax(scores, labels, items, weights, *, where, weights_on, reduce_fn):
    return jaxloss.ranking_softmax(
        scores,
        labels,
        item_mask=items if where else None,
        weights=weights if weights_on else None,
        reduction=REDUCE_FNS[reduce_fn],
    )


PEERS: dict[str, Peer] = {
    "optax:ranking_softmax_loss": Peer(
        _optax_ranking_softmax,
        _ours_ranking_softmax,
        _lists_of_random_shape,
        "ranking_softmax(logits, labels, item_mask=where, weights=, reduction=)",
        options=tuple(
            {"where": where, "weights_on": weights_on, "reduce_fn": reduce_fn}
            for where in (False, True)
            for weights_on in (False, True)
            for reduce_fn in REDUCE_FNS
        ),
        # optax's gradient in the weights is NaN at masked items (0 · −inf): the weights'
        # gradient is compared where items count, in tests/ranking/test_ranking.py.
        differentiable=(0, 1),
    ),
}

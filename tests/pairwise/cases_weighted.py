"""The pair-weighting losses (``jaxloss/pairwise/weighted.py``) as the shared suites see
them, and their pytorch-metric-learning peers."""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.peer import Peer
from tests.pairwise import reference_weighted as ref
from tests.pairwise.cases import _labelled_batch


def _mean_of(terms):
    """A ``reference_mean`` from a ``*_terms`` reference: the sum over its count."""

    def mean(totals, *inputs, **options):
        totals, count = terms(*inputs, **options)
        return float(totals.sum() / count) if count else 0.0

    return mean


# ``mining=False`` and ``normalize=True`` add no path the shared suites would exercise (the
# masks and the reduction are the defaults'): tests/pairwise/test_weighted.py checks them
# against the float64 reference, with masked rows of NaN and zero embeddings, and the PML
# catalogue (their PML forms) with gradients.
CASES: dict[str, Case] = {
    "multi_similarity": Case(
        jaxloss.multi_similarity,
        _labelled_batch,
        ref.multi_similarity,
        hyperparameters={"base": 0.3},
        invalid={"alpha": 0.0, "beta": -1.0, "epsilon": -0.1},
        free=(0,),
    ),
    # The default detached weights make the gradient differ from the value's derivative,
    # which check_grads measures; tests/pairwise/test_weighted.py checks the detached one.
    "circle": Case(
        jaxloss.circle,
        _labelled_batch,
        ref.circle,
        kwargs={"margin": 0.25, "gamma": 16.0, "detach_weights": False},
        hyperparameters={"gamma": 32.0},
        reference_mean=_mean_of(ref.circle_terms),
        invalid={"gamma": 0.0},
        free=(0,),
    ),
    "lifted_structure": Case(
        jaxloss.lifted_structure,
        _labelled_batch,
        ref.lifted_structure,
        kwargs={"margin": 1.0},
        hyperparameters={"margin": 0.5},
        reference_mean=_mean_of(ref.lifted_structure_terms),
        free=(0,),
    ),
}

# --- pytorch-metric-learning -------------------------------------------------------------------


def _random_labelled_batch(rng: np.random.Generator) -> tuple:
    """``[batch, dim]`` embeddings and labels of 2 or 3 identities, each at least twice."""
    batch, dim, identities = rng.integers(6, 11), rng.integers(3, 7), rng.integers(2, 4)
    labels = rng.permutation(np.arange(batch) % identities).astype(np.int64)
    return rng.normal(size=(batch, dim)).astype(np.float32), labels


def _random_mined_batch(rng: np.random.Generator) -> tuple:
    """A batch whose mining at ε = 0 keeps more than one positive and one negative pair:
    PML's ``GenericPairLoss`` returns 0 when the miner keeps at most one of each."""
    while True:
        embeddings, labels = _random_labelled_batch(rng)
        if min(ref.mined_pair_counts(embeddings, labels, epsilon=0.0)) > 1:
            return embeddings, labels


def _pml_multi_similarity(embeddings, labels, **options):
    from pytorch_metric_learning.losses import MultiSimilarityLoss

    return MultiSimilarityLoss(**options)(embeddings, labels)


def _pml_multi_similarity_mined(embeddings, labels, epsilon=0.1, **options):
    from pytorch_metric_learning.losses import MultiSimilarityLoss
    from pytorch_metric_learning.miners import MultiSimilarityMiner

    pairs = MultiSimilarityMiner(epsilon=epsilon)(embeddings, labels)
    return MultiSimilarityLoss(**options)(embeddings, labels, pairs)


def _pml_circle(embeddings, labels, **options):
    from pytorch_metric_learning.losses import CircleLoss

    return CircleLoss(**options)(embeddings, labels)


def _pml_lifted_structure(embeddings, labels, **options):
    from pytorch_metric_learning.losses import LiftedStructureLoss

    return LiftedStructureLoss(**options)(embeddings, labels)


PEERS: dict[str, Peer] = {
    "pml:MultiSimilarityLoss": Peer(
        _pml_multi_similarity,
        lambda embeddings, labels, alpha=2, beta=50, base=0.5: jaxloss.multi_similarity(
            embeddings, labels, alpha=alpha, beta=beta, base=base, mining=False
        ),
        _random_labelled_batch,
        "multi_similarity(embeddings, labels, alpha=alpha, beta=beta, base=base, mining=False)",
        options=({}, {"alpha": 1.0, "beta": 10.0, "base": 0.2}, {"alpha": 4.0, "base": 0.8}),
    ),
    "pml:MultiSimilarityLoss[miner]": Peer(
        _pml_multi_similarity_mined,
        lambda embeddings, labels, alpha=2, beta=50, base=0.5, epsilon=0.1: (
            jaxloss.multi_similarity(
                embeddings, labels, alpha=alpha, beta=beta, base=base, epsilon=epsilon
            )
        ),
        _random_mined_batch,
        "multi_similarity(embeddings, labels, alpha=alpha, beta=beta, base=base, epsilon=epsilon)",
        options=({}, {"epsilon": 0.0}, {"epsilon": 0.5, "alpha": 3.0, "beta": 20.0, "base": 0.0}),
    ),
    "pml:CircleLoss": Peer(
        _pml_circle,
        lambda embeddings, labels, m=0.4, gamma=80: jaxloss.circle(
            embeddings, labels, margin=m, gamma=gamma
        ),
        _random_labelled_batch,
        "circle(embeddings, labels, margin=m, gamma=gamma)",
        options=({}, {"m": 0.25, "gamma": 256.0}, {"m": 0.1, "gamma": 5.0}),
        # Gradients scale with γ (up to 256 here): float32 against float64 leaves about
        # 1e-7 of γ in them.
        atol=1e-4,
    ),
    "pml:LiftedStructureLoss": Peer(
        _pml_lifted_structure,
        lambda embeddings, labels, neg_margin=1: jaxloss.lifted_structure(
            embeddings, labels, margin=neg_margin, normalize=True
        ),
        _random_labelled_batch,
        "lifted_structure(embeddings, labels, margin=neg_margin, normalize=True)",
        options=({}, {"neg_margin": 0.3}, {"neg_margin": 2.0}),
        # Distances from the Gram form in float32: about 1e-7 / D of relative error, which
        # the gradient (x_i - x_j) / D_ij carries.
        rtol=1e-4,
    ),
}

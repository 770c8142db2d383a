"""``margin_loss``, ``tuplet_margin`` and ``fast_ap`` as the shared suites see them, and their
pytorch-metric-learning translations."""

from __future__ import annotations

import dataclasses

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import EMBEDDING_DIM
from tests._suite.peer import Peer
from tests.pairwise import reference_sampling as ref
from tests.pairwise.cases import _labelled_batch

NUM_CLASSES = 4


def _with_singletons(rng: np.random.Generator, batch: int) -> tuple:
    # Four classes: at batch 6, two pairs and two anchors without a positive; the rows the
    # common suite keeps (0, 2, 3 and 5) still hold a pair.
    labels = np.resize(np.array([0, 1, 0, 2, 3, 1], np.int32), batch)
    return rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32), labels


def _with_class_betas(rng: np.random.Generator, batch: int) -> tuple:
    betas = rng.uniform(0.8, 1.4, size=NUM_CLASSES).astype(np.float32)
    return *_with_singletons(rng, batch), betas


def _mean_of(mean):
    """A ``reference_mean`` from a reference's ``*_mean(*inputs, **options)``."""
    return lambda values, *inputs, **options: mean(*inputs, **options)


def _margin_case(make_inputs, with_beta: bool, hyperparameter: str = "margin", **kwargs) -> Case:
    return Case(
        jaxloss.margin_loss,
        make_inputs,
        ref.margin_loss,
        kwargs=kwargs,
        # A per-class beta is a parameter: differentiated, not split by rows. (A scalar one
        # is an option here: the suites take every float input to have rows.)
        differentiable=(0, 2) if with_beta else (0,),
        batched=(0, 1) if with_beta else None,
        hyperparameters={hyperparameter: kwargs[hyperparameter] + 0.3},
        # "none" is per anchor; the mean divides by the hinge terms above zero.
        reference_mean=_mean_of(ref.margin_loss_mean),
        free=(0,),
    )


def _tuplet_case(make_inputs, **kwargs) -> Case:
    return Case(
        jaxloss.tuplet_margin,
        make_inputs,
        ref.tuplet_margin,
        kwargs=kwargs,
        hyperparameters={"scale": 8.0},
        # "none" is each anchor's sum over its positives; the mean is over positive pairs.
        reference_mean=_mean_of(ref.tuplet_margin_mean),
        invalid={"scale": 0.0},
        free=(0,),
    )


def _fast_ap_case(make_inputs, **kwargs) -> Case:
    return Case(
        jaxloss.fast_ap,
        make_inputs,
        ref.fast_ap,
        kwargs=kwargs,
        # The mean is over the anchors that have a positive.
        reference_mean=_mean_of(ref.fast_ap_mean),
        free=(0,),
    )


CASES: dict[str, Case] = {
    # A traced scalar beta and nu; the per-class beta is an input.
    "margin_loss": dataclasses.replace(
        _margin_case(_with_singletons, False, "beta", beta=1.1, margin=0.3, nu=0.1),
        invalid={"nu": -1.0},
    ),
    "margin_loss[classes]": _margin_case(_with_class_betas, True, margin=0.2, nu=0.05),
    "tuplet_margin": _tuplet_case(_with_singletons, margin=20.0, scale=4.0),
    # Other bin counts and anchors without positives: tests/pairwise/test_sampling.py and
    # the PML catalogue (the shared suites' masks leave anchors without positives here too).
    "fast_ap": _fast_ap_case(_labelled_batch),
}

# --- pytorch-metric-learning -------------------------------------------------------------


def _random_labelled(rng: np.random.Generator) -> tuple:
    """A batch of 3 to 10 rows of dim 2 to 5 (dim 1 puts every cosine at ±1, where PML's
    arccos has no gradient), labels of 3 classes with at least one triplet."""
    batch, dim = rng.integers(3, 11), rng.integers(2, 6)
    labels = rng.integers(0, 3, size=batch)
    labels[:3] = [0, 0, 1]
    return rng.normal(size=(batch, dim)), rng.permutation(labels)


def _random_with_beta(rng: np.random.Generator) -> tuple:
    return *_random_labelled(rng), np.asarray(rng.uniform(0.9, 1.3))


def _random_with_class_betas(rng: np.random.Generator) -> tuple:
    return *_random_labelled(rng), rng.uniform(0.8, 1.4, size=3)


def _reducer(reduction: str) -> dict:
    """PML's default reducer for ``"mean"``; its ``SumReducer`` for ``"sum"``."""
    from pytorch_metric_learning import reducers

    return {} if reduction == "mean" else {"reducer": reducers.SumReducer()}


def _pml_loss(name: str):
    """PML's loss ``name`` built with the options, called on the batch (no miner)."""

    def peer(embeddings, labels, *, reduction="mean", **options):
        from pytorch_metric_learning import losses

        loss = getattr(losses, name)(**_reducer(reduction), **options)
        return loss(embeddings, labels)

    return peer


def _pml_margin_learning(embeddings, labels, beta, *, reduction="mean", **options):
    """``MarginLoss(learn_beta=True)`` with our β in place of its parameter (scalar: PML's
    shape [1]; per class: ``num_classes`` entries)."""
    from pytorch_metric_learning import losses

    classes = {"num_classes": beta.shape[0]} if beta.ndim else {}
    loss = losses.MarginLoss(learn_beta=True, **classes, **_reducer(reduction), **options)
    del loss.beta
    loss.beta = beta.reshape(-1)
    return loss(embeddings, labels)


def _margin_with_scalar_regularizer(embeddings, labels, beta, *, nu, **options):
    return jaxloss.margin_loss(embeddings, labels, beta, **options) + nu * beta


PEERS: dict[str, Peer] = {
    "pml:MarginLoss": Peer(
        _pml_loss("MarginLoss"),
        lambda embeddings, labels, *, beta, **options: jaxloss.margin_loss(
            embeddings, labels, beta, **options
        ),
        _random_labelled,
        "margin_loss(embeddings, labels, beta, margin=margin)",
        options=(
            {"margin": 0.2, "beta": 1.2},
            {"margin": 0.5, "beta": 0.8},
            {"margin": 0.3, "beta": 1.0, "reduction": "sum"},
        ),
    ),
    "pml:MarginLoss[learn_beta]": Peer(
        _pml_margin_learning,
        _margin_with_scalar_regularizer,
        _random_with_beta,
        "margin_loss(embeddings, labels, beta, margin=margin) + nu * beta",
        options=(
            {"margin": 0.2, "nu": 0.3},
            {"margin": 0.1, "nu": 0.0},
            {"margin": 0.2, "nu": 0.3, "reduction": "sum"},
        ),
        differentiable=(0, 2),
    ),
    "pml:MarginLoss[classes]": Peer(
        _pml_margin_learning,
        jaxloss.margin_loss,
        _random_with_class_betas,
        "margin_loss(embeddings, labels, beta, margin=margin, nu=nu)",
        options=(
            {"margin": 0.2, "nu": 0.3},
            {"margin": 0.4, "nu": 0.0},
            {"margin": 0.2, "nu": 0.3, "reduction": "sum"},
        ),
        differentiable=(0, 2),
    ),
    "pml:TupletMarginLoss": Peer(
        _pml_loss("TupletMarginLoss"),
        jaxloss.tuplet_margin,
        _random_labelled,
        "tuplet_margin(embeddings, labels, margin=margin, scale=scale)",
        options=(
            {"margin": 5.73, "scale": 64.0},
            {"margin": 20.0, "scale": 8.0},
            {"margin": 5.73, "scale": 16.0, "reduction": "sum"},
        ),
    ),
    "pml:FastAPLoss": Peer(
        _pml_loss("FastAPLoss"),
        jaxloss.fast_ap,
        _random_labelled,
        "fast_ap(embeddings, labels, num_bins=num_bins)",
        options=(
            {"num_bins": 10},
            {"num_bins": 3},
            {"num_bins": 10, "reduction": "sum"},
        ),
    ),
}

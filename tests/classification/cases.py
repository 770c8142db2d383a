"""The classification losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import dataclasses

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import FEATURES, NUM_CLASSES, log_probs_labels, logits_labels
from tests.classification import reference as ref
from tests.classification import torch_reference
from tests.classification.optax_peers import PEERS as OPTAX_PEERS
from tests.classification.peers import PEERS as TORCH_PEERS


def _probs_targets(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, FEATURES)
    probs = rng.uniform(0.05, 0.95, size=shape)
    return probs.astype(np.float32), rng.uniform(size=shape).astype(np.float32)


def _logits_binary_targets(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, FEATURES)
    logits = 2 * rng.normal(size=shape)
    return logits.astype(np.float32), (rng.uniform(size=shape) < 0.3).astype(np.float32)


def _scores_signs(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, FEATURES)
    signs = np.where(rng.uniform(size=shape) < 0.4, 1, -1).astype(np.int32)
    return (2 * rng.normal(size=shape)).astype(np.float32), signs


def _logits_probabilities(rng: np.random.Generator, batch: int) -> tuple:
    logits = 2 * rng.normal(size=(batch, NUM_CLASSES))
    targets = rng.dirichlet(np.ones(NUM_CLASSES), size=batch)
    return logits.astype(np.float32), targets.astype(np.float32)


def _torch_soft_margin(scores, signs) -> np.ndarray:
    """torch's ``soft_margin_loss`` per element, in float64: the oracle API.md names."""
    import torch

    return torch.nn.functional.soft_margin_loss(
        torch.tensor(np.asarray(scores), dtype=torch.float64),
        torch.tensor(np.asarray(signs), dtype=torch.float64),
        reduction="none",
    ).numpy()


def _distances_signs(rng: np.random.Generator, batch: int) -> tuple:
    scores, signs = _scores_signs(rng, batch)
    return np.abs(scores), signs


def _target_lists(rng: np.random.Generator, batch: int) -> tuple:
    """Logits and target lists: class ids (repeats allowed) ended by -1 or by the row's
    end, then junk the loss must not read (negatives, ids past the classes). Row 0 lists
    at least one class and leaves one out, so a NaN logit there reaches the loss."""
    logits = 2 * rng.normal(size=(batch, NUM_CLASSES))
    targets = rng.integers(-5, NUM_CLASSES + 5, size=(batch, NUM_CLASSES))
    for row, slots in enumerate(targets):
        length = rng.integers(1, NUM_CLASSES) if row == 0 else rng.integers(0, NUM_CLASSES + 1)
        slots[:length] = rng.integers(0, NUM_CLASSES, size=length)
        slots[length : length + 1] = -1
    return logits.astype(np.float32), targets.astype(np.int32)


CLASS_WEIGHTS = np.array([0.5, 1.0, 2.0, 1.5, 0.8], np.float32)  # one per class of the cases

IGNORE_INDEX = -100


def _with_ignored(make_inputs):
    """Inputs whose labels (last) are ``IGNORE_INDEX`` at rows 2, 8, ...: rows that count
    in the suites' masks, so ignoring and masking are each seen on their own."""

    def with_ignored(rng: np.random.Generator, batch: int) -> tuple:
        *scores, labels = make_inputs(rng, batch)
        labels = labels.copy()
        labels[2::6] = IGNORE_INDEX
        return (*scores, labels)

    return with_ignored


def _ignoring(reference):
    """The per-example reference with ignored labels giving 0."""

    def ignoring(scores, labels, ignore_index):
        ignored = np.asarray(labels) == ignore_index
        return np.where(ignored, 0.0, reference(scores, np.where(ignored, 0, labels)))

    return ignoring


def _ignored_rows(scores, labels) -> dict[int, np.ndarray]:
    ignored = np.asarray(labels) == IGNORE_INDEX
    return {0: np.broadcast_to(ignored[..., None], np.shape(scores))}


def _ignore_case(fn, make_inputs, reference) -> Case:
    return Case(
        fn,
        _with_ignored(make_inputs),
        _ignoring(reference),
        kwargs={"ignore_index": IGNORE_INDEX},
        reference_mean=lambda none, scores, labels, **_: (
            none.sum() / max(1, np.sum(labels != IGNORE_INDEX))
        ),
        padding=_ignored_rows,
    )


CASES: dict[str, Case] = {
    "cross_entropy": Case(
        jaxloss.cross_entropy,
        logits_labels,
        ref.cross_entropy,
        invalid={"label_smoothing": 1.5},
        free=(0,),
    ),
    "cross_entropy[ignore_index]": dataclasses.replace(
        _ignore_case(jaxloss.cross_entropy, logits_labels, ref.cross_entropy), free=(0,)
    ),
    "nll": Case(jaxloss.nll, log_probs_labels, ref.nll, free=(0,)),
    "nll[ignore_index]": dataclasses.replace(
        _ignore_case(jaxloss.nll, log_probs_labels, ref.nll), free=(0,)
    ),
    "binary_cross_entropy": Case(
        jaxloss.binary_cross_entropy,
        _probs_targets,
        ref.binary_cross_entropy,
        differentiable=(0, 1),
    ),
    "binary_cross_entropy_with_logits": Case(
        jaxloss.binary_cross_entropy_with_logits,
        _logits_binary_targets,
        ref.binary_cross_entropy_with_logits,
        kwargs={"pos_weight": 2.5},
        differentiable=(0, 1),
        hyperparameters={"pos_weight": 0.5},
        free=(0,),
    ),
    "sigmoid_focal": Case(
        jaxloss.sigmoid_focal,
        _logits_binary_targets,
        ref.sigmoid_focal,
        kwargs={"alpha": 0.3, "gamma": 1.5},
        hyperparameters={"gamma": 2.5},
        invalid={"gamma": -1.0, "alpha": 1.5},
        free=(0,),
    ),
    "hinge_embedding": Case(
        jaxloss.hinge_embedding,
        _distances_signs,
        torch_reference.hinge_embedding,
        kwargs={"margin": 1.5},
        hyperparameters={"margin": 0.5},
        free=(0,),
    ),
    "multi_margin": Case(
        jaxloss.multi_margin,
        logits_labels,
        torch_reference.multi_margin,
        kwargs={"margin": 0.8},
        hyperparameters={"margin": 1.5},
        free=(0,),
    ),
    # The other options at once: squared hinge, class weights (a plain mean all the same)
    # and ignored labels, whose logits the loss must not read.
    "multi_margin[ignore_index]": dataclasses.replace(
        _ignore_case(jaxloss.multi_margin, logits_labels, torch_reference.multi_margin),
        kwargs={"p": 2, "class_weights": CLASS_WEIGHTS, "ignore_index": IGNORE_INDEX},
        reference=torch_reference.multi_margin,
        free=(0,),
    ),
    "multilabel_margin": Case(
        jaxloss.multilabel_margin, _target_lists, torch_reference.multilabel_margin, free=(0,)
    ),
    "multilabel_soft_margin": Case(
        jaxloss.multilabel_soft_margin,
        _logits_binary_targets,
        torch_reference.multilabel_soft_margin,
        kwargs={"class_weights": CLASS_WEIGHTS[:FEATURES]},
        differentiable=(0, 1),
        free=(0,),
    ),
    "soft_margin": Case(jaxloss.soft_margin, _scores_signs, _torch_soft_margin, free=(0,)),
    "softmax_focal": Case(
        jaxloss.softmax_focal,
        logits_labels,
        ref.softmax_focal,
        kwargs={"gamma": 1.5},
        hyperparameters={"gamma": 0.0},
        invalid={"gamma": -0.5},
        free=(0,),
    ),
    "hinge": Case(
        jaxloss.hinge,
        _scores_signs,
        ref.hinge,
        kwargs={"margin": 1.5},
        hyperparameters={"margin": 0.5},
        free=(0,),
    ),
    "multiclass_hinge": Case(
        jaxloss.multiclass_hinge,
        logits_labels,
        ref.multiclass_hinge,
        kwargs={"margin": 0.8},
        hyperparameters={"margin": 1.5},
        free=(0,),
    ),
    "multiclass_perceptron": Case(
        jaxloss.multiclass_perceptron, logits_labels, ref.multiclass_perceptron, free=(0,)
    ),
    "perceptron": Case(jaxloss.perceptron, _scores_signs, ref.perceptron, free=(0,)),
    "poly_cross_entropy": Case(
        jaxloss.poly_cross_entropy,
        logits_labels,
        ref.poly_cross_entropy,
        kwargs={"epsilon": 1.5},
        hyperparameters={"epsilon": -0.5},
        free=(0,),
    ),
    # Poly-3 on probability targets, differentiated in the targets too.
    "poly_cross_entropy[probabilities]": Case(
        jaxloss.poly_cross_entropy,
        _logits_probabilities,
        ref.poly_cross_entropy,
        kwargs={"epsilon": np.array([1.0, -0.5, 0.25], np.float32)},
        differentiable=(0, 1),
        free=(0,),
    ),
}

# The torch and optax losses this family translates (tests/classification/peers.py and
# tests/classification/optax_peers.py).
PEERS = {**TORCH_PEERS, **OPTAX_PEERS}

NOT_LOSSES = {"smooth_labels": "tests/classification/test_optax_losses.py"}

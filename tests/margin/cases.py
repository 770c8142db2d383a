"""The margin losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import EMBEDDING_DIM, NUM_CLASSES
from tests._suite.peer import Peer
from tests.margin import reference as ref


def _embeddings_centers_labels(rng: np.random.Generator, batch: int) -> tuple:
    embeddings = rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32)
    centers = rng.normal(size=(NUM_CLASSES + 2, EMBEDDING_DIM)).astype(np.float32)
    return embeddings, centers, rng.integers(0, NUM_CLASSES + 2, size=batch).astype(np.int32)


def _margin_case(fn, reference, **kwargs) -> Case:
    return Case(
        fn,
        _embeddings_centers_labels,
        reference,
        kwargs=kwargs,
        differentiable=(0, 1),
        hyperparameters={"scale": 3.0} if "scale" in kwargs else {},
        batched=(0, 2),
    )


def _chunked(fn, reference, chunk_size, **kwargs) -> Case:
    """A chunked variant: ``chunk_size`` goes to ``fn`` only, and autodiff is reverse only."""

    def chunked_fn(*args, **options):
        return fn(*args, chunk_size=chunk_size, **options)

    return dataclasses.replace(_margin_case(chunked_fn, reference, **kwargs), grad_modes=("rev",))


CASES: dict[str, Case] = {
    "norm_softmax": dataclasses.replace(
        _margin_case(jaxloss.norm_softmax, ref.norm_softmax, scale=5.0),
        free=(0, 1),
        margin_head=True,
        class_labels=(2, 1),
    ),
    "cosface": dataclasses.replace(
        _margin_case(jaxloss.cosface, ref.cosface, scale=5.0, margin=0.3),
        free=(0, 1),
        margin_head=True,
        class_labels=(2, 1),
    ),
    # A margin large enough that some targets fall in InsightFace's fallback region.
    "arcface": dataclasses.replace(
        _margin_case(jaxloss.arcface, ref.arcface, scale=5.0, margin=1.2),
        free=(0, 1),
        margin_head=True,
        class_labels=(2, 1),
        invalid={"scale": 0.0},
    ),
    "combined_margin": dataclasses.replace(
        _margin_case(
            jaxloss.combined_margin, ref.combined_margin, scale=5.0, m1=1.1, m2=0.2, m3=0.1
        ),
        free=(0, 1),
        margin_head=True,
        class_labels=(2, 1),
    ),
    "sphereface": dataclasses.replace(
        _margin_case(jaxloss.sphereface, ref.sphereface, margin=3, lam=0.5),
        free=(0, 1),
        margin_head=True,
        class_labels=(2, 1),
        invalid={"lam": -1.0, "scale": -1.0},
    ),
    "linear_cross_entropy": Case(
        jaxloss.linear_cross_entropy,
        _embeddings_centers_labels,
        ref.linear_cross_entropy,
        differentiable=(0, 1),
        batched=(0, 2),
        free=(0, 1),
        class_labels=(2, 1),
        invalid={"label_smoothing": 1.5},
    ),
    # The chunked kernels, under the name of the loss and the path: with the shared suites'
    # 24 rows (3 on each of 8 devices) and 7 classes, chunk_size=4 takes the row-blocked
    # kernel (gradients in the forward pass), chunk_size=1 the class-blocked one (see
    # jaxloss.margin.linear._rows_per_block; tests/margin/test_margin.py's
    # test_linear_cross_entropy_path_selection checks both).
    "linear_cross_entropy[rows]": dataclasses.replace(
        _chunked(jaxloss.linear_cross_entropy, ref.linear_cross_entropy, chunk_size=4),
        free=(0, 1),
        class_labels=(2, 1),
    ),
    "linear_cross_entropy[classes]": dataclasses.replace(
        _chunked(jaxloss.linear_cross_entropy, ref.linear_cross_entropy, chunk_size=1),
        free=(0, 1),
        class_labels=(2, 1),
    ),
    "arcface[classes]": dataclasses.replace(
        _chunked(jaxloss.arcface, ref.arcface, chunk_size=3, scale=5.0, margin=1.2),
        free=(0, 1),
        margin_head=True,
        class_labels=(2, 1),
    ),
    "center_loss": Case(
        jaxloss.center_loss,
        _embeddings_centers_labels,
        ref.center_loss,
        differentiable=(0, 1),
        batched=(0, 2),
        free=(0, 1),
        class_labels=(2, 1),
    ),
}

ALIASES = {"am_softmax": "cosface"}

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {"center_update": "tests/margin/test_margin.py"}


def _grid(**choices) -> tuple[dict, ...]:
    """Every combination of the options' choices, as option dicts."""
    combinations = itertools.product(*choices.values())
    return tuple(dict(zip(choices, values, strict=True)) for values in combinations)


def _linear_head_inputs(rng) -> tuple:
    """Hidden states, a head of random size, labels (-100 first, excluded by jaxloss and
    ignored by torch's default; a 0 second, never ignored), bias, class weights and class
    probabilities."""
    batch, dim, vocab = (int(n) for n in rng.integers((4, 1, 2), (10, 6, 12)))
    labels = rng.integers(0, vocab, size=batch)
    labels[:2] = (-100, 0)
    arrays = (
        rng.normal(size=(batch, dim)),
        rng.normal(size=(vocab, dim)),
        labels,
        rng.normal(size=vocab),
        rng.uniform(0.2, 2.0, size=vocab),
        rng.dirichlet(np.ones(vocab), size=batch),
    )
    return tuple(a.astype(np.int32 if a is labels else np.float32) for a in arrays)


def _torch_linear_cross_entropy(
    hidden, weight, labels, bias, class_weights, probabilities, *, targets, **options
):
    """torch's ``linear_cross_entropy`` with the options' translation: ``with_bias``,
    ``weighted``, ``chunked`` (torch's chunked path), and integer ``targets`` or
    probabilities."""
    import torch

    ignore_index = options.pop("ignore_index", None)
    if targets == "labels":
        if ignore_index is not None:  # torch raises for -100 with another ignore_index
            labels = torch.where(labels == -100, ignore_index, labels)
        target = labels.long()
    else:
        target = probabilities
    return torch.nn.functional.linear_cross_entropy(
        hidden,
        weight,
        target,
        linear_bias=bias if options.pop("with_bias") else None,
        weight=class_weights if options.pop("weighted", False) else None,
        ignore_index=ignore_index,
        options=(
            torch.nn.LinearCrossEntropyOptions(batch_chunk_size=2, chunking_method=None)
            if options.pop("chunked", False)
            else None
        ),
        **options,
    )


def _ours_linear_cross_entropy(
    hidden, weight, labels, bias, class_weights, probabilities, *, targets, **options
):
    bias = bias if options.pop("with_bias") else None
    if targets == "labels" and not options.get("weighted"):
        chunk_size = 2 if options.pop("chunked") else None
        return jaxloss.linear_cross_entropy(
            hidden, weight, labels, bias=bias, chunk_size=chunk_size, **options
        )
    # torch's class weights and probability targets: cross_entropy on the logits.
    logits = hidden @ weight.T + (0 if bias is None else bias[None, :])
    weighted = options.pop("weighted")
    return jaxloss.cross_entropy(
        logits,
        labels if targets == "labels" else probabilities,
        class_weights=class_weights if weighted else None,
        **options,
    )


REDUCTIONS = ("none", "mean", "sum")

PEERS: dict[str, Peer] = {
    "torch:linear_cross_entropy": Peer(
        _torch_linear_cross_entropy,
        _ours_linear_cross_entropy,
        _linear_head_inputs,
        "linear_cross_entropy(hidden, weight, labels, bias=, ignore_index=, label_smoothing=, "
        "chunk_size=)",
        # torch's chunked path has no label smoothing (it falls back to the plain one).
        options=tuple(
            o
            for o in _grid(
                targets=("labels",),
                with_bias=(False, True),
                ignore_index=(None, 1),
                label_smoothing=(0.0, 0.1),
                chunked=(False, True),
                reduction=REDUCTIONS,
            )
            if not (o["chunked"] and o["label_smoothing"])
        ),
        differentiable=(0, 1),
    ),
    "torch:linear_cross_entropy[weight]": Peer(
        _torch_linear_cross_entropy,
        _ours_linear_cross_entropy,
        _linear_head_inputs,
        "cross_entropy(hidden @ weight.T + bias, labels, class_weights=)",
        options=_grid(
            targets=("labels",),
            weighted=(True,),
            with_bias=(False, True),
            ignore_index=(None, 1),
            label_smoothing=(0.0, 0.1),
            reduction=REDUCTIONS,
        ),
        differentiable=(0, 1),
    ),
    "torch:linear_cross_entropy[probabilities]": Peer(
        _torch_linear_cross_entropy,
        _ours_linear_cross_entropy,
        _linear_head_inputs,
        "cross_entropy(hidden @ weight.T + bias, probabilities, class_weights=)",
        options=_grid(
            targets=("probabilities",),
            weighted=(False, True),
            with_bias=(False, True),
            label_smoothing=(0.0, 0.1),
            reduction=REDUCTIONS,
        ),
        differentiable=(0, 1, 5),
    ),
}

"""The margin losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import dataclasses

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import EMBEDDING_DIM, NUM_CLASSES
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
    ),
    "linear_cross_entropy": Case(
        jaxloss.linear_cross_entropy,
        _embeddings_centers_labels,
        ref.linear_cross_entropy,
        differentiable=(0, 1),
        batched=(0, 2),
        free=(0, 1),
        class_labels=(2, 1),
    ),
    # The chunked kernels, under the name of the loss and the path: with 6 rows and 7
    # classes, chunk_size=3 takes the row-blocked kernel (gradients in the forward pass),
    # chunk_size=1 the class-blocked one (see jaxloss.margin.linear._rows_per_block).
    "linear_cross_entropy[rows]": dataclasses.replace(
        _chunked(jaxloss.linear_cross_entropy, ref.linear_cross_entropy, chunk_size=3),
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

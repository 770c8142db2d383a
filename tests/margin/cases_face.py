"""Sub-center ArcFace, MagFace and ElasticFace as the shared suites see them.

None is a ``margin_head`` Case: Sub-center ArcFace's centers are ``[num_classes, K, dim]``,
MagFace depends on the embeddings' norm, and ElasticFace's draw depends on each row's index
in the batch. ``tests/margin/test_face.py`` gives them the margin heads' family tests.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import EMBEDDING_DIM, NUM_CLASSES
from tests._suite.peer import Peer
from tests.margin import reference_face as ref
from tests.margin.cases import _chunked, _margin_case

SUB_CENTERS = 3
# A raw PRNG key (uint32[2]): a NumPy array, as the suites' options are.
KEY = np.array([0, 7], np.uint32)


def _subcenter_inputs(rng: np.random.Generator, batch: int) -> tuple:
    embeddings = rng.normal(size=(batch, EMBEDDING_DIM)).astype(np.float32)
    centers = rng.normal(size=(NUM_CLASSES + 2, SUB_CENTERS, EMBEDDING_DIM)).astype(np.float32)
    return embeddings, centers, rng.integers(0, NUM_CLASSES + 2, size=batch).astype(np.int32)


def _face_case(fn, reference, make_inputs=None, chunk_size=None, **kwargs) -> Case:
    case = (
        _margin_case(fn, reference, **kwargs)
        if chunk_size is None
        else _chunked(fn, reference, chunk_size, **kwargs)
    )
    changes = {"free": (0, 1), "class_labels": (2, 1)}
    if make_inputs is not None:
        # Not class_labels: the 8-device Partial FC suite draws [num_classes, dim] centers.
        # Its labels are all classes; test_face.py runs it class-sharded and Partial FC.
        changes.update(make_inputs=make_inputs, class_labels=None)
    return dataclasses.replace(case, **changes)


def _elastic_case(chunk_size=None, **kwargs) -> Case:
    # Margins are drawn by batch index: dropping rows redraws them (rows_independent
    # False), and the centers' gradient with rows masked is not the one with them dropped,
    # which the common suite compares for a non-batched input: the centers' gradients
    # are checked in test_face.py.
    case = _face_case(
        jaxloss.elasticface, ref.elasticface, chunk_size=chunk_size, key=KEY, scale=5.0, **kwargs
    )
    return dataclasses.replace(case, rows_independent=False, differentiable=(0,))


# Margins large enough that some targets fall in ArcFace's fallback region (θ + m > π).
SUBCENTER = {"scale": 5.0, "margin": 1.2}
# Norms of 4-dim normal rows (about 0.5 to 4) span the clipped range [1, 3].
MAGFACE = {
    "scale": 5.0,
    "lower_norm": 1.0,
    "upper_norm": 3.0,
    "lower_margin": 0.3,
    "upper_margin": 1.4,
    "reg_weight": 2.0,
}

# Chunked: Sub-center ArcFace alone takes the class-block kernel; MagFace and ElasticFace
# take the margin heads' kernel (arcface[classes]), chunked in test_face.py.
CASES: dict[str, Case] = {
    "subcenter_arcface": _face_case(
        jaxloss.subcenter_arcface, ref.subcenter_arcface, _subcenter_inputs, **SUBCENTER
    ),
    "subcenter_arcface[classes]": _face_case(
        jaxloss.subcenter_arcface,
        ref.subcenter_arcface,
        _subcenter_inputs,
        chunk_size=3,
        **SUBCENTER,
    ),
    "magface": dataclasses.replace(
        _face_case(jaxloss.magface, ref.magface, **MAGFACE),
        invalid={"upper_norm": 0.5, "reg_weight": -1.0},
    ),
    "elasticface": dataclasses.replace(
        _elastic_case(margin=0.8, sigma=0.4), invalid={"sigma": -0.1}
    ),
    "elasticface[cos,plus]": _elastic_case(kind="cos", plus=True, margin=0.3, sigma=0.2),
}


def _pml_inputs(rng: np.random.Generator) -> tuple:
    batch, dim, classes, sub_centers = (int(n) for n in rng.integers((3, 2, 2, 1), (10, 7, 9, 4)))
    embeddings = rng.normal(size=(batch, dim)).astype(np.float32)
    centers = rng.normal(size=(classes, sub_centers, dim)).astype(np.float32)
    return embeddings, centers, rng.integers(0, classes, size=batch).astype(np.int32)


def _pml_subcenter_arcface(embeddings, centers, labels, **options):
    """PML's loss with our ``[C, K, D]`` centers as its ``W [D, C·K]`` (class-major: column
    ``j·K + k`` is sub-center k of class j), so autograd reaches them."""
    from pytorch_metric_learning import losses

    classes, sub_centers, dim = centers.shape
    loss = losses.SubCenterArcFaceLoss(
        num_classes=classes, embedding_size=dim, sub_centers=sub_centers, **options
    )
    del loss.W
    loss.W = centers.reshape(classes * sub_centers, dim).T
    loss.cast_types = lambda dtype, device: None  # it would reassign .data
    return loss(embeddings, labels)


def _ours_subcenter_arcface(embeddings, centers, labels, *, margin, scale):
    return jaxloss.subcenter_arcface(
        embeddings, centers, labels, scale=scale, margin=np.radians(margin)
    )


PEERS: dict[str, Peer] = {
    # 75°: rows past θ = 105° take both libraries' fallback cos θ − m sin m.
    "pml:SubCenterArcFaceLoss": Peer(
        _pml_subcenter_arcface,
        _ours_subcenter_arcface,
        _pml_inputs,
        "subcenter_arcface(embeddings, W.T.reshape(num_classes, sub_centers, -1), labels, "
        "scale=scale, margin=np.radians(margin))",
        options=tuple(
            {"margin": m, "scale": s} for m, s in itertools.product((28.6, 75.0), (64.0, 4.0))
        ),
        differentiable=(0, 1),
    ),
}

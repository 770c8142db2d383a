"""pytorch-metric-learning's margin softmax losses and their jaxloss translations (``PEERS``
keyed ``"pml:<ClassName>"``, checked by ``tests/_suite/test_catalogues.py``).

PML's heads own their class weights ``W [dim, num_classes]``: each peer below builds the
loss and puts the transpose of the ``centers`` input in its place, so autograd reaches it.
"""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.peer import Peer, pml_reducer


def _embeddings_weights_labels(rng: np.random.Generator) -> tuple:
    batch, dim, classes = rng.integers(3, 9), rng.integers(2, 6), rng.integers(2, 7)
    embeddings = rng.normal(size=(batch, dim)).astype(np.float32)
    centers = rng.normal(size=(classes, dim)).astype(np.float32)
    return embeddings, centers, rng.integers(0, classes, size=batch).astype(np.int32)


def _pml_head(name: str):
    """The PML loss ``name`` with ``centers [num_classes, dim]`` as its weights."""

    def peer(embeddings, centers, labels, *, reduction="mean", **options):
        from pytorch_metric_learning import losses

        num_classes, dim = centers.shape
        loss = getattr(losses, name)(num_classes, dim, reducer=pml_reducer(reduction), **options)
        del loss.W  # a Parameter [dim, num_classes]: the input in its place
        loss.W = centers.T
        out = loss(embeddings, labels)
        # DoNothingReducer returns PML's loss dictionary: the per-row losses are in it.
        return out["loss"]["losses"] if reduction == "none" else out

    return peer


def _arcface(embeddings, centers, labels, *, margin=28.6, scale=64.0, reduction="mean"):
    margin = np.radians(margin)  # PML's margin is in degrees
    return jaxloss.arcface(
        embeddings, centers, labels, scale=scale, margin=margin, reduction=reduction
    )


def _cosface(embeddings, centers, labels, *, margin=0.35, scale=64.0, reduction="mean"):
    return jaxloss.cosface(
        embeddings, centers, labels, scale=scale, margin=margin, reduction=reduction
    )


def _norm_softmax(embeddings, centers, labels, *, temperature=0.05, reduction="mean"):
    return jaxloss.norm_softmax(
        embeddings, centers, labels, scale=1 / temperature, reduction=reduction
    )


def _sphereface(embeddings, centers, labels, *, margin=4, scale=1.0, reduction="mean"):
    # PML scales the logits by scale·‖x‖: jaxloss's ‖x‖ (scale=None) of scale·x.
    return jaxloss.sphereface(
        scale * embeddings, centers, labels, margin=margin, reduction=reduction
    )


def _head(name: str, ours, spelling: str, *options: dict) -> Peer:
    return Peer(
        _pml_head(name),
        ours,
        _embeddings_weights_labels,
        spelling,
        options=options,
        differentiable=(0, 1),
    )


PEERS: dict[str, Peer] = {
    # PML's defaults first; margins up to 80° put many targets past θ + m = π, in the
    # fallback PML and jaxloss share.
    "pml:ArcFaceLoss": _head(
        "ArcFaceLoss",
        _arcface,
        "arcface(embeddings, W.T, labels, scale=scale, margin=np.radians(margin))",
        {},
        {"scale": 4.0},
        {"margin": 10.0, "scale": 8.0, "reduction": "none"},
        {"margin": 80.0, "scale": 2.0, "reduction": "sum"},
    ),
    "pml:CosFaceLoss": _head(
        "CosFaceLoss",
        _cosface,
        "cosface(embeddings, W.T, labels, scale=scale, margin=margin)",
        {},
        {"scale": 4.0},
        {"margin": 0.1, "scale": 8.0, "reduction": "none"},
        {"margin": 0.6, "scale": 2.0, "reduction": "sum"},
    ),
    "pml:NormalizedSoftmaxLoss": _head(
        "NormalizedSoftmaxLoss",
        _norm_softmax,
        "norm_softmax(embeddings, W.T, labels, scale=1 / temperature)",
        {},
        {"temperature": 1.0, "reduction": "none"},
        {"temperature": 0.1, "reduction": "sum"},
    ),
    # margin=1 is NormFace with the embeddings' norms as the scale.
    "pml:SphereFaceLoss": _head(
        "SphereFaceLoss",
        _sphereface,
        "sphereface(scale * embeddings, W.T, labels, margin=margin)",
        {},
        {"margin": 1, "reduction": "none"},
        {"margin": 2, "scale": 0.5, "reduction": "sum"},
        {"margin": 3, "scale": 2.0},
    ),
}

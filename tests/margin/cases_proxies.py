"""The proxy losses as the shared suites see them, and their pytorch-metric-learning peers.

``proxy_anchor`` is a sum over proxies, not over examples: its ``"none"`` is per proxy
(``[num_classes]``) while ``where`` masks rows (``Case.per_class_none``), and its mean is
PML's (positive terms over the proxies with a positive, negative terms over all).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import EMBEDDING_DIM, NUM_CLASSES
from tests._suite.peer import Peer
from tests.margin import reference_proxies as ref
from tests.margin.cases import _chunked, _embeddings_centers_labels, _margin_case

SUB_CENTERS = 3


def _embeddings_sub_centers_labels(rng: np.random.Generator, batch: int) -> tuple:
    embeddings, _, labels = _embeddings_centers_labels(rng, batch)
    shape = (NUM_CLASSES + 2, SUB_CENTERS, EMBEDDING_DIM)
    return embeddings, rng.normal(size=shape).astype(np.float32), labels


SOFT_TRIPLE = {"scale": 8.0, "gamma": 0.5, "margin": 0.1, "reg_weight": 0.3}


def _soft_triple_case(fn) -> Case:
    return dataclasses.replace(
        _margin_case(fn, ref.soft_triple, **SOFT_TRIPLE),
        make_inputs=_embeddings_sub_centers_labels,
        free=(0, 1),
    )


PROXY_ANCHOR = {"margin": 0.2, "alpha": 8.0}


def _proxy_anchor_case(case: Case) -> Case:
    return dataclasses.replace(
        case,
        hyperparameters={"alpha": 4.0},
        reference_mean=lambda none, *inputs, **options: ref.proxy_anchor_mean(*inputs, **options),
        free=(0, 1),
        class_labels=(2, 1),
        per_class_none=True,
    )


CASES: dict[str, Case] = {
    "proxy_anchor": dataclasses.replace(
        _proxy_anchor_case(_margin_case(jaxloss.proxy_anchor, ref.proxy_anchor, **PROXY_ANCHOR)),
        invalid={"alpha": 0.0},
    ),
    # 7 classes in blocks of 3: the last block overlaps the one before.
    "proxy_anchor[classes]": _proxy_anchor_case(
        _chunked(jaxloss.proxy_anchor, ref.proxy_anchor, chunk_size=3, **PROXY_ANCHOR)
    ),
    "proxy_nca": dataclasses.replace(
        _margin_case(jaxloss.proxy_nca, ref.proxy_nca, scale=2.0),
        free=(0, 1),
        class_labels=(2, 1),
        invalid={"scale": -1.0},
    ),
    # 7 classes in blocks of 3: the last block overlaps the one before.
    "soft_triple": dataclasses.replace(
        _soft_triple_case(jaxloss.soft_triple),
        invalid={"scale": 0.0, "gamma": 0.0, "reg_weight": -1.0},
    ),
    "soft_triple[classes]": dataclasses.replace(
        _soft_triple_case(jaxloss.soft_triple),
        fn=lambda *args, **options: jaxloss.soft_triple(*args, chunk_size=3, **options),
        grad_modes=("rev",),
    ),
}


def _grid(**choices) -> tuple[dict, ...]:
    combinations = itertools.product(*choices.values())
    return tuple(dict(zip(choices, values, strict=True)) for values in combinations)


def _proxy_inputs(rng: np.random.Generator) -> tuple:
    """A batch, proxies and labels of random sizes; more classes than rows at times, so
    some proxies have no positive."""
    batch, dim, classes = (int(n) for n in rng.integers((3, 2, 2), (10, 6, 9)))
    return (
        rng.normal(size=(batch, dim)).astype(np.float32),
        rng.normal(size=(classes, dim)).astype(np.float32),
        rng.integers(0, classes, size=batch).astype(np.int32),
    )


def _sub_center_inputs(rng: np.random.Generator) -> tuple:
    embeddings, proxies, labels = _proxy_inputs(rng)
    per_class = int(rng.integers(1, 4))
    centers = rng.normal(size=(*proxies.shape[:1], per_class, proxies.shape[1]))
    return embeddings, centers.astype(np.float32), labels


def _pml(name: str, weight: str, weights_of=lambda w: w, **kwargs):
    """PML's loss ``name`` built with its defaults and ``kwargs``, with our weights tensor in
    place of its parameter ``weight`` (so autograd reaches them), called on the batch."""

    def peer(embeddings, centers, labels, **options):
        from pytorch_metric_learning import losses

        classes = centers.shape[0]
        shape = {"centers_per_class": centers.shape[1]} if centers.ndim == 3 else {}
        loss = getattr(losses, name)(classes, embeddings.shape[1], **shape, **options)
        delattr(loss, weight)
        setattr(loss, weight, weights_of(centers))
        loss.cast_types = lambda dtype, device: None  # it would reassign .data
        return loss(embeddings, labels)

    return peer


def _ours_soft_triple(embeddings, centers, labels, *, la, **options):
    return jaxloss.soft_triple(embeddings, centers, labels, scale=la, reg_weight=0.0, **options)


PEERS: dict[str, Peer] = {
    "pml:ProxyNCALoss": Peer(
        _pml("ProxyNCALoss", "proxies"),
        lambda x, p, y, *, softmax_scale: jaxloss.proxy_nca(x, p, y, scale=softmax_scale),
        _proxy_inputs,
        "proxy_nca(embeddings, proxies, labels, scale=softmax_scale)",
        options=_grid(softmax_scale=(1.0, 3.0)),
        differentiable=(0, 1),
    ),
    "pml:ProxyAnchorLoss": Peer(
        _pml("ProxyAnchorLoss", "proxies"),
        jaxloss.proxy_anchor,
        _proxy_inputs,
        "proxy_anchor(embeddings, proxies, labels, margin=margin, alpha=alpha)",
        options=_grid(margin=(0.1, 0.4), alpha=(32.0, 4.0)),
        differentiable=(0, 1),
    ),
    "pml:SoftTripleLoss": Peer(
        _pml(
            "SoftTripleLoss",
            "fc",
            lambda centers: centers.reshape(-1, centers.shape[-1]).T,
        ),
        _ours_soft_triple,
        _sub_center_inputs,
        "soft_triple(embeddings, fc.T.reshape(num_classes, centers_per_class, -1), labels, "
        "scale=la, gamma=gamma, margin=margin, reg_weight=0)",
        options=(
            {"la": 20.0, "gamma": 0.1, "margin": 0.01},
            {"la": 5.0, "gamma": 0.5, "margin": 0.2},
        ),
        differentiable=(0, 1),
    ),
}

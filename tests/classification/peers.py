"""The torch classification losses and their jaxloss translations (``PEERS`` of
``tests/classification/cases.py``; see ``tests/_suite/peer.py``).

Inputs are drawn in jaxloss's layout (classes last); torch's functions get the class axis
at dim 1 (``_classes_second``). Class weights and the like travel as inputs (an option names
whether to use them), integer labels are cast to torch's ``long`` in ``peer``.
"""

from __future__ import annotations

import itertools

import numpy as np

import jaxloss
from tests._suite.peer import Peer

REDUCTIONS = ("none", "mean", "sum")


def _grid(**choices) -> tuple[dict, ...]:
    """Every combination of the options' choices, as option dicts."""
    combinations = itertools.product(*choices.values())
    return tuple(dict(zip(choices, values, strict=True)) for values in combinations)


def _classes_second(x):
    """A classes-last tensor with its class axis at dim 1, torch's layout (rank > 2)."""
    import torch

    return torch.movedim(x, -1, 1) if x.ndim > 2 else x


def _batch_shape(rng, max_rank: int = 2) -> tuple[int, ...]:
    """Random batch dims, at least 4 entries in all (a masked mean never empties)."""
    rank = int(rng.integers(1, max_rank + 1))
    while True:
        shape = tuple(int(n) for n in rng.integers(1, 6, size=rank))
        if np.prod(shape) >= 4:
            return shape


def _labels(rng, batch: tuple[int, ...], num_classes: int) -> np.ndarray:
    """Class ids with -100 (torch's default ignore_index; out of range, so excluded by
    jaxloss) first and a 0 (never ignored by the options below, which ignore class 1)
    second."""
    labels = rng.integers(0, num_classes, size=batch)
    labels.reshape(-1)[:2] = (-100, 0)
    return labels.astype(np.int32)


def _logits_labels_weights(rng) -> tuple:
    batch, num_classes = _batch_shape(rng), int(rng.integers(2, 8))
    logits = 3 * rng.normal(size=(*batch, num_classes))
    weights = rng.uniform(0.2, 2.0, size=num_classes)
    return (
        logits.astype(np.float32),
        _labels(rng, batch, num_classes),
        weights.astype(np.float32),
    )


def _logits_probabilities_weights(rng) -> tuple:
    batch, num_classes = _batch_shape(rng), int(rng.integers(2, 8))
    logits = 3 * rng.normal(size=(*batch, num_classes))
    targets = rng.dirichlet(np.ones(num_classes), size=batch)
    weights = rng.uniform(0.2, 2.0, size=num_classes)
    return tuple(a.astype(np.float32) for a in (logits, targets, weights))


def _logprobs_labels_weights(rng) -> tuple:
    logits, labels, weights = _logits_labels_weights(rng)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logprobs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return logprobs.astype(np.float32), labels, weights


def _elementwise(rng, *, probs: bool, signs: bool = False) -> tuple:
    """Scores (probabilities or logits), targets, per-element weights of the trailing
    shape, and a pos_weight of the last axis."""
    shape = _batch_shape(rng, max_rank=3)
    scores = rng.uniform(0.02, 0.98, size=shape) if probs else 3 * rng.normal(size=shape)
    targets = rng.choice([-1.0, 1.0], size=shape) if signs else rng.uniform(size=shape)
    weights = rng.uniform(0.2, 2.0, size=shape[1:])
    pos_weight = rng.uniform(0.5, 3.0, size=shape[-1:])
    return tuple(a.astype(np.float32) for a in (scores, targets, weights, pos_weight))


def _torch_labels(labels, ignore_index):
    """torch's labels and ignore_index: with another ignore_index torch raises for -100,
    which jaxloss excludes as out of range; there it becomes the ignored class."""
    import torch

    if ignore_index is None:
        return labels.long(), -100
    return torch.where(labels == -100, ignore_index, labels).long(), ignore_index


def _cross_entropy_labels(logits, labels, weights, *, weighted, ignore_index, **options):
    import torch.nn.functional as F

    labels, ignore_index = _torch_labels(labels, ignore_index)
    return F.cross_entropy(
        _classes_second(logits),
        labels,
        weight=weights if weighted else None,
        ignore_index=ignore_index,
        **options,
    )


def _cross_entropy_probabilities(logits, targets, weights, *, weighted, **options):
    import torch.nn.functional as F

    return F.cross_entropy(
        _classes_second(logits),
        _classes_second(targets),
        weight=weights if weighted else None,
        **options,
    )


def _nll(logprobs, labels, weights, *, weighted, ignore_index, **options):
    import torch.nn.functional as F

    labels, ignore_index = _torch_labels(labels, ignore_index)
    return F.nll_loss(
        _classes_second(logprobs),
        labels,
        weight=weights if weighted else None,
        ignore_index=ignore_index,
        **options,
    )


def _bce(probs, targets, weights, pos_weight, *, weighted, **options):
    import torch.nn.functional as F

    return F.binary_cross_entropy(probs, targets, weight=weights if weighted else None, **options)


def _bce_with_logits(logits, targets, weights, pos_weight, *, weighted, pos_weighted, **options):
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(
        logits,
        targets,
        weight=weights if weighted else None,
        pos_weight=pos_weight if pos_weighted else None,
        **options,
    )


def _torch(name: str):
    """``torch.nn.functional.<name>`` with integer inputs as ``long``."""

    def peer(*inputs, **options):
        import torch

        inputs = [x.long() if not torch.is_floating_point(x) else x for x in inputs]
        return getattr(torch.nn.functional, name)(*inputs, **options)

    return peer


def _rows_of_classes(rng) -> tuple[int, ...]:
    """torch's margin losses take ``[C]`` or ``[N, C]``."""
    return () if rng.uniform() < 0.2 else (int(rng.integers(1, 9)),)


def _multi_margin_inputs(rng) -> tuple:
    batch, num_classes = _rows_of_classes(rng), int(rng.integers(2, 8))
    logits = rng.normal(size=(*batch, num_classes))
    labels = rng.integers(0, num_classes, size=batch)
    weights = rng.uniform(0.2, 2.0, size=num_classes)
    return logits.astype(np.float32), labels.astype(np.int32), weights.astype(np.float32)


def _multi_margin_torch(logits, labels, weights, *, weighted, **options):
    import torch.nn.functional as F

    weight = weights if weighted else None
    return F.multi_margin_loss(logits, labels.long(), weight=weight, **options)


def _multilabel_inputs(rng) -> tuple:
    """torch's target lists: each row some class ids (repeats allowed), then -1, then class
    ids or -1 that torch must not read."""
    batch, num_classes = _rows_of_classes(rng), int(rng.integers(2, 8))
    logits = rng.normal(size=(*batch, num_classes))
    targets = rng.integers(-1, num_classes, size=(*batch, num_classes)).reshape(-1, num_classes)
    for row in targets:
        length = int(rng.integers(0, num_classes + 1))
        row[:length] = rng.integers(0, num_classes, size=length)
        row[length : length + 1] = -1
    return logits.astype(np.float32), targets.reshape(*batch, num_classes).astype(np.int32)


def _multilabel_soft_inputs(rng) -> tuple:
    batch, num_classes = _rows_of_classes(rng), int(rng.integers(1, 8))
    logits = 3 * rng.normal(size=(*batch, num_classes))
    targets = (rng.uniform(size=(*batch, num_classes)) < 0.4).astype(np.float64)
    weights = rng.uniform(0.2, 2.0, size=num_classes)
    return tuple(a.astype(np.float32) for a in (logits, targets, weights))


def _hinge_embedding_inputs(rng) -> tuple:
    """Distances (and a few negative inputs, accepted by both) against targets that are
    mostly ±1, and some 0 and 2 (torch adds both terms for those)."""
    shape = _batch_shape(rng, max_rank=3)
    inputs = np.abs(2 * rng.normal(size=shape)) - 0.3
    targets = rng.choice([-1.0, 1.0, 0.0, 2.0], p=[0.4, 0.4, 0.1, 0.1], size=shape)
    return inputs.astype(np.float32), targets.astype(np.float32)


PEERS: dict[str, Peer] = {
    "torch:cross_entropy": Peer(
        _cross_entropy_labels,
        lambda x, y, w, *, weighted, **o: jaxloss.cross_entropy(
            x, y, class_weights=w if weighted else None, **o
        ),
        _logits_labels_weights,
        "cross_entropy(logits, labels, class_weights=, ignore_index=, label_smoothing=)",
        options=_grid(
            weighted=(False, True),
            ignore_index=(None, 1),
            label_smoothing=(0.0, 0.2),
            reduction=REDUCTIONS,
        ),
    ),
    "torch:cross_entropy[probabilities]": Peer(
        _cross_entropy_probabilities,
        lambda x, t, w, *, weighted, **o: jaxloss.cross_entropy(
            x, t, class_weights=w if weighted else None, **o
        ),
        _logits_probabilities_weights,
        "cross_entropy(logits, probabilities, class_weights=, label_smoothing=)",
        options=_grid(weighted=(False, True), label_smoothing=(0.0, 0.2), reduction=REDUCTIONS),
        differentiable=(0, 1),
    ),
    "torch:nll_loss": Peer(
        _nll,
        lambda x, y, w, *, weighted, **o: jaxloss.nll(
            x, y, class_weights=w if weighted else None, **o
        ),
        _logprobs_labels_weights,
        "nll(logprobs, labels, class_weights=, ignore_index=)",
        options=_grid(weighted=(False, True), ignore_index=(None, 1), reduction=REDUCTIONS),
    ),
    "torch:binary_cross_entropy": Peer(
        _bce,
        lambda p, t, w, _, *, weighted, **o: jaxloss.binary_cross_entropy(
            p, t, weights=w if weighted else None, **o
        ),
        lambda rng: _elementwise(rng, probs=True),
        "binary_cross_entropy(probs, targets, weights=)",
        options=_grid(weighted=(False, True), reduction=REDUCTIONS),
        differentiable=(0, 1),
    ),
    "torch:binary_cross_entropy_with_logits": Peer(
        _bce_with_logits,
        lambda x, t, w, pw, *, weighted, pos_weighted, **o: (
            jaxloss.binary_cross_entropy_with_logits(
                x,
                t,
                weights=w if weighted else None,
                pos_weight=pw if pos_weighted else None,
                **o,
            )
        ),
        lambda rng: _elementwise(rng, probs=False),
        "binary_cross_entropy_with_logits(logits, targets, weights=, pos_weight=)",
        options=_grid(weighted=(False, True), pos_weighted=(False, True), reduction=REDUCTIONS),
        differentiable=(0, 1),
    ),
    "torch:soft_margin_loss": Peer(
        _torch("soft_margin_loss"),
        jaxloss.soft_margin,
        lambda rng: _elementwise(rng, probs=False, signs=True)[:2],
        "soft_margin(logits, targets)",
        options=_grid(reduction=REDUCTIONS),
    ),
    "torch:multi_margin_loss": Peer(
        _multi_margin_torch,
        lambda x, y, w, *, weighted, **o: jaxloss.multi_margin(
            x, y, class_weights=w if weighted else None, **o
        ),
        _multi_margin_inputs,
        "multi_margin(logits, labels, p=, margin=, class_weights=)",
        options=_grid(p=(1, 2), margin=(1.0, 0.4), weighted=(False, True), reduction=REDUCTIONS),
    ),
    "torch:multilabel_margin_loss": Peer(
        _torch("multilabel_margin_loss"),
        jaxloss.multilabel_margin,
        _multilabel_inputs,
        "multilabel_margin(logits, targets)",
        options=_grid(reduction=REDUCTIONS),
    ),
    "torch:multilabel_soft_margin_loss": Peer(
        lambda x, t, w, *, weighted, **o: _torch("multilabel_soft_margin_loss")(
            x, t, weight=w if weighted else None, **o
        ),
        lambda x, t, w, *, weighted, **o: jaxloss.multilabel_soft_margin(
            x, t, class_weights=w if weighted else None, **o
        ),
        _multilabel_soft_inputs,
        "multilabel_soft_margin(logits, targets, class_weights=)",
        options=_grid(weighted=(False, True), reduction=REDUCTIONS),
        differentiable=(0, 1),
    ),
    "torch:hinge_embedding_loss": Peer(
        _torch("hinge_embedding_loss"),
        jaxloss.hinge_embedding,
        _hinge_embedding_inputs,
        "hinge_embedding(inputs, targets, margin=)",
        options=_grid(margin=(1.0, 0.5), reduction=REDUCTIONS),
    ),
}

"""torch's margin losses per sample, in float64: the oracles API.md names for ``multi_margin``,
``multilabel_margin``, ``multilabel_soft_margin`` and ``hinge_embedding``.

Each returns the ``reduction="none"`` values as NumPy. Where jaxloss accepts inputs torch
rejects (labels outside the classes, anything after a target list's end), the oracle gives
torch only what it accepts and applies jaxloss's documented rule itself.
"""

from __future__ import annotations

import numpy as np


def _float(x):
    import torch

    return torch.tensor(np.asarray(x), dtype=torch.float64)


def _long(x):
    import torch

    return torch.tensor(np.asarray(x, np.int64))


def _functional():
    """``torch.nn.functional``, imported only when an oracle runs (the registry imports
    this module in every test process)."""
    import torch.nn.functional as F

    return F


def multi_margin(logits, labels, p=1, margin=1.0, class_weights=None, ignore_index=None):
    """Labels outside the classes, or equal to ``ignore_index``, give 0 (torch raises)."""
    labels = np.asarray(labels, np.int64)
    num_classes = np.shape(logits)[-1]
    counted = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None:
        counted &= labels != ignore_index
    weight = None if class_weights is None else _float(class_weights)
    loss = (
        _functional()
        .multi_margin_loss(
            _float(logits),
            _long(np.where(counted, labels, 0)),
            p=p,
            margin=float(margin),
            weight=weight,
            reduction="none",
        )
        .numpy()
    )
    return np.where(counted, loss, 0.0)


def torch_targets(targets, num_classes: int) -> np.ndarray:
    """Target lists as torch requires them: everything from the first negative entry on
    set to -1 (torch reads nothing there but rejects any other value)."""
    targets = np.asarray(targets, np.int64)
    ended = np.cumsum(targets < 0, axis=-1) > 0
    assert np.all(targets[~ended] < num_classes), "listed ids must be classes for torch"
    return np.where(ended, -1, targets)


def multilabel_margin(logits, targets):
    num_classes = np.shape(logits)[-1]
    return (
        _functional()
        .multilabel_margin_loss(
            _float(logits), _long(torch_targets(targets, num_classes)), reduction="none"
        )
        .numpy()
    )


def multilabel_soft_margin(logits, targets, class_weights=None):
    weight = None if class_weights is None else _float(class_weights)
    return (
        _functional()
        .multilabel_soft_margin_loss(
            _float(logits), _float(targets), weight=weight, reduction="none"
        )
        .numpy()
    )


def hinge_embedding(inputs, targets, margin=1.0):
    return (
        _functional()
        .hinge_embedding_loss(
            _float(inputs), _float(targets), margin=float(margin), reduction="none"
        )
        .numpy()
    )

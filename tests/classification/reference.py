"""Float64 NumPy references of the classification losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64
from tests._suite.numpy_reference import log_softmax, sigmoid


def _pick(values, labels):
    return np.take_along_axis(values, np.asarray(labels)[..., None], axis=-1)[..., 0]


def cross_entropy(logits, labels):
    return -_pick(log_softmax(logits), labels)


def nll(log_probs, labels):
    return -_pick(np.asarray(log_probs, np.float64), labels)


def binary_cross_entropy(probs, targets):
    p, t = _f64(probs, targets)
    with np.errstate(divide="ignore"):
        return -(t * np.maximum(np.log(p), -100) + (1 - t) * np.maximum(np.log(1 - p), -100))


def binary_cross_entropy_with_logits(logits, targets, pos_weight=1.0):
    x, t = _f64(logits, targets)
    # log σ(x) = -log(1 + e^{-x}), written with logaddexp for large |x|.
    log_sig, log_one_minus_sig = -np.logaddexp(0, -x), -np.logaddexp(0, x)
    return -(pos_weight * t * log_sig + (1 - t) * log_one_minus_sig)


def sigmoid_focal(logits, targets, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss, transcribed."""
    x, t = _f64(logits, targets)
    p = sigmoid(x)
    ce = binary_cross_entropy_with_logits(x, t)
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


def softmax_focal(logits, labels, gamma=2.0, alpha=None):
    log_p = _pick(log_softmax(logits), labels)
    loss = -((1 - np.exp(log_p)) ** gamma) * log_p
    if alpha is not None:
        loss = np.asarray(alpha, np.float64)[np.asarray(labels)] * loss
    return loss

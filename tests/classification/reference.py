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


def poly_cross_entropy(logits, labels, epsilon=2.0):
    """Leng et al. 2022: −log p_t + Σ_j ε_j (1 − p_t)^j; probability targets: optax's
    −Σ t log p and 1 − p_t = Σ t (1 − p)."""
    log_p = log_softmax(logits)
    labels = np.asarray(labels)
    if np.issubdtype(labels.dtype, np.floating):
        t = np.asarray(labels, np.float64)
        cross_entropy = -np.sum(np.where(t == 0, 0.0, t * log_p), axis=-1)
        one_minus_pt = np.sum(t * (1 - np.exp(log_p)), axis=-1)
    else:
        cross_entropy = -_pick(log_p, labels)
        one_minus_pt = 1 - np.exp(-cross_entropy)
    coefficients = np.atleast_1d(np.asarray(epsilon, np.float64))
    powers = one_minus_pt[..., None] ** np.arange(1, len(coefficients) + 1)
    return cross_entropy + powers @ coefficients


def multiclass_hinge(scores, labels, margin=1.0):
    """Crammer and Singer 2001: max_c (s_c + m [c ≠ y]) − s_y."""
    s = np.asarray(scores, np.float64)
    not_label = np.arange(s.shape[-1]) != np.asarray(labels)[..., None]
    return np.max(s + margin * not_label, axis=-1) - _pick(s, labels)


def multiclass_perceptron(scores, labels):
    s = np.asarray(scores, np.float64)
    return np.max(s, axis=-1) - _pick(s, labels)


def hinge(scores, targets, margin=1.0):
    s, y = _f64(scores, targets)
    return np.maximum(0.0, margin - y * s)


def perceptron(scores, targets):
    s, y = _f64(scores, targets)
    return np.maximum(0.0, -y * s)

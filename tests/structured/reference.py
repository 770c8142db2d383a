"""Float64 NumPy references of the structured losses, from the papers' formulas.

Each loss returns the per-example (``reduction="none"``) values; see
``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64


def sparsemax_threshold(z):
    """τ of Martins & Astudillo 2016, Algorithm 1: sort, then the largest k with
    1 + k z_(k) > Σ_{j ≤ k} z_(j); over the last axis, ``[..., 1]``."""
    z = np.asarray(z, np.float64)
    ordered = -np.sort(-z, axis=-1)
    cumulative = np.cumsum(ordered, axis=-1)
    k = np.arange(1, z.shape[-1] + 1)
    with np.errstate(invalid="ignore"):  # -inf - -inf past the support
        in_support = 1 + k * ordered > cumulative
    size = np.sum(in_support, axis=-1, keepdims=True)
    return (np.take_along_axis(cumulative, size - 1, axis=-1) - 1) / size


def sparsemax(logits, axis=-1):
    z = np.moveaxis(np.asarray(logits, np.float64), axis, -1)
    return np.moveaxis(np.maximum(z - sparsemax_threshold(z), 0), -1, axis)


def _sparse_plus(x):
    return np.where(x <= -1, 0.0, np.where(x >= 1, x, (x + 1) ** 2 / 4))


def sparsemax_loss(logits, labels):
    """Blondel et al. 2020, Sec. 4.4: Ω*(x) − x y + Ω(y) with Ω*(x) = sparse_plus(x) and
    Ω(y) = y² − y (0 for labels in {0, 1})."""
    x, y = _f64(logits, labels)
    return _sparse_plus(x) - x * y + y**2 - y


def multiclass_sparsemax_loss(logits, labels):
    """Martins & Astudillo 2016, Eq. 19: −z_k + ½ Σ_{j ∈ S(z)} (z_j² − τ²) + ½; labels
    outside ``[0, num_classes)`` give 0."""
    z = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    valid = (labels >= 0) & (labels < z.shape[-1])
    tau = sparsemax_threshold(z)
    support = z > tau
    squares = np.where(support, z**2 - tau**2, 0.0).sum(-1)
    label_logit = np.take_along_axis(z, np.where(valid, labels, 0)[..., None], -1)[..., 0]
    return np.where(valid, 0.5 * squares + 0.5 - label_logit, 0.0)


def fenchel_young_logsumexp(scores, targets):
    """optax's Fenchel–Young loss of the log-sum-exp: logsumexp(θ) − ⟨θ, y⟩."""
    theta, y = _f64(scores, targets)
    top = theta.max(-1, keepdims=True)
    log_normalizer = np.log(np.exp(theta - top).sum(-1)) + top[..., 0]
    return log_normalizer - np.sum(theta * y, axis=-1)

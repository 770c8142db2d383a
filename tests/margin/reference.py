"""Float64 NumPy references of the margin losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64
from tests._suite.numpy_reference import log_softmax
from tests.classification.reference import cross_entropy


def unit(x):
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _softmax_with_target(logits, labels, target):
    """-log softmax at the label, with the label's logit replaced by ``target``."""
    logits = np.array(logits, np.float64)
    rows = np.arange(len(labels))
    logits[rows, labels] = target
    return -log_softmax(logits)[rows, labels]


def _cosines(embeddings, centers, labels):
    cos = unit(embeddings) @ unit(centers).T
    return cos, np.clip(cos[np.arange(len(labels)), labels], -1.0, 1.0)


def norm_softmax(embeddings, centers, labels, scale=16.0):
    cos, cos_y = _cosines(embeddings, centers, labels)
    return _softmax_with_target(scale * cos, labels, scale * cos_y)


def cosface(embeddings, centers, labels, scale=64.0, margin=0.35):
    cos, cos_y = _cosines(embeddings, centers, labels)
    return _softmax_with_target(scale * cos, labels, scale * (cos_y - margin))


def arcface(embeddings, centers, labels, scale=64.0, margin=0.5, easy_margin=False):
    """InsightFace's ArcFace: cos(θ + m), with cos θ - m sin m where θ + m > π."""
    cos, cos_y = _cosines(embeddings, centers, labels)
    theta = np.arccos(cos_y)
    with_margin = np.cos(theta + margin)
    if easy_margin:
        target = np.where(cos_y > 0, with_margin, cos_y)
    else:
        target = np.where(theta + margin <= np.pi, with_margin, cos_y - margin * np.sin(margin))
    return _softmax_with_target(scale * cos, labels, scale * target)


def combined_margin(embeddings, centers, labels, scale=64.0, m1=1.0, m2=0.5, m3=0.0):
    cos, cos_y = _cosines(embeddings, centers, labels)
    target = np.cos(m1 * np.arccos(cos_y) + m2) - m3
    return _softmax_with_target(scale * cos, labels, scale * target)


def sphereface(embeddings, centers, labels, margin=4, scale=None, lam=0.0):
    """A-Softmax (Liu et al. 2017, eq. 7): ψ(θ) = (-1)^k cos(mθ) - 2k on [kπ/m, (k+1)π/m]."""
    cos, cos_y = _cosines(embeddings, centers, labels)
    norms = np.linalg.norm(np.asarray(embeddings, np.float64), axis=-1)
    s = norms if scale is None else np.full(len(labels), scale, np.float64)
    theta = np.arccos(cos_y)
    k = np.minimum(np.floor(margin * theta / np.pi), margin - 1)
    psi = (-1.0) ** k * np.cos(margin * theta) - 2 * k
    target = s * (lam * cos_y + psi) / (1 + lam)
    return _softmax_with_target(s[:, None] * cos, labels, target)


def linear_cross_entropy(hidden, weight, labels, bias=None):
    logits = np.asarray(hidden, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        logits = logits + np.asarray(bias, np.float64)
    return cross_entropy(logits, labels)


def weighted_lse_sum(x, w, b, a):
    """Σ_i a_i logsumexp_j(x_i · w_j + b_j) and its gradients in x, w, b (softmax rows) and a."""
    x, w, b, a = _f64(x, w, b, a)
    z = x @ w.T + b
    log_p = log_softmax(z)
    lse = z[:, 0] - log_p[:, 0]
    p = np.exp(log_p) * a[:, None]
    return (a * lse).sum(), p @ w, p.T @ x, p.sum(0), lse


def center_loss(features, centers, labels):
    diff = np.asarray(features, np.float64) - np.asarray(centers, np.float64)[labels]
    return 0.5 * np.sum(diff**2, axis=-1)


def center_update(centers, features, labels, alpha=0.5):
    """Wen et al. 2016, eq. 4: c_j -= α Σ_{y_i=j}(c_j - x_i) / (1 + n_j), class by class."""
    centers = np.array(centers, np.float64)
    features = np.asarray(features, np.float64)
    new = centers.copy()
    for j in range(len(centers)):
        members = features[np.asarray(labels) == j]
        new[j] -= alpha * np.sum(centers[j] - members, axis=0) / (1 + len(members))
    return new


# --- pairs, triplets and contrastive ---

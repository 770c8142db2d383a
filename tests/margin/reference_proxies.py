"""Float64 NumPy references of the proxy losses, written from the papers' formulas.

``proxy_nca`` and ``soft_triple`` return the per-example (``reduction="none"``) values;
``proxy_anchor`` the per-proxy ones (its ``"none"``) and, apart, its mean. Rows masked by
``where`` or with a label outside the classes take no part.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import log_softmax
from tests.margin.reference import unit


def _kept(labels, num_classes, where=None):
    labels = np.asarray(labels)
    keep = (labels >= 0) & (labels < num_classes)
    return keep if where is None else keep & np.asarray(where, bool)


def proxy_nca(embeddings, proxies, labels, scale=1.0):
    """-log softmax(-s ‖x̂ - p̂‖²) at the label (Movshovitz-Attias et al., PML's form)."""
    x, p = unit(embeddings), unit(proxies)
    squared = ((x[:, None, :] - p[None, :, :]) ** 2).sum(-1)
    labels = np.asarray(labels)
    keep = _kept(labels, len(p))
    rows = np.arange(len(x))
    values = -log_softmax(-scale * squared)[rows, np.where(keep, labels, 0)]
    return np.where(keep, values, 0.0)


def _anchor_terms(embeddings, proxies, labels, margin, alpha, where):
    """Per proxy: log(1 + Σ_{X_p+} e^{-α(s-δ)}), log(1 + Σ_{X_p-} e^{α(s+δ)}), has a positive."""
    cos = unit(embeddings) @ unit(proxies).T
    labels = np.asarray(labels)
    keep = _kept(labels, len(proxies), where)
    pos, neg, has = [], [], []
    for p in range(len(proxies)):
        positives = keep & (labels == p)
        negatives = keep & (labels != p)
        pos.append(np.log1p(np.sum(np.exp(-alpha * (cos[positives, p] - margin)))))
        neg.append(np.log1p(np.sum(np.exp(alpha * (cos[negatives, p] + margin)))))
        has.append(positives.any())
    return np.array(pos), np.array(neg), np.array(has)


def proxy_anchor(embeddings, proxies, labels, margin=0.1, alpha=32.0, where=None):
    """Per proxy (``"none"``): its positive and negative terms (Kim et al. 2020)."""
    pos, neg, _ = _anchor_terms(embeddings, proxies, labels, margin, alpha, where)
    return pos + neg


def proxy_anchor_mean(embeddings, proxies, labels, margin=0.1, alpha=32.0, where=None):
    """The loss: the positive terms' mean over the proxies with a positive, plus the
    negative terms' mean over all proxies."""
    pos, neg, has = _anchor_terms(embeddings, proxies, labels, margin, alpha, where)
    return (pos.sum() / has.sum() if has.any() else 0.0) + neg.mean()


def soft_triple(embeddings, centers, labels, scale=20.0, gamma=0.1, margin=0.01, reg_weight=0.2):
    """Qian et al. 2019, with the center regularizer of the authors' code added per row."""
    x, w = unit(embeddings), unit(centers)
    num_classes, per_class = w.shape[:2]
    cos = np.einsum("nd,ckd->nck", x, w)
    weights = np.exp(cos / gamma - (cos / gamma).max(-1, keepdims=True))
    scores = (weights / weights.sum(-1, keepdims=True) * cos).sum(-1)
    labels = np.asarray(labels)
    keep = _kept(labels, num_classes)
    safe = np.where(keep, labels, 0)
    rows = np.arange(len(x))
    scores[rows, safe] -= margin
    values = -log_softmax(scale * scores)[rows, safe]
    spread = sum(
        np.sqrt(2 + 1e-5 - 2 * w[c, k] @ w[c, l])
        for c in range(num_classes)
        for k in range(per_class)
        for l in range(k + 1, per_class)  # noqa: E741
    )
    regularizer = spread / (num_classes * per_class * (per_class - 1)) if per_class > 1 else 0.0
    return np.where(keep, values + reg_weight * regularizer, 0.0)

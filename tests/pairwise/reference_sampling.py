"""Float64 NumPy references of ``margin_loss``, ``tuplet_margin`` and ``fast_ap``, from the
papers' formulas, one triplet (pair, anchor) at a time.

Each returns the per-anchor (``reduction="none"``) values; ``*_mean`` the ``"mean"``.
"""

from __future__ import annotations

import numpy as np

from tests.margin.reference import unit


def _relations(labels):
    """Per anchor, its positives and its negatives (index lists)."""
    labels = np.asarray(labels)
    b = len(labels)
    positives = [[j for j in range(b) if j != a and labels[j] == labels[a]] for a in range(b)]
    negatives = [[j for j in range(b) if labels[j] != labels[a]] for a in range(b)]
    return positives, negatives


def margin_loss_terms(embeddings, labels, beta=1.2, margin=0.2, nu=0.0):
    """Wu et al. 2017: per triplet (a, p, n), [α + D_ap - β]_+ + [α - (D_an - β)]_+ + ν β,
    β the scalar or the anchor's class entry, D Euclidean on unit vectors; the anchors' sums
    and how many hinge terms are above zero."""
    u = unit(embeddings)
    beta = np.asarray(beta, np.float64)
    positives, negatives = _relations(labels)
    out, active = np.zeros(len(u)), 0
    for a, (ps, ns) in enumerate(zip(positives, negatives, strict=True)):
        b = beta if beta.ndim == 0 else beta[labels[a]]
        for p in ps:
            for n in ns:
                to_positive = max(0.0, margin + np.linalg.norm(u[a] - u[p]) - b)
                to_negative = max(0.0, margin - (np.linalg.norm(u[a] - u[n]) - b))
                out[a] += to_positive + to_negative + nu * b
                active += int(to_positive > 0) + int(to_negative > 0)
    return out, active


def margin_loss(embeddings, labels, beta=1.2, **options):
    return margin_loss_terms(embeddings, labels, beta, **options)[0]


def margin_loss_mean(embeddings, labels, beta=1.2, **options) -> float:
    """PML's DivisorReducer: the sum over the number of hinge terms above zero; 0 if none."""
    out, active = margin_loss_terms(embeddings, labels, beta, **options)
    return float(out.sum() / active) if active else 0.0


def tuplet_margin_terms(embeddings, labels, margin=5.73, scale=64.0):
    """Yu and Tao 2019: per positive pair, log(1 + Σ_n exp(s (cos θ_an - cos(θ_ap - β)))),
    β in degrees; the anchors' sums and the number of positive pairs."""
    u = unit(embeddings)
    beta = np.radians(margin)
    positives, negatives = _relations(labels)
    out, pairs = np.zeros(len(u)), 0
    for a, (ps, ns) in enumerate(zip(positives, negatives, strict=True)):
        for p in ps:
            theta = np.arccos(np.clip(u[a] @ u[p], -1.0, 1.0))
            exponents = [scale * (u[a] @ u[n] - np.cos(theta - beta)) for n in ns]
            out[a] += np.logaddexp.reduce([0.0, *exponents])
            pairs += 1
    return out, pairs


def tuplet_margin(embeddings, labels, **options):
    return tuplet_margin_terms(embeddings, labels, **options)[0]


def tuplet_margin_mean(embeddings, labels, **options) -> float:
    out, pairs = tuplet_margin_terms(embeddings, labels, **options)
    return float(out.sum() / pairs) if pairs else 0.0


def fast_ap_terms(embeddings, labels, num_bins=10):
    """Cakir et al. 2019: per anchor with a positive, 1 - (1/P) Σ_k h+_k H+_k / H_k over
    triangular histograms of squared distances of unit vectors, centers k·4/num_bins for
    k = 0..num_bins; the anchors' values and how many have a positive."""
    u = unit(embeddings)
    delta = 4.0 / num_bins
    centers = np.arange(num_bins + 1) * delta
    positives, negatives = _relations(labels)
    out, counted = np.zeros(len(u)), 0

    def histogram(a, others):
        h = np.zeros(num_bins + 1)
        for j in others:
            d = np.sum((u[a] - u[j]) ** 2)
            h += np.maximum(0.0, 1 - np.abs(d - centers) / delta)
        return h

    for a, (ps, ns) in enumerate(zip(positives, negatives, strict=True)):
        if not ps:
            continue
        h_pos, h_neg = histogram(a, ps), histogram(a, ns)
        product, total = h_pos * np.cumsum(h_pos), np.cumsum(h_pos + h_neg)
        terms = [pr / t if pr > 0 and t > 0 else 0.0 for pr, t in zip(product, total, strict=True)]
        out[a] = 1 - np.sum(terms) / len(ps)
        counted += 1
    return out, counted


def fast_ap(embeddings, labels, **options):
    return fast_ap_terms(embeddings, labels, **options)[0]


def fast_ap_mean(embeddings, labels, **options) -> float:
    """PML's MeanReducer over the anchors that have a positive; 0 if none has."""
    out, counted = fast_ap_terms(embeddings, labels, **options)
    return float(out.sum() / counted) if counted else 0.0

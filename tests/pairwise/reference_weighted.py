"""Float64 NumPy references of the pair-weighting losses, written from the papers' formulas
(Wang et al. 2019, Sun et al. 2020, Oh Song et al. 2016), one anchor and one pair at a time.

Each ``*_terms`` returns every anchor's ``reduction="none"`` value and the number of terms
the ``"mean"`` divides by (``cases_weighted._mean_of`` divides one by the other).
"""

from __future__ import annotations

import numpy as np

from tests.margin.reference import unit


def _pairs(labels, where):
    """Per anchor, the lists of its positives and negatives among the kept rows."""
    labels = np.asarray(labels)
    b = len(labels)
    keep = np.ones(b, bool) if where is None else np.asarray(where, bool)
    kept = np.flatnonzero(keep)
    positives = [[j for j in kept if j != i and labels[j] == labels[i]] for i in range(b)]
    negatives = [[k for k in kept if labels[k] != labels[i]] for i in range(b)]
    return keep, positives, negatives


def _log1p_sum_exp(terms) -> float:
    """log(1 + Σ exp(terms)), 0 for no terms."""
    return float(np.logaddexp.reduce([0.0, *terms]))


def multi_similarity(
    embeddings, labels, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1, mining=True, where=None
):
    """Multi-Similarity loss of each anchor, with the paper's mining (Sec. 3.3): negatives
    with S + ε > the least positive similarity, positives with S - ε < the greatest
    negative one."""
    s = unit(embeddings) @ unit(embeddings).T
    keep, positives, negatives = _mined_pairs(s, labels, epsilon if mining else None, where)
    out = np.zeros(len(s))
    for i in np.flatnonzero(keep):
        out[i] = _log1p_sum_exp([-alpha * (s[i, p] - base) for p in positives[i]]) / alpha
        out[i] += _log1p_sum_exp([beta * (s[i, k] - base) for k in negatives[i]]) / beta
    return out


def _mined_pairs(s, labels, epsilon, where):
    """``_pairs`` with the Multi-Similarity mining at ``epsilon`` (None: no mining)."""
    keep, positives, negatives = _pairs(labels, where)
    if epsilon is None:
        return keep, positives, negatives
    for i in range(len(s)):
        least = min((s[i, p] for p in positives[i]), default=np.inf)
        greatest = max((s[i, k] for k in negatives[i]), default=-np.inf)
        positives[i] = [p for p in positives[i] if s[i, p] - epsilon < greatest]
        negatives[i] = [k for k in negatives[i] if s[i, k] + epsilon > least]
    return keep, positives, negatives


def mined_pair_counts(embeddings, labels, epsilon=0.1):
    """The numbers of positive and negative pairs the Multi-Similarity mining keeps."""
    s = unit(embeddings) @ unit(embeddings).T
    _, positives, negatives = _mined_pairs(s, labels, epsilon, None)
    return sum(map(len, positives)), sum(map(len, negatives))


def circle_terms(embeddings, labels, margin=0.25, gamma=256.0, detach_weights=True, where=None):
    """Circle loss of each anchor with a positive and a negative (0 for the others) and their
    number: log(1 + Σ_n exp(γ α_n (s_n - m)) Σ_p exp(-γ α_p (s_p - 1 + m))), α_p = [1 + m -
    s_p]_+, α_n = [s_n + m]_+ (``detach_weights`` changes gradients only)."""
    s = unit(embeddings) @ unit(embeddings).T
    keep, positives, negatives = _pairs(labels, where)
    out, count = np.zeros(len(s)), 0
    for i in np.flatnonzero(keep):
        if not (positives[i] and negatives[i]):
            continue
        sp, sn = s[i, positives[i]], s[i, negatives[i]]
        log_p = np.logaddexp.reduce(-gamma * np.maximum(1 + margin - sp, 0) * (sp - 1 + margin))
        log_n = np.logaddexp.reduce(gamma * np.maximum(sn + margin, 0) * (sn - margin))
        out[i] = np.logaddexp(0.0, log_p + log_n)
        count += 1
    return out, count


def circle(embeddings, labels, **options):
    return circle_terms(embeddings, labels, **options)[0]


def lifted_structure_terms(embeddings, labels, margin=1.0, normalize=False, where=None):
    """Lifted structured loss, the smooth form (Oh Song et al. 2016, Eq. 4): per positive pair
    J = log(Σ_{k∈N(i)} exp(α - D_ik) + Σ_{l∈N(j)} exp(α - D_jl)) + D_ij. Each anchor's
    ½ Σ_j [J_ij]_+² and the number of ordered positive pairs (2|P|)."""
    e = unit(embeddings) if normalize else np.asarray(embeddings, np.float64)
    d = np.sqrt(np.sum((e[:, None] - e[None]) ** 2, axis=-1))
    keep, positives, negatives = _pairs(labels, where)
    out, count = np.zeros(len(e)), 0
    for i in np.flatnonzero(keep):
        for j in positives[i]:
            count += 1
            terms = [margin - d[i, k] for k in negatives[i]]
            terms += [margin - d[j, k] for k in negatives[j]]
            if terms:
                out[i] += 0.5 * max(np.logaddexp.reduce(terms) + d[i, j], 0.0) ** 2
    return out, count


def lifted_structure(embeddings, labels, **options):
    return lifted_structure_terms(embeddings, labels, **options)[0]

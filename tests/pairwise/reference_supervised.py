"""Float64 NumPy references of ``supcon``, ``info_nce`` and ``n_pairs``, from the papers'
formulas, one anchor (query, pair) at a time.

Each returns the per-example (``reduction="none"``) values; ``supcon_mean`` the mean over the
anchors that count.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64
from tests.margin.reference import unit


def _minus_log_softmax(logits, candidates, targets) -> float:
    """-mean over ``targets`` of log softmax over ``candidates`` (index lists of ``logits``)."""
    normalizer = np.logaddexp.reduce([logits[k] for k in candidates])
    return float(np.mean([normalizer - logits[t] for t in targets]))


def supcon_terms(embeddings, labels, temperature=0.1):
    """Khosla et al. 2020, L_out: per anchor with a positive and a negative,
    -mean_p (s_ip - log sum_{k != i} e^s_ik), s = cos / temperature; the anchors' values
    and how many count."""
    u = unit(embeddings)
    s = u @ u.T / temperature
    labels = np.asarray(labels)
    b = len(labels)
    out, count = np.zeros(b), 0
    for i in range(b):
        others = [k for k in range(b) if k != i]
        positives = [k for k in others if labels[k] == labels[i]]
        if positives and len(positives) < len(others):
            out[i] = _minus_log_softmax(s[i], others, positives)
            count += 1
    return out, count


def supcon(embeddings, labels, **options):
    return supcon_terms(embeddings, labels, **options)[0]


def supcon_mean(embeddings, labels, **options) -> float:
    """The mean over anchors with a positive and a negative; 0 when there is none."""
    out, count = supcon_terms(embeddings, labels, **options)
    return float(out.sum() / count) if count else 0.0


def info_nce(query, positive, negatives=None, temperature=0.1):
    """van den Oord et al. 2018 / MoCo: -log softmax of q.k+ / τ among q.k- / τ, unit vectors;
    negatives: the other rows' positives (None), a shared [K, D] set, or [B, M, D]."""
    q, k = (unit(x) for x in _f64(query, positive))
    b = len(q)
    out = np.zeros(b)
    for i in range(b):
        if negatives is None:
            keys = k
        else:
            (n,) = _f64(negatives)
            keys = np.concatenate([k[i : i + 1], unit(n if n.ndim == 2 else n[i])])
        logits = keys @ q[i] / temperature
        target = i if negatives is None else 0
        out[i] = _minus_log_softmax(logits, range(len(keys)), [target])
    return out


def n_pairs(anchors, positives, labels=None, l2_reg=0.0, normalize=False):
    """Sohn 2016: softmax cross-entropy of f_i . f_j+ with target i (with labels, uniform over
    the pairs of i's label, TensorFlow's npairs_loss), plus l2_reg / 4 (|f_i|² + |f_i+|²)."""
    a, p = _f64(anchors, positives)
    regularizer = l2_reg / 4 * (np.sum(a**2, axis=1) + np.sum(p**2, axis=1))
    if normalize:
        a, p = unit(a), unit(p)
    b = len(a)
    labels = np.arange(b) if labels is None else np.asarray(labels)
    out = np.zeros(b)
    for i in range(b):
        targets = [j for j in range(b) if labels[j] == labels[i]]
        out[i] = _minus_log_softmax(p @ a[i], range(b), targets) + regularizer[i]
    return out

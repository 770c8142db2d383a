"""Float64 NumPy references of the pairwise losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64
from tests.margin.reference import unit


def contrastive(x1, x2, similar, margin=1.0):
    """Hadsell, Chopra & LeCun 2006: ½d² for similar pairs, ½max(0, m - d)² for dissimilar."""
    x1, x2, s = _f64(x1, x2, similar)
    d = np.sqrt(np.sum((x1 - x2) ** 2, axis=-1))
    return s * 0.5 * d**2 + (1 - s) * 0.5 * np.maximum(0.0, margin - d) ** 2


def _torch_pairwise_distance(x, y, p, eps):
    """torch.pairwise_distance: the p-norm of x - y + eps, eps added to every coordinate."""
    diff = np.abs(x - y + eps)
    if p == np.inf:
        return np.max(diff, axis=-1)
    return np.sum(diff**p, axis=-1) ** (1.0 / p)


def triplet_margin(
    anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, squared=False
):
    """torch.nn.functional.triplet_margin_loss, or FaceNet's squared-L2 form when squared=True."""
    a, pos, neg = _f64(anchor, positive, negative)
    if squared:
        d_pos = np.sum((a - pos) ** 2, axis=-1)
        d_neg = np.sum((a - neg) ** 2, axis=-1)
        if swap:
            d_neg = np.minimum(d_neg, np.sum((pos - neg) ** 2, axis=-1))
    else:
        d_pos = _torch_pairwise_distance(a, pos, p, eps)
        d_neg = _torch_pairwise_distance(a, neg, p, eps)
        if swap:
            d_neg = np.minimum(d_neg, _torch_pairwise_distance(pos, neg, p, eps))
    return np.maximum(d_pos - d_neg + margin, 0.0)


def triplet_margin_with_distance(anchor, positive, negative, margin=1.0, swap=False):
    """torch.nn.functional.triplet_margin_with_distance_loss with its default distance,
    torch.pairwise_distance (p = 2, eps = 1e-6 added to the difference)."""
    return triplet_margin(anchor, positive, negative, margin=margin, swap=swap, p=2.0, eps=1e-6)


def cosine_similarity(x1, x2, axis=-1, eps=1e-8):
    """Each vector over its norm floored at eps (torch.nn.functional.cosine_similarity)."""
    x1, x2 = _f64(x1, x2)
    n1 = np.sqrt(np.sum(x1**2, axis=axis, keepdims=True))
    n2 = np.sqrt(np.sum(x2**2, axis=axis, keepdims=True))
    return np.sum(x1 / np.maximum(n1, eps) * (x2 / np.maximum(n2, eps)), axis=axis)


def triplet_margin_with_cosine_distance(anchor, positive, negative, margin=1.0, swap=False):
    """triplet_margin_with_distance_loss with d(x, y) = 1 - cos(x, y)."""
    a, pos, neg = _f64(anchor, positive, negative)

    def d(x, y):
        return 1 - cosine_similarity(x, y)

    d_neg = d(a, neg)
    if swap:
        d_neg = np.minimum(d_neg, d(pos, neg))
    return np.maximum(d(a, pos) - d_neg + margin, 0.0)


def ratio_loss(anchor, positive, negative):
    """Balntas et al. 2016 (PN-Net ratio loss): (e+/(e+ + e-))² + (1 - e-/(e+ + e-))²."""
    a, pos, neg = _f64(anchor, positive, negative)
    d_pos = np.sqrt(np.sum((a - pos) ** 2, axis=-1))
    d_neg = np.sqrt(np.sum((a - neg) ** 2, axis=-1))
    # e+/(e+ + e-) = 1/(1 + e^{d- - d+}), written with logaddexp so large distances don't overflow.
    pos_share = np.exp(-np.logaddexp(0.0, d_neg - d_pos))
    neg_share = np.exp(-np.logaddexp(0.0, d_pos - d_neg))
    return pos_share**2 + (1 - neg_share) ** 2


def margin_ranking(x1, x2, y, margin=0.0):
    """torch.nn.functional.margin_ranking_loss: max(0, -y(x1 - x2) + margin), elementwise."""
    x1, x2, y = _f64(x1, x2, y)
    return np.maximum(0.0, -y * (x1 - x2) + margin)


def cosine_embedding(x1, x2, y, margin=0.0):
    """torch.nn.functional.cosine_embedding_loss: 1 - cos for y = 1, max(0, cos - m) for y = -1."""
    x1, x2, y = _f64(x1, x2, y)
    eps = 1e-12
    cos = np.sum(x1 * x2, axis=-1) / np.sqrt(
        (np.sum(x1**2, axis=-1) + eps) * (np.sum(x2**2, axis=-1) + eps)
    )
    loss = np.zeros_like(cos)
    loss = np.where(y == 1, 1 - cos, loss)
    return np.where(y == -1, np.maximum(0.0, cos - margin), loss)


def nt_xent(z1, z2, temperature=0.1, where=None):
    """SimCLR's NT-Xent (Chen et al. 2020): per pair, the mean of its two anchors' losses."""
    z1, z2 = _f64(z1, z2)
    n_all = len(z1)
    keep = np.ones(n_all, bool) if where is None else np.asarray(where, bool)
    out = np.zeros(n_all)
    kept = np.flatnonzero(keep)
    n = len(kept)
    if n == 0:
        return out
    u = unit(np.concatenate([z1[kept], z2[kept]]))
    sim = u @ u.T / temperature
    losses = np.empty(2 * n)
    for i in range(2 * n):
        j = i + n if i < n else i - n
        others = [sim[i, k] for k in range(2 * n) if k != i]
        losses[i] = -sim[i, j] + np.logaddexp.reduce(others)
    out[kept] = (losses[:n] + losses[n:]) / 2
    return out


def nt_xent_of_labels_terms(embeddings, labels, temperature=0.1, where=None):
    """NT-Xent with labels (optax.losses.ntxent, pytorch-metric-learning's NTXentLoss): per
    positive pair (i, j), -log(e^s_ij / (e^s_ij + sum over i's negatives k of e^s_ik)),
    s = cos / temperature. Returns every anchor's sum over its positives and the number of
    positive pairs."""
    e = unit(np.asarray(embeddings, np.float64))
    labels = np.asarray(labels)
    b = len(e)
    keep = np.ones(b, bool) if where is None else np.asarray(where, bool)
    s = e @ e.T / temperature
    totals, count = np.zeros(b), 0
    for i in np.flatnonzero(keep):
        negatives = [s[i, k] for k in np.flatnonzero(keep) if labels[k] != labels[i]]
        for j in np.flatnonzero(keep):
            if j != i and labels[j] == labels[i]:
                totals[i] += np.logaddexp.reduce([s[i, j], *negatives]) - s[i, j]
                count += 1
    return totals, count


def nt_xent_of_labels(embeddings, labels, **options):
    """Per-anchor sums (``reduction="none"``)."""
    return nt_xent_of_labels_terms(embeddings, labels, **options)[0]


def nt_xent_of_labels_mean(embeddings, labels, **options):
    """The mean over positive pairs; 0 when there is none."""
    totals, count = nt_xent_of_labels_terms(embeddings, labels, **options)
    return float(totals.sum() / count) if count else 0.0


def batch_triplet_terms(embeddings, labels, margin=1.0, mining="all", squared=False, where=None):
    """Online triplet loss: every anchor's total and the number of terms the mean divides by.

    ``"all"``: the triplets with a positive loss (each anchor's total is the sum of its);
    ``"hard"``: batch-hard (Hermans et al. 2017), one term per anchor with a positive and a
    negative; ``"semihard"``: FaceNet semi-hard as TF-Addons' triplet_semihard_loss, one term
    per anchor-positive pair of an anchor with a negative.
    """
    e = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels)
    b = len(e)
    keep = np.ones(b, bool) if where is None else np.asarray(where, bool)
    dist = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            sq = np.sum((e[i] - e[j]) ** 2)
            dist[i, j] = sq if squared else np.sqrt(sq)

    def positives(a):
        return [p for p in range(b) if p != a and keep[p] and labels[p] == labels[a]]

    def negatives(a):
        return [n for n in range(b) if keep[n] and labels[n] != labels[a]]

    if mining not in ("all", "hard", "semihard"):
        raise ValueError(f"unknown mining {mining!r}")
    totals, count = np.zeros(b), 0
    for a in (a for a in range(b) if keep[a]):
        pos, neg = positives(a), negatives(a)
        if not (pos and neg):
            continue
        if mining == "hard":
            hardest = max(dist[a, p] for p in pos) - min(dist[a, n] for n in neg) + margin
            totals[a], count = max(hardest, 0.0), count + 1
            continue
        for p in pos:
            if mining == "all":
                losses = [dist[a, p] - dist[a, n] + margin for n in neg]
                active = [loss for loss in losses if loss > 0]
                totals[a] += sum(active)
                count += len(active)
            else:
                farther = [dist[a, n] for n in neg if dist[a, n] > dist[a, p]]
                chosen = min(farther) if farther else max(dist[a, n] for n in neg)
                totals[a] += max(dist[a, p] - chosen + margin, 0.0)
                count += 1
    return totals, count


def batch_triplet(embeddings, labels, **options):
    """Per-anchor totals (``reduction="none"``)."""
    return batch_triplet_terms(embeddings, labels, **options)[0]


def batch_triplet_mean(embeddings, labels, **options):
    """The mean over the mode's terms; 0 when there is none."""
    totals, count = batch_triplet_terms(embeddings, labels, **options)
    return float(totals.sum() / count) if count else 0.0

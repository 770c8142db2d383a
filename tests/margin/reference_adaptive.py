"""Float64 NumPy references of the face heads with running statistics, from the official code.

Two forms of each: ``curricularface``/``adaface`` are per-row loops written from the papers'
formulas (one example, one class at a time), and ``official_*`` are line-by-line NumPy
transcriptions of the authors' PyTorch modules, buffers and their updates included, for the
multi-step tests. The per-row functions take the running statistics as inputs (the values
the official forward uses, i.e. after its update).
"""

from __future__ import annotations

import math

import numpy as np

from tests._suite.numpy_reference import f64


def _unit(v):
    return v / max(np.linalg.norm(v), 1e-12)


def _nll(logits, label):
    """-log softmax(logits)[label], float64."""
    shifted = logits - logits.max()
    return float(np.log(np.exp(shifted).sum()) - shifted[label])


def curricularface(embeddings, centers, labels, t=0.0, scale=64.0, margin=0.5):
    """Huang et al. 2020, eq. (8)-(9), with ArcFace's fallback past θ + m = π, row by row."""
    x, w = f64(embeddings, centers)
    losses = []
    for row, label in zip(x, np.asarray(labels), strict=True):
        cos = np.array([np.clip(_unit(row) @ _unit(c), -1, 1) for c in w])
        theta = math.acos(cos[label])
        shifted = math.cos(theta + margin)
        target = shifted if theta + margin <= math.pi else cos[label] - margin * math.sin(margin)
        logits = np.empty(len(w))
        for j, c in enumerate(cos):
            logits[j] = c * (t + c) if c > shifted else c  # hard negatives reweighted
        logits[label] = target
        losses.append(_nll(scale * logits, label))
    return np.array(losses)


def adaface(
    embeddings,
    centers,
    labels,
    batch_mean=20.0,
    batch_std=100.0,
    scale=64.0,
    margin=0.4,
    h=0.333,
    eps=1e-3,
    norms=None,
):
    """Kim et al. 2022, eq. (10)-(11) with the official clips, row by row; ``norms`` (the
    margin's input, detached in the official code) default to the rows' norms."""
    x, w = f64(embeddings, centers)
    norms = np.linalg.norm(x, axis=1) if norms is None else norms
    losses = []
    for row, label, norm in zip(x, np.asarray(labels), norms, strict=True):
        norm = np.clip(norm, 0.001, 100)
        scaler = np.clip((norm - batch_mean) / (batch_std + eps) * h, -1, 1)
        cos = np.array([np.clip(_unit(row) @ _unit(c), -1 + eps, 1 - eps) for c in w])
        logits = cos.copy()
        theta = np.clip(math.acos(cos[label]) - margin * scaler, eps, math.pi - eps)
        logits[label] = math.cos(theta) - (margin + margin * scaler)
        losses.append(_nll(scale * logits, label))
    return np.array(losses)


def _official_cosines(embeddings, kernel):
    """``l2_norm(embeddings, 1) @ l2_norm(kernel, 0)`` with the official ``[dim, classes]``
    kernel."""
    x, w = f64(embeddings, kernel)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
        w / np.linalg.norm(w, axis=0, keepdims=True)
    )


def official_curricularface(embeddings, centers, labels, t, *, scale=64.0, margin=0.5):
    """``CurricularFace.forward`` (HuangYG123/CurricularFace, head/metrics.py) followed by
    ``nn.CrossEntropyLoss``: ``(mean loss, new t)``. The buffer ``t`` is updated *before*
    the hard negatives are reweighted, with the batch mean of cos θ_y and momentum 0.01."""
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    cos_theta = np.clip(_official_cosines(embeddings, np.asarray(centers).T), -1, 1)
    target_logit = cos_theta[rows, labels].reshape(-1, 1)
    sin_theta = np.sqrt(1.0 - target_logit**2)
    cos_theta_m = target_logit * math.cos(margin) - sin_theta * math.sin(margin)
    mask = cos_theta > cos_theta_m
    final_target_logit = np.where(
        target_logit > math.cos(math.pi - margin),
        cos_theta_m,
        target_logit - math.sin(math.pi - margin) * margin,
    )
    hard_example = cos_theta[mask]
    t = target_logit.mean() * 0.01 + (1 - 0.01) * t
    cos_theta[mask] = hard_example * (t + hard_example)
    cos_theta[rows, labels] = final_target_logit[:, 0]
    output = cos_theta * scale
    return _cross_entropy(output, labels), t


def official_adaface(
    embeddings,
    centers,
    labels,
    batch_mean,
    batch_std,
    *,
    scale=64.0,
    margin=0.4,
    h=0.333,
    t_alpha=0.01,
):
    """``AdaFace.forward`` (mk-minchul/AdaFace, head.py) on the backbone's outputs
    ``(x / ‖x‖, ‖x‖)``, followed by ``nn.CrossEntropyLoss``: ``(mean loss, mean, std)``.
    The statistics are updated *before* the margins, with torch's unbiased ``std``."""
    eps = 1e-3
    x = np.asarray(embeddings, np.float64)
    labels = np.asarray(labels)
    rows = np.arange(len(labels))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    cosine = np.clip(_official_cosines(x, np.asarray(centers).T), -1 + eps, 1 - eps)
    safe_norms = np.clip(norms, 0.001, 100)
    batch_mean = safe_norms.mean() * t_alpha + (1 - t_alpha) * batch_mean
    batch_std = safe_norms.std(ddof=1) * t_alpha + (1 - t_alpha) * batch_std
    margin_scaler = np.clip((safe_norms - batch_mean) / (batch_std + eps) * h, -1, 1)
    m_arc = np.zeros_like(cosine)
    m_arc[rows, labels] = 1.0
    m_arc = m_arc * (margin * margin_scaler * -1)
    theta_m = np.clip(np.arccos(cosine) + m_arc, eps, math.pi - eps)
    cosine = np.cos(theta_m)
    m_cos = np.zeros_like(cosine)
    m_cos[rows, labels] = 1.0
    cosine = cosine - m_cos * (margin + margin * margin_scaler)
    return _cross_entropy(cosine * scale, labels), batch_mean, batch_std


def _cross_entropy(logits, labels):
    return float(np.mean([_nll(z, y) for z, y in zip(logits, labels, strict=True)]))

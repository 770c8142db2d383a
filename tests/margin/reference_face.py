"""Float64 NumPy references of Sub-center ArcFace, MagFace and ElasticFace, from the papers
and their official code. Each returns the per-example (``reduction="none"``) values."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from tests.margin.reference import _softmax_with_target, unit


def arc_target(cos_y, margin, easy_margin=False):
    """InsightFace's ArcFace target: cos(θ + m), cos θ − m sin m where θ + m > π."""
    theta = np.arccos(cos_y)
    with_margin = np.cos(theta + margin)
    if easy_margin:
        return np.where(cos_y > 0, with_margin, cos_y)
    return np.where(theta + margin <= np.pi, with_margin, cos_y - margin * np.sin(margin))


def _target_cos(cos, labels):
    return np.clip(cos[np.arange(len(labels)), labels], -1.0, 1.0)


def subcenter_cosines(embeddings, centers):
    """cos θ_j = max_k cos(x, w_jk), ``centers [num_classes, K, dim]``."""
    return np.einsum("nd,ckd->nck", unit(embeddings), unit(centers)).max(axis=2)


def subcenter_arcface(embeddings, centers, labels, scale=64.0, margin=0.5):
    cos = subcenter_cosines(embeddings, centers)
    target = arc_target(_target_cos(cos, labels), margin)
    return _softmax_with_target(scale * cos, labels, scale * target)


def magface(
    embeddings,
    centers,
    labels,
    scale=64.0,
    lower_norm=10.0,
    upper_norm=110.0,
    lower_margin=0.45,
    upper_margin=0.8,
    reg_weight=35.0,
    easy_margin=False,
):
    """MagLinear + MagLoss of IrvingMeng/MagFace: the margin's cos(θ + m) from cos m and
    sin m, the threshold cos(π − m) and the fallback's sin(π − m)·m, then CE + λ_g g(a)."""
    a = np.clip(np.linalg.norm(np.asarray(embeddings, np.float64), axis=1), lower_norm, upper_norm)
    m = (upper_margin - lower_margin) / (upper_norm - lower_norm) * (a - lower_norm) + lower_margin
    cos = unit(embeddings) @ unit(centers).T
    cos_y = _target_cos(cos, labels)
    cos_theta_m = cos_y * np.cos(m) - np.sqrt(1.0 - cos_y**2) * np.sin(m)
    if easy_margin:
        target = np.where(cos_y > 0, cos_theta_m, cos_y)
    else:
        target = np.where(cos_y > np.cos(np.pi - m), cos_theta_m, cos_y - np.sin(np.pi - m) * m)
    identity = _softmax_with_target(scale * cos, labels, scale * target)
    return identity + reg_weight * (a / upper_norm**2 + 1 / a)


def elastic_margins(key, batch, margin, sigma):
    """The documented draw: ``margin + sigma * normal(fold_in(key, i))`` for row i."""
    noise = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(jnp.asarray(key), i)))(
        jnp.arange(batch)
    )
    return margin + sigma * np.asarray(noise, np.float64)


def dealt_by_rank(margins, cos_y, valid):
    """ElasticFace+: the valid rows' margins sorted ascending, the k-th largest cos θ_y
    taking the k-th smallest margin."""
    margins = np.array(margins, np.float64)
    rows = np.flatnonzero(valid)
    closest_first = rows[np.argsort(-cos_y[rows], kind="stable")]
    margins[closest_first] = np.sort(margins[rows])
    return margins


def elasticface(
    embeddings,
    centers,
    labels,
    key,
    scale=64.0,
    margin=None,
    sigma=0.05,
    kind="arc",
    plus=False,
    margins=None,
):
    """ElasticArcFace / ElasticCosFace (fdbtrs/ElasticFace) given the drawn ``margins``
    (default: the documented draw), with ArcFace's fallback past θ + m = π."""
    mean = (0.5 if kind == "arc" else 0.35) if margin is None else margin
    cos = unit(embeddings) @ unit(centers).T
    cos_y = _target_cos(cos, labels)
    if margins is None:
        margins = elastic_margins(key, len(labels), mean, sigma)
    if plus:
        valid = (np.asarray(labels) >= 0) & (np.asarray(labels) < len(centers))
        margins = dealt_by_rank(margins, cos_y, valid)
    target = arc_target(cos_y, margins) if kind == "arc" else cos_y - margins
    return _softmax_with_target(scale * cos, labels, scale * target)

"""Float64 NumPy references of the dense losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64


def _activated(logits, from_logits):
    if from_logits == "sigmoid":
        return 1 / (1 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _overlap_inputs(probs, targets, include_background, from_logits=None):
    """Per-pixel probabilities and one-hot targets ``[batch, pixels, classes]``."""
    p = np.asarray(probs, np.float64)
    if from_logits is not None:
        p = _activated(p, from_logits)
    num_classes = p.shape[-1]
    t = np.asarray(targets)
    if t.shape == p.shape[:-1]:  # integer labels; other ids leave the pixel out
        labels = t.reshape(p.shape[0], -1)
        p = p.reshape(p.shape[0], -1, num_classes).copy()
        onehot = np.zeros_like(p)
        for b, i in np.ndindex(labels.shape):
            if 0 <= labels[b, i] < num_classes:
                onehot[b, i, labels[b, i]] = 1.0
            else:
                p[b, i] = 0.0
        t = onehot
    else:
        p = p.reshape(p.shape[0], -1, num_classes)
        t = np.asarray(t, np.float64).reshape(p.shape)
    if not include_background:
        p, t = p[..., 1:], t[..., 1:]
    return p, t


def _ratio_or_one(numerator, denominator):
    return np.where(denominator == 0, 1.0, numerator / np.where(denominator == 0, 1, denominator))


def dice(
    probs,
    targets,
    smooth_nr=1e-5,
    smooth_dr=1e-5,
    squared=False,
    include_background=True,
    from_logits=None,
):
    """Milletari et al. / MONAI: 1 − (2Σpt + s_nr) / (Σp + Σt + s_dr) per (sample, class)."""
    p, t = _overlap_inputs(probs, targets, include_background, from_logits)
    power = 2 if squared else 1
    numerator = 2 * (p * t).sum(axis=1) + smooth_nr
    denominator = (p**power).sum(axis=1) + (t**power).sum(axis=1) + smooth_dr
    return 1 - _ratio_or_one(numerator, denominator)


def tversky(
    probs,
    targets,
    alpha=0.5,
    beta=0.5,
    gamma=1.0,
    smooth_nr=1e-5,
    smooth_dr=1e-5,
    include_background=True,
    from_logits=None,
):
    """Salehi et al.; focal form (1 − TI)^γ of Abraham and Khan with their 1/γ as γ."""
    p, t = _overlap_inputs(probs, targets, include_background, from_logits)
    tp, fp, fn = (p * t).sum(1), (p * (1 - t)).sum(1), ((1 - p) * t).sum(1)
    index = _ratio_or_one(tp + smooth_nr, tp + alpha * fp + beta * fn + smooth_dr)
    return np.maximum(1 - index, 0) ** gamma


def generalized_dice(
    probs,
    targets,
    weight_type="square",
    batch_weights=False,
    weighted_mean=False,
    smooth_nr=1e-5,
    smooth_dr=1e-5,
    include_background=True,
    from_logits=None,
):
    """Sudre et al. as MONAI's GeneralizedDiceLoss (an infinite weight becomes the largest
    finite one of its row); ``weighted_mean``: Σ_c w_c ℓ_c / Σ_c w_c of per-class Dice."""
    p, t = _overlap_inputs(probs, targets, include_background, from_logits)
    intersection, ground, predicted = (p * t).sum(1), t.sum(1), p.sum(1)
    volumes = np.broadcast_to(ground.sum(0), ground.shape) if batch_weights else ground
    with np.errstate(divide="ignore"):
        weights = {"square": 1 / volumes**2, "simple": 1 / volumes}.get(weight_type)
    weights = np.ones_like(volumes) if weights is None else weights.copy()
    for row in weights:
        infinite = np.isinf(row)
        row[infinite] = 0.0
        row[infinite] = row.max(initial=0.0)
    if weighted_mean:
        per_class = 1 - _ratio_or_one(2 * intersection + smooth_nr, predicted + ground + smooth_dr)
        total = weights.sum(1)
        return np.where(total == 0, 0.0, (weights * per_class).sum(1) / np.where(total, total, 1))
    return 1 - _ratio_or_one(
        2 * (weights * intersection).sum(1) + smooth_nr,
        (weights * (predicted + ground)).sum(1) + smooth_dr,
    )


def chamfer(
    x,
    y,
    x_lengths=None,
    y_lengths=None,
    squared=True,
    point_reduction="mean",
    single_directional=False,
):
    """PyTorch3D's chamfer_distance per cloud pair, by brute force over the valid points."""
    x, y = _f64(x, y)
    out = []
    for b in range(x.shape[0]):
        xb = x[b, : x.shape[1] if x_lengths is None else int(np.clip(x_lengths[b], 0, None))]
        yb = y[b, : y.shape[1] if y_lengths is None else int(np.clip(y_lengths[b], 0, None))]
        distances = ((xb[:, None] - yb[None]) ** 2).sum(-1)
        if not squared:
            distances = np.sqrt(distances)
        total = 0.0
        directions = [(distances, 1)] if single_directional else [(distances, 1), (distances, 0)]
        for matrix, axis in directions:
            counted = matrix.shape[1 - axis]
            if counted == 0 or matrix.shape[axis] == 0:
                continue  # an empty cloud, or no neighbour to be found: 0
            nearest = matrix.min(axis=axis)
            total += nearest.sum() if point_reduction == "sum" else nearest.mean()
        out.append(total)
    return np.array(out)


def gram_matrix(features):
    """Gatys et al.'s Gram matrix F Fᵀ, divided by the number of positions."""
    (f,) = _f64(features)
    f = f.reshape(f.shape[0], -1, f.shape[-1])
    return np.einsum("bpc,bpd->bcd", f, f) / f.shape[1]


def style_loss(features, targets, weights=None):
    """Σ_l w_l E_l, E_l = Σ(G − A)² / (4 C² P²) on unnormalized Gram matrices (Gatys)."""
    weights = [1.0] * len(features) if weights is None else weights
    total = 0.0
    for f, t, w in zip(features, targets, weights, strict=True):
        f, t = _f64(f, t)
        positions_f = np.prod(f.shape[1:-1])
        positions_t = np.prod(t.shape[1:-1])
        channels = f.shape[-1]
        g = gram_matrix(f) * positions_f  # unnormalized
        a = gram_matrix(t) * positions_t
        e = ((g / positions_f - a / positions_t) ** 2).sum(axis=(1, 2)) / (4 * channels**2)
        if positions_f == positions_t:  # Gatys' formula as printed
            e_printed = ((g - a) ** 2).sum(axis=(1, 2)) / (4 * channels**2 * positions_f**2)
            assert np.allclose(e, e_printed)
        total = total + w * e
    return total


def perceptual_loss(features, targets, weights=None):
    """Johnson et al.'s feature reconstruction loss ‖φ(ŷ) − φ(y)‖² / (C H W), summed over layers."""
    weights = [1.0] * len(features) if weights is None else weights
    total = 0.0
    for f, t, w in zip(features, targets, weights, strict=True):
        f, t = _f64(f, t)
        d = (f - t) ** 2
        total = total + w * d.reshape(f.shape[0], -1).mean(axis=1)
    return total

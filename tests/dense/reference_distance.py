"""Float64 NumPy references of the distance-transform losses, with scipy's exact EDT.

Each returns the per-(sample, class) (``reduction="none"``) values, following Kervadec et
al.'s and Karimi and Salcudean's formulas as MONAI writes them (its distance maps, loops
over samples and classes).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tests.dense.reference import _overlap_inputs


def _spatial(probs, targets, include_background, from_logits):
    """Probabilities and targets ``[batch, *spatial, classes]`` as the overlap losses read them."""
    p, t = _overlap_inputs(probs, targets, include_background, from_logits)
    shape = (*np.shape(probs)[:-1], p.shape[-1])
    return p.reshape(shape), t.reshape(shape)


def across_the_boundary(mask, sampling=None):
    """MONAI's ``edt(mask) + edt(~mask)`` of one image, 0 if it is all inside or outside."""
    if not mask.any() or mask.all():
        return np.zeros(mask.shape)
    inside = ndimage.distance_transform_edt(mask, sampling=sampling)
    outside = ndimage.distance_transform_edt(~mask, sampling=sampling)
    return np.where(mask, inside, outside)


def signed_distance(mask, sampling=None):
    """Kervadec et al.'s map: ``−(d − 1)`` inside, ``d`` outside, 0 without a boundary."""
    distance = across_the_boundary(mask, sampling)
    if not mask.any() or mask.all():
        return distance
    return np.where(mask, 1 - distance, distance)


def _per_image(fn, p, t):
    """``fn(p[b, ..., c], t[b, ..., c])`` for every sample and class, ``[batch, classes]``."""
    out = np.zeros((p.shape[0], p.shape[-1]))
    for b, c in np.ndindex(out.shape):
        out[b, c] = fn(p[b, ..., c], t[b, ..., c])
    return out


def boundary(probs, targets, sampling=None, include_background=True, from_logits=None):
    """Mean over pixels of ``p · φ``, φ the signed distance map of the target mask."""
    p, t = _spatial(probs, targets, include_background, from_logits)
    return _per_image(lambda p, t: np.mean(p * signed_distance(t > 0.5, sampling)), p, t)


def hausdorff_dt(
    probs, targets, alpha=2.0, sampling=None, include_background=True, from_logits=None
):
    """Mean over pixels of ``(p − t)² (d_p^α + d_t^α)``, masks ``p > 0.5`` and ``t > 0.5``."""
    p, t = _spatial(probs, targets, include_background, from_logits)

    def one(p, t):
        weight = across_the_boundary(p > 0.5, sampling) ** alpha
        weight = weight + across_the_boundary(t > 0.5, sampling) ** alpha
        return np.mean((p - t) ** 2 * weight)

    return _per_image(one, p, t)

"""Float64 NumPy references of total variation and the gradient difference loss.

Direct transcriptions of the definitions, pixel by pixel: every pixel (and channel) with a
neighbour along a spatial axis contributes that axis's difference.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64


def _differences(x):
    """Per sample: the forward differences along each spatial axis, and each pixel's
    gradient (0 past the last pixel of an axis), of ``x`` ``[batch, ..., channels]``."""
    spatial = x.shape[1:-1]
    out = []
    for b in range(x.shape[0]):
        per_axis, per_pixel = [[] for _ in spatial], []
        for index in np.ndindex(*x.shape[1:]):
            gradient = []
            for k, size in enumerate(spatial):
                if index[k] + 1 < size:
                    neighbour = list(index)
                    neighbour[k] += 1
                    step = x[(b, *neighbour)] - x[(b, *index)]
                    per_axis[k].append(step)
                    gradient.append(step)
                else:
                    gradient.append(0.0)
            per_pixel.append(gradient)
        out.append((per_axis, per_pixel))
    return out


def _reduced(terms, pixel_reduction):
    total = float(np.sum(terms))
    return total / len(terms) if pixel_reduction == "mean" and len(terms) else total


def total_variation(images, isotropic=False, squared=False, pixel_reduction="sum"):
    (x,) = _f64(images)
    values = []
    for per_axis, per_pixel in _differences(x):
        if squared:
            groups = [np.square(steps) for steps in per_axis]
        elif isotropic:
            groups = [[np.sqrt(np.sum(np.square(g))) for g in per_pixel]]
        else:
            groups = [np.abs(steps) for steps in per_axis]
        values.append(sum(_reduced(g, pixel_reduction) for g in groups))
    return np.array(values)


def gradient_difference(predictions, targets, alpha=1.0, pixel_reduction="sum"):
    p, t = _f64(predictions, targets)
    values = []
    for (ours, _), (theirs, _) in zip(_differences(p), _differences(t), strict=True):
        values.append(
            sum(
                _reduced(np.abs(np.abs(ty) - np.abs(py)) ** alpha, pixel_reduction)
                for py, ty in zip(ours, theirs, strict=True)
            )
        )
    return np.array(values)

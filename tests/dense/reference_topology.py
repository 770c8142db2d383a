"""Float64 NumPy references of the topology losses, from Shit et al.'s algorithm.

Min and max pooling are written out as shifted copies of an array padded with ±inf, so
they share nothing with ``jax.lax.reduce_window``.
"""

from __future__ import annotations

import itertools

import numpy as np

from tests.dense.reference import _overlap_inputs


def pool(x, window, maximum):
    """Stride-1 max (min) pooling of ``x`` ``[batch, *spatial, channels]``, the padding
    outside the image never chosen (torch's ``max_pool`` with ``padding=window // 2``)."""
    x = np.asarray(x, np.float64)
    half = [w // 2 for w in window]
    fill = -np.inf if maximum else np.inf
    padded = np.pad(x, [(0, 0), *((h, h) for h in half), (0, 0)], constant_values=fill)
    spatial = x.shape[1:-1]
    out = np.full(x.shape, fill)
    for offset in itertools.product(*(range(w) for w in window)):
        index = (
            slice(None),
            *(slice(o, o + n) for o, n in zip(offset, spatial, strict=True)),
            slice(None),
        )
        out = np.maximum(out, padded[index]) if maximum else np.minimum(out, padded[index])
    return out


def soft_erode(x):
    """The minimum of the 3-long min pools along each spatial axis."""
    spatial = np.ndim(x) - 2
    return np.minimum.reduce(
        [pool(x, [3 if a == k else 1 for a in range(spatial)], False) for k in range(spatial)]
    )


def soft_dilate(x):
    return pool(x, [3] * (np.ndim(x) - 2), True)


def soft_skeleton(x, num_iters):
    """Shit et al., Algorithm 1: skel = relu(x − open(x)); then num_iters erosions, each
    adding relu(δ − skel·δ) with δ = relu(x − open(x))."""

    def relu(v):
        return np.maximum(v, 0)

    def opened(v):
        return soft_dilate(soft_erode(v))

    x = np.asarray(x, np.float64)
    skeleton = relu(x - opened(x))
    for _ in range(num_iters):
        x = soft_erode(x)
        delta = relu(x - opened(x))
        skeleton = skeleton + relu(delta - skeleton * delta)
    return skeleton


def soft_cldice(
    probs,
    targets,
    num_iters=3,
    smooth_nr=1.0,
    smooth_dr=1.0,
    smooth=1e-4,
    include_background=True,
    from_logits=None,
):
    """1 − 2·T_prec·T_sens / (T_prec + T_sens + s) per sample, T_prec = (Σ S(p)·t + s_nr) /
    (Σ S(p) + s_dr), T_sens = (Σ S(t)·p + s_nr) / (Σ S(t) + s_dr), sums over pixels and
    classes."""
    shape = np.shape(probs)
    p, t = _overlap_inputs(probs, targets, include_background, from_logits)
    p, t = p.reshape(*shape[:-1], -1), t.reshape(*shape[:-1], -1)
    axes = tuple(range(1, p.ndim))
    skeleton_p, skeleton_t = soft_skeleton(p, num_iters), soft_skeleton(t, num_iters)
    precision = ((skeleton_p * t).sum(axes) + smooth_nr) / (skeleton_p.sum(axes) + smooth_dr)
    sensitivity = ((skeleton_t * p).sum(axes) + smooth_nr) / (skeleton_t.sum(axes) + smooth_dr)
    return 1 - 2 * precision * sensitivity / (precision + sensitivity + smooth)

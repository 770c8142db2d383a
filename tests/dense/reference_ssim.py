"""Float64 NumPy references of ``ssim`` and ``ms_ssim`` from Wang et al.'s formulas.

Written as the papers state them, not as jaxloss computes them: the window is the full
(non-separable) N-D Gaussian applied to every "valid" patch, and the variances and the
covariance are the weighted sums of centred products
(σ_x² = Σ_i w_i (x_i − μ_x)², Wang et al. 2004, eq. 14–16), not E[x²] − μ².
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def gaussian_window(window_size: int, sigma: float, ndim: int) -> np.ndarray:
    """The normalized N-D Gaussian window ``[window_size] * ndim``."""
    offsets = np.arange(window_size) - (window_size - 1) / 2
    taps = np.exp(-(offsets**2) / (2.0 * sigma**2)) if np.isfinite(sigma) else np.ones(window_size)
    window = taps
    for _ in range(ndim - 1):
        window = np.multiply.outer(window, taps)
    return window / window.sum()


def _ssim_and_cs(x, y, window, c1, c2):
    """Mean SSIM and mean cs of two single-channel images over their valid windows."""
    nd = x.ndim
    patches_x = sliding_window_view(x, window.shape)
    patches_y = sliding_window_view(y, window.shape)
    axes = tuple(range(nd, 2 * nd))

    def weighted(a):
        return np.sum(a * window, axis=axes)

    mu_x, mu_y = weighted(patches_x), weighted(patches_y)
    centred_x = patches_x - np.expand_dims(mu_x, axes)
    centred_y = patches_y - np.expand_dims(mu_y, axes)
    var_x, var_y = weighted(centred_x**2), weighted(centred_y**2)
    cov = weighted(centred_x * centred_y)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    return np.mean(luminance * cs), np.mean(cs)


def _per_channel(x, y, window, c1, c2):
    """``[batch, channels, 2]``: (SSIM, cs) of every (sample, channel)."""
    batch, channels = x.shape[0], x.shape[-1]
    out = np.empty((batch, channels, 2))
    for b in range(batch):
        for c in range(channels):
            out[b, c] = _ssim_and_cs(x[b, ..., c], y[b, ..., c], window, c1, c2)
    return out


def ssim(
    predictions,
    targets,
    *,
    data_range=1.0,
    window_size=11,
    sigma=1.5,
    k1=0.01,
    k2=0.03,
    padding="valid",
    **_,
):
    """Per-sample ``1 − SSIM`` of channel-last images ``[batch, ..., channels]``."""
    x, y = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
    if padding == "same":
        pad = [(0, 0)] + [(window_size // 2,) * 2] * (x.ndim - 2) + [(0, 0)]
        x, y = np.pad(x, pad, mode="reflect"), np.pad(y, pad, mode="reflect")
    window = gaussian_window(window_size, sigma, x.ndim - 2)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return 1 - _per_channel(x, y, window, c1, c2)[..., 0].mean(axis=-1)


def _pooled(x):
    """Halves every spatial axis: pairs averaged, a zero in front of an odd axis."""
    for axis in range(1, x.ndim - 1):
        if x.shape[axis] % 2:
            zeros = np.zeros_like(np.take(x, [0], axis=axis))
            x = np.concatenate([zeros, x], axis=axis)
        even = np.take(x, range(0, x.shape[axis], 2), axis=axis)
        x = (even + np.take(x, range(1, x.shape[axis], 2), axis=axis)) / 2
    return x


def ms_ssim(
    predictions,
    targets,
    *,
    data_range=1.0,
    window_size=11,
    sigma=1.5,
    k1=0.01,
    k2=0.03,
    weights=MS_SSIM_WEIGHTS,
    **_,
):
    """Per-sample ``1 − MS-SSIM`` (pytorch-msssim's pooling and clipping)."""
    x, y = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
    weights = np.asarray(weights, np.float64)
    window = gaussian_window(window_size, sigma, x.ndim - 2)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    value = 1.0
    for scale, weight in enumerate(weights):
        terms = _per_channel(x, y, window, c1, c2)
        last = scale == len(weights) - 1
        value = value * np.maximum(terms[..., 0 if last else 1], 0) ** weight
        if not last:
            x, y = _pooled(x), _pooled(y)
    return 1 - value.mean(axis=-1)

"""Structural similarity losses of image restoration: SSIM and multi-scale SSIM.

Both compare local statistics (means, variances and covariance under a Gaussian window) of
channel-last images ``[batch, ..., channels]`` with any number of spatial axes. The window is
separable: each spatial axis is filtered by one matrix product with a banded matrix of the
1-D Gaussian, applied to blocks of ``_BLOCK`` outputs, which on CPU is 5 to 30 times faster
than a (grouped) convolution; the five moments are filtered in one batch.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName

PADDINGS = ("valid", "same")
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# Outputs per block of the banded product: a block reads _BLOCK + window_size - 1 inputs,
# so a long axis costs O(_BLOCK) multiply-adds per output instead of O(length).
_BLOCK = 64


def _gaussian_window(window_size: int, sigma: jax.Array) -> jax.Array:
    """The normalized 1-D Gaussian of ``window_size`` taps centred on the window's middle."""
    offsets = jnp.arange(window_size, dtype=sigma.dtype) - (window_size - 1) / 2
    taps = jnp.exp(-0.5 * jnp.square(offsets / sigma))
    return taps / jnp.sum(taps)


def _banded(length: int, window: jax.Array) -> jax.Array:
    """``[length, length - window_size + 1]``: column j holds the window at rows j, j + 1, ..."""
    lag = np.arange(length)[:, None] - np.arange(length - window.shape[0] + 1)[None, :]
    inside = (lag >= 0) & (lag < window.shape[0])
    return jnp.where(inside, window[np.clip(lag, 0, window.shape[0] - 1)], 0)


def _filter_last_axis(x: jax.Array, window: jax.Array) -> jax.Array:
    """The "valid" correlation of the last axis of ``x`` with ``window``."""
    size, length = window.shape[0], x.shape[-1]
    outputs = length - size + 1
    if outputs <= _BLOCK:
        return x @ _banded(length, window)
    blocks = -(-outputs // _BLOCK)
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, (blocks + 1) * _BLOCK - length)])
    x = x.reshape(*x.shape[:-1], blocks + 1, _BLOCK)
    # Each block of outputs reads its own inputs and the first size - 1 of the next block.
    spans = jnp.concatenate([x[..., :-1, :], x[..., 1:, : size - 1]], axis=-1)
    out = spans @ _banded(_BLOCK + size - 1, window)
    return out.reshape(*out.shape[:-2], blocks * _BLOCK)[..., :outputs]


def _local_moments(
    x: jax.Array, y: jax.Array, window: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """μx, μy, σx², σy² and σxy under the window at every "valid" position of
    ``[batch, ..., channels]`` images: the five maps filtered as one batch.

    The moments are taken about each image's own mean (the variances do not depend on the
    centre): ``E[x²] − μ²`` cancels far less in float32 when the image has a large offset,
    and not at all on a flat image.
    """
    axes = tuple(range(1, x.ndim - 1))
    centre_x = jax.lax.stop_gradient(jnp.mean(x, axis=axes, keepdims=True))
    centre_y = jax.lax.stop_gradient(jnp.mean(y, axis=axes, keepdims=True))
    x, y = x - centre_x, y - centre_y
    maps = jnp.stack([x, y, x * x, y * y, x * y])
    for axis in range(2, maps.ndim - 1):
        moved = jnp.moveaxis(maps, axis, -1)
        maps = jnp.moveaxis(_filter_last_axis(moved, window), -1, axis)
    mu_x, mu_y, xx, yy, xy = maps
    var_x, var_y, cov = xx - mu_x * mu_x, yy - mu_y * mu_y, xy - mu_x * mu_y
    return mu_x + centre_x, mu_y + centre_y, var_x, var_y, cov


def _similarity(
    x: jax.Array, y: jax.Array, window: jax.Array, c1: jax.Array, c2: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """SSIM and its contrast-structure term cs, each averaged over the positions of every
    (sample, channel): ``[batch, channels]`` twice."""
    mu_x, mu_y, var_x, var_y, cov = _local_moments(x, y, window)
    cs_map = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    axes = tuple(range(1, x.ndim - 1))
    return jnp.mean(luminance * cs_map, axis=axes), jnp.mean(cs_map, axis=axes)


def _images(
    predictions: ArrayLike, targets: ArrayLike, window_size: int, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Float images of one shape and dtype (zeroed in masked samples) and the ``[batch]``
    mask to reduce with."""
    if not isinstance(window_size, (int, np.integer)) or window_size < 1:
        raise ValueError(f"`window_size` must be a positive int, got {window_size!r}.")
    x = _checks.float_array(predictions, "predictions")
    y = _checks.float_array(targets, "targets")
    _checks.equal_shapes(predictions=x, targets=y)
    if x.ndim < 3:
        raise ValueError(
            "`predictions` must be [batch, ..., channels] (channel last, at least one spatial "
            f"axis), got shape {x.shape}."
        )
    dtype = jnp.promote_types(x.dtype, y.dtype)
    mask, (x, y) = masked_inputs(where, x.shape[:1], x.astype(dtype), y.astype(dtype))
    return x, y, mask


def _constants(
    data_range: ArrayLike, k1: ArrayLike, k2: ArrayLike, sigma: ArrayLike, dtype: jnp.dtype
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """C1 = (k1 L)², C2 = (k2 L)² and σ as arrays of ``dtype``, their domains checked."""
    _checks.in_range(data_range, "data_range", low=0, low_open=True)
    _checks.in_range(k1, "k1", low=0, low_open=True)
    _checks.in_range(k2, "k2", low=0, low_open=True)
    _checks.in_range(sigma, "sigma", low=0, low_open=True)
    data_range = jnp.asarray(data_range, dtype)
    c1 = jnp.square(jnp.asarray(k1, dtype) * data_range)
    c2 = jnp.square(jnp.asarray(k2, dtype) * data_range)
    return c1, c2, jnp.asarray(sigma, dtype)


def ssim(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    data_range: ArrayLike = 1.0,
    window_size: int = 11,
    sigma: ArrayLike = 1.5,
    k1: ArrayLike = 0.01,
    k2: ArrayLike = 0.03,
    padding: str = "valid",
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""SSIM loss per sample: one minus the mean structural similarity of two images.

    .. math::
      \ell_b = 1 - \frac{1}{|P|\,C} \sum_{c} \sum_{p \in P}
        \frac{(2 \mu_x \mu_y + C_1)(2 \sigma_{xy} + C_2)}
             {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
      \qquad C_1 = (k_1 L)^2, \; C_2 = (k_2 L)^2

    with ``x`` the predictions and ``y`` the targets of sample ``b`` and channel ``c``; the
    means, variances and covariance are taken under a Gaussian window (``window_size`` taps
    of standard deviation ``sigma`` along every spatial axis) centred at each position ``p``
    where the window fits inside the image ("valid"), and ``L`` is ``data_range``. SSIM
    lies in ``[-1, 1]`` and is 1 for identical images, so the loss lies in ``[0, 2]``.

    This is pytorch-msssim's ``1 - ssim(X, Y, data_range=L, size_average=False)`` and
    MONAI's ``SSIMLoss`` (both channel first; pytorch-msssim's own default ``data_range`` is
    255, jaxloss's 1). With ``padding="same"`` the images are
    reflect-padded by ``window_size // 2`` first, so every pixel is a window centre: kornia's
    ``ssim_loss`` (``ssim3d_loss``) at its default padding is ``ssim(..., padding="same") /
    2`` (``sigma=1.5``, ``reduction="mean"``).

    Args:
      predictions: ``[batch, ..., channels]`` images, channel last, with one or more spatial
        axes (``[batch, height, width, channels]``, ``[batch, depth, height, width,
        channels]``).
      targets: reference images of the same shape.
      data_range: L, the range of the pixel values (1 for images in [0, 1], 255 for 8-bit).
      window_size: number of taps of the Gaussian window along each axis (static).
      sigma: standard deviation of the Gaussian, in pixels.
      k1: luminance constant k₁ of C₁.
      k2: contrast constant k₂ of C₂.
      padding: ``"valid"`` (windows inside the image, as the paper's code) or ``"same"``
        (reflect padding, an odd ``window_size``).
      where: optional boolean mask broadcastable to ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Raises:
      ValueError: if the window does not fit in the image (every spatial size must be at
        least ``window_size``, or larger than ``window_size // 2`` with ``"same"``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[[0.0], [1.0], [0.0], [1.0]]])  # one sample, four pixels
      >>> # one window of weights 1/4 (a huge sigma) on x and x / 2: μx = 1/2, μy = 1/4,
      >>> # σx² = 1/4, σy² = 1/16, σxy = 1/8: SSIM = (1/4 + C₁)/(5/16 + C₁) · (1/4 + C₂)/(5/16 + C₂)
      >>> round(float(jaxloss.ssim(x, x / 2, window_size=4, sigma=1e6)), 4)
      0.3595

    References:
      Wang, Bovik, Sheikh and Simoncelli, "Image quality assessment: from error visibility
      to structural similarity", IEEE TIP 2004.
      https://doi.org/10.1109/TIP.2003.819861
    """
    _checks.choice(padding, PADDINGS, "padding")
    x, y, mask = _images(predictions, targets, window_size, where)
    spatial = x.shape[1:-1]
    if padding == "same":
        if window_size % 2 == 0 or min(spatial) <= window_size // 2:
            raise ValueError(
                f"`padding='same'` needs an odd `window_size` and spatial sizes larger than "
                f"window_size // 2 = {window_size // 2}, got window_size={window_size} and "
                f"images of spatial shape {spatial}."
            )
        pad = [(0, 0)] + [(window_size // 2,) * 2] * len(spatial) + [(0, 0)]
        x, y = jnp.pad(x, pad, mode="reflect"), jnp.pad(y, pad, mode="reflect")
    elif min(spatial) < window_size:
        raise ValueError(
            f"`window_size`={window_size} is larger than the images: spatial shape {spatial} "
            "(every spatial size must be at least window_size, or use a smaller window)."
        )
    c1, c2, sigma = _constants(data_range, k1, k2, sigma, x.dtype)
    similarity, _ = _similarity(x, y, _gaussian_window(window_size, sigma), c1, c2)
    loss = 1 - jnp.mean(similarity, axis=-1)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def _half_size(x: jax.Array) -> jax.Array:
    """2×…×2 average pooling of the spatial axes; an odd axis first gets one zero in front,
    counted in its average (torch's ``avg_pool`` with ``padding = size % 2``)."""
    spatial = x.shape[1:-1]
    x = jnp.pad(x, [(0, 0)] + [(s % 2, 0) for s in spatial] + [(0, 0)])
    halves = [d for s in x.shape[1:-1] for d in (s // 2, 2)]
    x = x.reshape(x.shape[0], *halves, x.shape[-1])
    return jnp.mean(x, axis=tuple(range(2, x.ndim - 1, 2)))


def ms_ssim(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    data_range: ArrayLike = 1.0,
    window_size: int = 11,
    sigma: ArrayLike = 1.5,
    k1: ArrayLike = 0.01,
    k2: ArrayLike = 0.03,
    weights: ArrayLike | tuple[float, ...] = MS_SSIM_WEIGHTS,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Multi-scale SSIM loss per sample: one minus the MS-SSIM of two images.

    .. math::
      \ell_b = 1 - \frac{1}{C} \sum_c \max(\mathrm{SSIM}^{(M)}_{b,c}, 0)^{w_M}
        \prod_{j=1}^{M-1} \max(\mathrm{cs}^{(j)}_{b,c}, 0)^{w_j}

    over ``M = len(weights)`` scales: scale 1 is the image, and each next scale halves every
    spatial axis by 2×…×2 average pooling. ``cs`` is the contrast-structure term of SSIM,
    :math:`(2 \sigma_{xy} + C_2) / (\sigma_x^2 + \sigma_y^2 + C_2)`, and both are averaged
    over the "valid" window positions of the scale, as in ``ssim``. The negative terms are
    clipped at 0 and their gradients are 0 (not the NaN of ``0^{w-1}``).

    This is pytorch-msssim's ``1 - ms_ssim(X, Y, data_range=data_range, size_average=False)``
    (channel first; its default ``data_range`` is 255, jaxloss's 1), including its pooling
    of odd sizes (one zero of padding, counted in the average). The
    window must fit at the coarsest scale: every spatial size at least
    ``(window_size - 1)·2^(M-1) + 1`` (161 by default).

    Args:
      predictions: ``[batch, ..., channels]`` images, channel last, with one or more spatial
        axes.
      targets: reference images of the same shape.
      data_range: L, the range of the pixel values (1 for images in [0, 1], 255 for 8-bit).
      window_size: number of taps of the Gaussian window along each axis (static).
      sigma: standard deviation of the Gaussian, in pixels.
      k1: luminance constant k₁ of C₁.
      k2: contrast constant k₂ of C₂.
      weights: ``[num_scales]`` exponents ``w_j ≥ 0``, finest scale first (Wang et al.'s five);
        their number is static.
      where: optional boolean mask broadcastable to ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Raises:
      ValueError: if the images are too small for the window at the coarsest scale.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[[0.0], [1.0], [0.0], [1.0]]])
      >>> # two scales, windows of two taps: cs = (1/4 + C₂)/(5/16 + C₂) at every position of
      >>> # the first; the second compares [1/2, 1/2] with [1/4, 1/4], SSIM = (1/4 + C₁)/(5/16 + C₁)
      >>> round(float(jaxloss.ms_ssim(x, x / 2, window_size=2, sigma=1e6, weights=(0.5, 0.5))), 4)
      0.1997

    References:
      Wang, Simoncelli and Bovik, "Multiscale structural similarity for image quality
      assessment", Asilomar Conference on Signals, Systems and Computers 2003.
      https://doi.org/10.1109/ACSSC.2003.1292216
    """
    x, y, mask = _images(predictions, targets, window_size, where)
    weights = _checks.float_array(jnp.asarray(weights), "weights", allow_int=True)
    # Exponents of the scales' terms: a negative one turns a term of 0 into +inf.
    _checks.in_range(weights, "weights", low=0)
    weights = weights.astype(x.dtype)
    if weights.ndim != 1 or weights.shape[0] < 1:
        raise ValueError(f"`weights` must be a [num_scales] vector, got shape {weights.shape}.")
    scales = weights.shape[0]
    coarsest = x.shape[1:-1]
    for _ in range(scales - 1):
        coarsest = tuple(math.ceil(s / 2) for s in coarsest)
    if min(coarsest) < window_size:
        smallest = (window_size - 1) * 2 ** (scales - 1) + 1
        raise ValueError(
            f"Images of spatial shape {x.shape[1:-1]} are too small for {scales} scales with "
            f"`window_size`={window_size}: every spatial size must be at least {smallest}."
        )
    c1, c2, sigma = _constants(data_range, k1, k2, sigma, x.dtype)
    window = _gaussian_window(window_size, sigma)
    terms = []
    for scale in range(scales):
        similarity, cs = _similarity(x, y, window, c1, c2)
        if scale < scales - 1:
            terms.append(cs)
            pooled = _half_size(jnp.concatenate([x, y]))
            x, y = pooled[: x.shape[0]], pooled[x.shape[0] :]
    terms.append(similarity)
    factors = _numerics.safe_pow(jnp.maximum(jnp.stack(terms), 0), weights[:, None, None])
    loss = 1 - jnp.mean(jnp.prod(factors, axis=0), axis=-1)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)

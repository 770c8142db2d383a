"""Image regularizers and gradient losses: total variation and the gradient difference loss.

Both read the forward differences ``x[i+1] − x[i]`` of channel-last images
``[batch, height, width, channels]`` or volumes ``[batch, depth, height, width, channels]``
(any number of spatial axes, counted from ``ndim``) along each spatial axis, and return one
value per sample, ``[batch]``. An axis of length 1 has no differences and adds 0.

``pixel_reduction`` decides what one sample's value is: ``"sum"`` (the papers' definitions)
adds every term, so the value grows with the resolution; ``"mean"`` divides each spatial
axis's sum by its own number of differences (``(H − 1)·W·C`` along the height,
``H·(W − 1)·C`` along the width) and adds those means, kornia's ``reduction="mean"``.

Absolute values of differences have the subgradient 0 at 0 (torch's, and kornia's), so a
flat region pulls no pixel up or down.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName

PIXEL_REDUCTIONS = ("sum", "mean")


def _spatial_axes(x: jax.Array, name: str) -> tuple[int, ...]:
    """The axes between the batch and the channels of ``x`` ``[batch, ..., channels]``."""
    if x.ndim < 3:
        raise ValueError(
            f"`{name}` must be [batch, ..., channels] with at least one spatial axis "
            f"(channel last), got shape {x.shape}."
        )
    return tuple(range(1, x.ndim - 1))


def _sum_of(terms: list[jax.Array]) -> jax.Array:
    """The sum of a non-empty list of arrays (an array, where ``sum`` would start at 0)."""
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _per_sample(terms: jax.Array, pixel_reduction: str) -> jax.Array:
    """The sum (or mean) of ``terms`` ``[batch, ...]`` over everything but the batch; an
    empty set of terms gives 0."""
    total = jnp.sum(terms, axis=tuple(range(1, terms.ndim)))
    count = math.prod(terms.shape[1:])
    if pixel_reduction == "mean" and count > 0:
        return total / count
    return total


def total_variation(
    images: ArrayLike,
    *,
    isotropic: bool = False,
    squared: bool = False,
    pixel_reduction: str = "sum",
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Total variation of each image (or volume): the sum of its absolute differences.

    .. math::
      \ell_b = \sum_k \sum_{i} |x_{b, i + e_k} - x_{b, i}|

    over every spatial axis ``k`` and every pixel ``i`` (and channel) that has a neighbour
    along it: the anisotropic total variation. As a regularizer it prefers piecewise
    constant images, removing noise while keeping edges (Rudin, Osher and Fatemi), and it
    smooths the images of feature inversion and style transfer.

    With ``squared=True`` the differences are squared (:math:`\sum_k \sum_i (\Delta_k x)^2`,
    Mahendran and Vedaldi's β = 2), which smooths edges too. With ``isotropic=True`` each
    pixel adds the norm of its gradient, :math:`\sum_i \sqrt{\sum_k (\Delta_k x)_i^2}`, a
    difference past the last pixel of an axis counting 0 (Chambolle's discretization); the
    norm has a zero gradient where the image is flat. ``squared`` takes precedence (the
    two agree for squares). ``pixel_reduction="mean"`` divides by the number of terms:
    per axis for the anisotropic and squared forms (kornia's mean), per pixel and channel
    for the isotropic one.

    kornia's ``total_variation`` returns one value per (sample, channel), ``[batch,
    channels]``; this sums the channels (``pixel_reduction="mean"``: averages them).

    Args:
      images: ``[batch, ..., channels]`` floating images, channel last: ``[batch, height,
        width, channels]``, ``[batch, depth, height, width, channels]``, or any number of
        spatial axes.
      isotropic: add one gradient norm per pixel instead of one absolute value per
        difference.
      squared: add squared differences.
      pixel_reduction: ``"sum"`` or ``"mean"`` over the differences of a sample.
      where: optional boolean mask broadcastable to ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample values for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> image = jnp.array([[0.0, 1.0], [3.0, 1.0]])[None, :, :, None]  # one 2×2 image
      >>> # down: |3 − 0| + |1 − 1|; right: |1 − 0| + |1 − 3|
      >>> jaxloss.total_variation(image, reduction="none")
      Array([6.], dtype=float32)
      >>> jaxloss.total_variation(image, pixel_reduction="mean", reduction="none")
      Array([3.], dtype=float32)

    References:
      Rudin, Osher and Fatemi, "Nonlinear total variation based noise removal algorithms",
      Physica D 1992. https://doi.org/10.1016/0167-2789(92)90242-F
      Chambolle, "An Algorithm for Total Variation Minimization and Applications", JMIV
      2004. Mahendran and Vedaldi, "Understanding Deep Image Representations by Inverting
      Them", CVPR 2015.
    """
    _checks.choice(pixel_reduction, PIXEL_REDUCTIONS, "pixel_reduction")
    images = _checks.float_array(images, "images")
    axes = _spatial_axes(images, "images")
    mask, (images,) = masked_inputs(where, images.shape[:1], images)
    differences = [jnp.diff(images, axis=axis) for axis in axes]
    if squared:
        terms = [jnp.square(d) for d in differences]
    elif isotropic:
        # Pad each axis's differences with a 0 at its end, so every pixel has one of each.
        padded = [
            jnp.pad(d, [(0, int(a == axis)) for a in range(d.ndim)])
            for d, axis in zip(differences, axes, strict=True)
        ]
        terms = [_numerics.safe_sqrt(_sum_of([jnp.square(d) for d in padded]))]
    else:
        terms = [_numerics.abs_zero_subgradient(d) for d in differences]
    loss = _sum_of([_per_sample(t, pixel_reduction) for t in terms])
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def gradient_difference(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 1.0,
    pixel_reduction: str = "sum",
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Gradient difference loss (Mathieu, Couprie and LeCun 2016) per image or volume.

    .. math::
      \ell_b = \sum_k \sum_i \Big|\, |\Delta_k y_{b,i}| - |\Delta_k \hat y_{b,i}| \,\Big|^{\alpha},
      \qquad \Delta_k x_i = x_{i + e_k} - x_i

    with ``y`` the ``targets`` and ``ŷ`` the ``predictions``, over every spatial axis ``k``
    and every pixel (and channel) with a neighbour along it. It compares the strength of
    the edges, not the intensities: added to an L1 or L2 loss it keeps predicted frames
    (or super-resolved, denoised or synthesized images) sharp where a pixel loss alone
    blurs them. It is 0 for a prediction offset from the target by a constant.

    ``alpha`` is any positive exponent (the paper uses 1); at a zero gap the power has a
    zero gradient, so ``alpha < 1`` stays finite. ``pixel_reduction="mean"`` averages each
    axis's terms instead of adding them (the paper sums), so the value does not grow with
    the resolution.

    Args:
      predictions: ``[batch, ..., channels]`` floating images (``[batch, height, width,
        channels]``, ``[batch, depth, height, width, channels]``, ...), channel last.
      targets: images of the same shape.
      alpha: the exponent α > 0 of each gap; may be traced.
      pixel_reduction: ``"sum"`` or ``"mean"`` over the terms of each axis.
      where: optional boolean mask broadcastable to ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> targets = jnp.array([0.0, 2.0, 2.0])[None, :, None]  # one 1-D signal of 3 pixels
      >>> predictions = jnp.array([1.0, 1.0, 2.0])[None, :, None]
      >>> # | |2| − |0| | + | |0| − |1| | = 3
      >>> jaxloss.gradient_difference(predictions, targets, reduction="none")
      Array([3.], dtype=float32)

    References:
      Mathieu, Couprie and LeCun, "Deep multi-scale video prediction beyond mean square
      error", ICLR 2016. https://arxiv.org/abs/1511.05440
    """
    _checks.in_range(alpha, "alpha", low=0, low_open=True)
    _checks.choice(pixel_reduction, PIXEL_REDUCTIONS, "pixel_reduction")
    predictions = _checks.float_array(predictions, "predictions")
    targets = _checks.float_array(targets, "targets", allow_int=True)
    _checks.equal_shapes(predictions=predictions, targets=targets)
    axes = _spatial_axes(predictions, "predictions")
    mask, (predictions, targets) = masked_inputs(
        where, predictions.shape[:1], predictions, targets.astype(predictions.dtype)
    )
    plain = isinstance(alpha, (int, float)) and alpha == 1
    per_axis = []
    for axis in axes:
        gap = _numerics.abs_zero_subgradient(
            _numerics.abs_zero_subgradient(jnp.diff(targets, axis=axis))
            - _numerics.abs_zero_subgradient(jnp.diff(predictions, axis=axis))
        )
        if not plain:
            gap = _numerics.safe_pow(gap, jnp.asarray(alpha, gap.dtype))
        per_axis.append(_per_sample(gap, pixel_reduction))
    return reduce_loss(_sum_of(per_axis), reduction, where=mask, axis_name=axis_name)

"""Dense prediction and point sets: overlap losses, Chamfer distance, style and perceptual losses.

Shapes:

* ``dice`` and ``tversky`` take channel-last probabilities ``[batch, ..., num_classes]`` (any
  number of spatial axes) and targets of the same shape, or integer label maps
  ``[batch, ...]``; they return one value per (sample, class), ``[batch, num_classes]``.
* ``chamfer`` takes point clouds ``x`` ``[batch, num_x, dim]`` and ``y``
  ``[batch, num_y, dim]``, padded, with their lengths; one value per cloud pair, ``[batch]``.
* ``gram_matrix`` maps feature maps ``[batch, ..., channels]`` to ``[batch, channels,
  channels]``; ``style_loss`` and ``perceptual_loss`` take lists of such feature maps (one per
  layer of the caller's feature extractor) and return one value per sample, ``[batch]``.

Overlap losses are ratios of sums over all pixels, so they do not care how rare a class is: a
tumour covering 0.1% of an image weighs as much as the background. Their ratios are defined
everywhere, including classes absent from both the prediction and the target.

``chamfer`` finds nearest neighbours in blocks of ``chunk_size`` points with a running
minimum, so the ``num_x × num_y`` distance matrix is never stored, and its gradient comes from
the nearest-neighbour indices alone (a ``custom_vjp``), so the backward pass costs
``O((num_x + num_y)·dim)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import (
    AxisName,
    masked_inputs,
    reduce_loss,
    safe_divide,
    valid_class_ids,
    zero_masked,
)

POINT_REDUCTIONS = ("mean", "sum")


def _probs_and_targets(
    probs: ArrayLike, targets: ArrayLike, include_background: bool, where: ArrayLike | None
) -> tuple[jax.Array, jax.Array, tuple[int, ...], jax.Array | None]:
    """Float probabilities and targets of one shape, the axes the overlap sums run over, and
    the ``[batch, num_classes]`` mask to reduce with.

    Integer label maps become one-hot targets; a pixel whose label is not a class id in
    ``[0, num_classes)`` (a "void" 255, say) is left out of every sum, its probabilities too.
    """
    probs = _checks.float_array(probs, "probs")
    _checks.probabilities(probs, "probs")
    if probs.ndim < 2:
        raise ValueError(
            f"`probs` must be [batch, ..., num_classes] (channel last), got shape {probs.shape}."
        )
    num_classes = probs.shape[-1]
    targets = jnp.asarray(targets)
    if targets.shape == probs.shape[:-1]:
        labels = _checks.integer_array(targets, "targets")
        counted = valid_class_ids(labels, num_classes)
        probs = jnp.where(counted[..., None], probs, 0)
        targets = jax.nn.one_hot(labels, num_classes, dtype=probs.dtype)
    elif targets.shape == probs.shape:
        targets = _checks.float_array(targets, "targets", allow_int=True).astype(probs.dtype)
        _checks.probabilities(targets, "targets")
    else:
        raise ValueError(
            f"`targets` must have the shape of `probs` {probs.shape} (per-class targets) or "
            f"{probs.shape[:-1]} (integer labels), got {targets.shape}."
        )
    if not include_background:
        if num_classes < 2:
            raise ValueError(
                "`include_background=False` drops class 0 and leaves no class of `probs` "
                f"{probs.shape}."
            )
        probs, targets = probs[..., 1:], targets[..., 1:]
    axes = tuple(range(1, probs.ndim - 1))
    mask, _ = masked_inputs(where, (probs.shape[0], probs.shape[-1]))
    if mask is not None:
        # A (sample, class) entry reads only its class's column of the sample's pixels:
        # zeroing that column keeps the padding out of every sum, and no other entry sees it.
        probs, targets = zero_masked(jnp.expand_dims(mask, axes), probs, targets)
    return probs, targets, axes, mask


def _overlap_ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, and 1 (a perfect score) where the denominator is 0.

    Without smoothing, a class absent from both the prediction and the target gives 0 / 0;
    nothing was predicted wrongly, so the score is 1 and the loss 0, with zero gradients.
    """
    empty = denominator == 0
    return jnp.where(empty, 1, numerator / jnp.where(empty, 1, denominator))


def dice(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    smooth_nr: ArrayLike = 1e-5,
    smooth_dr: ArrayLike = 1e-5,
    squared: bool = False,
    include_background: bool = True,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Soft Dice loss per (sample, class), as MONAI's ``DiceLoss``.

    .. math::
      \ell_{b,c} = 1 - \frac{2 \sum_i p_{b,i,c} t_{b,i,c} + s_{nr}}
                             {\sum_i p_{b,i,c} + \sum_i t_{b,i,c} + s_{dr}}

    summed over every pixel (voxel) ``i`` of sample ``b``; with ``squared=True`` the
    denominator sums ``p²`` and ``t²`` (Milletari et al.'s V-Net form). Each class is scored
    on its own overlap, however few pixels it covers, which is why Dice trains segmenters of
    small structures (a tumour of 0.1% of the pixels) where per-pixel cross-entropy is
    swamped by the background.

    Where the denominator is 0 (the class is absent from the prediction and the target and
    ``smooth_dr=0``) the score is taken as 1: the loss is 0, not NaN. With the default
    smoothing an absent class scores ``s_nr / s_dr = 1`` the same way.

    Args:
      probs: ``[batch, ..., num_classes]`` probabilities (after a softmax or sigmoid),
        channel last; any number of spatial axes.
      targets: the same shape (one-hot or soft targets), or integer labels ``[batch, ...]``.
        Pixels whose label is not in ``[0, num_classes)`` (e.g. 255 for "void") are left
        out of every sum.
      smooth_nr: s_nr, added to the numerator.
      smooth_dr: s_dr, added to the denominator.
      squared: sum squares in the denominator.
      include_background: if False, class 0 is dropped and the output has
        ``num_classes - 1`` columns (MONAI's option).
      where: optional boolean mask broadcastable to ``[batch, num_classes]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch, num_classes]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-(sample, class) losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> probs = jnp.array([[[0.75, 0.25], [0.25, 0.75]]])  # one sample, two pixels
      >>> labels = jnp.array([[0, 1]])
      >>> # per class: 1 − 2·0.75 / (1.0 + 1) = 0.25
      >>> jaxloss.dice(probs, labels, reduction="none", smooth_nr=0.0, smooth_dr=0.0)
      Array([[0.25, 0.25]], dtype=float32)

    References:
      Milletari, Navab and Ahmadi, "V-Net: Fully Convolutional Neural Networks for
      Volumetric Medical Image Segmentation", 3DV 2016. Sudre et al., "Generalised Dice
      overlap as a deep learning loss function for highly unbalanced segmentations",
      DLMIA 2017.
    """
    _checks.in_range(smooth_nr, "smooth_nr", low=0)
    _checks.in_range(smooth_dr, "smooth_dr", low=0)
    p, t, axes, mask = _probs_and_targets(probs, targets, include_background, where)
    intersection = jnp.sum(p * t, axis=axes)
    if squared:
        denominator = jnp.sum(jnp.square(p), axis=axes) + jnp.sum(jnp.square(t), axis=axes)
    else:
        denominator = jnp.sum(p, axis=axes) + jnp.sum(t, axis=axes)
    score = _overlap_ratio(
        2 * intersection + jnp.asarray(smooth_nr, p.dtype),
        denominator + jnp.asarray(smooth_dr, p.dtype),
    )
    loss = 1 - score
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def tversky(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 0.5,
    gamma: ArrayLike = 1.0,
    smooth_nr: ArrayLike = 1e-5,
    smooth_dr: ArrayLike = 1e-5,
    include_background: bool = True,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Tversky loss per (sample, class), and the focal Tversky loss for ``gamma != 1``.

    .. math::
      \ell_{b,c} = \max(0, 1 - \mathrm{TI}_{b,c})^{\gamma}, \qquad
      \mathrm{TI} = \frac{TP + s_{nr}}{TP + \alpha FP + \beta FN + s_{dr}}

    with ``TP = Σ p t``, ``FP = Σ p (1 − t)`` and ``FN = Σ (1 − p) t`` over the pixels of a
    sample. ``alpha`` prices false positives and ``beta`` false negatives: ``beta > alpha``
    favours recall, which is what detecting small lesions needs. ``alpha = beta = 0.5`` is
    the Dice loss (exactly, without smoothing); ``alpha = beta = 1`` the Jaccard (IoU) loss.

    ``gamma`` is the exponent applied to ``1 − TI`` (Abraham and Khan write it as
    ``1/γ``; their γ = 4/3 is ``gamma=0.75`` here). ``1 − TI`` is clamped at 0, so a
    smoothing with ``s_nr > s_dr`` cannot make a fractional power NaN; a class absent from
    prediction and target with zero smoothing scores TI = 1 (loss 0), as in ``dice``.

    Args:
      probs: ``[batch, ..., num_classes]`` probabilities, channel last.
      targets: the same shape, or integer labels ``[batch, ...]`` (labels outside
        ``[0, num_classes)`` leave the pixel out).
      alpha: weight of false positives.
      beta: weight of false negatives.
      gamma: focal exponent (1: the plain Tversky loss).
      smooth_nr: s_nr, added to the numerator.
      smooth_dr: s_dr, added to the denominator.
      include_background: if False, class 0 is dropped from the output.
      where: optional boolean mask broadcastable to ``[batch, num_classes]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch, num_classes]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-(sample, class) losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> probs = jnp.array([[[0.5], [0.5], [0.0]]])  # three pixels, one class
      >>> targets = jnp.array([[[1.0], [0.0], [1.0]]])
      >>> # TP = 0.5, FP = 0.5, FN = 1.5: TI = 0.5 / (0.5 + 0.3·0.5 + 0.7·1.5) = 0.294...
      >>> round(float(jaxloss.tversky(probs, targets, alpha=0.3, beta=0.7,
      ...                             smooth_nr=0.0, smooth_dr=0.0)), 4)
      0.7059

    References:
      Salehi, Erdogmus and Gholipour, "Tversky loss function for image segmentation using
      3D fully convolutional deep networks", MLMI 2017. Abraham and Khan, "A Novel Focal
      Tversky loss function with improved Attention U-Net for lesion segmentation",
      ISBI 2019.
    """
    _checks.in_range(alpha, "alpha", low=0)
    _checks.in_range(beta, "beta", low=0)
    _checks.in_range(gamma, "gamma", low=0, low_open=True)
    p, t, axes, mask = _probs_and_targets(probs, targets, include_background, where)
    true_positives = jnp.sum(p * t, axis=axes)
    false_positives = jnp.sum(p * (1 - t), axis=axes)
    false_negatives = jnp.sum((1 - p) * t, axis=axes)
    dtype = p.dtype
    index = _overlap_ratio(
        true_positives + jnp.asarray(smooth_nr, dtype),
        true_positives
        + jnp.asarray(alpha, dtype) * false_positives
        + jnp.asarray(beta, dtype) * false_negatives
        + jnp.asarray(smooth_dr, dtype),
    )
    loss = jnp.maximum(1 - index, 0)
    if not (isinstance(gamma, (int, float)) and gamma == 1):
        loss = _numerics.safe_pow(loss, jnp.asarray(gamma, dtype))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


# Up to this many coordinates the search computes Σ_k (x_k − y_k)² directly, which is exact
# and, for point clouds, faster than a matmul with a tiny contraction; above, it uses the
# Gram form ‖x‖² + ‖y‖² − 2 x·y (a matmul).
_DIRECT_MAX_DIM = 16


def _squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
    """``[batch, n, m]`` squared distances between ``x`` ``[batch, n, dim]`` and ``y``."""
    if x.shape[-1] <= _DIRECT_MAX_DIM:
        return sum(jnp.square(x[:, :, None, k] - y[:, None, :, k]) for k in range(x.shape[-1]))
    gram = jnp.einsum("bnd,bmd->bnm", x, y, precision=jax.lax.Precision.HIGHEST)
    norms_x, norms_y = jnp.sum(jnp.square(x), -1), jnp.sum(jnp.square(y), -1)
    return jnp.maximum(norms_x[:, :, None] + norms_y[:, None, :] - 2 * gram, 0)


def _nearest_neighbours(
    x: jax.Array, y: jax.Array, x_valid: jax.Array, y_valid: jax.Array, block: int
) -> tuple[jax.Array, jax.Array]:
    """Indices of each point's nearest valid neighbour in the other cloud.

    Blocks of ``block`` points of ``x`` are compared with all of ``y``; a block gives its
    rows' nearest ``y`` directly, and the ``y → x`` direction keeps a running minimum over
    the blocks. Only a ``[batch, block, num_y]`` block exists at a time (XLA fuses it into
    the two reductions). Points without a valid neighbour get index 0; callers mask them.

    Returns:
      ``(x_to_y [batch, num_x], y_to_x [batch, num_y])`` int32 indices.
    """
    batch, num_x, dim = x.shape
    num_blocks = -(-num_x // block)
    pad = num_blocks * block - num_x
    x_blocks = jnp.pad(x, ((0, 0), (0, pad), (0, 0))).reshape(batch, num_blocks, block, dim)
    valid_blocks = jnp.pad(x_valid, ((0, 0), (0, pad))).reshape(batch, num_blocks, block)

    def step(carry, inputs):
        best, best_index = carry
        x_block, valid_block, first = inputs
        distances = _squared_distances(x_block, y)
        distances = jnp.where(valid_block[:, :, None] & y_valid[:, None, :], distances, jnp.inf)
        block_min = jnp.min(distances, axis=1)
        closer = block_min < best  # strict: the first of equal minima wins, as argmin
        block_index = jnp.argmin(distances, axis=1).astype(jnp.int32) + first
        carry = (jnp.where(closer, block_min, best), jnp.where(closer, block_index, best_index))
        return carry, jnp.argmin(distances, axis=2).astype(jnp.int32)

    start = (jnp.full(y.shape[:2], jnp.inf, x.dtype), jnp.zeros(y.shape[:2], jnp.int32))
    start = _numerics.vary_like(start, x, y, x_valid, y_valid)
    firsts = jnp.arange(num_blocks, dtype=jnp.int32) * block
    (_, y_to_x), x_to_y = jax.lax.scan(
        step, start, (jnp.moveaxis(x_blocks, 1, 0), jnp.moveaxis(valid_blocks, 1, 0), firsts)
    )
    x_to_y = jnp.moveaxis(x_to_y, 0, 1).reshape(batch, num_blocks * block)[:, :num_x]
    return x_to_y, y_to_x


def _gather_points(points: jax.Array, indices: jax.Array) -> jax.Array:
    return jnp.take_along_axis(points, indices[..., None], axis=1)


def _scatter_points(values: jax.Array, indices: jax.Array, num_points: int) -> jax.Array:
    """Adds ``values`` ``[batch, n, dim]`` into ``num_points`` rows at ``indices``."""
    return jax.vmap(lambda v, i: jnp.zeros((num_points, v.shape[-1]), v.dtype).at[i].add(v))(
        values, indices
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _nearest_squared_distances(x, y, x_counted, y_counted, block):
    """Squared distance of every counted point to its nearest point of the other cloud.

    ``x_counted`` / ``y_counted`` mark the points whose distance is wanted and that may be
    a neighbour; the result is 0 where a point is not counted or the other cloud is empty.
    """
    distances, _ = _nearest_squared_distances_fwd(x, y, x_counted, y_counted, block)
    return distances


def _nearest_squared_distances_fwd(x, y, x_counted, y_counted, block):
    x_to_y, y_to_x = _nearest_neighbours(x, y, x_counted, y_counted, block)
    # The distances are recomputed exactly from the indices: the search's own (possibly
    # Gram-form) values are never returned.
    x_diff = x - _gather_points(y, x_to_y)
    y_diff = y - _gather_points(x, y_to_x)
    x_term = x_counted & jnp.any(y_counted, axis=1, keepdims=True)
    y_term = y_counted & jnp.any(x_counted, axis=1, keepdims=True)
    x_diff = jnp.where(x_term[..., None], x_diff, 0)
    y_diff = jnp.where(y_term[..., None], y_diff, 0)
    distances = (jnp.sum(jnp.square(x_diff), -1), jnp.sum(jnp.square(y_diff), -1))
    return distances, (x_diff, y_diff, x_to_y, y_to_x)


def _nearest_squared_distances_bwd(block, saved, cotangents):
    del block
    x_diff, y_diff, x_to_y, y_to_x = saved
    # d‖x_i − y_a(i)‖² = 2 (x_i − y_a(i)) · (dx_i − dy_a(i)): each term moves its point and,
    # with the opposite sign, its neighbour (a scatter-add over the indices).
    x_pull = 2 * cotangents[0][..., None] * x_diff
    y_pull = 2 * cotangents[1][..., None] * y_diff
    dx = x_pull - _scatter_points(y_pull, y_to_x, x_diff.shape[1])
    dy = y_pull - _scatter_points(x_pull, x_to_y, y_diff.shape[1])
    return dx, dy, None, None


_nearest_squared_distances.defvjp(_nearest_squared_distances_fwd, _nearest_squared_distances_bwd)


def _point_cloud(points: ArrayLike, name: str) -> jax.Array:
    points = _checks.float_array(points, name)
    if points.ndim != 3:
        raise ValueError(f"`{name}` must be [batch, num_points, dim], got shape {points.shape}.")
    return points


def _counted_points(lengths: ArrayLike | None, num_points: int, batch: int, name: str):
    """``[batch, num_points]``: which points lie within their cloud's length."""
    lengths = _checks.lengths(lengths, num_points, batch, name)
    return jnp.arange(num_points)[None, :] < lengths[:, None]


def _reduce_points(distances: jax.Array, counted: jax.Array, point_reduction: str) -> jax.Array:
    total = jnp.sum(distances, axis=1)
    if point_reduction == "sum":
        return total
    return safe_divide(total, jnp.sum(counted, axis=1).astype(total.dtype))


def chamfer(
    x: ArrayLike,
    y: ArrayLike,
    *,
    x_lengths: ArrayLike | None = None,
    y_lengths: ArrayLike | None = None,
    squared: bool = True,
    point_reduction: str = "mean",
    single_directional: bool = False,
    chunk_size: int | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Chamfer distance between batches of point clouds, as PyTorch3D's ``chamfer_distance``.

    .. math::
      \ell_b = \operatorname*{red}_{i < n_x} \min_{j < n_y} d(x_{b,i}, y_{b,j})
             + \operatorname*{red}_{j < n_y} \min_{i < n_x} d(y_{b,j}, x_{b,i})

    where ``red`` is the mean (or sum) over a cloud's points, ``n_x``, ``n_y`` are the
    clouds' lengths, and ``d`` is the squared Euclidean distance (PyTorch3D's ``norm=2``) or,
    with ``squared=False``, the Euclidean distance. ``single_directional`` keeps only the
    first term (``x → y``: how far each point of ``x`` is from ``y``, as when fitting a
    partial scan into a full model). Points past a cloud's length are padding: they are
    neither counted nor anyone's neighbour, and may hold anything (NaN, ±inf): they are
    zeroed before the search, so their gradient is exactly 0.

    Edge cases, finite by definition: an empty cloud contributes 0 to its direction, and a
    direction whose other cloud is empty contributes 0 (no nearest neighbour exists).
    Where a distance is 0, the plain (``squared=False``) distance has a zero gradient.

    The nearest neighbours are found in blocks of ``chunk_size`` points of ``x`` against all
    of ``y``, with a running minimum for the ``y → x`` direction, so memory grows as
    ``(num_x + num_y)·dim + chunk_size·num_y``; the gradient is computed from the
    neighbours' indices (a ``custom_vjp``), never from the distance matrix, so the backward
    pass is linear in the number of points too. ``chunk_size=None`` compares all points in
    one block. Values and gradients do not depend on the chunk size.

    Args:
      x: ``[batch, num_x, dim]`` points (padded past ``x_lengths``).
      y: ``[batch, num_y, dim]`` points (padded past ``y_lengths``).
      x_lengths: ``[batch]`` int number of valid points of each ``x`` cloud (clipped to
        ``[0, num_x]``); None: all.
      y_lengths: ``[batch]`` int, the same for ``y``.
      squared: squared Euclidean distances (True, the default, as PyTorch3D) or Euclidean.
      point_reduction: ``"mean"`` or ``"sum"`` over each cloud's points.
      single_directional: only the ``x → y`` term.
      chunk_size: points of ``x`` per block, or None for one block (a ``[batch, num_x,
        num_y]`` matrix in the forward pass).
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per cloud pair, ``[batch]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-pair distances for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> x = jnp.array([[[0.0, 0.0], [1.0, 0.0]]])
      >>> y = jnp.array([[[0.0, 1.0]]])
      >>> # x → y: mean(1, 2) = 1.5; y → x: 1
      >>> float(jaxloss.chamfer(x, y))
      2.5
      >>> float(jaxloss.chamfer(x, y, single_directional=True, point_reduction="sum"))
      3.0

    References:
      Fan, Su and Guibas, "A Point Set Generation Network for 3D Object Reconstruction
      from a Single Image", CVPR 2017. Ravi et al., "Accelerating 3D Deep Learning with
      PyTorch3D", arXiv:2007.08501, 2020.
    """
    _checks.choice(point_reduction, POINT_REDUCTIONS, "point_reduction")
    x, y = _point_cloud(x, "x"), _point_cloud(y, "y")
    if x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(
            "`x` [batch, num_x, dim] and `y` [batch, num_y, dim] need the same batch and "
            f"dim, got {x.shape} and {y.shape}."
        )
    _checks.chunk_size(chunk_size)
    dtype = jnp.promote_types(x.dtype, y.dtype)
    x, y = x.astype(dtype), y.astype(dtype)
    batch, num_x, _ = x.shape
    num_y = y.shape[1]
    mask, (x, y) = masked_inputs(where, (batch,), x, y)
    x_counted = _counted_points(x_lengths, num_x, batch, "x_lengths")
    y_counted = _counted_points(y_lengths, num_y, batch, "y_lengths")
    # Points past a length are padding too: zeroed before the search computes on them.
    (x,), (y,) = zero_masked(x_counted, x), zero_masked(y_counted, y)
    block = num_x if chunk_size is None else min(chunk_size, num_x)
    x_distances, y_distances = _nearest_squared_distances(x, y, x_counted, y_counted, block)
    if not squared:
        x_distances = _numerics.safe_sqrt(x_distances)
        y_distances = _numerics.safe_sqrt(y_distances)
    loss = _reduce_points(x_distances, x_counted, point_reduction)
    if not single_directional:
        loss = loss + _reduce_points(y_distances, y_counted, point_reduction)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def _layers(features, name: str) -> list[jax.Array]:
    """A list of float ``[batch, ..., channels]`` feature maps (a single array is one layer)."""
    if not isinstance(features, (list, tuple)):
        features = [features]
    if not features:
        raise ValueError(f"`{name}` must hold at least one feature map.")
    out = []
    for index, layer in enumerate(features):
        layer = _checks.float_array(layer, f"{name}[{index}]")
        if layer.ndim < 2:
            raise ValueError(
                f"`{name}[{index}]` must be [batch, ..., channels], got shape {layer.shape}."
            )
        out.append(layer)
    return out


def _layer_weights(weights, num_layers: int) -> list:
    if weights is None:
        return [1.0] * num_layers
    if len(weights) != num_layers:
        raise ValueError(
            f"`weights` needs one weight per layer ({num_layers}), got {len(weights)}."
        )
    return list(weights)


def _weighted_layer_sum(features, targets, weights, where, layer_target, layer_loss):
    """``Σ_l w_l layer_loss(features[l], targets[l])``, one value per sample, and the
    ``[batch]`` mask to reduce it with.

    ``layer_target(l, features[l], targets[l], batch)`` validates a target and returns it
    with a leading axis of ``batch`` or 1 (one target for every sample).
    """
    features, targets = _layers(features, "features"), _layers(targets, "targets")
    if len(features) != len(targets):
        raise ValueError(
            f"`features` and `targets` need the same number of layers, got {len(features)} "
            f"and {len(targets)}."
        )
    batch = features[0].shape[0]
    weights = _layer_weights(weights, len(features))
    for index, feature in enumerate(features):
        if feature.shape[0] != batch:
            raise ValueError(
                f"Every layer of `features` needs the batch size {batch}; `features[{index}]` "
                f"has shape {feature.shape}."
            )
    targets = [
        layer_target(index, feature, target, batch)
        for index, (feature, target) in enumerate(zip(features, targets, strict=True))
    ]
    # A target of batch 1 serving several samples (one style image) cannot be zeroed for
    # some of them; a NaN there poisons every sample alike.
    per_sample = [index for index, target in enumerate(targets) if target.shape[0] == batch]
    mask, zeroed = masked_inputs(
        where, (batch,), *features, *(targets[index] for index in per_sample)
    )
    features = list(zeroed[: len(features)])
    for index, target in zip(per_sample, zeroed[len(features) :], strict=True):
        targets[index] = target
    terms = []
    for feature, target, weight in zip(features, targets, weights, strict=True):
        value = layer_loss(feature, target)
        terms.append(jnp.asarray(weight, value.dtype) * value)
    return sum(terms[1:], terms[0]), mask


def gram_matrix(features: ArrayLike) -> jax.Array:
    r"""Gram matrices of feature maps, averaged over positions.

    .. math::
      G_{b,c,c'} = \frac{1}{P} \sum_{i} F_{b,i,c} F_{b,i,c'}

    over the ``P`` positions ``i`` (pixels) of sample ``b``: the channels' correlations,
    which describe texture and style but not where things are (Gatys et al.). Dividing by
    ``P`` makes Gram matrices of images of different sizes comparable.

    Numerics: computed at full float32 matmul precision (``Precision.HIGHEST``) on every
    backend, and finite for finite features unless the sum of ``F_c F_c'`` over the ``P``
    positions passes the float32 maximum: the division by ``P`` comes after the sum.

    Args:
      features: ``[batch, ..., channels]`` feature maps (any number of spatial axes).

    Returns:
      ``[batch, channels, channels]`` float32 (float64 for float64 input).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> features = jnp.array([[[1.0, 2.0], [3.0, 0.0]]])  # one sample, 2 positions
      >>> jaxloss.gram_matrix(features)
      Array([[[5., 1.],
              [1., 2.]]], dtype=float32)
    """
    if isinstance(features, (list, tuple)):
        raise TypeError(
            "`gram_matrix` takes one array [batch, ..., channels]; map it over a list of layers."
        )
    (layer,) = _layers(features, "features")
    # Sizes spelled out: a ``-1`` cannot be inferred for an empty batch.
    flat = layer.reshape(layer.shape[0], math.prod(layer.shape[1:-1]), layer.shape[-1])
    gram = jnp.einsum("bpc,bpd->bcd", flat, flat, precision=jax.lax.Precision.HIGHEST)
    return gram / flat.shape[1]


def style_loss(
    features: Sequence[ArrayLike] | ArrayLike,
    targets: Sequence[ArrayLike] | ArrayLike,
    *,
    weights: Sequence[ArrayLike] | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The style loss of Gatys et al. (2016) over a list of layers.

    .. math::
      \ell_b = \sum_l w_l \frac{1}{4 C_l^2} \sum_{c,c'} (G^l_{b,c,c'} - A^l_{b,c,c'})^2

    with ``G`` and ``A`` the ``gram_matrix`` of the features and of the targets. Because
    ``gram_matrix`` averages over the ``P_l`` positions, this is exactly Gatys et al.'s
    ``E_l = Σ (G − A)² / (4 C_l² P_l²)`` on unnormalized Gram matrices. (Johnson et al.
    divide the Gram matrix by ``C·P`` instead: their loss is this one times ``4 / C_l²``.)

    The caller brings the feature extractor (a VGG, or any network): ``features[l]`` is its
    ``l``-th layer on the generated images and ``targets[l]`` on the style images. Targets
    may have another spatial size (Gram matrices do not depend on it) and a batch of 1 (one
    style image for every sample).

    Numerics: the loss grows as the fourth power of the features and nothing is clamped: it is
    +inf once ``(G − A)²`` passes the float32 maximum, i.e. for Gram entries differing by
    ~1.8e19 (features of magnitude ~4e9). Gram matrices use full float32 matmul precision.

    Args:
      features: a list of ``[batch, ..., channels_l]`` feature maps (or one array).
      targets: a list of the same length, each ``[batch or 1, ..., channels_l]``.
      weights: one weight per layer (numbers or traced scalars); None: all 1.
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per sample, ``[batch]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> f = jnp.ones((2, 4, 4, 3))
      >>> float(jaxloss.style_loss([f], [f]))
      0.0
      >>> float(jaxloss.style_loss([2 * f], [f]))  # G − A = 3 everywhere: 9 / 4
      2.25

    References:
      Gatys, Ecker and Bethge, "Image Style Transfer Using Convolutional Neural
      Networks", CVPR 2016.
    """

    def layer_target(index, feature, target, batch):
        if target.shape[-1] != feature.shape[-1] or target.shape[0] not in (1, batch):
            raise ValueError(
                f"`targets[{index}]` {target.shape} needs the channels of `features[{index}]` "
                f"{feature.shape} and its batch size (or 1)."
            )
        return target

    def layer_loss(feature, target):
        difference = gram_matrix(feature) - gram_matrix(target)
        return jnp.mean(jnp.square(difference), axis=(1, 2)) / 4

    loss, mask = _weighted_layer_sum(features, targets, weights, where, layer_target, layer_loss)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def perceptual_loss(
    features: Sequence[ArrayLike] | ArrayLike,
    targets: Sequence[ArrayLike] | ArrayLike,
    *,
    weights: Sequence[ArrayLike] | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Perceptual (feature reconstruction) loss of Johnson et al. (2016) over a list of layers.

    .. math::
      \ell_b = \sum_l w_l \frac{1}{C_l P_l} \| \phi_l(\hat y)_b - \phi_l(y)_b \|_2^2

    the mean squared difference of each layer's features over positions and channels:
    images that a network "sees" alike are close even when their pixels are not (a shifted
    or re-textured image). The caller's network gives ``features[l] = φ_l(ŷ)`` and
    ``targets[l] = φ_l(y)``.

    Numerics: finite for finite inputs, with nothing clamped, until a layer's sum of squared
    differences passes the float32 maximum (any difference beyond ~1.8e19 does).

    Args:
      features: a list of ``[batch, ..., channels_l]`` feature maps (or one array).
      targets: a list of the same length, each broadcastable to its feature map.
      weights: one weight per layer (numbers or traced scalars); None: all 1.
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (per sample, ``[batch]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> f = jnp.zeros((1, 2, 2, 3))
      >>> layers, targets = [f, f[:, :1]], [f + 1, f[:, :1] + 2]  # differences 1 and 2
      >>> float(jaxloss.perceptual_loss(layers, targets, weights=[1.0, 0.5]))  # 1 + 0.5·4
      3.0

    References:
      Johnson, Alahi and Fei-Fei, "Perceptual Losses for Real-Time Style Transfer and
      Super-Resolution", ECCV 2016.
    """

    def layer_target(index, feature, target, batch):
        # Broadcast to the features, so every target has the batch axis and the padding of
        # masked samples can be zeroed whatever shape the caller gave.
        return _checks.broadcast_to(
            target, feature.shape, f"targets[{index}]", f"features[{index}]"
        ).astype(feature.dtype)

    def layer_loss(feature, target):
        squared = jnp.square(feature - target)
        return jnp.mean(squared.reshape(len(squared), math.prod(squared.shape[1:])), axis=1)

    loss, mask = _weighted_layer_sum(features, targets, weights, where, layer_target, layer_loss)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)

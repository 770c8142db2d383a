"""Generalizations of Dice: the Tversky loss (false positives and false negatives priced
apart) and the generalized Dice loss (Sudre et al. 2017: one ratio per sample, its classes
weighted by their inverse squared volume, so a class of a few pixels counts as much as the
background).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import reduce_loss, safe_divide
from jaxloss._sharding import AxisName, global_sum
from jaxloss.dense.overlap import _class_maps, _class_sums, _overlap_ratio, _weighted

WEIGHT_TYPES = ("square", "simple", "uniform")


def tversky(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: ArrayLike = 0.5,
    beta: ArrayLike = 0.5,
    gamma: ArrayLike = 1.0,
    smooth_nr: ArrayLike = 1e-5,
    smooth_dr: ArrayLike = 1e-5,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    from_logits: str | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Tversky loss per (sample, class), and the focal Tversky loss for ``gamma != 1``.

    .. math::
      \ell_{b,c} = w_c \max(0, 1 - \mathrm{TI}_{b,c})^{\gamma}, \qquad
      \mathrm{TI} = \frac{TP + s_{nr}}{TP + \alpha FP + \beta FN + s_{dr}}

    with ``TP = Σ p t``, ``FP = Σ p (1 − t)`` and ``FN = Σ (1 − p) t`` over the pixels of a
    sample. ``alpha`` prices false positives and ``beta`` false negatives: ``beta > alpha``
    favours recall, which is what detecting small lesions needs. ``alpha = beta = 0.5`` is
    the Dice loss (exactly, without smoothing); ``alpha = beta = 1`` the Jaccard (IoU) loss.

    ``gamma`` is the exponent applied to ``1 − TI`` (Abraham and Khan write it as
    ``1/γ``; their γ = 4/3 is ``gamma=0.75`` here). ``1 − TI`` is clamped at 0, so a
    smoothing with ``s_nr > s_dr`` cannot make a fractional power NaN; a class absent from
    prediction and target with zero smoothing scores TI = 1 (loss 0), as in ``dice``. The
    class weights :math:`w_c` and ``"mean"`` are as in ``dice``; MONAI's ``TverskyLoss``
    has no weights, and no clamp (its loss goes below 0 where ``s_nr > s_dr``).

    With one ``smooth`` s as ``smooth_nr`` and ``smooth_dr``, and ``from_logits``, this is
    optax's ``dice_loss`` with its ``alpha`` and ``beta``, per (sample, class).

    Args:
      probs: ``[batch, ..., num_classes]`` probabilities, channel last.
      targets: the same shape, or integer labels ``[batch, ...]`` (labels outside
        ``[0, num_classes)`` leave the pixel out).
      alpha: weight of false positives.
      beta: weight of false negatives.
      gamma: focal exponent (1: the plain Tversky loss).
      smooth_nr: s_nr, added to the numerator.
      smooth_dr: s_dr, added to the denominator.
      class_weights: optional weight of each class's loss (shapes as in ``dice``).
      include_background: if False, class 0 is dropped from the output.
      from_logits: None for probabilities; ``"sigmoid"`` or ``"softmax"`` for logits (as
        in ``dice``).
      where: optional boolean mask broadcastable to ``[batch, num_classes]`` (class 0's
        column unused without the background) or, without it, to ``[batch, num_classes -
        1]``, as ``class_weights``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch, num_classes]``, one column
        fewer without the background).
      axis_name: mapped axis of the batch (global mean and sum).

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
    p, t, axes, mask, _ = _class_maps(
        probs,
        targets,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        per_class=True,
        # Not for softmax logits with per-class targets: its three sums over the class
        # columns took 1.8x as long as over the arrays (2 x 64³ voxels, 4 classes; 1.65x
        # faster with integer labels).
        columns=True,
        softmax_columns=False,
    )
    true_positives = _class_sums(jnp.multiply, p, t, axes)
    false_positives = _class_sums(lambda p, t: p * (1 - t), p, t, axes)
    false_negatives = _class_sums(lambda p, t: (1 - p) * t, p, t, axes)
    dtype = true_positives.dtype
    index = _overlap_ratio(
        true_positives + jnp.asarray(smooth_nr, dtype),
        true_positives
        + jnp.asarray(alpha, dtype) * false_positives
        + jnp.asarray(beta, dtype) * false_negatives
        + jnp.asarray(smooth_dr, dtype),
    )
    # 0 past an index of 1 (smooth_nr > smooth_dr can reach it); at exactly 1 (a perfect or an
    # empty prediction) the gradient is 1 - index's, as MONAI's, not maximum's half of it.
    loss = jnp.where(index > 1, 0, 1 - index)  # NaN propagates
    if not (isinstance(gamma, (int, float)) and gamma == 1):
        loss = _numerics.safe_pow(loss, jnp.asarray(gamma, dtype))
    loss = _weighted(loss, class_weights, include_background)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def _class_weights(volumes: jax.Array, weight_type: str) -> jax.Array:
    """Sudre et al.'s class weights from the target volumes ``[..., num_classes]``.

    ``1/V²`` (``"square"``), ``1/V`` (``"simple"``) or 1 (``"uniform"``). A class absent from
    the targets has an infinite weight; as in MONAI and NiftyNet it takes the largest weight
    of the present classes instead (0 when none is present). The volume floor keeps ``1/V²``
    finite, and the unused branch of every ``where`` finite for the gradient.
    """
    if weight_type == "uniform":
        return jnp.ones_like(volumes)
    largest = jnp.finfo(volumes.dtype).max
    floor = 1 / (jnp.sqrt(largest) if weight_type == "square" else largest)
    present = volumes > floor
    safe = jnp.where(present, volumes, 1)
    weights = jnp.where(present, 1 / (jnp.square(safe) if weight_type == "square" else safe), 0)
    return jnp.where(present, weights, jnp.max(weights, axis=-1, keepdims=True))


def generalized_dice(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    weight_type: str = "square",
    batch_weights: bool = False,
    weighted_mean: bool = False,
    smooth_nr: ArrayLike = 1e-5,
    smooth_dr: ArrayLike = 1e-5,
    include_background: bool = True,
    from_logits: str | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Generalized Dice loss per sample (Sudre et al. 2017), as MONAI's
    ``GeneralizedDiceLoss``.

    .. math::
      \ell_b = 1 - \frac{2 \sum_c w_c \sum_i p_{b,i,c} t_{b,i,c} + s_{nr}}
                         {\sum_c w_c \sum_i (p_{b,i,c} + t_{b,i,c}) + s_{dr}},
      \qquad w_c = \frac{1}{V_c^2}, \quad V_c = \sum_i t_{b,i,c}

    One Dice ratio per sample whose classes are weighted by their inverse squared volume,
    so a class of a few pixels counts as much as the background. The volumes are per
    sample, as MONAI's default ``batch=False``; with ``batch_weights=True`` they are summed
    over the batch (over every device with ``axis_name``, masked samples left out), so
    every sample uses the same weights. MONAI's ``batch=True`` (one ratio over the whole
    batch) is this loss of the batch folded into one sample:
    ``generalized_dice(probs.reshape(1, -1, C), labels.reshape(1, -1))``.

    A class absent from the targets (an infinite weight) takes the largest weight of the
    present classes, as in MONAI and NiftyNet; a sample with no class present has all
    weights 0 and the loss ``1 - s_nr / s_dr`` (0 by default), with zero gradients.

    With ``weighted_mean=True`` the loss is instead the weighted mean of the per-class
    Dice losses of ``dice``, :math:`\sum_c w_c \ell_{b,c} / \sum_c w_c`: optax's
    ``multiclass_generalized_dice_loss`` is this with ``batch_weights=True`` and
    ``smooth_nr = smooth_dr = 2·smooth`` (except for classes absent from the batch, to
    which optax gives the weight 1e7, and its ``ignore_background``, which keeps the
    background's weight in its normalization).

    Args:
      probs: ``[batch, ..., num_classes]`` probabilities (logits with ``from_logits``),
        channel last; any number of spatial axes.
      targets: the same shape (one-hot or soft targets), or integer labels ``[batch, ...]``
        (labels outside ``[0, num_classes)`` leave the pixel out).
      weight_type: ``"square"`` (1/V², Sudre et al.), ``"simple"`` (1/V) or
        ``"uniform"`` (1), MONAI's ``w_type``.
      batch_weights: compute the volumes over the whole batch instead of per sample.
      weighted_mean: average per-class Dice losses instead of one ratio of sums.
      smooth_nr: s_nr, added to the numerator.
      smooth_dr: s_dr, added to the denominator.
      include_background: if False, class 0 is dropped before anything is computed.
      from_logits: None for probabilities; ``"sigmoid"`` or ``"softmax"`` for logits (as
        in ``dice``).
      where: optional boolean mask broadcastable to ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean, sum and batch weights).

    Returns:
      A float32 scalar, or the per-sample losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> probs = jnp.array([[[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.5, 0.5]]])
      >>> labels = jnp.array([[0, 0, 0, 1]])  # volumes 3 and 1: weights 1/9 and 1
      >>> # 1 − 2·(3/9 + 0.5) / ((3.5 + 3)/9 + (0.5 + 1)) = 0.25
      >>> round(float(jaxloss.generalized_dice(probs, labels, smooth_nr=0.0,
      ...                                      smooth_dr=0.0)), 4)
      0.25

    References:
      Sudre et al., "Generalised Dice overlap as a deep learning loss function for highly
      unbalanced segmentations", DLMIA 2017. Crum, Camara and Hill, "Generalized Overlap
      Measures for Evaluation and Validation in Medical Image Analysis", IEEE TMI 2006.
    """
    _checks.choice(weight_type, WEIGHT_TYPES, "weight_type")
    _checks.in_range(smooth_nr, "smooth_nr", low=0)
    _checks.in_range(smooth_dr, "smooth_dr", low=0)
    p, t, axes, mask, _ = _class_maps(
        probs,
        targets,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        per_class=False,
        columns=True,
    )
    intersection = _class_sums(jnp.multiply, p, t, axes)
    volumes = _class_sums(lambda p, t: t, p, t, axes)
    denominator = _class_sums(lambda p, t: p, p, t, axes) + volumes
    if batch_weights:
        volumes = global_sum(jnp.sum(volumes, axis=0), axis_name)
    weights = jnp.broadcast_to(_class_weights(volumes, weight_type), intersection.shape)
    dtype = intersection.dtype
    smooth_nr, smooth_dr = jnp.asarray(smooth_nr, dtype), jnp.asarray(smooth_dr, dtype)
    if weighted_mean:
        per_class = 1 - _overlap_ratio(2 * intersection + smooth_nr, denominator + smooth_dr)
        loss = safe_divide(jnp.sum(weights * per_class, axis=-1), jnp.sum(weights, axis=-1))
    else:
        loss = 1 - _overlap_ratio(
            2 * jnp.sum(weights * intersection, axis=-1) + smooth_nr,
            jnp.sum(weights * denominator, axis=-1) + smooth_dr,
        )
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)

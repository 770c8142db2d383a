"""Overlap losses of segmentation: Dice, Tversky and generalized Dice.

Ratios of sums over all pixels, so they do not care how rare a class is: a tumour covering
0.1% of an image weighs as much as the background. Their ratios are defined everywhere,
including classes absent from both the prediction and the target.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _numerics
from jaxloss._labels import valid_class_ids
from jaxloss._reduce import masked_inputs, reduce_loss, safe_divide, zero_masked
from jaxloss._sharding import AxisName, global_sum

ACTIVATIONS = ("sigmoid", "softmax")
WEIGHT_TYPES = ("square", "simple", "uniform")


def _activated(logits: jax.Array, from_logits: str) -> jax.Array:
    """Probabilities of ``logits`` ``[batch, ..., num_classes]``: per class or over classes."""
    if from_logits == "sigmoid":
        return jax.nn.sigmoid(logits)
    return jax.nn.softmax(logits, axis=-1)


def _probs_and_targets(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    include_background: bool,
    from_logits: str | None,
    where: ArrayLike | None,
    per_class: bool,
) -> tuple[jax.Array, jax.Array, tuple[int, ...], jax.Array | None]:
    """Float probabilities and targets of one shape, the axes the overlap sums run over, and
    the mask to reduce with: ``[batch, num_classes]`` if ``per_class``, else ``[batch]``.

    Integer label maps become one-hot targets; a pixel whose label is not a class id in
    ``[0, num_classes)`` (a "void" 255, say) is left out of every sum, its probabilities too.
    Logits are zeroed where they are not read (void pixels, samples masked in every class)
    before the activation, so padding there reaches neither the value nor a gradient.
    """
    if from_logits is not None:
        _checks.choice(from_logits, ACTIVATIONS, "from_logits")
    probs = _checks.float_array(probs, "probs", allow_inf=from_logits is not None)
    if from_logits is None:
        _checked.probabilities(probs, "probs")
    if probs.ndim < 2:
        raise ValueError(
            f"`probs` must be [batch, ..., num_classes] (channel last), got shape {probs.shape}."
        )
    num_classes = probs.shape[-1]
    if from_logits == "softmax" and num_classes < 2:
        raise ValueError(
            f"`from_logits='softmax'` over a single class is 1 everywhere (`probs` {probs.shape}); "
            "binary logits take `from_logits='sigmoid'`."
        )
    if not include_background and num_classes < 2:
        raise ValueError(
            "`include_background=False` drops class 0 and leaves no class of `probs` "
            f"{probs.shape}."
        )
    kept = num_classes - (0 if include_background else 1)
    mask, _ = masked_inputs(where, (probs.shape[0], kept) if per_class else probs.shape[:1])
    targets = jnp.asarray(targets)
    counted = None
    if targets.shape == probs.shape[:-1]:
        labels = _checks.integer_array(targets, "targets")
        counted = valid_class_ids(labels, num_classes)[..., None]
        targets = jax.nn.one_hot(labels, num_classes, dtype=probs.dtype)
    elif targets.shape == probs.shape:
        targets = _checks.float_array(targets, "targets", allow_int=True).astype(probs.dtype)
        _checked.probabilities(targets, "targets")
    else:
        raise ValueError(
            f"`targets` must have the shape of `probs` {probs.shape} (per-class targets) or "
            f"{probs.shape[:-1]} (integer labels), got {targets.shape}."
        )
    axes = tuple(range(1, probs.ndim - 1))
    if from_logits is not None:
        # A softmax mixes the classes of a pixel: a sample's logits are read unless every
        # one of its (sample, class) entries is masked.
        read = counted
        if mask is not None:
            row = jnp.any(mask, axis=-1) if per_class else mask
            row = jnp.expand_dims(row, (*axes, -1))
            read = row if read is None else read & row
        (probs,) = zero_masked(read, probs)
        probs = _activated(probs, from_logits)
    if counted is not None:
        probs = jnp.where(counted, probs, 0)
    if not include_background:
        probs, targets = probs[..., 1:], targets[..., 1:]
    if mask is not None:
        # A (sample, class) entry reads only its class's column of the sample's pixels:
        # zeroing that column keeps the padding out of every sum, and no other entry sees it.
        column = mask if per_class else mask[:, None]
        probs, targets = zero_masked(jnp.expand_dims(column, axes), probs, targets)
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
    from_logits: str | None = None,
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

    With ``from_logits="sigmoid"`` and one class, this is optax's ``binary_dice_loss``;
    with ``"softmax"``, its ``dice_loss`` (whose ``smooth`` s is ``smooth_nr = smooth_dr =
    2s`` here). Unlike optax's probability path, it runs under ``jit``. With a softmax, a
    masked (sample, class) entry still feeds its sample's other classes.

    Args:
      probs: ``[batch, ..., num_classes]`` probabilities (logits with ``from_logits``),
        channel last; any number of spatial axes.
      targets: the same shape (one-hot or soft targets), or integer labels ``[batch, ...]``.
        Pixels whose label is not in ``[0, num_classes)`` (e.g. 255 for "void") are left
        out of every sum.
      smooth_nr: s_nr, added to the numerator.
      smooth_dr: s_dr, added to the denominator.
      squared: sum squares in the denominator.
      include_background: if False, class 0 is dropped and the output has
        ``num_classes - 1`` columns (MONAI's option).
      from_logits: None if ``probs`` are probabilities; ``"sigmoid"`` or ``"softmax"`` if
        they are logits, made probabilities per class (binary or multi-label) or over the
        class axis. The activation precedes ``include_background``.
      where: optional boolean mask broadcastable to ``[batch, num_classes]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch, num_classes]``).
      axis_name: mapped axis of the batch (global mean and sum).

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
    p, t, axes, mask = _probs_and_targets(
        probs,
        targets,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        per_class=True,
    )
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
    from_logits: str | None = None,
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
      include_background: if False, class 0 is dropped from the output.
      from_logits: None for probabilities; ``"sigmoid"`` or ``"softmax"`` for logits (as
        in ``dice``).
      where: optional boolean mask broadcastable to ``[batch, num_classes]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch, num_classes]``).
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
    p, t, axes, mask = _probs_and_targets(
        probs,
        targets,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        per_class=True,
    )
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
    p, t, axes, mask = _probs_and_targets(
        probs,
        targets,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        per_class=False,
    )
    intersection = jnp.sum(p * t, axis=axes)
    volumes = jnp.sum(t, axis=axes)
    denominator = jnp.sum(p, axis=axes) + volumes
    if batch_weights:
        volumes = global_sum(jnp.sum(volumes, axis=0), axis_name)
    weights = jnp.broadcast_to(_class_weights(volumes, weight_type), intersection.shape)
    smooth_nr, smooth_dr = jnp.asarray(smooth_nr, p.dtype), jnp.asarray(smooth_dr, p.dtype)
    if weighted_mean:
        per_class = 1 - _overlap_ratio(2 * intersection + smooth_nr, denominator + smooth_dr)
        loss = safe_divide(jnp.sum(weights * per_class, axis=-1), jnp.sum(weights, axis=-1))
    else:
        loss = 1 - _overlap_ratio(
            2 * jnp.sum(weights * intersection, axis=-1) + smooth_nr,
            jnp.sum(weights * denominator, axis=-1) + smooth_dr,
        )
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)

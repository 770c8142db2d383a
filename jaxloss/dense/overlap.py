"""Overlap losses of segmentation: Dice and Jaccard (soft IoU), and their shared inputs.

Ratios of sums over all pixels, so they do not care how rare a class is: a tumour covering
0.1% of an image weighs as much as the background. Their ratios are defined everywhere,
including classes absent from both the prediction and the target.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _numerics
from jaxloss._labels import valid_class_ids
from jaxloss._reduce import masked_inputs, reduce_loss, zero_masked
from jaxloss._sharding import AxisName

ACTIVATIONS = ("sigmoid", "softmax")


def _activated(logits: jax.Array, from_logits: str) -> jax.Array:
    """Probabilities of ``logits`` ``[batch, ..., num_classes]``: per class or over classes."""
    if from_logits == "sigmoid":
        return jax.nn.sigmoid(logits)
    return _numerics.softmax(logits)


def _check_softmax_classes(shape: tuple[int, ...], name: str) -> None:
    """A softmax needs two classes at least: over one it is 1 everywhere."""
    if shape[-1] < 2:
        raise ValueError(
            f"`from_logits='softmax'` over a single class is 1 everywhere (`{name}` {shape}); "
            "binary logits take `from_logits='sigmoid'`."
        )


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
    if from_logits == "softmax":
        _check_softmax_classes(probs.shape, "probs")
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


def _kept_class_weights(
    class_weights: ArrayLike, num_classes: int, include_background: bool
) -> jax.Array:
    """``class_weights`` as one weight per class kept, ``[num_classes - (not background)]``.

    Accepted: a scalar, ``[num_classes]`` (class 0's weight unused without the background)
    or, without the background, ``[num_classes - 1]`` (MONAI's ``DiceLoss`` length). A
    concrete negative weight is an error, as in MONAI; a traced one passes unchecked.
    """
    weights = _checks.float_array(class_weights, "class_weights", allow_int=True)
    kept = num_classes - (0 if include_background else 1)
    if weights.shape == (num_classes,):
        weights = weights[num_classes - kept :]
    elif weights.shape not in ((), (kept,)):
        lengths = f"({num_classes},)" + ("" if include_background else f" or ({kept},)")
        raise ValueError(
            f"`class_weights` must be a scalar or have shape {lengths} (one per class"
            f"{'' if include_background else ', or per class kept'}), got {weights.shape}."
        )
    if isinstance(class_weights, (int, float, list, tuple, np.ndarray, np.number)):
        if np.any(np.asarray(class_weights) < 0):
            raise ValueError(f"`class_weights` must be >= 0, got {np.asarray(class_weights)}.")
    return jnp.broadcast_to(weights, (kept,))


def _weighted(
    loss: jax.Array, class_weights: ArrayLike | None, include_background: bool
) -> jax.Array:
    """``loss [batch, kept]`` times the weights of its classes."""
    if class_weights is None:
        return loss
    num_classes = loss.shape[-1] + (0 if include_background else 1)
    weights = _kept_class_weights(class_weights, num_classes, include_background)
    return loss * jnp.broadcast_to(weights.astype(loss.dtype), loss.shape)


def _overlap_terms(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    squared: bool,
    include_background: bool,
    from_logits: str | None,
    where: ArrayLike | None,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """``Σ p t`` and ``Σ (p + t)`` (squares with ``squared``) per (sample, class), and the mask."""
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
        p, t = jnp.square(p), jnp.square(t)
    # One sum of p + t: a pass over both maps, where Σ p + Σ t took two.
    return intersection, jnp.sum(p + t, axis=axes), mask


def dice(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    smooth_nr: ArrayLike = 1e-5,
    smooth_dr: ArrayLike = 1e-5,
    squared: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    from_logits: str | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Soft Dice loss per (sample, class), as MONAI's ``DiceLoss``.

    .. math::
      \ell_{b,c} = w_c \left(1 - \frac{2 \sum_i p_{b,i,c} t_{b,i,c} + s_{nr}}
                             {\sum_i p_{b,i,c} + \sum_i t_{b,i,c} + s_{dr}}\right)

    summed over every pixel (voxel) ``i`` of sample ``b``; with ``squared=True`` the
    denominator sums ``p²`` and ``t²`` (Milletari et al.'s V-Net form). Each class is scored
    on its own overlap, however few pixels it covers, which is why Dice trains segmenters of
    small structures (a tumour of 0.1% of the pixels) where per-pixel cross-entropy is
    swamped by the background.

    Where the denominator is 0 (the class is absent from the prediction and the target and
    ``smooth_dr=0``) the score is taken as 1: the loss is 0, not NaN. With the default
    smoothing an absent class scores ``s_nr / s_dr = 1`` the same way.

    The class weights :math:`w_c` (MONAI's ``weight``, 1 if not given) multiply each
    class's loss, and ``"mean"`` is the plain mean of the weighted losses over (sample,
    class) entries, as MONAI's: not a weighted mean, so weights below 1 also shrink the loss.

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
      class_weights: optional non-negative weight of each class's loss: a scalar,
        ``[num_classes]``, or with ``include_background=False`` also ``[num_classes - 1]``
        (the classes kept, MONAI's length); may be traced.
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
    intersection, total, mask = _overlap_terms(
        probs,
        targets,
        squared=squared,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
    )
    dtype = intersection.dtype
    score = _overlap_ratio(
        2 * intersection + jnp.asarray(smooth_nr, dtype), total + jnp.asarray(smooth_dr, dtype)
    )
    loss = _weighted(1 - score, class_weights, include_background)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def jaccard(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    smooth_nr: ArrayLike = 1e-5,
    smooth_dr: ArrayLike = 1e-5,
    squared: bool = False,
    class_weights: ArrayLike | None = None,
    include_background: bool = True,
    from_logits: str | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Soft Jaccard (IoU) loss per (sample, class).

    .. math::
      \ell_{b,c} = w_c \left(1 - \frac{I + s_{nr}}{U + s_{dr}}\right), \qquad
      I = \sum_i p_{b,i,c} t_{b,i,c}, \quad U = \sum_i p_{b,i,c} + \sum_i t_{b,i,c} - I

    the intersection over union with products for intersections (Rahman and Wang's soft
    IoU); with ``squared=True`` the union sums ``p²`` and ``t²``. Without smoothing the
    score is a function of the Dice score :math:`D`, :math:`J = D / (2 - D)`, and the loss
    :math:`1 - J = 2 (1 - D) / (2 - D)` is the larger, up to twice Dice's. An empty union
    with ``smooth_dr=0`` scores 1 (loss 0), as in ``dice``; class weights and ``"mean"``
    are as in ``dice``.

    MONAI's ``DiceLoss(jaccard=True)`` computes :math:`1 - (2I + s_{nr}) / (2U + s_{dr})`:
    it is this loss with ``smooth_nr = s_nr / 2`` and ``smooth_dr = s_dr / 2``, exactly.

    Args:
      probs: ``[batch, ..., num_classes]`` probabilities (logits with ``from_logits``),
        channel last.
      targets: the same shape, or integer labels ``[batch, ...]`` (labels outside
        ``[0, num_classes)`` leave the pixel out).
      smooth_nr: s_nr, added to the intersection.
      smooth_dr: s_dr, added to the union.
      squared: sum squares in the union.
      class_weights: optional weights of the classes' losses, as in ``dice``.
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
      >>> probs = jnp.array([[[0.5], [1.0], [0.0]]])  # three pixels, one class
      >>> targets = jnp.array([[[1.0], [1.0], [0.0]]])
      >>> # I = 1.5, U = 1.5 + 2 − 1.5 = 2: 1 − 1.5 / 2 = 0.25
      >>> float(jaxloss.jaccard(probs, targets, smooth_nr=0.0, smooth_dr=0.0))
      0.25

    References:
      Rahman and Wang, "Optimizing Intersection-Over-Union in Deep Neural Networks for Image
      Segmentation", ISVC 2016. Wang, Ning and Blaschko, "Jaccard Metric Losses: Optimizing the
      Jaccard Index with Soft Labels", NeurIPS 2023.
    """
    _checks.in_range(smooth_nr, "smooth_nr", low=0)
    _checks.in_range(smooth_dr, "smooth_dr", low=0)
    intersection, total, mask = _overlap_terms(
        probs,
        targets,
        squared=squared,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
    )
    dtype = intersection.dtype
    score = _overlap_ratio(
        intersection + jnp.asarray(smooth_nr, dtype),
        total - intersection + jnp.asarray(smooth_dr, dtype),
    )
    loss = _weighted(1 - score, class_weights, include_background)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)

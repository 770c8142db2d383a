"""Overlap losses of segmentation: Dice and Jaccard (soft IoU), and their shared inputs.

Ratios of sums over all pixels, so they do not care how rare a class is: a tumour covering
0.1% of an image weighs as much as the background. Their ratios are defined everywhere,
including classes absent from both the prediction and the target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checked, _checks, _labels, _numerics
from jaxloss._labels import valid_class_ids
from jaxloss._reduce import masked_inputs, reduce_loss, zero_masked
from jaxloss._sharding import AxisName

ACTIVATIONS = ("sigmoid", "softmax")


def _activated(logits: Classes, from_logits: str) -> Classes:
    """Probabilities of ``logits`` ``[batch, ..., num_classes]`` (or their class columns):
    per class or over classes."""
    if isinstance(logits, list):
        if from_logits == "sigmoid":
            return [jax.nn.sigmoid(column) for column in logits]
        return _numerics.softmax_columns(logits).probs
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


Classes = jax.Array | list[jax.Array]
"""Per-class maps: one ``[batch, ..., classes]`` array, or a list of one ``[batch, ...]``
array per class (``_class_maps``'s ``columns``)."""


class ClassMaps(NamedTuple):
    """:func:`_class_maps`'s result."""

    probs: Classes
    targets: Classes
    axes: tuple[int, ...]
    """The pixel axes the per-class sums run over."""
    mask: jax.Array | None
    """The entries' mask to reduce with (None: all count)."""
    softmax: _numerics.SoftmaxColumns | None
    """A class-by-class softmax of every class (the background too; zero logits where not
    read), before the masks; None where no softmax was computed class by class."""


def _class_maps(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    include_background: bool,
    from_logits: str | None,
    where: ArrayLike | None,
    per_class: bool,
    columns: bool = False,
    softmax_columns: bool = True,
    name: str = "probs",
) -> ClassMaps:
    """Float probabilities and targets of one shape, the axes the overlap sums run over, and
    the mask to reduce with: ``[batch, num_classes]`` if ``per_class``, else ``[batch]``.

    Integer label maps become one-hot targets; a pixel whose label is not a class id in
    ``[0, num_classes)`` (a "void" 255, say) is left out of every sum, its probabilities too.
    Logits are zeroed where they are not read (void pixels, samples masked in every class)
    before the activation, so padding there reaches neither the value nor a gradient.

    With ``columns``, a short class axis (``_numerics.is_short``), and integer labels,
    softmax logits or a single class, the probabilities and the targets are lists of one
    ``[batch, ...]`` array per class kept, for :func:`_class_sums`: the activation, the
    one-hot labels and the masks then run class by class, and no ``[..., classes]`` array
    is built. Measured (soft Dice's value and gradient, 2 x 64³ voxels, 4 classes, paired):
    with integer labels 2.1-2.6x faster (probabilities, softmax or sigmoid logits), from
    softmax logits and one-hot targets 1.2-1.3x; per-class targets keep the arrays
    otherwise (1.5x slower class by class from probabilities, the same from sigmoid
    logits). A single class (binary Dice, ``[..., 1]``) is its own column: XLA:CPU's sum
    of a product of two ``[16, 128, 128, 1]`` arrays over the middle axes took 4.5x as
    long as over ``[16, 128, 128]`` (binary Dice from sigmoid logits 2.4-2.9x faster).
    ``softmax_columns=False`` keeps softmax logits with per-class targets on the arrays, for
    callers with more sums than Dice's two (``tversky``). Class by class, a softmax
    is also returned whole (``ClassMaps.softmax``), for a cross-entropy term that shares it
    (``dice_ce``). Errors call the first argument ``name`` (``logits`` in ``dice_ce``).
    """
    if from_logits is not None:
        _checks.choice(from_logits, ACTIVATIONS, "from_logits")
    probs = _checks.float_array(probs, name, allow_inf=from_logits is not None)
    if from_logits is None:
        _checked.probabilities(probs, name)
    if probs.ndim < 2:
        raise ValueError(
            f"`{name}` must be [batch, ..., num_classes] (channel last), got shape {probs.shape}."
        )
    num_classes = probs.shape[-1]
    if from_logits == "softmax":
        _check_softmax_classes(probs.shape, name)
    if not include_background and num_classes < 2:
        raise ValueError(
            f"`include_background=False` drops class 0 and leaves no class of `{name}` "
            f"{probs.shape}."
        )
    kept = num_classes - (0 if include_background else 1)
    if per_class and where is not None:
        # A [batch] mask is one per sample (the masking door's rule), before the background's
        # column is cut: one that also reads as a mask of every class, or of the classes
        # kept, is refused.
        entries, batch = "the (sample, class) entries", probs.shape[0]
        if kept != num_classes:
            _checks.leading_axes(where, "where", (batch, kept), entries)
        where = _checks.leading_axes(where, "where", (batch, num_classes), entries)
        where = _kept_columns(jnp.asarray(where), num_classes, kept)
    mask, _ = masked_inputs(where, (probs.shape[0], kept) if per_class else probs.shape[:1])
    targets = _labels.as_array(targets)
    labels_given = targets.shape == probs.shape[:-1]
    split = (
        columns
        and _numerics.is_short(num_classes)
        and (labels_given or (softmax_columns and from_logits == "softmax") or num_classes == 1)
    )
    counted = None
    t: Classes
    if labels_given:
        labels = _checks.integer_array(targets, "targets")
        if num_classes == 1:
            raise ValueError(
                f"`targets` {targets.shape} are integer labels but `{name}` {probs.shape} has "
                "one class: every label but 0 would be void, left out of the loss. Pass a "
                f"binary mask as float targets of `{name}`' shape (MONAI ignores to_onehot_y "
                f"with one channel), or give `{name}` a background and a foreground class."
            )
        counted = valid_class_ids(labels, num_classes)
        t = (
            [(labels == k).astype(probs.dtype) for k in range(num_classes)]
            if split
            else jax.nn.one_hot(labels, num_classes, dtype=probs.dtype)
        )
    elif targets.shape == probs.shape:
        t = _checks.float_array(targets, "targets", allow_int=True).astype(probs.dtype)
        _checked.probabilities(t, "targets")
    else:
        raise ValueError(
            f"`targets` must have the shape of `{name}` {probs.shape} (per-class targets) or "
            f"{probs.shape[:-1]} (integer labels), got {targets.shape}."
        )
    axes = tuple(range(1, probs.ndim - 1))
    p: Classes = probs
    softmax = None
    if split:
        p, t = _split(p), _split(t)
    if from_logits is not None:
        # A softmax mixes the classes of a pixel: a sample's logits are read unless every
        # one of its (sample, class) entries is masked.
        read = counted
        if mask is not None:
            row = jnp.any(mask, axis=-1) if per_class else mask
            row = jnp.expand_dims(row, axes)
            read = row if read is None else read & row
        p = _zeroed(read, p)
        if from_logits == "sigmoid":
            # A sigmoid reads its own class alone: the background's logits, when dropped, are
            # not activated at all (a NaN there reached the gradient through the sigmoid's
            # derivative), and a masked (sample, class) entry's are not read either.
            if not include_background:
                p = _without_background(p)
            if per_class and mask is not None:
                p = _zeroed_columns(mask, axes, p)
        if isinstance(p, list) and from_logits == "softmax":
            softmax = _numerics.softmax_columns(p)
            p = softmax.probs
        else:
            p = _activated(p, from_logits)
    p = _zeroed(counted, p)
    if not include_background:
        if from_logits != "sigmoid":
            p = _without_background(p)
        t = _without_background(t)
    if mask is not None:
        # A (sample, class) entry reads only its class's column of the sample's pixels:
        # zeroing that column keeps the padding out of every sum, and no other entry sees it.
        column = mask if per_class else jnp.broadcast_to(mask[:, None], (mask.shape[0], kept))
        p, t = _zeroed_columns(column, axes, p), _zeroed_columns(column, axes, t)
    return ClassMaps(p, t, axes, mask, softmax)


def _probs_and_targets(
    probs: ArrayLike, targets: ArrayLike, **options: Any
) -> tuple[jax.Array, jax.Array, tuple[int, ...], jax.Array | None]:
    """:func:`_class_maps` (its keyword ``options``) as ``[batch, ..., classes]`` arrays."""
    p, t, axes, mask, _ = _class_maps(probs, targets, **options)
    assert not isinstance(p, list) and not isinstance(t, list)
    return p, t, axes, mask


def _split(x: Classes) -> list[jax.Array]:
    """``x``'s class columns: ``x[..., k]`` for every ``k`` (a list stays as it is)."""
    return x if isinstance(x, list) else [x[..., k] for k in range(x.shape[-1])]


def _without_background(x: Classes) -> Classes:
    """``x`` without class 0."""
    return x[1:] if isinstance(x, list) else x[..., 1:]


def _zeroed(pixels: jax.Array | None, x: Classes) -> Classes:
    """``x`` with every class of the pixels ``pixels`` leaves out (``[batch, ...]``) zeroed."""
    return list(zero_masked(pixels, *x)) if isinstance(x, list) else zero_masked(pixels, x)[0]


def _zeroed_columns(columns: jax.Array, axes: tuple[int, ...], x: Classes) -> Classes:
    """``x`` with every (sample, class) entry that ``columns [batch, classes]`` leaves out
    zeroed over its pixels (``axes``), class by class for a list."""
    if isinstance(x, list):
        return [zero_masked(columns[:, k], xk)[0] for k, xk in enumerate(x)]
    return zero_masked(jnp.expand_dims(columns, axes), x)[0]


def _class_sums(
    term: Callable[[jax.Array, jax.Array], jax.Array],
    probs: Classes,
    targets: Classes,
    axes: tuple[int, ...],
) -> jax.Array:
    """``Σ term(p, t)`` over ``axes`` (the pixels), ``[batch, classes]``: one sum per class
    for class columns. XLA:CPU's sum that keeps the minor class axis of one array runs at a
    fraction of the memory bandwidth (2.2 ms per sum at 2 x 64³ voxels and 4 classes)."""
    if isinstance(probs, list) and isinstance(targets, list):
        return jnp.stack(
            [jnp.sum(term(p, t), axis=axes) for p, t in zip(probs, targets, strict=True)],
            axis=-1,
        )
    assert not isinstance(probs, list) and not isinstance(targets, list)
    return jnp.sum(term(probs, targets), axis=axes)


def _overlap_ratio(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    """``numerator / denominator``, and 1 (a perfect score) where the denominator is 0.

    Without smoothing, a class absent from both the prediction and the target gives 0 / 0;
    nothing was predicted wrongly, so the score is 1 and the loss 0, with zero gradients.
    """
    empty = denominator == 0
    return jnp.where(empty, 1, numerator / jnp.where(empty, 1, denominator))


def _kept_columns(x: jax.Array, num_classes: int, kept: int) -> jax.Array:
    """``x`` with a last axis over every class cut to the ``kept`` last ones (class 0's
    column dropped without the background); any other ``x`` as it is."""
    if x.ndim and x.shape[-1] == num_classes:
        return x[..., num_classes - kept :]
    return x


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
        weights = _kept_columns(weights, num_classes, kept)
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
    columns: bool = True,
    name: str = "probs",
) -> tuple[jax.Array, jax.Array, jax.Array | None, _numerics.SoftmaxColumns | None]:
    """``Σ p t`` and ``Σ (p + t)`` (squares with ``squared``) per (sample, class), the mask,
    and a class-by-class softmax (``ClassMaps.softmax``)."""
    p, t, axes, mask, softmax = _class_maps(
        probs,
        targets,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        per_class=True,
        columns=columns,
        name=name,
    )
    intersection = _class_sums(jnp.multiply, p, t, axes)
    # One sum of p + t: a pass over both maps, where Σ p + Σ t took two.
    if squared:
        total = _class_sums(lambda a, b: a * a + b * b, p, t, axes)
    else:
        total = _class_sums(jnp.add, p, t, axes)
    return intersection, total, mask, softmax


def _overlap_loss(
    probs: ArrayLike,
    targets: ArrayLike,
    *,
    jaccard: bool = False,
    smooth_nr: ArrayLike,
    smooth_dr: ArrayLike,
    squared: bool,
    class_weights: ArrayLike | None,
    include_background: bool,
    from_logits: str | None,
    where: ArrayLike | None,
    reduction: str,
    axis_name: AxisName = None,
    columns: bool = True,
    name: str = "probs",
) -> tuple[jax.Array, _numerics.SoftmaxColumns | None]:
    """:func:`dice` (:func:`jaccard` with ``jaccard``), and the class-by-class softmax it
    computed (``ClassMaps.softmax``) for a cross-entropy term to share (``dice_ce``);
    ``columns`` and ``name`` as :func:`_class_maps`'s."""
    _checks.in_range(smooth_nr, "smooth_nr", low=0)
    _checks.in_range(smooth_dr, "smooth_dr", low=0)
    intersection, total, mask, softmax = _overlap_terms(
        probs,
        targets,
        squared=squared,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        columns=columns,
        name=name,
    )
    dtype = intersection.dtype
    # Dice 2I / (Σp + Σt); Jaccard I / U with the union U = Σp + Σt − I.
    overlap, extent = (intersection, total - intersection) if jaccard else (2 * intersection, total)
    score = _overlap_ratio(
        overlap + jnp.asarray(smooth_nr, dtype), extent + jnp.asarray(smooth_dr, dtype)
    )
    loss = _weighted(1 - score, class_weights, include_background)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name), softmax


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

    With ``from_logits="sigmoid"`` and one class, this is optax's ``binary_dice_loss``
    of the maps without their class axis: a binary mask here keeps it, ``[batch, ..., 1]``
    (``x[..., None]``), since a ``[batch, H, W]`` map reads as ``W`` classes of 1-D images;
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
    loss, _ = _overlap_loss(
        probs,
        targets,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        squared=squared,
        class_weights=class_weights,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        reduction=reduction,
        axis_name=axis_name,
    )
    return loss


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
    loss, _ = _overlap_loss(
        probs,
        targets,
        jaccard=True,
        smooth_nr=smooth_nr,
        smooth_dr=smooth_dr,
        squared=squared,
        class_weights=class_weights,
        include_background=include_background,
        from_logits=from_logits,
        where=where,
        reduction=reduction,
        axis_name=axis_name,
    )
    return loss

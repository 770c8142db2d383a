"""Float64 NumPy references of ``jaccard``, ``dice_ce`` and ``dice_focal``, from their
formulas (torch's cross-entropy rules for the per-pixel terms).

Each returns the per-example (``reduction="none"``) values; ``dice_ce_mean`` and
``dice_focal_mean`` the ``"mean"`` (MONAI's: over every counted pixel of the batch).
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import log_softmax
from tests.dense import reference as ref


def _kept_weights(class_weights, num_classes, include_background):
    kept = num_classes - (0 if include_background else 1)
    if class_weights is None:
        return np.ones(kept)
    weights = np.broadcast_to(np.asarray(class_weights, np.float64), (np.size(class_weights),))
    if weights.size == 1:
        return np.full(kept, weights[0])
    return weights[weights.size - kept :]


def jaccard(
    probs,
    targets,
    smooth_nr=1e-5,
    smooth_dr=1e-5,
    squared=False,
    class_weights=None,
    include_background=True,
    from_logits=None,
):
    """1 − (I + s_nr) / (U + s_dr), U = Σp + Σt − I, per (sample, class), times w_c."""
    p, t = ref._overlap_inputs(probs, targets, include_background, from_logits)
    power = 2 if squared else 1
    intersection = (p * t).sum(1)
    union = (p**power).sum(1) + (t**power).sum(1) - intersection
    loss = 1 - ref._ratio_or_one(intersection + smooth_nr, union + smooth_dr)
    num_classes = np.shape(probs)[-1]
    return loss * _kept_weights(class_weights, num_classes, include_background)


def _log_sigmoid(x):
    return -np.logaddexp(0, -x)


def _flat(logits, targets):
    """Logits ``[batch, pixels, classes]``, per-class targets of that shape (one-hot rows of
    zeros for void labels) and the pixels that count ``[batch, pixels]``."""
    z = np.asarray(logits, np.float64)
    z = z.reshape(z.shape[0], -1, z.shape[-1])
    num_classes = z.shape[-1]
    t = np.asarray(targets)
    if t.ndim < np.ndim(logits):
        labels = t.reshape(z.shape[0], -1)
        valid = (labels >= 0) & (labels < num_classes)
        onehot = np.eye(num_classes)[np.where(valid, labels, 0)] * valid[..., None]
        return z, onehot, valid, labels
    return z, np.asarray(t, np.float64).reshape(z.shape), np.ones(z.shape[:2], bool), None


def _dice_term(logits, targets, class_weights, include_background, from_logits, **options):
    losses = ref.dice(
        logits, targets, include_background=include_background, from_logits=from_logits, **options
    )
    return (losses * _kept_weights(class_weights, np.shape(logits)[-1], include_background)).mean(1)


def _dice_ce_parts(
    logits,
    targets,
    lambda_dice=1.0,
    lambda_ce=1.0,
    class_weights=None,
    pos_weight=None,
    label_smoothing=0.0,
    include_background=True,
    from_logits="softmax",
    **options,
):
    """Per sample: the Dice term, and the cross-entropy's sum and count (its mean's weights)."""
    dice = _dice_term(logits, targets, class_weights, include_background, from_logits, **options)
    z, t, valid, labels = _flat(logits, targets)
    num_classes = z.shape[-1]
    if from_logits == "softmax":
        w = _kept_weights(class_weights, num_classes, True)
        smoothed = (1 - label_smoothing) * t + label_smoothing / num_classes
        loss = -(w * smoothed * log_softmax(z)).sum(-1) * valid
        counts = valid * (w[np.where(valid, labels, 0)] if labels is not None else 1.0)
    else:
        kept = num_classes - (0 if include_background else 1)
        z, t = z[..., num_classes - kept :], t[..., num_classes - kept :]
        w = _kept_weights(class_weights, num_classes, include_background)
        positive = 1.0 if pos_weight is None else np.asarray(pos_weight, np.float64)
        loss = -(positive * t * _log_sigmoid(z) + (1 - t) * _log_sigmoid(-z)) * w
        loss = loss * valid[..., None]
        counts = np.broadcast_to(valid[..., None], loss.shape).astype(np.float64)
    axes = tuple(range(1, loss.ndim))
    return lambda_dice, dice, lambda_ce, loss.sum(axes), counts.sum(axes)


def _none(lambda_dice, dice, lambda_pixel, sums, counts):
    return lambda_dice * dice + lambda_pixel * np.where(counts > 0, sums / counts, 0.0)


def _mean(lambda_dice, dice, lambda_pixel, sums, counts):
    return lambda_dice * dice.mean() + lambda_pixel * sums.sum() / counts.sum()


def dice_ce(logits, targets, **options):
    """λ_dice · mean_c(w_c Dice_c) + λ_ce · the sample's cross-entropy mean (torch's rules)."""
    return _none(*_dice_ce_parts(logits, targets, **options))


def dice_ce_mean(none, logits, targets, **options):
    """MONAI's mean: Dice over (sample, class), cross-entropy over every counted pixel."""
    return _mean(*_dice_ce_parts(logits, targets, **options))


def _dice_focal_parts(
    logits,
    targets,
    lambda_dice=1.0,
    lambda_focal=1.0,
    gamma=2.0,
    alpha=None,
    class_weights=None,
    include_background=True,
    from_logits="sigmoid",
    **options,
):
    dice = _dice_term(logits, targets, class_weights, include_background, from_logits, **options)
    z, t, valid, _ = _flat(logits, targets)
    num_classes = z.shape[-1]
    kept = num_classes - (0 if include_background else 1)
    z, t = z[..., num_classes - kept :], t[..., num_classes - kept :]
    p = 1 / (1 + np.exp(-z))
    bce = -(t * _log_sigmoid(z) + (1 - t) * _log_sigmoid(-z))
    focal = (p * (1 - t) + (1 - p) * t) ** gamma * bce
    if alpha is not None:
        focal = (alpha * t + (1 - alpha) * (1 - t)) * focal
    focal = focal * _kept_weights(class_weights, num_classes, include_background)
    counted = np.broadcast_to(valid[..., None], focal.shape)
    focal = focal * counted
    return lambda_dice, dice, lambda_focal, focal.sum((1, 2)), counted.sum((1, 2)).astype(float)


def dice_focal(logits, targets, **options):
    """λ_dice · mean_c(w_c Dice_c) + λ_focal · the mean of w_c·focal over (pixel, class)."""
    return _none(*_dice_focal_parts(logits, targets, **options))


def dice_focal_mean(none, logits, targets, **options):
    """MONAI's mean: the focal term over every (pixel, class) entry of the batch."""
    return _mean(*_dice_focal_parts(logits, targets, **options))

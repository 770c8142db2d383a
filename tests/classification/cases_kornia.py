"""kornia's focal losses and their jaxloss translations (``PEERS``; see
``tests/_suite/peer.py``).

kornia's ``focal_loss`` is the softmax focal loss with its own conventions: ``alpha``
weights class 0 by ``1 − alpha`` and every other class by ``alpha`` (jaxloss's ``alpha`` is a
per-class vector, so the translation passes ``[1 − alpha, alpha, ..., alpha]`` times
kornia's ``weight``); ``reduction="none"`` is a ``(B, C, *)`` map whose target slice holds
the loss (here ``one_hot(labels) * loss``, channel last); and ``"mean"`` divides the sum by
every element of that map, ignored pixels included: ``num_classes`` times the pixel count,
``logits.size``.

``binary_focal_loss_with_logits`` weighs its two terms by the target ``t`` and ``1 − t``,
torchvision's (jaxloss's ``sigmoid_focal``) weighs the whole binary cross-entropy by
``α_t (1 − p_t)^γ``: the two agree for binary targets only, which the inputs here are.
``pos_weight`` scales the positive term, for a binary target a factor
``1 + (pos_weight − 1) t``; ``weight`` scales the whole loss; ``alpha=None`` is jaxloss's
negative ``alpha``; its ``"mean"`` counts ignored entries too.

kornia ignores ``ignore_index`` (default −100); jaxloss excludes labels outside
``[0, num_classes)`` and anything ``where`` masks. With an ``ignore_index`` inside the
classes, the peer relabels the −100s of the inputs as that class (as ``peers.py`` does for
torch), so both ignore the same pixels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from tests._suite.peer import Peer


def _shape(rng) -> tuple[tuple[int, ...], int]:
    """A batch with 0 to 2 spatial axes, at least 4 positions, and a number of classes."""
    while True:
        shape = tuple(int(n) for n in rng.integers(1, 5, size=rng.integers(1, 4)))
        if np.prod(shape) >= 4:
            return shape, int(rng.integers(2, 6))


def _logits_labels_weight(rng) -> tuple:
    """Logits ``[B, ..., C]``, labels with a −100 first and a 0 second, class weights."""
    shape, num_classes = _shape(rng)
    logits = 3 * rng.normal(size=(*shape, num_classes))
    labels = rng.integers(0, num_classes, size=shape)
    labels.reshape(-1)[:2] = (-100, 0)
    weight = rng.uniform(0.2, 2.0, size=num_classes)
    return logits.astype(np.float32), labels.astype(np.int32), weight.astype(np.float32)


def _logits_binary_targets_weights(rng) -> tuple:
    """Logits ``[B, ..., C]``, 0/1 targets with a −100 first, ``weight`` and ``pos_weight``."""
    shape, num_classes = _shape(rng)
    logits = 3 * rng.normal(size=(*shape, num_classes))
    targets = (rng.uniform(size=logits.shape) < 0.4).astype(np.float64)
    targets.reshape(-1)[0] = -100
    weight = rng.uniform(0.2, 2.0, size=num_classes)
    pos_weight = rng.uniform(0.5, 3.0, size=num_classes)
    return tuple(a.astype(np.float32) for a in (logits, targets, weight, pos_weight))


def _channels_last(out):
    """kornia's ``(B, C, *)`` output channel last, as jaxloss's; a scalar as it is."""
    return out.movedim(1, -1) if out.ndim > 1 else out


def _kornia_focal(logits, labels, weight, *, weighted=False, ignore_index=-100, **options):
    import torch
    from kornia.losses import focal_loss

    labels = torch.where(labels == -100, ignore_index, labels)
    out = focal_loss(
        logits.movedim(-1, 1),
        labels,
        weight=weight if weighted else None,
        ignore_index=ignore_index,
        **options,
    )
    return _channels_last(out)


def _focal(
    logits, labels, weight, *, alpha, gamma=2.0, reduction, weighted=False, ignore_index=-100
):
    num_classes = logits.shape[-1]
    class_weights = None
    if alpha is not None:
        class_weights = jnp.array([1 - alpha] + [alpha] * (num_classes - 1), logits.dtype)
    if weighted:
        class_weights = weight if class_weights is None else class_weights * weight
    loss = jaxloss.softmax_focal(
        logits,
        labels,
        gamma=gamma,
        alpha=class_weights,
        where=labels != ignore_index,
        reduction="none" if reduction == "none" else "sum",
    )
    if reduction == "none":
        return jax.nn.one_hot(labels, num_classes, dtype=loss.dtype) * loss[..., None]
    return loss / logits.size if reduction == "mean" else loss


def _kornia_binary_focal(
    logits, targets, weight, pos_weight, *, weighted=False, pos_weighted=False, **options
):
    from kornia.losses import binary_focal_loss_with_logits

    def channels_first(x):
        return x.movedim(-1, 1)

    out = binary_focal_loss_with_logits(
        channels_first(logits),
        channels_first(targets),
        weight=weight if weighted else None,
        pos_weight=pos_weight if pos_weighted else None,
        **options,
    )
    return _channels_last(out)


def _binary_focal(
    logits,
    targets,
    weight,
    pos_weight,
    *,
    alpha=0.25,
    gamma=2.0,
    reduction="none",
    weighted=False,
    pos_weighted=False,
    ignore_index=-100,
):
    loss = jaxloss.sigmoid_focal(
        logits,
        targets,
        alpha=-1.0 if alpha is None else alpha,
        gamma=gamma,
        where=targets != ignore_index,
        reduction="none",
    )
    # [C] vectors broadcast against the classes-last loss.
    if pos_weighted:
        loss = (1 + (jnp.broadcast_to(pos_weight, loss.shape) - 1) * targets) * loss
    if weighted:
        loss = jnp.broadcast_to(weight, loss.shape) * loss
    if reduction == "none":
        return loss
    return loss.mean() if reduction == "mean" else loss.sum()


FOCAL_OPTIONS = (
    {"alpha": 0.25},
    {"alpha": None, "gamma": 0.0},
    {"alpha": 0.7, "gamma": 0.5, "weighted": True},
    {"alpha": None, "weighted": True, "ignore_index": 1},
    {"alpha": 0.25, "gamma": 3.0, "ignore_index": 0},
)
BINARY_FOCAL_OPTIONS = (
    {},
    {"alpha": None, "gamma": 0.0},
    {"alpha": 0.6, "gamma": 0.5, "weighted": True},
    {"gamma": 3.0, "pos_weighted": True},
    {"alpha": 0.4, "weighted": True, "pos_weighted": True},
)
FOCAL_SPELLING = (
    "softmax_focal(logits, labels, gamma=gamma, alpha=alpha_c * weight, "
    'where=labels != ignore_index, reduction="sum")'
)
BINARY_FOCAL_SPELLING = (
    "weight * (1 + (pos_weight - 1) * targets) * sigmoid_focal(logits, targets, alpha=alpha, "
    'gamma=gamma, where=targets != ignore_index, reduction="none")'
)

PEERS: dict[str, Peer] = {
    "kornia:focal_loss": Peer(
        _kornia_focal,
        _focal,
        _logits_labels_weight,
        f"{FOCAL_SPELLING} / logits.size",
        options=tuple({"reduction": "mean", **o} for o in FOCAL_OPTIONS),
    ),
    "kornia:focal_loss[sum]": Peer(
        _kornia_focal,
        _focal,
        _logits_labels_weight,
        FOCAL_SPELLING,
        options=tuple({"reduction": "sum", **o} for o in FOCAL_OPTIONS[2:4]),
    ),
    "kornia:focal_loss[none]": Peer(
        _kornia_focal,
        _focal,
        _logits_labels_weight,
        "jax.nn.one_hot(labels, num_classes) * softmax_focal(logits, labels, gamma=gamma, "
        'alpha=alpha_c * weight, where=labels != ignore_index, reduction="none")[..., None]',
        options=tuple({"reduction": "none", **o} for o in FOCAL_OPTIONS),
    ),
    "kornia:binary_focal_loss_with_logits": Peer(
        _kornia_binary_focal,
        _binary_focal,
        _logits_binary_targets_weights,
        BINARY_FOCAL_SPELLING,
        options=BINARY_FOCAL_OPTIONS,
    ),
    "kornia:binary_focal_loss_with_logits[mean]": Peer(
        _kornia_binary_focal,
        _binary_focal,
        _logits_binary_targets_weights,
        f"({BINARY_FOCAL_SPELLING}).mean()",
        options=tuple({"reduction": "mean", **o} for o in BINARY_FOCAL_OPTIONS),
    ),
}

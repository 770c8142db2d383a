"""kornia's overlap losses and their jaxloss translations (``PEERS``; see
``tests/_suite/peer.py``).

kornia's ``dice_loss`` and ``tversky_loss`` take logits ``(B, C, H, W)`` (a softmax inside)
and labels ``(B, H, W)``, smooth the denominator alone (``eps``) and return the batch mean
of per-sample losses:

* ``dice_loss(average="micro")`` (its default) is one Dice ratio per sample over all
  classes and pixels: jaxloss's ``generalized_dice`` with uniform class weights. Its
  ``weight`` (class weights inside both sums) has no jaxloss spelling and is not translated.
* ``dice_loss(average="macro")`` and ``tversky_loss`` average the per-class losses of
  each sample over the classes present in its target (``weight``-weighted for the Dice),
  then over the batch: jaxloss's per-(sample, class) losses, so averaged.

Pixels labelled ``ignore_index`` (default −100) leave both sums; jaxloss leaves out labels
outside ``[0, num_classes)``, so an ``ignore_index`` inside the classes is relabelled −1 first.
The peer relabels the −100s of the inputs as that class, so both ignore the same pixels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from tests._suite.peer import Peer


def _logits_labels_weight(rng) -> tuple:
    """Logits ``[B, H, W, C]``, labels with a −100 first and a 0 second in every sample (so
    ignoring class 1 leaves each sample a pixel), class weights."""
    batch, height, width = (int(n) for n in rng.integers(1, 5, size=3))
    width = max(width, 2)
    num_classes = int(rng.integers(2, 5))
    logits = 3 * rng.normal(size=(batch, height, width, num_classes))
    labels = rng.integers(0, num_classes, size=(batch, height, width))
    labels[:, 0, :2] = (-100, 0)
    weight = rng.uniform(0.2, 2.0, size=num_classes)
    return logits.astype(np.float32), labels.astype(np.int32), weight.astype(np.float32)


def _kornia(name: str):
    def peer(logits, labels, weight, *, weighted=False, ignore_index=-100, **options):
        import kornia.losses
        import torch

        if weighted:
            options["weight"] = weight
        labels = torch.where(labels == -100, ignore_index, labels)
        return getattr(kornia.losses, name)(
            logits.movedim(-1, 1), labels, ignore_index=ignore_index, **options
        )

    return peer


def _relabelled(labels, ignore_index):
    """kornia's ignored pixels as labels jaxloss leaves out."""
    return jnp.where(labels == ignore_index, -1, labels)


def _present_mean(losses, labels, weights=None):
    """The mean over the batch of each sample's (weighted) mean over the classes its
    target has."""
    num_classes = losses.shape[-1]
    present = jnp.any(jax.nn.one_hot(labels, num_classes, dtype=bool), axis=(1, 2))
    weights = present if weights is None else present * weights[None, :]
    return jnp.mean(jnp.sum(weights * losses, axis=-1) / jnp.sum(weights, axis=-1))


def _micro_dice(logits, labels, weight, *, eps=1e-8, ignore_index=-100):
    return jaxloss.generalized_dice(
        logits,
        _relabelled(labels, ignore_index),
        weight_type="uniform",
        from_logits="softmax",
        smooth_nr=0.0,
        smooth_dr=eps,
    )


def _macro_dice(logits, labels, weight, *, average, weighted=False, eps=1e-8, ignore_index=-100):
    labels = _relabelled(labels, ignore_index)
    losses = jaxloss.dice(
        logits, labels, from_logits="softmax", smooth_nr=0.0, smooth_dr=eps, reduction="none"
    )
    return _present_mean(losses, labels, weight if weighted else None)


def _tversky(logits, labels, weight, *, alpha, beta, eps=1e-8, ignore_index=-100):
    labels = _relabelled(labels, ignore_index)
    losses = jaxloss.tversky(
        logits,
        labels,
        alpha=alpha,
        beta=beta,
        from_logits="softmax",
        smooth_nr=0.0,
        smooth_dr=eps,
        reduction="none",
    )
    return _present_mean(losses, labels)


PRESENT = "present = jax.nn.one_hot(labels, num_classes).any((1, 2)); "

PEERS: dict[str, Peer] = {
    "kornia:dice_loss": Peer(
        _kornia("dice_loss"),
        _micro_dice,
        _logits_labels_weight,
        'generalized_dice(logits, labels, weight_type="uniform", from_logits="softmax", '
        "smooth_nr=0.0, smooth_dr=eps)",
        options=({}, {"eps": 0.5}, {"ignore_index": 1}),
    ),
    "kornia:dice_loss[macro]": Peer(
        _kornia("dice_loss"),
        _macro_dice,
        _logits_labels_weight,
        PRESENT
        + 'w = weight * present; l = dice(logits, labels, from_logits="softmax", smooth_nr=0.0, '
        'smooth_dr=eps, reduction="none"); ((w * l).sum(-1) / w.sum(-1)).mean()',
        options=(
            {"average": "macro"},
            {"average": "macro", "weighted": True},
            {"average": "macro", "weighted": True, "eps": 0.5, "ignore_index": 1},
        ),
    ),
    "kornia:tversky_loss": Peer(
        _kornia("tversky_loss"),
        _tversky,
        _logits_labels_weight,
        PRESENT + 'l = tversky(logits, labels, alpha=alpha, beta=beta, from_logits="softmax", '
        'smooth_nr=0.0, smooth_dr=eps, reduction="none"); '
        "((present * l).sum(-1) / present.sum(-1)).mean()",
        options=(
            {"alpha": 0.3, "beta": 0.7},
            {"alpha": 0.5, "beta": 0.5, "eps": 0.5},
            {"alpha": 1.0, "beta": 1.0, "ignore_index": 1},
        ),
    ),
}

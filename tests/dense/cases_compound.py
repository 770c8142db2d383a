"""``jaccard``, ``dice_ce`` and ``dice_focal`` as the shared suites see them, and MONAI's
overlap losses with their jaxloss translations (``PEERS``; see ``tests/_suite/peer.py``).

MONAI takes channel-first inputs ``(B, C, H, W[, D])`` and, with ``to_onehot_y=True``,
labels ``(B, 1, H, W[, D])``; the peers move the channels and add that axis. MONAI's
``weight`` has one entry per class kept (``DiceLoss``, ``DiceFocalLoss``) or per class
(``DiceCELoss``, whose Dice drops the background's); jaxloss's ``class_weights`` takes both
lengths, so the translations pass MONAI's weight as it is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.peer import Peer
from tests.dense import reference_compound as refc

HEIGHT, WIDTH, CLASSES = 5, 4, 3
WEIGHTS = (0.5, 1.0, 2.0)


def _logits_labels(rng: np.random.Generator, batch: int) -> tuple:
    logits = 2 * rng.normal(size=(batch, HEIGHT, WIDTH, CLASSES))
    labels = rng.integers(0, CLASSES, size=(batch, HEIGHT, WIDTH))
    return logits.astype(np.float32), labels.astype(np.int32)


def _probs_labels(rng: np.random.Generator, batch: int) -> tuple:
    logits, labels = _logits_labels(rng, batch)
    return np.asarray(jax.nn.softmax(logits), np.float32), labels


CASES: dict[str, Case] = {
    "jaccard": Case(
        jaxloss.jaccard,
        _probs_labels,
        refc.jaccard,
        kwargs={"class_weights": WEIGHTS, "smooth_nr": 1e-3, "smooth_dr": 1e-2},
        hyperparameters={"smooth_nr": 0.5},
        invalid={"smooth_dr": -1.0},
    ),
    # Weighted labels: "mean" is torch's weighted mean over every pixel, not the mean of the
    # per-sample values.
    "dice_ce": Case(
        jaxloss.dice_ce,
        _logits_labels,
        refc.dice_ce,
        kwargs={"class_weights": WEIGHTS, "lambda_ce": 0.7, "include_background": False},
        hyperparameters={"lambda_ce": 0.3},
        reference_mean=refc.dice_ce_mean,
        free=(0,),
        invalid={"lambda_dice": -1.0, "label_smoothing": 1.5},
    ),
    "dice_focal": Case(
        jaxloss.dice_focal,
        _logits_labels,
        refc.dice_focal,
        kwargs={"class_weights": WEIGHTS, "from_logits": "softmax", "alpha": 0.25},
        hyperparameters={"gamma": 1.5},
        reference_mean=refc.dice_focal_mean,
        free=(0,),
        invalid={"lambda_focal": -0.5},
    ),
}


# -------------------------------------------------------------------------------- MONAI
def _segmentation(rng: np.random.Generator) -> tuple:
    """Logits ``[B, H, W, C]`` or ``[B, D, H, W, C]``, labels, and one weight per class.

    Three classes at least: MONAI ignores ``weight`` (or raises) when one class is kept.
    """
    spatial = tuple(int(n) for n in rng.integers(2, 5, size=int(rng.integers(2, 4))))
    batch, num_classes = int(rng.integers(1, 4)), int(rng.integers(3, 5))
    logits = 2 * rng.normal(size=(batch, *spatial, num_classes))
    labels = rng.integers(0, num_classes, size=(batch, *spatial))
    weight = rng.uniform(0.2, 2.0, size=num_classes)
    return logits.astype(np.float32), labels.astype(np.int32), weight.astype(np.float32)


def _binary(rng: np.random.Generator) -> tuple:
    """One-channel logits and float targets ``[B, H, W, 1]``, and a positive weight ``[1]``."""
    batch, height, width = (int(n) for n in rng.integers(1, 5, size=3))
    logits = 2 * rng.normal(size=(batch, height, width, 1))
    targets = rng.integers(0, 2, size=logits.shape)
    weight = rng.uniform(0.5, 3.0, size=1)
    return logits.astype(np.float32), targets.astype(np.float32), weight.astype(np.float32)


def _monai(name: str, **fixed):
    """MONAI's ``name`` on channel-last inputs: labels get their channel axis, ``weighted``
    passes the weight input (less the background's where MONAI wants one per class kept),
    ``one_hot`` gives one-hot targets instead of labels, and ``"none"`` loses MONAI's
    singleton spatial axes."""

    def peer(logits, labels, weight, *, weighted=False, one_hot=False, **options):
        import monai.losses
        import torch

        options = {**fixed, **options}
        kept_weight = name in ("DiceLoss", "DiceFocalLoss") and not options.get(
            "include_background", True
        )
        if weighted:
            options["weight"] = weight[1:] if kept_weight else weight
        if labels.dtype == torch.int64:
            if one_hot:
                labels = torch.nn.functional.one_hot(labels, logits.shape[-1]).double()
                labels = labels.movedim(-1, 1)
            else:
                labels = labels[:, None]
                options["to_onehot_y"] = True
        else:
            labels = labels.movedim(-1, 1)
        out = getattr(monai.losses, name)(**options)(logits.movedim(-1, 1), labels)
        if options.get("reduction") != "none" or name == "FocalLoss":
            return out
        # [B, C, 1, ...] per (sample, class); GeneralizedDiceLoss's [B, 1, ...] per sample.
        return out.reshape(out.shape[: 1 if name == "GeneralizedDiceLoss" else 2])

    return peer


def _activation(options: dict) -> str | None:
    """MONAI's ``sigmoid``/``softmax`` flags as ``from_logits`` (popped from ``options``)."""
    sigmoid, softmax = options.pop("sigmoid", False), options.pop("softmax", False)
    return "sigmoid" if sigmoid else "softmax" if softmax else None


def _class_weights(weight, weighted, options, per_kept=True):
    """MONAI's ``weight`` as passed to it: the classes kept's for DiceLoss, DiceFocalLoss."""
    if not weighted:
        return None
    return weight[1:] if per_kept and not options.get("include_background", True) else weight


def _targets(logits, labels, one_hot):
    return jax.nn.one_hot(labels, logits.shape[-1]) if one_hot else labels


def _dice(logits, labels, weight, *, weighted=False, jaccard=False, **options):
    from_logits = _activation(options)
    squared = options.pop("squared_pred", False)
    class_weights = _class_weights(weight, weighted, options)
    if not jaccard:
        return jaxloss.dice(
            logits,
            labels,
            class_weights=class_weights,
            from_logits=from_logits,
            squared=squared,
            **options,
        )
    smooth_nr, smooth_dr = options.pop("smooth_nr", 1e-5), options.pop("smooth_dr", 1e-5)
    return jaxloss.jaccard(
        logits,
        labels,
        smooth_nr=smooth_nr / 2,
        smooth_dr=smooth_dr / 2,
        class_weights=class_weights,
        from_logits=from_logits,
        squared=squared,
        **options,
    )


def _tversky(logits, labels, weight, **options):
    return jaxloss.tversky(logits, labels, from_logits=_activation(options), **options)


def _generalized_dice(logits, labels, weight, *, w_type="square", **options):
    return jaxloss.generalized_dice(
        logits, labels, weight_type=w_type, from_logits=_activation(options), **options
    )


def _dice_ce(logits, labels, weight, *, weighted=False, one_hot=False, **options):
    options.pop("softmax", None)
    return jaxloss.dice_ce(
        logits,
        _targets(logits, labels, one_hot),
        class_weights=weight if weighted else None,
        squared=options.pop("squared_pred", False),
        **options,
    )


def _dice_ce_binary(logits, targets, weight, *, weighted=False, **options):
    return jaxloss.dice_ce(
        logits, targets, from_logits="sigmoid", pos_weight=weight if weighted else None, **options
    )


def _dice_focal(logits, labels, weight, *, weighted=False, **options):
    from_logits = _activation(options)
    return jaxloss.dice_focal(
        logits,
        labels,
        class_weights=_class_weights(weight, weighted, options),
        from_logits=from_logits,
        squared=options.pop("squared_pred", False),
        **options,
    )


def _focal(logits, labels, weight, *, weighted=False, alpha=None, gamma=2.0, **options):
    losses = jaxloss.sigmoid_focal(
        logits,
        jax.nn.one_hot(labels, logits.shape[-1]),
        alpha=-1.0 if alpha is None else alpha,
        gamma=gamma,
        reduction="none",
    )
    if weighted:
        losses = losses * jnp.broadcast_to(weight, losses.shape)
    reduction = options.get("reduction", "mean")
    if reduction == "none":
        return jnp.moveaxis(losses, -1, 1)
    return jnp.mean(losses) if reduction == "mean" else jnp.sum(losses)


def _softmax_focal(logits, labels, weight, *, gamma=2.0, **options):
    return jaxloss.softmax_focal(logits, labels, gamma=gamma) / logits.shape[-1]


PEERS: dict[str, Peer] = {
    "monai:DiceLoss": Peer(
        _monai("DiceLoss"),
        _dice,
        _segmentation,
        "dice(probs, targets, class_weights=weight)",
        options=(
            {"softmax": True},
            {"softmax": True, "weighted": True, "reduction": "none"},
            {"sigmoid": True, "weighted": True, "include_background": False},
            {"softmax": True, "squared_pred": True, "smooth_nr": 0.5, "reduction": "sum"},
        ),
    ),
    "monai:DiceLoss[jaccard]": Peer(
        _monai("DiceLoss", jaccard=True),
        lambda *a, **o: _dice(*a, jaccard=True, **o),
        _segmentation,
        "jaccard(probs, targets, smooth_nr=smooth_nr / 2, smooth_dr=smooth_dr / 2)",
        options=(
            {"softmax": True},
            {"softmax": True, "weighted": True, "smooth_nr": 0.5, "smooth_dr": 1.0},
            {"sigmoid": True, "squared_pred": True, "include_background": False},
            {"softmax": True, "weighted": True, "include_background": False, "reduction": "none"},
        ),
    ),
    "monai:TverskyLoss": Peer(
        _monai("TverskyLoss"),
        _tversky,
        _segmentation,
        "tversky(probs, targets, alpha=alpha, beta=beta)",
        options=(
            {"softmax": True, "alpha": 0.3, "beta": 0.7},
            {"sigmoid": True, "include_background": False, "reduction": "none"},
            {"softmax": True, "alpha": 0.8, "beta": 0.2, "smooth_nr": 0.1, "reduction": "sum"},
        ),
    ),
    "monai:GeneralizedDiceLoss": Peer(
        _monai("GeneralizedDiceLoss"),
        _generalized_dice,
        _segmentation,
        "generalized_dice(probs, targets, weight_type=w_type)",
        options=(
            {"softmax": True},
            {"softmax": True, "w_type": "simple", "include_background": False},
            {"sigmoid": True, "w_type": "uniform", "reduction": "none"},
        ),
    ),
    "monai:DiceCELoss": Peer(
        _monai("DiceCELoss", softmax=True),
        _dice_ce,
        _segmentation,
        "dice_ce(logits, targets, class_weights=weight, lambda_dice=lambda_dice, "
        "lambda_ce=lambda_ce)",
        options=(
            {},
            {"weighted": True},
            {"weighted": True, "one_hot": True, "include_background": False},
            {"lambda_dice": 0.7, "lambda_ce": 1.5, "label_smoothing": 0.1, "squared_pred": True},
        ),
    ),
    "monai:DiceCELoss[sigmoid]": Peer(
        _monai("DiceCELoss", sigmoid=True),
        _dice_ce_binary,
        _binary,
        'dice_ce(logits, targets, from_logits="sigmoid", pos_weight=weight)',
        options=({}, {"weighted": True, "lambda_ce": 0.5}),
    ),
    "monai:DiceFocalLoss": Peer(
        _monai("DiceFocalLoss"),
        _dice_focal,
        _segmentation,
        "dice_focal(logits, targets, class_weights=weight, gamma=gamma, alpha=alpha)",
        options=(
            {"sigmoid": True},
            {"softmax": True, "weighted": True, "gamma": 1.5},
            {
                "sigmoid": True,
                "weighted": True,
                "include_background": False,
                "alpha": 0.3,
                "lambda_dice": 0.5,
                "lambda_focal": 2.0,
            },
        ),
    ),
    "monai:FocalLoss": Peer(
        _monai("FocalLoss"),
        _focal,
        _segmentation,
        '(sigmoid_focal(logits, targets, alpha=alpha, gamma=gamma, reduction="none") '
        "* weight).mean()",
        options=(
            {},
            {"alpha": 0.25, "gamma": 1.5, "weighted": True},
            {"gamma": 0.5, "reduction": "none"},
        ),
    ),
    "monai:FocalLoss[softmax]": Peer(
        _monai("FocalLoss", use_softmax=True),
        _softmax_focal,
        _segmentation,
        "softmax_focal(logits, labels, gamma=gamma) / num_classes",
        options=({}, {"gamma": 1.0}),
    ),
}

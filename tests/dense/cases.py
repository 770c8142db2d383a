"""The dense losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import NUM_CLASSES
from tests._suite.numpy_reference import log_softmax
from tests._suite.peer import Peer
from tests.dense import reference as ref

PIXELS = 6
POINTS_X, POINTS_Y, POINT_DIM = 7, 5, 3


def _probs_labels(rng: np.random.Generator, batch: int) -> tuple:
    probs = np.exp(log_softmax(2 * rng.normal(size=(batch, PIXELS, NUM_CLASSES))))
    return probs.astype(np.float32), rng.integers(0, NUM_CLASSES, size=(batch, PIXELS)).astype(
        np.int32
    )


def _probs_soft_targets(rng: np.random.Generator, batch: int) -> tuple:
    probs, _ = _probs_labels(rng, batch)
    return probs, rng.uniform(size=probs.shape).astype(np.float32)


def _logits_labels(rng: np.random.Generator, batch: int) -> tuple:
    _, labels = _probs_labels(rng, batch)
    return (2 * rng.normal(size=(batch, PIXELS, NUM_CLASSES))).astype(np.float32), labels


def _logits_soft_targets(rng: np.random.Generator, batch: int) -> tuple:
    logits, _ = _logits_labels(rng, batch)
    return logits, rng.uniform(size=logits.shape).astype(np.float32)


def _overlap_case(fn, reference, make_inputs, hyperparameters=None, **kwargs) -> Case:
    # Logits may take any value; probabilities keep theirs.
    free = (0,) if "from_logits" in kwargs else ()
    return Case(
        fn,
        make_inputs,
        reference,
        kwargs=kwargs,
        hyperparameters=hyperparameters or {},
        free=free,
    )


def _clouds(rng: np.random.Generator, batch: int) -> tuple:
    x = rng.normal(size=(batch, POINTS_X, POINT_DIM)).astype(np.float32)
    return x, rng.normal(size=(batch, POINTS_Y, POINT_DIM)).astype(np.float32)


def _padded_clouds(rng: np.random.Generator, batch: int) -> tuple:
    x, y = _clouds(rng, batch)
    x_lengths = rng.integers(1, POINTS_X + 1, size=batch).astype(np.int32)
    return x, y, x_lengths, rng.integers(1, POINTS_Y + 1, size=batch).astype(np.int32)


def _with_lengths(fn):
    """``fn`` with the clouds' lengths as positional inputs, so the suite can drop rows."""

    def with_lengths(x, y, x_lengths, y_lengths, **options):
        return fn(x, y, x_lengths=x_lengths, y_lengths=y_lengths, **options)

    return with_lengths


def _points_past_lengths(x, y, x_lengths, y_lengths) -> dict[int, np.ndarray]:
    def past(points, lengths):
        beyond = np.arange(np.shape(points)[1])[None, :] >= np.asarray(lengths)[:, None]
        return np.broadcast_to(beyond[..., None], np.shape(points))

    return {0: past(x, x_lengths), 1: past(y, y_lengths)}


def _chamfer_case(make_inputs, chunk_size=None, **kwargs) -> Case:
    fn, reference, padding = jaxloss.chamfer, ref.chamfer, None
    if make_inputs is _padded_clouds:
        fn, reference = _with_lengths(fn), _with_lengths(reference)
        padding = _points_past_lengths

    def chamfer(*args, **options):
        return fn(*args, chunk_size=chunk_size, **options)

    # custom_vjp: reverse mode only.
    return Case(
        chamfer,
        make_inputs,
        reference,
        kwargs=kwargs,
        differentiable=(0, 1),
        grad_modes=("rev",),
        padding=padding,
    )


LAYER_SHAPES = ((4, 3, 2), (2, 2, 3))


def _feature_maps(rng: np.random.Generator, batch: int) -> tuple:
    """Two layers of features, then two of targets: ``(f1, f2, t1, t2)``."""
    maps = [rng.normal(size=(batch, *shape)) for shape in LAYER_SHAPES * 2]
    return tuple(m.astype(np.float32) for m in maps)


def _layer_lists(fn):
    """``fn`` over two layers passed as four positional arrays."""

    def on_layers(f1, f2, t1, t2, **options):
        return fn([f1, f2], [t1, t2], **options)

    return on_layers


def _layers_case(fn, reference, **kwargs) -> Case:
    return Case(
        _layer_lists(fn),
        _feature_maps,
        _layer_lists(reference),
        kwargs=kwargs,
        differentiable=(0, 1, 2, 3),
    )


CASES: dict[str, Case] = {
    "dice": dataclasses.replace(
        _overlap_case(
            jaxloss.dice,
            ref.dice,
            _probs_labels,
            {"smooth_nr": 0.5},
            smooth_nr=1e-3,
            smooth_dr=1e-2,
        ),
        invalid={"smooth_dr": -1.0},
    ),
    "dice[squared,soft,no_background]": _overlap_case(
        jaxloss.dice, ref.dice, _probs_soft_targets, squared=True, include_background=False
    ),
    "dice[sigmoid,soft]": _overlap_case(
        jaxloss.dice, ref.dice, _logits_soft_targets, from_logits="sigmoid"
    ),
    "tversky": dataclasses.replace(
        _overlap_case(
            jaxloss.tversky, ref.tversky, _probs_labels, {"beta": 0.4}, alpha=0.3, beta=0.7
        ),
        invalid={"alpha": -0.1, "gamma": 0.0},
    ),
    "tversky[focal,soft]": _overlap_case(
        jaxloss.tversky, ref.tversky, _probs_soft_targets, {"gamma": 2.0}, gamma=0.75
    ),
    "tversky[softmax,no_background]": _overlap_case(
        jaxloss.tversky,
        ref.tversky,
        _logits_labels,
        {"alpha": 0.2},
        alpha=0.4,
        beta=0.6,
        from_logits="softmax",
        include_background=False,
    ),
    "generalized_dice": dataclasses.replace(
        _overlap_case(
            jaxloss.generalized_dice,
            ref.generalized_dice,
            _probs_labels,
            {"smooth_nr": 0.5},
            smooth_nr=1e-3,
            smooth_dr=1e-2,
        ),
        invalid={"smooth_nr": -1.0},
    ),
    "generalized_dice[simple,soft,no_background]": _overlap_case(
        jaxloss.generalized_dice,
        ref.generalized_dice,
        _probs_soft_targets,
        weight_type="simple",
        include_background=False,
    ),
    "generalized_dice[batch_weights,weighted_mean,softmax]": _overlap_case(
        jaxloss.generalized_dice,
        ref.generalized_dice,
        _logits_labels,
        {"smooth_dr": 0.5},
        batch_weights=True,
        weighted_mean=True,
        from_logits="softmax",
        smooth_nr=0.1,
        smooth_dr=0.1,
    ),
    "chamfer": dataclasses.replace(_chamfer_case(_clouds), free=(0, 1)),
    "chamfer[plain,sum,chunked]": dataclasses.replace(
        _chamfer_case(_clouds, chunk_size=3, squared=False, point_reduction="sum"), free=(0, 1)
    ),
    "chamfer[lengths,single,chunked]": dataclasses.replace(
        _chamfer_case(_padded_clouds, chunk_size=2, single_directional=True), free=(0, 1)
    ),
    "chamfer[lengths]": dataclasses.replace(
        _chamfer_case(_padded_clouds, squared=False), free=(0, 1)
    ),
    "style_loss": dataclasses.replace(
        _layers_case(jaxloss.style_loss, ref.style_loss, weights=[1.0, 0.5]), free=(0, 1, 2, 3)
    ),
    "perceptual_loss": dataclasses.replace(
        _layers_case(jaxloss.perceptual_loss, ref.perceptual_loss), free=(0, 1, 2, 3)
    ),
}

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {"gram_matrix": "tests/dense/test_dense.py"}


# ------------------------------------------------------------------------- optax's Dice losses
OPTAX_CLASSES = 3
OPTAX_CLASS_WEIGHTS = np.array([0.2, 1.0, 2.5], np.float32)


def _segmentation_logits(rng: np.random.Generator) -> tuple:
    """Logits ``[batch, height, width, 3]`` of random sizes and one-hot targets, every
    class present in the batch (optax weighs a class absent from it by 1e7)."""
    batch, height, width = rng.integers(1, 4), rng.integers(2, 6), rng.integers(2, 6)
    labels = rng.integers(0, OPTAX_CLASSES, size=(batch, height, width))
    labels.flat[:OPTAX_CLASSES] = np.arange(OPTAX_CLASSES)
    logits = 2 * rng.normal(size=(batch, height, width, OPTAX_CLASSES))
    return logits.astype(np.float32), np.eye(OPTAX_CLASSES, dtype=np.float32)[labels]


def _segmentation_probs(rng: np.random.Generator) -> tuple:
    logits, targets = _segmentation_logits(rng)
    return np.exp(log_softmax(logits.astype(np.float64))).astype(np.float32), targets


def _binary_segmentation(rng: np.random.Generator) -> tuple:
    batch, height, width = rng.integers(1, 4), rng.integers(2, 6), rng.integers(2, 6)
    logits = 2 * rng.normal(size=(batch, height, width))
    targets = rng.integers(0, 2, size=(batch, height, width))
    return logits.astype(np.float32), targets.astype(np.float32)


def _over_classes(per_class, reduction):
    """optax's ``reduction``: over the class axis of each sample."""
    return {"none": per_class, "mean": jnp.mean(per_class, -1), "sum": jnp.sum(per_class, -1)}[
        reduction
    ]


def _optax_dice(
    predictions,
    targets,
    *,
    class_weights=None,
    smooth=1.0,
    alpha=0.5,
    beta=0.5,
    apply_softmax=True,
    reduction="mean",
    ignore_background=False,
    axis=None,
):
    """optax's ``dice_loss`` in jaxloss: ``dice`` with 2·smooth, or ``tversky`` with alpha
    and beta; its reduction runs over the classes of each sample."""
    assert axis in (None, (1, 2))  # every axis between batch and classes, as jaxloss sums
    options = {
        "from_logits": "softmax" if apply_softmax else None,
        "include_background": not ignore_background,
        "reduction": "none",
    }
    if alpha == beta == 0.5:
        per_class = jaxloss.dice(
            predictions, targets, smooth_nr=2 * smooth, smooth_dr=2 * smooth, **options
        )
    else:
        per_class = jaxloss.tversky(
            predictions,
            targets,
            alpha=alpha,
            beta=beta,
            smooth_nr=smooth,
            smooth_dr=smooth,
            **options,
        )
    if class_weights is not None:
        weights = jnp.asarray(class_weights)[1 if ignore_background else 0 :]
        per_class = per_class * jnp.broadcast_to(weights, per_class.shape)
    return _over_classes(per_class, reduction)


def _optax_generalized_dice(predictions, targets, *, smooth=1.0, apply_softmax=True):
    return jaxloss.generalized_dice(
        predictions,
        targets,
        from_logits="softmax" if apply_softmax else None,
        batch_weights=True,
        weighted_mean=True,
        smooth_nr=2 * smooth,
        smooth_dr=2 * smooth,
    )


def _optax(name):
    def peer(*inputs, **options):
        # optax multiplies [batch, classes] losses by [classes] weights by rank promotion.
        with jax.numpy_rank_promotion("allow"):
            return getattr(optax.losses, name)(*inputs, **options)

    return peer


DICE_OPTIONS = (
    {},
    {"reduction": "none"},
    {"reduction": "sum", "smooth": 0.3},
    {"class_weights": OPTAX_CLASS_WEIGHTS},
    {"class_weights": OPTAX_CLASS_WEIGHTS, "ignore_background": True, "reduction": "none"},
    {"ignore_background": True, "reduction": "sum"},
    {"axis": (1, 2)},
)

PEERS: dict[str, Peer] = {
    "optax:dice_loss": Peer(
        _optax("dice_loss"),
        _optax_dice,
        _segmentation_logits,
        'dice(logits, targets, from_logits="softmax", smooth_nr=2 * smooth, '
        'smooth_dr=2 * smooth, reduction="none").mean(-1)',
        options=DICE_OPTIONS,
    ),
    "optax:dice_loss[tversky]": Peer(
        _optax("dice_loss"),
        _optax_dice,
        _segmentation_logits,
        "tversky(logits, targets, alpha=alpha, beta=beta, smooth_nr=smooth, smooth_dr=smooth, "
        'from_logits="softmax", reduction="none").mean(-1)',
        options=(
            {"alpha": 0.3, "beta": 0.7},
            {"alpha": 0.8, "beta": 0.2, "smooth": 0.1, "reduction": "none"},
            {"alpha": 1.0, "beta": 1.0, "ignore_background": True, "reduction": "sum"},
        ),
    ),
    # optax checks eagerly that probabilities sum to 1, so this path cannot run under jit.
    "optax:dice_loss[probabilities]": Peer(
        _optax("dice_loss"),
        _optax_dice,
        _segmentation_probs,
        'dice(probs, targets, smooth_nr=2 * smooth, smooth_dr=2 * smooth, reduction="none")'
        ".mean(-1)",
        options=tuple({"apply_softmax": False, **o} for o in DICE_OPTIONS),
    ),
    # apply_sigmoid=False raises for any probabilities (optax checks they sum to 1 over the
    # one channel), so only the sigmoid path has numbers to compare.
    "optax:binary_dice_loss": Peer(
        _optax("binary_dice_loss"),
        lambda z, t, smooth=1.0: jaxloss.dice(
            z[..., None],
            t[..., None],
            from_logits="sigmoid",
            smooth_nr=2 * smooth,
            smooth_dr=2 * smooth,
            reduction="none",
        )[..., 0],
        _binary_segmentation,
        'dice(logits[..., None], targets[..., None], from_logits="sigmoid", '
        'smooth_nr=2 * smooth, smooth_dr=2 * smooth, reduction="none")[..., 0]',
        options=({}, {"smooth": 0.3}),
    ),
    "optax:multiclass_generalized_dice_loss": Peer(
        _optax("multiclass_generalized_dice_loss"),
        _optax_generalized_dice,
        _segmentation_logits,
        'generalized_dice(logits, targets, from_logits="softmax", batch_weights=True, '
        "weighted_mean=True, smooth_nr=2 * smooth, smooth_dr=2 * smooth)",
        options=({}, {"smooth": 0.3}),
    ),
    "optax:multiclass_generalized_dice_loss[probabilities]": Peer(
        _optax("multiclass_generalized_dice_loss"),
        _optax_generalized_dice,
        _segmentation_probs,
        "generalized_dice(probs, targets, batch_weights=True, weighted_mean=True, "
        "smooth_nr=2 * smooth, smooth_dr=2 * smooth)",
        options=({"apply_softmax": False}, {"apply_softmax": False, "smooth": 0.3}),
    ),
}

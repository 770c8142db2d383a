"""The dense losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import dataclasses

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import NUM_CLASSES
from tests._suite.numpy_reference import log_softmax
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


def _overlap_case(fn, reference, make_inputs, hyperparameters=None, **kwargs) -> Case:
    return Case(fn, make_inputs, reference, kwargs=kwargs, hyperparameters=hyperparameters or {})


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
    "tversky": dataclasses.replace(
        _overlap_case(
            jaxloss.tversky, ref.tversky, _probs_labels, {"beta": 0.4}, alpha=0.3, beta=0.7
        ),
        invalid={"alpha": -0.1, "gamma": 0.0},
    ),
    "tversky[focal,soft]": _overlap_case(
        jaxloss.tversky, ref.tversky, _probs_soft_targets, {"gamma": 2.0}, gamma=0.75
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

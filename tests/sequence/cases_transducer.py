"""The RNN-T losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import NUM_CLASSES
from tests.sequence import reference as ref

FRAMES = 5
LABELS = 3
JOINT = 4


def _labels(rng: np.random.Generator, batch: int) -> np.ndarray:
    return rng.integers(1, NUM_CLASSES, size=(batch, LABELS)).astype(np.int32)


def _lengths(rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """At least one frame (the final blank needs one); any number of labels, 0 included."""
    return (
        rng.integers(1, FRAMES + 1, size=batch).astype(np.int32),
        rng.integers(0, LABELS + 1, size=batch).astype(np.int32),
    )


def _rnnt_inputs(rng: np.random.Generator, batch: int) -> tuple:
    logits = 2 * rng.normal(size=(batch, FRAMES, LABELS + 1, NUM_CLASSES))
    return logits.astype(np.float32), _labels(rng, batch)


def _rnnt_padded_inputs(rng: np.random.Generator, batch: int) -> tuple:
    return (*_rnnt_inputs(rng, batch), *_lengths(rng, batch))


def _rnnt_with_lengths(logits, labels, logit_lengths, label_lengths, **options):
    return jaxloss.rnnt(
        logits, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, **options
    )


def _off_lattice(logit_lengths, label_lengths, frames: int, positions: int) -> np.ndarray:
    """``[B, T, U+1]``: the nodes past a sequence's frames or labels."""
    past_frames = np.arange(frames)[None, :, None] >= np.asarray(logit_lengths)[:, None, None]
    past_labels = np.arange(positions)[None, None, :] > np.asarray(label_lengths)[:, None, None]
    return past_frames | past_labels


def _rnnt_padding(logits, labels, logit_lengths, label_lengths) -> dict[int, np.ndarray]:
    off = _off_lattice(logit_lengths, label_lengths, *np.shape(logits)[1:3])
    return {0: np.broadcast_to(off[..., None], np.shape(logits))}


def _joiner_inputs(rng: np.random.Generator, batch: int) -> tuple:
    encoder = rng.normal(size=(batch, FRAMES, JOINT)).astype(np.float32)
    predictor = rng.normal(size=(batch, LABELS + 1, JOINT)).astype(np.float32)
    weight = (2 * rng.normal(size=(JOINT, NUM_CLASSES))).astype(np.float32)
    return (encoder, predictor, weight, _labels(rng, batch), *_lengths(rng, batch))


def _linear_rnnt(encoder, predictor, weight, labels, logit_lengths, label_lengths, **options):
    # Blocks of 2 frames: a partial last block too.
    return jaxloss.linear_rnnt(
        encoder,
        predictor,
        weight,
        labels,
        logit_lengths=logit_lengths,
        label_lengths=label_lengths,
        time_chunk=2,
        **options,
    )


def _linear_rnnt_reference(encoder, predictor, weight, labels, logit_lengths, label_lengths):
    encoder, predictor = np.asarray(encoder, np.float64), np.asarray(predictor, np.float64)
    logits = np.tanh(encoder[:, :, None] + predictor[:, None]) @ np.asarray(weight, np.float64)
    return ref.rnnt(logits, labels, logit_lengths, label_lengths)


def _joiner_padding(
    encoder, predictor, weight, labels, logit_lengths, label_lengths
) -> dict[int, np.ndarray]:
    past_frames = np.arange(FRAMES)[None, :] >= np.asarray(logit_lengths)[:, None]
    past_labels = np.arange(LABELS + 1)[None, :] > np.asarray(label_lengths)[:, None]
    return {
        0: np.broadcast_to(past_frames[..., None], np.shape(encoder)),
        1: np.broadcast_to(past_labels[..., None], np.shape(predictor)),
    }


# The defaults (no lengths) are tested in test_rnnt.py: the lengths case reaches every
# code path of the shared suites.
CASES: dict[str, Case] = {
    "rnnt[lengths]": Case(
        _rnnt_with_lengths,
        _rnnt_padded_inputs,
        ref.rnnt,
        grad_modes=("rev",),
        padding=_rnnt_padding,
        free=(0,),
    ),
    "linear_rnnt[lengths]": Case(
        _linear_rnnt,
        _joiner_inputs,
        _linear_rnnt_reference,
        differentiable=(0, 1, 2),
        grad_modes=("rev",),
        batched=(0, 1, 3, 4, 5),
        padding=_joiner_padding,
        free=(0, 1, 2),
    ),
}

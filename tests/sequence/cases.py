"""The sequence losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import NUM_CLASSES
from tests.sequence import reference as ref

CTC_FRAMES = 12
CTC_LABELS = 4


def _ctc_inputs(rng: np.random.Generator, batch: int) -> tuple:
    logits = 2 * rng.normal(size=(batch, CTC_FRAMES, NUM_CLASSES))
    labels = rng.integers(1, NUM_CLASSES, size=(batch, CTC_LABELS))
    return logits.astype(np.float32), labels.astype(np.int32)


def _ctc_padded_inputs(rng: np.random.Generator, batch: int) -> tuple:
    logits, labels = _ctc_inputs(rng, batch)
    # At least 8 of the 12 frames: enough for 4 labels even with repeats.
    logit_lengths = rng.integers(8, CTC_FRAMES + 1, size=batch).astype(np.int32)
    return (
        logits,
        labels,
        logit_lengths,
        rng.integers(1, CTC_LABELS + 1, size=batch).astype(np.int32),
    )


def _ctc_with_lengths(logits, labels, logit_lengths, label_lengths, **options):
    return jaxloss.ctc(
        logits, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, **options
    )


def _ctc_padding(logits, labels, logit_lengths, label_lengths) -> dict[int, np.ndarray]:
    past = np.arange(np.shape(logits)[1])[None, :] >= np.asarray(logit_lengths)[:, None]
    return {0: np.broadcast_to(past[..., None], np.shape(logits))}


CASES: dict[str, Case] = {
    "ctc": Case(
        jaxloss.ctc,
        _ctc_inputs,
        ref.ctc,
        reference_mean=lambda none, logits, labels, **_: (none / labels.shape[1]).mean(),
        grad_modes=("rev",),
        free=(0,),
    ),
    "ctc[lengths]": Case(
        _ctc_with_lengths,
        _ctc_padded_inputs,
        ref.ctc,
        # torch's "mean": each loss over its label length, then the mean.
        reference_mean=lambda none, logits, labels, logit_lengths, label_lengths, **_: (
            none / np.maximum(label_lengths, 1)
        ).mean(),
        grad_modes=("rev",),
        padding=_ctc_padding,
        free=(0,),
    ),
}

# Public names that are not losses, with the module that tests them.
NOT_LOSSES = {"ctc_greedy_decode": "tests/sequence/test_ctc.py"}

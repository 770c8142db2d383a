"""The sequence losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import NUM_CLASSES
from tests._suite.peer import Peer
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
NOT_LOSSES = {
    "ctc_greedy_decode": "tests/sequence/test_ctc.py",
    "ctc_with_forward_probs": "tests/sequence/test_ctc.py",
}


# --- Peers: torch's and optax's CTC ------------------------------------------------------


def _feasible_lengths(rng: np.random.Generator, batch: int, frames: int, max_labels: int):
    """Label lengths in [0, S] (0 included) and frame lengths that fit them (2L + 1 frames
    suffice even with repeats), below ``frames`` for some sequences."""
    label_lengths = rng.integers(0, max_labels + 1, size=batch)
    logit_lengths = rng.integers(2 * label_lengths + 1, frames + 1)
    return logit_lengths.astype(np.int32), label_lengths.astype(np.int32)


def _peer_ctc_inputs(rng: np.random.Generator) -> tuple:
    """Random (B, T, K, S); labels in [2, K) so that blank may be 0 or 1."""
    batch, max_labels, classes = rng.integers(1, 6), rng.integers(1, 6), rng.integers(4, 9)
    frames = 2 * max_labels + 1 + rng.integers(0, 8)
    logits = 2 * rng.normal(size=(batch, frames, classes))
    labels = rng.integers(2, classes, size=(batch, max_labels))
    labels[0, -1] = labels[0, 0]  # a repeat when S > 1
    return (
        logits.astype(np.float32),
        labels.astype(np.int32),
        *_feasible_lengths(rng, batch, frames, max_labels),
    )


def _torch_ctc_inputs(rng: np.random.Generator) -> tuple:
    """torch's inputs in jaxloss's layout: log-probabilities [B, T, K], padded labels."""
    logits, labels, logit_lengths, label_lengths = _peer_ctc_inputs(rng)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return log_probs.astype(np.float32), labels, logit_lengths, label_lengths


def _torch_ctc_impossible_inputs(rng: np.random.Generator) -> tuple:
    """Sequence 0 has fewer frames than labels: inf, or 0 with ``zero_infinity``."""
    log_probs, labels, logit_lengths, label_lengths = _torch_ctc_inputs(rng)
    label_lengths[0] = labels.shape[1]
    logit_lengths[0] = labels.shape[1] - 1
    return log_probs, labels, logit_lengths, label_lengths


def _torch_ctc(log_probs, targets, input_lengths, target_lengths, **options):
    import torch

    return torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1),  # torch's [T, B, K]
        targets.long(),
        input_lengths.long(),
        target_lengths.long(),
        **options,
    )


def _ours_ctc(log_probs, labels, logit_lengths, label_lengths, **options):
    return jaxloss.ctc(
        log_probs, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, **options
    )


def _optax_ctc_inputs(rng: np.random.Generator) -> tuple:
    """optax's inputs: logits, frame paddings, labels, label paddings (1.0 = padded)."""
    logits, labels, logit_lengths, label_lengths = _peer_ctc_inputs(rng)
    frames, max_labels = logits.shape[1], labels.shape[1]
    logit_paddings = np.arange(frames)[None, :] >= logit_lengths[:, None]
    label_paddings = np.arange(max_labels)[None, :] >= label_lengths[:, None]
    return logits, logit_paddings.astype(np.float32), labels, label_paddings.astype(np.float32)


def _lengths(paddings):
    """Right-padded paddings (1.0 = padded) to lengths."""
    return jnp.sum(paddings == 0, axis=1, dtype=jnp.int32)


def _optax_ctc(logits, logit_paddings, labels, label_paddings, **options):
    return optax.losses.ctc_loss(logits, logit_paddings, labels, label_paddings, **options)


def _ours_optax_ctc(logits, logit_paddings, labels, label_paddings, blank_id=0, log_epsilon=None):
    # No log_epsilon: jaxloss's impossible paths are a true -inf (optax's about log_epsilon).
    return jaxloss.ctc(
        logits,
        labels,
        logit_lengths=_lengths(logit_paddings),
        label_lengths=_lengths(label_paddings),
        blank=blank_id,
        reduction="none",
    )


def _forward_probs_as_one(loss, blank_alphas, label_alphas, label_paddings, reachable):
    """The loss and the log-alphas of the states within the labels that ``reachable`` marks
    (others 0), in one vector: what the peer test compares, values and gradients."""
    max_labels = label_paddings.shape[1]
    lengths = _lengths(label_paddings)[None, :, None]
    blank_states = jnp.arange(max_labels + 1)[None, None, :] <= lengths
    label_states = jnp.arange(max_labels)[None, None, :] < lengths
    blank_alphas = jnp.where(blank_states & reachable(blank_alphas), blank_alphas, 0)
    label_alphas = jnp.where(label_states & reachable(label_alphas), label_alphas, 0)
    return jnp.concatenate([loss, blank_alphas.ravel(), label_alphas.ravel()])


def _optax_forward_probs(logits, logit_paddings, labels, label_paddings, **options):
    loss, blank_alphas, label_alphas = optax.losses.ctc_loss_with_forward_probs(
        logits, logit_paddings, labels, label_paddings, **options
    )
    # optax's unreachable states hold about -1e5 (log_epsilon) per impossible step.
    return _forward_probs_as_one(
        loss, blank_alphas, label_alphas, label_paddings, lambda alpha: alpha > -1e4
    )


def _ours_forward_probs(logits, logit_paddings, labels, label_paddings, blank_id=0):
    loss, blank_alphas, label_alphas = jaxloss.ctc_with_forward_probs(
        logits,
        labels,
        logit_lengths=_lengths(logit_paddings),
        label_lengths=_lengths(label_paddings),
        blank=blank_id,
    )
    # optax's last row of blank alphas also folds in the label states before them.
    last = jnp.logaddexp(blank_alphas[-1, :, 1:], label_alphas[-1])
    blank_alphas = blank_alphas.at[-1, :, 1:].set(last)
    return _forward_probs_as_one(loss, blank_alphas, label_alphas, label_paddings, jnp.isfinite)


# The options act independently (blank on the emissions, zero_infinity on each loss, then
# the reduction): every reduction with and without zero_infinity, blank 0 and 1 alternating.
_TORCH_CTC_OPTIONS = tuple(
    {"reduction": reduction, "blank": (i + zero_infinity) % 2, "zero_infinity": zero_infinity}
    for i, reduction in enumerate(("none", "mean", "sum"))
    for zero_infinity in (False, True)
)

PEERS: dict[str, Peer] = {
    "torch:ctc_loss": Peer(
        _torch_ctc,
        _ours_ctc,
        _torch_ctc_inputs,
        "ctc(logits, labels, logit_lengths=, label_lengths=, blank=0, zero_infinity=False)",
        options=_TORCH_CTC_OPTIONS,
        rtol=1e-5,
        atol=1e-5,
    ),
    # torch's gradients are NaN for an impossible sequence unless zero_infinity.
    "torch:ctc_loss[impossible]": Peer(
        _torch_ctc,
        _ours_ctc,
        _torch_ctc_impossible_inputs,
        "ctc(logits, labels, logit_lengths=, label_lengths=, blank=0, zero_infinity=False)",
        options=tuple(o for o in _TORCH_CTC_OPTIONS if o["zero_infinity"]),
        rtol=1e-5,
        atol=1e-5,
    ),
    "optax:ctc_loss": Peer(
        _optax_ctc,
        _ours_optax_ctc,
        _optax_ctc_inputs,
        'ctc(logits, labels, logit_lengths=, label_lengths=, blank=, reduction="none")',
        options=({}, {"blank_id": 1, "log_epsilon": -1e3}),
        rtol=1e-5,
        atol=1e-5,
    ),
    "optax:ctc_loss_with_forward_probs": Peer(
        _optax_forward_probs,
        _ours_forward_probs,
        _optax_ctc_inputs,
        "ctc_with_forward_probs(logits, labels, logit_lengths=, label_lengths=, blank=)",
        options=({}, {"blank_id": 1}),
        rtol=1e-5,
        atol=1e-4,
    ),
}

"""CTC forced alignment: the most likely frame-level path of known labels (Viterbi).

The max-product version of the CTC forward recursion, as ``torchaudio.functional.forced_align``
but batched, with lengths, and jit-able: a forward ``lax.scan`` over time keeps the best
log-score of each state of the extended label sequence and an int8 backpointer per frame
and state; a reverse scan follows the backpointers from the best final state.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks
from jaxloss._labels import valid_class_ids
from jaxloss.sequence.connectionist import _check_blank

# Backpointers: how many states back the best predecessor lies (stay, previous, skip).
_STAY, _PREVIOUS, _SKIP = 0, 1, 2


def _extended(
    labels: jax.Array, label_lengths: jax.Array, num_classes: int, blank: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The extended label sequence ``[blank, y_0, blank, ..., y_{L-1}, blank]`` per row.

    Returns ``(classes, emits, skip)``, each ``[batch, 2 * max_label_length + 1]``: the class
    of each state (padding past the labels becomes blank, which gathers safely and is never
    reached from the final states), whether it can emit at all (a label outside the classes
    or equal to blank cannot: its sequence becomes impossible), and whether it may be
    entered straight from the label two states back (a label differing from the previous).
    """
    batch, max_labels = labels.shape
    in_sequence = jnp.arange(max_labels)[None, :] < label_lengths[:, None]
    emits = valid_class_ids(labels, num_classes) & (labels != blank)
    label_classes = jnp.where(in_sequence & emits, labels, blank).astype(jnp.int32)
    previous = jnp.pad(labels[:, :-1], ((0, 0), (1, 0)))
    skip = (labels != previous) & (jnp.arange(max_labels) >= 1)[None, :]

    def interleaved(blanks: ArrayLike, labelled: jax.Array) -> jax.Array:
        states = jnp.stack([jnp.broadcast_to(blanks, labelled.shape), labelled], axis=2)
        tail = jnp.broadcast_to(jnp.asarray(blanks, labelled.dtype), (batch, 1))
        return jnp.concatenate([states.reshape(batch, 2 * max_labels), tail], axis=1)

    return (
        interleaved(jnp.int32(blank), label_classes),
        interleaved(True, emits | ~in_sequence),
        interleaved(False, skip),
    )


def ctc_forced_align(
    log_probs: ArrayLike,
    labels: ArrayLike,
    *,
    logit_lengths: ArrayLike | None = None,
    label_lengths: ArrayLike | None = None,
    blank: int = 0,
) -> tuple[jax.Array, jax.Array]:
    r"""CTC forced alignment: the best frame-level path of the labels, as torchaudio's
    ``forced_align`` with a batch and lengths.

    .. math::
      \pi^\star_b = \operatorname*{arg\,max}_{\pi \in \mathcal B^{-1}(y_b)}
        \sum_{t < T_b} \text{log\_probs}_{b t \pi_t}

    over the frame-level paths :math:`\pi` of :math:`T_b` frames that collapse to the labels
    :math:`y_b` once repeats are merged and blanks removed (a repeated label needs a blank
    between its two copies). This is the CTC forward recursion with the sum replaced by a
    max (Viterbi) over the extended sequence ``blank, y_0, blank, ..., y_{L-1}, blank``,
    ending in the last label or the last blank; the summed ``scores`` are its best
    log-score, the max-product counterpart of ``-ctc(...)``.

    ``log_probs`` are used as given, like torchaudio's, which takes log-probabilities
    (``jax.nn.log_softmax`` of the logits). Raw logits give the same alignment (every path
    has one class per frame, so each frame's normalizer is common to all), but ``scores``
    are then the logits.

    Ties go as in torchaudio's kernel: a state is kept rather than entered from the
    previous state, and both rather than by a skip (the smallest move wins), and the path
    ends in the last label unless the last blank scores strictly higher. Among equally
    good paths, each move thus comes at its earliest frame: ``"1 2 2 2"``, not
    ``"1 1 2 _"``, when every path scores the same. Where the previous state and the skip
    tie above staying, the previous state wins, as in torchaudio's current kernel
    (``src/libtorchaudio``: ``else if (x1 > x0)``); its older one (``csrc``, ``x1 > x0 &&
    x1 > x2``) recorded the worse stay there.

    A sequence that cannot be aligned (fewer frames than its labels plus their adjacent
    repeats, or only through ``-inf`` log-probabilities) gets alignment -1 and score
    ``-inf`` on every frame, so ``scores.sum(-1)`` is ``-inf``; torchaudio raises, and so
    does ``jaxloss.checked`` for too few frames. Frames past ``logit_lengths`` get alignment
    -1 and score 0, and are never read: NaN or inf padding there, or in ``labels`` past
    ``label_lengths``, changes nothing. Unchecked, a label outside the classes or equal to
    ``blank`` makes its sequence impossible; in ``jaxloss.checked`` it is an error.

    Args:
      log_probs: ``[batch, time, num_classes]`` frame log-probabilities (a CTC model's
        ``log_softmax``); half precision is computed in float32.
      labels: ``[batch, max_label_length]`` integer labels to align: class ids other than
        ``blank``, padded past ``label_lengths`` with anything.
      logit_lengths: ``[batch]`` frames of each sequence to align (the rest get alignment
        -1 and score 0); default all ``time`` frames.
      label_lengths: ``[batch]`` labels of each sequence to align; default
        ``max_label_length``.
      blank: the class id that separates the labels (static), in ``[0, num_classes)``.

    Returns:
      ``(alignment, scores)``: ``alignment`` ``[batch, time]`` int32, the class of each
      frame on the best path (blanks included; -1 past ``logit_lengths`` and for sequences
      that cannot be aligned); ``scores`` ``[batch, time]`` float32, ``log_probs`` of that
      class at that frame (0 past ``logit_lengths``, ``-inf`` for sequences that cannot be
      aligned).

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> log_probs = jnp.log(jnp.array([[[0.6, 0.4], [0.3, 0.7], [0.8, 0.2]]]))
      >>> alignment, scores = jaxloss.ctc_forced_align(log_probs, jnp.array([[1]]))
      >>> alignment.tolist()  # "_ a _": 0.6 · 0.7 · 0.8 beats "a a _" and "_ a a"
      [[0, 1, 0]]
      >>> round(float(jnp.exp(scores.sum())), 3)
      0.336

    References:
      Graves, Fernández, Gomez and Schmidhuber, "Connectionist Temporal Classification:
      Labelling Unsegmented Sequence Data with Recurrent Neural Networks", ICML 2006.
      https://www.cs.toronto.edu/~graves/icml_2006.pdf

      Pratap, Tjandra, Shi, et al., "Scaling Speech Technology to 1,000+ Languages", 2023
      (torchaudio's ``forced_align``). https://arxiv.org/abs/2305.13516
    """
    log_probs = _checks.float_array(log_probs, "log_probs", allow_inf=True)
    if log_probs.ndim != 3:
        raise ValueError(
            f"`log_probs` must have shape [batch, time, num_classes], got {log_probs.shape}."
        )
    batch, num_frames, num_classes = log_probs.shape
    labels = _checks.label_sequences(labels, batch)
    _check_blank(blank, num_classes)
    max_labels = labels.shape[1]
    logit_lengths = _checks.lengths(logit_lengths, num_frames, batch, "logit_lengths")
    label_lengths = _checks.lengths(label_lengths, max_labels, batch, "label_lengths")

    in_sequence = jnp.arange(max_labels)[None, :] < label_lengths[:, None]
    _checked.sequence_labels(labels, label_lengths, num_classes, blank)
    repeats = in_sequence[:, 1:] & (labels[:, 1:] == labels[:, :-1])
    _checked.value_check(
        logit_lengths >= label_lengths + jnp.sum(repeats, axis=1, dtype=jnp.int32),
        "`logit_lengths` must be at least `label_lengths` plus the number of adjacent "
        "repeated labels: such sequences cannot be aligned.",
    )

    classes, emits, skip = _extended(labels, label_lengths, num_classes, blank)
    num_states = classes.shape[1]
    frame_valid = jnp.arange(num_frames)[None, :] < logit_lengths[:, None]

    def forward(best: jax.Array, frame: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        frame_log_probs, valid = frame
        emitted = jnp.take_along_axis(frame_log_probs, classes, axis=1)
        emitted = jnp.where(emits, emitted, -jnp.inf)
        padded = jnp.pad(best, ((0, 0), (2, 0)), constant_values=-jnp.inf)
        previous = padded[:, 1 : num_states + 1]
        skipped = jnp.where(skip, padded[:, :num_states], -jnp.inf)
        # Strict comparisons in this order: ties keep the smaller move (torchaudio's rule).
        pointer = jnp.where(previous > best, _PREVIOUS, _STAY)
        top = jnp.maximum(best, previous)
        pointer = jnp.where(skipped > top, _SKIP, pointer)
        top = jnp.maximum(top, skipped)
        # Past its length a sequence stays put: its frames, whatever they hold, are not read.
        valid = valid[:, None]
        best = jnp.where(valid, top + emitted, best)
        return best, jnp.where(valid, pointer, _STAY).astype(jnp.int8)

    # Before the first frame: the empty prefix, log 1 in the first blank state; state 1
    # (the first label) is then entered from it at frame 0 like any "previous" move.
    start = jnp.full((batch, num_states), -jnp.inf, log_probs.dtype).at[:, 0].set(0)
    final, pointers = jax.lax.scan(forward, start, (jnp.moveaxis(log_probs, 1, 0), frame_valid.T))

    last_blank = 2 * label_lengths
    last_label = jnp.maximum(last_blank - 1, 0)
    blank_score = jnp.take_along_axis(final, last_blank[:, None], axis=1)[:, 0]
    label_score = jnp.take_along_axis(final, last_label[:, None], axis=1)[:, 0]
    ends_in_blank = (label_lengths == 0) | (blank_score > label_score)
    state = jnp.where(ends_in_blank, last_blank, last_label)
    possible = jnp.maximum(blank_score, jnp.where(label_lengths > 0, label_score, -jnp.inf))
    possible = possible > -jnp.inf

    def backward(state: jax.Array, frame_pointers: jax.Array) -> tuple[jax.Array, jax.Array]:
        move = jnp.take_along_axis(frame_pointers, state[:, None], axis=1)[:, 0]
        # Only an impossible sequence could step below state 0; it is discarded anyway.
        return jnp.maximum(state - move, 0), state

    _, states = jax.lax.scan(backward, state.astype(jnp.int32), pointers, reverse=True)
    path = jnp.take_along_axis(classes, states.T, axis=1)
    scores = jnp.take_along_axis(log_probs, path[:, :, None], axis=2)[:, :, 0]

    counted = frame_valid & possible[:, None]
    alignment = jnp.where(counted, path, -1)
    scores = jnp.where(counted, scores, jnp.where(possible[:, None], 0, -jnp.inf))
    return alignment, scores

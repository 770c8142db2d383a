"""Connectionist temporal classification: the CTC loss, with its forward variables, and the
greedy (best-path) decoder.

``ctc`` and ``ctc_with_forward_probs`` check and mask their inputs, build the padded label
sequences and which labels may be skipped to (``_prepared``), and call the kernel
``_kernels.ctc`` (the alpha recursion and its hand-written gradient).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checked, _checks
from jaxloss._kernels.ctc import negative_log_likelihood, negative_log_likelihood_and_alphas
from jaxloss._labels import valid_class_ids
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName


def _check_blank(blank: int, num_classes: int) -> None:
    """``blank`` must be a class (an int): out of range, no frame would ever be a blank."""
    if not 0 <= _checks.static_index(blank, "blank") < num_classes:
        raise ValueError(f"`blank`={blank} must be a class index in [0, {num_classes}).")


class _Prepared(NamedTuple):
    """The kernel's inputs (``_kernels.ctc``), in its argument order."""

    logits: jax.Array
    labels: jax.Array
    skip: jax.Array
    logit_lengths: jax.Array
    label_lengths: jax.Array


def _prepared(
    logits: ArrayLike,
    labels: ArrayLike,
    logit_lengths: ArrayLike | None,
    label_lengths: ArrayLike | None,
    blank: int,
    where: ArrayLike | None,
) -> tuple[jax.Array | None, _Prepared]:
    """Checked and masked inputs of the kernel, and the ``[batch]`` mask of ``where``."""
    logits = _checks.sequence_logits(logits)
    batch, num_frames, num_classes = logits.shape
    labels = _checks.label_sequences(labels, batch)
    _check_blank(blank, num_classes)
    max_labels = labels.shape[1]
    all_frames = logit_lengths is None
    logit_lengths = _checks.lengths(logit_lengths, num_frames, batch, "logit_lengths")
    label_lengths = _checks.lengths(label_lengths, max_labels, batch, "label_lengths")
    mask, _ = masked_inputs(where, (batch,))
    if mask is not None or not all_frames:
        # Frames past a length and masked sequences are zeroed before the log-softmax: the
        # backward pass multiplies their softmax by 0, and 0 · NaN would be NaN.
        counted = jnp.arange(num_frames)[None, :] < logit_lengths[:, None]
        if mask is not None:
            counted = counted & mask[:, None]
        _, (logits,) = masked_inputs(None, counted.shape, logits, counted=counted)

    # Padding becomes blank: it is never reached, and gathers safely.
    in_sequence = jnp.arange(max_labels)[None, :] < label_lengths[:, None]
    _checked.sequence_labels(labels, label_lengths, num_classes, blank, mask)
    # Labels out of range become -1 (never emitted either way) before the cast to int32,
    # which would wrap an int64 label into the classes.
    valid = valid_class_ids(labels, num_classes)
    labels = jnp.where(in_sequence, jnp.where(valid, labels, -1), blank).astype(jnp.int32)
    # A label may be reached straight from the previous label when the two differ.
    previous = jnp.pad(labels[:, :-1], ((0, 0), (1, 0)), constant_values=-1)
    skip = (labels != previous) & (jnp.arange(max_labels) >= 1)[None, :]

    return mask, _Prepared(logits, labels, skip, logit_lengths, label_lengths)


def ctc(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    logit_lengths: ArrayLike | None = None,
    label_lengths: ArrayLike | None = None,
    blank: int = 0,
    zero_infinity: bool = False,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""CTC loss, as ``torch.nn.functional.ctc_loss`` of ``log_softmax(logits)``.

    .. math::
      \ell_b = -\log \sum_{\pi \in \mathcal B^{-1}(y_b)} \prod_{t < T_b} p_{b t \pi_t}

    over every frame-level path :math:`\pi` that collapses to the labels :math:`y_b` once
    repeats are merged and blanks removed, with :math:`p = \mathrm{softmax}(\text{logits})`.
    ``"mean"`` is torch's: each :math:`\ell_b` divided by its label length (at least 1), then
    averaged over the batch.

    Computed in log space with a true -inf: a sequence that cannot be aligned (too few
    frames for its labels and their repeats) has loss ``inf`` and a zero gradient (torch
    gives NaN gradients there); with ``zero_infinity`` its loss is 0 too. The loss is never
    below 0. The gradient is hand-written (the occupancies by the adjoint of the alpha
    recursion, then the closed form with respect to the logits), so the backward pass does
    not differentiate through the time scan: value and gradient take 1.7-3.8x less time than
    ``optax.ctc_loss`` and a third to a fifth of its temporary memory (``benchmarks/``).
    Being a ``custom_vjp``, it supports reverse-mode differentiation only (``grad``,
    ``vjp``), not ``jvp``. Classes with -inf logits (a constrained vocabulary) are fine,
    the blank's included (a frame that must emit a label): their gradient is exactly 0.
    Frames past ``logit_lengths`` and sequences masked by ``where`` are replaced by 0 before
    the log-softmax, so NaN or inf padding there changes neither the value nor any gradient,
    and their gradient is exactly 0.

    Args:
      logits: ``[batch, time, num_classes]`` unnormalized scores (the frames of a speech or
        handwriting recognizer); half precision is computed in float32.
      labels: ``[batch, max_label_length]`` integer targets in ``[0, num_classes)``, never
        ``blank``, padded past ``label_lengths`` with anything.
      logit_lengths: ``[batch]`` number of valid frames; default all ``time`` frames.
      label_lengths: ``[batch]`` number of valid labels; default ``max_label_length``.
      blank: the blank class id, any index in ``[0, num_classes)`` (static).
      zero_infinity: give impossible sequences loss 0 (and gradient 0) instead of inf.
      where: optional ``[batch]`` boolean mask of the sequences that count.
      reduction: ``"mean"`` (torch's length-normalized mean), ``"sum"`` or ``"none"``
        (``[batch]``, not length-normalized).
      axis_name: mapped axis of the batch (global mean and sum).

    Returns:
      A float32 scalar, or the ``[batch]`` losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.zeros((1, 2, 2))  # two frames, uniform over {blank, "a"}
      >>> round(float(jaxloss.ctc(logits, jnp.array([[1]]), reduction="sum")), 4)
      0.2877

    References:
      Graves, Fernández, Gomez and Schmidhuber, "Connectionist Temporal Classification:
      Labelling Unsegmented Sequence Data with Recurrent Neural Networks", ICML 2006.
      https://www.cs.toronto.edu/~graves/icml_2006.pdf
    """
    mask, prepared = _prepared(logits, labels, logit_lengths, label_lengths, blank, where)
    loss = negative_log_likelihood(*prepared, blank)
    if zero_infinity:
        loss = jnp.where(jnp.isinf(loss), 0, loss)
    if reduction == "mean":
        loss = loss / jnp.maximum(prepared.label_lengths, 1).astype(loss.dtype)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def ctc_with_forward_probs(
    logits: ArrayLike,
    labels: ArrayLike,
    *,
    logit_lengths: ArrayLike | None = None,
    label_lengths: ArrayLike | None = None,
    blank: int = 0,
    zero_infinity: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""CTC loss per sequence with its forward variables (log-alphas), as optax's
    ``ctc_loss_with_forward_probs`` with lengths instead of paddings.

    With :math:`p = \mathrm{softmax}(\text{logits})` and :math:`y` the labels of a sequence,
    the log-alphas after frame :math:`t` of its blank states :math:`n \in [0, S]` and of its
    label states :math:`n \in [0, S)` are

    .. math::
      \alpha^{\text{blank}}_t(n) = \log \sum_{\pi_{0..t} \to y_{<n},\ \pi_t = \text{blank}}
        \prod_{u \le t} p_{u \pi_u}, \qquad
      \alpha^{\text{label}}_t(n) = \log \sum_{\pi_{0..t} \to y_{\le n},\ \pi_t = y_n}
        \prod_{u \le t} p_{u \pi_u}

    over the frame-level paths :math:`\pi` that collapse (repeats merged, blanks removed)
    to the first :math:`n` labels, resp. :math:`n + 1`, ending in a blank, resp. in label
    :math:`y_n` (Graves et al.'s :math:`\alpha_t(2n)` and :math:`\alpha_t(2n + 1)`). The loss
    is :math:`-\mathrm{logaddexp}(\alpha^{\text{blank}}_{T-1}(L), \alpha^{\text{label}}_{T-1}(L-1))`
    for ``L`` labels and ``T`` frames: ``ctc(..., reduction="none")``, the same value and
    the same gradient (same kernel).

    Layout: optax's, time first. The blank log-alphas are ``[time, batch, S + 1]`` and the
    label log-alphas ``[time, batch, S]`` (``S = max_label_length``); entry ``[t, b, n]``
    is the state ``n`` of sequence ``b`` after frame ``t`` (counting from 0). Frames past
    ``logit_lengths[b]`` repeat the alphas of its last frame, so ``[-1]`` holds every
    sequence's final alphas (the start, 0 in blank state 0, for a sequence with no
    frames); states past ``label_lengths[b]`` (blank ``n > L``, label ``n >= L``) are -inf,
    as are unreachable states (optax: about -1e5 per impossible step, and values computed
    from the padded labels). Unlike optax, the last frame is not special: optax's
    ``logalpha_phi[-1, :, 1:]`` also folds in the label state before each blank state; it
    is ``jnp.logaddexp(blank[-1, :, 1:], label[-1])`` here.

    Everything is differentiable in reverse mode (``grad``, ``vjp``; not ``jvp``). The
    loss's gradient is ``ctc``'s hand-written one; the alphas' is the adjoint of the same
    recursion, a second reverse scan that runs only when the alphas are differentiated.
    Frames past ``logit_lengths`` are replaced by 0 before the log-softmax, so NaN or inf
    padding there changes no value and has gradient exactly 0.

    Args:
      logits: ``[batch, time, num_classes]`` unnormalized scores; half precision is computed
        in float32.
      labels: ``[batch, max_label_length]`` integer targets in ``[0, num_classes)``, never
        ``blank``, padded past ``label_lengths`` with anything.
      logit_lengths: ``[batch]`` number of valid frames; default all ``time`` frames.
      label_lengths: ``[batch]`` number of valid labels; default ``max_label_length``.
      blank: the blank class id, any index in ``[0, num_classes)`` (static).
      zero_infinity: give impossible sequences loss 0 (and gradient 0) instead of inf.

    Returns:
      ``(losses, blank_log_alphas, label_log_alphas)``: the float32 ``[batch]`` losses
      :math:`-\log p(y \mid \text{logits})` (inf when the labels cannot be aligned), and the
      float32 log-alphas ``[time, batch, max_label_length + 1]`` and
      ``[time, batch, max_label_length]``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.zeros((1, 2, 2))  # two frames, uniform over {blank, "a"}
      >>> loss, blanks, labels = jaxloss.ctc_with_forward_probs(logits, jnp.array([[1]]))
      >>> jnp.exp(blanks[:, 0]).tolist()  # "_" then "__"; "a_"
      [[0.5, 0.0], [0.25, 0.25]]
      >>> jnp.exp(labels[:, 0]).tolist()  # "a"; "_a" and "aa"
      [[0.5], [0.5]]
      >>> round(float(loss[0]), 4)  # -log(0.25 + 0.5)
      0.2877

    References:
      Graves, Fernández, Gomez and Schmidhuber, "Connectionist Temporal Classification:
      Labelling Unsegmented Sequence Data with Recurrent Neural Networks", ICML 2006.
      https://www.cs.toronto.edu/~graves/icml_2006.pdf
    """
    _, prepared = _prepared(logits, labels, logit_lengths, label_lengths, blank, None)
    loss, (blank_alphas, label_alphas) = negative_log_likelihood_and_alphas(*prepared, blank)
    if zero_infinity:
        loss = jnp.where(jnp.isinf(loss), 0, loss)
    states = jnp.arange(blank_alphas.shape[-1])[None, :]
    last = prepared.label_lengths[:, None]
    blank_alphas = jnp.where((states <= last)[None], blank_alphas, -jnp.inf)
    label_alphas = jnp.where((states[:, :-1] < last)[None], label_alphas, -jnp.inf)
    return loss, blank_alphas, label_alphas


def ctc_greedy_decode(
    logits: ArrayLike,
    *,
    logit_lengths: ArrayLike | None = None,
    blank: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Best-path CTC decoding: the most likely class per frame, repeats merged, blanks removed.

    Numerics: only comparisons (``argmax``), so any scores, ±inf included, decode without
    arithmetic that could overflow; ties go to the lowest class id. ``logit_lengths`` are
    clipped to ``[0, time]`` (an error inside ``jaxloss.checked``).

    Args:
      logits: ``[batch, time, num_classes]`` scores (logits or log-probabilities).
      logit_lengths: ``[batch]`` number of valid frames; default all.
      blank: the blank class id, any index in ``[0, num_classes)`` (static).

    Returns:
      ``(tokens, lengths)``: ``tokens`` ``[batch, time]`` int32, the decoded labels packed to
      the left and padded with -1; ``lengths`` ``[batch]`` int32, how many are valid.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> frames = jnp.array([[1, 1, 0, 1, 2, 2, 0]])  # "a a _ a b b _"
      >>> tokens, lengths = jaxloss.ctc_greedy_decode(jax.nn.one_hot(frames, 3))
      >>> tokens[0, : int(lengths[0])].tolist()
      [1, 1, 2]
    """
    logits = _checks.sequence_logits(logits)
    batch, num_frames, num_classes = logits.shape
    _check_blank(blank, num_classes)
    logit_lengths = _checks.lengths(logit_lengths, num_frames, batch, "logit_lengths")
    best = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    previous = jnp.pad(best[:, :-1], ((0, 0), (1, 0)), constant_values=-1)
    keep = (best != blank) & (best != previous)
    keep = keep & (jnp.arange(num_frames)[None, :] < logit_lengths[:, None])
    positions = jnp.cumsum(keep, axis=1) - 1
    rows = jnp.arange(batch)[:, None]
    tokens = jnp.full((batch, num_frames), -1, jnp.int32)
    tokens = tokens.at[rows, jnp.where(keep, positions, num_frames)].set(best, mode="drop")
    return tokens, jnp.sum(keep, axis=1, dtype=jnp.int32)

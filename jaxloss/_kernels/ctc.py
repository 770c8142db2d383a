"""The CTC negative log-likelihood: the alpha recursion forward and its adjoint backward.

The kernel works on the *extended* label sequence: a blank before, between and after the
``S`` labels, kept as two arrays, the ``S + 1`` blank states ``[B, S+1]`` and the ``S``
label states ``[B, S]``. The forward (alpha) recursion is a ``lax.scan`` over time in log
space with a true -inf for impossible states. A blank state adds two predecessors; a label
state adds itself and the blank state's own sum (or the blank alone before a repeated
label), so every state costs one ``logaddexp`` per frame. The emissions are *gathered*
from the logits (no one-hot product over the classes).

The gradient is hand-written (``jax.custom_vjp``), with no autodiff through the scan. A
reverse scan computes the state occupancies γ_t(s) = α_t(s) β_t(s) / p, the posterior of
state ``s`` at frame ``t``. It does so as the adjoint of the alpha recursion: each
``logaddexp`` passes back each input's share of its sum, ``exp(input - sum) <= 1``. The
forward pass already computes ``exp(-|a - b|)`` for every ``logaddexp``; it stores it,
signed by which input was larger (``_numerics.logaddexp_and_split``), and the shares are
``1 / (1 + e)`` and ``e / (1 + e)``. So the backward pass needs no ``exp``, no logarithm
and no alphas: the beta recursion's result at the cost of two divisions a state. Each share
keeps full relative precision (measured against float64 torch at the benchmark's shapes:
the gradient's largest error 3-5x smaller than when the shares were ``exp`` of differences
of stored log-alphas), and a frame whose blank cannot be emitted (a -inf logit, its alphas
-inf) still passes back through its label-to-label skips: recovering that frame's sums
from its alphas gave NaN gradients for the whole sequence. The gradient with respect to the
logits is then the closed form ``softmax - Σ_{s: l'_s = k} γ_t(s)``.

Notation inside the kernel: ``B`` batch, ``T`` time, ``K`` classes, ``S`` labels, ``L`` states.

``negative_log_likelihood_and_alphas`` (``jaxloss.ctc_with_forward_probs``) is the same
forward pass keeping and returning the alphas after each frame too. Its backward pass is
the one above for the loss, plus, only when the alphas are differentiated (symbolic zeros
tell), the same adjoint scan with their cotangents added at every frame.

Memory: the residuals are the splits (``T × B × (2S+1)`` floats) and the logits'
log-normalizers (``B × T``), besides the logits themselves; nothing per step. With the
alphas, the alphas after each frame too (as many as the splits). The backward pass holds
the occupancies (``T × B × (2S+1)``) and the gradient (``B × T × K``). ``S`` counts the
padded label states (``_padded``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import CustomVJPPrimal, SymbolicZero
from jax.typing import DTypeLike

from jaxloss._labels import valid_class_ids
from jaxloss._numerics import logaddexp_and_split, logaddexp_shares, logsumexp
from jaxloss._sharding import vary_like

_NEG_INF = -jnp.inf

# A pair of state arrays: the blank states ``[..., S+1]`` and the label states ``[..., S]``
# (alphas, splits, emissions and occupancies alike), ``S`` counting the padded label states
# (``_padded``).
_States = tuple[jax.Array, jax.Array]


def _pad_front(x: jax.Array) -> jax.Array:
    """``x[:, i - 1]`` along the state axis, one longer, -inf first."""
    return jnp.pad(x, ((0, 0), (1, 0)), constant_values=_NEG_INF)


def _alpha_step(
    alpha: _States, emit_t: _States, t: jax.Array, skip: jax.Array, logit_lengths: jax.Array
) -> tuple[_States, _States]:
    """One frame of the alpha recursion on blank states ``[B, S+1]`` and labels ``[B, S]``.

    Blank i is reached from blank i or label i-1: ``u_i = lae(blank_i, label_{i-1})``.
    Label i is reached from label i, blank i, and (``skip``: a label different from the
    previous one) label i-1, i.e. from label i and ``u_i`` — so each state costs one
    ``logaddexp``. Returns the alphas after the frame and how its two ``logaddexp`` sums
    split between their inputs (``logaddexp_and_split``), which the backward pass reads.
    """
    blank, label = alpha
    emit_blank, emit_label = emit_t
    into_blank, split_blank = logaddexp_and_split(blank, _pad_front(label))
    via = jnp.where(skip, into_blank[:, :-1], blank[:, :-1])
    into_label, split_label = logaddexp_and_split(label, via)
    running = (t < logit_lengths)[:, None]
    after = (
        jnp.where(running, into_blank + emit_blank[:, None], blank),
        jnp.where(running, into_label + emit_label, label),
    )
    return after, (split_blank, split_label)


def _start(batch: int, num_labels: int, dtype: DTypeLike) -> _States:
    """The alpha before frame 0: a virtual state before the first blank holds log 1.

    Frame 0 then needs no special case, and a sequence with no frames keeps this start
    (probability 1 for the empty label sequence, 0 for any other).
    """
    blank = jnp.where(jnp.arange(num_labels + 1) == 0, 0.0, _NEG_INF).astype(dtype)
    return (
        jnp.broadcast_to(blank, (batch, num_labels + 1)),
        jnp.full((batch, num_labels), _NEG_INF, dtype),
    )


class _Kept(NamedTuple):
    """What the forward pass keeps of every frame (each ``None`` unless asked for)."""

    alphas: _States | None  # the alphas after the frame
    splits: _States | None  # how each logaddexp sum splits between its inputs


def _forward(
    emit: _States,
    skip: jax.Array,
    logit_lengths: jax.Array,
    *,
    keep_alphas: bool = False,
    keep_splits: bool = False,
) -> tuple[_States, _Kept]:
    """Alpha recursion over the emissions ``([T, B], [T, B, S])``.

    Returns:
      Every sequence's alpha at its last frame (blank ``[B, S+1]``, label ``[B, S]``), and
      what it keeps of each frame (:func:`_alpha_step`): the alphas after it if
      ``keep_alphas`` and the splits of its ``logaddexp`` sums if ``keep_splits``
      (``[T, B, S+1]``, ``[T, B, S]`` each).
    """
    num_frames, batch, num_labels = emit[1].shape

    def step(alpha: _States, inputs: tuple[_States, jax.Array]) -> tuple[_States, _Kept]:
        emit_t, t = inputs
        after, splits = _alpha_step(alpha, emit_t, t, skip, logit_lengths)
        return after, _Kept(after if keep_alphas else None, splits if keep_splits else None)

    start = vary_like(_start(batch, num_labels, emit[1].dtype), *emit, logit_lengths)
    return jax.lax.scan(step, start, (emit, jnp.arange(num_frames)))


def _final_log_likelihood(final_alpha: _States, label_lengths: jax.Array) -> jax.Array:
    """log p(labels | logits): the paths end in the last blank or the last label."""
    blank, label = final_alpha
    last_blank = jnp.take_along_axis(blank, label_lengths[:, None], axis=1)[:, 0]
    last_label = jnp.take_along_axis(label, jnp.maximum(label_lengths - 1, 0)[:, None], axis=1)
    last_label = jnp.where(label_lengths > 0, last_label[:, 0], _NEG_INF)
    return jnp.logaddexp(last_blank, last_label)


def _pad_back(x: jax.Array) -> jax.Array:
    """Occupancies of the S labels as S+1 entries, the last 0 (to add to the blanks)."""
    return jnp.pad(x, ((0, 0), (0, 1)))


def _end_occupancies(
    final_alpha: _States, log_likelihood: jax.Array, label_lengths: jax.Array
) -> _States:
    """γ at each sequence's last frame: d log p / d α of its two end states, 0 elsewhere
    and for impossible sequences (log p = -inf)."""
    last = label_lengths[:, None]
    finite = jnp.isfinite(log_likelihood)
    log_likelihood = jnp.where(finite, log_likelihood, 0)[:, None]
    blank_end = jnp.arange(final_alpha[0].shape[1])[None, :] == last
    label_end = jnp.arange(final_alpha[1].shape[1])[None, :] == last - 1
    return (
        jnp.where(blank_end & finite[:, None], jnp.exp(final_alpha[0] - log_likelihood), 0),
        jnp.where(label_end & finite[:, None], jnp.exp(final_alpha[1] - log_likelihood), 0),
    )


def _occupancies(
    splits: _States,
    skip: jax.Array,
    start: _States,
    logit_lengths: jax.Array,
    added: _States | None = None,
) -> _States:
    """State occupancies γ_t(s), the posterior of being in state ``s`` at frame ``t``.

    γ is the adjoint of the alpha recursion in log space (d log p / d α_t(s)), so it runs
    backward through the stored splits with no beta recursion, no logarithm and no
    ``exp``: each edge of :func:`_alpha_step` passes back its input's share of the
    ``logaddexp`` sum, at most 1 (so nothing overflows), which the forward pass's split
    gives (``logaddexp_shares``). Starting from ``start`` (:func:`_end_occupancies`),
    γ_{t-1}(s) = Σ_{s'} γ_t(s') exp(α_{t-1}(s) - sum_t(s')). Frames past a sequence's end
    get no occupancy. A state never reached (α = -inf: an impossible label, a -inf logit)
    has γ = 0 and passes nothing back. ``added`` (``[T, B, S+1]``, ``[T, B, S]``), if
    given, is added to the adjoint of each frame's alphas before it passes back: the
    adjoint of any linear function of the alphas (:func:`_alphas_gradient`).

    Returns:
      γ summed over the blank states ``[T, B]``, and γ of the label states ``[T, B, S]``.
    """
    num_frames = splits[1].shape[0]

    def step(
        gamma: _States, inputs: tuple[_States, jax.Array, _States | None]
    ) -> tuple[_States, _States]:
        (split_blank, split_label), t, added_t = inputs
        gamma_blank, gamma_label = gamma
        if added_t is not None:
            gamma_blank, gamma_label = gamma_blank + added_t[0], gamma_label + added_t[1]
        # into_label = lae(before_label, via): via is into_blank where skip, else the blank.
        to_label, to_via = logaddexp_shares(split_label)
        back_label = gamma_label * to_label
        to_via = gamma_label * to_via
        # into_blank = lae(before_blank, before_label shifted by one), plus `via` where skip.
        to_blank, to_previous_label = logaddexp_shares(split_blank)
        through_blank = gamma_blank + _pad_back(jnp.where(skip, to_via, 0))
        back_blank = through_blank * to_blank + _pad_back(jnp.where(skip, 0, to_via))
        back_label = back_label + (through_blank * to_previous_label)[:, 1:]
        running = (t < logit_lengths)[:, None]
        carry = (
            jnp.where(running, back_blank, gamma_blank),
            jnp.where(running, back_label, gamma_label),
        )
        out = (
            jnp.where(running[:, 0], jnp.sum(gamma_blank, axis=1), 0),
            jnp.where(running, gamma_label, 0),
        )
        return carry, out

    _, gammas = jax.lax.scan(step, start, (splits, jnp.arange(num_frames), added), reverse=True)
    return gammas


# Up to this many classes, the label occupancies reach the classes through a one-hot
# matmul ([T, B, S] x [B, S, K]); beyond, through a scatter-add, whose cost does not grow
# with K (measured on CPU: the matmul is 3x faster at K = 30, the scatter 2x at K = 1000).
_MATMUL_MAX_CLASSES = 256


def _label_occupancy(label_gammas: jax.Array, labels: jax.Array, num_classes: int) -> jax.Array:
    """Σ_{s: y_s = k} γ_t(s) as ``[B, T, K]``; repeated labels share a class, so it adds."""
    num_frames, batch, _ = label_gammas.shape
    if num_classes <= _MATMUL_MAX_CLASSES:
        one_hot = jax.nn.one_hot(labels, num_classes, dtype=label_gammas.dtype)
        return jnp.einsum("tbs,bsk->btk", label_gammas, one_hot)
    rows = jnp.arange(batch)[:, None, None]
    frames = jnp.arange(num_frames)[None, :, None]
    occupancy = jnp.zeros((batch, num_frames, num_classes), label_gammas.dtype)
    return occupancy.at[rows, frames, labels[:, None, :]].add(
        jnp.transpose(label_gammas, (1, 0, 2)), mode="drop"
    )


def _emissions(logits: jax.Array, labels: jax.Array, blank: int) -> tuple[_States, jax.Array]:
    """Log-probabilities of the blank ``[T, B]`` and of each label ``[T, B, S]`` per frame.

    Only the labels are gathered (no one-hot product over the classes). The scans want
    time-major arrays; whichever is smaller is transposed, the logits (K <= S) or the
    gathered labels (measured on CPU: up to 6x faster than a one-hot einsum, and the
    transpose of [B, T, 1000] logits alone costs more than the rest). A label outside
    ``[0, num_classes)`` is never emitted (-inf). Also returns the log-normalizers
    ``[B, T]``.
    """
    num_classes = logits.shape[-1]
    safe = jnp.clip(labels, 0, num_classes - 1)
    if num_classes <= labels.shape[-1]:
        time_major = jnp.transpose(logits, (1, 0, 2))
        log_normalizer = logsumexp(time_major)
        emit_label = jnp.take_along_axis(time_major, safe[None], axis=-1)
        emit_blank = time_major[..., blank] - log_normalizer
        log_normalizer = jnp.transpose(log_normalizer)
    else:
        log_normalizer = logsumexp(logits)
        emit_label = jnp.take_along_axis(logits, safe[:, None, :], axis=-1)
        emit_label = jnp.transpose(emit_label, (1, 0, 2))
        emit_blank = jnp.transpose(logits[..., blank] - log_normalizer)
    emit_label = emit_label - jnp.transpose(log_normalizer)[..., None]
    valid = valid_class_ids(labels, num_classes)
    emit_label = jnp.where(valid[None], emit_label, _NEG_INF)
    return (emit_blank, emit_label), log_normalizer


# The label states are padded to a multiple of this many when 4 to 7 would be left over
# (never emitted, so never reached; the blank states follow, one more). XLA:CPU computes a
# row's states past its last full vector one by one, and the label states' logarithm is
# the forward pass's largest cost. Measured at B = 16, T = 100 (value and gradient, paired):
# 15, 20 and 61 labels padded are 1.08x, 1.2x and 1.14x faster; 9 padded to 16 is 0.91x
# and 33 to 40 1.02x, so 1 to 3 left over stay.
_LABEL_LANES = 8


def _padded(labels: jax.Array, skip: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``labels`` (with -1, never emitted) and ``skip`` (False) padded to the states."""
    num_labels = labels.shape[1]
    extra = -num_labels % _LABEL_LANES
    padding = ((0, 0), (0, extra if extra <= _LABEL_LANES // 2 else 0))
    return jnp.pad(labels, padding, constant_values=-1), jnp.pad(skip, padding)


def _nll(log_likelihood: jax.Array) -> jax.Array:
    # -log p >= 0 exactly; rounding may not know that.
    return jnp.maximum(-log_likelihood, 0)


class _Residuals(NamedTuple):
    """What the forward pass keeps for the backward pass."""

    logits: jax.Array
    log_normalizer: jax.Array
    labels: jax.Array
    skip: jax.Array
    logit_lengths: jax.Array
    label_lengths: jax.Array
    splits: tuple[jax.Array, jax.Array]
    final_alpha: tuple[jax.Array, jax.Array]
    log_likelihood: jax.Array
    # The alphas after each frame, only for negative_log_likelihood_and_alphas.
    alphas: tuple[jax.Array, jax.Array] | None = None


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def negative_log_likelihood(
    logits: jax.Array,
    labels: jax.Array,
    skip: jax.Array,
    logit_lengths: jax.Array,
    label_lengths: jax.Array,
    blank: int,
) -> jax.Array:
    """Negative log-likelihood per sequence, ``[B]``; see the module docstring.

    Args:
      logits: ``[B, T, K]`` float, frames past ``logit_lengths`` already zeroed.
      labels: ``[B, S]`` int32 labels, -1 where never emitted, ``blank`` past the labels.
      skip: ``[B, S]`` bool: label ``s`` may be reached from label ``s - 1`` directly.
      logit_lengths: ``[B]`` int32 frames of each sequence.
      label_lengths: ``[B]`` int32 labels of each sequence.
      blank: the blank class (static).
    """
    labels, skip = _padded(labels, skip)
    emit, _ = _emissions(logits, labels, blank)
    final_alpha, _ = _forward(emit, skip, logit_lengths)
    return _nll(_final_log_likelihood(final_alpha, label_lengths))


def _negative_log_likelihood_fwd(
    logits: jax.Array,
    labels: jax.Array,
    skip: jax.Array,
    logit_lengths: jax.Array,
    label_lengths: jax.Array,
    blank: int,
    with_alphas: bool = False,
) -> tuple[jax.Array, _Residuals]:
    labels, skip = _padded(labels, skip)
    emit, log_normalizer = _emissions(logits, labels, blank)
    final_alpha, kept = _forward(
        emit, skip, logit_lengths, keep_alphas=with_alphas, keep_splits=True
    )
    assert kept.splits is not None
    log_likelihood = _final_log_likelihood(final_alpha, label_lengths)
    saved = _Residuals(
        logits=logits,
        log_normalizer=log_normalizer,
        labels=labels,
        skip=skip,
        logit_lengths=logit_lengths,
        label_lengths=label_lengths,
        splits=kept.splits,
        final_alpha=final_alpha,
        log_likelihood=log_likelihood,
        alphas=kept.alphas,
    )
    return _nll(log_likelihood), saved


def _class_occupancy(
    blank_gammas: jax.Array,
    label_gammas: jax.Array,
    labels: jax.Array,
    num_classes: int,
    blank: int,
) -> jax.Array:
    """Occupancies (or any adjoint of the states) summed per class, ``[B, T, K]``."""
    occupancy = _label_occupancy(label_gammas, labels, num_classes)
    is_blank = (jnp.arange(num_classes) == blank)[None, None, :]
    return occupancy + jnp.where(is_blank, jnp.transpose(blank_gammas)[..., None], 0)


def _softmax(saved: _Residuals) -> jax.Array:
    return jnp.exp(saved.logits - saved.log_normalizer[..., None])


def _negative_log_likelihood_gradient(
    blank: int, saved: _Residuals, cotangent: jax.Array
) -> jax.Array:
    logits, log_likelihood, logit_lengths = saved.logits, saved.log_likelihood, saved.logit_lengths
    num_frames, num_classes = logits.shape[1:]
    start = _end_occupancies(saved.final_alpha, log_likelihood, saved.label_lengths)
    blank_gammas, label_gammas = _occupancies(saved.splits, saved.skip, start, logit_lengths)
    occupancy = _class_occupancy(blank_gammas, label_gammas, saved.labels, num_classes, blank)
    counts = (jnp.arange(num_frames)[None, :] < logit_lengths[:, None]) & jnp.isfinite(
        log_likelihood
    )[:, None]
    scale = jnp.where(counts, cotangent[:, None], 0)[..., None]
    return scale * (_softmax(saved) - occupancy)


def _negative_log_likelihood_bwd(
    blank: int, saved: _Residuals, cotangent: jax.Array
) -> tuple[jax.Array, None, None, None, None]:
    return (_negative_log_likelihood_gradient(blank, saved, cotangent), None, None, None, None)


negative_log_likelihood.defvjp(_negative_log_likelihood_fwd, _negative_log_likelihood_bwd)


# --- The loss with its alphas ------------------------------------------------------------


def _public_alphas(saved: _Residuals, num_labels: int) -> _States:
    """The kept alphas without the padded states: ``[T, B, S+1]`` and ``[T, B, S]``."""
    assert saved.alphas is not None
    blank, label = saved.alphas
    return blank[..., : num_labels + 1], label[..., :num_labels]


def _alphas_gradient(blank: int, saved: _Residuals, cotangents: _States) -> jax.Array:
    """Gradient with respect to the logits of Σ_{t,s} c_t(s) α_t(s) (the alphas after each
    frame, ``c`` their cotangents): the adjoint of the recursion with each frame's
    cotangent added (:func:`_occupancies`), then the closed form of the emissions
    e_t(s) = logits_t[class of s] - logsumexp(logits_t): Σ_s adjoint_t(s) (onehot - softmax).
    """
    after = saved.alphas
    assert after is not None
    # The padded states (:func:`_padded`) get no cotangent.
    blank_added, label_added = (
        jnp.pad(c, ((0, 0), (0, 0), (0, a.shape[-1] - c.shape[-1])))
        for c, a in zip(cotangents, after, strict=True)
    )
    # An unreachable state's alpha is -inf whatever the logits: it passes nothing back.
    blank_added = jnp.where(after[0] > _NEG_INF, blank_added, 0)
    label_added = jnp.where(after[1] > _NEG_INF, label_added, 0)
    start = (jnp.zeros_like(saved.final_alpha[0]), jnp.zeros_like(saved.final_alpha[1]))
    blank_adjoint, label_adjoint = _occupancies(
        saved.splits,
        saved.skip,
        start,
        saved.logit_lengths,
        (blank_added, label_added),
    )
    num_classes = saved.logits.shape[-1]
    occupancy = _class_occupancy(blank_adjoint, label_adjoint, saved.labels, num_classes, blank)
    total = jnp.transpose(blank_adjoint + jnp.sum(label_adjoint, axis=-1))[..., None]
    return occupancy - _softmax(saved) * total


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def negative_log_likelihood_and_alphas(
    logits: jax.Array,
    labels: jax.Array,
    skip: jax.Array,
    logit_lengths: jax.Array,
    label_lengths: jax.Array,
    blank: int,
) -> tuple[jax.Array, _States]:
    """:func:`negative_log_likelihood` and the log-alphas after each frame.

    The same forward pass, which keeps the alphas anyway; reverse mode through both. The
    loss's gradient is :func:`negative_log_likelihood`'s; the alphas' is a second reverse
    scan, run only when they are differentiated (symbolic zeros tell).

    Returns:
      ``(nll [B], (blank [T, B, S+1], label [T, B, S]))``: α_t at index t; a sequence's
      frames past ``logit_lengths`` repeat its last alphas (the start, log 1 in blank state
      0, for a sequence with no frames).
    """
    nll, saved = _negative_log_likelihood_fwd(
        logits, labels, skip, logit_lengths, label_lengths, blank, with_alphas=True
    )
    return nll, _public_alphas(saved, labels.shape[1])


def _and_alphas_fwd(
    logits: CustomVJPPrimal,
    labels: CustomVJPPrimal,
    skip: CustomVJPPrimal,
    logit_lengths: CustomVJPPrimal,
    label_lengths: CustomVJPPrimal,
    blank: int,
) -> tuple[tuple[jax.Array, _States], _Residuals]:
    nll, saved = _negative_log_likelihood_fwd(
        logits.value,
        labels.value,
        skip.value,
        logit_lengths.value,
        label_lengths.value,
        blank,
        with_alphas=True,
    )
    return (nll, _public_alphas(saved, labels.value.shape[1])), saved


def _and_alphas_bwd(
    blank: int, saved: _Residuals, cotangents: tuple[jax.Array, _States]
) -> tuple[jax.Array, None, None, None, None]:
    nll_cotangent, alpha_cotangents = cotangents
    grads = []
    if not isinstance(nll_cotangent, SymbolicZero):
        grads.append(_negative_log_likelihood_gradient(blank, saved, nll_cotangent))
    if not all(isinstance(c, SymbolicZero) for c in alpha_cotangents):
        blank_cotangent, label_cotangent = (
            jnp.zeros(c.shape, c.dtype) if isinstance(c, SymbolicZero) else c
            for c in alpha_cotangents
        )
        grads.append(_alphas_gradient(blank, saved, (blank_cotangent, label_cotangent)))
    grad = sum(grads[1:], grads[0]) if grads else jnp.zeros_like(saved.logits)
    return (grad, None, None, None, None)


negative_log_likelihood_and_alphas.defvjp(_and_alphas_fwd, _and_alphas_bwd, symbolic_zeros=True)

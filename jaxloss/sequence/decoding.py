"""CTC decoding beyond the best path: prefix beam search, with an optional language model.

Notation (per sequence): ``W`` hypotheses (``beam_width``), ``V`` classes, ``T`` frames.
Each hypothesis is a token prefix with the log-probabilities of the frames so far ending in
a blank and ending in its last token; one frame turns the ``W`` hypotheses into ``W``
same-prefix candidates and ``W (V - 1)`` one-token extensions, merges the extensions that
equal a held prefix into it, and keeps the ``W`` best. Fixed shapes throughout: a
``lax.scan`` over the frames of the whole batch.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss.sequence.connectionist import _check_blank

# tokens [batch, W, T] (padded with -1), lengths [batch, W] -> log-priors [batch, W, V].
LanguageModel = Callable[[jax.Array, jax.Array], jax.Array]


class _Beam(NamedTuple):
    """The ``W`` hypotheses of one sequence (leading ``[batch]`` in the scan's carry)."""

    prefix: jax.Array  # [W, T] int32 tokens, -1 past `length`
    length: jax.Array  # [W] int32
    last: jax.Array  # [W] int32 last token, -1 for the empty prefix
    log_blank: jax.Array  # [W] log p(frames so far -> prefix, last frame blank)
    log_label: jax.Array  # [W] log p(frames so far -> prefix, last frame its last token)
    fused: jax.Array  # [W] the language-model and insertion terms of the prefix's tokens


def _positive_int(value: int, name: str) -> int:
    """A static positive ``int`` (shapes depend on it), or a ValueError naming ``name``."""
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"`{name}` must be a static int, got {value!r}.") from None
    if value < 1:
        raise ValueError(f"`{name}`={value} must be at least 1.")
    return value


def _scalar(value: ArrayLike, name: str) -> jax.Array:
    value = _checks.float_array(value, name, allow_int=True)
    if value.ndim != 0:
        raise ValueError(f"`{name}` must be a scalar, got shape {value.shape}.")
    return value


def _step(beam: _Beam, log_probs: jax.Array, gain: jax.Array, blank: int) -> _Beam:
    """One frame of one sequence: ``log_probs`` ``[V]``, ``gain`` ``[W, V]`` (the fused
    score of each one-token extension)."""
    width, num_frames = beam.prefix.shape
    num_tokens = log_probs.shape[0] - 1
    # The non-blanks, int32 as the beam's carry (jnp.arange is int64 under jax_enable_x64).
    tokens = (jnp.arange(num_tokens) + (jnp.arange(num_tokens) >= blank)).astype(jnp.int32)
    positions = jnp.arange(num_frames)
    total = jnp.logaddexp(beam.log_blank, beam.log_label)
    held = total > -jnp.inf  # slots past the distinct prefixes hold -inf

    stay_blank = total + log_probs[blank]
    stay_label = jnp.where(
        beam.length > 0, beam.log_label + log_probs[jnp.maximum(beam.last, 0)], -jnp.inf
    )
    # A repeated token starts a new one only after a blank frame.
    repeat = tokens[None, :] == beam.last[:, None]
    grow = jnp.where(repeat, beam.log_blank[:, None], total[:, None]) + log_probs[tokens][None]
    grow_fused = beam.fused[:, None] + gain[:, tokens]

    # Extension (i, c) is held prefix j when j is i plus c: merge it into j (the paper's sum
    # over every alignment of a prefix). Held prefixes are distinct, so each j has at most
    # one parent among the held ones; parents holding -inf add nothing.
    agree = (beam.prefix[:, None, :] == beam.prefix[None, :, :]) | (
        positions[None, None, :] >= beam.length[:, None, None]
    )
    child = (
        jnp.all(agree, axis=-1) & (beam.length[None, :] == beam.length[:, None] + 1) & held[None, :]
    )  # [i, j]
    same = child[:, None, :] & (beam.last[None, None, :] == tokens[None, :, None])  # [i, c, j]
    merged = jax.nn.logsumexp(jnp.where(same, grow[:, :, None], -jnp.inf), axis=(0, 1))
    stay_label = jnp.logaddexp(stay_label, merged)
    grow = jnp.where(jnp.any(same, axis=-1), -jnp.inf, grow)

    log_blank = jnp.concatenate([stay_blank, jnp.full(width * num_tokens, -jnp.inf)])
    log_label = jnp.concatenate([stay_label, grow.reshape(-1)])
    fused = jnp.concatenate([beam.fused, grow_fused.reshape(-1)])
    _, chosen = jax.lax.top_k(jnp.logaddexp(log_blank, log_label) + fused, width)

    grown = chosen >= width
    extension = jnp.maximum(chosen - width, 0)
    parent = jnp.where(grown, extension // num_tokens, chosen)
    token = tokens[extension % num_tokens]
    length = beam.length[parent]
    prefix = jnp.where(
        grown[:, None] & (positions[None, :] == length[:, None]),
        token[:, None],
        beam.prefix[parent],
    )
    return _Beam(
        prefix,
        length + grown,
        jnp.where(grown, token, beam.last[parent]),
        log_blank[chosen],
        log_label[chosen],
        fused[chosen],
    )


def ctc_beam_search(
    logits: ArrayLike,
    *,
    logit_lengths: ArrayLike | None = None,
    beam_width: int = 8,
    top_k: int = 1,
    blank: int = 0,
    lm: LanguageModel | None = None,
    lm_weight: ArrayLike = 0.5,
    insertion_bonus: ArrayLike = 0.0,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""CTC prefix beam search: the ``top_k`` most probable label strings found with a beam
    of ``beam_width`` prefixes, optionally fused with a language model.

    With :math:`y_t = \mathrm{softmax}(\text{logits}_t)` and, for a prefix :math:`\ell`,
    :math:`p_b^t(\ell)` and :math:`p_{nb}^t(\ell)` the probabilities that frames
    :math:`0..t` collapse (repeats merged, blanks removed) to :math:`\ell` with frame
    :math:`t` a blank, resp. the last token :math:`\ell_{-1}`, each frame computes

    .. math::
      p_b^t(\ell) = \bigl(p_b^{t-1}(\ell) + p_{nb}^{t-1}(\ell)\bigr)\, y_t(\text{blank}),
      \qquad
      p_{nb}^t(\ell) = p_{nb}^{t-1}(\ell)\, y_t(\ell_{-1})
        + \bigl[\ell^- = \ell \text{ less its last token } c\bigr]\;
          \bigl(p_b^{t-1}(\ell^-) + [c \ne \ell^-_{-1}]\, p_{nb}^{t-1}(\ell^-)\bigr)\, y_t(c)

    for the prefixes :math:`\ell` and one-token extensions of the ``beam_width`` kept ones
    (an extension equal to a kept prefix is merged into it), then keeps the
    ``beam_width`` with the highest score

    .. math::
      s(\ell) = \log\bigl(p_b^t(\ell) + p_{nb}^t(\ell)\bigr)
        + \sum_k \bigl(\lambda \log q(\ell_k \mid \ell_{<k}) + \beta\bigr)

    with :math:`\log q` the language model ``lm``, :math:`\lambda` = ``lm_weight``,
    :math:`\beta` = ``insertion_bonus`` (without ``lm`` the :math:`\lambda` term is 0 and
    :math:`\beta` still counts). Computed in log space; the paper's algorithm, with the
    language-model factor kept apart from the acoustic sum (the same ranking: every
    alignment of a prefix carries the same factor) and :math:`\beta` per token rather than
    the paper's factor :math:`|W(\ell)|^\beta` on the number of words.
    :math:`p_b + p_{nb}` sums the alignments that stayed in the beam: the exact
    :math:`p(\ell \mid \text{logits})` of the whole sequence when no prefix leading to
    :math:`\ell` was pruned (a beam at least as wide as the number of distinct prefixes),
    a lower bound otherwise.

    ``beam_width=1`` is a greedy search over prefixes, not best-path decoding: it equals
    ``ctc_greedy_decode`` when every frame's most likely class has probability above
    :math:`1/\sqrt 2`, and can differ below: three frames over (blank, "a") most likely
    "a", blank, "a", each at 0.7, read "a a" on the best path and "a" here (the bound is
    tight), which is the more probable string.

    Fixed shapes (jit-able, vmap-able): per frame ``beam_width * num_classes`` candidates
    and an ``O(beam_width^2 time)`` prefix comparison. Frames past ``logit_lengths`` leave
    the beam unchanged and are never read. Not differentiable (a search).

    Args:
      logits: ``[batch, time, num_classes]`` scores; a log-softmax over the classes is
        taken per frame (log-probabilities pass unchanged). Half precision is computed in
        float32.
      logit_lengths: ``[batch]`` frames searched per sequence (default ``time``); later
        frames leave the beam as it is.
      beam_width: number of prefixes kept after each frame (static int, at least 1).
      top_k: number of hypotheses returned per sequence, ``1 <= top_k <= beam_width``
        (static).
      blank: class id of the blank, in ``[0, num_classes)`` (static).
      lm: optional language model, a function of ``(tokens [batch, beam_width, time]``
        int32 prefixes padded with -1, ``lengths [batch, beam_width])`` returning the
        ``[batch, beam_width, num_classes]`` log-prior of each next token given its
        prefix (the blank column is ignored; it runs once per frame inside the scan).
        A bigram table ``log_q [num_classes, num_classes]`` with the blank row as the
        start state: ``lambda tokens, lengths: log_q[jnp.where(lengths > 0,
        jnp.take_along_axis(tokens, jnp.maximum(lengths - 1, 0)[..., None], -1)[..., 0],
        blank)]``.
      lm_weight: scalar :math:`\lambda`; ``0`` turns ``lm`` off (even where it is -inf).
      insertion_bonus: scalar :math:`\beta` added per token, with or without ``lm``.

    Returns:
      ``(tokens, lengths, scores)``, best first: ``tokens`` ``[batch, top_k, time]`` int32
      prefixes padded with -1, ``lengths`` ``[batch, top_k]`` int32, ``scores``
      ``[batch, top_k]`` float32 :math:`s(\ell)` above. A slot with no prefix (fewer than
      ``top_k`` prefixes of non-zero probability) has score -inf, length 0 and only -1.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> probs = jnp.array([[[0.3, 0.5, 0.2], [0.3, 0.3, 0.4]]])  # blank, "a", "b"
      >>> tokens, lengths, scores = jaxloss.ctc_beam_search(
      ...     jnp.log(probs), beam_width=4, top_k=3
      ... )
      >>> [tokens[0, k, : int(lengths[0, k])].tolist() for k in range(3)]
      [[1], [2], [1, 2]]
      >>> [round(float(p), 2) for p in jnp.exp(scores[0])]  # p("a") = .5 .3 + .5 .3 + .3 .3
      [0.39, 0.26, 0.2]
      >>> jaxloss.ctc_greedy_decode(jnp.log(probs))[0][0].tolist()  # the best path: "a b"
      [1, 2]

    References:
      Hannun, Maas, Jurafsky and Ng, "First-Pass Large Vocabulary Continuous Speech
      Recognition using Bi-Directional Recurrent DNNs", arXiv:1408.2873, 2014.
      https://arxiv.org/abs/1408.2873
    """
    logits = _checks.sequence_logits(logits)
    batch, num_frames, num_classes = logits.shape
    _check_blank(blank, num_classes)
    if num_classes < 2:
        raise ValueError(f"`logits` need a blank and at least one token, got {logits.shape}.")
    beam_width = _positive_int(beam_width, "beam_width")
    top_k = _positive_int(top_k, "top_k")
    if top_k > beam_width:
        raise ValueError(f"`top_k`={top_k} must be at most `beam_width`={beam_width}.")
    logit_lengths = _checks.lengths(logit_lengths, num_frames, batch, "logit_lengths")
    lm_weight = _scalar(lm_weight, "lm_weight")
    insertion_bonus = _scalar(insertion_bonus, "insertion_bonus")
    dtype = logits.dtype

    active = jnp.arange(num_frames)[:, None] < logit_lengths[None, :]  # [T, B]
    log_probs = jax.nn.log_softmax(jnp.swapaxes(logits, 0, 1), axis=-1)  # [T, B, V]
    shape = (batch, beam_width)
    empty = jnp.full((*shape, num_frames), -1, jnp.int32)
    first = jnp.arange(beam_width)[None, :] == 0
    start = _Beam(
        empty,
        jnp.zeros(shape, jnp.int32),
        jnp.full(shape, -1, jnp.int32),
        jnp.where(first, jnp.zeros(shape, dtype), -jnp.inf),
        jnp.full(shape, -jnp.inf, dtype),
        jnp.zeros(shape, dtype),
    )

    def frame(beam: _Beam, inputs: tuple[jax.Array, jax.Array]) -> tuple[_Beam, None]:
        frame_log_probs, counted = inputs
        gain = jnp.broadcast_to(insertion_bonus.astype(dtype), (*shape, num_classes))
        if lm is not None:
            prior = jnp.asarray(lm(beam.prefix, beam.length))
            if prior.shape != (*shape, num_classes):
                raise ValueError(
                    f"`lm` must return log-priors of shape [batch, beam_width, num_classes]="
                    f"{[*shape, num_classes]}, got {list(prior.shape)}."
                )
            prior = prior.astype(dtype)
            gain = gain + jnp.where(lm_weight == 0, 0, lm_weight.astype(dtype) * prior)
        stepped = jax.vmap(_step, in_axes=(0, 0, 0, None))(beam, frame_log_probs, gain, blank)
        beam = jax.tree.map(
            lambda new, old: jnp.where(counted.reshape((-1,) + (1,) * (new.ndim - 1)), new, old),
            stepped,
            beam,
        )
        return beam, None

    beam, _ = jax.lax.scan(frame, start, (log_probs, active))
    beam = jax.tree.map(lambda x: x[:, :top_k], beam)
    acoustic = jnp.logaddexp(beam.log_blank, beam.log_label)
    held = acoustic > -jnp.inf
    tokens = jnp.where(held[..., None], beam.prefix, -1)
    lengths = jnp.where(held, beam.length, 0)
    return tokens, lengths, jnp.where(held, acoustic + beam.fused, -jnp.inf)

"""Transducer (RNN-T) beam search: fixed-shape hypotheses, the model given as two functions
(``predict``, ``join``; see ``transducer_decoding.py``, which also holds the greedy decoder
and the argument checks both share)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss.sequence.transducer_decoding import (
    Join,
    Predict,
    _log_probs,
    _prepared,
    _where,
)


class _Hypotheses(NamedTuple):
    """``beam_width`` hypotheses per sequence: every leaf has leading axes [batch, beam]."""

    score: jax.Array  # log-probability; -inf marks an empty slot
    length: jax.Array  # tokens in the prefix
    key: jax.Array  # [..., 2] uint32 hashes of the prefix, to recognize equal prefixes
    emitted: jax.Array  # [..., max_symbols] the tokens emitted at this frame, -1 padded
    emissions: jax.Array  # how many
    origin: jax.Array  # the slot, at the frame's start, of the hypothesis this one extends
    output: Any  # the predictor after the prefix
    state: Any


def _mix(h: jax.Array) -> jax.Array:
    """MurmurHash3's 32-bit finalizer: each input bit flips each output bit with p ~ 1/2."""
    h = h ^ (h >> 16)
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def _extended_key(key: jax.Array, tokens: jax.Array) -> jax.Array:
    # Two differently seeded hashes: with the length, a 64-bit fingerprint of the prefix.
    k = tokens.astype(jnp.uint32)
    first = _mix(key[..., 0] * np.uint32(0x01000193) + k)
    second = _mix((key[..., 1] ^ (k * np.uint32(0x9E3779B1))) + np.uint32(0x7F4A7C15))
    return jnp.stack([first, second], axis=-1)


def _flat(tree: Any) -> Any:
    return jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), tree)


def _beamed(tree: Any, batch: int) -> Any:
    return jax.tree.map(lambda x: x.reshape((batch, -1, *x.shape[1:])), tree)


def _take(tree: Any, index: jax.Array) -> Any:
    """``[batch, slots, ...]`` leaves at ``index`` ``[batch, k]``: ``[batch, k, ...]``."""
    rows = jnp.arange(index.shape[0])[:, None]
    return jax.tree.map(lambda x: x[rows, index], tree)


def _compacted(keep: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The kept entries of ``[batch, n]`` packed to the left: for each slot, the entry's
    index and whether the slot is filled."""
    batch, n = keep.shape
    rows = jnp.arange(batch)[:, None]
    slot = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, n)
    entries = jnp.broadcast_to(jnp.arange(n), keep.shape)
    index = jnp.zeros_like(entries).at[rows, slot].set(entries, mode="drop")
    return index, jnp.zeros_like(keep).at[rows, slot].set(True, mode="drop")


def _round(
    predict: Predict,
    join: Join,
    frames: jax.Array,
    live: _Hypotheses,
    ended: _Hypotheses,
    blank: int,
    may_emit: jax.Array,
) -> tuple[_Hypotheses, _Hypotheses]:
    """One expansion round of a frame: every live hypothesis (Graves' set A) is extended by
    every class at once; the blank extensions join the ended ones (his B); B's hypotheses,
    the blank and the token extensions then compete for the ``beam`` places."""
    batch, width = live.score.shape
    log_probs = _log_probs(join, frames, _flat(live.output)).reshape(batch, width, -1)
    num_classes = log_probs.shape[-1]
    # A blank that ends a prefix B holds already is the same hypothesis, reached by another
    # alignment: its probability adds to B's (prefixes in B are distinct, and so are the
    # live ones, so there is at most one match).
    ends = live.score + log_probs[..., blank]
    same = (live.length[:, :, None] == ended.length[:, None, :]) & jnp.all(
        live.key[:, :, None] == ended.key[:, None, :], axis=-1
    )
    same = same & (ended.score[:, None, :] > -jnp.inf) & (ends[:, :, None] > -jnp.inf)
    merged = jnp.logaddexp(
        ended.score, jnp.max(jnp.where(same, ends[:, :, None], -jnp.inf), axis=1)
    )
    is_blank = (jnp.arange(num_classes) == blank)[None, None, :]
    steps = jnp.where(is_blank & jnp.any(same, axis=2)[..., None], -jnp.inf, log_probs)
    steps = jnp.where(is_blank | may_emit, steps, -jnp.inf)
    # Only a hypothesis' best `width` extensions can be among the best `width` of all.
    best_steps, best_classes = jax.lax.top_k(steps, min(width, num_classes))
    per_parent = best_steps.shape[-1]
    parents = jnp.broadcast_to(jnp.arange(width)[:, None], (width, per_parent)).reshape(-1)
    totals = jnp.concatenate(
        [merged, (live.score[..., None] + best_steps).reshape(batch, -1)], axis=1
    )
    # Ties: the larger step, then B's slot order, then the parent's slot and the class.
    step_keys = jnp.concatenate([jnp.zeros_like(merged), best_steps.reshape(batch, -1)], axis=1)
    positions = jnp.concatenate(
        [
            jnp.broadcast_to(jnp.arange(width), (batch, width)),
            width + parents[None, :] * num_classes + best_classes.reshape(batch, -1),
        ],
        axis=1,
    )
    sources = jnp.broadcast_to(
        jnp.concatenate([jnp.arange(width), width + parents]), positions.shape
    )
    classes = jnp.concatenate(
        [jnp.full((batch, width), blank, jnp.int32), best_classes.reshape(batch, -1)], axis=1
    )
    negated, _, _, sources, classes = jax.lax.sort(
        (-totals, -step_keys, positions, sources, classes), dimension=1, num_keys=3
    )
    totals, sources, classes = -negated[:, :width], sources[:, :width], classes[:, :width]
    chosen = totals > -jnp.inf
    ending = chosen & ((sources < width) | (classes == blank))
    pool = jax.tree.map(
        lambda b, a: jnp.concatenate([b, a], axis=1), ended._replace(score=merged), live
    )
    rows = jnp.arange(batch)[:, None]

    index, filled = _compacted(ending)
    ended = _take(pool, sources[rows, index])._replace(
        score=jnp.where(filled, totals[rows, index], -jnp.inf)
    )

    index, filled = _compacted(chosen & ~ending)
    parent = _take(pool, sources[rows, index])
    tokens = jnp.where(filled, classes[rows, index], blank)
    output, state = jax.lax.cond(
        jnp.any(filled),
        lambda: _beamed(predict(tokens.reshape(-1), _flat(parent.state)), batch),
        lambda: (parent.output, parent.state),
    )
    at_count = jnp.arange(parent.emitted.shape[-1])[None, None, :] == parent.emissions[..., None]
    live = _Hypotheses(
        score=jnp.where(filled, totals[rows, index], -jnp.inf),
        length=parent.length + 1,
        key=_extended_key(parent.key, tokens),
        emitted=jnp.where(at_count, tokens[..., None], parent.emitted),
        emissions=parent.emissions + 1,
        origin=parent.origin,
        output=output,
        state=state,
    )
    return live, ended


def rnnt_beam_search(
    encoder_out: ArrayLike,
    predict: Predict,
    join: Join,
    predictor_state: Any,
    *,
    logit_lengths: ArrayLike | None = None,
    blank: int = 0,
    beam_width: int = 4,
    top_k: int = 1,
    max_symbols_per_frame: int = 4,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    r"""Transducer beam search (Graves 2012, section 2.6), with fixed shapes.

    A hypothesis is a token prefix :math:`y` with a log-probability: the log of the summed
    probabilities of the alignments of :math:`y` the beam kept,

    .. math::
      \log \sum_{a \to y} \prod_{(t, u, k) \in a} p(k \mid t, u), \qquad
      p(\cdot \mid t, u) = \mathrm{softmax}(\text{join}(e_t, g_u)),

    where an alignment emits at most ``max_symbols_per_frame`` tokens at each frame, each
    advancing the predictor (:math:`g_u`: its output after :math:`y_{<u}`, from the blank
    as start-of-sequence), then takes the blank to the next frame (the blank's probability
    counts at every frame, after a capped frame too).

    Per frame, Graves' set A holds the hypotheses still emitting, B those whose frame ended
    in a blank; A starts as the previous frame's B. In each of at most
    ``max_symbols_per_frame + 1`` rounds, every hypothesis of A is extended by every class
    at once (``predict`` and ``join`` on ``batch * beam_width`` rows), and B's hypotheses,
    A's blank extensions and A's token extensions (none in the last round) compete for the
    ``beam_width`` places: the blank ones and B's go to B, the rest form the next A; the
    rounds stop when A is empty. A blank extension whose prefix B holds already is the same
    hypothesis by another alignment: their probabilities add (``logaddexp``), so a frame
    starts with distinct prefixes. A beam wide enough never to prune thus returns every
    prefix with its exact probability.

    This is Graves' rule (expand A until B holds ``beam_width`` hypotheses better than A's
    best) applied per round, with three differences. A and B share the places, so a prefix
    also leaves B when ``beam_width`` extensions beat it; this makes ``beam_width=1``
    exactly :func:`jaxloss.rnnt_greedy_decode` (the paper keeps the prefix in B). No
    separate prefix summation: the alignments of :math:`y` that start a frame at a shorter
    prefix count when the beam extends that prefix to :math:`y` within the frame. Ranking
    by log-probability, not :math:`\log P(y) / |y|` (rerank from ``scores`` and ``lengths``
    for that). Ties go to the larger last step's log-probability, then to the earlier slot
    and the lower class id. Prefixes are compared by length and a 64-bit hash (two
    MurmurHash3 mixes), at a cost independent of their length; two prefixes collide with
    probability about :math:`2^{-64}`.

    Fixed shapes: a ``lax.scan`` over the frames, a ``while_loop`` over the rounds;
    predictor states are gathered (``jax.tree.map``) as hypotheses change places, and the
    tokens are read at the end by backtracking per-frame records. Frames past
    ``logit_lengths`` are replaced by zeros before ``join`` and leave the hypotheses as they
    are. To jit, close over the functions or mark them static (``static_argnums=(1, 2)``).

    Args:
      encoder_out: ``[batch, time, ...]`` the encoder's output frames (floating point).
      predict: ``predict(tokens, state) -> (output, new_state)``: advances the prediction
        network by one token, ``tokens`` ``[N]`` int32; ``state`` and ``output`` are pytrees
        whose leaves have the leading axis ``N``.
      join: ``join(frames, output) -> logits``: ``frames`` ``[N, ...]`` (rows of
        ``encoder_out``) and a predictor ``output`` to ``[N, num_classes]`` logits.
      predictor_state: the initial state of the ``batch`` sequences (leading axis ``batch``).
      logit_lengths: ``[batch]`` frames of each sequence to decode (default all ``time``).
      blank: the blank class id (static); negative counts from the end.
      beam_width: the number of hypotheses kept (static, >= 1).
      top_k: the number of hypotheses returned per sequence (static, <= ``beam_width``).
      max_symbols_per_frame: the most tokens emitted at one frame (static, >= 1;
        torchaudio's ``step_max_tokens``).

    Returns:
      ``(tokens, lengths, scores)``, best first: ``tokens`` ``[batch, top_k, time *
      max_symbols_per_frame]`` int32 padded with -1, ``lengths`` ``[batch, top_k]`` int32,
      and ``scores`` ``[batch, top_k]`` float32 log-probabilities. A slot the beam could not
      fill (fewer distinct prefixes than ``top_k``) has score -inf and length 0.

    Examples:
      >>> import jax, jax.numpy as jnp, jaxloss
      >>> frames = jnp.log(jnp.array([[[0.1, 0.8, 0.1], [0.2, 0.1, 0.7]]]))
      >>> predict = lambda tokens, state: (jax.nn.one_hot(tokens, 3), state)
      >>> join = lambda frames, last: frames - 5.0 * last
      >>> tokens, lengths, scores = jaxloss.rnnt_beam_search(
      ...     frames, predict, join, jnp.zeros((1,)), beam_width=3, top_k=2)
      >>> [tokens[0, k, : int(lengths[0, k])].tolist() for k in range(2)]
      [[1, 2], [1]]
      >>> [round(float(p), 3) for p in jnp.exp(scores[0])]  # probabilities
      [0.221, 0.096]

    References:
      Graves, "Sequence Transduction with Recurrent Neural Networks", ICML 2012
      Representation Learning Workshop. https://arxiv.org/abs/1211.3711
    """
    width = _checks.static_int(beam_width, "beam_width")
    top_k = _checks.static_int(top_k, "top_k")
    if top_k > width:
        raise ValueError(f"`top_k`={top_k} must be at most `beam_width`={width}.")
    max_symbols = _checks.static_int(max_symbols_per_frame, "max_symbols_per_frame")
    model = _prepared(encoder_out, predict, join, predictor_state, logit_lengths, blank)
    num_frames, batch = model.frames.shape[:2]
    capacity = num_frames * max_symbols
    if batch == 0:  # nothing to decode (a round's rows cannot be split into beams of none)
        empty = jnp.zeros((0, top_k), jnp.int32)
        return jnp.full((0, top_k, capacity), -1, jnp.int32), empty, empty.astype(model.dtype)
    slots = jnp.broadcast_to(jnp.arange(width), (batch, width))

    def fresh(
        score: jax.Array, length: jax.Array, key: jax.Array, output: Any, state: Any
    ) -> _Hypotheses:
        """A frame's start: nothing emitted yet, each hypothesis its own origin."""
        return _Hypotheses(
            score,
            length,
            key,
            jnp.full((batch, width, max_symbols), -1, jnp.int32),
            jnp.zeros_like(slots),
            slots,
            output,
            state,
        )

    def frame(beam: _Hypotheses, inputs: tuple[jax.Array, jax.Array]) -> tuple[_Hypotheses, tuple]:
        frames, t = inputs
        active = t < model.logit_lengths
        frames = jnp.repeat(_where(active, frames, jnp.zeros_like(frames)), width, axis=0)
        live = beam._replace(score=jnp.where(active[:, None], beam.score, -jnp.inf))
        ended = beam._replace(score=jnp.full_like(beam.score, -jnp.inf))

        def expanding(loop: tuple) -> jax.Array:
            return (loop[0] <= max_symbols) & jnp.any(loop[1].score > -jnp.inf)

        def expand(loop: tuple) -> tuple:
            rounds, live, ended = loop
            live, ended = _round(
                predict, join, frames, live, ended, model.blank, rounds < max_symbols
            )
            return rounds + 1, live, ended

        _, _, ended = jax.lax.while_loop(expanding, expand, (0, live, ended))
        ended = _where(active, ended, beam)
        record = (ended.origin, ended.emitted, ended.emissions)
        return fresh(ended.score, ended.length, ended.key, ended.output, ended.state), record

    spread = jax.tree.map(
        lambda x: jnp.broadcast_to(x[:, None], (batch, width, *x.shape[1:])),
        (model.output, model.state),
    )
    start = fresh(
        jnp.where(slots == 0, 0.0, -jnp.inf).astype(model.dtype),
        jnp.zeros_like(slots),
        jnp.zeros((batch, width, 2), jnp.uint32),
        *spread,
    )
    final, records = jax.lax.scan(frame, start, (model.frames, jnp.arange(num_frames)))

    scores = final.score[:, :top_k]
    found = scores > -jnp.inf
    lengths = jnp.where(found, final.length[:, :top_k], 0)
    rows = jnp.arange(batch)[:, None]

    def back(carry: tuple, record: tuple) -> tuple[tuple, tuple]:
        slot, end = carry
        origin, emitted, count = record
        count = count[rows, slot]
        symbol = jnp.arange(max_symbols)[None, None, :]
        within = (symbol < count[..., None]) & found[..., None]
        position = jnp.where(within, (end - count)[..., None] + symbol, capacity)
        return (origin[rows, slot], end - count), (emitted[rows, slot], position)

    first = jnp.broadcast_to(jnp.arange(top_k), (batch, top_k))
    _, (emitted, positions) = jax.lax.scan(back, (first, lengths), records, reverse=True)
    tokens = jnp.full((batch, top_k, capacity), -1, jnp.int32)
    tokens = tokens.at[
        jnp.arange(batch)[None, :, None, None], jnp.arange(top_k)[None, None, :, None], positions
    ].set(emitted, mode="drop")
    # int32 as documented (the counts follow jnp.arange, int64 under jax_enable_x64).
    return tokens, lengths.astype(jnp.int32), scores

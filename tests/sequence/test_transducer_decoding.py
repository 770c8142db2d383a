"""Transducer decoding: greedy and beam search against float64 NumPy transcriptions, beam
width 1 against greedy (ties included), a wide beam against exhaustive enumeration, lengths,
padding, jit == eager, batch == rows, and the argument errors.

The model is tiny and plain: the predictor an embedding and a tanh RNN cell (its state a
pair, the hidden vector and a step counter, so the state is a pytree with an integer leaf),
the joiner ``tanh(frame + predictor output) @ W``.
"""

from __future__ import annotations

import collections
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from tests._suite.numpy_reference import log_softmax

HIDDEN = 6


def _params(seed, num_classes, scale=2.5):
    rng = np.random.default_rng(seed)
    params = {
        "embed": rng.normal(size=(num_classes, HIDDEN)),
        "input": rng.normal(size=(HIDDEN, HIDDEN)) / np.sqrt(HIDDEN),
        "recurrent": rng.normal(size=(HIDDEN, HIDDEN)) / np.sqrt(HIDDEN),
        "joiner": scale * rng.normal(size=(HIDDEN, num_classes)),
    }
    return {name: value.astype(np.float32) for name, value in params.items()}


def _inputs(seed, batch, frames):
    rng = np.random.default_rng(seed + 1000)
    encoder_out = rng.normal(size=(batch, frames, HIDDEN)).astype(np.float32)
    state = (0.5 * rng.normal(size=(batch, HIDDEN))).astype(np.float32)
    return encoder_out, state


def _jax_model(params, quantized=False):
    params = jax.tree.map(jnp.asarray, params)

    def predict(tokens, state):
        hidden, steps = state
        hidden = jnp.tanh(params["embed"][tokens] @ params["input"] + hidden @ params["recurrent"])
        return hidden, (hidden, steps + 1)

    def join(frames, output):
        logits = jnp.tanh(frames + output) @ params["joiner"]
        # Rounded to halves: many exact ties, to test the tie rules.
        return jnp.round(2 * logits) / 2 if quantized else logits

    return predict, join


def _numpy_model(params, quantized=False):
    p = {name: np.asarray(value, np.float64) for name, value in params.items()}

    def predict(token, hidden):
        hidden = np.tanh(p["embed"][token] @ p["input"] + hidden @ p["recurrent"])
        return hidden, hidden

    def join(frame, output):
        logits = np.tanh(frame + output) @ p["joiner"]
        return np.round(2 * logits) / 2 if quantized else logits

    return predict, join


def _state(state):
    return (jnp.asarray(state), jnp.zeros(len(state), jnp.int32))


@functools.partial(
    jax.jit, static_argnames=("blank", "max_symbols", "quantized", "beam_width", "top_k")
)
def _decode(
    params,
    encoder_out,
    lengths,
    state,
    *,
    blank,
    max_symbols,
    quantized=False,
    beam_width=0,
    top_k=1,
):
    """Greedy for beam_width 0, else beam search; compiled once per configuration."""
    predict, join = _jax_model(params, quantized)
    options = {"logit_lengths": lengths, "blank": blank, "max_symbols_per_frame": max_symbols}
    if beam_width == 0:
        return jaxloss.rnnt_greedy_decode(encoder_out, predict, join, _state(state), **options)
    return jaxloss.rnnt_beam_search(
        encoder_out, predict, join, _state(state), beam_width=beam_width, top_k=top_k, **options
    )


# --- float64 NumPy transcriptions ---------------------------------------------------------


def greedy_reference(
    params, encoder_out, lengths, state, blank, max_symbols, quantized=False, count_ties=False
):
    """Per sequence and frame: argmax, emit and advance the predictor until a blank or the
    cap (NeMo's GreedyRNNTInfer loop). With ``count_ties``: how many decisions were ties."""
    predict, join = _numpy_model(params, quantized)
    decoded, ties = [], 0
    for b in range(len(encoder_out)):
        output, hidden = predict(blank, np.asarray(state[b], np.float64))
        tokens = []
        for t in range(lengths[b]):
            for _ in range(max_symbols):
                log_probs = log_softmax(join(encoder_out[b, t], output))
                k = int(np.argmax(log_probs))
                ties += int(np.sum(log_probs == log_probs[k]) > 1)
                if k == blank:
                    break
                tokens.append(k)
                output, hidden = predict(k, hidden)
        decoded.append(tokens)
    return ties if count_ties else decoded


def beam_reference(params, encoder_out, lengths, state, blank, width, top_k, max_symbols):
    """The documented algorithm, one sequence at a time, with lists and exact prefixes.

    Per frame, A starts as the previous frame's B; each round merges A's blank extensions
    into B's equal prefixes, then ranks B's hypotheses (step 0) and every extension of A
    (tokens only before the last round) by (score, step log-prob) descending, then position
    (B's slot, else width + parent * classes + class); the best `width` are kept, blank ones
    and B's in B. Returns, per sequence, the best `top_k` (prefix, log-probability)."""
    predict, join = _numpy_model(params)
    results = []
    for b in range(len(encoder_out)):
        output, hidden = predict(blank, np.asarray(state[b], np.float64))
        beam = [(0.0, (), output, hidden)]
        for t in range(lengths[b]):
            live, ended = beam, []
            for rounds in range(max_symbols + 1):
                if not live:
                    break
                log_probs = [log_softmax(join(encoder_out[b, t], h[2])) for h in live]
                num_classes = len(log_probs[0])
                scores = [h[0] for h in ended]
                merged = set()
                for i, h in enumerate(live):
                    for j, e in enumerate(ended):
                        if e[1] == h[1]:
                            scores[j] = np.logaddexp(scores[j], h[0] + log_probs[i][blank])
                            merged.add(i)
                candidates = [(s, 0.0, j, None, j) for j, s in enumerate(scores)]
                for i, h in enumerate(live):
                    for k in range(num_classes):
                        if (k == blank and i in merged) or (k != blank and rounds == max_symbols):
                            continue
                        total = h[0] + log_probs[i][k]
                        if total > -np.inf:
                            position = width + i * num_classes + k
                            candidates.append((total, log_probs[i][k], position, k, i))
                candidates.sort(key=lambda c: (-c[0], -c[1], c[2]))
                new_live, new_ended = [], []
                for total, _, _, k, i in candidates[:width]:
                    if k is None:
                        new_ended.append((total, *ended[i][1:]))
                    elif k == blank:
                        new_ended.append((total, *live[i][1:]))
                    else:
                        output, hidden = predict(k, live[i][3])
                        new_live.append((total, (*live[i][1], k), output, hidden))
                live, ended = new_live, new_ended
            beam = ended
        results.append([(h[1], h[0]) for h in beam[:top_k]])
    return results


def _rows(tokens, lengths):
    return [tokens[i, : lengths[i]].tolist() for i in range(len(lengths))]


# Every test decodes batches of this shape (the wide-beam test apart), so each configuration
# compiles once. Sequence 1 has no frames.
BATCH, FRAMES, CLASSES = 5, 6, 4
LENGTHS = np.array([6, 0, 3, 5, 6], np.int32)

# (blank, max_symbols, quantized logits): greedy against the reference, and beam width 1
# against greedy.
GREEDY = [(0, 3, False), (-1, 2, True)]


@pytest.mark.parametrize(
    "blank, max_symbols, quantized", GREEDY, ids=["blank0-cap3", "blank-1-cap2-ties"]
)
def test_greedy_matches_reference_and_beam_width_one(blank, max_symbols, quantized):
    options = {"blank": blank, "max_symbols": max_symbols, "quantized": quantized}
    emitted = ties = 0
    for seed in range(4):
        params = _params(seed, CLASSES, scale=3.0 if quantized else 2.0)
        encoder_out, state = _inputs(seed, BATCH, FRAMES)
        tokens, lengths = jax.device_get(_decode(params, encoder_out, LENGTHS, state, **options))
        reference = functools.partial(
            greedy_reference, params, encoder_out, LENGTHS, state, blank % CLASSES, max_symbols
        )
        expected = reference(quantized)
        assert _rows(tokens, lengths) == expected
        assert tokens.shape == (BATCH, FRAMES * max_symbols) and tokens.dtype == np.int32
        assert np.all(tokens[np.arange(tokens.shape[1])[None, :] >= lengths[:, None]] == -1)
        assert lengths[1] == 0  # no frames, nothing decoded
        emitted += sum(map(len, expected))
        ties += reference(quantized, count_ties=True)
        # The acceptance point: a beam of one is greedy decoding, ties included.
        beam_tokens, beam_lengths, _ = _decode(
            params, encoder_out, LENGTHS, state, beam_width=1, **options
        )
        np.testing.assert_array_equal(beam_tokens[:, 0], tokens)
        np.testing.assert_array_equal(beam_lengths[:, 0], lengths)
    # Not vacuous: tokens are emitted, and the rounded logits do tie at decisions.
    assert emitted > 0 and (ties > 0 or not quantized)


# (beam_width, top_k, max_symbols, blank)
BEAMS = [(3, 3, 2, 0), (2, 1, 3, -1)]


@pytest.mark.parametrize(
    "width, top_k, max_symbols, blank",
    BEAMS,
    ids=[f"w{w}-k{k}-cap{m}-blank{b}" for w, k, m, b in BEAMS],
)
def test_beam_search_matches_reference(width, top_k, max_symbols, blank):
    options = {"blank": blank, "max_symbols": max_symbols, "beam_width": width, "top_k": top_k}
    for seed in range(3):
        params = _params(seed, CLASSES, scale=1.5)
        encoder_out, state = _inputs(seed, BATCH, FRAMES)
        tokens, lengths, scores = jax.device_get(
            _decode(params, encoder_out, LENGTHS, state, **options)
        )
        expected = beam_reference(
            params, encoder_out, LENGTHS, state, blank % CLASSES, width, top_k, max_symbols
        )
        assert tokens.shape == (BATCH, top_k, FRAMES * max_symbols)
        assert scores.dtype == np.float32 and lengths.dtype == np.int32
        for b, k in itertools.product(range(BATCH), range(top_k)):
            if k < len(expected[b]):
                prefix, score = expected[b][k]
                assert tokens[b, k, : lengths[b, k]].tolist() == list(prefix)
                assert np.all(tokens[b, k, lengths[b, k] :] == -1)
                np.testing.assert_allclose(scores[b, k], score, rtol=1e-5, atol=1e-5)
            else:
                assert scores[b, k] == -np.inf and lengths[b, k] == 0
                assert np.all(tokens[b, k] == -1)
        assert np.all(scores[:, :-1] >= scores[:, 1:])
        # No frames: the empty prefix, with probability 1.
        assert lengths[1, 0] == 0 and scores[1, 0] == 0


def exhaustive(params, encoder_out, length, state, blank, max_symbols):
    """log P(y) of every prefix y: the sum over all alignments with at most `max_symbols`
    tokens per frame, each frame ended by a blank."""
    predict, join = _numpy_model(params)
    outputs = {(): predict(blank, np.asarray(state, np.float64))}

    def log_probs(t, prefix):
        if prefix not in outputs:
            outputs[prefix] = predict(prefix[-1], outputs[prefix[:-1]][1])
        return log_softmax(join(encoder_out[t], outputs[prefix][0]))

    probabilities = {(): 0.0}
    for t in range(length):
        ended = collections.defaultdict(lambda: -np.inf)
        stack = [(prefix, p, 0) for prefix, p in probabilities.items()]
        while stack:
            prefix, p, emitted = stack.pop()
            lp = log_probs(t, prefix)
            ended[prefix] = np.logaddexp(ended[prefix], p + lp[blank])
            if emitted < max_symbols:
                stack += [
                    ((*prefix, k), p + lp[k], emitted + 1) for k in range(len(lp)) if k != blank
                ]
        probabilities = dict(ended)
    return probabilities


def test_wide_beam_is_exhaustive():
    # 3 frames, 2 tokens, at most 2 per frame: 127 prefixes. A beam of 256 never prunes,
    # so it returns every prefix with its exact probability (all alignments summed), the
    # most probable first.
    batch, frames, classes, width = 3, 3, 3, 256
    params = _params(7, classes, scale=1.0)
    encoder_out, state = _inputs(7, batch, frames)
    lengths = np.array([3, 2, 1], np.int32)
    tokens, got_lengths, scores = jax.device_get(
        _decode(
            params,
            encoder_out,
            lengths,
            state,
            blank=0,
            max_symbols=2,
            beam_width=width,
            top_k=width,
        )
    )
    for b in range(batch):
        expected = exhaustive(params, encoder_out[b], lengths[b], state[b], 0, 2)
        found = scores[b] > -np.inf
        assert found.sum() == len(expected) == 2 ** (2 * lengths[b] + 1) - 1
        got = {
            tuple(tokens[b, k, : got_lengths[b, k]].tolist()): scores[b, k]
            for k in np.flatnonzero(found)
        }
        assert got.keys() == expected.keys()
        for prefix, score in expected.items():
            np.testing.assert_allclose(got[prefix], score, rtol=1e-5, atol=1e-6)
        best = max(expected, key=expected.get)
        assert tokens[b, 0, : got_lengths[b, 0]].tolist() == list(best)


# --- lengths, padding, jit, batching, dtypes ----------------------------------------------


@pytest.mark.parametrize("beam_width", [0, 1, 3], ids=["greedy", "beam1", "beam3"])
def test_an_empty_batch_decodes_to_empty_results(beam_width):
    # The shapes and dtypes of a batch's results, with no rows (beam search divided by
    # the empty batch in a reshape).
    params = _params(5, CLASSES)
    options = {"blank": 0, "max_symbols": 2, "beam_width": beam_width}
    if beam_width:
        options["top_k"] = beam_width
    encoder_out, state = _inputs(5, 1, FRAMES)
    one = _decode(params, encoder_out, np.array([FRAMES]), state, **options)
    empty = _decode(params, encoder_out[:0], np.zeros(0, np.int32), state[:0], **options)
    for got, single in zip(empty, one, strict=True):
        assert got.shape == (0, *single.shape[1:]) and got.dtype == single.dtype


def test_results_keep_their_dtypes_under_x64():
    # jnp.arange is int64 under jax_enable_x64: beam search's lengths followed it (the
    # docstring says int32), and CTC's beam search failed in its scan (an int32 carry met
    # int64 tokens).
    params = _params(5, CLASSES)
    encoder_out, state = _inputs(5, 1, FRAMES)
    lp = jax.nn.log_softmax(np.random.default_rng(0).normal(size=(2, 5, 4)).astype(np.float32))
    with jax.enable_x64(True):
        rnnt = _decode(
            params, encoder_out, np.array([FRAMES]), state, blank=0, max_symbols=2,
            beam_width=2, top_k=2,
        )  # fmt: skip
        ctc = jaxloss.ctc_beam_search(lp, beam_width=3)
    for results in (rnnt, ctc):
        tokens, lengths = results[0], results[1]
        assert tokens.dtype == lengths.dtype == np.int32, (tokens.dtype, lengths.dtype)


def test_padding_jit_rows_and_half_precision():
    params = _params(3, CLASSES)
    encoder_out, state = _inputs(3, BATCH, FRAMES)
    greedy_options = {"blank": 0, "max_symbols": 3, "quantized": False}
    beam_options = {"blank": 0, "max_symbols": 2, "beam_width": 3, "top_k": 3}
    greedy = jax.device_get(_decode(params, encoder_out, LENGTHS, state, **greedy_options))
    beam = jax.device_get(_decode(params, encoder_out, LENGTHS, state, **beam_options))

    def assert_same(got, expected, rows=slice(None)):
        for g, e in zip(jax.device_get(got), expected, strict=True):
            np.testing.assert_array_equal(g, e[rows])

    # Frames past the lengths are never read: NaN there changes nothing.
    padded = encoder_out.copy()
    padded[np.arange(FRAMES)[None, :] >= LENGTHS[:, None]] = np.nan
    assert_same(_decode(params, padded, LENGTHS, state, **greedy_options), greedy)
    assert_same(_decode(params, padded, LENGTHS, state, **beam_options), beam)
    # Each sequence is decoded on its own: reordered rows give reordered results.
    order = np.array([3, 1, 4, 0, 2])
    reordered = (params, encoder_out[order], LENGTHS[order], state[order])
    assert_same(_decode(*reordered, **greedy_options), greedy, order)
    assert_same(_decode(*reordered, **beam_options), beam, order)
    # Eager equals jit. The parameters and the state as jnp.asarray and _state give them, put
    # on the device without compiling.
    predict, join = _jax_model(jax.device_put(params))
    eager_state = jax.device_put((state, np.zeros(len(state), np.int32)))
    greedy_eager = jaxloss.rnnt_greedy_decode(
        encoder_out, predict, join, eager_state, logit_lengths=LENGTHS, max_symbols_per_frame=3
    )
    assert_same(greedy_eager, greedy)
    assert_same(
        jaxloss.rnnt_beam_search(
            encoder_out,
            predict,
            join,
            eager_state,
            logit_lengths=LENGTHS,
            max_symbols_per_frame=2,
            beam_width=3,
            top_k=3,
        ),
        beam,
    )
    # Half precision in, float32 log-probabilities out (inputs rounded by NumPy, decoded jitted).
    half = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)

    @jax.jit
    def half_scores(half, encoder_out, hidden):
        predict, join = _jax_model(half)
        half_state = (hidden, jnp.zeros(BATCH, jnp.int32))
        return jaxloss.rnnt_beam_search(encoder_out, predict, join, half_state, beam_width=2)[2]

    scores = half_scores(half, encoder_out.astype(jnp.bfloat16), state.astype(jnp.bfloat16))
    assert scores.dtype == jnp.float32 and np.all(np.isfinite(scores))


# --- errors ---------------------------------------------------------------------------------


def _errors():
    params = _params(0, 4)
    predict, join = _jax_model(params)
    encoder_out, state = _inputs(0, 2, 3)
    good = (encoder_out, predict, join, _state(state))
    return [
        ((encoder_out[0, 0], predict, join, _state(state)), {}, "`encoder_out` must have shape"),
        (
            (encoder_out.astype(np.int32), predict, join, _state(state)),
            {},
            "`encoder_out` must be a floating",
        ),
        (
            (encoder_out, predict, join, _state(state[:1])),
            {},
            "`predictor_state` must have a leading axis of size batch=2",
        ),
        (
            (encoder_out, lambda t, s: (s[0], s[0]), join, _state(state)),
            {},
            "new state of the structure and shapes",
        ),
        ((encoder_out, lambda t, s: s[0], join, _state(state)), {}, "must return a pair"),
        ((encoder_out, lambda t, s: (s[0][:1], s), join, _state(state)), {}, "one row per token"),
        (
            (encoder_out, predict, lambda f, o: f[:, 0], _state(state)),
            {},
            "`join` must return logits",
        ),
        (good, {"blank": 4}, "`blank`=4 must be a class index"),
        (good, {"logit_lengths": np.array([1, 2, 3])}, "`logit_lengths` must have shape"),
        (good, {"max_symbols_per_frame": 0}, "`max_symbols_per_frame` must be a positive int"),
        (good, {"beam_width": 0}, "`beam_width` must be a positive int"),
        (good, {"beam_width": 2, "top_k": 3}, "`top_k`=3 must be at most `beam_width`=2"),
    ]


def test_errors():
    for args, options, message in _errors():
        greedy_options = {k: v for k, v in options.items() if k not in ("beam_width", "top_k")}
        if greedy_options == options:
            with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[")):
                jaxloss.rnnt_greedy_decode(*args, **options)
        with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[")):
            jaxloss.rnnt_beam_search(*args, **options)

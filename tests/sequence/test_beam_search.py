"""CTC prefix beam search: the exact top strings on tiny inputs (every frame path
enumerated), a float64 transcription of the paper's algorithm (with and without a bigram
language model), best-path decoding at width 1, lengths, jit and vmap, half precision and
errors."""

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


def _exhaustive(log_probs, blank):
    """log p(string) for every string with non-zero probability, by summing over every
    frame path (``[T, V]`` float64 log-probabilities) the paths that collapse to it."""
    frames, classes = log_probs.shape
    totals = collections.defaultdict(float)
    for path in itertools.product(range(classes), repeat=frames):
        string = tuple(c for t, c in enumerate(path) if c != blank and (t == 0 or path[t - 1] != c))
        totals[string] += np.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
    return {string: np.log(p) for string, p in totals.items() if p > 0}


def _paper(log_probs, width, blank, log_prior=None, lm_weight=0.0, bonus=0.0):
    """Hannun et al. (2014), Algorithm 1, in float64 with dicts: ``[(prefix, score)]`` of the
    final beam, best first; ``score = log(p_b + p_nb)`` with the language-model factor
    ``exp(lm_weight log_prior[previous token or blank, c] + bonus)`` folded into every
    extension (the paper's ``c == l_end`` branch too: with a token-level model each token of
    a prefix carries its factor once). The paper's "l+ not in A_prev" clause reads the
    previous probabilities of a pruned prefix, which a beam search no longer has: 0."""
    probs = np.exp(log_probs)
    beam = {(): (1.0, 0.0)}
    for y in probs:
        following = collections.defaultdict(lambda: [0.0, 0.0])
        for prefix, (p_b, p_nb) in beam.items():
            following[prefix][0] += y[blank] * (p_b + p_nb)
            if prefix:
                following[prefix][1] += y[prefix[-1]] * p_nb
            for c in range(len(y)):
                if c == blank:
                    continue
                factor = np.exp(bonus)
                if log_prior is not None and lm_weight != 0:
                    factor *= np.exp(lm_weight * log_prior[prefix[-1] if prefix else blank, c])
                source = p_b if prefix and c == prefix[-1] else p_b + p_nb
                following[(*prefix, c)][1] += factor * y[c] * source
        ranked = sorted(following.items(), key=lambda item: -(item[1][0] + item[1][1]))
        beam = dict(ranked[:width])
    with np.errstate(divide="ignore"):
        return [(prefix, np.log(p_b + p_nb)) for prefix, (p_b, p_nb) in beam.items()]


def _assert_hypotheses(tokens, lengths, scores, expected, atol=2e-5):
    """One sequence's ``[top_k, T]`` result against ``[(prefix, log score)]`` best first:
    the slots past the expected ones hold no prefix."""
    expected = [(prefix, score) for prefix, score in expected if score > -np.inf]
    assert len(expected) > 0
    for k in range(len(tokens)):
        if k >= len(expected):
            assert scores[k] == -np.inf and lengths[k] == 0 and np.all(tokens[k] == -1)
            continue
        prefix, score = expected[k]
        assert tuple(tokens[k, : lengths[k]].tolist()) == prefix, (k, tokens[k], expected)
        assert np.all(tokens[k, lengths[k] :] == -1)
        np.testing.assert_allclose(scores[k], score, rtol=1e-5, atol=atol)


def _rows(log_probs, logit_lengths):
    return [log_softmax(row[:length]) for row, length in zip(log_probs, logit_lengths, strict=True)]


def _bigram_lm(log_prior, blank):
    """``log_prior[previous, next]``, the blank row being the start state."""

    def lm(tokens, lengths):
        previous = jnp.take_along_axis(tokens, jnp.maximum(lengths - 1, 0)[..., None], -1)
        return log_prior[jnp.where(lengths > 0, previous[..., 0], blank)]

    return lm


def test_wide_beams_find_the_exact_most_probable_strings():
    # 2 tokens over at most 5 frames: 63 strings, so 64 prefixes never prune anything.
    rng = np.random.default_rng(0)
    batch, frames, classes, blank, top_k = 8, 5, 3, 1, 6
    logits = (1.5 * rng.normal(size=(batch, frames, classes))).astype(np.float32)
    logit_lengths = np.array([5, 5, 5, 4, 3, 2, 1, 0])
    search = jax.jit(
        functools.partial(jaxloss.ctc_beam_search, beam_width=64, top_k=top_k, blank=blank)
    )
    tokens, lengths, scores = jax.device_get(search(logits, logit_lengths=logit_lengths))
    assert tokens.shape == (batch, top_k, frames) and tokens.dtype == np.int32
    assert lengths.shape == scores.shape == (batch, top_k) and scores.dtype == np.float32
    for b, log_probs in enumerate(_rows(logits, logit_lengths)):
        exact = sorted(_exhaustive(log_probs, blank).items(), key=lambda item: -item[1])
        _assert_hypotheses(tokens[b], lengths[b], scores[b], exact[:top_k])


@pytest.mark.parametrize("with_lm", [False, True], ids=["acoustic", "bigram"])
def test_matches_the_papers_algorithm(with_lm):
    rng = np.random.default_rng(1 + with_lm)
    batch, frames, classes, width = 6, 10, 5, 4
    blank = 0 if with_lm else 2
    logits = (2 * rng.normal(size=(batch, frames, classes))).astype(np.float32)
    logit_lengths = np.array([10, 10, 9, 7, 3, 1])
    # NaN past the lengths: those frames must never be read.
    logits[np.arange(frames)[None, :] >= logit_lengths[:, None]] = np.nan
    log_prior = log_softmax(rng.normal(size=(classes, classes)))
    log_prior[3, 1] = -np.inf  # a forbidden bigram
    lm = _bigram_lm(jnp.asarray(log_prior, jnp.float32), blank) if with_lm else None
    traces = []

    @jax.jit
    def search(logits, lm_weight, insertion_bonus):
        traces.append(None)
        return jaxloss.ctc_beam_search(
            logits,
            logit_lengths=logit_lengths,
            beam_width=width,
            top_k=width,
            blank=blank,
            lm=lm,
            lm_weight=lm_weight,
            insertion_bonus=insertion_bonus,
        )

    # A zero weight turns the model off, even where it is -inf; the bonus counts either way.
    for lm_weight, bonus in [(0.8, 0.4), (0.0, -0.3)]:
        tokens, lengths, scores = jax.device_get(search(logits, lm_weight, bonus))
        for b, log_probs in enumerate(_rows(logits, logit_lengths)):
            prior = log_prior if with_lm else None
            expected = _paper(log_probs, width, blank, prior, lm_weight, bonus)
            _assert_hypotheses(tokens[b], lengths[b], scores[b], expected)
    assert len(traces) == 1  # the weights are traced values


def _peaked(rng, shape, low):
    """Log-probabilities whose most likely class per frame has probability in [low, 0.98]."""
    *rows, classes = shape
    top = rng.uniform(low, 0.98, size=rows)
    rest = rng.dirichlet(np.ones(classes - 1), size=rows) * (1 - top)[..., None]
    probs = np.concatenate([top[..., None], rest], axis=-1)
    order = rng.permuted(np.broadcast_to(np.arange(classes), probs.shape), axis=-1)
    return np.log(np.take_along_axis(probs, np.argsort(order, axis=-1), -1)).astype(np.float32)


def test_width_one_is_best_path_decoding_above_one_over_root_two():
    # With every frame's top class above 1/sqrt(2), one prefix follows the best path exactly.
    rng = np.random.default_rng(3)
    logits = _peaked(rng, (64, 12, 3), low=0.72)
    logit_lengths = rng.integers(0, 13, size=64)
    # Below the bound they can differ. Frames "a", blank, "a" at q each read "a a" on the
    # best path, but one prefix keeps "a" (q(1-q)(1+q) against q^3 for "a a") for
    # q < 1/sqrt(2): the bound is tight. And frames (.3, .5, .2), (.3, .3, .4) over
    # (blank, "a", "b") read "a b" (0.2) on the best path, "a" (0.39) with one prefix.
    logits[:3, :3] = -np.inf
    for i, q in enumerate([0.70, 0.71]):
        logits[i, :3, :2] = np.log([[1 - q, q], [q, 1 - q], [1 - q, q]])
    logits[2, :2] = np.log([[0.3, 0.5, 0.2], [0.3, 0.3, 0.4]])
    logit_lengths[:3] = [3, 3, 2]

    @jax.jit
    def both(logits):
        beam = jaxloss.ctc_beam_search(logits, logit_lengths=logit_lengths, beam_width=1)
        return beam, jaxloss.ctc_greedy_decode(logits, logit_lengths=logit_lengths)

    (tokens, lengths, scores), (best_path, best_path_lengths) = jax.device_get(both(logits))
    np.testing.assert_array_equal(tokens[3:, 0], best_path[3:])
    np.testing.assert_array_equal(lengths[3:, 0], best_path_lengths[3:])
    assert [tokens[i, 0, : lengths[i, 0]].tolist() for i in range(3)] == [[1], [1, 1], [1]]
    assert [best_path[i, : best_path_lengths[i]].tolist() for i in range(3)] == [
        [1, 1],
        [1, 1],
        [1, 2],
    ]
    # The score counts the alignments kept: "a _" and "a a" (0.3), not "_ a", whose prefix
    # was pruned after the first frame.
    assert np.exp(scores[2, 0]) == pytest.approx(0.3)


def test_jit_vmap_half_precision_and_log_probabilities():
    rng = np.random.default_rng(4)
    logits = (2 * rng.normal(size=(2, 3, 7, 4))).astype(np.float32)
    logit_lengths = rng.integers(0, 8, size=(2, 3))
    lm = _bigram_lm(jnp.asarray(log_softmax(rng.normal(size=(4, 4))), jnp.float32), blank=3)
    search = functools.partial(jaxloss.ctc_beam_search, beam_width=3, top_k=2, blank=3, lm=lm)

    @jax.jit
    def run(logits, logit_lengths):
        # Batched with vmap (the language model too), each batch alone, log-probabilities
        # and bfloat16 inputs.
        return (
            jax.vmap(lambda x, n: search(x, logit_lengths=n))(logits, logit_lengths),
            [search(x, logit_lengths=n) for x, n in zip(logits, logit_lengths, strict=True)],
            search(jax.nn.log_softmax(logits[0]), logit_lengths=logit_lengths[0]),
            search(logits[0].astype(jnp.bfloat16), logit_lengths=logit_lengths[0]),
            search(
                logits[0].astype(jnp.bfloat16).astype(jnp.float32), logit_lengths=logit_lengths[0]
            ),
        )

    mapped, alone, from_log_probs, half, half_as_float = jax.device_get(run(logits, logit_lengths))
    eager = search(logits[1], logit_lengths=logit_lengths[1])
    for got, want in zip(eager, alone[1], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    for i in range(2):
        for got, want in zip(alone[i], (x[i] for x in mapped), strict=True):
            np.testing.assert_array_equal(got, want)
    for got, want in zip(from_log_probs, alone[0], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    assert half[2].dtype == np.float32
    for got, want in zip(half, half_as_float, strict=True):
        np.testing.assert_array_equal(got, want)


def test_slots_past_the_distinct_prefixes_and_sequences_without_frames():
    # One frame over {blank, "a"}: two prefixes, so two of the four slots hold none.
    # Compiled once, the NumPy logits and the list of lengths closed over (as given eagerly).
    tokens, lengths, scores = jax.device_get(
        jax.jit(
            lambda: jaxloss.ctc_beam_search(
                np.log([[[0.25, 0.75]], [[0.5, 0.5]]]), logit_lengths=[1, 0], beam_width=4, top_k=4
            )
        )()
    )
    np.testing.assert_array_equal(tokens[:, :, 0], [[1, -1, -1, -1], [-1, -1, -1, -1]])
    np.testing.assert_array_equal(lengths, [[1, 0, 0, 0], [0, 0, 0, 0]])
    minus_inf = -np.inf
    np.testing.assert_allclose(
        scores,
        [[np.log(0.75), np.log(0.25), minus_inf, minus_inf], [0, *[minus_inf] * 3]],
        rtol=1e-6,
    )


def test_errors_name_the_argument():
    logits = np.zeros((2, 5, 4), np.float32)
    cases = [
        (np.zeros((5, 4), np.float32), {}, r"`logits` must have shape \[batch, time"),
        (logits, {"blank": 4}, r"`blank`=4 .*\[0, 4\)"),
        (np.zeros((2, 5, 1), np.float32), {}, r"`logits` need a blank and at least one"),
        (logits, {"beam_width": 0}, r"`beam_width`=0 must be at least 1"),
        (logits, {"beam_width": 2.5}, r"`beam_width` must be a static int"),
        (logits, {"top_k": 0}, r"`top_k`=0 must be at least 1"),
        (logits, {"beam_width": 2, "top_k": 3}, r"`top_k`=3 must be at most `beam_width`=2"),
        (logits, {"logit_lengths": [5, 5, 5]}, r"`logit_lengths`"),
        (logits, {"lm_weight": [1.0, 2.0]}, r"`lm_weight` must be a scalar"),
        (logits, {"insertion_bonus": np.ones(2)}, r"`insertion_bonus` must be a scalar"),
        (logits, {"lm": lambda tokens, lengths: tokens}, r"`lm` must return log-priors"),
    ]
    for x, options, message in cases:
        with pytest.raises(ValueError, match=message):
            jaxloss.ctc_beam_search(x, **options)

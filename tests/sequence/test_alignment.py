"""CTC forced alignment: the float64 Viterbi reference (the max-product CTC recursion), brute
force over every frame-level path, torchaudio's tie rule, lengths, impossible sequences,
hostile padding, jit, batching, half precision and errors."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss
from tests._suite.numpy_reference import log_softmax
from tests.sequence import reference as ref

BATCH, FRAMES, CLASSES, MAX_LABELS = 6, 12, 5, 4
BLANKS = (0, 3)


def _inputs(seed, blank=0):
    """Random continuous log-probabilities (ties have probability 0) and labels: a repeat,
    various lengths, an empty label sequence, a sequence without frames, and one that
    cannot be aligned."""
    rng = np.random.default_rng(seed)
    log_probs = log_softmax(2 * rng.normal(size=(BATCH, FRAMES, CLASSES))).astype(np.float32)
    non_blank = np.array([k for k in range(CLASSES) if k != blank])
    labels = rng.choice(non_blank, size=(BATCH, MAX_LABELS)).astype(np.int32)
    labels[0, 2] = labels[0, 1]  # a repeat: needs a blank between its copies
    logit_lengths = np.array([FRAMES, 9, 4, 0, 7, FRAMES], np.int32)
    label_lengths = np.array([MAX_LABELS, 0, MAX_LABELS, 0, 2, 3], np.int32)
    labels[2, :] = labels[2, 0]  # 4 labels, 3 repeats: 7 frames needed, only 4
    return log_probs, labels, logit_lengths, label_lengths


@jax.jit
def _aligned(log_probs, labels, logit_lengths, label_lengths):
    # Every blank of the module in one compilation.
    lengths = {"logit_lengths": logit_lengths, "label_lengths": label_lengths}
    return {
        blank: jaxloss.ctc_forced_align(log_probs, labels, blank=blank, **lengths)
        for blank in BLANKS
    }


def _collapsed(path, blank):
    """Repeats merged, then blanks removed."""
    merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
    return [int(k) for k in merged if k != blank]


def _check_against_reference(log_probs, labels, logit_lengths, label_lengths, blank, out):
    alignment, scores = (np.asarray(x) for x in out)
    assert alignment.dtype == np.int32 and scores.dtype == np.float32
    assert alignment.shape == scores.shape == log_probs.shape[:2]
    paths, best = ref.ctc_viterbi(log_probs, labels, logit_lengths, label_lengths, blank)
    for b, (path, length) in enumerate(zip(paths, logit_lengths, strict=True)):
        if path is None:
            assert np.all(alignment[b] == -1) and np.all(scores[b] == -np.inf)
            continue
        assert alignment[b, :length].tolist() == path
        assert np.all(alignment[b, length:] == -1) and np.all(scores[b, length:] == 0)
        # Each score is the input's log-probability of the chosen class at that frame.
        np.testing.assert_array_equal(scores[b, :length], log_probs[b, np.arange(length), path])
        assert _collapsed(path, blank) == labels[b, : label_lengths[b]].tolist()
    np.testing.assert_allclose(scores.sum(axis=1), best, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("blank", BLANKS)
def test_path_and_score_are_the_ctc_viterbi_ones(blank):
    """Acceptance: the alignment is the path whose score is the CTC Viterbi score (the
    max-product CTC recursion), and that score is at most log p(labels)."""
    inputs = _inputs(1, blank)
    out = _aligned(*inputs)[blank]
    _check_against_reference(*inputs, blank, out)
    scores = np.asarray(out[1]).sum(axis=1)
    assert np.isneginf(scores[2]) and scores[3] == 0  # impossible; no frames, no labels
    log_likelihood = -ref.ctc(*inputs, blank=blank)
    possible = np.isfinite(scores)
    assert np.all(scores[possible] <= log_likelihood[possible] + 1e-5)


def test_hostile_padding_changes_nothing():
    log_probs, labels, logit_lengths, label_lengths = _inputs(2)
    clean = _aligned(log_probs, labels, logit_lengths, label_lengths)
    past = np.arange(FRAMES)[None, :, None] >= logit_lengths[:, None, None]
    values = np.resize([np.nan, np.inf, -np.inf, 1e30], log_probs.shape)
    hostile_log_probs = np.where(past, values, log_probs).astype(np.float32)
    past_labels = np.arange(MAX_LABELS)[None, :] >= label_lengths[:, None]
    hostile_labels = np.where(past_labels, np.resize([0, -7, 99, 3], labels.shape), labels)
    hostile = _aligned(hostile_log_probs, hostile_labels, logit_lengths, label_lengths)
    for blank in BLANKS:
        for ours, theirs in zip(hostile[blank], clean[blank], strict=True):
            np.testing.assert_array_equal(ours, theirs)


def test_logits_give_the_alignment_of_their_log_softmax():
    # Each frame's normalizer is common to every path; the scores are then the logits.
    log_probs, labels, logit_lengths, label_lengths = _inputs(3)
    logits = (log_probs + np.arange(FRAMES)[None, :, None]).astype(np.float32)
    from_logits = _aligned(logits, labels, logit_lengths, label_lengths)[0]
    alignment, _ = _aligned(log_probs, labels, logit_lengths, label_lengths)[0]
    np.testing.assert_array_equal(from_logits[0], alignment)
    chosen = np.take_along_axis(logits, np.maximum(np.asarray(alignment), 0)[..., None], 2)
    counted = np.asarray(alignment) >= 0
    np.testing.assert_array_equal(np.asarray(from_logits[1])[counted], chosen[..., 0][counted])


def test_jit_equals_eager():
    inputs = _inputs(4)
    lengths = {"logit_lengths": inputs[2], "label_lengths": inputs[3]}
    eager = jaxloss.ctc_forced_align(*inputs[:2], blank=3, **lengths)
    for ours, theirs in zip(eager, _aligned(*inputs)[3], strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_batch_equals_a_loop_over_rows_and_vmap():
    inputs = _inputs(5)

    @jax.jit
    def run(log_probs, labels, logit_lengths, label_lengths):
        # The batch, each row alone, and vmap over rows, in one compilation.
        def align(log_probs, labels, logit_lengths, label_lengths):
            return jaxloss.ctc_forced_align(
                log_probs, labels, logit_lengths=logit_lengths, label_lengths=label_lengths
            )

        def alone(*row):
            return align(*(x[None] for x in row))

        rows = [
            alone(*(x[b] for x in (log_probs, labels, logit_lengths, label_lengths)))
            for b in range(BATCH)
        ]
        mapped = jax.vmap(alone)(log_probs, labels, logit_lengths, label_lengths)
        return align(log_probs, labels, logit_lengths, label_lengths), rows, mapped

    batched, rows, mapped = run(*inputs)
    for i in range(2):
        np.testing.assert_array_equal(np.concatenate([row[i] for row in rows]), batched[i])
        np.testing.assert_array_equal(mapped[i][:, 0], batched[i])


def test_half_precision_gives_float32_scores():
    log_probs, labels, logit_lengths, label_lengths = _inputs(6)
    half = jnp.asarray(log_probs, jnp.bfloat16)
    alignment, scores = jax.jit(jaxloss.ctc_forced_align)(
        half, labels, logit_lengths=logit_lengths, label_lengths=label_lengths
    )
    assert scores.dtype == jnp.float32
    upcast = np.asarray(half.astype(jnp.float32))
    _check_against_reference(upcast, labels, logit_lengths, label_lengths, 0, (alignment, scores))


def _every_best_path(log_probs, labels, blank):
    """Brute force: the best summed log-probability over all ``classes ** frames`` paths
    that collapse to ``labels``, and the paths reaching it (-inf and none if no path does)."""
    frames, classes = log_probs.shape
    best, argbest = -np.inf, []
    for path in itertools.product(range(classes), repeat=frames):
        if _collapsed(list(path), blank) != labels:
            continue
        score = log_probs[np.arange(frames), list(path)].sum()
        if score > best:
            best, argbest = score, [list(path)]
        elif score == best:
            argbest.append(list(path))
    return best, argbest


def test_the_path_is_the_best_of_all_alignments_by_brute_force():
    rng = np.random.default_rng(7)
    batch, frames, classes, max_labels = 32, 6, 3, 3
    log_probs = log_softmax(2 * rng.normal(size=(batch, frames, classes))).astype(np.float32)
    labels = rng.integers(1, classes, size=(batch, max_labels)).astype(np.int32)
    logit_lengths = rng.integers(0, frames + 1, size=batch).astype(np.int32)
    label_lengths = rng.integers(0, max_labels + 1, size=batch).astype(np.int32)
    alignment, scores = jax.jit(jaxloss.ctc_forced_align)(
        log_probs, labels, logit_lengths=logit_lengths, label_lengths=label_lengths
    )
    alignment, scores = np.asarray(alignment), np.asarray(scores)
    impossible = 0
    for b in range(batch):
        length = logit_lengths[b]
        target = labels[b, : label_lengths[b]].tolist()
        best, argbest = _every_best_path(log_probs[b, :length].astype(np.float64), target, 0)
        if best == -np.inf:
            impossible += 1
            assert np.all(alignment[b] == -1) and np.all(scores[b] == -np.inf)
            continue
        assert alignment[b, :length].tolist() in argbest
        np.testing.assert_allclose(scores[b].sum(), best, rtol=1e-5, atol=1e-6)
    assert 0 < impossible < batch


def test_ties_follow_torchaudio():
    # Every path scores 0: a state is kept rather than entered from the previous one, and
    # both rather than by a skip; the path ends in the last label, not the last blank. So,
    # traced back from the end, each state is held as long as the frames allow: every move
    # comes at its earliest frame ("1 2 2 2", not "1 1 2 _").
    log_probs = np.zeros((3, 6, 3), np.float32)
    labels = np.array([[1, 2, 0], [1, 1, 0], [2, 0, 0]], np.int32)
    logit_lengths = np.array([4, 5, 6], np.int32)
    label_lengths = np.array([2, 2, 1], np.int32)
    alignment, _ = jax.jit(jaxloss.ctc_forced_align)(
        log_probs, labels, logit_lengths=logit_lengths, label_lengths=label_lengths
    )
    paths, _ = ref.ctc_viterbi(log_probs, labels, logit_lengths, label_lengths)
    assert np.asarray(alignment).tolist() == [
        [1, 2, 2, 2, -1, -1],
        [1, 0, 1, 1, 1, -1],  # a repeat: its one blank as early as possible
        [2, 2, 2, 2, 2, 2],
    ]
    for b, path in enumerate(paths):
        assert np.asarray(alignment)[b, : logit_lengths[b]].tolist() == path


def test_shape_errors_name_the_argument():
    log_probs = jnp.zeros((2, 5, 4))
    labels = jnp.ones((2, 2), jnp.int32)
    align = jaxloss.ctc_forced_align
    with pytest.raises(ValueError, match="`log_probs`"):
        align(jnp.zeros((5, 4)), labels)
    with pytest.raises(ValueError, match=r"`labels`.*\(3, 2\)"):
        align(log_probs, jnp.zeros((3, 2), jnp.int32))
    with pytest.raises(ValueError, match="`logit_lengths`"):
        align(log_probs, labels, logit_lengths=jnp.array([5]))
    with pytest.raises(ValueError, match="`label_lengths`"):
        align(log_probs, labels, label_lengths=jnp.array([[1, 1]]))
    with pytest.raises(ValueError, match=r"`blank`=4 .*\[0, 4\)"):
        align(log_probs, labels, blank=4)
    with pytest.raises(TypeError, match="`labels`"):
        align(log_probs, jnp.ones((2, 2)))
    with pytest.raises(TypeError, match="`log_probs`"):
        align(jnp.zeros((2, 5, 4), jnp.int32), labels)


@functools.cache
def _checked_align():
    return jaxloss.checked(jaxloss.ctc_forced_align)


@pytest.mark.parametrize(
    "labels, logit_lengths, message",
    [
        ([[1, 2], [3, 1]], [5, 5], None),
        ([[1, 4], [3, 1]], [5, 5], "`labels` must be class ids"),
        ([[1, 2], [0, 1]], [5, 5], r"other than blank=0"),
        ([[2, 2], [3, 1]], [2, 5], "`logit_lengths` must be at least"),
        ([[1, 2], [3, 1]], [5, 6], r"`logit_lengths` must lie in \[0, 5\]"),
        ([[1, 2], [3, 1]], [5, 5], "`log_probs` holds NaN"),
    ],
    ids=["valid", "label-out-of-range", "label-is-blank", "too-few-frames", "length", "nan"],
)
def test_checked_mode_reports_invalid_values(labels, logit_lengths, message):
    log_probs = np.zeros((2, 5, 4), np.float32)
    if message and "NaN" in message:
        log_probs[1, 2, 3] = np.nan
    args = (log_probs, np.array(labels, np.int32))
    lengths = {"logit_lengths": np.array(logit_lengths, np.int32)}
    if message is None:
        alignment, _ = _checked_align()(*args, **lengths)
        assert np.asarray(alignment).tolist() == [[1, 2, 2, 2, 2], [3, 1, 1, 1, 1]]
        return
    with pytest.raises(checkify.JaxRuntimeError, match=message):
        _checked_align()(*args, **lengths)

"""CTC: torch parity of values and gradients, the float64 reference, impossible alignments,
the loss with its forward variables (against the reference and optax), and the greedy
decoder."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from jax.test_util import check_grads

import jaxloss
from tests._suite import compiled
from tests.sequence import reference as ref

# (batch, frames, classes, max labels). They cover both emission layouts (classes <= labels
# and classes > labels) and both occupancy paths (one-hot matmul up to 256 classes,
# scatter-add beyond).
SHAPES = [(5, 30, 6, 8), (4, 24, 300, 5), (6, 40, 12, 6)]


def _inputs(shape, blank, seed):
    """Random lengths, repeated labels, one sequence that cannot be aligned, one empty."""
    batch, frames, classes, max_labels = shape
    rng = np.random.default_rng(seed)
    logits = (2 * rng.normal(size=(batch, frames, classes))).astype(np.float32)
    non_blank = np.array([k for k in range(classes) if k != blank])
    labels = rng.choice(non_blank, size=(batch, max_labels)).astype(np.int32)
    labels[0, 1] = labels[0, 0]  # a repeat: needs a blank between
    logit_lengths = rng.integers(frames // 2, frames + 1, size=batch).astype(np.int32)
    logit_lengths[0] = frames
    label_lengths = rng.integers(1, max_labels + 1, size=batch).astype(np.int32)
    label_lengths[0] = max_labels
    label_lengths[1] = 0  # empty target
    logit_lengths[2], label_lengths[2] = 3, max_labels  # too few frames: impossible
    labels[2, : max_labels // 2] = labels[2, 0]
    return logits, labels, logit_lengths, label_lengths


# Compiled once per signature: eager dispatch compiles every operation of the loss apart.
ctc = jax.jit(jaxloss.ctc, static_argnames=("blank", "zero_infinity", "reduction"))


def _ctc(logits, labels, logit_lengths, label_lengths, **options):
    return ctc(logits, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, **options)


def _torch_ctc(logits, labels, logit_lengths, label_lengths, **options):
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    log_probs = torch.log_softmax(x, dim=-1).transpose(0, 1)
    loss = F.ctc_loss(
        log_probs,
        torch.tensor(labels, dtype=torch.int64),
        torch.tensor(logit_lengths, dtype=torch.int64),
        torch.tensor(label_lengths, dtype=torch.int64),
        **options,
    )
    loss.sum().backward()
    return loss.detach().numpy(), x.grad.numpy()


REDUCTIONS = ("none", "sum", "mean")
GRID = list(itertools.product(range(len(SHAPES)), ["first", "last"], [False, True]))


def _blank(shape, blank_at):
    return 0 if blank_at == "first" else shape[2] - 1


@functools.cache
def _ctc_of_shape(shape_index):
    """``{GRID index: {reduction: (value, gradient)}}`` for the four configurations of one
    shape (blank first or last, with or without zero_infinity): one compiled function for
    the shape instead of one per configuration."""
    shape = SHAPES[shape_index]
    cases = {index: params for index, params in enumerate(GRID) if params[0] == shape_index}
    inputs = {
        index: _inputs(shape, _blank(shape, params[1]), index) for index, params in cases.items()
    }

    @jax.jit
    def run(inputs):
        out = {}
        for index, (logits, labels, logit_lengths, label_lengths) in inputs.items():
            _, blank_at, zero_infinity = cases[index]
            loss = functools.partial(
                jaxloss.ctc,
                labels=labels,
                logit_lengths=logit_lengths,
                label_lengths=label_lengths,
                blank=_blank(shape, blank_at),
                zero_infinity=zero_infinity,
            )
            out[index] = compiled.reductions_and_grads(loss, reductions=REDUCTIONS)(logits)
        return out

    # NumPy arrays: the test indexes them with masks (a compiled gather each on jax arrays).
    return jax.device_get(run(inputs))


@pytest.mark.parametrize(
    "shape_index, blank_at, zero_infinity",
    GRID,
    ids=[f"shape{s}-blank_{b}-zi{z}" for s, b, z in GRID],
)
def test_ctc_matches_torch(shape_index, blank_at, zero_infinity):
    # Every reduction's value and gradient; the configurations of a shape are compiled together.
    shape = SHAPES[shape_index]
    blank = _blank(shape, blank_at)
    index = GRID.index((shape_index, blank_at, zero_infinity))
    logits, labels, logit_lengths, label_lengths = _inputs(shape, blank, index)
    options = {"blank": blank, "zero_infinity": zero_infinity}
    got = _ctc_of_shape(shape_index)[index]
    for reduction in REDUCTIONS:
        expected, expected_grad = _torch_ctc(
            logits, labels, logit_lengths, label_lengths, reduction=reduction, **options
        )
        value, grad = got[reduction]
        assert value.dtype == jnp.float32
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-5, err_msg=reduction)
        assert np.all(np.isfinite(grad))
        # torch's gradient of an impossible sequence is NaN (zero_infinity=False); ours is 0.
        finite = np.all(np.isfinite(expected_grad), axis=(1, 2))
        assert not zero_infinity or finite.all()
        np.testing.assert_array_equal(np.asarray(grad)[~finite], 0)
        # float32 against torch's float64: torch's own float32 gradient is off by up to
        # ~4e-5 of the largest entry on these 40-frame sequences (ours: ~2.4e-5).
        scale = np.abs(expected_grad[finite]).max()
        np.testing.assert_allclose(
            grad[finite], expected_grad[finite], rtol=1e-4, atol=5e-5 * scale, err_msg=reduction
        )


@pytest.mark.parametrize("shape", SHAPES)
def test_ctc_matches_the_float64_reference(shape):
    logits, labels, logit_lengths, label_lengths = _inputs(shape, 0, 99)
    np.testing.assert_allclose(
        _ctc(logits, labels, logit_lengths, label_lengths, reduction="none"),
        ref.ctc(logits, labels, logit_lengths, label_lengths),
        rtol=1e-5,
    )


def test_impossible_alignment_is_inf_with_a_zero_gradient():
    logits = np.zeros((1, 2, 3), np.float32)
    labels = np.array([[1, 1]], np.int32)  # a repeat needs 3 frames

    @jax.jit
    def run(logits, labels):
        # With and without zero_infinity in one compilation.
        return [
            jax.value_and_grad(
                functools.partial(jaxloss.ctc, labels=labels, zero_infinity=zi, reduction="sum")
            )(logits)
            for zi in (False, True)
        ]

    (value, grad), (value_zi, grad_zi) = run(logits, labels)
    assert np.isinf(value)
    assert np.all(np.asarray(grad) == 0)
    assert float(value_zi) == 0.0
    assert np.all(np.asarray(grad_zi) == 0)


def test_loss_is_never_below_zero():
    # A confident, correct model: -log p rounds to about 0 and must not go negative.
    labels = np.array([[1, 2, 3]])
    frames = np.array([0, 1, 0, 2, 0, 3, 0])
    logits = 60.0 * np.eye(4, dtype=np.float32)[frames][None]  # one-hot
    value = ctc(logits, labels, reduction="none")
    assert float(value[0]) >= 0.0
    assert float(value[0]) < 1e-6


def test_no_frames_and_empty_labels():
    logits = np.zeros((2, 4, 3), np.float32)
    labels = np.array([[1], [1]], np.int32)
    value = ctc(
        logits,
        labels,
        logit_lengths=np.array([0, 0], np.int32),
        label_lengths=np.array([0, 1], np.int32),
        reduction="none",
    )
    assert float(value[0]) == 0.0  # nothing to say in no time: probability 1
    assert np.isinf(value[1])


def test_labels_outside_the_classes_make_the_sequence_impossible():
    logits = np.zeros((1, 6, 3), np.float32)
    loss = functools.partial(jaxloss.ctc, reduction="sum")
    value, grad = jax.jit(jax.value_and_grad(loss))(logits, np.array([[1, 7]], np.int32))
    assert np.isinf(value)
    assert np.all(np.asarray(grad) == 0)


def test_mean_divides_by_label_length_at_least_one():
    logits, labels, logit_lengths, label_lengths = _inputs((4, 20, 5, 3), 0, 3)
    logit_lengths[2] = 20  # keep every sequence possible

    @jax.jit
    def run(logits, labels, logit_lengths, label_lengths):
        lengths = {"logit_lengths": logit_lengths, "label_lengths": label_lengths}
        none = jaxloss.ctc(logits, labels, reduction="none", **lengths)
        return none, jaxloss.ctc(logits, labels, **lengths)

    none, mean = run(logits, labels, logit_lengths, label_lengths)
    np.testing.assert_allclose(mean, np.mean(none / np.maximum(label_lengths, 1)), rtol=1e-6)


def test_where_drops_sequences():
    logits, labels, logit_lengths, label_lengths = _inputs((6, 20, 5, 3), 0, 4)
    keep = np.array([True, False, False, True, True, False])
    options = {"reduction": "mean"}

    def loss(logits, labels, logit_lengths, label_lengths, where=None):
        lengths = {"logit_lengths": logit_lengths, "label_lengths": label_lengths}
        return jaxloss.ctc(logits, labels, where=where, **lengths, **options)

    # Masked and dropped in one compilation.
    run = jax.jit(lambda inputs, keep, kept: (loss(*inputs, where=keep), loss(*kept)))
    inputs = (logits, labels, logit_lengths, label_lengths)
    masked, dropped = run(inputs, keep, tuple(x[keep] for x in inputs))
    np.testing.assert_allclose(masked, dropped, rtol=1e-6)


def test_agrees_with_optax_where_both_are_defined():
    logits, labels, logit_lengths, label_lengths = _inputs((5, 30, 6, 8), 0, 5)
    logit_lengths[2] = 30
    frames, max_labels = logits.shape[1], labels.shape[1]
    logit_paddings = (np.arange(frames)[None] >= logit_lengths[:, None]).astype(np.float32)
    label_paddings = (np.arange(max_labels)[None] >= label_lengths[:, None]).astype(np.float32)

    @jax.jit
    def run(logits, labels, logit_lengths, label_lengths, logit_paddings, label_paddings):
        # Both in one compilation.
        ours = jaxloss.ctc(
            logits,
            labels,
            logit_lengths=logit_lengths,
            label_lengths=label_lengths,
            reduction="none",
        )
        return ours, optax.ctc_loss(logits, logit_paddings, labels, label_paddings)

    ours, theirs = run(logits, labels, logit_lengths, label_lengths, logit_paddings, label_paddings)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)


def test_shape_errors_name_the_argument():
    logits = jnp.zeros((2, 5, 4))
    with pytest.raises(ValueError, match="`logits`"):
        jaxloss.ctc(jnp.zeros((5, 4)), jnp.zeros((2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"`labels`.*\(3, 2\)"):
        jaxloss.ctc(logits, jnp.zeros((3, 2), jnp.int32))
    with pytest.raises(ValueError, match="`logit_lengths`"):
        jaxloss.ctc(logits, jnp.ones((2, 2), jnp.int32), logit_lengths=jnp.array([5]))
    with pytest.raises(ValueError, match="`blank`"):
        jaxloss.ctc(logits, jnp.ones((2, 2), jnp.int32), blank=4)
    with pytest.raises(TypeError, match="`labels`"):
        jaxloss.ctc(logits, jnp.ones((2, 2)))


# --- Greedy decoding -----------------------------------------------------------------------


GREEDY_BLANKS = [0, 4]


@jax.jit
def _greedy_decodes(logits, logit_lengths):
    # Every blank of the test in one compilation.
    return {
        blank: jaxloss.ctc_greedy_decode(logits, logit_lengths=logit_lengths, blank=blank)
        for blank in GREEDY_BLANKS
    }


@pytest.mark.parametrize("blank", GREEDY_BLANKS)
def test_greedy_decode_matches_the_reference(blank):
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(7, 15, 5)).astype(np.float32)
    logit_lengths = rng.integers(0, 16, size=7)
    tokens, lengths = _greedy_decodes(logits, logit_lengths)[blank]
    assert tokens.shape == (7, 15) and tokens.dtype == jnp.int32
    expected = ref.ctc_greedy_decode(logits, logit_lengths, blank)
    for row, length, want in zip(np.asarray(tokens), np.asarray(lengths), expected, strict=True):
        assert length == len(want)
        assert row[:length].tolist() == want
        assert np.all(row[length:] == -1)


def test_greedy_decode_keeps_repeats_separated_by_blank():
    frames = np.array([[0, 3, 3, 0, 3, 1, 1, 2]])
    tokens, lengths = jax.jit(jaxloss.ctc_greedy_decode)(np.eye(4, dtype=np.float32)[frames])
    assert tokens[0, : int(lengths[0])].tolist() == [3, 3, 1, 2]


@pytest.mark.parametrize("blank", [-1, 4, 10])
def test_greedy_decode_rejects_a_blank_outside_the_classes(blank):
    # Unchecked, such a blank matches no frame: every blank frame would decode as a token.
    logits = jax.nn.one_hot(jnp.array([[0, 1, 0, 2]]), 4)
    with pytest.raises(ValueError, match=rf"`blank`={blank} .*\[0, 4\)"):
        jaxloss.ctc_greedy_decode(logits, blank=blank)


@pytest.mark.parametrize("blank", [0.5, 1.0, True, np.float32(0)])
def test_a_blank_that_is_not_an_int_is_a_type_error(blank):
    # A float blank decoded every blank frame as a token (blank=0.5 matched no class), and the
    # losses failed inside an indexing; a bool is not a class id either.
    logits = np.asarray(jax.nn.one_hot(jnp.array([[0, 1, 0, 2]]), 4))
    labels = np.array([[1, 2]])
    calls = {
        "ctc_greedy_decode": lambda: jaxloss.ctc_greedy_decode(logits, blank=blank),
        "ctc": lambda: jaxloss.ctc(logits, labels, blank=blank),
        "ctc_forced_align": lambda: jaxloss.ctc_forced_align(logits, labels, blank=blank),
        "rnnt": lambda: jaxloss.rnnt(np.stack([logits] * 3, axis=2), labels, blank=blank),
    }
    for call in calls.values():
        with pytest.raises(TypeError, match="`blank` must be"):
            call()


def test_greedy_decode_under_jit_and_vmap():
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(3, 2, 9, 4)).astype(np.float32)

    @jax.jit
    def run(logits):
        # The vmapped decoder and each batch decoded alone, in one compilation.
        decode = jaxloss.ctc_greedy_decode
        return jax.vmap(decode)(logits), [decode(batch) for batch in logits]

    (tokens, lengths), alone = run(logits)
    for i in range(3):
        t, n = alone[i]
        np.testing.assert_array_equal(tokens[i], t)
        np.testing.assert_array_equal(lengths[i], n)


def test_classes_masked_with_minus_infinity():
    # Constrained vocabularies set logits to -inf; the gradient must stay finite. A -inf
    # blank inside a sequence (a frame that must emit a label) too: the label states still
    # pass through that frame's blank sums (a skip from one label to the next), which the
    # backward pass must read as they were, not recover from the -inf alphas.
    rng = np.random.default_rng(8)
    logits = rng.normal(size=(2, 12, 5)).astype(np.float32)
    logits[:, :, 4] = -np.inf
    logits[0, 3:6, 2] = -np.inf
    logits[0, 7, 0] = -np.inf
    logits[1, 4:6, 0] = -np.inf
    labels = np.array([[1, 2, 1], [3, 3, 1]])
    loss = functools.partial(jaxloss.ctc, reduction="sum")
    value, grad = jax.jit(jax.value_and_grad(loss))(logits, labels)
    # torch's gradient is NaN with -inf logits; -1e4 changes the probabilities by e^-1e4.
    expected, expected_grad = _torch_ctc(
        np.where(np.isfinite(logits), logits, -1e4),
        labels,
        np.array([12, 12]),
        np.array([3, 3]),
        reduction="sum",
    )
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    finite = np.isfinite(logits)
    assert np.all(np.isfinite(np.asarray(grad)[finite]))
    np.testing.assert_allclose(np.asarray(grad)[finite], expected_grad[finite], atol=1e-5)
    # A class that cannot be emitted has no probability and no occupancy.
    np.testing.assert_array_equal(np.asarray(grad)[~finite], 0)


def test_forward_probs_gradient_with_a_minus_infinity_blank():
    # The alphas' adjoint runs through the same stored sums: with a -inf blank inside the
    # sequences (as above), the gradient of the loss plus a linear function of the finite
    # log-alphas is finite and matches finite differences of the finite logits.
    rng = np.random.default_rng(9)
    logits = rng.normal(size=(2, 10, 4)).astype(np.float32)
    logits[0, 4, 0] = -np.inf
    logits[1, 3:5, 0] = -np.inf
    labels = np.array([[1, 2, 1], [3, 1, 2]])
    weights = rng.normal(size=2 * 10 * 7).astype(np.float32)

    @jax.jit  # check_grads then compiles it, its VJP and its transpose once each
    def objective(finite_logits):
        x = jnp.asarray(logits).at[np.isfinite(logits)].set(finite_logits)
        loss, blank_alphas, label_alphas = jaxloss.ctc_with_forward_probs(x, labels)
        alphas = jnp.concatenate([blank_alphas.reshape(-1), label_alphas.reshape(-1)])
        return jnp.sum(loss) + jnp.sum(jnp.where(jnp.isfinite(alphas), alphas, 0) * weights)

    finite = jnp.asarray(logits[np.isfinite(logits)])
    grad = np.asarray(jax.grad(objective)(finite))
    assert np.all(np.isfinite(grad))
    check_grads(objective, (finite,), order=1, modes=["rev"], eps=1e-2, rtol=2e-2)


# --- The loss with its forward variables ---------------------------------------------------

# The emission layouts (classes <= labels and classes > labels) and both occupancy paths.
FORWARD_PROBS_SHAPES = [SHAPES[0], SHAPES[1]]


def _forward_probs_inputs(shape):
    """``_inputs`` (a repeat, an empty target, an impossible sequence) plus a sequence with
    no frames and no labels, and random cotangents for the loss and the log-alphas."""
    logits, labels, logit_lengths, label_lengths = _inputs(shape, 0, 11)
    logit_lengths[3], label_lengths[3] = 0, 0
    rng = np.random.default_rng(12)
    batch, frames, _, max_labels = shape
    cotangents = (
        rng.normal(size=batch).astype(np.float32),
        rng.normal(size=(frames, batch, max_labels + 1)).astype(np.float32),
        rng.normal(size=(frames, batch, max_labels)).astype(np.float32),
    )
    return (logits, labels, logit_lengths, label_lengths), cotangents


def _within_labels(label_lengths, max_labels):
    """Masks ``[1, B, S+1]`` and ``[1, B, S]`` of the states of each sequence's labels."""
    lengths = np.asarray(label_lengths)[None, :, None]
    return np.arange(max_labels + 1) <= lengths, np.arange(max_labels) < lengths


@functools.cache
def _forward_probs_of_shape(shape):
    """Everything the forward-probs tests read for one shape, in one compiled function:
    ours and optax's values, and gradients of the loss, of a random linear function of the
    log-alphas, and of both, for plain, hostile-padded, half-precision and vmapped inputs."""
    inputs, (loss_cotangent, blank_cotangent, label_cotangent) = _forward_probs_inputs(shape)
    _, labels, logit_lengths, label_lengths = inputs
    frames, max_labels = shape[1], shape[3]
    blank_states, label_states = _within_labels(label_lengths, max_labels)
    # Losses that optax cannot give (impossible: ours inf, optax's about 1e5) are left out.
    possible = np.isfinite(ref.ctc(*inputs))
    loss_cotangent = np.where(possible, loss_cotangent, 0).astype(np.float32)
    logit_paddings = (np.arange(frames)[None] >= logit_lengths[:, None]).astype(np.float32)
    label_paddings = (np.arange(max_labels)[None] >= label_lengths[:, None]).astype(np.float32)
    lengths = {"logit_lengths": logit_lengths, "label_lengths": label_lengths}

    def linear(loss, blank_alphas, label_alphas, reachable, with_loss=True, with_alphas=True):
        blank_alphas = jnp.where(blank_states & reachable(blank_alphas), blank_alphas, 0)
        label_alphas = jnp.where(label_states & reachable(label_alphas), label_alphas, 0)
        total = jnp.sum(loss * loss_cotangent) if with_loss else 0.0
        if with_alphas:
            total = total + jnp.sum(blank_alphas * blank_cotangent)
            total = total + jnp.sum(label_alphas * label_cotangent)
        return total

    def ours(logits, **parts):
        loss, blank_alphas, label_alphas = jaxloss.ctc_with_forward_probs(logits, labels, **lengths)
        return linear(loss, blank_alphas, label_alphas, jnp.isfinite, **parts)

    def ours_folded(logits):
        # optax's last row of blank alphas also holds the label states before them.
        loss, blank_alphas, label_alphas = jaxloss.ctc_with_forward_probs(logits, labels, **lengths)
        last = jnp.logaddexp(blank_alphas[-1, :, 1:], label_alphas[-1])
        blank_alphas = blank_alphas.at[-1, :, 1:].set(last)
        return linear(loss, blank_alphas, label_alphas, jnp.isfinite)

    def theirs(logits):
        outputs = optax.ctc_loss_with_forward_probs(logits, logit_paddings, labels, label_paddings)
        return linear(*outputs, lambda alpha: alpha > -1e4)

    @jax.jit
    def run(logits, hostile):
        forward = functools.partial(jaxloss.ctc_with_forward_probs, labels=labels, **lengths)
        return {
            "values": forward(logits),
            "zero_infinity": forward(logits, zero_infinity=True)[0],
            "half": forward(logits.astype(jnp.float16)),
            "hostile": forward(hostile),
            "optax": optax.ctc_loss_with_forward_probs(
                logits, logit_paddings, labels, label_paddings
            ),
            "ctc": jax.value_and_grad(
                lambda x: jnp.sum(jaxloss.ctc(x, labels, reduction="none", **lengths))
            )(logits),
            "grad_loss": jax.grad(lambda x: jnp.sum(forward(x)[0]))(logits),
            "grad_loss_part": jax.grad(functools.partial(ours, with_alphas=False))(logits),
            "grad_alphas_part": jax.grad(functools.partial(ours, with_loss=False))(logits),
            "grad": jax.grad(ours)(logits),
            "grad_hostile": jax.grad(ours)(hostile),
            "grad_vmapped": jax.vmap(jax.grad(ours))(jnp.stack([logits, hostile])),
            "grad_folded": jax.grad(ours_folded)(logits),
            "grad_optax": jax.grad(theirs)(logits),
        }

    logits = inputs[0]
    past = np.arange(frames)[None, :, None] >= logit_lengths[:, None, None]
    hostile = np.where(
        past,
        np.array([np.nan, np.inf, -np.inf, 1e30])[np.arange(frames) % 4][None, :, None],
        logits,
    ).astype(np.float32)
    # NumPy arrays: the tests index them with masks, which on jax arrays compiles a gather each.
    return inputs, past, possible, jax.device_get(run(logits, hostile))


@pytest.mark.parametrize("shape", FORWARD_PROBS_SHAPES)
def test_forward_probs_match_the_float64_reference(shape):
    inputs, _, _, got = _forward_probs_of_shape(shape)
    expected = ref.ctc_forward_probs(*inputs)
    for name, value, want in zip(("loss", "blank", "label"), got["values"], expected, strict=True):
        assert value.dtype == jnp.float32 and value.shape == want.shape, name
        # -inf exactly where the reference has -inf: unreachable states and those past the
        # labels; the loss is inf for the impossible sequence.
        np.testing.assert_array_equal(np.isfinite(value), np.isfinite(want), err_msg=name)
        np.testing.assert_array_equal(value[~np.isfinite(want)], want[~np.isfinite(want)])
        finite = np.isfinite(want)
        np.testing.assert_allclose(value[finite], want[finite], rtol=1e-5, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("shape", FORWARD_PROBS_SHAPES)
def test_forward_probs_match_optax(shape):
    # Values on the states within the labels (optax computes the padded ones from the padding
    # labels) that optax reaches (its unreachable states hold about -1e5, ours -inf); its
    # last row of blank alphas also folds in the label states.
    inputs, _, possible, got = _forward_probs_of_shape(shape)
    loss, blank_alphas, label_alphas = map(np.array, got["values"])
    optax_loss, optax_blank, optax_label = map(np.asarray, got["optax"])
    blank_alphas[-1, :, 1:] = np.logaddexp(blank_alphas[-1, :, 1:], label_alphas[-1])
    blank_states, label_states = _within_labels(inputs[3], shape[3])
    for ours, theirs, states in [
        (blank_alphas, optax_blank, blank_states),
        (label_alphas, optax_label, label_states),
    ]:
        states = np.broadcast_to(states, ours.shape)
        reached = theirs > -1e4
        np.testing.assert_array_equal(np.isfinite(ours)[states], reached[states])
        both = states & reached
        np.testing.assert_allclose(ours[both], theirs[both], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(loss[possible], optax_loss[possible], rtol=1e-5)
    assert np.all(optax_loss[~possible] > 1e4) and np.all(np.isinf(loss[~possible]))
    # Gradients of the loss and of a random linear function of every log-alpha: ours by the
    # adjoint of the recursion, optax's by autodiff through its scan.
    scale = np.abs(got["grad_optax"]).max()
    np.testing.assert_allclose(got["grad_folded"], got["grad_optax"], atol=2e-5 * scale)


@pytest.mark.parametrize("shape", FORWARD_PROBS_SHAPES)
def test_forward_probs_gradients(shape):
    _, past, possible, got = _forward_probs_of_shape(shape)
    # The loss is ctc's, value and gradient (the same kernel and the same backward pass).
    ctc_value, ctc_grad = got["ctc"]
    np.testing.assert_array_equal(np.sum(got["values"][0]), ctc_value)
    np.testing.assert_array_equal(got["grad_loss"], ctc_grad)
    # The loss's and the alphas' parts of the backward pass add up; each runs alone when
    # the other output is not differentiated.
    grad = np.asarray(got["grad"])
    scale = np.abs(grad).max()
    assert np.isfinite(scale)
    parts = got["grad_loss_part"] + got["grad_alphas_part"]
    np.testing.assert_allclose(parts, grad, rtol=1e-5, atol=1e-6 * scale)
    assert np.any(got["grad_alphas_part"] != 0)
    # Frames past logit_lengths: never read (NaN, ±inf, 1e30 there change nothing) and
    # exactly zero gradient.
    for hostile, plain in zip(got["hostile"], got["values"], strict=True):
        np.testing.assert_array_equal(hostile, plain)
    np.testing.assert_array_equal(
        np.asarray(got["grad_hostile"])[np.broadcast_to(past, grad.shape)], 0
    )
    np.testing.assert_array_equal(grad[np.broadcast_to(past, grad.shape)], 0)
    np.testing.assert_allclose(got["grad_hostile"], grad, rtol=1e-5, atol=1e-6 * scale)
    # vmap over a leading axis gives each slice's gradient.
    np.testing.assert_allclose(got["grad_vmapped"][0], grad, rtol=1e-5, atol=1e-6 * scale)
    np.testing.assert_allclose(
        got["grad_vmapped"][1], got["grad_hostile"], rtol=1e-5, atol=1e-6 * scale
    )
    # zero_infinity: impossible sequences lose 0; half precision is computed in float32.
    np.testing.assert_array_equal(got["zero_infinity"][~possible], 0)
    np.testing.assert_array_equal(got["zero_infinity"][possible], got["values"][0][possible])
    for half, plain in zip(got["half"], got["values"], strict=True):
        assert half.dtype == jnp.float32
        np.testing.assert_array_equal(np.isfinite(half), np.isfinite(plain))


def test_forward_probs_shape_errors_name_the_argument():
    logits = jnp.zeros((2, 5, 4))
    with pytest.raises(ValueError, match=r"`labels`.*\(3, 2\)"):
        jaxloss.ctc_with_forward_probs(logits, jnp.zeros((3, 2), jnp.int32))
    with pytest.raises(ValueError, match="`label_lengths`"):
        jaxloss.ctc_with_forward_probs(
            logits, jnp.ones((2, 2), jnp.int32), label_lengths=jnp.array([1])
        )
    with pytest.raises(ValueError, match="`blank`"):
        jaxloss.ctc_with_forward_probs(logits, jnp.ones((2, 2), jnp.int32), blank=-1)

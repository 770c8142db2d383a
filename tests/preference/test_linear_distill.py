"""``linear_distill`` against ``generalized_jsd`` of the materialized logits: values and
every gradient (hidden states, weights, biases, temperature, β), static and traced β,
block sizes, reductions, masks, a teacher under ``stop_gradient``, vocabulary sharding."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jaxloss

VOCAB, DIM, SHAPE = 11, 6, (3, 5)

# Tokens per block: 15 tokens in blocks of 1, 4 (the last block padded) and 16 (more
# than there are), or one block.
DISTILL_CHUNKS = (None, 1, 4, 16)
BETAS = (0.0, 0.4, 1.0)
REDUCTIONS = ("sum", "mean", "none")
TEMPERATURE = 1.7


def _heads(seed=5):
    rng = np.random.default_rng(seed)
    return (
        rng.normal(size=(*SHAPE, DIM)).astype(np.float32),
        rng.normal(size=(VOCAB, DIM)).astype(np.float32),
        rng.normal(size=(*SHAPE, DIM + 2)).astype(np.float32),
        (2 * rng.normal(size=(VOCAB, DIM + 2))).astype(np.float32),
        rng.normal(size=VOCAB).astype(np.float32),
        rng.normal(size=VOCAB).astype(np.float32),
        rng.uniform(size=SHAPE) > 0.3,
    )


_COTANGENT = np.random.default_rng(9).normal(size=SHAPE).astype(np.float32)


def _summed(values, reduction, cotangent):
    """The scalar to differentiate: the loss, or a random projection of ``"none"``'s."""
    return jnp.sum(values * cotangent) if reduction == "none" else values


def _materialized(h_s, w_s, h_t, w_t, b_s, b_t, temperature, beta, *, where, reduction):
    student = h_s @ w_s.T + b_s[None, None]
    teacher = h_t @ w_t.T + b_t[None, None]
    return jaxloss.generalized_jsd(
        student, teacher, beta=beta, temperature=temperature, where=where, reduction=reduction
    )


@functools.cache
def _distill_ours_and_materialized():
    """Every block size and β (a Python number, and traced), each with one of the three
    reductions, with biases, a mask and a temperature, next to ``generalized_jsd`` of the
    logits: values and the gradients of all eight inputs (seven for a Python β)."""
    *arrays, where = _heads()
    cotangent = _COTANGENT
    keys = [
        (beta, traced, chunk, REDUCTIONS[(i + j) % 3])
        for i, beta in enumerate(BETAS)
        for traced in (False, True)
        for j, chunk in enumerate(DISTILL_CHUNKS)
    ]

    def pair(chunk, reduction):
        def ours(h_s, w_s, h_t, w_t, b_s, b_t, temperature, beta):
            values = jaxloss.linear_distill(
                h_s, w_s, h_t, w_t, beta=beta, temperature=temperature, student_bias=b_s,
                teacher_bias=b_t, chunk_size=chunk, where=where, reduction=reduction,
            )  # fmt: skip
            return _summed(values, reduction, cotangent)

        def theirs(*args):
            values = _materialized(*args, where=where, reduction=reduction)
            return _summed(values, reduction, cotangent)

        return ours, theirs

    def run(*arrays):
        results = []
        for beta, traced, chunk, reduction in keys:
            argnums = tuple(range(8 if traced else 7))
            b = jnp.float32(beta) if traced else beta
            results.append(
                [
                    jax.value_and_grad(fn, argnums)(*arrays, jnp.float32(TEMPERATURE), b)
                    for fn in pair(chunk, reduction)
                ]
            )
        return results

    return dict(zip(keys, jax.jit(run)(*arrays), strict=True))


@pytest.mark.parametrize("chunk_size", DISTILL_CHUNKS)
@pytest.mark.parametrize("traced", [False, True], ids=["static_beta", "traced_beta"])
@pytest.mark.parametrize("beta", BETAS)
def test_distill_matches_generalized_jsd_of_the_logits(beta, traced, chunk_size):
    (key,) = [k for k in _distill_ours_and_materialized() if k[:3] == (beta, traced, chunk_size)]
    (value, grads), (expected, expected_grads) = _distill_ours_and_materialized()[key]
    # Two float32 computations of the same divergences, per token within about 1e-6 of
    # float64 each (values of order 1); "none" is compared through its projection on a random
    # cotangent, where terms of both signs cancel: tolerate what that sum of errors can reach.
    scale = np.sum(np.abs(_COTANGENT)) if key[3] == "none" else 1.0
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6 * scale)
    assert len(grads) == (8 if traced else 7)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("beta", BETAS)
def test_distill_student_only_gradients(beta):
    # A teacher under stop_gradient, the student's hidden states and weights differentiated:
    # the kernel forms those gradients only, and they equal the materialized head's.
    *arrays, where = _heads(7)
    h_s, w_s, h_t, w_t, b_s, b_t = arrays
    fixed = jax.lax.stop_gradient

    @jax.jit
    def run(h_s, w_s):
        def ours(h, w):
            return jaxloss.linear_distill(
                h, w, fixed(h_t), fixed(w_t), beta=beta, student_bias=b_s,
                teacher_bias=fixed(b_t), chunk_size=4, where=where,
            )  # fmt: skip

        ours = jax.value_and_grad(ours, (0, 1))(h_s, w_s)
        theirs = jax.value_and_grad(
            lambda h, w: _materialized(
                h, w, h_t, w_t, b_s, b_t, 1.0, beta, where=where, reduction="mean"
            ),
            (0, 1),
        )(h_s, w_s)
        return ours, theirs

    (value, grads), (expected, expected_grads) = run(h_s, w_s)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def test_distill_masked_tokens_reach_nothing():
    h_s, w_s, h_t, w_t, _, _, where = _heads(6)
    hostile = [np.where(where[..., None], h, np.nan).astype(np.float32) for h in (h_s, h_t)]

    @jax.jit
    def run(h_s, h_t, w_s, w_t):
        def loss(h_s, w_s, h_t, w_t, chunk, mask):
            return jaxloss.linear_distill(
                h_s, w_s, h_t, w_t, chunk_size=chunk, where=mask, reduction="sum"
            )

        ours = [
            jax.value_and_grad(loss, (0, 1, 2, 3))(h_s, w_s, h_t, w_t, chunk, where)
            for chunk in (None, 3)
        ]
        kept = jax.value_and_grad(loss, (0, 1, 2, 3))(
            h_s[where][None], w_s, h_t[where][None], w_t, None, None
        )
        return ours, kept

    ours, (expected, (_, dw_s, _, dw_t)) = run(hostile[0], hostile[1], w_s, w_t)
    for value, (dh_s, dws, dh_t, dwt) in ours:
        np.testing.assert_allclose(value, expected, rtol=1e-5)
        for dh in (dh_s, dh_t):
            assert np.all(np.asarray(dh)[~where] == 0) and np.all(np.isfinite(dh))
        np.testing.assert_allclose(dws, dw_s, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(dwt, dw_t, rtol=1e-4, atol=1e-6)


def test_distill_hand_worked():
    # hidden 1: the logits are the weight's column. Student (1/2, 1/2), teacher (0.9, 0.1):
    # forward KL 0.9 log 1.8 + 0.1 log 0.2, reverse 0.5 log(0.5/0.9) + 0.5 log 5.
    forward = 0.9 * np.log(1.8) + 0.1 * np.log(0.2)
    reverse = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(5)
    cases = ((0.0, forward), (1.0, reverse))

    @jax.jit  # one compilation for both
    def run():
        hidden = jnp.ones((1, 1))
        student = jnp.log(np.array([[0.5], [0.5]], np.float32))
        teacher = jnp.log(np.array([[0.9], [0.1]], np.float32))
        return [
            jaxloss.linear_distill(hidden, student, hidden, teacher, beta=beta, chunk_size=1)
            for beta, _ in cases
        ]

    for got, (_, expected) in zip(run(), cases, strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("beta", BETAS)
def test_distill_sharded_over_batch_and_vocabulary_equals_one_device(beta, reduction):
    if jax.device_count() < 8:
        pytest.skip("needs the 8 CPU devices of tests/conftest.py")
    # 2 batch shards × 4 vocabulary shards of 6 entries: the softmaxes, the divergence and
    # the mean are combined over both axes, the hidden states' gradients over the vocabulary.
    rng = np.random.default_rng(11)
    shape, vocab = (4, 5), 24
    arrays = [
        rng.normal(size=(*shape, DIM)),
        rng.normal(size=(vocab, DIM)),
        rng.normal(size=(*shape, DIM + 2)),
        2 * rng.normal(size=(vocab, DIM + 2)),
        rng.normal(size=vocab),
        rng.normal(size=vocab),
    ]
    arrays = [a.astype(np.float32) for a in arrays]
    where = rng.uniform(size=shape) > 0.3
    cotangent = rng.normal(size=shape).astype(np.float32)
    mesh = jax.make_mesh((2, 4), ("batch", "vocab"), axis_types=(jax.sharding.AxisType.Auto,) * 2)

    def local(h_s, w_s, h_t, w_t, b_s, b_t, where):
        return jaxloss.linear_distill(
            h_s, w_s, h_t, w_t, beta=beta, temperature=TEMPERATURE, student_bias=b_s,
            teacher_bias=b_t, chunk_size=3, class_axis_name="vocab", where=where,
            reduction=reduction, axis_name="batch",
        )  # fmt: skip

    rows, vocab_rows = P("batch"), P("vocab")
    sharded = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(rows, vocab_rows, rows, vocab_rows, vocab_rows, vocab_rows, rows),
        out_specs=rows if reduction == "none" else P(),
    )

    def whole(*args):
        return _materialized(*args[:6], TEMPERATURE, beta, where=args[6], reduction=reduction)

    def grads(fn):
        return jax.jit(
            jax.value_and_grad(
                lambda *args: _summed(fn(*args), reduction, cotangent), tuple(range(6))
            )
        )(*arrays, where)

    (value, got), (expected, expected_grads) = grads(sharded), grads(whole)
    np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-7)
    for g, e in zip(got, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def test_distill_errors():
    h_s, w_s, h_t, w_t, b_s, _, _ = _heads()
    with pytest.raises(ValueError, match="teacher_hidden"):
        jaxloss.linear_distill(h_s, w_s, h_t[:, :3], w_t)
    with pytest.raises(ValueError, match="teacher_weight"):
        jaxloss.linear_distill(h_s, w_s, h_t, w_t[:4])
    with pytest.raises(ValueError, match="student_weight"):
        jaxloss.linear_distill(h_s, w_s[:, :2], h_t, w_t)
    with pytest.raises(ValueError, match="student_bias"):
        jaxloss.linear_distill(h_s, w_s, h_t, w_t, student_bias=b_s[:3])
    with pytest.raises(ValueError, match="beta"):
        jaxloss.linear_distill(h_s, w_s, h_t, w_t, beta=1.5)
    with pytest.raises(ValueError, match="temperature"):
        jaxloss.linear_distill(h_s, w_s, h_t, w_t, temperature=0.0)
    with pytest.raises(ValueError, match="chunk_size"):
        jaxloss.linear_distill(h_s, w_s, h_t, w_t, chunk_size=0)

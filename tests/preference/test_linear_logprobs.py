"""``linear_token_logprobs`` against ``token_logprobs`` of the materialized logits and a
float64 NumPy log-softmax: values, gradients, chunk sizes, masks, vocabulary sharding."""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify
from jax.sharding import PartitionSpec as P

import jaxloss

VOCAB, DIM, SHAPE = 11, 6, (3, 5)
# 3 and 4 do not divide the vocabulary, 11 is all of it in one block.
CHUNKS = (None, 1, 3, 4, 11)


def _inputs(seed=0, vocab=VOCAB):
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(*SHAPE, DIM)).astype(np.float32)
    weight = rng.normal(size=(vocab, DIM)).astype(np.float32)
    bias = rng.normal(size=vocab).astype(np.float32)
    tokens = rng.integers(0, vocab, size=SHAPE).astype(np.int32)
    tokens[0, :2] = (-100, vocab)  # padding outside the vocabulary: masked
    where = rng.uniform(size=SHAPE) > 0.3
    cotangent = rng.normal(size=SHAPE).astype(np.float32)
    return hidden, weight, bias, tokens, where, cotangent


def _numpy_logprobs(hidden, weight, bias, tokens, where):
    """float64 log-softmax at the token, 0 where masked or out of the vocabulary."""
    logits = np.asarray(hidden, np.float64) @ np.asarray(weight, np.float64).T + bias
    logits = logits - logits.max(-1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    valid = (tokens >= 0) & (tokens < weight.shape[0]) & where
    chosen = np.take_along_axis(log_softmax, np.where(valid, tokens, 0)[..., None], -1)[..., 0]
    return np.where(valid, chosen, 0.0)


@functools.cache
def _ours_and_materialized():
    """Every chunk size's values and gradients (of a random cotangent), with and without a
    bias and ``where``, next to ``token_logprobs`` of the logits: one compiled function."""
    hidden, weight, bias, tokens, where, cotangent = _inputs()

    def both(h, w, b, with_bias, mask, chunk_size):
        b = b if with_bias else None

        def ours(h, w, b):
            values = jaxloss.linear_token_logprobs(
                h, w, tokens, bias=b, chunk_size=chunk_size, where=mask
            )
            return jnp.sum(values * cotangent), values

        def materialized(h, w, b):
            logits = h @ w.T + (0 if b is None else b[None, None])
            values = jaxloss.token_logprobs(logits, tokens, where=mask)
            return jnp.sum(values * cotangent), values

        argnums = (0, 1) if b is None else (0, 1, 2)
        return [
            jax.value_and_grad(fn, argnums, has_aux=True)(h, w, b) for fn in (ours, materialized)
        ]

    keys = [
        (with_bias, masked, chunk)
        for with_bias in (False, True)
        for masked in (False, True)
        for chunk in CHUNKS
    ]

    def run(h, w, b):
        return [
            both(h, w, b, bias, where if masked else None, chunk) for bias, masked, chunk in keys
        ]

    return dict(zip(keys, jax.jit(run)(hidden, weight, bias), strict=True))


@pytest.mark.parametrize("chunk_size", CHUNKS)
@pytest.mark.parametrize("masked", [False, True], ids=["no_where", "where"])
@pytest.mark.parametrize("with_bias", [False, True], ids=["no_bias", "bias"])
def test_matches_token_logprobs_of_the_logits(with_bias, masked, chunk_size):
    ((_, ours), grads), ((_, expected), expected_grads) = _ours_and_materialized()[
        (with_bias, masked, chunk_size)
    ]
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-6)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    hidden, weight, bias, tokens, where, _ = _inputs()
    reference = _numpy_logprobs(
        hidden, weight, bias if with_bias else 0.0, tokens, where if masked else True
    )
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)
    assert ours.shape == SHAPE and ours.dtype == jnp.float32


def test_hand_worked():
    # hidden one-hot: the logits of token t are the column t of weight.
    @jax.jit  # one compilation for both chunk sizes
    def run():
        weight = jnp.log(np.array([[0.5, 0.1], [0.25, 0.1], [0.25, 0.8]], np.float32))
        tokens = np.array([[0, 2]], np.int32)
        return [
            jaxloss.linear_token_logprobs(jnp.eye(2)[None], weight, tokens, chunk_size=chunk_size)
            for chunk_size in (None, 2)
        ]

    for out in run():
        np.testing.assert_allclose(np.exp(out), [[0.5, 0.8]], rtol=1e-6)


def test_masked_tokens_reach_nothing():
    # NaN hidden states at masked and padding tokens: the values and the gradients equal
    # those without those tokens, and theirs are exactly 0.
    hidden, weight, bias, tokens, where, _ = _inputs(1)
    valid = where & (tokens >= 0) & (tokens < VOCAB)
    hostile = np.where(valid[..., None], hidden, np.nan).astype(np.float32)

    @jax.jit
    def run(h, w, b):
        def total(h, w, b, mask, chunk_size):
            values = jaxloss.linear_token_logprobs(
                h, w, tokens, bias=b, chunk_size=chunk_size, where=mask
            )
            return jnp.sum(values), values

        def kept(h, w, b):  # the valid tokens alone, as one sequence
            values = jaxloss.linear_token_logprobs(h[valid][None], w, tokens[valid][None], bias=b)
            return jnp.sum(values), values

        ours = [
            jax.value_and_grad(total, (0, 1, 2), has_aux=True)(h, w, b, where, chunk)
            for chunk in (None, 3)
        ]
        return ours, jax.value_and_grad(kept, (0, 1, 2), has_aux=True)(hidden, w, b)

    ours, ((dropped, _), (_, dw, db)) = run(hostile, weight, bias)
    for (value, values), (dh, dw_ours, db_ours) in ours:
        np.testing.assert_allclose(value, dropped, rtol=1e-6)
        assert np.all(np.asarray(values)[~valid] == 0)
        assert np.all(np.asarray(dh)[~valid] == 0) and np.all(np.isfinite(dh))
        np.testing.assert_allclose(dw_ours, dw, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(db_ours, db, rtol=1e-5, atol=1e-6)


def test_vmap_equals_the_batched_call():
    hidden, weight, bias, tokens, where, _ = _inputs(2)

    @jax.jit
    def run(h):
        fn = functools.partial(jaxloss.linear_token_logprobs, bias=bias, chunk_size=4)
        return jax.vmap(lambda h, t, m: fn(h, weight, t, where=m))(h, tokens, where), fn(
            h, weight, tokens, where=where
        )

    mapped, batched = run(hidden)
    np.testing.assert_allclose(mapped, batched, rtol=1e-6, atol=1e-7)


def test_bfloat16_computes_in_float32():
    hidden, weight, bias, tokens, _, _ = _inputs(3)
    half = [jnp.asarray(a, jnp.bfloat16) for a in (hidden, weight, bias)]

    @jax.jit
    def run(h, w, b):
        return [
            jaxloss.linear_token_logprobs(h, w, tokens, bias=b, chunk_size=chunk)
            for chunk in (None, 4)
        ]

    exact = _numpy_logprobs(*(np.asarray(a, np.float32) for a in half), tokens, True)
    for out in run(*half):
        assert out.dtype == jnp.float32
        np.testing.assert_allclose(out, exact, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_vocabulary_sharded_over_8_devices_equals_one_device(chunk_size):
    if jax.device_count() < 8:
        pytest.skip("needs the 8 CPU devices of tests/conftest.py")
    # 8 devices × 3 vocabulary entries; every token id is read on exactly one device.
    hidden, weight, bias, tokens, where, cotangent = _inputs(4, vocab=24)
    mesh = jax.make_mesh((8,), ("vocab",), axis_types=(jax.sharding.AxisType.Auto,))

    def loss(fn):
        def total(h, w, b):
            values = fn(h, w, b)
            return jnp.sum(values * cotangent), values

        return jax.jit(jax.value_and_grad(total, (0, 1, 2), has_aux=True))

    sharded = jax.shard_map(
        lambda h, w, b: jaxloss.linear_token_logprobs(
            h, w, tokens, bias=b, chunk_size=chunk_size, class_axis_name="vocab", where=where
        ),
        mesh=mesh,
        in_specs=(P(), P("vocab"), P("vocab")),
        out_specs=P(),
    )

    def whole(h, w, b):
        logits = h @ w.T + b[None, None]
        return jaxloss.token_logprobs(logits, tokens, where=where)

    (_, values), grads = loss(sharded)(hidden, weight, bias)
    (_, expected), expected_grads = loss(whole)(hidden, weight, bias)
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


def test_errors():
    hidden, weight, bias, tokens, where, _ = _inputs()
    with pytest.raises(ValueError, match="tokens"):
        jaxloss.linear_token_logprobs(hidden, weight, tokens[:, :3])
    with pytest.raises(ValueError, match="hidden"):
        jaxloss.linear_token_logprobs(hidden[0, 0], weight, tokens[0, 0])
    with pytest.raises(TypeError, match="tokens"):
        jaxloss.linear_token_logprobs(hidden, weight, tokens.astype(np.float32))
    with pytest.raises(TypeError, match="hidden"):
        jaxloss.linear_token_logprobs(tokens, weight, tokens[..., 0])
    with pytest.raises(ValueError, match="weight"):
        jaxloss.linear_token_logprobs(hidden, weight[:, :3], tokens)
    with pytest.raises(ValueError, match="bias"):
        jaxloss.linear_token_logprobs(hidden, weight, tokens, bias=bias[:3])
    with pytest.raises(ValueError, match="chunk_size"):
        jaxloss.linear_token_logprobs(hidden, weight, tokens, chunk_size=0)
    with pytest.raises(TypeError, match="where"):
        jaxloss.linear_token_logprobs(hidden, weight, tokens, where=where.astype(np.int32))


@pytest.mark.parametrize("weight_shape", [(VOCAB, DIM - 1), (VOCAB,), (2, VOCAB, DIM)])
def test_a_misfit_weight_is_reported_with_the_shapes_given(weight_shape):
    # The rows are flattened for linear_cross_entropy, whose message named `hidden` [batch,
    # dim] with the flattened shape (15, 6) and `weight` [num_classes, dim].
    hidden, _, _, tokens, _, _ = _inputs()
    weight = np.ones(weight_shape, np.float32)
    expected = re.escape(f"got {hidden.shape} and {weight_shape}")
    with pytest.raises(ValueError, match=r"`weight` \[vocab, dim\].*" + expected) as error:
        jaxloss.linear_token_logprobs(hidden, weight, tokens)
    assert "num_classes" not in str(error.value) and "(15, 6)" not in str(error.value)


@pytest.mark.parametrize("token", [-100, VOCAB])
def test_checked_mode_names_tokens(token):
    # Ids outside the vocabulary count as masked; checked, an unmasked one is an error
    # (as token_logprobs's), which named linear_cross_entropy's `labels`.
    hidden, weight, _, tokens, where, _ = _inputs()
    tokens = np.where(where, np.clip(tokens, 0, VOCAB - 1), tokens)
    tokens[where.nonzero()[0][0], where.nonzero()[1][0]] = token
    checked = jaxloss.checked(jaxloss.linear_token_logprobs)
    with pytest.raises(checkify.JaxRuntimeError, match=r"`tokens` must be class ids in \[0, "):
        checked(hidden, weight, tokens, where=where)
    masked = np.where(where, np.clip(tokens, 0, VOCAB - 1), token)  # out of range where masked
    np.testing.assert_allclose(
        checked(hidden, weight, masked, where=where),
        jaxloss.linear_token_logprobs(hidden, weight, masked, where=where),
        rtol=1e-6,
    )

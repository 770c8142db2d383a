"""The RNN-T loss from the joiner's inputs, in blocks of frames (the blockwise joint).

Notation as in ``_kernels.rnnt``, plus ``H`` the joint size and ``C`` the frames per block.
The joiner is ``z(t, u) = σ(e_t + g_u) W + c``. The forward pass scans over blocks of ``C``
frames: each block's logits ``[B, C, U1, V]`` give the blank's and the next label's
log-probabilities and the log-normalizers, and are dropped. The lattice recursions then run
on these ``[B, T, U1]`` arrays exactly as for materialized logits (``_kernels.rnnt``). The
backward pass forms the transition posteriors once, then scans over the blocks again:
recompute ``h = σ(e + g)`` and ``z``, write the block's ``d z`` in closed form
(``rnnt.logit_cotangent``), and push it through the projection and the activation at once:
``dW += hᵀ dz``, ``dc += Σ dz``, ``d(e + g) = σ'·(dz Wᵀ)``, summed over the label positions
for ``e`` and over the frames for ``g``.

Memory: per block ``[B, C, U1, H]`` (``h`` and its cotangent) and ``[B, C, U1, V]`` (``z``,
then ``dz``); the residuals are the inputs and the ``[B, T, U1]`` lattice arrays. Compared
with the materialized loss (logits, their log-softmax and gradient, ``[B, T, U1, V]``
each), temporary memory shrinks by about ``T / C``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxloss._kernels import rnnt
from jaxloss._sharding import sum_to, vary_like

_Activation = Callable[[jax.Array], jax.Array]


def _blocks(encoder: jax.Array, chunk: int) -> jax.Array:
    """``[B, T, H]`` to ``[T / C, B, C, H]``, zero-padded to a whole number of blocks."""
    batch, num_frames, joint = encoder.shape
    num_blocks = -(-num_frames // chunk)
    padded = jnp.pad(encoder, ((0, 0), (0, num_blocks * chunk - num_frames), (0, 0)))
    return jnp.transpose(padded.reshape(batch, num_blocks, chunk, joint), (1, 0, 2, 3))


def _unblock(blocks: jax.Array, num_frames: int) -> jax.Array:
    """``[T / C, B, C, ...]`` back to ``[B, T, ...]``."""
    num_blocks, batch, chunk = blocks.shape[:3]
    merged = jnp.moveaxis(blocks, 0, 1).reshape(batch, num_blocks * chunk, *blocks.shape[3:])
    return merged[:, :num_frames]


def _summed(encoder: jax.Array, predictor: jax.Array) -> jax.Array:
    """``e + g`` ``[B, C, U1, H]`` of a block."""
    return encoder[:, :, None, :] + predictor[:, None, :, :]


def _logits(hidden: jax.Array, weight: jax.Array, bias: jax.Array) -> jax.Array:
    return jnp.einsum("bcuh,hv->bcuv", hidden, weight) + bias[None, None, None, :]


class _Residuals(NamedTuple):
    encoder: jax.Array
    predictor: jax.Array
    weight: jax.Array
    bias: jax.Array
    labels: jax.Array
    logit_lengths: jax.Array
    label_lengths: jax.Array
    log_normalizer: jax.Array
    lattice: rnnt.Lattice
    alpha: jax.Array
    log_p: jax.Array


def _forward(
    encoder: jax.Array,
    predictor: jax.Array,
    weight: jax.Array,
    bias: jax.Array,
    labels: jax.Array,
    logit_lengths: jax.Array,
    label_lengths: jax.Array,
    kept: jax.Array,
    blank: int,
    activation: _Activation,
    chunk: int,
) -> tuple[jax.Array, _Residuals]:
    # ``kept`` is unused: dropped sequences have zero inputs and a zero cotangent.
    del kept
    num_frames, positions = encoder.shape[1], predictor.shape[1]
    safe_labels, label_ids = rnnt.padded_labels(labels, weight.shape[1])
    everywhere = jnp.ones((encoder.shape[0], chunk, positions), bool)

    def block(carry: None, encoder_block: jax.Array) -> tuple[None, tuple]:
        hidden = activation(_summed(encoder_block, predictor))
        logits = _logits(hidden, weight, bias)
        return None, rnnt.emissions(logits, safe_labels, label_ids, everywhere, blank, True)

    _, per_block = jax.lax.scan(block, None, _blocks(encoder, chunk))
    blank_lp, label_lp, log_normalizer = (_unblock(x, num_frames) for x in per_block)
    lattice = rnnt.Lattice(rnnt.skew(blank_lp), rnnt.skew(label_lp))
    alpha = rnnt.alphas(lattice)
    log_p = rnnt.log_likelihood(lattice, alpha, logit_lengths, label_lengths)
    residuals = _Residuals(
        encoder,
        predictor,
        weight,
        bias,
        safe_labels,
        logit_lengths,
        label_lengths,
        log_normalizer,
        lattice,
        alpha,
        log_p,
    )
    return jnp.maximum(-log_p, 0), residuals


@functools.partial(jax.custom_vjp, nondiff_argnums=(8, 9, 10))
def negative_log_likelihood(
    encoder: jax.Array,
    predictor: jax.Array,
    weight: jax.Array,
    bias: jax.Array,
    labels: jax.Array,
    logit_lengths: jax.Array,
    label_lengths: jax.Array,
    kept: jax.Array,
    blank: int,
    activation: _Activation,
    chunk: int,
) -> jax.Array:
    """``-log p(labels | joiner)`` per sequence ``[B]``, with the logits in blocks of frames.

    Args:
      encoder: ``[B, T, H]``, zero past each sequence's frames and in dropped sequences.
      predictor: ``[B, U1, H]``, zero past each sequence's labels and in dropped sequences.
      weight: ``[H, V]``; bias: ``[V]``.
      labels: ``[B, U]`` int32; ids outside ``[0, V)`` are never emitted.
      logit_lengths, label_lengths: ``[B]`` int32.
      kept: ``[B]`` bool (unused here: dropped sequences have zero inputs and a zero
        cotangent).
      blank: the blank class (static); activation: ``σ`` (static); chunk: ``C`` (static).
    """
    inputs = (encoder, predictor, weight, bias, labels, logit_lengths, label_lengths, kept)
    return _forward(*inputs, blank, activation, chunk)[0]


def _bwd(
    blank: int, activation: _Activation, chunk: int, residuals: _Residuals, cotangent: jax.Array
) -> tuple:
    r = residuals
    num_frames = r.encoder.shape[1]
    posteriors = rnnt.transition_posteriors(
        r.lattice, r.alpha, r.log_p, r.logit_lengths, r.label_lengths
    )
    blocked = (
        _blocks(r.encoder, chunk),
        _blocks(posteriors[0], chunk),
        _blocks(posteriors[1], chunk),
        _blocks(r.log_normalizer, chunk),
    )
    everywhere = jnp.ones((r.encoder.shape[0], chunk, r.predictor.shape[1]), bool)
    no_clamp = jnp.zeros((), r.weight.dtype)

    def block(carry: tuple, inputs: tuple) -> tuple[tuple, jax.Array]:
        d_weight, d_bias, d_predictor = carry
        encoder_block, blank_posterior, label_posterior, log_normalizer = inputs
        hidden, activation_vjp = jax.vjp(activation, _summed(encoder_block, r.predictor))
        logits = _logits(hidden, r.weight, r.bias)
        d_logits = rnnt.logit_cotangent(
            logits,
            log_normalizer,
            (blank_posterior, label_posterior),
            r.labels,
            everywhere,
            cotangent,
            no_clamp,
            blank,
            True,
        )
        d_weight = d_weight + jnp.einsum("bcuh,bcuv->hv", hidden, d_logits)
        d_bias = d_bias + jnp.sum(d_logits, axis=(0, 1, 2))
        (d_summed,) = activation_vjp(jnp.einsum("bcuv,hv->bcuh", d_logits, r.weight))
        d_predictor = d_predictor + jnp.sum(d_summed, axis=1)
        return (d_weight, d_bias, d_predictor), jnp.sum(d_summed, axis=2)

    start = (jnp.zeros_like(r.weight), jnp.zeros_like(r.bias), jnp.zeros_like(r.predictor))
    start = vary_like(start, *blocked, r.predictor, cotangent)
    (d_weight, d_bias, d_predictor), d_encoder = jax.lax.scan(block, start, blocked)
    d_encoder = _unblock(d_encoder, num_frames)
    # The projection is shared by the batch: its cotangents sum over a batch split on devices.
    d_weight, d_bias = sum_to(d_weight, r.weight), sum_to(d_bias, r.bias)
    return d_encoder, d_predictor, d_weight, d_bias, None, None, None, None


negative_log_likelihood.defvjp(_forward, _bwd)

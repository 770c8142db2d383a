"""The RNN-T negative log-likelihood: the lattice's forward–backward over anti-diagonals.

Notation inside the kernel: ``B`` batch, ``T`` frames, ``U`` labels (``U1 = U + 1`` label
positions ``u = 0..U``), ``V`` classes, ``D = T + U1`` anti-diagonals ``n = t + u``.

The transducer lattice (Graves 2012) has a node per (frame ``t``, labels emitted ``u``).
From node (t, u) a blank moves to (t + 1, u) with log-probability ``b(t, u)`` and the next
label ``y_u`` moves to (t, u + 1) with ``l(t, u)``; the paths start at (0, 0) and end with
the blank out of (T_b - 1, U_b). Both predecessors of a node lie on the previous
anti-diagonal, so the recursions run as a ``lax.scan`` over the ``D`` anti-diagonals, each
step a vectorized update of the ``[B, U1]`` nodes on it: T + U steps, not T · U. The
emissions are *skewed* once (``[D, B, U1]``: entry ``[n, b, u]`` is node (n - u, u); -inf
off the lattice) so that each step reads one row.

The gradient is hand-written (``jax.custom_vjp``). The backward pass runs the beta
recursion over the same diagonals and forms the posterior of each transition,
``exp(α(t, u) + b(t, u) + β(t + 1, u) - log p)`` for the blank and
``exp(α(t, u) + l(t, u) + β(t, u + 1) - log p)`` for the label. With the log-softmax fused,
the gradient of ``-log p`` with respect to the logits is then the closed form
``(g_b + g_l) · softmax - g_b · [v = blank] - g_l · [v = y_u]`` (the node occupancy times
the softmax, minus the transitions taken); unfused (the logits are log-probabilities), the
softmax term drops. No autodiff tape, and one elementwise pass writes the gradient.

Memory: the lattice arrays (emissions, alphas, betas and posteriors) are ``B · D · U1``
floats each, and the log-normalizers ``B · T · U1``; besides the logits and the gradient
nothing of size ``B · T · U1 · V`` exists (the cast from half precision and the log-softmax
are fused into the reductions and the gradient's single pass, and the padding is masked in
the reductions' ``[B, T, U1]`` results, not in a copy of the logits).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxloss._labels import valid_class_ids
from jaxloss._numerics import fast_logaddexp, logsumexp
from jaxloss._sharding import vary_like

_NEG_INF = -jnp.inf
# Diagonals per loop iteration: each step is small ([B, U1]), so the loop's overhead counts
# (measured on CPU: 4 is about 1.5x faster than 1, more gains nothing).
_UNROLL = 1


class Lattice(NamedTuple):
    """Skewed emissions ``[D, B, U1]``: the blank's and the next label's log-probabilities."""

    blank: jax.Array
    label: jax.Array


def node_mask(
    logit_lengths: jax.Array, label_lengths: jax.Array, kept: jax.Array, shape: tuple[int, int]
) -> jax.Array:
    """``[B, T, U1]``: the nodes of each kept sequence's lattice, ``t < T_b`` and ``u <= U_b``."""
    num_frames, positions = shape
    frames = jnp.arange(num_frames)[None, :, None] < logit_lengths[:, None, None]
    labels = jnp.arange(positions)[None, None, :] <= label_lengths[:, None, None]
    return frames & labels & kept[:, None, None]


def padded_labels(labels: jax.Array, num_classes: int) -> tuple[jax.Array, jax.Array]:
    """Labels ``[B, U1]`` safe to gather (clipped, a last position for ``u = U``) and which of
    them are classes (an id outside ``[0, V)``, and position ``U``, are never emitted)."""
    labels = jnp.pad(labels, ((0, 0), (0, 1)), constant_values=-1)
    return jnp.clip(labels, 0, num_classes - 1).astype(jnp.int32), valid_class_ids(
        labels, num_classes
    )


def _computed(logits: jax.Array) -> jnp.dtype:
    """float32 for half precision (float64 stays float64)."""
    return jnp.promote_types(logits.dtype, jnp.float32)


def skew(x: jax.Array) -> jax.Array:
    """``[B, T, U1]`` to the anti-diagonals ``[D, B, U1]``: entry ``[n, b, u]`` is node
    ``(n - u, u)``, -inf where that is off the lattice."""
    num_frames, positions = x.shape[1:]
    diagonals = jnp.arange(num_frames + positions)[:, None]
    frames = diagonals - jnp.arange(positions)[None, :]
    on = (frames >= 0) & (frames < num_frames)
    gathered = x[:, jnp.clip(frames, 0, num_frames - 1), jnp.arange(positions)[None, :]]
    return jnp.transpose(jnp.where(on[None], gathered, _NEG_INF), (1, 0, 2))


def unskew(x: jax.Array, num_frames: int) -> jax.Array:
    """The anti-diagonals ``[D, B, U1]`` back to the nodes ``[B, T, U1]``."""
    positions = x.shape[-1]
    frames, labels = jnp.arange(num_frames)[:, None], jnp.arange(positions)[None, :]
    return jnp.transpose(x[frames + labels, :, labels], (2, 0, 1))


def _shift(x: jax.Array, by: int) -> jax.Array:
    """``x[..., u - by]`` along the label positions (last axis), -inf where that falls outside."""
    keep = ((0, 0),) * (x.ndim - 1)
    if by > 0:
        return jnp.pad(x[..., :-by], (*keep, (by, 0)), constant_values=_NEG_INF)
    return jnp.pad(x[..., -by:], (*keep, (0, -by)), constant_values=_NEG_INF)


def alphas(lattice: Lattice) -> jax.Array:
    """``α`` on every anti-diagonal ``[D, B, U1]``: the log-probability of reaching each
    node, ``α(t, u) = lae(α(t - 1, u) + b(t - 1, u), α(t, u - 1) + l(t, u - 1))``, α(0, 0) = 0."""
    _, batch, positions = lattice.blank.shape
    start = jnp.where(jnp.arange(positions) == 0, 0.0, _NEG_INF).astype(lattice.blank.dtype)
    start = vary_like(jnp.broadcast_to(start, (batch, positions)), *lattice)

    def step(alpha: jax.Array, emit: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array]:
        blank, label = emit
        return fast_logaddexp(alpha + blank, _shift(alpha + label, 1)), alpha

    return jax.lax.scan(step, start, (lattice.blank, lattice.label), unroll=_UNROLL)[1]


def log_likelihood(
    lattice: Lattice, alpha: jax.Array, logit_lengths: jax.Array, label_lengths: jax.Array
) -> jax.Array:
    """``log p(y | x)`` ``[B]``: α at (T_b - 1, U_b) plus its final blank; -inf with no frames."""
    rows = jnp.arange(alpha.shape[1])
    last = jnp.maximum(logit_lengths - 1, 0) + label_lengths
    end = alpha[last, rows, label_lengths] + lattice.blank[last, rows, label_lengths]
    return jnp.where(logit_lengths > 0, end, _NEG_INF)


def transition_posteriors(
    lattice: Lattice,
    alpha: jax.Array,
    log_p: jax.Array,
    logit_lengths: jax.Array,
    label_lengths: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The posteriors of each node's blank and label transition, ``[B, T, U1]`` each.

    Runs the beta recursion ``β(t, u) = lae(b(t, u) + β(t + 1, u), l(t, u) + β(t, u + 1))``
    over the anti-diagonals in reverse, with β = 0 at the virtual node (T_b, U_b) after the
    final blank and -inf off each sequence's lattice (so padding never flows back). 0 for a
    sequence with log p = -inf (no frames).
    """
    num_diagonals, batch, positions = alpha.shape
    label_positions = jnp.arange(positions)[None, :]
    frame_ends, label_ends = logit_lengths[:, None], label_lengths[:, None]

    def on_lattice(n: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The nodes of diagonal ``n`` on each lattice ``[B, U1]``, and the virtual end."""
        frames = n - label_positions
        on = (frames >= 0) & (frames < frame_ends) & (label_positions <= label_ends)
        return on, (frames == frame_ends) & (label_positions == label_ends)

    def step(beta_next: jax.Array, inputs: tuple[jax.Array, ...]) -> tuple[jax.Array, jax.Array]:
        blank, label, n = inputs
        beta = fast_logaddexp(blank + beta_next, label + _shift(beta_next, -1))
        on, end = on_lattice(n)
        return jnp.where(on, beta, jnp.where(end, 0.0, _NEG_INF)), beta_next

    start = vary_like(jnp.full((batch, positions), _NEG_INF, alpha.dtype), alpha)
    diagonals = jnp.arange(num_diagonals)
    _, beta_next = jax.lax.scan(step, start, (*lattice, diagonals), reverse=True)
    on = jax.vmap(lambda n: on_lattice(n)[0])(diagonals)
    # Each node's two transitions, vectorized over the whole lattice. Off the lattice α may
    # be finite and lead into the virtual end node: no posterior there.
    finite = jnp.isfinite(log_p)
    log_p = jnp.where(finite, log_p, 0)[None, :, None]
    on = on & finite[None, :, None]
    blank_posterior = jnp.where(on, jnp.exp(alpha + lattice.blank + beta_next - log_p), 0)
    label_posterior = jnp.exp(alpha + lattice.label + _shift(beta_next, -1) - log_p)
    label_posterior = jnp.where(on, label_posterior, 0)
    num_frames = num_diagonals - positions
    return unskew(blank_posterior, num_frames), unskew(label_posterior, num_frames)


def emissions(
    logits: jax.Array,
    labels: jax.Array,
    label_ids: jax.Array,
    nodes: jax.Array,
    blank: int,
    fused: bool,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The blank's and the next label's log-probabilities ``[B, T, U1]`` and the
    log-normalizers (0 unfused), from logits ``[B, T, U1, V]``; 0 off the lattice.

    The reductions read the logits as they are and the masking is applied to their
    ``[B, T, U1]`` results, so the padding (any value, NaN included) never reaches a
    lattice node and no masked copy of the logits is made: the cast from half precision
    and the log-softmax fuse into the reductions, and nothing of size ``[B, T, U1, V]`` is
    written.
    """
    logits = logits.astype(_computed(logits))
    if fused:
        log_normalizer = jnp.where(nodes, logsumexp(logits), 0)
    else:
        log_normalizer = jnp.zeros(logits.shape[:-1], logits.dtype)
    blank_lp = jnp.where(nodes, logits[..., blank] - log_normalizer, 0)
    label_lp = jnp.take_along_axis(logits, labels[:, None, :, None], axis=-1)[..., 0]
    label_lp = jnp.where(nodes, label_lp - log_normalizer, 0)
    label_lp = jnp.where(label_ids[:, None, :], label_lp, _NEG_INF)
    return blank_lp, label_lp, log_normalizer


def logit_cotangent(
    logits: jax.Array,
    log_normalizer: jax.Array,
    posteriors: tuple[jax.Array, jax.Array],
    labels: jax.Array,
    nodes: jax.Array,
    scale: jax.Array,
    clamp: jax.Array,
    blank: int,
    fused: bool,
) -> jax.Array:
    """``d(-log p) / d logits`` ``[B, T, U1, V]`` in one elementwise pass, each element
    clipped to ``[-clamp, clamp]`` when ``clamp > 0`` (per sequence, as torchaudio), then
    times the sequence's cotangent ``scale`` ``[B]``; exactly 0 off the lattice."""
    blank_posterior, label_posterior = (p[..., None] for p in posteriors)
    classes = jnp.arange(logits.shape[-1])[None, None, None, :]
    taken = blank_posterior * (classes == blank) + label_posterior * (
        classes == labels[:, None, :, None]
    )
    if fused:
        z = jnp.where(nodes[..., None], logits.astype(_computed(logits)), 0)
        softmax = jnp.exp(z - log_normalizer[..., None])
        gradient = (blank_posterior + label_posterior) * softmax - taken
    else:
        gradient = -taken
    gradient = jnp.where(clamp > 0, jnp.clip(gradient, -clamp, clamp), gradient)
    gradient = jnp.where(nodes[..., None], gradient * scale[:, None, None, None], 0)
    return gradient.astype(logits.dtype)


def _nll(log_p: jax.Array, fused: bool) -> jax.Array:
    # With the log-softmax, -log p >= 0 exactly and rounding may not know that; unfused
    # scores need not be normalized, so their "loss" may be negative.
    return jnp.maximum(-log_p, 0) if fused else -log_p


class _Residuals(NamedTuple):
    logits: jax.Array
    labels: jax.Array
    nodes: jax.Array
    logit_lengths: jax.Array
    label_lengths: jax.Array
    log_normalizer: jax.Array
    lattice: Lattice
    alpha: jax.Array
    log_p: jax.Array
    clamp: jax.Array


def _forward(
    logits: jax.Array,
    labels: jax.Array,
    logit_lengths: jax.Array,
    label_lengths: jax.Array,
    kept: jax.Array,
    clamp: jax.Array,
    blank: int,
    fused: bool,
) -> tuple[jax.Array, _Residuals]:
    nodes = node_mask(logit_lengths, label_lengths, kept, (logits.shape[1], logits.shape[2]))
    safe_labels, label_ids = padded_labels(labels, logits.shape[-1])
    blank_lp, label_lp, log_normalizer = emissions(
        logits, safe_labels, label_ids, nodes, blank, fused
    )
    lattice = Lattice(skew(blank_lp), skew(label_lp))
    alpha = alphas(lattice)
    log_p = log_likelihood(lattice, alpha, logit_lengths, label_lengths)
    residuals = _Residuals(
        logits,
        safe_labels,
        nodes,
        logit_lengths,
        label_lengths,
        log_normalizer,
        lattice,
        alpha,
        log_p,
        clamp,
    )
    return _nll(log_p, fused), residuals


@functools.partial(jax.custom_vjp, nondiff_argnums=(6, 7))
def negative_log_likelihood(
    logits: jax.Array,
    labels: jax.Array,
    logit_lengths: jax.Array,
    label_lengths: jax.Array,
    kept: jax.Array,
    clamp: jax.Array,
    blank: int,
    fused: bool,
) -> jax.Array:
    """``-log p(labels | logits)`` per sequence ``[B]``; +inf for a sequence with no frames.

    Args:
      logits: ``[B, T, U1, V]``, any float dtype (half precision computed in float32).
      labels: ``[B, U]`` int32; ids outside ``[0, V)`` are never emitted.
      logit_lengths: ``[B]`` int32 in ``[0, T]``.
      label_lengths: ``[B]`` int32 in ``[0, U]``.
      kept: ``[B]`` bool, the sequences that count; the others get a zero gradient.
      clamp: scalar; when > 0, each element of a sequence's gradient is clipped to
        ``[-clamp, clamp]``.
      blank: the blank class, in ``[0, V)`` (static).
      fused: apply the log-softmax over ``V`` (static).
    """
    return _forward(logits, labels, logit_lengths, label_lengths, kept, clamp, blank, fused)[0]


def _bwd(blank: int, fused: bool, residuals: _Residuals, cotangent: jax.Array) -> tuple:
    r = residuals
    posteriors = transition_posteriors(
        r.lattice, r.alpha, r.log_p, r.logit_lengths, r.label_lengths
    )
    gradient = logit_cotangent(
        r.logits,
        r.log_normalizer,
        posteriors,
        r.labels,
        r.nodes,
        cotangent,
        r.clamp,
        blank,
        fused,
    )
    return gradient, None, None, None, None, None


negative_log_likelihood.defvjp(_forward, _bwd)

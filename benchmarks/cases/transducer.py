"""The RNN-T loss against the same loss written as a ``lax.scan`` over the frames and
differentiated by JAX, and the blockwise joint (``linear_rnnt``) against the materialized
logits.

No JAX library has an RNN-T loss and torchaudio does not install beside torch 2.13 here, so
the baselines are what a user would write (both in this module, both checked equal to
``jaxloss.rnnt`` before timing):

- *scan over T, then U*: the alpha recursion as a ``lax.scan`` over the frames with a
  ``lax.scan`` over the label positions inside (the textbook double loop, T · U steps);
- *scan over T, U vectorized*: a ``lax.scan`` over the frames in which each row of the
  lattice is one closed form, ``α(t, ·) = c + cumlogsumexp(α(t-1, ·) + b(t-1, ·) - c)``
  with ``c`` the cumulative label log-probabilities (T steps).

Both take the log-softmax of the logits with ``jax.nn.log_softmax`` and let autodiff form
its gradient. Rows: the full loss at (B, T, U, V) = (8, 200, 50, 128) and (4, 500, 100,
1024) (the issue's shapes); the lattice alone (``fused_log_softmax=False`` with V = 2, where
the log-softmax work vanishes and only the recursions remain); and ``linear_rnnt`` against
``rnnt`` of the materialized joiner logits at V = 4096 (memory is the point there).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _harness import Case

import jaxloss

ORDER = 17


def _emissions(logits, labels, blank, fused):
    log_probs = jax.nn.log_softmax(logits, axis=-1) if fused else logits
    blank_lp = log_probs[..., blank]
    label_lp = jnp.take_along_axis(log_probs[:, :, :-1], labels[:, None, :, None], axis=-1)
    return blank_lp, label_lp[..., 0]


def _end(alpha, blank_lp, logit_lengths, label_lengths):
    """-Σ_b (α(T_b - 1, U_b) + b(T_b - 1, U_b)) from the alphas ``[T, B, U+1]``."""
    rows = jnp.arange(blank_lp.shape[0])
    last = logit_lengths - 1
    return -jnp.sum(alpha[last, rows, label_lengths] + blank_lp[rows, last, label_lengths])


def scan_t_then_u(logits, labels, logit_lengths, label_lengths, blank=0, fused=True):
    """The double loop: a scan over frames, a scan over label positions inside."""
    blank_lp, label_lp = _emissions(logits, labels, blank, fused)
    batch, _, positions = blank_lp.shape
    start = jnp.where(jnp.arange(positions) == 0, 0.0, -jnp.inf)

    def frame(alpha_before, inputs):
        blank_before, label_t, t = inputs
        from_before = jnp.where(t > 0, alpha_before + blank_before, start[None, :])

        def position(left, x):
            from_before_u, label_left = x
            alpha = jnp.logaddexp(from_before_u, left + label_left)
            return alpha, alpha

        label_left = jnp.pad(label_t, ((0, 0), (1, 0)), constant_values=-jnp.inf)
        _, alpha = jax.lax.scan(
            position, jnp.full((batch,), -jnp.inf), (from_before.T, label_left.T)
        )
        return alpha.T, alpha.T

    blank_before = jnp.pad(blank_lp[:, :-1], ((0, 0), (1, 0), (0, 0)))
    xs = (jnp.moveaxis(blank_before, 1, 0), jnp.moveaxis(label_lp, 1, 0))
    _, alpha = jax.lax.scan(
        frame, jnp.zeros((batch, positions)), (*xs, jnp.arange(blank_lp.shape[1]))
    )
    return _end(alpha, blank_lp, logit_lengths, label_lengths)


def scan_t_rows(logits, labels, logit_lengths, label_lengths, blank=0, fused=True):
    """A scan over frames, each lattice row in closed form (a cumulative logsumexp)."""
    blank_lp, label_lp = _emissions(logits, labels, blank, fused)
    batch = blank_lp.shape[0]

    def cumulative(label_t):
        return jnp.concatenate([jnp.zeros((batch, 1)), jnp.cumsum(label_t, axis=1)], axis=1)

    def frame(alpha_before, inputs):
        blank_before, label_t = inputs
        c = cumulative(label_t)
        alpha = c + jax.lax.cumlogsumexp(alpha_before + blank_before - c, axis=1)
        return alpha, alpha

    first = cumulative(label_lp[:, 0])
    xs = (jnp.moveaxis(blank_lp[:, :-1], 1, 0), jnp.moveaxis(label_lp[:, 1:], 1, 0))
    _, rest = jax.lax.scan(frame, first, xs)
    alpha = jnp.concatenate([first[None], rest], axis=0)
    return _end(alpha, blank_lp, logit_lengths, label_lengths)


def _inputs(rng, batch, frames, labels, classes):
    logits = rng.normal(size=(batch, frames, labels + 1, classes)).astype(np.float32)
    targets = rng.integers(1, classes, size=(batch, labels)).astype(np.int32)
    logit_lengths = rng.integers(frames // 2, frames + 1, size=batch).astype(np.int32)
    label_lengths = rng.integers(labels // 2, labels + 1, size=batch).astype(np.int32)
    return [logits, targets, logit_lengths, label_lengths]


def _loss_case(rng, shape, fused=True, rounds=None) -> Case:
    def ours(logits, targets, logit_lengths, label_lengths):
        return jaxloss.rnnt(
            logits,
            targets,
            logit_lengths=logit_lengths,
            label_lengths=label_lengths,
            fused_log_softmax=fused,
            reduction="sum",
        )

    what = "rnnt (sum)" if fused else "rnnt lattice alone (fused_log_softmax=False, V = 2)"
    return Case(
        "transducer",
        f"{what}, (B, T, U, V) = {shape}",
        _inputs(rng, *shape),
        (0,),
        {
            "jaxloss": ours,
            "scan over T, then U": lambda *a: scan_t_then_u(*a, fused=fused),
            "scan over T, U vectorized": lambda *a: scan_t_rows(*a, fused=fused),
        },
        rtol=1e-4,
        rounds=rounds,
    )


def _joint_case(rng, shape, rounds=None) -> Case:
    batch, frames, labels, joint, classes = shape
    encoder = rng.normal(size=(batch, frames, joint)).astype(np.float32)
    predictor = rng.normal(size=(batch, labels + 1, joint)).astype(np.float32)
    weight = (rng.normal(size=(joint, classes)) / np.sqrt(joint)).astype(np.float32)
    _, targets, logit_lengths, label_lengths = _inputs(rng, batch, frames, labels, 2)
    targets = rng.integers(1, classes, size=targets.shape).astype(np.int32)

    def blockwise(encoder, predictor, weight, targets, logit_lengths, label_lengths):
        return jaxloss.linear_rnnt(
            encoder,
            predictor,
            weight,
            targets,
            logit_lengths=logit_lengths,
            label_lengths=label_lengths,
            reduction="sum",
        )

    def materialized(encoder, predictor, weight, targets, logit_lengths, label_lengths):
        logits = jnp.tanh(encoder[:, :, None] + predictor[:, None]) @ weight
        return jaxloss.rnnt(
            logits,
            targets,
            logit_lengths=logit_lengths,
            label_lengths=label_lengths,
            reduction="sum",
        )

    return Case(
        "transducer",
        f"linear_rnnt (sum), (B, T, U, H, V) = {shape}",
        [encoder, predictor, weight, targets, logit_lengths, label_lengths],
        (0, 1, 2),
        {"jaxloss": blockwise, "materialized logits (jaxloss.rnnt)": materialized},
        rtol=1e-4,
        note="both jaxloss: memory is the point",
        rounds=rounds,
    )


def cases(quick: bool, rng) -> list[Case]:
    if quick:
        return [
            _loss_case(rng, (4, 40, 10, 32)),
            _loss_case(rng, (4, 40, 10, 2), fused=False),
            _joint_case(rng, (2, 20, 8, 32, 512)),
        ]
    return [
        _loss_case(rng, (8, 200, 50, 128)),
        _loss_case(rng, (4, 500, 100, 1024), rounds=3),
        _loss_case(rng, (8, 200, 50, 2), fused=False),
        _loss_case(rng, (4, 500, 100, 2), fused=False),
        _joint_case(rng, (4, 200, 50, 256, 4096), rounds=3),
    ]

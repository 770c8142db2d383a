"""The cross-entropy of probability targets with ``0 · log 0 = 0``, at the cost of the plain
expression.

Notation: logits ``z`` and targets ``t`` ``[..., C]`` (classes last), ``lse = logsumexp(z)``,
``p = softmax(z)``. Per row: ``ℓ = Σ_c t_c (lse − z_c)``.

A class left out of the softmax (``z_c = −inf``) under a target ``t_c = 0`` makes the plain
expression ``0 · inf = NaN``; its true term is 0. A select inside the class sum stops
XLA:CPU from fusing the sum with its operands (the select materializes a ``[..., C]``
buffer: about 30% more time for the value and gradient at 4096 × 1000). So the forward pass
computes the plain sum and recomputes it with the exception only when a row came out NaN (a
``lax.cond`` over the whole batch; under ``vmap`` both branches run).

Derivatives (``jax.custom_jvp``, so forward mode and higher orders work), written so that no
select enters the gradient with respect to the logits:
``dℓ = (Σ_c t_c)(p · dz) − t · dz + Σ_c dt_c (lse − z_c)``, the last term 0 where a class is
left out. Transposed: ``∂ℓ/∂z = (Σ t) p − t``, finite (``p = 0`` where ``z = −inf``), and
``∂ℓ/∂t = lse − z``, 0 where a class is left out (its one-sided derivative is +inf). The
rule spells the log-sum-exp out so that ``p`` reuses its exponentials.

Memory and passes: the exponentials ``[..., C]`` are the one residual; the value and the
gradient read ``z`` and ``t`` in fewer passes than autodiff of the plain expression (which
also materializes ``t`` times the cotangent).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero


def _neg_log_probs(logits: jax.Array, targets: jax.Array, log_normalizer: jax.Array) -> jax.Array:
    """``lse − z`` per class, 0 where a class is left out (target 0, logit −inf)."""
    left_out = (targets == 0) & (logits == -jnp.inf)
    return jnp.where(left_out, 0, log_normalizer[..., None] - logits)


def _loss(logits: jax.Array, targets: jax.Array, log_normalizer: jax.Array) -> jax.Array:
    loss = jnp.sum(targets * (log_normalizer[..., None] - logits), axis=-1)
    return jax.lax.cond(
        jnp.any(jnp.isnan(loss)),
        lambda: jnp.sum(targets * _neg_log_probs(logits, targets, log_normalizer), axis=-1),
        lambda: loss,
    )


@jax.custom_jvp
def soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``Σ_c t_c (lse − z_c)`` per row of classes-last ``logits`` and ``targets`` (module doc)."""
    return _loss(logits, targets, jax.nn.logsumexp(logits, axis=-1))


def _soft_cross_entropy_jvp(primals: tuple, tangents: tuple) -> tuple:
    logits, targets = primals
    logits_dot, targets_dot = tangents
    # logsumexp spelled out, so that the gradient reuses its exponentials: one exp pass.
    shift = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    shift = jnp.where(jnp.isfinite(shift), shift, 0)
    exps = jnp.exp(logits - shift)
    total = jnp.sum(exps, axis=-1)
    log_normalizer = shift[..., 0] + jnp.log(total)
    loss = _loss(logits, targets, log_normalizer)
    loss_dot = jnp.zeros_like(loss)
    if not isinstance(logits_dot, SymbolicZero):
        mean_logit_dot = jnp.sum(exps * logits_dot, axis=-1) / total
        loss_dot = jnp.sum(targets, axis=-1) * mean_logit_dot - jnp.sum(
            targets * logits_dot, axis=-1
        )
    if not isinstance(targets_dot, SymbolicZero):
        neg_log_probs = _neg_log_probs(logits, targets, log_normalizer)
        loss_dot = loss_dot + jnp.sum(targets_dot * neg_log_probs, axis=-1)
    return loss, loss_dot


soft_cross_entropy.defjvp(_soft_cross_entropy_jvp, symbolic_zeros=True)

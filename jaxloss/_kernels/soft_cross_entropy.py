"""The cross-entropy of probability targets with ``0 · log 0 = 0``, at the cost of the plain
expression.

Notation: logits ``z`` and targets ``t`` ``[..., C]`` (classes last), ``lse = logsumexp(z)``,
``p = softmax(z)``. Per row: ``ℓ = Σ_c t_c (lse − z_c)``.

A class left out of the softmax (``z_c = −inf``, or the lowest float as ``ranking_softmax``'s
padding, where ``lse − z_c`` overflows once ``lse`` passes about 1e31) under a target
``t_c = 0`` makes the plain expression ``0 · inf = NaN``; its true term is 0. A select
inside the class sum stops XLA:CPU from fusing the sum with its operands (the select
materializes a ``[..., C]`` buffer: about 30% more time for the value and gradient at
4096 × 1000). So the forward pass computes the plain sum and recomputes it with the
exception only when a row came out NaN (a ``lax.cond`` over the whole batch; under
``vmap`` both branches run).

Derivatives (``jax.custom_jvp``, so forward mode and higher orders work), written so that no
select enters the gradient with respect to the logits:
``dℓ = (Σ_c t_c)(p · dz) − t · dz + Σ_c dt_c (lse − z_c)``, the last term 0 where a class is
left out. Transposed: ``∂ℓ/∂z = (Σ t) p − t``, finite (``p = 0`` where ``z = −inf``), and
``∂ℓ/∂t = lse − z``, 0 where a class is left out (its one-sided derivative is +inf). A
row with every class at −inf has no softmax; its gradient is 0. The rule spells the
log-sum-exp out so that ``p`` reuses its exponentials.

Memory and passes: the exponentials ``[..., C]`` are the one residual; the value and the
gradient read ``z`` and ``t`` in fewer passes than autodiff of the plain expression (which
also materializes ``t`` times the cotangent).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from jaxloss import _numerics


def _neg_log_probs(logits: jax.Array, targets: jax.Array, log_normalizer: jax.Array) -> jax.Array:
    """``lse − z`` per class, 0 where a class is left out (target 0, logit −inf or the
    lowest float, where ``lse − z`` may overflow)."""
    left_out = (targets == 0) & (logits <= jnp.finfo(logits.dtype).min)
    return jnp.where(left_out, 0, log_normalizer[..., None] - logits)


def _loss(logits: jax.Array, targets: jax.Array, log_normalizer: jax.Array) -> jax.Array:
    loss = _numerics.class_sum(targets * (log_normalizer[..., None] - logits))
    return jax.lax.cond(
        jnp.any(jnp.isnan(loss)),
        lambda: _numerics.class_sum(targets * _neg_log_probs(logits, targets, log_normalizer)),
        lambda: loss,
    )


@jax.custom_jvp
def soft_cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """``Σ_c t_c (lse − z_c)`` per row of classes-last ``logits`` and ``targets`` (module doc)."""
    return _loss(logits, targets, _numerics.logsumexp(logits))


def _soft_cross_entropy_jvp(primals: tuple, tangents: tuple) -> tuple:
    logits, targets = primals
    logits_dot, targets_dot = tangents
    # logsumexp spelled out, so that the gradient reuses its exponentials: one exp pass.
    shift = jax.lax.stop_gradient(_numerics.class_max(logits)[..., None])
    shift = jnp.where(jnp.isfinite(shift), shift, 0)
    exps = jnp.exp(logits - shift)
    total = _numerics.class_sum(exps)
    log_normalizer = shift[..., 0] + jnp.log(total)
    loss = _loss(logits, targets, log_normalizer)
    loss_dot = jnp.zeros_like(loss)
    if not isinstance(logits_dot, SymbolicZero):
        # A row with every class left out has no softmax: its derivative is 0, not 0 / 0.
        mean_logit_dot = _numerics.class_sum(exps * logits_dot) / jnp.where(total == 0, 1, total)
        loss_dot = _numerics.class_sum(targets) * mean_logit_dot - _numerics.class_sum(
            targets * logits_dot
        )
    if not isinstance(targets_dot, SymbolicZero):
        neg_log_probs = _neg_log_probs(logits, targets, log_normalizer)
        loss_dot = loss_dot + _numerics.class_sum(targets_dot * neg_log_probs)
    return loss, loss_dot


soft_cross_entropy.defjvp(_soft_cross_entropy_jvp, symbolic_zeros=True)

"""Token-level policy losses of RL fine-tuning: PPO's clipped objective, KL penalties, GRPO.

``ppo_clip`` and ``kl_penalty`` take per-token log-probabilities ``[batch, time]`` (any
shape; inputs broadcast) and a ``where`` mask of padding; their ``"mean"`` is over the valid
tokens of the whole batch (and of every device with ``axis_name``), as TRL's masked mean.
``grpo_advantages`` turns rewards into the advantages ``ppo_clip`` takes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._deprecation import renamed
from jaxloss._reduce import masked_inputs, reduce_loss, safe_divide
from jaxloss._sharding import AxisName

KL_ESTIMATORS = ("k1", "k2", "k3")
ADVANTAGE_SCALES = ("group", "batch", "none")


def ppo_clip(
    logprobs: ArrayLike,
    old_logprobs: ArrayLike,
    advantages: ArrayLike,
    *,
    epsilon: ArrayLike = 0.2,
    dual_clip: ArrayLike | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""PPO's clipped surrogate objective, as a loss per token (Schulman et al. 2017).

    .. math::
      \ell_t = -\min\big(\rho_t A_t,\ \mathrm{clip}(\rho_t, 1 - \epsilon, 1 + \epsilon) A_t\big),
      \qquad \rho_t = \exp(\log\pi_t - \log\pi^{old}_t)

    per token, as TRL's PPO and GRPO trainers; ``"mean"`` is over the unmasked tokens of
    the batch (with ``axis_name``, of all devices). With ``dual_clip = c > 1`` (Ye et al.
    2020) the loss of a negative advantage is also capped at ``−c A``: without it a token
    whose probability grew enormously (ρ → ∞) with ``A < 0`` has an unbounded loss (it
    overflows to inf, never NaN).

    The branch that ``min`` discards is never evaluated at an overflowing ratio, so the
    gradient is finite wherever the loss is, including log-probability differences of ±1e4.

    Args:
      logprobs: ``[batch, time]`` token log-probabilities under the current policy.
      old_logprobs: the same under the policy that sampled the tokens (broadcastable).
      advantages: advantages, broadcastable; one per sequence as ``[batch]`` (spread over
        its tokens, as GRPO's) or ``[batch, 1]``. A ``[batch]`` against ``[batch, time]``
        log-probabilities with ``batch == time`` is ambiguous: ValueError (as for ``where``).
      epsilon: ε in [0, 1], the clipping range.
      dual_clip: c > 1, or None.
      where: optional boolean mask of valid tokens (the broadcast shape).
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the broadcast shape).
      axis_name: mapped axis over which the batch is split; the mean is then global.

    Returns:
      A float32 scalar, or the per-token losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss, math
      >>> logp, old = jnp.array([[math.log(1.5), 0.0]]), jnp.zeros((1, 2))
      >>> jaxloss.ppo_clip(logp, old, jnp.array([[1.0]]), reduction="none")  # ρ = 1.5, 1
      Array([[-1.2, -1. ]], dtype=float32)

    References:
      Schulman, Wolski, Dhariwal, Radford and Klimov, "Proximal Policy Optimization
      Algorithms", arXiv:1707.06347, 2017. Ye et al., "Mastering Complex Control in MOBA
      Games with Deep Reinforcement Learning", AAAI 2020 (dual clip).
    """
    _checks.in_range(epsilon, "epsilon", low=0, high=1)
    if dual_clip is not None:
        _checks.in_range(dual_clip, "dual_clip", low=1, low_open=True)
    advantages = _checks.leading_axes(advantages, "advantages", np.shape(logprobs), "`logprobs`")
    (logprobs, old_logprobs, advantages), shape = _checks.broadcast_floats(
        allow_inf=("logprobs", "old_logprobs"),
        logprobs=logprobs,
        old_logprobs=old_logprobs,
        advantages=advantages,
    )
    mask, (logprobs, old_logprobs, advantages) = masked_inputs(
        where, shape, logprobs, old_logprobs, advantages
    )
    log_ratio = logprobs - old_logprobs
    epsilon = jnp.asarray(epsilon, log_ratio.dtype)
    low, high = jnp.log1p(-epsilon), jnp.log1p(epsilon)
    # min(ρA, clip(ρ)A) takes ρA when A > 0 and ρ ≤ 1 + ε, or A < 0 and ρ ≥ 1 − ε; for
    # A = 0 both are 0 and the clipped one is taken, so an overflowing ρ never meets 0.
    unclipped = ((advantages > 0) & (log_ratio <= high)) | ((advantages < 0) & (log_ratio >= low))
    loss_clipped = -jnp.exp(jnp.clip(log_ratio, low, high)) * advantages
    if dual_clip is not None:
        cap = jnp.log(jnp.asarray(dual_clip, log_ratio.dtype))
        capped = (advantages < 0) & (log_ratio > cap)
        unclipped = unclipped & ~capped
        loss_clipped = jnp.where(capped, -jnp.exp(cap) * advantages, loss_clipped)
    safe_log_ratio = jnp.where(unclipped, log_ratio, 0)
    loss = jnp.where(unclipped, -jnp.exp(safe_log_ratio) * advantages, loss_clipped)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def kl_penalty(
    logprobs: ArrayLike,
    ref_logprobs: ArrayLike,
    *,
    estimator: str = "k1",
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Per-token estimators of KL(π ‖ π_ref) from sampled tokens (Schulman 2020).

    With :math:`d = \log\pi - \log\pi_{ref}` at tokens sampled from π:

    * ``"k1"``: :math:`d` (unbiased, high variance, can be negative);
    * ``"k2"``: :math:`\tfrac12 d^2` (biased, low variance, ≥ 0);
    * ``"k3"``: :math:`e^{-d} - 1 + d` (unbiased, ≥ 0; GRPO's penalty), computed with
      ``expm1`` so small ``d`` keep their precision.

    ``k3`` grows as ``e^{-d}``: at ``d = −1e4`` it overflows to inf (never NaN).

    Args:
      logprobs: ``[batch, time]`` token log-probabilities under the policy.
      ref_logprobs: the same under the reference model (broadcastable).
      estimator: ``"k1"``, ``"k2"`` or ``"k3"``.
      where: optional boolean mask of valid tokens.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (the broadcast shape).
      axis_name: mapped axis over which the batch is split; the mean is then global.

    Returns:
      A float32 scalar, or the per-token values for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logp, ref = jnp.array([0.0]), jnp.array([-1.0])
      >>> [round(float(jaxloss.kl_penalty(logp, ref, estimator=k)), 4) for k in ("k1", "k2", "k3")]
      [1.0, 0.5, 0.3679]

    References:
      Schulman, "Approximating KL Divergence", 2020,
      http://joschu.net/blog/kl-approx.html. Shao et al., "DeepSeekMath", arXiv:2402.03300,
      2024.
    """
    _checks.choice(estimator, KL_ESTIMATORS, "estimator")
    (logprobs, ref_logprobs), shape = _checks.broadcast_floats(
        allow_inf=True, logprobs=logprobs, ref_logprobs=ref_logprobs
    )
    mask, (logprobs, ref_logprobs) = masked_inputs(where, shape, logprobs, ref_logprobs)
    d = logprobs - ref_logprobs
    if estimator == "k1":
        loss = d
    elif estimator == "k2":
        loss = 0.5 * jnp.square(d)
    else:  # d = −inf (an impossible token): inf − inf; d floored there, the value +inf
        loss = jnp.expm1(-d) + jnp.maximum(d, jnp.finfo(d.dtype).min)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


@renamed(scale="scale_rewards")
def grpo_advantages(
    rewards: ArrayLike,
    *,
    scale_rewards: str | bool = "group",
    eps: ArrayLike = 1e-4,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""GRPO's group-relative advantages (Shao et al. 2024), as TRL's ``GRPOTrainer``.

    .. math::
      A_{g,i} = \frac{r_{g,i} - \operatorname{mean}_i r_{g,i}}{\operatorname{std}_i r_{g,i}
      + \epsilon}

    for the ``i``-th of the completions sampled for prompt ``g``, the groups along the last
    axis. The standard deviation is the unbiased one (torch's default, which TRL uses).
    ``scale_rewards="batch"`` divides by the standard deviation of all rewards instead, and
    ``"none"`` does not divide (Dr. GRPO, Liu et al. 2025). A group with one valid
    completion has advantage 0 (no spread to compare against; torch gives NaN).

    Args:
      rewards: ``[..., group_size]`` rewards, one group of completions per row.
      scale_rewards: ``"group"``, ``"batch"`` or ``"none"`` (TRL's
        ``scale_rewards``; as in TRL, ``True`` means ``"group"`` and ``False`` ``"none"``).
      eps: ε ≥ 0, added to the standard deviation.
      where: optional boolean mask of valid completions (the rewards' shape); masked
        entries are left out of the statistics and get advantage 0.

    Returns:
      Advantages of the rewards' shape, float32. Constants for the policy loss: no gradient
      flows into the rewards.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> jaxloss.grpo_advantages(jnp.array([[1.0, 0.0, 0.0, 1.0]]), eps=0.0).round(4)
      Array([[ 0.866, -0.866, -0.866,  0.866]], dtype=float32)

    References:
      Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open
      Language Models", arXiv:2402.03300, 2024. Liu et al., "Understanding R1-Zero-Like
      Training: A Critical Perspective", arXiv:2503.20783, 2025.
    """
    _checks.in_range(eps, "eps", low=0)
    if isinstance(scale_rewards, bool):
        scale_rewards = "group" if scale_rewards else "none"
    _checks.choice(scale_rewards, ADVANTAGE_SCALES, "scale_rewards")
    rewards = jax.lax.stop_gradient(_checks.float_array(rewards, "rewards", allow_int=True))
    if rewards.ndim < 1:
        raise ValueError("`rewards` needs a group axis [..., group_size], got a scalar.")
    where, (rewards,) = masked_inputs(where, rewards.shape, rewards)
    counted = (
        jnp.ones(rewards.shape, rewards.dtype) if where is None else where.astype(rewards.dtype)
    )

    def centred_and_std(axis: int | tuple[int, ...]) -> tuple[jax.Array, jax.Array]:
        count = jnp.sum(counted, axis=axis, keepdims=True)
        mean = safe_divide(jnp.sum(rewards, axis=axis, keepdims=True), count)
        centred = (rewards - mean) * counted
        variance = safe_divide(jnp.sum(jnp.square(centred), axis=axis, keepdims=True), count - 1)
        return centred, jnp.sqrt(jnp.where(count > 1, variance, 0))

    centred, group_std = centred_and_std(-1)
    if scale_rewards == "none":
        return centred
    if scale_rewards == "batch":
        _, std = centred_and_std(tuple(range(rewards.ndim)))
    else:
        std = group_std
    return safe_divide(centred, std + jnp.asarray(eps, rewards.dtype))

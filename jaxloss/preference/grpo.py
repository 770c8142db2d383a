"""GRPO's full policy objective and its variants (DAPO, Dr. GRPO, GSPO, CISPO), as TRL's.

``grpo`` takes per-token log-probabilities ``[batch, tokens]`` and one advantage per
sequence (``grpo_advantages``), and puts together what TRL's ``GRPOTrainer._compute_loss``
does: the importance ratio per token or per sequence, the clip, the KL penalty, and the
aggregation over tokens and sequences.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._reduce import masked_inputs, reduce_loss, safe_divide
from jaxloss._sharding import AxisName, global_sum
from jaxloss.preference.policy import KL_ESTIMATORS, kl_penalty

IMPORTANCE_SAMPLING = ("token", "sequence")
CLIPS = ("ppo", "cispo")
AGGREGATIONS = ("sequence_mean", "token_mean", "constant", "sequence_sum")


def grpo(
    logprobs: ArrayLike,
    old_logprobs: ArrayLike,
    advantages: ArrayLike,
    *,
    ref_logprobs: ArrayLike | None = None,
    beta: ArrayLike = 0.0,
    kl_estimator: str = "k3",
    kl_importance_weight: bool = False,
    epsilon_low: ArrayLike = 0.2,
    epsilon_high: ArrayLike | None = None,
    delta: ArrayLike | None = None,
    importance_sampling: str = "token",
    clip: str = "ppo",
    loss_aggregation: str = "sequence_mean",
    max_completion_length: int | None = None,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""GRPO's policy loss (Shao et al. 2024) with the variants of TRL's ``GRPOTrainer``.

    With :math:`A_i` the advantage of sequence ``i`` and the importance weight
    :math:`w_{i,t} = \exp(\log\pi_{i,t} - \log\pi^{old}_{i,t})` (``"token"``) or
    :math:`w_{i,t} = \exp\big(\operatorname{mean}_{t'}(\log\pi_{i,t'} -
    \log\pi^{old}_{i,t'})\big)` over the sequence's valid tokens (``"sequence"``, GSPO),
    each token's loss is

    .. math::
      \ell_{i,t} = -\min\big(\min(w_{i,t}, \delta) A_i,\
      \mathrm{clip}(w_{i,t}, 1 - \epsilon_{low}, 1 + \epsilon_{high}) A_i\big)
      + \beta\, w_{i,t}\, \mathrm{KL}_{i,t}

    (``clip="ppo"``; without ``delta`` the first term is :math:`w A`), or, for
    ``clip="cispo"`` (MiniMax 2025), :math:`-\operatorname{sg}[\min(w_{i,t},
    \epsilon_{high})]\, A_i \log\pi_{i,t} + \beta w_{i,t} \mathrm{KL}_{i,t}`, whose gradient
    is the clipped weight times the policy gradient of every token (none is dropped).
    :math:`\mathrm{KL}` is ``kl_penalty``'s estimator of KL(π ‖ π_ref) (TRL: ``"k3"``), and
    the factor :math:`w` on it is TRL's ``use_bias_correction_kl`` (differentiable).

    ``loss_aggregation`` sets ``"mean"``:

    * ``"sequence_mean"`` (GRPO): each sequence's mean over its tokens, then the mean over
      sequences; longer sequences weigh less per token.
    * ``"token_mean"`` (DAPO): the mean over every valid token of the batch, and of every
      device with ``axis_name``.
    * ``"constant"`` (Dr. GRPO): the sum over tokens divided by ``max_completion_length``,
      then the mean over sequences: no length bias, a constant scale.
    * ``"sequence_sum"`` (LUSPO): each sequence's sum over its tokens, then the mean. This
      is TRL's ``"luspo"`` where TRL's ``per_token_loss`` is one value per sequence
      (``importance_sampling="sequence"`` with ``beta=0``, the paper's setting); otherwise
      TRL's code multiplies every token's loss, masked ones included, by its sequence's
      length and averages over all batch × token entries.

    Sequences without a valid token are left out of the mean over sequences (as if
    dropped), and with ``axis_name`` every mean is over the whole batch of all devices.

    TRL 1.16 ``GRPOConfig`` → this function: ``loss_type="grpo"`` →
    ``loss_aggregation="sequence_mean"``; ``"dapo"`` (TRL's default) → ``"token_mean"``
    with ``axis_name``; ``"bnpo"`` → ``"token_mean"`` without it; ``"dr_grpo"`` →
    ``"constant"``; ``"luspo"`` → ``"sequence_sum"``; ``"cispo"`` → ``clip="cispo"``,
    ``loss_aggregation="token_mean"``; ``epsilon`` → ``epsilon_low``; ``epsilon_high``,
    ``delta`` and ``beta`` as named; ``importance_sampling_level`` →
    ``importance_sampling``; ``use_bias_correction_kl`` → ``kl_importance_weight``. Two
    differences: TRL's mean over sequences counts a sequence with no valid token (one
    masked by ``mask_truncated_completions``) as a 0; and for CISPO, where ``epsilon_high``
    is the cap on the weight itself (ScaleRL's ε_max, 5.0 recommended), TRL falls back to
    ``epsilon`` when it is unset, here it must be given.

    Args:
      logprobs: ``[batch, tokens]`` log-probabilities of the sampled tokens under the
        policy being trained (any leading shape; the last axis is the tokens). −inf (an
        impossible token) gives each term its limit as π → 0: 0 for CISPO's
        :math:`w\log\pi`; the KL's own (−inf for ``"k1"``, +inf for ``"k2"`` and
        ``"k3"``); with ``kl_importance_weight``, 0 for the weight times ``"k1"`` or
        ``"k2"`` and π_ref/π_old for the weighted ``"k3"`` (+inf with a sequence's weight).
      old_logprobs: the same under the policy that sampled them (broadcastable).
      advantages: ``[batch]``, one per sequence (``grpo_advantages``), or per token with
        the shape of ``logprobs``. Constants: pass them without gradient.
      ref_logprobs: the same under the reference model; needed when ``beta`` is not 0.
      beta: β, the weight of the KL penalty.
      kl_estimator: ``"k1"``, ``"k2"`` or ``"k3"`` (see ``kl_penalty``).
      kl_importance_weight: multiply the KL of each token by its importance weight (TRL's
        ``use_bias_correction_kl``, False by default as TRL's and the GRPO paper's KL).
      epsilon_low: :math:`\epsilon_{low}`, the clip below 1 (TRL's ``epsilon``).
      epsilon_high: :math:`\epsilon_{high}`, the clip above 1 (DAPO's clip-higher, 0.28);
        None: ``epsilon_low``. For CISPO the largest weight, required.
      delta: δ > 1, the cap on the unclipped weight (INTELLECT-2's two-sided clip; above
        :math:`1 + \epsilon_{high}`, or it clips the positive advantages too), or None.
      importance_sampling: ``"token"`` or ``"sequence"`` (GSPO).
      clip: ``"ppo"`` or ``"cispo"``.
      loss_aggregation: ``"sequence_mean"``, ``"token_mean"``, ``"constant"`` or
        ``"sequence_sum"``.
      max_completion_length: the constant of ``"constant"`` (TRL's
        ``max_completion_length``).
      where: optional boolean mask of valid tokens, the shape of ``logprobs``.
      reduction: ``"mean"`` (the ``loss_aggregation``), ``"sum"`` (over the valid tokens)
        or ``"none"``.
      axis_name: mapped axis over which the batch is split; the means are then global.

    Returns:
      A float32 scalar, or for ``reduction="none"`` the per-token losses
      :math:`\ell_{i,t}` ``[batch, tokens]``, 0 at masked tokens (per token, not per
      sequence, so that ``where`` has the shape of the values it masks; TRL's
      ``per_token_loss``).

    Examples:
      >>> import jax.numpy as jnp, jaxloss, math
      >>> logp, old = jnp.array([[math.log(1.5), 0.0]]), jnp.zeros((1, 2))
      >>> jaxloss.grpo(logp, old, jnp.array([1.0]), reduction="none")  # w = 1.5, 1
      Array([[-1.2, -1. ]], dtype=float32)
      >>> round(float(jaxloss.grpo(logp, old, jnp.array([1.0]))), 4)
      -1.1
      >>> jaxloss.grpo(logp, old, jnp.array([1.0]), clip="cispo", epsilon_high=5.0,
      ...              reduction="none").round(4)  # -w log π
      Array([[-0.6082, -0.    ]], dtype=float32)

    References:
      Shao et al., "DeepSeekMath", arXiv:2402.03300, 2024. Yu et al., "DAPO: An Open-Source
      LLM Reinforcement Learning System at Scale", arXiv:2503.14476, 2025. Liu et al.,
      "Understanding R1-Zero-Like Training: A Critical Perspective", arXiv:2503.20783,
      2025. Zheng et al., "Group Sequence Policy Optimization", arXiv:2507.18071, 2025.
      MiniMax, "MiniMax-M1", arXiv:2506.13585, 2025. Prime Intellect, "INTELLECT-2",
      arXiv:2505.07291, 2025. https://github.com/huggingface/trl (``GRPOTrainer``, 1.16).
    """
    _checks.choice(importance_sampling, IMPORTANCE_SAMPLING, "importance_sampling")
    _checks.choice(clip, CLIPS, "clip")
    _checks.choice(loss_aggregation, AGGREGATIONS, "loss_aggregation")
    _checks.choice(kl_estimator, KL_ESTIMATORS, "kl_estimator")
    _checks.in_range(epsilon_low, "epsilon_low", low=0, high=1)
    _checks.in_range(beta, "beta", low=0)
    if epsilon_high is None:
        if clip == "cispo":
            raise ValueError(
                "clip='cispo' needs `epsilon_high`, the largest importance weight (ScaleRL's "
                "ε_max, 5.0 recommended)."
            )
        epsilon_high = epsilon_low
    _checks.in_range(epsilon_high, "epsilon_high", low=0, low_open=clip == "cispo")
    if delta is not None:
        if clip == "cispo":
            raise ValueError("`delta` clips the PPO objective; clip='cispo' has none.")
        _checks.in_range(delta, "delta", low=1, low_open=True)
    if loss_aggregation == "constant":
        if max_completion_length is None:
            raise ValueError("loss_aggregation='constant' needs `max_completion_length`.")
        _checks.in_range(max_completion_length, "max_completion_length", low=0, low_open=True)
    with_kl = not _checks.is_static_zero(beta)
    if with_kl and ref_logprobs is None:
        raise ValueError("`ref_logprobs` is needed for the KL penalty (beta != 0).")

    logprobs = _checks.float_array(logprobs, "logprobs", allow_inf=True)
    if logprobs.ndim < 1:
        raise ValueError("`logprobs` needs a token axis [..., tokens], got a scalar.")
    advantages = _checks.float_array(advantages, "advantages")
    arrays = {"logprobs": logprobs, "old_logprobs": old_logprobs, "advantages": advantages}
    if ref_logprobs is not None:  # checked even when beta = 0 leaves it unused
        arrays["ref_logprobs"] = ref_logprobs
    if advantages.ndim < logprobs.ndim:  # one per sequence: spread over its tokens
        # Checked against the sequences first, so that a misfit is reported with the shape
        # given, not as [..., 1].
        tokens_shape = _checks.broadcast_shapes(
            **{name: a for name, a in arrays.items() if name != "advantages"}
        )
        sequence_shape = tokens_shape[:-1]
        try:
            fits = np.broadcast_shapes(advantages.shape, sequence_shape) == sequence_shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"`advantages` {advantages.shape}, one per sequence, does not broadcast to "
                f"the sequences {sequence_shape} of the log-probabilities {tokens_shape}: give "
                "one advantage per sequence, or one per token."
            )
        arrays["advantages"] = advantages[..., None]
    # An impossible token (−inf) may stand in the current or reference log-probabilities,
    # not in the sampler's (it drew the token).
    floats, shape = _checks.broadcast_floats(allow_inf=("logprobs", "ref_logprobs"), **arrays)
    mask, floats = masked_inputs(where, shape, *floats)
    logprobs, old_logprobs, advantages = floats[:3]
    valid = jnp.ones(shape, bool) if mask is None else mask

    log_weight = logprobs - old_logprobs
    if importance_sampling == "sequence":
        tokens = jnp.sum(valid, axis=-1, keepdims=True).astype(log_weight.dtype)
        log_weight = jnp.broadcast_to(
            safe_divide(jnp.sum(log_weight, axis=-1, keepdims=True), tokens), shape
        )
    dtype = log_weight.dtype
    epsilon_high = jnp.asarray(epsilon_high, dtype)
    # An impossible token (log π = −inf) has the weight 0 (its sequence too, for "sequence"):
    # w log π and w times k1 or k2 tend to 0, where 0 · (±inf) would be NaN.
    impossible = logprobs == -jnp.inf
    if clip == "cispo":
        capped = jax.lax.stop_gradient(jnp.exp(jnp.minimum(log_weight, jnp.log(epsilon_high))))
        # log π read as 0 there, before the product: its gradient −sg[w] A is 0 as well.
        loss = -capped * advantages * jnp.where(impossible, 0, logprobs)
    else:
        clipped = jnp.clip(
            log_weight, jnp.log1p(-jnp.asarray(epsilon_low, dtype)), jnp.log1p(epsilon_high)
        )
        weight = log_weight
        if delta is not None:
            # torch's clamp, as TRL's: the full gradient where w equals δ.
            weight = _numerics.clamp(weight, high=jnp.log(jnp.asarray(delta, dtype)))
        # −min(wA, clip(w)A) is −A·min(w, clip(w)) for A > 0 and −A·max(·) for A < 0: taken
        # on the logarithms, the exponential only meets the branch kept, and for A = 0 the
        # bounded clipped one, so an overflowing weight never meets a 0. Selected, not
        # jnp.minimum/maximum, whose gradient multiplies the branch left out by 0 (an
        # overflowing weight's inf times 0 is NaN); a tie takes the unclipped branch, whose
        # gradient is torch's there (min splits it, and clamp passes it at its bounds).
        log_kept = jnp.where(
            advantages > 0,
            jnp.where(weight <= clipped, weight, clipped),
            jnp.where(advantages < 0, jnp.where(weight >= clipped, weight, clipped), clipped),
        )
        loss = -jnp.exp(log_kept) * advantages
    if with_kl:
        ref_logprobs = floats[3]
        weighted_k3 = kl_importance_weight and kl_estimator == "k3"
        far: jax.Array | None
        if weighted_k3:
            # k3 = e^{-d} - 1 + d (d = logprobs - ref) overflows, or its product with a
            # weight that underflows is 0 · inf, far below the reference: there the weighted
            # KL is e^{log_weight - d} + w (d - 1), and the product form reads d = 0 instead.
            far = logprobs - ref_logprobs < -40
        else:
            # w d and w d²/2 at an impossible token: read at d = 0, their limit 0.
            far = impossible if kl_importance_weight else None
        near_logprobs = logprobs if far is None else jnp.where(far, ref_logprobs, logprobs)
        kl = kl_penalty(near_logprobs, ref_logprobs, estimator=kl_estimator, reduction="none")
        if kl_importance_weight:
            kl_weight = jnp.exp(log_weight)
            kl = kl * kl_weight
        if weighted_k3:
            assert far is not None
            # An impossible token (log-probability −inf): w = 0 against e^{−d} = inf. With
            # a token's own weight log w − d is ref − old exactly; a sequence's weight
            # (the mean over its tokens) falls slower than e^{−d} grows: +inf. w (d − 1)
            # tends to 0 either way.
            d = jnp.where(far & ~impossible, logprobs - ref_logprobs, -40)
            limit = ref_logprobs - old_logprobs
            if importance_sampling == "sequence":
                limit = jnp.where(tokens > 1, jnp.inf, limit)
            exponent = jnp.where(impossible, limit, log_weight - d)
            kl = jnp.where(far, jnp.exp(exponent) + kl_weight * (d - 1), kl)
        loss = loss + jnp.asarray(beta, dtype) * kl

    if reduction != "mean" or loss_aggregation == "token_mean":
        return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)
    loss = jnp.where(valid, loss, 0)
    tokens = jnp.sum(valid, axis=-1).astype(dtype)
    if loss_aggregation == "sequence_mean":
        per_sequence = safe_divide(jnp.sum(loss, axis=-1), tokens)
    else:
        per_sequence = jnp.sum(loss, axis=-1)
        if loss_aggregation == "constant":
            per_sequence = per_sequence / jnp.asarray(max_completion_length, dtype)
    sequences = jnp.sum(tokens > 0).astype(dtype)
    return safe_divide(
        global_sum(jnp.sum(per_sequence), axis_name), global_sum(sequences, axis_name)
    )

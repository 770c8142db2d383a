"""Preference and RLHF losses: reward models, direct preference optimization, PPO, KL.

Shapes: sequence-level losses (``bradley_terry``, ``dpo``, ``simpo``, ``orpo``, ``kto``) take
one value per sequence or pair, ``[batch]``, and return ``[batch]`` for
``reduction="none"``. Token-level losses (``ppo_clip``, ``kl_penalty``) take per-token
log-probabilities ``[batch, time]`` (any shape; inputs broadcast, so per-sequence advantages
``[batch, 1]`` spread over the tokens) and a ``where`` mask of padding; their ``"mean"`` is
over the valid tokens of the whole batch (and of every device with ``axis_name``), as TRL's
masked mean.

Log-probabilities come from ``token_logprobs`` / ``sequence_logprobs``, which read the
target token's log-softmax without materializing a ``[batch, time, vocab]`` copy.

Every function is finite for log-probabilities of ±1e4 and for masked entries holding
anything: masked entries are replaced before any exponential, so they get exactly zero
gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks
from jaxloss._reduce import AxisName, masked_inputs, reduce_loss, safe_divide, valid_class_ids

DPO_LOSS_TYPES = ("sigmoid", "hinge", "ipo")
KL_ESTIMATORS = ("k1", "k2", "k3")
ADVANTAGE_SCALES = ("group", "batch", "none")


def _smoothed_logistic(z: jax.Array, label_smoothing: ArrayLike) -> jax.Array:
    """``−(1 − ε) log σ(z) − ε log σ(−z)``: logistic loss with the label 1 smoothed to 1 − ε."""
    if _checks.is_static_zero(label_smoothing):
        return jax.nn.softplus(-z)
    epsilon = jnp.asarray(label_smoothing, z.dtype)
    return (1 - epsilon) * jax.nn.softplus(-z) + epsilon * jax.nn.softplus(z)


def bradley_terry(
    chosen_rewards: ArrayLike,
    rejected_rewards: ArrayLike,
    *,
    margin: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""The Bradley–Terry loss of a reward model on preference pairs.

    .. math::
      \ell = -\log \sigma(r_c - r_r - m)

    the negative log-likelihood that the chosen answer wins under the Bradley–Terry model
    (Ouyang et al. 2022's reward model; ``margin`` as Llama 2's, a per-pair number for how
    strongly the annotators preferred it), as TRL's ``RewardTrainer``.

    Numerics: computed as ``softplus(−(r_c − r_r − m))``, exact and finite for all finite
    rewards (never the log of a saturated sigmoid); it grows linearly in the gap of a wrongly
    ordered pair. Nothing is clamped.

    Args:
      chosen_rewards: ``[batch]`` rewards of the preferred answers.
      rejected_rewards: ``[batch]`` rewards of the others.
      margin: m, a number or per-pair array.
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> round(float(jaxloss.bradley_terry(jnp.array([1.0]), jnp.array([1.0]))), 4)  # log 2
      0.6931

    References:
      Bradley and Terry, "Rank Analysis of Incomplete Block Designs", Biometrika 1952.
      Ouyang et al., "Training language models to follow instructions with human
      feedback", NeurIPS 2022. Touvron et al., "Llama 2", arXiv:2307.09288, 2023.
    """
    (chosen, rejected, margin), shape = _checks.broadcast_floats(
        chosen_rewards=chosen_rewards, rejected_rewards=rejected_rewards, margin=margin
    )
    mask, (chosen, rejected, margin) = masked_inputs(where, shape, chosen, rejected, margin)
    loss = jax.nn.softplus(-(chosen - rejected - margin))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def dpo(
    policy_chosen_logps: ArrayLike,
    policy_rejected_logps: ArrayLike,
    ref_chosen_logps: ArrayLike,
    ref_rejected_logps: ArrayLike,
    *,
    beta: ArrayLike = 0.1,
    label_smoothing: ArrayLike = 0.0,
    loss_type: str = "sigmoid",
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""Direct preference optimization (Rafailov et al. 2023) and its IPO and hinge variants.

    With the log-ratio margin
    :math:`h = (\log\pi_c - \log\pi_r) - (\log\pi^{ref}_c - \log\pi^{ref}_r)`, as TRL's
    ``DPOTrainer``:

    * ``"sigmoid"``: :math:`-(1-\varepsilon)\log\sigma(\beta h) - \varepsilon\log\sigma(-\beta h)`
      (ε = ``label_smoothing``: conservative DPO, labels flipped with probability ε);
    * ``"hinge"``: :math:`\max(0, 1 - \beta h)` (SLiC);
    * ``"ipo"``: :math:`(h - \tfrac{1}{2\beta})^2` (Azar et al. 2023; TRL feeds it
      log-probabilities averaged over tokens: ``sequence_logprobs(..., average=True)``).

    The policy's implicit reward of an answer is ``β (log π − log π_ref)``; DPO fits the
    Bradley–Terry model on those rewards without a separate reward model.

    Numerics: ``"sigmoid"`` is written with ``softplus`` and ``"hinge"`` with ``relu``, so both
    are finite for all finite inputs and grow at most linearly in ``β h``. ``"ipo"`` is a
    square: +inf once ``|h − 1/(2β)|`` passes ~1.8e19, and for ``β = 0`` (``1/(2β)`` is inf).

    Args:
      policy_chosen_logps: ``[batch]`` summed token log-probabilities of the chosen answers
        under the policy (``sequence_logprobs``).
      policy_rejected_logps: ``[batch]`` the same for the rejected answers.
      ref_chosen_logps: ``[batch]`` chosen answers under the frozen reference model.
      ref_rejected_logps: ``[batch]`` rejected answers under the reference model.
      beta: β, the strength of the KL regularization toward the reference.
      label_smoothing: ε for ``"sigmoid"``; must be 0 for the other loss types.
      loss_type: ``"sigmoid"``, ``"hinge"`` or ``"ipo"``.
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> pc, pr, rc, rr = (jnp.array([v]) for v in (-10.0, -12.0, -11.0, -11.0))
      >>> round(float(jaxloss.dpo(pc, pr, rc, rr, beta=0.5)), 4)  # h = 2: −log σ(1)
      0.3133
      >>> float(jaxloss.dpo(pc, pr, rc, rr, beta=0.5, loss_type="ipo"))  # (2 − 1)²
      1.0

    References:
      Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a
      Reward Model", NeurIPS 2023. Azar et al., "A General Theoretical Paradigm to
      Understand Learning from Human Preferences", arXiv:2310.12036, 2023. Zhao et al.,
      "SLiC-HF: Sequence Likelihood Calibration with Human Feedback", arXiv:2305.10425,
      2023. Mitchell, "A note on DPO with noisy preferences and relationship to IPO", 2023.
    """
    _checks.in_range(beta, "beta", low=0, low_open=True)
    _checks.in_range(label_smoothing, "label_smoothing", low=0, high=1)
    _checks.choice(loss_type, DPO_LOSS_TYPES, "loss_type")
    if loss_type != "sigmoid" and not _checks.is_static_zero(label_smoothing):
        raise ValueError(
            f"`label_smoothing` applies to loss_type='sigmoid' only, got {label_smoothing} "
            f"with loss_type={loss_type!r}."
        )
    (pc, pr, rc, rr), shape = _checks.broadcast_floats(
        policy_chosen_logps=policy_chosen_logps,
        policy_rejected_logps=policy_rejected_logps,
        ref_chosen_logps=ref_chosen_logps,
        ref_rejected_logps=ref_rejected_logps,
    )
    mask, (pc, pr, rc, rr) = masked_inputs(where, shape, pc, pr, rc, rr)
    beta = jnp.asarray(beta, pc.dtype)
    margin = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        loss = _smoothed_logistic(beta * margin, label_smoothing)
    elif loss_type == "hinge":
        loss = jax.nn.relu(1 - beta * margin)
    else:
        loss = jnp.square(margin - 1 / (2 * beta))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def simpo(
    chosen_logps: ArrayLike,
    rejected_logps: ArrayLike,
    *,
    beta: ArrayLike = 2.0,
    gamma: ArrayLike = 0.5,
    label_smoothing: ArrayLike = 0.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""SimPO (Meng et al. 2024): reference-free preference optimization.

    .. math::
      \ell = -\log \sigma\big(\beta (\bar\ell_c - \bar\ell_r) - \gamma\big)

    with :math:`\bar\ell` the policy's log-probability of an answer averaged over its
    tokens (``sequence_logprobs(..., average=True)``): the length-normalized likelihood is
    the implicit reward, and γ a target reward margin. ``label_smoothing`` smooths as in
    ``dpo``. The defaults are the paper's typical β = 2 and TRL's γ = 0.5 (TRL's
    ``simpo_gamma``; its ``gamma_beta_ratio`` form is γ/β).

    Numerics: written with ``softplus``, so it is exact and finite for all finite inputs and
    grows at most linearly in ``β (ℓ_c − ℓ_r) − γ``; nothing is clamped.

    Args:
      chosen_logps: ``[batch]`` average token log-probabilities of the chosen answers.
      rejected_logps: ``[batch]`` the same for the rejected answers.
      beta: β, the reward scale.
      gamma: γ, the target margin.
      label_smoothing: ε.
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> loss = jaxloss.simpo(jnp.array([-1.0]), jnp.array([-1.25]), beta=2.0, gamma=0.5)
      >>> round(float(loss), 4)  # −log σ(2·0.25 − 0.5) = log 2
      0.6931

    References:
      Meng, Xia and Chen, "SimPO: Simple Preference Optimization with a Reference-Free
      Reward", NeurIPS 2024.
    """
    (chosen, rejected), shape = _checks.broadcast_floats(
        chosen_logps=chosen_logps, rejected_logps=rejected_logps
    )
    mask, (chosen, rejected) = masked_inputs(where, shape, chosen, rejected)
    z = jnp.asarray(beta, chosen.dtype) * (chosen - rejected) - jnp.asarray(gamma, chosen.dtype)
    loss = _smoothed_logistic(z, label_smoothing)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


# ORPO's odds p / (1 − p) need p < 1: average log-probabilities are capped just below 0.
_MAX_AVERAGE_LOGP = -1e-6


def _log_odds(average_logp: jax.Array) -> jax.Array:
    """``log(p / (1 − p))`` for ``p = exp(average_logp)``, stable across the whole range."""
    x = jnp.minimum(average_logp, _MAX_AVERAGE_LOGP)
    # log(1 − e^x): expm1 near 0, log1p for very negative x (Mächler 2012).
    near_zero = x > -0.6931471805599453
    log1m_exp = jnp.where(
        near_zero,
        jnp.log(-jnp.expm1(jnp.where(near_zero, x, -1.0))),
        jnp.log1p(-jnp.exp(jnp.where(near_zero, -1.0, x))),
    )
    return x - log1m_exp


def orpo(
    chosen_logps: ArrayLike,
    rejected_logps: ArrayLike,
    *,
    beta: ArrayLike = 0.1,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""ORPO (Hong et al. 2024): supervised fine-tuning plus an odds-ratio preference term.

    .. math::
      \ell = -\bar\ell_c + \beta \cdot -\log\sigma\Big(\log\frac{\mathrm{odds}_c}
      {\mathrm{odds}_r}\Big), \qquad \mathrm{odds} = \frac{p}{1 - p},\ p = e^{\bar\ell}

    with :math:`\bar\ell` the average token log-probability of an answer
    (``sequence_logprobs(..., average=True)``). The first term is the chosen answer's
    negative log-likelihood per token (the SFT loss), the second penalizes the rejected
    answer's odds relative to the chosen one's; no reference model. β is the paper's λ
    (TRL's ``beta``, default 0.1). TRL averages the SFT term over all chosen tokens of the
    batch; here it is per pair, which is the same when the answers have equal lengths.

    ``log(1 − p)`` is computed stably; average log-probabilities above ``-1e-6`` are capped
    there (p = 1 has infinite odds).

    Args:
      chosen_logps: ``[batch]`` average token log-probabilities of the chosen answers.
      rejected_logps: ``[batch]`` the same for the rejected answers.
      beta: λ, the weight of the odds-ratio term.
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-pair losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> import math
      >>> logp = jnp.array([math.log(0.5)])  # odds 1 for both: −log σ(0) = log 2
      >>> round(float(jaxloss.orpo(logp, logp, beta=1.0)), 4)  # log 2 + log 2
      1.3863

    References:
      Hong, Lee and Thorne, "ORPO: Monolithic Preference Optimization without Reference
      Model", EMNLP 2024.
    """
    (chosen, rejected), shape = _checks.broadcast_floats(
        chosen_logps=chosen_logps, rejected_logps=rejected_logps
    )
    mask, (chosen, rejected) = masked_inputs(where, shape, chosen, rejected)
    ratio = _log_odds(chosen) - _log_odds(rejected)
    loss = -chosen + jnp.asarray(beta, chosen.dtype) * jax.nn.softplus(-ratio)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def kto(
    policy_logps: ArrayLike,
    ref_logps: ArrayLike,
    desirable: ArrayLike,
    *,
    reference_point: ArrayLike = 0.0,
    beta: ArrayLike = 0.1,
    desirable_weight: ArrayLike = 1.0,
    undesirable_weight: ArrayLike = 1.0,
    where: ArrayLike | None = None,
    reduction: str = "mean",
    axis_name: AxisName = None,
) -> jax.Array:
    r"""KTO (Ethayarajh et al. 2024): preference optimization from unpaired good/bad labels.

    With the implicit reward :math:`r = \log\pi(y|x) - \log\pi_{ref}(y|x)` and the reference
    point :math:`z_0`, as TRL's ``KTOTrainer``:

    .. math::
      \ell = \begin{cases} \lambda_D \big(1 - \sigma(\beta (r - z_0))\big) & y \text{ desirable} \\
      \lambda_U \big(1 - \sigma(\beta (z_0 - r))\big) & y \text{ undesirable} \end{cases}

    :math:`z_0` estimates KL(π ‖ π_ref): TRL uses the batch mean of ``r`` over mismatched
    (prompt, answer) pairs. It enters through ``stop_gradient`` and is clamped at 0, as
    TRL's. Unlike DPO, each example needs only a thumbs up or down.

    Args:
      policy_logps: ``[batch]`` summed token log-probabilities of the answers under the
        policy.
      ref_logps: ``[batch]`` the same under the reference model.
      desirable: ``[batch]`` bool (or 0/1): whether each answer is desirable.
      reference_point: z₀, a scalar (or per-example) KL estimate.
      beta: β.
      desirable_weight: λ_D.
      undesirable_weight: λ_U (the paper balances λ_D n_D / (λ_U n_U) in [1, 4/3]).
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis (or axes) of ``pmap``/``shard_map`` over which the batch is
        split; ``"mean"`` and ``"sum"`` are then those of the global batch.

    Returns:
      A float32 scalar, or the per-example losses for ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logp, ref = jnp.array([-5.0, -5.0]), jnp.array([-5.0, -5.0])
      >>> float(jaxloss.kto(logp, ref, jnp.array([True, False])))  # r = z0: 1 − σ(0)
      0.5

    References:
      Ethayarajh, Xu, Muennighoff, Jurafsky and Kiela, "KTO: Model Alignment as Prospect
      Theoretic Optimization", ICML 2024.
    """
    _checks.in_range(beta, "beta", low=0, low_open=True)
    (policy, ref, point), shape = _checks.broadcast_floats(
        policy_logps=policy_logps, ref_logps=ref_logps, reference_point=reference_point
    )
    desirable = _checks.broadcast_to(jnp.asarray(desirable), shape, "desirable", "policy_logps")
    if not (
        jnp.issubdtype(desirable.dtype, jnp.bool_) or jnp.issubdtype(desirable.dtype, jnp.integer)
    ):
        raise TypeError(f"`desirable` must be boolean (or 0/1 integers), got {desirable.dtype}.")
    desirable = desirable.astype(bool)
    mask, (policy, ref, point) = masked_inputs(where, shape, policy, ref, point)
    beta = jnp.asarray(beta, policy.dtype)
    point = jnp.maximum(jax.lax.stop_gradient(point), 0)
    reward = policy - ref
    loss = jnp.where(
        desirable,
        jnp.asarray(desirable_weight, policy.dtype) * jax.nn.sigmoid(-beta * (reward - point)),
        jnp.asarray(undesirable_weight, policy.dtype) * jax.nn.sigmoid(-beta * (point - reward)),
    )
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


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
      advantages: advantages, broadcastable (``[batch, 1]`` for one per sequence, as GRPO).
      epsilon: ε, the clipping range.
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
    _checks.in_range(epsilon, "epsilon", low=0)
    (logprobs, old_logprobs, advantages), shape = _checks.broadcast_floats(
        logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages
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
        logprobs=logprobs, ref_logprobs=ref_logprobs
    )
    mask, (logprobs, ref_logprobs) = masked_inputs(where, shape, logprobs, ref_logprobs)
    d = logprobs - ref_logprobs
    if estimator == "k1":
        loss = d
    elif estimator == "k2":
        loss = 0.5 * jnp.square(d)
    else:
        loss = jnp.expm1(-d) + d
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


def grpo_advantages(
    rewards: ArrayLike,
    *,
    scale: str = "group",
    eps: ArrayLike = 1e-4,
    where: ArrayLike | None = None,
) -> jax.Array:
    r"""GRPO's group-relative advantages (Shao et al. 2024), as TRL's ``GRPOTrainer``.

    .. math::
      A_{g,i} = \frac{r_{g,i} - \operatorname{mean}_i r_{g,i}}{\operatorname{std}_i r_{g,i}
      + \epsilon}

    for the ``i``-th of the completions sampled for prompt ``g``, the groups along the last
    axis. The standard deviation is the unbiased one (torch's default, which TRL uses).
    ``scale="batch"`` divides by the standard deviation of all rewards instead, and
    ``"none"`` does not divide (Dr. GRPO, Liu et al. 2025). A group with one valid
    completion has advantage 0 (no spread to compare against; torch gives NaN).

    Args:
      rewards: ``[..., group_size]`` rewards, one group of completions per row.
      scale: ``"group"``, ``"batch"`` or ``"none"``.
      eps: ε, added to the standard deviation.
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
    _checks.choice(scale, ADVANTAGE_SCALES, "scale")
    rewards = jax.lax.stop_gradient(_checks.float_array(rewards, "rewards", allow_int=True))
    if rewards.ndim < 1:
        raise ValueError("`rewards` needs a group axis [..., group_size], got a scalar.")
    where, (rewards,) = masked_inputs(where, rewards.shape, rewards)
    counted = (
        jnp.ones(rewards.shape, rewards.dtype) if where is None else where.astype(rewards.dtype)
    )

    def centred_and_std(axis):
        count = jnp.sum(counted, axis=axis, keepdims=True)
        mean = safe_divide(jnp.sum(rewards, axis=axis, keepdims=True), count)
        centred = (rewards - mean) * counted
        variance = safe_divide(jnp.sum(jnp.square(centred), axis=axis, keepdims=True), count - 1)
        return centred, jnp.sqrt(jnp.where(count > 1, variance, 0))

    centred, group_std = centred_and_std(-1)
    if scale == "none":
        return centred
    if scale == "batch":
        _, std = centred_and_std(tuple(range(rewards.ndim)))
    else:
        std = group_std
    return safe_divide(centred, std + jnp.asarray(eps, rewards.dtype))


def token_logprobs(
    logits: ArrayLike, tokens: ArrayLike, *, where: ArrayLike | None = None
) -> jax.Array:
    r"""Log-probability of each token under its logits, without a log-softmax copy.

    .. math::
      \log p_t = z_{t, y_t} - \log\sum_v e^{z_{t,v}}

    read as a gather and a log-sum-exp reduction, so no ``[batch, time, vocab]``
    log-softmax is stored (for the value or the backward pass); the logits may be bfloat16
    (the arithmetic is float32). The logits at position ``t`` must score token ``t``: for a
    causal language model pass ``logits[:, :-1]`` and ``tokens[:, 1:]``.

    Numerics: the token's logit minus a float32 log-sum-exp, so finite for all finite logits
    (no exponential overflows); a −inf logit at the token gives −inf. Masked tokens and ids
    outside ``[0, vocab)`` read 0.

    Args:
      logits: ``[..., time, vocab]`` float.
      tokens: ``[..., time]`` int token ids. Ids outside ``[0, vocab)`` (padding such as
        -100) count as masked.
      where: optional boolean mask ``[..., time]`` of the tokens to keep.

    Returns:
      ``[..., time]`` float32 log-probabilities, 0 at masked tokens.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.log(jnp.array([[[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]]))
      >>> jnp.exp(jaxloss.token_logprobs(logits, jnp.array([[0, 2]])))
      Array([[0.5, 0.8]], dtype=float32)
    """
    return _token_logprobs(*_logits_and_tokens(logits, tokens, where))


def _token_logprobs(logits: jax.Array, tokens: jax.Array, valid: jax.Array) -> jax.Array:
    """``token_logprobs`` of checked inputs, the logits of tokens not ``valid`` zeroed."""
    chosen = jnp.take_along_axis(logits, jnp.where(valid, tokens, 0)[..., None], axis=-1)[..., 0]
    values = chosen.astype(jnp.float32) - jax.nn.logsumexp(logits.astype(jnp.float32), axis=-1)
    return jnp.where(valid, values, 0)


def _logits_and_tokens(logits, tokens, where):
    logits = jnp.asarray(logits)
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(f"`logits` must be a floating-point array, got dtype {logits.dtype}.")
    tokens = _checks.integer_array(tokens, "tokens")
    if logits.ndim < 2 or tokens.shape != logits.shape[:-1]:
        raise ValueError(
            f"`tokens` must have the shape of `logits` {logits.shape} without the vocabulary "
            f"axis, got {tokens.shape}."
        )
    _checks.finite(logits, "logits", allow_inf=True)
    _checks.class_ids(tokens, logits.shape[-1], "tokens", where=_checks.mask(where, tokens.shape))
    # Padding rows may be all -inf (or anything): zeroed first, so no NaN reaches their
    # gradient.
    valid, (logits,) = masked_inputs(
        where, tokens.shape, logits, counted=valid_class_ids(tokens, logits.shape[-1])
    )
    return logits, tokens, valid


def sequence_logprobs(
    logits: ArrayLike,
    tokens: ArrayLike,
    *,
    where: ArrayLike | None = None,
    average: bool = False,
) -> jax.Array:
    r"""Per-sequence log-probability: the sum (or mean) of ``token_logprobs`` over time.

    The input of ``dpo`` and ``kto`` (summed) and of ``simpo``, ``orpo`` and TRL's IPO
    (``average=True``: divided by the number of valid tokens; 0 for a sequence without any).

    Numerics: a sum of ``token_logprobs``, so finite for finite logits and −inf if a kept
    token's logit is −inf; with ``average=True`` a sequence without valid tokens gives 0, not
    NaN.

    Args:
      logits: ``[..., time, vocab]`` float (see ``token_logprobs`` for the alignment).
      tokens: ``[..., time]`` int token ids; ids outside ``[0, vocab)`` count as masked.
      where: optional boolean mask ``[..., time]`` (e.g. the answer's tokens, not the
        prompt's).
      average: divide by the number of valid tokens.

    Returns:
      ``[...]`` float32, one value per sequence.

    Examples:
      >>> import jax.numpy as jnp, jaxloss
      >>> logits = jnp.log(jnp.array([[[0.5, 0.5], [0.25, 0.75]]]))
      >>> float(jnp.exp(jaxloss.sequence_logprobs(logits, jnp.array([[1, 0]]))[0]))  # 0.5·0.25
      0.125
    """
    logits, tokens, valid = _logits_and_tokens(logits, tokens, where)
    total = jnp.sum(_token_logprobs(logits, tokens, valid), axis=-1)
    if not average:
        return total
    return safe_divide(total, jnp.sum(valid, axis=-1).astype(total.dtype))

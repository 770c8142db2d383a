"""Sequence-level preference losses: Bradley–Terry, SimPO, ORPO, KTO (DPO: ``dpo_variants``).

Each takes one value per sequence or pair, ``[batch]`` (log-probabilities from
``logprobs.sequence_logprobs``, or rewards), and returns ``[batch]`` for
``reduction="none"``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxloss import _checks, _numerics
from jaxloss._deprecation import renamed
from jaxloss._reduce import masked_inputs, reduce_loss
from jaxloss._sharding import AxisName


def _smoothed_logistic(z: jax.Array, label_smoothing: ArrayLike) -> jax.Array:
    """``−(1 − ε) log σ(z) − ε log σ(−z)``: logistic loss with the label 1 smoothed to 1 − ε."""
    if _checks.is_static_zero(label_smoothing):
        return _numerics.softplus(-z)
    epsilon = jnp.asarray(label_smoothing, z.dtype)
    return (1 - epsilon) * _numerics.softplus(-z) + epsilon * _numerics.softplus(z)


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
      axis_name: mapped axis of the batch (global mean and sum).

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
    loss = _numerics.softplus(-(chosen - rejected - margin))
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


@renamed(chosen_logps="chosen_logprobs", rejected_logps="rejected_logprobs")
def simpo(
    chosen_logprobs: ArrayLike,
    rejected_logprobs: ArrayLike,
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
      chosen_logprobs: ``[batch]`` average token log-probabilities of the chosen answers.
      rejected_logprobs: ``[batch]`` the same for the rejected answers.
      beta: β > 0, the reward scale.
      gamma: γ, the target margin.
      label_smoothing: ε in [0, 1].
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

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
    _checks.in_range(beta, "beta", low=0, low_open=True)
    _checks.in_range(label_smoothing, "label_smoothing", low=0, high=1)
    (chosen, rejected), shape = _checks.broadcast_floats(
        allow_inf=True, chosen_logprobs=chosen_logprobs, rejected_logprobs=rejected_logprobs
    )
    mask, (chosen, rejected) = masked_inputs(where, shape, chosen, rejected)
    z = jnp.asarray(beta, chosen.dtype) * (chosen - rejected) - jnp.asarray(gamma, chosen.dtype)
    loss = _smoothed_logistic(z, label_smoothing)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


# ORPO's odds p / (1 − p) need p < 1: average log-probabilities are capped just below 0.
_MAX_AVERAGE_LOGP = -1e-6


def _log_odds(average_logp: jax.Array) -> jax.Array:
    """``log(p / (1 − p))`` for ``p = exp(average_logp)``, stable across the whole range."""
    # The cap passes the gradient where it is reached exactly (jnp.minimum would halve it).
    x = _numerics.clamp(average_logp, high=_MAX_AVERAGE_LOGP)
    # log(1 − e^x): expm1 near 0, log1p for very negative x (Mächler 2012).
    near_zero = x > -0.6931471805599453
    log1m_exp = jnp.where(
        near_zero,
        jnp.log(-jnp.expm1(jnp.where(near_zero, x, -1.0))),
        jnp.log1p(-jnp.exp(jnp.where(near_zero, -1.0, x))),
    )
    return x - log1m_exp


@renamed(chosen_logps="chosen_logprobs", rejected_logps="rejected_logprobs")
def orpo(
    chosen_logprobs: ArrayLike,
    rejected_logprobs: ArrayLike,
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
    (TRL's ``beta``, default 0.1). The odds-ratio term is TRL's. TRL's SFT term is another
    average: the negative log-likelihood over every token of the batch's chosen sequences,
    their prompts included (``concatenated_forward``); here it is each pair's
    ``-chosen_logprobs``. TRL's value is ``orpo(c, r, beta=beta) + jnp.mean(c) + nll`` with
    ``nll`` that token mean (``reduction="mean"``, no mask).

    ``log(1 − p)`` is computed stably; average log-probabilities above ``-1e-6`` are capped
    there (p = 1 has infinite odds).

    Args:
      chosen_logprobs: ``[batch]`` average token log-probabilities of the chosen answers.
      rejected_logprobs: ``[batch]`` the same for the rejected answers.
      beta: λ ≥ 0, the weight of the odds-ratio term.
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

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
    _checks.in_range(beta, "beta", low=0)
    (chosen, rejected), shape = _checks.broadcast_floats(
        allow_inf=True, chosen_logprobs=chosen_logprobs, rejected_logprobs=rejected_logprobs
    )
    mask, (chosen, rejected) = masked_inputs(where, shape, chosen, rejected)
    ratio = _log_odds(chosen) - _log_odds(rejected)
    loss = -chosen + jnp.asarray(beta, chosen.dtype) * _numerics.softplus(-ratio)
    return reduce_loss(loss, reduction, where=mask, axis_name=axis_name)


@renamed(policy_logps="policy_logprobs", ref_logps="ref_logprobs")
def kto(
    policy_logprobs: ArrayLike,
    ref_logprobs: ArrayLike,
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
      policy_logprobs: ``[batch]`` summed token log-probabilities of the answers under the
        policy.
      ref_logprobs: ``[batch]`` the same under the reference model.
      desirable: ``[batch]`` bool (or 0/1): whether each answer is desirable.
      reference_point: z₀, a scalar (or per-example) KL estimate.
      beta: β.
      desirable_weight: λ_D ≥ 0.
      undesirable_weight: λ_U ≥ 0 (the paper balances λ_D n_D / (λ_U n_U) in [1, 4/3]).
      where: optional boolean mask ``[batch]``.
      reduction: ``"mean"``, ``"sum"`` or ``"none"`` (``[batch]``).
      axis_name: mapped axis of the batch (global mean and sum).

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
    _checks.in_range(desirable_weight, "desirable_weight", low=0)
    _checks.in_range(undesirable_weight, "undesirable_weight", low=0)
    _checks.in_range(beta, "beta", low=0, low_open=True)
    (policy, ref, point), shape = _checks.broadcast_floats(
        allow_inf=("policy_logprobs", "ref_logprobs"),
        policy_logprobs=policy_logprobs,
        ref_logprobs=ref_logprobs,
        reference_point=reference_point,
    )
    desirable = _checks.broadcast_to(jnp.asarray(desirable), shape, "desirable", "policy_logprobs")
    if not (
        jnp.issubdtype(desirable.dtype, jnp.bool_) or jnp.issubdtype(desirable.dtype, jnp.integer)
    ):
        raise TypeError(f"`desirable` must be boolean (or 0/1 integers), got {desirable.dtype}.")
    if jnp.issubdtype(desirable.dtype, jnp.integer):
        # 0/1; a concrete -1 (±1 labels) is refused, and a traced one, which cannot be,
        # reads as undesirable (its sign), not as True as a cast to bool would read it.
        _checks.in_range(desirable, "desirable", low=0, high=1)
        desirable = desirable > 0
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

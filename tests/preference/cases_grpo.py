"""``grpo`` as the shared suites see it, and TRL 1.16's ``GRPOTrainer._compute_loss`` in torch.

``trl_compute_loss`` transcribes the loss part of ``_compute_loss`` (trl/trainer/
grpo_trainer.py) line for line, for one process without gradient accumulation, vLLM,
entropy masks or off-policy masks; it is the float64 reference of every ``grpo`` test.
"""

from __future__ import annotations

import numpy as np
import torch

import jaxloss
from tests._suite.case import Case

TOKENS = 5

# jaxloss's options -> TRL's loss_type (CISPO aggregates as DAPO in TRL).
TRL_LOSS_TYPES = {
    "sequence_mean": "grpo",
    "token_mean": "dapo",
    "constant": "dr_grpo",
    "sequence_sum": "luspo",
}


def trl_compute_loss(
    per_token_logps: torch.Tensor,
    old_per_token_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ref_per_token_logps: torch.Tensor | None = None,
    *,
    loss_type: str = "dapo",
    importance_sampling_level: str = "token",
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    delta: float | None = None,
    beta: float = 0.0,
    use_bias_correction_kl: bool = False,
    max_completion_length: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TRL's ``(loss, per_token_loss)``; ``per_token_loss`` broadcast to ``[B, T]``."""
    epsilon_low = epsilon
    epsilon_high = epsilon_high if epsilon_high is not None else epsilon
    mask = mask.to(per_token_logps.dtype)
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    log_ratio = per_token_logps - old_per_token_logps
    if importance_sampling_level == "token":
        log_importance_weights = log_ratio
    elif importance_sampling_level == "sequence":
        log_importance_weights = (log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)
        log_importance_weights = log_importance_weights.unsqueeze(-1)
    coef_1 = torch.exp(log_importance_weights)
    if beta != 0.0:
        per_token_kl = (
            torch.exp(ref_per_token_logps - per_token_logps)
            - (ref_per_token_logps - per_token_logps)
            - 1
        )
        if use_bias_correction_kl:
            per_token_kl = per_token_kl * coef_1
    if loss_type == "cispo":
        clamped_ratios = torch.clamp(coef_1, max=epsilon_high).detach()
        per_token_loss = -clamped_ratios * advantages * per_token_logps
    else:
        coef_2 = torch.clamp(coef_1, 1 - epsilon_low, 1 + epsilon_high)
        if delta is not None:
            coef_1 = torch.clamp(coef_1, max=delta)
        per_token_loss1 = coef_1 * advantages
        per_token_loss2 = coef_2 * advantages
        per_token_loss = -torch.min(per_token_loss1, per_token_loss2)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    if loss_type == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * max_completion_length)
    elif loss_type in ("cispo", "dapo"):
        # num_items_in_batch / num_processes · accumulation / steps_per_generation, all 1.
        normalizer = mask.sum().clamp(min=1.0)
        loss = (per_token_loss * mask).sum() / normalizer
    elif loss_type == "luspo":
        # As TRL's code, which expects per_token_loss [B, 1] (sequence level, beta = 0);
        # with [B, T] it weighs every token, masked ones too, by its sequence's length.
        loss = (per_token_loss * mask.sum(1, keepdim=True)).mean()
    return loss, per_token_loss.expand_as(mask)


def trl_options(**kwargs) -> dict:
    """jaxloss's ``grpo`` options as ``trl_compute_loss``'s."""
    options = {
        "loss_type": TRL_LOSS_TYPES[kwargs.get("loss_aggregation", "sequence_mean")],
        "importance_sampling_level": kwargs.get("importance_sampling", "token"),
        "epsilon": kwargs.get("epsilon_low", 0.2),
        "epsilon_high": kwargs.get("epsilon_high"),
        "delta": kwargs.get("delta"),
        "beta": float(kwargs.get("beta", 0.0)),
        "use_bias_correction_kl": kwargs.get("kl_importance_weight", False),
        "max_completion_length": kwargs.get("max_completion_length"),
    }
    if kwargs.get("clip", "ppo") == "cispo":
        assert options["loss_type"] == "dapo", "TRL's CISPO aggregates as DAPO"
        options["loss_type"] = "cispo"
    return options


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, np.float64))


def reference(logprobs, old_logprobs, advantages, ref_logprobs=None, **kwargs) -> np.ndarray:
    """TRL's ``per_token_loss`` in float64, the ``"none"`` of ``grpo``."""
    ref_tensor = None if ref_logprobs is None else _tensor(ref_logprobs)
    _, per_token = trl_compute_loss(
        _tensor(logprobs),
        _tensor(old_logprobs),
        _tensor(advantages),
        torch.ones(np.shape(logprobs), dtype=torch.float64),
        ref_tensor,
        **trl_options(**kwargs),
    )
    return per_token.numpy()


def grpo_with_ref(logprobs, old_logprobs, advantages, ref_logprobs, **kwargs):
    """``grpo`` with the reference log-probabilities positional, as the suites pass inputs."""
    return jaxloss.grpo(logprobs, old_logprobs, advantages, ref_logprobs=ref_logprobs, **kwargs)


def grpo_inputs(rng: np.random.Generator, batch: int, tokens: int = TOKENS) -> tuple:
    """``(logprobs, old_logprobs, advantages [batch], ref_logprobs)``, float32."""
    shape = (batch, tokens)
    logprobs = rng.uniform(-4, -0.1, size=shape)
    old = logprobs + 0.3 * rng.normal(size=shape)
    ref = logprobs + 0.3 * rng.normal(size=shape)
    advantages = rng.normal(size=batch)
    return tuple(a.astype(np.float32) for a in (logprobs, old, advantages, ref))


def _reference_mean(none, *inputs, **kwargs) -> float:
    # Every token valid: each aggregation is a multiple of the plain mean.
    if kwargs.get("loss_aggregation") == "constant":
        return none.sum(-1).mean() / kwargs["max_completion_length"]
    if kwargs.get("loss_aggregation") == "sequence_sum":
        return none.sum(-1).mean()
    return none.mean()


CASES: dict[str, Case] = {
    # Token weights, the PPO clip with clip-higher and δ, the importance-weighted KL and
    # GRPO's mean of sequence means.
    "grpo": Case(
        grpo_with_ref,
        grpo_inputs,
        reference,
        kwargs={"beta": 0.04, "epsilon_low": 0.2, "epsilon_high": 0.28, "delta": 1.5},
        differentiable=(0, 3),
        hyperparameters={"beta": 0.1},
        reference_mean=_reference_mean,
        invalid={"epsilon_low": -0.1, "beta": -1.0, "delta": 0.5},
        free=(0, 1, 2, 3),
        max_scale=10.0,
        token_loss=True,
        signed=True,
    ),
    # Sequence weights (GSPO: a mean over each sequence's valid tokens, which masks must
    # reach) and DAPO's mean over tokens. CISPO's stop-gradient weight is not a derivative
    # of its value (check_grads would refuse it): tests/preference/test_grpo.py covers it.
    "grpo[gspo]": Case(
        jaxloss.grpo,
        lambda rng, batch: grpo_inputs(rng, batch)[:3],
        reference,
        kwargs={"importance_sampling": "sequence", "loss_aggregation": "token_mean"},
        differentiable=(0,),
        hyperparameters={"epsilon_low": 0.05},
        free=(0, 1, 2),
        max_scale=10.0,
        token_loss=True,
        signed=True,
    ),
}

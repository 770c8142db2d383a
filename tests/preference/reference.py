"""Float64 NumPy references of the preference losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64
from tests._suite.numpy_reference import log_sigmoid as _log_sigmoid
from tests._suite.numpy_reference import log_softmax


def bradley_terry(chosen_rewards, rejected_rewards, margin=0.0):
    c, r = _f64(chosen_rewards, rejected_rewards)
    return -_log_sigmoid(c - r - margin)


def dpo(pc, pr, rc, rr, beta=0.1, label_smoothing=0.0, loss_type="sigmoid"):
    """TRL's DPOTrainer.dpo_loss for the sigmoid, hinge and ipo loss types."""
    pc, pr, rc, rr = _f64(pc, pr, rc, rr)
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        return -(1 - label_smoothing) * _log_sigmoid(beta * logits) - (
            label_smoothing * _log_sigmoid(-beta * logits)
        )
    if loss_type == "hinge":
        return np.maximum(0, 1 - beta * logits)
    return (logits - 1 / (2 * beta)) ** 2


def simpo(chosen_logps, rejected_logps, beta=2.0, gamma=0.5, label_smoothing=0.0):
    """TRL's CPOTrainer with loss_type="simpo": logits = Δ − γ/β, then the sigmoid loss."""
    c, r = _f64(chosen_logps, rejected_logps)
    logits = (c - r) - gamma / beta
    return -(1 - label_smoothing) * _log_sigmoid(beta * logits) - label_smoothing * _log_sigmoid(
        -beta * logits
    )


def orpo(chosen_logps, rejected_logps, beta=0.1):
    """TRL's ORPOTrainer: −chosen + β·(−log σ(log odds_c − log odds_r)), per pair."""
    c, r = _f64(chosen_logps, rejected_logps)
    log_odds = (c - r) - (np.log1p(-np.exp(c)) - np.log1p(-np.exp(r)))
    return -c - beta * _log_sigmoid(log_odds)


def kto(
    policy_logps,
    ref_logps,
    desirable,
    reference_point=0.0,
    beta=0.1,
    desirable_weight=1.0,
    undesirable_weight=1.0,
):
    """TRL's KTOTrainer.kto_loss with the KL estimate given (clamped at 0)."""
    p, q = _f64(policy_logps, ref_logps)
    kl = max(float(reference_point), 0.0)
    reward = p - q
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    return np.where(
        np.asarray(desirable, bool),
        desirable_weight * (1 - sigmoid(beta * (reward - kl))),
        undesirable_weight * (1 - sigmoid(beta * (kl - reward))),
    )


def ppo_clip(logprobs, old_logprobs, advantages, epsilon=0.2, dual_clip=None):
    """TRL's PPO policy loss: max(−A ρ, −A clip(ρ, 1 − ε, 1 + ε)) per token; dual clip."""
    lp, old, a = _f64(logprobs, old_logprobs, advantages)
    ratio = np.exp(lp - old)
    loss = np.maximum(-a * ratio, -a * np.clip(ratio, 1 - epsilon, 1 + epsilon))
    if dual_clip is not None:
        loss = np.where(a < 0, np.minimum(loss, -dual_clip * a), loss)
    return loss


def kl_penalty(logprobs, ref_logprobs, estimator="k1"):
    lp, ref = _f64(logprobs, ref_logprobs)
    log_ratio = lp - ref
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    return np.exp(-log_ratio) - 1 + log_ratio


def grpo_advantages(rewards, scale="group", eps=1e-4):
    """TRL's GRPOTrainer: (r − group mean) / (std + eps), torch's unbiased std."""
    (r,) = _f64(rewards)
    centred = r - r.mean(axis=-1, keepdims=True)
    if scale == "none":
        return centred
    std = r.std(axis=-1, ddof=1, keepdims=True) if scale == "group" else r.std(ddof=1)
    return centred / (std + eps)


def token_logprobs(logits, tokens):
    lp = log_softmax(np.asarray(logits, np.float64))
    return np.take_along_axis(lp, np.asarray(tokens)[..., None], axis=-1)[..., 0]

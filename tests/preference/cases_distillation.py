"""The distillation losses as the shared suites see them, and their float64 references."""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.numpy_reference import log_softmax

TOKENS, VOCAB = 4, 8


def kl(log_p, log_q):
    """KL(p ‖ q) over the last axis, float64, with 0 log 0 = 0."""
    p = np.exp(log_p)
    log_p, log_q = np.where(p > 0, log_p, 0), np.where(p > 0, log_q, 0)
    return np.where(p > 0, p * (log_p - log_q), 0.0).sum(axis=-1)


def _softened(student_logits, teacher_logits, temperature):
    return (
        log_softmax(np.asarray(student_logits, np.float64) / temperature),
        log_softmax(np.asarray(teacher_logits, np.float64) / temperature),
    )


def distill_kl(
    student_logits,
    teacher_logits,
    direction="forward",
    temperature=1.0,
    scale_by_temperature_squared=False,
):
    """Hinton et al.'s KL(teacher ‖ student), or the reverse, per token."""
    log_q, log_p = _softened(student_logits, teacher_logits, temperature)
    loss = kl(log_p, log_q) if direction == "forward" else kl(log_q, log_p)
    return loss * temperature**2 if scale_by_temperature_squared else loss


def generalized_jsd(student_logits, teacher_logits, beta=0.5, temperature=1.0):
    """GKD's Eq. (1) with probabilities (not log space): β KL(p ‖ m) + (1 − β) KL(q ‖ m)."""
    log_q, log_p = _softened(student_logits, teacher_logits, temperature)
    if beta == 0:
        return kl(log_p, log_q)
    if beta == 1:
        return kl(log_q, log_p)
    log_m = np.log(beta * np.exp(log_p) + (1 - beta) * np.exp(log_q))
    return beta * kl(log_p, log_m) + (1 - beta) * kl(log_q, log_m)


def skew_kl(student_logits, teacher_logits, alpha=0.1, direction="forward", temperature=1.0):
    """DistiLLM's KL(p ‖ α p + (1 − α) q), or KL(q ‖ α q + (1 − α) p), with probabilities."""
    log_q, log_p = _softened(student_logits, teacher_logits, temperature)
    first, second = (log_p, log_q) if direction == "forward" else (log_q, log_p)
    with np.errstate(divide="ignore"):
        log_m = np.log(alpha * np.exp(first) + (1 - alpha) * np.exp(second))
    return kl(first, log_m)


def tvd(student_logits, teacher_logits, temperature=1.0):
    """Half the L1 distance between the softened teacher and student distributions."""
    log_q, log_p = _softened(student_logits, teacher_logits, temperature)
    return 0.5 * np.abs(np.exp(log_p) - np.exp(log_q)).sum(axis=-1)


def logits_pair(rng: np.random.Generator, batch: int) -> tuple:
    """Student and teacher logits ``[batch, tokens, vocab]``, the teacher sharper."""
    shape = (batch, TOKENS, VOCAB)
    return (
        rng.normal(size=shape).astype(np.float32),
        (2 * rng.normal(size=shape)).astype(np.float32),
    )


CASES: dict[str, Case] = {
    "distill_kl": Case(
        jaxloss.distill_kl,
        logits_pair,
        distill_kl,
        kwargs={"direction": "forward", "temperature": 2.0, "scale_by_temperature_squared": True},
        differentiable=(0, 1),
        hyperparameters={"temperature": 0.5},
        invalid={"temperature": 0.0},
        free=(0, 1),
        token_loss=True,
    ),
    "generalized_jsd": Case(
        jaxloss.generalized_jsd,
        logits_pair,
        generalized_jsd,
        kwargs={"beta": 0.3, "temperature": 1.5},
        differentiable=(0, 1),
        hyperparameters={"beta": 0.7},
        invalid={"beta": 1.5, "temperature": -1.0},
        free=(0, 1),
        token_loss=True,
    ),
    "skew_kl": Case(
        jaxloss.skew_kl,
        logits_pair,
        skew_kl,
        kwargs={"alpha": 0.2, "direction": "forward", "temperature": 1.5},
        differentiable=(0, 1),
        hyperparameters={"alpha": 0.4},
        invalid={"alpha": -0.1, "temperature": 0.0},
        free=(0, 1),
        token_loss=True,
    ),
    "skew_kl[reverse]": Case(
        jaxloss.skew_kl,
        logits_pair,
        skew_kl,
        kwargs={"alpha": 0.3, "direction": "reverse"},
        differentiable=(0, 1),
        hyperparameters={"alpha": 0.1},
        invalid={"alpha": 1.5},
        free=(0, 1),
        token_loss=True,
    ),
    # |p − q| is not differentiable where p = q: continuous random logits never land there.
    "tvd": Case(
        jaxloss.tvd,
        logits_pair,
        tvd,
        kwargs={"temperature": 2.0},
        differentiable=(0, 1),
        hyperparameters={"temperature": 0.5},
        invalid={"temperature": -1.0},
        free=(0, 1),
        token_loss=True,
    ),
}

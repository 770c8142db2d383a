"""Preference losses against torch (TRL's DPO formula) and a naive log_softmax + gather; the
hidden-state forms (linear_token_logprobs, linear_distill) against the materialized logits."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _harness import Case, normal

import jaxloss

ORDER = 9


def materialized_distill(beta: float):
    """``generalized_jsd`` of the student's and the (fixed) teacher's materialized logits."""

    def loss(h, w, th, tw):
        return jaxloss.generalized_jsd(h @ w.T, jax.lax.stop_gradient(th @ tw.T), beta=beta)

    return loss


def linear_distill(beta: float, chunk_size: int):
    """``linear_distill`` of the student's head and the (fixed) teacher's, no logits."""

    def loss(h, w, th, tw):
        fixed = jax.lax.stop_gradient
        return jaxloss.linear_distill(h, w, fixed(th), fixed(tw), beta=beta, chunk_size=chunk_size)

    return loss


def cases(quick: bool, rng) -> list[Case]:
    n = 1 << 12 if quick else 1 << 18
    logps = [normal(rng, n, scale=5.0) - 50 for _ in range(4)]

    def torch_dpo(torch):
        def loss(pc, pr, rc, rr):
            logits = (pc - pr) - (rc - rr)
            return -torch.nn.functional.logsigmoid(0.1 * logits).mean()

        return loss

    b, t, v = (2, 64, 4096) if quick else (4, 256, 32000)
    logits = normal(rng, b, t, v, scale=2.0)
    tokens = rng.integers(0, v, (b, t)).astype(np.int32)

    def naive(z, y):
        logp = jax.nn.log_softmax(z, axis=-1)
        return jnp.take_along_axis(logp, y[..., None], axis=-1)[..., 0].sum(-1).sum()

    def torch_logps(torch):
        def loss(z, y):
            logp = torch.log_softmax(z, dim=-1)
            return logp.gather(-1, y[..., None])[..., 0].sum(-1).sum()

        return loss

    # Issue 24's time shape: N = 2048 tokens, D = 512, V = 32768 (its memory shape, N = 8192,
    # D = 1024 and V = 131072, is 4 GiB of logits: compiled only, in sweeps.llm_head_memory).
    ln, ld, lv = (256, 64, 2048) if quick else (2048, 512, 32768)
    chunk = 256 if quick else 1024
    hidden = normal(rng, ln, ld)
    weight = normal(rng, lv, ld, scale=ld**-0.5)
    teacher_hidden = normal(rng, ln, ld)
    teacher_weight = normal(rng, lv, ld, scale=ld**-0.5)
    targets = rng.integers(0, lv, ln).astype(np.int32)

    def materialized_logprobs(h, w, y):
        return jaxloss.token_logprobs(h @ w.T, y).sum()

    def distill_case(beta, name):
        tokens = 64 if quick else 256

        return Case(
            "preference",
            f"linear_distill ({name}, {tokens}-token blocks), N={ln}, D={ld}, V={lv}",
            [hidden, weight, teacher_hidden, teacher_weight],
            (0, 1),
            {
                "jaxloss": linear_distill(beta, tokens),
                f"materialized logits (generalized_jsd β={beta})": materialized_distill(beta),
            },
            rounds=5,
        )

    return [
        Case(
            "preference",
            f"linear_token_logprobs (chunk {chunk}), N={ln}, D={ld}, V={lv} (summed)",
            [hidden, weight, targets],
            (0, 1),
            {
                "jaxloss": lambda h, w, y: jaxloss.linear_token_logprobs(
                    h, w, y, chunk_size=chunk
                ).sum(),
                "materialized logits (token_logprobs)": materialized_logprobs,
            },
            rounds=5,
        ),
        distill_case(0.5, "JSD β=0.5"),
        distill_case(0.0, "forward KL"),
        Case(
            "preference",
            f"dpo (sigmoid, β=0.1), {n} pairs",
            logps,
            (0, 1),
            {"jaxloss": jaxloss.dpo},
            {"torch (TRL's formula)": torch_dpo},
        ),
        Case(
            "preference",
            f"sequence_logprobs, B={b}, T={t}, V={v} (summed)",
            [logits, tokens],
            (0,),
            {
                "jaxloss": lambda z, y: jaxloss.sequence_logprobs(z, y).sum(),
                "naive JAX (log_softmax + gather)": naive,
            },
            {"torch (log_softmax + gather)": torch_logps},
        ),
    ]

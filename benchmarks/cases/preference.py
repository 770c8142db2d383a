"""Preference losses against torch (TRL's DPO formula) and a naive log_softmax + gather."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from _harness import Case, normal

import jaxloss

ORDER = 9


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

    return [
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

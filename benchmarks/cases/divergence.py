"""Divergences against optax and torch (Gaussian KL: torch.distributions; generalized KL:
optax)."""

from __future__ import annotations

import jax
import numpy as np
import optax
from _harness import Case, normal

import jaxloss

ORDER = 3


def cases(quick: bool, rng) -> list[Case]:
    b, c = (256, 100) if quick else (4096, 1000)
    log_input = np.asarray(jax.nn.log_softmax(normal(rng, b, c)))
    target = np.asarray(jax.nn.softmax(normal(rng, b, c)))
    n, d = (256, 16) if quick else (16384, 64)
    mean, log_var = normal(rng, n, d), normal(rng, n, d, scale=0.5)
    measures = rng.uniform(0.0, 3.0, (b, c)).astype(np.float32)

    def gaussian_kl_torch(torch):
        def loss(mu, lv):
            q = torch.distributions.Normal(mu, torch.exp(0.5 * lv))
            prior = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
            return torch.distributions.kl_divergence(q, prior).sum(-1).mean()

        return loss

    return [
        Case(
            "divergence",
            f"kl_div (batchmean), B={b}, C={c}",
            [log_input, target],
            (0,),
            {
                "jaxloss": lambda x, t: jaxloss.kl_div(x, t, reduction="batchmean"),
                "optax": lambda x, t: optax.losses.kl_divergence(x, t).mean(),
            },
            {
                "torch": lambda torch: (
                    lambda x, t: torch.nn.functional.kl_div(x, t, reduction="batchmean")
                )
            },
        ),
        Case(
            "divergence",
            f"gaussian_kl, B={n}, latent {d}",
            [mean, log_var],
            (0, 1),
            {"jaxloss": jaxloss.gaussian_kl},
            {"torch (distributions)": gaussian_kl_torch},
        ),
        Case(
            "divergence",
            f"generalized_kl, B={b}, C={c}",
            [log_input, measures],
            (0,),
            {
                "jaxloss": jaxloss.generalized_kl,
                "optax": lambda x, t: optax.losses.generalized_kl_divergence(x, t).mean(),
            },
        ),
    ]

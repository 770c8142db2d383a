"""Regression losses against optax and torch."""

from __future__ import annotations

import optax
from _harness import Case, normal

import jaxloss

ORDER = 1


def cases(quick: bool, rng) -> list[Case]:
    n = 1 << 14 if quick else 1 << 20
    p, t = normal(rng, n), normal(rng, n)
    shape = f"N={n}"
    return [
        Case(
            "regression",
            f"mse, {shape}",
            [p, t],
            (0,),
            {
                "jaxloss": jaxloss.mse,
                "optax": lambda p, t: optax.losses.squared_error(p, t).mean(),
            },
            {"torch": lambda torch: torch.nn.functional.mse_loss},
        ),
        Case(
            "regression",
            f"huber (delta=1), {shape}",
            [p, t],
            (0,),
            {
                "jaxloss": jaxloss.huber,
                "optax": lambda p, t: optax.losses.huber_loss(p, t, delta=1.0).mean(),
            },
            {"torch": lambda torch: torch.nn.functional.huber_loss},
        ),
        Case(
            "regression",
            f"log_cosh, {shape}",
            [p, t],
            (0,),
            {
                "jaxloss": jaxloss.log_cosh,
                "optax": lambda p, t: optax.losses.log_cosh(p, t).mean(),
            },
        ),
    ]

"""Regression losses against optax and torch (weighted MSE, Gaussian and Poisson NLL: torch)."""

from __future__ import annotations

import numpy as np
import optax
from _harness import Case, normal

import jaxloss

ORDER = 1


def cases(quick: bool, rng) -> list[Case]:
    n = 1 << 14 if quick else 1 << 20
    p, t = normal(rng, n), normal(rng, n)
    weights = rng.uniform(0.0, 2.0, n).astype(np.float32)
    variances = np.exp(normal(rng, n))
    counts = rng.poisson(2.0, n).astype(np.float32)
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
        Case(
            "regression",
            f"mse (weights), {shape}",
            [p, t, weights],
            (0,),
            {"jaxloss": lambda p, t, w: jaxloss.mse(p, t, weights=w)},
            {"torch": lambda torch: lambda p, t, w: torch.nn.functional.mse_loss(p, t, weight=w)},
        ),
        Case(
            "regression",
            f"gaussian_nll (mean and variance), {shape}",
            [p, t, variances],
            (0, 2),
            {"jaxloss": jaxloss.gaussian_nll},
            {"torch": lambda torch: torch.nn.functional.gaussian_nll_loss},
        ),
        Case(
            "regression",
            f"poisson_nll (log_input), {shape}",
            [p, counts],
            (0,),
            {"jaxloss": jaxloss.poisson_nll},
            {"torch": lambda torch: torch.nn.functional.poisson_nll_loss},
        ),
    ]

"""The regression losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import pair
from tests.regression import reference as ref

CASES: dict[str, Case] = {
    "mse": Case(jaxloss.mse, pair, ref.mse, differentiable=(0, 1), free=(0, 1)),
    "mae": Case(jaxloss.mae, pair, ref.mae, differentiable=(0, 1), free=(0, 1)),
    "huber": Case(
        jaxloss.huber,
        pair,
        ref.huber,
        kwargs={"delta": 0.7},
        differentiable=(0, 1),
        hyperparameters={"delta": 1.3},
        invalid={"delta": 0.0},
        free=(0, 1),
    ),
    "smooth_l1": Case(
        jaxloss.smooth_l1,
        pair,
        ref.smooth_l1,
        kwargs={"beta": 0.6},
        differentiable=(0, 1),
        hyperparameters={"beta": 0.0},
        invalid={"beta": -0.5},
        free=(0, 1),
    ),
    "log_cosh": Case(jaxloss.log_cosh, pair, ref.log_cosh, differentiable=(0, 1), free=(0, 1)),
}

ALIASES = {"l1": "mae"}

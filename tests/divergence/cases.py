"""The divergence losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import NUM_CLASSES, log_probs_labels, pair
from tests._suite.numpy_reference import log_softmax
from tests.divergence import reference as ref


def _log_input_target(rng: np.random.Generator, batch: int) -> tuple:
    log_input, _ = log_probs_labels(rng, batch)
    target = np.exp(log_softmax(rng.normal(size=(batch, NUM_CLASSES))))
    return log_input, target.astype(np.float32)


CASES: dict[str, Case] = {
    # Signed: per element; the sum is >= 0 only for normalized distributions.
    "kl_div": Case(
        jaxloss.kl_div, _log_input_target, ref.kl_div, differentiable=(0, 1), free=(0,), signed=True
    ),
    "gaussian_kl": Case(
        jaxloss.gaussian_kl, pair, ref.gaussian_kl, differentiable=(0, 1), free=(0,)
    ),
}

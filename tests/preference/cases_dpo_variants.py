"""``dpo``'s batch-coupled loss type as the shared suites see it, and its float64 reference.

The elementwise loss types of ``dpo`` reach no code path that ``cases.py``'s ``dpo``
entries leave out; they are checked against TRL, masks included, in
``test_dpo_variants.py``. AOT sorts over the batch and gathers it over the devices.
"""

from __future__ import annotations

import numpy as np

import jaxloss
from tests._suite.case import Case
from tests._suite.numpy_reference import f64, log_sigmoid
from tests.preference.cases import _sequence_logps


def aot(pc, pr, rc, rr, beta=0.1, label_smoothing=0.0, loss_type="aot"):
    """TRL's ``"aot"`` per pair: each row holds the loss of its policy margin's rank."""
    pc, pr, rc, rr = f64(pc, pr, rc, rr)
    margins = pc - pr
    partners = np.sort(rc - rr)[np.argsort(np.argsort(margins, kind="stable"), kind="stable")]
    z = beta * (margins - partners)
    return -(1 - label_smoothing) * log_sigmoid(z) - label_smoothing * log_sigmoid(-z)


CASES: dict[str, Case] = {
    "dpo[aot]": Case(
        jaxloss.dpo,
        lambda rng, batch: _sequence_logps(rng, batch, 4),
        aot,
        kwargs={"beta": 0.3, "label_smoothing": 0.1, "loss_type": "aot"},
        differentiable=(0, 1, 2, 3),
        hyperparameters={"beta": 0.05},
        rows_independent=False,
        free=(0, 1, 2, 3),
    ),
}

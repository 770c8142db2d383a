"""Float64 NumPy references of the divergence losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64


def kl_div(log_input, target, log_target=False):
    x, t = _f64(log_input, target)
    if log_target:
        return np.exp(t) * (t - x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0.0) - t * x


def gaussian_kl(mean, log_var, axis=-1):
    mu, log_var = _f64(mean, log_var)
    var = np.exp(log_var)
    # KL(N(μ, σ²) ‖ N(0, 1)) per dimension = ½(σ² + μ² − 1 − log σ²).
    return 0.5 * np.sum(var + mu**2 - 1 - log_var, axis=axis)


def generalized_kl(log_predictions, targets, axis=-1):
    """optax's ``generalized_kl_divergence``: Σ_axis t log t − t x + eˣ − t, 0 log 0 = 0."""
    x, t = _f64(log_predictions, targets)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_log_t = np.where(t > 0, t * np.log(np.where(t > 0, t, 1)), 0.0)
    return np.sum(t_log_t - t * x + np.exp(x) - t, axis=axis)

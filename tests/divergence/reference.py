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

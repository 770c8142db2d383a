"""Float64 NumPy references of the regression losses, from the papers' and torch's formulas.

Each returns the per-example (``reduction="none"``) values; see ``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import f64 as _f64


def mse(predictions, targets):
    p, t = _f64(predictions, targets)
    return (p - t) ** 2


def mae(predictions, targets):
    p, t = _f64(predictions, targets)
    return np.abs(p - t)


def huber(predictions, targets, delta=1.0):
    p, t = _f64(predictions, targets)
    d = np.abs(p - t)
    return np.where(d < delta, 0.5 * d**2, delta * (d - 0.5 * delta))


def smooth_l1(predictions, targets, beta=1.0):
    p, t = _f64(predictions, targets)
    d = np.abs(p - t)
    if beta == 0:
        return d
    return np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)


def log_cosh(predictions, targets):
    p, t = _f64(predictions, targets)
    return np.log(np.cosh(p - t))

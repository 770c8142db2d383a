"""Pieces the float64 references of every family share (``tests/<family>/reference.py``).

The references return per-example (``reduction="none"``) values. They are deliberately
naive — direct transcriptions of the papers' and torch's formulas, not of jaxloss's code —
so a test that compares against them can catch a wrong derivation, not just a wrong
refactoring.
"""

from __future__ import annotations

import numpy as np


def f64(*arrays):
    """The arrays as float64."""
    return [np.asarray(a, np.float64) for a in arrays]


def log_softmax(logits, axis=-1):
    x = np.asarray(logits, np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def log_sigmoid(x):
    return -np.logaddexp(0.0, -x)

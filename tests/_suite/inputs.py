"""Inputs that the cases of several families share: ``(rng, batch) -> tuple`` of NumPy arrays."""

from __future__ import annotations

import numpy as np

from tests._suite.numpy_reference import log_softmax

FEATURES = 3
NUM_CLASSES = 5
EMBEDDING_DIM = 4


def pair(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, FEATURES)
    return rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)


def logits_labels(rng: np.random.Generator, batch: int) -> tuple:
    logits = 2 * rng.normal(size=(batch, NUM_CLASSES))
    return logits.astype(np.float32), rng.integers(0, NUM_CLASSES, size=batch).astype(np.int32)


def log_probs_labels(rng: np.random.Generator, batch: int) -> tuple:
    logits, labels = logits_labels(rng, batch)
    return log_softmax(logits).astype(np.float32), labels


def scores_pair(rng: np.random.Generator, batch: int) -> tuple:
    return tuple((2 * rng.normal(size=batch)).astype(np.float32) for _ in range(2))

"""Float64 NumPy references of the ranking losses, from optax's and rax's formulas.

Each returns the per-list (``reduction="none"``) values, a loop over the lists reading only
their valid items; the ``*_mean`` functions give each loss's ``"mean"``. See
``tests/_suite/numpy_reference.py``.
"""

from __future__ import annotations

import numpy as np


def _lists(scores, labels, weights, item_mask):
    """The inputs as float64 ``[lists, list_size]`` (and the leading shape), masks boolean."""
    shape = np.broadcast_shapes(np.shape(scores), np.shape(labels))
    s = np.broadcast_to(np.asarray(scores, np.float64), shape).reshape(-1, shape[-1])
    y = np.broadcast_to(np.asarray(labels, np.float64), shape).reshape(-1, shape[-1])
    w = np.ones(shape) if weights is None else np.asarray(weights, np.float64)
    m = np.ones(shape, bool) if item_mask is None else np.asarray(item_mask, bool)
    w = np.broadcast_to(w, shape).reshape(-1, shape[-1])
    m = np.broadcast_to(m, shape).reshape(-1, shape[-1])
    return s, y, w, m, shape[:-1]


def ranking_softmax(scores, labels, weights=None, item_mask=None):
    """optax: −Σ_i w_i y_i log softmax(s)_i over the valid items; 0 for a list without any."""
    s, y, w, m, shape = _lists(scores, labels, weights, item_mask)
    out = np.zeros(len(s))
    for k in range(len(s)):
        valid = m[k]
        if not valid.any():
            continue
        x = s[k, valid]
        log_p = x - (x.max() + np.log(np.sum(np.exp(x - x.max()))))
        relevance = y[k, valid] * w[k, valid]
        out[k] = -np.sum(np.where(relevance == 0, 0.0, relevance * log_p))
    return out.reshape(shape)


def ranking_softmax_mean(none, scores, labels, weights=None, item_mask=None):
    """optax's ``jnp.mean`` over the lists with a valid item (0 if there is none)."""
    _, _, _, m, _ = _lists(scores, labels, weights, item_mask)
    counted = m.any(axis=-1)
    return none.reshape(-1)[counted].mean() if counted.any() else 0.0


def _pairwise(pair_loss, scores, labels, weights, item_mask):
    s, y, w, m, shape = _lists(scores, labels, weights, item_mask)
    out = np.zeros(len(s))
    for k in range(len(s)):
        size = s.shape[1]
        for i in range(size):
            for j in range(size):
                if m[k, i] and m[k, j] and y[k, i] > y[k, j]:
                    out[k] += w[k, i] * pair_loss(s[k, i] - s[k, j])
    return out.reshape(shape)


def pairwise_hinge_ranking(scores, labels, weights=None, item_mask=None):
    """rax: Σ over valid pairs with y_i > y_j of w_i max(0, 1 − (s_i − s_j))."""
    return _pairwise(lambda d: max(0.0, 1.0 - d), scores, labels, weights, item_mask)


def pairwise_logistic_ranking(scores, labels, weights=None, item_mask=None):
    """rax: Σ over valid pairs with y_i > y_j of w_i log(1 + exp(−(s_i − s_j)))."""
    return _pairwise(lambda d: np.logaddexp(0.0, -d), scores, labels, weights, item_mask)


def pair_count(scores, labels, weights=None, item_mask=None) -> int:
    """The number of valid ordered pairs (y_i > y_j, both items valid) of all the lists."""
    _, y, _, m, _ = _lists(scores, labels, weights, item_mask)
    ordered = (y[:, :, None] > y[:, None, :]) & m[:, :, None] & m[:, None, :]
    return int(ordered.sum())


def pairwise_mean(none, scores, labels, weights=None, item_mask=None):
    """rax's ``jnp.mean`` over every valid pair of the batch (0 if there is none)."""
    count = pair_count(scores, labels, weights, item_mask)
    return none.sum() / count if count else 0.0

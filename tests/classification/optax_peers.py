"""optax's classification losses and their jaxloss translations (``PEERS`` of
``tests/classification/cases.py``; see ``tests/_suite/peer.py``).

optax returns per-example values, so every translation uses ``reduction="none"``. optax's
``where`` masks classes (entries along the reduced axis) when it has the logits' shape, and
whole examples when it has one axis fewer: the first translates to a logit of −inf (and a
target of 0) for the classes left out, the second to jaxloss's ``where``. Under a ``where``,
optax's gradients with respect to the labels are NaN at the entries it leaves out, so those
translations compare the logits' gradients alone. Integer labels are drawn in range: optax
wraps ``-1`` to the last class, which jaxloss excludes
(``tests/classification/test_optax_losses.py`` shows both).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from tests._suite.peer import Peer


def _batch_shape(rng) -> tuple[int, ...]:
    return tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(1, 3)))


def _cube(rng) -> int:
    """A side for ``[k, k, k]`` logits, whose labels ``[k, k]`` fit any class axis."""
    return int(rng.integers(2, 6))


def _cube_logits_probabilities(rng) -> tuple:
    """Targets in [0, 1], not normalized along any one axis: every axis may be the classes'."""
    k = _cube(rng)
    logits = 3 * rng.normal(size=(k, k, k))
    return logits.astype(np.float32), rng.uniform(size=(k, k, k)).astype(np.float32)


def _cube_logits_labels(rng) -> tuple:
    k = _cube(rng)
    logits = 3 * rng.normal(size=(k, k, k))
    return logits.astype(np.float32), rng.integers(0, k, size=(k, k)).astype(np.int32)


def _logits_labels(rng) -> tuple:
    batch, num_classes = _batch_shape(rng), int(rng.integers(2, 8))
    logits = 3 * rng.normal(size=(*batch, num_classes))
    labels = rng.integers(0, num_classes, size=batch)
    return logits.astype(np.float32), labels.astype(np.int32)


def _logits_probabilities(rng) -> tuple:
    batch, num_classes = _batch_shape(rng), int(rng.integers(2, 8))
    logits = 3 * rng.normal(size=(*batch, num_classes))
    targets = rng.dirichlet(np.ones(num_classes), size=batch)
    return logits.astype(np.float32), targets.astype(np.float32)


def _class_mask(rng, shape, keep=None) -> np.ndarray:
    """Classes kept (True) along the last axis, at least one per row, and ``keep`` (labels)."""
    mask = rng.uniform(size=shape) < 0.6
    mask[..., 0] |= ~mask.any(axis=-1)
    if keep is not None:
        np.put_along_axis(mask, keep[..., None], True, axis=-1)
    return mask


def _with_class_mask(make_inputs, *, labels: bool = False):
    def with_mask(rng) -> tuple:
        logits, targets = make_inputs(rng)
        return logits, targets, _class_mask(rng, logits.shape, targets if labels else None)

    return with_mask


def _with_row_mask(make_inputs):
    def with_mask(rng) -> tuple:
        logits, targets = make_inputs(rng)
        mask = rng.uniform(size=logits.shape[:-1]) < 0.7
        return logits, targets, mask

    return with_mask


def _left_out_classes(rng) -> tuple:
    """Probability targets with zeros where a class is left out by a logit of −inf."""
    logits, targets = _logits_probabilities(rng)
    kept = _class_mask(rng, logits.shape)
    targets = np.where(kept, targets, 0)
    targets = targets / targets.sum(axis=-1, keepdims=True)
    return np.where(kept, logits, -np.inf).astype(np.float32), targets.astype(np.float32)


def _elementwise(rng, *, signs: bool) -> tuple:
    shape = _batch_shape(rng)
    scores = 3 * rng.normal(size=shape)
    targets = rng.choice([-1.0, 1.0], size=shape) if signs else rng.uniform(size=shape)
    return scores.astype(np.float32), targets.astype(np.float32)


def _focal_targets(rng) -> tuple:
    """Binary labels and, in one row of three, soft ones (optax's focal loss takes both)."""
    logits, targets = _elementwise(rng, signs=False)
    binary = (targets < 0.4).astype(np.float32)
    soft = rng.uniform(size=targets.shape) < 1 / 3
    return logits, np.where(soft, targets, binary).astype(np.float32)


def _left_out(logits, targets, where):
    """optax's class mask as jaxloss spells it: −inf logits and 0 targets."""
    return jnp.where(where, logits, -jnp.inf), jnp.where(where, targets, 0)


PEERS: dict[str, Peer] = {
    "optax:softmax_cross_entropy": Peer(
        optax.losses.softmax_cross_entropy,
        lambda z, t, axis=-1: jaxloss.cross_entropy(z, t, axis=axis, reduction="none"),
        _cube_logits_probabilities,
        'cross_entropy(logits, labels, axis=, reduction="none")',
        options=({}, {"axis": 0}, {"axis": 1}),
        differentiable=(0, 1),
    ),
    "optax:softmax_cross_entropy[class where]": Peer(
        lambda z, t, w: optax.losses.softmax_cross_entropy(z, t, where=w),
        lambda z, t, w: jaxloss.cross_entropy(*_left_out(z, t, w), reduction="none"),
        _with_class_mask(_logits_probabilities),
        "cross_entropy(jnp.where(where, logits, -jnp.inf), jnp.where(where, labels, 0), "
        'reduction="none")',
    ),
    "optax:softmax_cross_entropy[row where]": Peer(
        lambda z, t, w: optax.losses.softmax_cross_entropy(z, t, where=w),
        lambda z, t, w: jaxloss.cross_entropy(z, t, where=w, reduction="none"),
        _with_row_mask(_logits_probabilities),
        'cross_entropy(logits, labels, where=, reduction="none")',
    ),
    "optax:softmax_cross_entropy_with_integer_labels": Peer(
        optax.losses.softmax_cross_entropy_with_integer_labels,
        lambda z, y, axis=-1: jaxloss.cross_entropy(z, y, axis=axis, reduction="none"),
        _cube_logits_labels,
        'cross_entropy(logits, labels, axis=, reduction="none")',
        options=({}, {"axis": 0}, {"axis": 1}),
    ),
    "optax:softmax_cross_entropy_with_integer_labels[class where]": Peer(
        lambda z, y, w: optax.losses.softmax_cross_entropy_with_integer_labels(z, y, where=w),
        lambda z, y, w: jaxloss.cross_entropy(jnp.where(w, z, -jnp.inf), y, reduction="none"),
        _with_class_mask(_logits_labels, labels=True),
        'cross_entropy(jnp.where(where, logits, -jnp.inf), labels, reduction="none")',
    ),
    "optax:softmax_cross_entropy_with_integer_labels[row where]": Peer(
        lambda z, y, w: optax.losses.softmax_cross_entropy_with_integer_labels(z, y, where=w),
        lambda z, y, w: jaxloss.cross_entropy(z, y, where=w, reduction="none"),
        _with_row_mask(_logits_labels),
        'cross_entropy(logits, labels, where=, reduction="none")',
    ),
    "optax:safe_softmax_cross_entropy": Peer(
        optax.losses.safe_softmax_cross_entropy,
        lambda z, t: jaxloss.cross_entropy(z, t, reduction="none"),
        _left_out_classes,
        'cross_entropy(logits, labels, reduction="none")',
    ),
    "optax:sigmoid_binary_cross_entropy": Peer(
        optax.losses.sigmoid_binary_cross_entropy,
        lambda z, t: jaxloss.binary_cross_entropy_with_logits(z, t, reduction="none"),
        lambda rng: _elementwise(rng, signs=False),
        'binary_cross_entropy_with_logits(logits, labels, reduction="none")',
        differentiable=(0, 1),
    ),
    # optax's alpha=None (no weighting, its default) is jaxloss's alpha=-1. The gradients
    # with respect to the labels differ: optax's are wrong at labels of exactly 0 and 1
    # (tests/classification/test_optax_losses.py).
    "optax:sigmoid_focal_loss": Peer(
        optax.losses.sigmoid_focal_loss,
        lambda z, t, alpha=None, gamma=2.0: jaxloss.sigmoid_focal(
            z, t, alpha=-1.0 if alpha is None else alpha, gamma=gamma, reduction="none"
        ),
        _focal_targets,
        'sigmoid_focal(logits, labels, alpha=, gamma=, reduction="none")',
        options=(
            {},
            {"alpha": 0.25},
            {"gamma": 0.0},
            {"alpha": 0.6, "gamma": 0.5},
            {"alpha": 0.1, "gamma": 3.0},
        ),
    ),
    "optax:hinge_loss": Peer(
        optax.losses.hinge_loss,
        lambda s, y: jaxloss.hinge(s, y, reduction="none"),
        lambda rng: _elementwise(rng, signs=True),
        'hinge(scores, targets, reduction="none")',
        differentiable=(0, 1),
    ),
    "optax:perceptron_loss": Peer(
        optax.losses.perceptron_loss,
        lambda s, y: jaxloss.perceptron(s, y, reduction="none"),
        lambda rng: _elementwise(rng, signs=True),
        'perceptron(scores, targets, reduction="none")',
        differentiable=(0, 1),
    ),
    "optax:poly_loss_cross_entropy": Peer(
        optax.losses.poly_loss_cross_entropy,
        lambda z, t, epsilon=2.0, axis=-1: jaxloss.poly_cross_entropy(
            z, t, epsilon=epsilon, axis=axis, reduction="none"
        ),
        _cube_logits_probabilities,
        'poly_cross_entropy(logits, labels, epsilon=, axis=, reduction="none")',
        options=({}, {"epsilon": -1.0}, {"epsilon": 0.5, "axis": 0}, {"axis": 1}),
        differentiable=(0, 1),
    ),
    "optax:poly_loss_cross_entropy[class where]": Peer(
        lambda z, t, w, epsilon=2.0: optax.losses.poly_loss_cross_entropy(
            z, t, epsilon=epsilon, where=w
        ),
        lambda z, t, w, epsilon=2.0: jaxloss.poly_cross_entropy(
            *_left_out(z, t, w), epsilon=epsilon, reduction="none"
        ),
        _with_class_mask(_logits_probabilities),
        "poly_cross_entropy(jnp.where(where, logits, -jnp.inf), jnp.where(where, labels, 0), "
        'epsilon=, reduction="none")',
        options=({}, {"epsilon": -1.0}),
    ),
    "optax:multiclass_hinge_loss": Peer(
        optax.losses.multiclass_hinge_loss,
        lambda s, y: jaxloss.multiclass_hinge(s, y, reduction="none"),
        _logits_labels,
        'multiclass_hinge(scores, labels, reduction="none")',
    ),
    "optax:multiclass_perceptron_loss": Peer(
        optax.losses.multiclass_perceptron_loss,
        lambda s, y: jaxloss.multiclass_perceptron(s, y, reduction="none"),
        _logits_labels,
        'multiclass_perceptron(scores, labels, reduction="none")',
    ),
    "optax:smooth_labels": Peer(
        optax.losses.smooth_labels,
        jaxloss.smooth_labels,
        lambda rng: _cube_logits_probabilities(rng)[1:],
        "smooth_labels(labels, alpha, axis=)",
        options=({"alpha": 0.1}, {"alpha": 0.3, "axis": 0}, {"alpha": 1.0, "axis": 1}),
    ),
    # optax also adds alpha / (classes kept) to the classes its mask leaves out; jaxloss
    # leaves them at 0 (a -inf logit's target). They agree on the classes kept.
    "optax:smooth_labels[where]": Peer(
        lambda t, w, alpha: jnp.where(w, optax.losses.smooth_labels(t, alpha, where=w), 0),
        lambda t, w, alpha: jaxloss.smooth_labels(t, alpha, where=w),
        lambda rng: _with_class_mask(_logits_probabilities)(rng)[1:],
        "smooth_labels(labels, alpha, where=)",
        options=({"alpha": 0.1}, {"alpha": 0.5}),
    ),
}

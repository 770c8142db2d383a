"""The structured losses as the shared suites see them: one ``Case`` per loss and variant,
and their optax peers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import FEATURES, NUM_CLASSES, logits_labels
from tests._suite.peer import Peer
from tests.structured import reference as ref


def _logits_binary_labels(rng: np.random.Generator, batch: int) -> tuple:
    shape = (batch, FEATURES)
    logits = 2 * rng.normal(size=shape)
    return logits.astype(np.float32), (rng.uniform(size=shape) < 0.4).astype(np.int32)


def _scores_probabilities(rng: np.random.Generator, batch: int) -> tuple:
    scores = (2 * rng.normal(size=(batch, NUM_CLASSES))).astype(np.float32)
    return scores, rng.dirichlet(np.ones(NUM_CLASSES), size=batch).astype(np.float32)


CASES: dict[str, Case] = {
    "sparsemax_loss": Case(
        jaxloss.sparsemax_loss, _logits_binary_labels, ref.sparsemax_loss, free=(0,)
    ),
    # Labels in range: checked mode (the suite's valid inputs) rejects the others. Their
    # exclusion is tested in tests/structured/test_structured.py; ``class_labels`` does not
    # apply (the suite reads a class count from a class-rows input, margin heads' centers).
    "multiclass_sparsemax_loss": Case(
        jaxloss.multiclass_sparsemax_loss, logits_labels, ref.multiclass_sparsemax_loss, free=(0,)
    ),
    # The loss fenchel_young returns, for one regularized max.
    "fenchel_young[logsumexp]": Case(
        jaxloss.fenchel_young(jax.nn.logsumexp),
        _scores_probabilities,
        ref.fenchel_young_logsumexp,
        differentiable=(0, 1),
        free=(0,),
    ),
}

# Public names that are not losses, with the module that tests them. fenchel_young is a
# factory: its own tests are there, and the loss it returns is a case above.
NOT_LOSSES = {
    "fenchel_young": "tests/structured/test_structured.py",
    "sparsemax": "tests/structured/test_structured.py",
}


def sparsemax_max(scores: jax.Array) -> jax.Array:
    """The sparsemax's regularized max Ω*(θ) = ⟨p, θ⟩ + ½ (1 − ‖p‖²), p = sparsemax(θ):
    its Fenchel–Young loss is ``multiclass_sparsemax_loss``."""
    probs = jaxloss.sparsemax(scores)
    return jnp.vdot(probs, scores) + 0.5 * (1 - jnp.vdot(probs, probs))


MAX_FUNS = {"logsumexp": jax.nn.logsumexp, "max": jnp.max, "sparsemax": sparsemax_max}


def _batch_shape(rng) -> tuple[int, ...]:
    return tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(1, 3)))


def _logits_binary_labels_of_random_shape(rng) -> tuple:
    shape = _batch_shape(rng)
    labels = (rng.uniform(size=shape) < 0.5).astype(np.int32)
    return (3 * rng.normal(size=shape)).astype(np.float32), labels


def _logits_labels_of_random_shape(rng) -> tuple:
    # optax's multiclass_sparsemax_loss takes [batch, num_classes] only.
    batch, num_classes = int(rng.integers(1, 7)), int(rng.integers(2, 9))
    logits = (3 * rng.normal(size=(batch, num_classes))).astype(np.float32)
    return logits, rng.integers(0, num_classes, size=batch).astype(np.int32)


def _scores_targets_of_random_shape(rng) -> tuple:
    shape, num_classes = _batch_shape(rng), int(rng.integers(2, 8))
    scores = (3 * rng.normal(size=(*shape, num_classes))).astype(np.float32)
    return scores, rng.dirichlet(np.ones(num_classes), size=shape).astype(np.float32)


PEERS: dict[str, Peer] = {
    "optax:sparsemax_loss": Peer(
        lambda x, y: optax.losses.sparsemax_loss(x, y),
        lambda x, y: jaxloss.sparsemax_loss(x, y, reduction="none"),
        _logits_binary_labels_of_random_shape,
        'sparsemax_loss(logits, labels, reduction="none")',
    ),
    "optax:multiclass_sparsemax_loss": Peer(
        lambda x, y: optax.losses.multiclass_sparsemax_loss(x, y),
        lambda x, y: jaxloss.multiclass_sparsemax_loss(x, y, reduction="none"),
        _logits_labels_of_random_shape,
        'multiclass_sparsemax_loss(logits, labels, reduction="none")',
    ),
    "optax:make_fenchel_young_loss": Peer(
        lambda s, t, max_fun: optax.losses.make_fenchel_young_loss(MAX_FUNS[max_fun])(s, t),
        lambda s, t, max_fun: jaxloss.fenchel_young(MAX_FUNS[max_fun])(s, t, reduction="none"),
        _scores_targets_of_random_shape,
        'fenchel_young(max_fun)(scores, targets, reduction="none")',
        options=tuple({"max_fun": name} for name in MAX_FUNS),
        differentiable=(0, 1),
    ),
}

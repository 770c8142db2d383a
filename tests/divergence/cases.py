"""The divergence losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import optax

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import NUM_CLASSES, log_probs_labels, pair
from tests._suite.numpy_reference import log_softmax
from tests._suite.peer import Peer
from tests.divergence import reference as ref


def _log_input_target(rng: np.random.Generator, batch: int) -> tuple:
    log_input, _ = log_probs_labels(rng, batch)
    target = np.exp(log_softmax(rng.normal(size=(batch, NUM_CLASSES))))
    return log_input, target.astype(np.float32)


def _unnormalized(rng: np.random.Generator, batch: int) -> tuple:
    """Log-measures and positive target measures that do not sum to 1."""
    log_predictions = rng.normal(size=(batch, NUM_CLASSES)).astype(np.float32)
    return log_predictions, rng.uniform(0.1, 3.0, size=(batch, NUM_CLASSES)).astype(np.float32)


CASES: dict[str, Case] = {
    # Signed: per element; the sum is >= 0 only for normalized distributions.
    "kl_div": Case(
        jaxloss.kl_div, _log_input_target, ref.kl_div, differentiable=(0, 1), free=(0,), signed=True
    ),
    "gaussian_kl": Case(
        jaxloss.gaussian_kl, pair, ref.gaussian_kl, differentiable=(0, 1), free=(0,)
    ),
    # exp(20 · 4.4) is near float32's maximum.
    "generalized_kl": Case(
        jaxloss.generalized_kl,
        _unnormalized,
        ref.generalized_kl,
        differentiable=(0, 1),
        free=(0,),
        max_scale=20.0,
    ),
}


def _quietly(fn):
    """``fn`` without its warnings (torch's on ``"mean"`` of ``kl_div``, optax's deprecations)."""

    def call(*inputs, **options):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*inputs, **options)

    return call


def _random_shape(rng, min_ndim: int = 1) -> tuple[int, ...]:
    return tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(min_ndim, 4)))


def _distributions_of_random_shape(log_target: bool):
    """Log-probabilities and targets (probabilities, or log-probabilities) over the last axis."""

    def make_inputs(rng) -> tuple:
        shape = _random_shape(rng)
        log_input, log_target_probs = (log_softmax(rng.normal(size=shape)) for _ in range(2))
        target = log_target_probs if log_target else np.exp(log_target_probs)
        return log_input.astype(np.float32), target.astype(np.float32)

    return make_inputs


def _distributions_and_where(rng) -> tuple:
    log_input, target = _distributions_of_random_shape(log_target=False)(rng)
    return log_input, target, rng.uniform(size=log_input.shape) < 0.7


def _measures_of_random_shape(rng) -> tuple:
    """Unnormalized log-measures and positive measures, 2 or 3 axes (for ``axis=(0, -1)``)."""
    shape = _random_shape(rng, min_ndim=2)
    log_predictions = rng.normal(size=shape).astype(np.float32)
    return log_predictions, rng.uniform(0.1, 3.0, size=shape).astype(np.float32)


def _measures_and_where(rng) -> tuple:
    log_predictions, targets = _measures_of_random_shape(rng)
    return log_predictions, targets, rng.uniform(size=targets.shape) < 0.7


def _torch_kl_div(*inputs, **options):
    import torch

    return torch.nn.functional.kl_div(*inputs, **{"reduction": "none", **options})


def _kl_div_none(*inputs, **options):
    return jaxloss.kl_div(*inputs, **{"reduction": "none", **options})


KL_REDUCTIONS = ({}, {"reduction": "mean"}, {"reduction": "batchmean"}, {"reduction": "sum"})
AXES = ({}, {"axis": 0}, {"axis": None})

PEERS: dict[str, Peer] = {
    "torch:kl_div": Peer(
        _quietly(_torch_kl_div),
        _kl_div_none,
        _distributions_of_random_shape(log_target=False),
        "kl_div(logprobs, targets, log_target=)",
        options=KL_REDUCTIONS,
        differentiable=(0, 1),
    ),
    "torch:kl_div[log_target]": Peer(
        _quietly(_torch_kl_div),
        _kl_div_none,
        _distributions_of_random_shape(log_target=True),
        "kl_div(logprobs, targets, log_target=)",
        options=tuple({"log_target": True, **o} for o in KL_REDUCTIONS),
        differentiable=(0, 1),
    ),
    # optax sums over `axis` (the last by default); kl_div is per element, as torch's.
    "optax:kl_divergence": Peer(
        optax.losses.kl_divergence,
        lambda x, t, axis=-1: jaxloss.kl_div(x, t, reduction="none").sum(axis),
        _distributions_of_random_shape(log_target=False),
        'kl_div(log_predictions, targets, where=, reduction="none").sum(axis)',
        options=AXES,
        differentiable=(0, 1),
    ),
    "optax:kl_divergence[where]": Peer(
        lambda x, t, where, **o: optax.losses.kl_divergence(x, t, where=where, **o),
        lambda x, t, where, axis=-1: jaxloss.kl_div(x, t, where=where, reduction="none").sum(axis),
        _distributions_and_where,
        'kl_div(log_predictions, targets, where=, reduction="none").sum(axis)',
        options=AXES,
        differentiable=(0, 1),
    ),
    "optax:kl_divergence_with_log_targets": Peer(
        optax.losses.kl_divergence_with_log_targets,
        lambda x, t, axis=-1: jaxloss.kl_div(x, t, log_target=True, reduction="none").sum(axis),
        _distributions_of_random_shape(log_target=True),
        'kl_div(log_predictions, log_targets, log_target=True, reduction="none").sum(axis)',
        options=AXES,
        differentiable=(0, 1),
    ),
    **{
        f"optax:{name}": Peer(
            _quietly(getattr(optax.losses, name)),
            lambda x, t, **o: jaxloss.generalized_kl(x, t, reduction="none", **o),
            _measures_of_random_shape,
            'generalized_kl(log_predictions, targets, axis=, reduction="none")',
            options=(*AXES, {"axis": (0, -1)}),
            differentiable=(0, 1),
        )
        # convex_kl_divergence: optax's deprecated name of generalized_kl_divergence.
        for name in ("generalized_kl_divergence", "convex_kl_divergence")
    },
    # optax's `where` leaves elements out of the sum; generalized_kl's masks whole examples.
    "optax:generalized_kl_divergence[where]": Peer(
        lambda x, t, where, **o: optax.losses.generalized_kl_divergence(x, t, where=where, **o),
        lambda x, t, where, axis=-1: (
            jaxloss.kl_div(x, t, where=where, reduction="none").sum(axis)
            + jnp.sum(jnp.exp(x) - t, axis, where=where)
        ),
        _measures_and_where,
        'kl_div(log_predictions, targets, where=where, reduction="none").sum(axis)'
        " + jnp.sum(jnp.exp(log_predictions) - targets, axis, where=where)",
        options=(*AXES, {"axis": (0, -1)}),
        differentiable=(0, 1),
    ),
}

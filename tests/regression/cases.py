"""The regression losses as the shared suites see them: one ``Case`` per loss and variant."""

from __future__ import annotations

import numpy as np
import optax

import jaxloss
from tests._suite.case import Case
from tests._suite.inputs import FEATURES, pair
from tests._suite.peer import Peer
from tests.regression import reference as ref


def _torch_reference(name: str):
    """``torch.nn.functional.<name>`` per element in float64: the oracle API.md names."""

    def reference(*inputs, **options):
        import torch

        tensors = [torch.tensor(np.asarray(x), dtype=torch.float64) for x in inputs]
        return getattr(torch.nn.functional, name)(*tensors, reduction="none", **options).numpy()

    return reference


def _weighted_pair(rng: np.random.Generator, batch: int) -> tuple:
    predictions, targets = pair(rng, batch)
    weights = rng.uniform(0.1, 2.0, size=(batch, FEATURES)).astype(np.float32)
    return predictions, targets, weights


def _with_weights(fn):
    """``fn`` with its ``weights`` positional, so that the suites draw and mask them."""

    def loss(predictions, targets, weights, **options):
        return fn(predictions, targets, weights=weights, **options)

    return loss


def _torch_weighted_reference(name: str):
    """torch's weighted loss per element (``w·ℓ``), float64; ``weights`` the third input."""

    def reference(predictions, targets, weights, **options):
        import torch

        weight = torch.tensor(np.asarray(weights), dtype=torch.float64)
        return _torch_reference(name)(predictions, targets, weight=weight, **options)

    return reference


def _weighted_mean(none, predictions, targets, weights, **_) -> float:
    """torch 2.13's weighted ``"mean"`` of ``mse_loss`` and ``l1_loss``: Σ w·ℓ / Σ w."""
    return none.sum() / np.asarray(weights, np.float64).sum()


def _gaussian(rng: np.random.Generator, batch: int) -> tuple:
    predictions, targets = pair(rng, batch)
    variances = np.exp(rng.normal(size=(batch, FEATURES)))
    return predictions, targets, variances.astype(np.float32)


def _gaussian_shared(rng: np.random.Generator, batch: int) -> tuple:
    """One variance per row, shared over the last axis: torch's ``var`` of ``input.shape[:-1]``."""
    predictions, targets = pair(rng, batch)
    return predictions, targets, np.exp(rng.normal(size=batch)).astype(np.float32)


def _poisson(rng: np.random.Generator, batch: int) -> tuple:
    """Log-rates and real non-negative targets (some 0, some fractional, most counts)."""
    log_rates = rng.normal(size=(batch, FEATURES)).astype(np.float32)
    targets = rng.poisson(2.0, size=(batch, FEATURES)) + rng.uniform(0, 0.5, (batch, FEATURES))
    return log_rates, np.where(targets < 0.3, 0, targets).astype(np.float32)


def _poisson_rates_counts(rng: np.random.Generator, batch: int) -> tuple:
    """Positive rates and integer counts (0, 1 and above: both sides of Stirling's cut)."""
    rates = rng.uniform(0.1, 4.0, size=(batch, FEATURES)).astype(np.float32)
    return rates, rng.poisson(2.0, size=(batch, FEATURES)).astype(np.int32)


CASES: dict[str, Case] = {
    "mse": Case(jaxloss.mse, pair, ref.mse, differentiable=(0, 1), free=(0, 1)),
    "mae": Case(jaxloss.mae, pair, ref.mae, differentiable=(0, 1), free=(0, 1)),
    "huber": Case(
        jaxloss.huber,
        pair,
        ref.huber,
        kwargs={"delta": 0.7},
        differentiable=(0, 1),
        hyperparameters={"delta": 1.3},
        invalid={"delta": 0.0},
        free=(0, 1),
    ),
    "smooth_l1": Case(
        jaxloss.smooth_l1,
        pair,
        ref.smooth_l1,
        kwargs={"beta": 0.6},
        differentiable=(0, 1),
        hyperparameters={"beta": 0.0},
        invalid={"beta": -0.5},
        free=(0, 1),
    ),
    "log_cosh": Case(jaxloss.log_cosh, pair, ref.log_cosh, differentiable=(0, 1), free=(0, 1)),
    "mse[weights]": Case(
        _with_weights(jaxloss.mse),
        _weighted_pair,
        _torch_weighted_reference("mse_loss"),
        differentiable=(0, 1, 2),
        reference_mean=_weighted_mean,
        free=(0, 1),
    ),
    "mae[weights]": Case(
        _with_weights(jaxloss.mae),
        _weighted_pair,
        _torch_weighted_reference("l1_loss"),
        differentiable=(0, 1, 2),
        reference_mean=_weighted_mean,
        free=(0, 1),
    ),
    # torch's weighted Huber "mean" divides by the count: the default reference mean.
    "huber[weights]": Case(
        _with_weights(jaxloss.huber),
        _weighted_pair,
        _torch_weighted_reference("huber_loss"),
        kwargs={"delta": 0.7},
        differentiable=(0, 1, 2),
        hyperparameters={"delta": 1.3},
        free=(0, 1),
    ),
    # Signed: log σ² < 0 for σ² < 1.
    "gaussian_nll": Case(
        jaxloss.gaussian_nll,
        _gaussian,
        _torch_reference("gaussian_nll_loss"),
        differentiable=(0, 1, 2),
        hyperparameters={"eps": 0.5},
        invalid={"eps": -1.0},
        free=(0, 1),
        signed=True,
    ),
    "gaussian_nll[shared]": Case(
        jaxloss.gaussian_nll,
        _gaussian_shared,
        _torch_reference("gaussian_nll_loss"),
        kwargs={"full": True},
        differentiable=(0, 1, 2),
        free=(0, 1),
        signed=True,
    ),
    # Signed: the constant log t! is left out. exp(20 · 4.4) is near float32's maximum.
    "poisson_nll": Case(
        jaxloss.poisson_nll,
        _poisson,
        _torch_reference("poisson_nll_loss"),
        differentiable=(0, 1),
        free=(0,),
        max_scale=20.0,
        signed=True,
    ),
    # Integer counts: the Stirling term jumps at t = 1, so targets are not differentiated.
    "poisson_nll[rates]": Case(
        jaxloss.poisson_nll,
        _poisson_rates_counts,
        _torch_reference("poisson_nll_loss"),
        kwargs={"log_input": False, "full": True},
        hyperparameters={"eps": 0.5},
        invalid={"eps": -1.0},
        signed=True,
    ),
}

ALIASES = {"l1": "mae"}


def _torch(name: str):
    """``torch.nn.functional.<name>`` with ``reduction="none"`` unless an option says else."""

    def peer(*inputs, **options):
        import torch

        return getattr(torch.nn.functional, name)(*inputs, **{"reduction": "none", **options})

    return peer


def _random_shape(rng) -> tuple[int, ...]:
    return tuple(int(n) for n in rng.integers(1, 6, size=rng.integers(1, 4)))


def _pair_of_random_shape(rng) -> tuple:
    shape = _random_shape(rng)
    return tuple(rng.normal(size=shape).astype(np.float32) for _ in range(2))


def _weighted_pair_of_random_shape(rng) -> tuple:
    predictions, targets = _pair_of_random_shape(rng)
    weights = rng.uniform(0.1, 2.0, size=predictions.shape)
    # Some weights 0: they take no part in torch's weighted mean.
    weights[rng.uniform(size=predictions.shape) < 0.2] = 0
    return predictions, targets, weights.astype(np.float32)


def _gaussian_of_random_shape(layout: str):
    """Means, targets and variances; ``layout`` is torch's: ``"same"`` shape as the means,
    ``"shared"`` (without the last axis), or ``"one_axis"`` (one axis of size 1). A fifth of
    the variances lie below 1e-3, so that ``eps=0.01`` clamps them (and their gradient)."""

    def make_inputs(rng) -> tuple:
        predictions, targets = _pair_of_random_shape(rng)
        shape = predictions.shape
        if layout == "shared":
            shape = shape[:-1]
        elif layout == "one_axis":
            axis = int(rng.integers(len(shape)))
            shape = (*shape[:axis], 1, *shape[axis + 1 :])
        variances = np.exp(rng.normal(size=shape))
        variances = np.where(rng.uniform(size=shape) < 0.2, 1e-4, variances)
        return predictions, targets, variances.astype(np.float32)

    return make_inputs


def _poisson_of_random_shape(counts: bool):
    """Positive predictions (rates or log-rates) and targets: integer counts with zeros, or
    positive reals where torch's target gradient with ``full`` is finite (it is NaN at 0)."""

    def make_inputs(rng) -> tuple:
        shape = _random_shape(rng)
        predictions = rng.uniform(0.1, 3.0, size=shape).astype(np.float32)
        if counts:
            targets = rng.poisson(1.5, size=shape)
        else:
            targets = rng.uniform(0.05, 5.0, size=shape)
        return predictions, targets.astype(np.float32)

    return make_inputs


REDUCTIONS = ({}, {"reduction": "mean"}, {"reduction": "sum"})


def _every(*options: dict) -> tuple[dict, ...]:
    """Each option combination with each reduction (``{}``: ``"none"``)."""
    return tuple({**o, **r} for o in options for r in REDUCTIONS)


def _none(fn):
    """``fn`` with ``reduction="none"`` unless an option says else (torch's default here)."""
    return lambda *inputs, **o: fn(*inputs, **{"reduction": "none", **o})


def _torch_weighted(name: str):
    peer = _torch(name)
    return lambda p, t, w, **o: peer(p, t, weight=w, **o)


GAUSSIAN_OPTIONS = _every({}, {"full": True}, {"eps": 0.01}, {"full": True, "eps": 0.01})
POISSON_OPTIONS = _every(
    *(
        {"log_input": log_input, "full": full, **eps}
        for log_input in (True, False)
        for full in (False, True)
        for eps in ({}, {"eps": 0.5})
    )
)


PEERS: dict[str, Peer] = {
    "torch:mse_loss": Peer(
        _torch("mse_loss"),
        lambda p, t, **o: jaxloss.mse(p, t, **{"reduction": "none", **o}),
        _pair_of_random_shape,
        "mse(predictions, targets)",
        options=({}, {"reduction": "mean"}, {"reduction": "sum"}),
        differentiable=(0, 1),
    ),
    "optax:squared_error": Peer(
        lambda p, t: optax.losses.squared_error(p, t),
        lambda p, t: jaxloss.mse(p, t, reduction="none"),
        _pair_of_random_shape,
        'mse(predictions, targets, reduction="none")',
        differentiable=(0, 1),
    ),
    "torch:mse_loss[weight]": Peer(
        _torch_weighted("mse_loss"),
        _none(lambda p, t, w, **o: jaxloss.mse(p, t, weights=w, **o)),
        _weighted_pair_of_random_shape,
        "mse(predictions, targets, weights=)",
        options=REDUCTIONS,
        differentiable=(0, 1, 2),
    ),
    "torch:l1_loss": Peer(
        _torch("l1_loss"),
        _none(jaxloss.mae),
        _pair_of_random_shape,
        "mae(predictions, targets)",
        options=REDUCTIONS,
        differentiable=(0, 1),
    ),
    "torch:l1_loss[weight]": Peer(
        _torch_weighted("l1_loss"),
        _none(lambda p, t, w, **o: jaxloss.mae(p, t, weights=w, **o)),
        _weighted_pair_of_random_shape,
        "mae(predictions, targets, weights=)",
        options=REDUCTIONS,
        differentiable=(0, 1, 2),
    ),
    "torch:huber_loss": Peer(
        _torch("huber_loss"),
        _none(jaxloss.huber),
        _pair_of_random_shape,
        "huber(predictions, targets, delta=)",
        options=_every({}, {"delta": 0.5}, {"delta": 2.0}),
        differentiable=(0, 1),
    ),
    "torch:huber_loss[weight]": Peer(
        _torch_weighted("huber_loss"),
        _none(lambda p, t, w, **o: jaxloss.huber(p, t, weights=w, **o)),
        _weighted_pair_of_random_shape,
        "huber(predictions, targets, delta=, weights=)",
        options=_every({}, {"delta": 0.5}),
        differentiable=(0, 1, 2),
    ),
    "torch:smooth_l1_loss": Peer(
        _torch("smooth_l1_loss"),
        _none(jaxloss.smooth_l1),
        _pair_of_random_shape,
        "smooth_l1(predictions, targets, beta=)",
        options=_every({}, {"beta": 0.5}, {"beta": 0.0}),
        differentiable=(0, 1),
    ),
    **{
        f"torch:gaussian_nll_loss{variant}": Peer(
            _torch("gaussian_nll_loss"),
            _none(jaxloss.gaussian_nll),
            _gaussian_of_random_shape(layout),
            "gaussian_nll(predictions, targets, variances, full=, eps=)",
            options=GAUSSIAN_OPTIONS,
            differentiable=(0, 1, 2),
        )
        for variant, layout in (("", "same"), ("[shared]", "shared"), ("[one_axis]", "one_axis"))
    },
    "torch:poisson_nll_loss": Peer(
        _torch("poisson_nll_loss"),
        _none(jaxloss.poisson_nll),
        _poisson_of_random_shape(counts=False),
        "poisson_nll(predictions, targets, log_input=, full=, eps=)",
        options=POISSON_OPTIONS,
        differentiable=(0, 1),
    ),
    # Counts with zeros: torch's target gradient with full=True is NaN at 0 (jaxloss's is not).
    "torch:poisson_nll_loss[counts]": Peer(
        _torch("poisson_nll_loss"),
        _none(jaxloss.poisson_nll),
        _poisson_of_random_shape(counts=True),
        "poisson_nll(predictions, targets, log_input=, full=, eps=)",
        options=POISSON_OPTIONS,
    ),
    "optax:huber_loss": Peer(
        lambda p, t, **o: optax.losses.huber_loss(p, t, **o),
        lambda p, t, **o: jaxloss.huber(p, t, reduction="none", **o),
        _pair_of_random_shape,
        'huber(predictions, targets, delta=, reduction="none")',
        options=({}, {"delta": 0.5}, {"delta": 2.0}),
        differentiable=(0, 1),
    ),
    "optax:log_cosh": Peer(
        lambda p, t: optax.losses.log_cosh(p, t),
        lambda p, t: jaxloss.log_cosh(p, t, reduction="none"),
        _pair_of_random_shape,
        'log_cosh(predictions, targets, reduction="none")',
        differentiable=(0, 1),
    ),
    "optax:l2_loss": Peer(
        lambda p, t: optax.losses.l2_loss(p, t),
        lambda p, t: 0.5 * jaxloss.mse(p, t, reduction="none"),
        _pair_of_random_shape,
        '0.5 * mse(predictions, targets, reduction="none")',
        differentiable=(0, 1),
    ),
}

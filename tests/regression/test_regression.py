"""Regression losses: torch parity (including broadcasting) and large-error stability."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss

RTOL = 2e-5
REDUCTIONS = ["mean", "sum", "none"]
SHAPE_PAIRS = [((7, 3), (7, 3)), ((4, 5, 2), (5, 2)), ((6, 1), (1, 4))]

CASES = [
    ("mse", {}, F.mse_loss, {}),
    ("mae", {}, F.l1_loss, {}),
    ("huber", {"delta": 0.8}, F.huber_loss, {"delta": 0.8}),
    ("huber", {"delta": 2.5}, F.huber_loss, {"delta": 2.5}),
    ("smooth_l1", {"beta": 0.5}, F.smooth_l1_loss, {"beta": 0.5}),
    ("smooth_l1", {"beta": 0.0}, F.smooth_l1_loss, {"beta": 0.0}),
]


@pytest.mark.parametrize(
    "case, shapes, reduction",
    list(itertools.product(CASES, SHAPE_PAIRS, REDUCTIONS)),
    ids=lambda p: str(p[0]) if isinstance(p, tuple) and isinstance(p[0], str) else None,
)
def test_matches_torch(case, shapes, reduction):
    name, options, torch_fn, torch_options = case
    rng = np.random.default_rng(0)
    predictions = (2 * rng.normal(size=shapes[0])).astype(np.float32)
    targets = (2 * rng.normal(size=shapes[1])).astype(np.float32)
    ours = getattr(jaxloss, name)(predictions, targets, reduction=reduction, **options)
    with pytest.warns(UserWarning) if shapes[0] != shapes[1] else _no_warning():
        expected = torch_fn(
            torch.tensor(predictions, dtype=torch.float64),
            torch.tensor(targets, dtype=torch.float64),
            reduction=reduction,
            **torch_options,
        )
    np.testing.assert_allclose(ours, expected.numpy(), rtol=RTOL, atol=1e-6)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_log_cosh_is_stable_for_large_errors():
    predictions = jnp.array([1000.0, -1000.0, 1e-3, 0.0])
    value, grad = jax.value_and_grad(lambda p: jaxloss.log_cosh(p, jnp.zeros(4), reduction="sum"))(
        predictions
    )
    expected = 2 * (1000.0 - np.log(2.0)) + np.log(np.cosh(1e-3))
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grad, np.tanh([1000.0, -1000.0, 1e-3, 0.0]), rtol=1e-6, atol=0)


def test_integer_targets_are_accepted_but_not_integer_predictions():
    np.testing.assert_allclose(jaxloss.mse(jnp.array([1.5, 2.0]), jnp.array([1, 2])), 0.125)
    with pytest.raises(TypeError, match="`predictions`"):
        jaxloss.mse(jnp.array([1, 2]), jnp.array([1.0, 2.0]))


def test_shapes_that_do_not_broadcast_name_both_arguments():
    with pytest.raises(ValueError, match=r"`predictions` \(3,\).*`targets` \(4,\)"):
        jaxloss.huber(jnp.zeros(3), jnp.zeros(4))


def test_mae_gradient_at_an_exact_match_is_zero_as_in_torch():
    grad = jax.grad(jaxloss.mae)(jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(grad, [0.0, 0.5])


@pytest.mark.parametrize("error", [1e-4, 1e-2, 0.5, 3.9, 4.1, 30.0])
def test_log_cosh_keeps_relative_precision(error):
    value = jaxloss.log_cosh(jnp.array([error]), jnp.zeros(1))
    np.testing.assert_allclose(value, np.log(np.cosh(error)), rtol=2e-6)

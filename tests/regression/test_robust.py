"""The Charbonnier loss: the float64 formula, hand-worked values, its limits, and kornia."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from tests._suite.test_catalogues import _compiled_values_and_grads, _torch_value_and_grads
from tests.regression.cases_robust import PEERS, charbonnier_reference

EPSILONS = (0.0, 1e-3, 0.1, 1.0)


@jax.jit
def _every_epsilon(predictions, targets):
    """Per-element values and gradients for every ε, in one compilation."""
    out = {}
    for epsilon in EPSILONS:

        def total(p, e=epsilon):
            return jaxloss.charbonnier(p, targets, epsilon=e, reduction="sum")

        out[epsilon] = (
            jaxloss.charbonnier(predictions, targets, epsilon=epsilon, reduction="none"),
            jax.grad(total)(predictions),
        )
    return out


@pytest.mark.parametrize("shape", [(7,), (2, 5, 4, 3), (2, 3, 4, 3, 2)], ids=str)
def test_matches_the_formula_and_its_derivative(shape):
    rng = np.random.default_rng(len(shape))
    predictions, targets = (rng.normal(size=shape).astype(np.float32) for _ in range(2))
    predictions.flat[0] = targets.flat[0]  # an exact match: the kink of ε = 0
    ours = _every_epsilon(predictions, targets)
    d = predictions.astype(np.float64) - targets
    for epsilon, (value, grad) in ours.items():
        expected = charbonnier_reference(predictions, targets, epsilon=epsilon)
        np.testing.assert_allclose(value, expected, rtol=1e-6, atol=1e-7, err_msg=str(epsilon))
        # d/dd sqrt(d² + ε²) = d / sqrt(d² + ε²), and 0 at d = ε = 0 (MAE's subgradient).
        derivative = np.divide(d, expected, out=np.zeros_like(d), where=expected > 0)
        np.testing.assert_allclose(grad, derivative, rtol=1e-5, atol=1e-7, err_msg=str(epsilon))


def test_hand_worked_values():
    loss = jaxloss.charbonnier
    ones, zeros = np.ones(4, np.float32), np.zeros(2, np.float32)
    none, perfect, one, mae = jax.jit(  # one compilation for the four
        lambda: (
            loss(np.array([3.0, 0.0], np.float32), zeros, epsilon=4.0, reduction="none"),
            loss(ones, ones),
            loss(ones[:1], zeros[:1]),
            loss(np.array([1.0, -2.0], np.float32), zeros, epsilon=0.0),
        )
    )()
    assert none.tolist() == [5.0, 4.0]
    # LapSRN's ε: a perfect prediction costs ε, an error of 1 about 1.0000005.
    assert float(perfect) == pytest.approx(1e-3)
    assert float(one) == pytest.approx(1.0000005, rel=1e-7)
    assert float(mae) == 1.5  # MAE


def test_huge_errors_neither_overflow_nor_lose_epsilon():
    predictions = np.array([1e30, -3e38, 1e-6], np.float32)
    value, grad = jax.jit(  # one compilation
        jax.value_and_grad(
            lambda p: jaxloss.charbonnier(p, jnp.zeros(3), epsilon=1e-3, reduction="sum")
        )
    )(predictions)
    assert np.isfinite(float(value))
    np.testing.assert_allclose(grad, [1.0, -1.0, 1e-3], rtol=1e-5)


def test_epsilon_may_be_traced_and_differentiated():
    d = jnp.array([0.0, 0.3, -4.0])
    grad = jax.grad(lambda e: jaxloss.charbonnier(d, jnp.zeros(3), epsilon=e, reduction="sum"))
    expected = sum(0.5 / np.sqrt(x**2 + 0.25) for x in (0.0, 0.3, -4.0))
    assert float(jax.jit(grad)(0.5)) == pytest.approx(expected, rel=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="epsilon"):
        jaxloss.charbonnier(jnp.ones(2), jnp.ones(2), epsilon=-1e-3)
    with pytest.raises(TypeError, match="predictions"):
        jaxloss.charbonnier(jnp.ones(2, jnp.int32), jnp.ones(2))
    with pytest.raises(ValueError, match="predictions"):
        jaxloss.charbonnier(jnp.ones(2), jnp.ones(3))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kornia_gives_the_same_numbers(seed):
    key = "kornia:charbonnier_loss"
    entry = PEERS[key]
    inputs = tuple(np.asarray(x) for x in entry.make_inputs(np.random.default_rng(seed)))
    peers = [
        _torch_value_and_grads(key, inputs, options, np.random.default_rng(seed))
        for options in entry.options
    ]
    ours = _compiled_values_and_grads(
        entry.ours, inputs, entry.differentiable, entry.options, [c for _, c, _ in peers]
    )
    for (expected, _, expected_grads), (value, grads) in zip(peers, ours, strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
        for grad, expected_grad in zip(grads, expected_grads, strict=True):
            np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)

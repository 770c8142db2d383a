"""Divergences: torch parity for kl_div (every reduction, log_target), gaussian_kl against
torch.distributions, generalized_kl against its formula and optax."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from tests._suite import compiled
from tests._suite.numpy_reference import log_softmax
from tests.divergence import reference as ref

KL_DIV_REDUCTIONS = ["mean", "batchmean", "sum", "none"]


def _kl_div_inputs(log_target):
    rng = np.random.default_rng(0)
    log_input = log_softmax(rng.normal(size=(6, 5))).astype(np.float32)
    target = np.exp(log_softmax(2 * rng.normal(size=(6, 5)))).astype(np.float32)
    target[0, 0] = 0.0  # 0 log 0 = 0
    if log_target:
        target = log_softmax(rng.normal(size=(6, 5))).astype(np.float32)
    return log_input, target


@functools.cache
def _kl_div_ours(log_target):
    """Every reduction, in one compilation per ``log_target``."""
    log_input, target = _kl_div_inputs(log_target)
    return jax.jit(
        lambda: {
            r: jaxloss.kl_div(log_input, target, log_target=log_target, reduction=r)
            for r in KL_DIV_REDUCTIONS
        }
    )()


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@pytest.mark.parametrize(
    "log_target, reduction", list(itertools.product([False, True], KL_DIV_REDUCTIONS))
)
def test_kl_div_matches_torch(log_target, reduction):
    log_input, target = _kl_div_inputs(log_target)
    ours = _kl_div_ours(log_target)[reduction]
    expected = F.kl_div(
        torch.tensor(log_input, dtype=torch.float64),
        torch.tensor(target, dtype=torch.float64),
        reduction=reduction,
        log_target=log_target,
    )
    np.testing.assert_allclose(ours, expected.numpy(), rtol=2e-5, atol=1e-6)


def test_kl_div_batchmean_with_where_counts_rows_with_an_unmasked_entry():
    rng = np.random.default_rng(1)
    log_input = log_softmax(rng.normal(size=(4, 3))).astype(np.float32)
    target = np.exp(log_softmax(rng.normal(size=(4, 3)))).astype(np.float32)
    keep = np.array([True, False, True, True])
    where = np.broadcast_to(keep[:, None], (4, 3))
    masked, dropped = jax.jit(  # one compilation for both
        lambda: (
            jaxloss.kl_div(log_input, target, where=where, reduction="batchmean"),
            jaxloss.kl_div(log_input[keep], target[keep], reduction="batchmean"),
        )
    )()
    np.testing.assert_allclose(masked, dropped, rtol=1e-6)


def test_kl_div_gradient_is_finite_where_the_target_is_zero():
    grads = jax.jit(  # one compilation
        lambda: jax.grad(lambda x, t: jaxloss.kl_div(x, t), argnums=(0, 1))(
            jnp.log(np.array([0.5, 0.5], np.float32)), np.array([1.0, 0.0], np.float32)
        )
    )()
    assert all(np.all(np.isfinite(g)) for g in grads)


def _gaussian_kl_inputs():
    rng = np.random.default_rng(2)
    mean = rng.normal(size=(5, 4, 3)).astype(np.float32)
    log_var = rng.normal(size=(5, 4, 3)).astype(np.float32)
    return mean, log_var


@functools.cache
def _gaussian_kl_ours():
    """Both axes, in one compilation."""
    mean, log_var = _gaussian_kl_inputs()
    return jax.jit(
        lambda: {
            axis: jaxloss.gaussian_kl(mean, log_var, axis=axis, reduction="none")
            for axis in (-1, 1)
        }
    )()


@pytest.mark.parametrize("axis", [-1, 1])
def test_gaussian_kl_matches_torch_distributions(axis):
    mean, log_var = _gaussian_kl_inputs()
    posterior = torch.distributions.Normal(
        torch.tensor(mean, dtype=torch.float64),
        torch.tensor(np.exp(0.5 * log_var.astype(np.float64))),
    )
    prior = torch.distributions.Normal(0.0, 1.0)
    expected = torch.distributions.kl_divergence(posterior, prior).sum(axis).numpy()
    ours = _gaussian_kl_ours()[axis]
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-6)


# generalized_kl: every JAX computation below runs in one compiled function, cached.
GENERALIZED_AXES = [-1, 0, (0, 2), None]


def _measures():
    rng = np.random.default_rng(3)
    log_predictions = rng.normal(size=(3, 4, 5))
    targets = rng.uniform(0.1, 3.0, size=(3, 4, 5))
    targets[0, 0, :2] = 0.0  # 0 log 0 = 0
    return log_predictions, targets


def _generalized_kl_gradients(log_predictions, targets):
    """d/dx = eˣ − t, d/dt = log t − x; at t = 0 (where it is −inf) ``xlogx``'s finite
    convention, its gradient 0 for t log t, leaves −x − 1."""
    safe = np.where(targets > 0, targets, 1)
    d_targets = np.where(targets > 0, np.log(safe), -1) - log_predictions
    return np.exp(log_predictions) - targets, d_targets


@functools.cache
def _generalized_kl_ours():
    log_predictions, targets = _measures()
    keep = np.array([True, False, True])

    def run(x, t):
        out = {
            str(axis): compiled.value_and_grads(
                lambda x, t, axis=axis: jaxloss.generalized_kl(x, t, axis=axis, reduction="none"),
                x,
                t,
            )
            for axis in GENERALIZED_AXES
        }
        for reduction in ("mean", "sum"):
            out[reduction] = compiled.value_and_grads(
                lambda x, t, r=reduction: jaxloss.generalized_kl(
                    x, t, where=keep[:, None], reduction=r
                ),
                x,
                t,
            )
        # Normalized distributions: the KL divergence, as kl_div summed over the classes.
        p, q = jax.nn.log_softmax(x), jax.nn.softmax(t)
        out["normalized"] = (
            jaxloss.generalized_kl(p, q, reduction="none"),
            jaxloss.kl_div(p, q, reduction="none").sum(-1),
        )
        return out

    return jax.tree.map(
        np.asarray, jax.jit(run)(*(a.astype(np.float32) for a in (log_predictions, targets)))
    )


@pytest.mark.parametrize("axis", GENERALIZED_AXES, ids=str)
def test_generalized_kl_is_the_formula_over_any_axes(axis):
    log_predictions, targets = _measures()
    value, grads = _generalized_kl_ours()[str(axis)]
    expected = ref.generalized_kl(log_predictions, targets, axis=axis)
    assert value.shape == np.shape(expected)
    np.testing.assert_allclose(value, expected, rtol=2e-5, atol=1e-5)
    for g, e in zip(grads, _generalized_kl_gradients(log_predictions, targets), strict=True):
        np.testing.assert_allclose(g, e, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_generalized_kl_where_leaves_out_whole_examples(reduction):
    log_predictions, targets = _measures()
    value, grads = _generalized_kl_ours()[reduction]
    kept = ref.generalized_kl(log_predictions[[0, 2]], targets[[0, 2]])  # [2, 4]
    np.testing.assert_allclose(value, kept.mean() if reduction == "mean" else kept.sum(), rtol=2e-5)
    for g in grads:
        assert np.all(g[1] == 0)
    scale = 1 / kept.size if reduction == "mean" else 1
    for g, e in zip(grads, _generalized_kl_gradients(log_predictions, targets), strict=True):
        np.testing.assert_allclose(g[[0, 2]], scale * e[[0, 2]], rtol=2e-5, atol=1e-6)


def test_generalized_kl_of_distributions_is_the_kl_divergence():
    ours, kl = _generalized_kl_ours()["normalized"]
    np.testing.assert_allclose(ours, kl, rtol=1e-5, atol=1e-6)


def test_generalized_kl_zero_targets_match_optax_with_finite_gradients():
    # optax's value; its gradient in the targets is NaN at 0 (log 0 behind a where).
    log_predictions, targets = (a.astype(np.float32) for a in _measures())
    theirs = jax.jit(optax.losses.generalized_kl_divergence)(log_predictions, targets)
    value, grads = _generalized_kl_ours()["-1"]
    np.testing.assert_allclose(value, theirs, rtol=1e-5, atol=1e-6)
    assert all(np.all(np.isfinite(g)) for g in grads)


def test_negative_targets_give_nan_as_torch_and_optax():
    # A negative "probability" has no log: torch's kl_div and optax's generalized KL give
    # NaN, never a finite number (a floor at the smallest normal once gave -87 t).
    log_input = np.log(np.array([[0.5, 0.5]], np.float32))
    target = np.array([[-0.2, 1.2]], np.float32)
    expected = F.kl_div(torch.tensor(log_input), torch.tensor(target), reduction="sum")
    assert np.isnan(expected.item())
    kl_div, theirs, generalized_kl = jax.jit(  # one compilation for the three
        lambda: (
            jaxloss.kl_div(log_input, target, reduction="sum"),
            optax.losses.generalized_kl_divergence(log_input, target),
            jaxloss.generalized_kl(log_input, target),
        )
    )()
    assert np.isnan(kl_div)
    assert np.all(np.isnan(theirs))
    assert np.isnan(generalized_kl)


def test_generalized_kl_axis_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="`axis`=3"):
        jax.eval_shape(
            lambda: jaxloss.generalized_kl(jnp.zeros((2, 3)), jnp.ones((2, 3)), axis=(0, 3))
        )
    with pytest.raises(TypeError, match="`axis`"):
        jax.eval_shape(
            lambda: jaxloss.generalized_kl(jnp.zeros((2, 3)), jnp.ones((2, 3)), axis=1.0)
        )

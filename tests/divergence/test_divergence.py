"""Divergences: torch parity for kl_div (every reduction, log_target) and gaussian_kl against
torch.distributions."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from tests._suite.numpy_reference import log_softmax


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")
@pytest.mark.parametrize(
    "log_target, reduction",
    list(itertools.product([False, True], ["mean", "batchmean", "sum", "none"])),
)
def test_kl_div_matches_torch(log_target, reduction):
    rng = np.random.default_rng(0)
    log_input = log_softmax(rng.normal(size=(6, 5))).astype(np.float32)
    target = np.exp(log_softmax(2 * rng.normal(size=(6, 5)))).astype(np.float32)
    target[0, 0] = 0.0  # 0 log 0 = 0
    if log_target:
        target = log_softmax(rng.normal(size=(6, 5))).astype(np.float32)
    ours = jaxloss.kl_div(log_input, target, log_target=log_target, reduction=reduction)
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
    np.testing.assert_allclose(
        jaxloss.kl_div(log_input, target, where=where, reduction="batchmean"),
        jaxloss.kl_div(log_input[keep], target[keep], reduction="batchmean"),
        rtol=1e-6,
    )


def test_kl_div_gradient_is_finite_where_the_target_is_zero():
    grads = jax.grad(lambda x, t: jaxloss.kl_div(x, t), argnums=(0, 1))(
        jnp.log(jnp.array([0.5, 0.5])), jnp.array([1.0, 0.0])
    )
    assert all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("axis", [-1, 1])
def test_gaussian_kl_matches_torch_distributions(axis):
    rng = np.random.default_rng(2)
    mean = rng.normal(size=(5, 4, 3)).astype(np.float32)
    log_var = rng.normal(size=(5, 4, 3)).astype(np.float32)
    posterior = torch.distributions.Normal(
        torch.tensor(mean, dtype=torch.float64),
        torch.tensor(np.exp(0.5 * log_var.astype(np.float64))),
    )
    prior = torch.distributions.Normal(0.0, 1.0)
    expected = torch.distributions.kl_divergence(posterior, prior).sum(axis).numpy()
    ours = jaxloss.gaussian_kl(mean, log_var, axis=axis, reduction="none")
    np.testing.assert_allclose(ours, expected, rtol=2e-5, atol=1e-6)

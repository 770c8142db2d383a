"""Combinators: weighted named terms, injected (scheduled) hyperparameters, stateful losses."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxloss
from jaxloss import compose
from tests.margin import reference as margin_ref
from tests.pairwise import reference as pairwise_ref
from tests.regression import reference as regression_ref


def _embeddings(seed=0, batch=8, dim=4, classes=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    centers = rng.normal(size=(classes, dim)).astype(np.float32)
    return x, centers, rng.integers(0, classes, size=batch).astype(np.int32)


def test_weighted_terms_sum_with_scheduled_weights_and_report_each_term():
    x, centers, labels = _embeddings()
    schedule = optax.linear_schedule(0.0, 0.1, transition_steps=10)
    objective = compose.weighted_terms(
        arcface=(lambda e, c, y: jaxloss.arcface(e, c, y, scale=8.0), 1.0),
        center=(lambda e, c, y: jaxloss.center_loss(e, c, y), schedule),
    )
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(s, e):
        return objective(s, e, centers, labels)

    for s in (0, 5, 10, 20):
        total, values = step(s, x)
        arcface = margin_ref.arcface(x, centers, labels, scale=8.0).mean()
        center = margin_ref.center_loss(x, centers, labels).mean()
        np.testing.assert_allclose(values["arcface"], arcface, rtol=1e-5)
        np.testing.assert_allclose(values["center"], center, rtol=1e-5)
        np.testing.assert_allclose(total, arcface + float(schedule(s)) * center, rtol=1e-5)


def test_weighted_terms_gradient_is_the_weighted_sum_of_gradients():
    x, centers, labels = _embeddings(1)
    objective = compose.weighted_terms(
        ce=(lambda e: jaxloss.norm_softmax(e, centers, labels), 2.0),
        center=(lambda e: jaxloss.center_loss(e, centers, labels), jnp.float32(0.5)),
    )

    @jax.jit  # both sides compiled together, not dispatched op by op
    def run(x):
        grad = jax.grad(lambda e: objective(0, e)[0])(x)
        expected = 2.0 * jax.grad(lambda e: jaxloss.norm_softmax(e, centers, labels))(x) + 0.5 * (
            jax.grad(lambda e: jaxloss.center_loss(e, centers, labels))(x)
        )
        return grad, expected

    grad, expected = run(x)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_weighted_terms_errors():
    with pytest.raises(ValueError, match="at least one"):
        compose.weighted_terms()
    with pytest.raises(TypeError, match="pair"):
        compose.weighted_terms(mse=jaxloss.mse)
    objective = compose.weighted_terms(mse=(jaxloss.mse, 1.0))
    with pytest.raises(ValueError, match="scalar"):
        objective(0, jnp.ones(3), jnp.zeros(3), reduction="none")


def test_inject_hyperparams_schedules_a_margin_without_retracing():
    x, centers, labels = _embeddings(2)
    warmup = optax.linear_schedule(0.0, 0.5, transition_steps=4)
    head = compose.inject_hyperparams(jaxloss.arcface, margin=warmup, scale=16.0)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, e):
        return head.apply(state, e, centers, labels)

    state = head.init()
    for s in range(6):
        loss, state = step(state, x)
        expected = margin_ref.arcface(
            x, centers, labels, scale=16.0, margin=float(warmup(s))
        ).mean()
        np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert int(state.count) == 6


def test_inject_hyperparams_values_can_be_set_between_steps():
    head = compose.inject_hyperparams(jaxloss.huber, delta=1.0)
    state = head.init()
    state = state._replace(hyperparams={**state.hyperparams, "delta": jnp.float32(3.0)})
    loss, _ = jax.jit(head.apply)(state, jnp.array([2.0]), jnp.array([0.0]))
    np.testing.assert_allclose(
        loss, regression_ref.huber(np.array([2.0]), np.array([0.0]), 3.0), 1e-6
    )
    with pytest.raises(ValueError, match="at least one"):
        compose.inject_hyperparams(jaxloss.huber)


def test_center_loss_with_update_moves_centers_by_wen_et_al():
    x, centers, labels = _embeddings(3)
    keep = np.arange(8) % 4 != 0
    center = compose.center_loss_with_update(alpha=0.3)
    state = center.init(centers)
    (loss, new_state), grads = jax.value_and_grad(
        lambda e, s: center.apply(s, e, labels, where=keep), has_aux=True
    )(x, state)
    np.testing.assert_allclose(
        loss, margin_ref.center_loss(x, centers, labels)[keep].mean(), rtol=1e-5
    )
    np.testing.assert_allclose(
        new_state.centers,
        margin_ref.center_update(centers, x[keep], labels[keep], alpha=0.3),
        rtol=1e-5,
        atol=1e-6,
    )
    # The loss's gradient reaches the features only; the centers are state.
    np.testing.assert_allclose(
        grads, jax.grad(lambda e: jaxloss.center_loss(e, centers, labels, where=keep))(x)
    )
    state_grads = jax.grad(lambda s: center.apply(s, x, labels)[0])(state)
    np.testing.assert_array_equal(state_grads.centers, 0.0)


def test_stateful_loss_state_is_a_pytree_of_arrays_that_jit_carries():
    head = compose.inject_hyperparams(jaxloss.nt_xent, temperature=0.5)
    state = head.init()
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(state))
    z1, z2 = np.random.default_rng(4).normal(size=(2, 6, 3)).astype(np.float32)
    loss, new_state = jax.jit(head.apply)(state, z1, z2)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    np.testing.assert_allclose(
        loss, pairwise_ref.nt_xent(z1, z2, temperature=0.5).mean(), rtol=1e-5
    )

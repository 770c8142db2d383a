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
    # A StatefulLoss's apply (loss, state) as a term: named, not JAX's "dtype object".
    huber = compose.inject_hyperparams(jaxloss.huber, delta=1.0)
    stateful = compose.weighted_terms(h=(lambda p, t: huber.apply(huber.init(), p, t), 1.0))
    with pytest.raises(TypeError, match=r"Term 'h' must return a scalar, got a tuple"):
        stateful(0, jnp.ones(3), jnp.zeros(3))
    # A vector weight made a vector total.
    vector = compose.weighted_terms(mse=(jaxloss.mse, jnp.ones(2)))
    with pytest.raises(ValueError, match=r"weight of 'mse' must be a scalar"):
        vector(0, jnp.ones(3), jnp.zeros(3))
    with pytest.raises(ValueError, match=r"'delta' must be a scalar"):
        compose.inject_hyperparams(jaxloss.huber, delta=np.ones(2)).init()


def test_float64_losses_keep_their_weights_and_hyperparameters_exact():
    # Under jax_enable_x64, float64 inputs: weights and injected numbers are not rounded to
    # float32 (0.1 in float32 is 0.1 + 1.5e-9); float32 inputs still give float32.
    p64, t64 = np.array([1.0, 2.0, 3.0]), np.array([0.0, 0.0, 1.0])
    with jax.enable_x64(True):
        objective = compose.weighted_terms(mse=(jaxloss.mse, 0.1))
        total, _ = objective(0, p64, t64)
        assert total.dtype == jnp.float64
        assert float(total) == 0.1 * np.mean((p64 - t64) ** 2)
        assert objective(0, p64.astype(np.float32), t64.astype(np.float32))[0].dtype == jnp.float32
        huber = compose.inject_hyperparams(jaxloss.huber, delta=0.1)
        loss, _ = huber.apply(huber.init(), p64, t64)
        np.testing.assert_allclose(loss, regression_ref.huber(p64, t64, 0.1).mean(), rtol=1e-15)


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


def test_inject_hyperparams_values_set_by_hand_stay_until_set_again():
    # As optax.inject_hyperparams: a constant set by hand keeps its value at every later
    # step; a scheduled one is recomputed from the count.
    x, centers, labels = _embeddings(4)
    schedule = optax.linear_schedule(0.0, 0.5, transition_steps=2)
    head = compose.inject_hyperparams(jaxloss.arcface, margin=schedule, scale=4.0)
    state = head.init()
    state = state._replace(hyperparams={**state.hyperparams, "scale": jnp.float32(8.0)})
    apply = jax.jit(head.apply)
    for step in range(3):
        loss, state = apply(state, x, centers, labels)
        expected = margin_ref.arcface(x, centers, labels, scale=8.0, margin=float(schedule(step)))
        np.testing.assert_allclose(loss, expected.mean(), rtol=1e-5, err_msg=str(step))
    with pytest.raises(ValueError, match="at least one"):
        compose.inject_hyperparams(jaxloss.huber)


def test_inject_hyperparams_passes_options_that_are_not_numbers_as_they_are():
    # easy_margin and reduction are Python options (static in the loss); traced, they failed.
    x, centers, labels = _embeddings(5)
    head = compose.inject_hyperparams(
        jaxloss.arcface, margin=0.5, scale=4.0, easy_margin=True, reduction="sum"
    )
    state = head.init()
    assert set(state.hyperparams) == {"margin", "scale"}
    loss, _ = jax.jit(head.apply)(state, x, centers, labels)
    expected = margin_ref.arcface(x, centers, labels, scale=4.0, margin=0.5, easy_margin=True)
    np.testing.assert_allclose(loss, expected.sum(), rtol=1e-5)


def test_center_loss_with_update_moves_centers_by_wen_et_al():
    x, centers, labels = _embeddings(3)
    keep = np.arange(8) % 4 != 0
    center = compose.center_loss_with_update(alpha=0.3)

    @jax.jit  # everything compiled together, not dispatched op by op
    def run(x, centers):
        state = center.init(centers)
        (loss, new_state), grads = jax.value_and_grad(
            lambda e, s: center.apply(s, e, labels, where=keep), has_aux=True
        )(x, state)
        plain_grads = jax.grad(lambda e: jaxloss.center_loss(e, centers, labels, where=keep))(x)
        state_grads = jax.grad(lambda s: center.apply(s, x, labels)[0])(state)
        return loss, new_state, grads, plain_grads, state_grads

    loss, new_state, grads, plain_grads, state_grads = run(x, centers)
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
    np.testing.assert_allclose(grads, plain_grads)
    np.testing.assert_array_equal(state_grads.centers, 0.0)


@pytest.mark.parametrize("name", ["curricularface", "adaface"])
def test_face_statistics_are_state_without_gradient_and_keep_their_dtype(name):
    # The official buffers: updated under no_grad, float32 whatever the inputs.
    x, centers, labels = _embeddings(6)
    head = getattr(compose, f"{name}_with_state")(momentum=0.5)

    def loss(state, x):
        return head.apply(state, x, centers, labels)

    @jax.jit
    def run(state, x):
        return jax.grad(lambda s: loss(s, x)[0])(state), loss(state, x)[1]

    state_grads, _ = run(head.init(), x)
    for g in jax.tree.leaves(state_grads):
        np.testing.assert_array_equal(g, 0.0)
    with jax.enable_x64(True):
        state = head.init()
        _, new_state = jax.jit(loss)(state, x.astype(np.float64))
        assert jax.tree.map(lambda a: a.dtype, new_state) == jax.tree.map(lambda a: a.dtype, state)


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

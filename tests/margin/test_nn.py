"""The flax (nnx) modules: the functional losses' numbers, parameters and state handled."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss.nn import MARGIN_LOSSES, CenterBuffer, CenterLoss, MarginSoftmaxHead
from tests._suite.registry import REGISTRY

# The margin heads' options, from their cases (tests/margin/cases.py).
HEADS = {
    name: case.kwargs
    for name, case in REGISTRY.items()
    if case.margin_head and case.fn is getattr(jaxloss, name, None)
}


def _batch(seed=0, batch=12, features=5, classes=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, features)).astype(np.float32)
    return x, rng.integers(0, classes, size=batch).astype(np.int32)


def test_heads_cover_the_margin_family():
    # The face heads, not margin_head Cases, are tested in tests/margin/test_face.py.
    face = ["elasticface", "magface", "subcenter_arcface"]
    assert sorted(MARGIN_LOSSES) == sorted([*HEADS, *face])


@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_equals_the_functional_loss(name, chunk_size):
    head = MarginSoftmaxHead(
        5, 7, loss=name, chunk_size=chunk_size, rngs=nnx.Rngs(1), **HEADS[name]
    )
    x, y = _batch()
    centers = np.asarray(head.centers[...])
    where = np.arange(12) % 4 != 1

    @nnx.jit
    def run(head, centers):
        # Both sides' values and gradients in one compiled function, not run eagerly.
        module = nnx.value_and_grad(lambda h: h(x, y, where=where))(head)
        functional = jax.value_and_grad(
            lambda c: getattr(jaxloss, name)(
                x, c, y, where=where, chunk_size=chunk_size, **HEADS[name]
            )
        )(centers)
        return module, functional

    (value, grads), (expected, expected_grad) = run(head, centers)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    np.testing.assert_allclose(grads["centers"][...], expected_grad, rtol=1e-5, atol=1e-7)


def test_call_options_override_the_defaults_and_may_be_traced():
    head = MarginSoftmaxHead(5, 7, loss="arcface", scale=16.0, margin=0.5, rngs=nnx.Rngs(0))
    x, y = _batch()
    traces = []

    @nnx.jit
    def loss(head, margin):
        traces.append(None)
        return head(x, y, margin=margin)

    @nnx.jit
    def default_and_expected(head, centers):
        # The head with its own margin, and the functional loss at every margin, compiled once.
        expected = {
            margin: jaxloss.arcface(x, centers, y, scale=16.0, margin=margin)
            for margin in (0.0, 0.1, 0.3, 0.5)
        }
        return head(x, y), expected

    default, expected = default_and_expected(head, np.asarray(head.centers[...]))
    for margin in (0.0, 0.1, 0.3):
        np.testing.assert_allclose(loss(head, jnp.float32(margin)), expected[margin], rtol=1e-6)
    assert len(traces) == 1
    # the constructor's value is the default
    np.testing.assert_allclose(default, expected[0.5], rtol=1e-6)


def test_head_options_are_checked():
    with pytest.raises(TypeError, match="cosface has no option \\['m2'\\]"):
        MarginSoftmaxHead(5, 7, loss="cosface", m2=0.3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="loss"):
        MarginSoftmaxHead(5, 7, loss="softmax", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="chunk_size"):
        MarginSoftmaxHead(5, 7, chunk_size=0, rngs=nnx.Rngs(0))
    head = MarginSoftmaxHead(5, 7, loss="norm_softmax", rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="margin"):
        head(*_batch(), margin=0.1)


def test_constructor_options_given_as_scalar_arrays_are_numbers():
    # NumPy or JAX scalars (a config read with np.float32) are the same static options; flax
    # refused them inside the options' dict with an error about pytree attributes.
    x, y = _batch()
    plain = MarginSoftmaxHead(5, 7, scale=16.0, margin=0.3, rngs=nnx.Rngs(0))
    arrays = MarginSoftmaxHead(
        5, 7, scale=jnp.float32(16.0), margin=np.float64(0.3), rngs=nnx.Rngs(0)
    )
    assert arrays.hyperparameters == {"scale": 16.0, "margin": 0.3}
    assert all(type(value) is float for value in arrays.hyperparameters.values())
    np.testing.assert_array_equal(arrays(x, y), plain(x, y))
    with pytest.raises(TypeError, match=r"`scale` must be a number .* shape \(3,\)"):
        MarginSoftmaxHead(5, 7, scale=jnp.ones(3), rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"`scale` must be a number .* traced"):
        jax.jit(lambda s: MarginSoftmaxHead(5, 7, scale=s, rngs=nnx.Rngs(0))(x, y))(16.0)


def test_head_trains_with_an_nnx_optimizer_as_the_functional_loss_with_optax():
    x, y = _batch(3)
    head = MarginSoftmaxHead(5, 7, loss="cosface", scale=16.0, rngs=nnx.Rngs(2))
    centers = np.asarray(head.centers[...])
    optimizer = nnx.Optimizer(head, optax.sgd(0.1), wrt=nnx.Param)
    tx = optax.sgd(0.1)
    opt_state = tx.init(centers)

    @nnx.jit
    def step(head, optimizer, centers, opt_state):
        # One step of both, compiled once.
        grads = nnx.grad(lambda h: h(x, y))(head)
        optimizer.update(head, grads)
        g = jax.grad(lambda c: jaxloss.cosface(x, c, y, scale=16.0))(centers)
        updates, opt_state = tx.update(g, opt_state)
        return optax.apply_updates(centers, updates), opt_state

    for _ in range(3):
        # NumPy in at every step: the jit signature (and compilation) of the first one.
        centers, opt_state = jax.tree.map(np.asarray, step(head, optimizer, centers, opt_state))
    np.testing.assert_allclose(head.centers[...], centers, rtol=1e-5, atol=1e-7)


def test_cosines_are_the_normalized_scores():
    head = MarginSoftmaxHead(5, 7, rngs=nnx.Rngs(0))
    x, _ = _batch()
    w = np.asarray(head.centers[...], np.float64)
    expected = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
        w / np.linalg.norm(w, axis=1, keepdims=True)
    ).T
    cosines = nnx.jit(lambda h: h.cosines(x))(head)
    np.testing.assert_allclose(cosines, expected, rtol=1e-5, atol=1e-6)


def test_class_sharded_head_declares_its_partition_spec():
    head = MarginSoftmaxHead(5, 8, class_axis_name="classes", rngs=nnx.Rngs(0))
    spec = nnx.get_partition_spec(nnx.state(head))
    assert spec["centers"].get_value() == P("classes", None)


def test_center_loss_module_follows_wen_et_al():
    x, y = _batch(4, classes=3)
    module = CenterLoss(5, 3, alpha=0.6, rngs=nnx.Rngs(0))
    centers = np.asarray(module.centers[...])
    where = np.arange(12) % 3 != 0

    @nnx.jit
    def run(module, centers):
        # The module's two calls and the functional references, compiled once.
        loss = module(x, y, where=where)
        updated = module.centers[...]
        module(x, y, update=False)
        expected_loss = jaxloss.center_loss(x, centers, y, where=where)
        expected = jaxloss.center_update(centers, x, y, alpha=0.6, where=where)
        return loss, updated, expected_loss, expected

    loss, updated, expected_loss, expected = run(module, centers)
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    np.testing.assert_allclose(updated, expected, rtol=1e-6)
    # the call with update=False left the centers as the first call set them
    np.testing.assert_array_equal(module.centers[...], updated)


class _Embedder(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(5, 4, rngs=rngs)
        self.center = CenterLoss(4, 3, alpha=0.5)

    def __call__(self, x, y):
        return self.center(self.linear(x), y)


def test_center_buffer_is_state_moved_by_its_rule_not_by_the_optimizer():
    x, y = _batch(5, classes=3)
    model = _Embedder(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: m(x, y))(model)
        optimizer.update(model, grads)
        return loss, grads

    features = np.asarray(nnx.jit(lambda m: m.linear(x))(model))
    loss, grads = step(model, optimizer)
    # the gradient holds the linear layer only: the centers are a CenterBuffer
    assert "center" not in grads
    assert isinstance(model.center.centers, CenterBuffer)
    expected_loss, expected = jax.jit(
        lambda f, c: (
            jaxloss.center_loss(f, c, y),
            jaxloss.center_update(c, f, y, alpha=0.5),
        )
    )(features, np.zeros((3, 4), np.float32))
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-6)
    # the update inside nnx.jit and nnx.value_and_grad reached the module
    np.testing.assert_allclose(model.center.centers[...], expected, rtol=1e-5, atol=1e-7)


def test_learned_centers_are_parameters_with_the_functional_gradient():
    x, y = _batch(6, classes=3)
    module = CenterLoss(5, 3, alpha=None, rngs=nnx.Rngs(1))
    assert isinstance(module.centers, nnx.Param)
    centers = np.asarray(module.centers[...])

    @nnx.jit
    def run(module, centers):
        # Both gradients in one compiled function.
        grads = nnx.grad(lambda m: m(x, y))(module)
        return grads, jax.grad(lambda c: jaxloss.center_loss(x, c, y))(centers)

    grads, expected = run(module, centers)
    np.testing.assert_allclose(grads["centers"][...], expected, rtol=1e-6)
    np.testing.assert_array_equal(module.centers[...], centers)  # no rule moves them

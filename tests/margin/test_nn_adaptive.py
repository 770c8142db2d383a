"""The flax (nnx) heads with running statistics: the StatefulLosses' numbers, their state
held as ``nnx.BatchStat``."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss import compose
from jaxloss.nn import AdaFaceHead, CurricularFaceHead

HEADS = {
    "curricularface": (CurricularFaceHead, compose.curricularface_with_state, ("t",)),
    "adaface": (AdaFaceHead, compose.adaface_with_state, ("batch_mean", "batch_std")),
}


def _batches(seed=0, steps=3, batch=12, features=5, classes=7):
    rng = np.random.default_rng(seed)
    xs = (rng.normal(size=(steps, batch, features)) * rng.uniform(1, 3, (steps, batch, 1))).astype(
        np.float32
    )
    return xs, rng.integers(0, classes, size=(steps, batch)).astype(np.int32)


@pytest.mark.parametrize("chunk_size", [None, 3])
@pytest.mark.parametrize("name", sorted(HEADS))
def test_head_is_the_stateful_loss_step_by_step(name, chunk_size):
    module, stateful, statistics = HEADS[name]
    head = module(5, 7, momentum=0.2, scale=8.0, chunk_size=chunk_size, rngs=nnx.Rngs(1))
    loss_fn = stateful(momentum=0.2)
    centers = np.asarray(head.centers[...])
    xs, ys = _batches()
    where = np.arange(12) % 4 != 1

    @nnx.jit
    def step(head, state, x, y):
        # Both sides' value, centers' gradient and new state, compiled once.
        value, grads = nnx.value_and_grad(lambda h: h(x, y, where=where))(head)
        (expected, state), expected_grad = jax.value_and_grad(
            lambda c: loss_fn.apply(state, x, c, y, where=where, scale=8.0, chunk_size=chunk_size),
            has_aux=True,
        )(centers)
        return value, grads["centers"][...], expected, expected_grad, state

    state = loss_fn.init()
    for x, y in zip(xs, ys, strict=True):
        value, grad, expected, expected_grad, state = step(head, state, x, y)
        np.testing.assert_allclose(value, expected, rtol=1e-6)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-7)
        for field in statistics:
            np.testing.assert_allclose(getattr(head, field)[...], getattr(state, field), rtol=1e-6)
    assert float(getattr(head, statistics[0])[...]) != float(getattr(loss_fn.init(), statistics[0]))


@pytest.mark.parametrize("name", sorted(HEADS))
def test_evaluation_leaves_the_statistics(name):
    module, _, statistics = HEADS[name]
    head = module(5, 7, scale=8.0, rngs=nnx.Rngs(2))
    xs, ys = _batches(1, steps=1)

    @nnx.jit
    def run(head):
        state = {field: getattr(head, field)[...] for field in statistics}
        expected = getattr(jaxloss, name)(xs[0], head.centers[...], ys[0], scale=8.0, **state)
        return head(xs[0], ys[0], update=False), expected, state

    value, expected, before = run(head)
    np.testing.assert_allclose(value, expected, rtol=1e-6)
    for field in statistics:
        assert float(getattr(head, field)[...]) == float(before[field])


class _Embedder(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(5, 4, rngs=rngs)
        self.head = AdaFaceHead(4, 7, momentum=0.5, scale=8.0, rngs=rngs)

    def __call__(self, x, y):
        return self.head(self.linear(x), y)


def test_statistics_are_batch_stats_that_no_optimizer_moves():
    xs, ys = _batches(2, steps=1)
    model = _Embedder(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(lambda m: m(xs[0], ys[0]))(model)
        optimizer.update(model, grads)
        return grads

    grads = step(model, optimizer)
    assert isinstance(model.head.batch_mean, nnx.BatchStat)
    assert "batch_mean" not in grads["head"] and "centers" in grads["head"]
    assert float(model.head.batch_mean[...]) != 20.0  # moved by its rule, inside nnx.jit


@pytest.mark.parametrize("update", [True, False])
@pytest.mark.parametrize("name", sorted(HEADS))
def test_no_gradient_reaches_the_statistics(name, update):
    # Differentiated with respect to every variable, BatchStats included: the statistics
    # are buffers (the official modules update them under no_grad), their gradient zero.
    module, _, statistics = HEADS[name]
    xs, ys = _batches(3, steps=1)
    head = module(5, 7, momentum=0.5, scale=8.0, rngs=nnx.Rngs(2))
    graphdef, params, stats = nnx.split(head, nnx.Param, nnx.BatchStat)

    @jax.jit
    def grads(params, stats):
        def loss(params, stats):
            return nnx.merge(graphdef, params, stats)(xs[0], ys[0], update=update)

        return jax.grad(loss, argnums=(0, 1))(params, stats)

    param_grads, stat_grads = grads(params, stats)
    assert np.any(param_grads["centers"][...] != 0)
    for stat in statistics:
        np.testing.assert_array_equal(stat_grads[stat][...], 0.0)


def test_head_options_are_checked():
    with pytest.raises(TypeError, match=r"curricularface has no option \['h'\]"):
        CurricularFaceHead(5, 7, h=0.3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="chunk_size"):
        AdaFaceHead(5, 7, chunk_size=0, rngs=nnx.Rngs(0))
    head = AdaFaceHead(5, 7, rngs=nnx.Rngs(0))
    xs, ys = _batches(steps=1)
    with pytest.raises(TypeError, match="batch_mean"):  # state, not an option
        head(xs[0], ys[0], batch_mean=3.0)
    # a scalar array is the number it holds (flax refused it inside the options' dict)
    arrays = CurricularFaceHead(5, 7, scale=np.float32(16.0), rngs=nnx.Rngs(0))
    plain = CurricularFaceHead(5, 7, scale=16.0, rngs=nnx.Rngs(0))
    assert arrays.hyperparameters == {"scale": 16.0}
    np.testing.assert_array_equal(arrays(xs[0], ys[0]), plain(xs[0], ys[0]))
    with pytest.raises(TypeError, match="`margin` must be a number"):
        CurricularFaceHead(5, 7, margin=np.full(2, 0.5), rngs=nnx.Rngs(0))


def test_class_sharded_head_declares_its_partition_spec():
    head = CurricularFaceHead(5, 8, class_axis_name="classes", rngs=nnx.Rngs(0))
    spec = nnx.get_partition_spec(nnx.state(head))
    assert spec["centers"].get_value() == P("classes", None)

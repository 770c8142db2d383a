"""CurricularFace and AdaFace: the official modules over several steps, their statistics'
updates (8 devices, class shards, Partial FC) and edge cases.

The shared suites (tests/margin/cases_adaptive.py) check the losses against the per-row
references; here the running statistics, which those suites do not see.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss import compose
from tests.margin import reference_adaptive as ref

DEVICES = 8


def _batch(seed=0, batch=16, dim=5, classes=9, spread=1.0):
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(batch, dim)) * rng.uniform(0.5, spread, size=(batch, 1))).astype(
        np.float32
    )
    w = rng.normal(size=(classes, dim)).astype(np.float32)
    return x, w, rng.integers(0, classes, size=batch).astype(np.int32)


def _steps(seed, steps=3):
    """``steps`` batches of one model: the centers fixed, new embeddings (norms 1 to 3)."""
    batches = [_batch(seed + step, spread=3.0) for step in range(steps)]
    return [x for x, _, _ in batches], batches[0][1], [y for _, _, y in batches]


# --- The official modules over several steps ---------------------------------------------


def test_curricularface_with_state_is_the_official_module_over_three_steps():
    xs, w, ys = _steps(0)
    head = compose.curricularface_with_state(momentum=0.01)
    apply = jax.jit(lambda state, x, y: head.apply(state, x, w, y, scale=16.0, margin=0.5))
    state, t = head.init(), 0.0
    for x, y in zip(xs, ys, strict=True):
        loss, state = apply(state, x, y)
        expected, t = ref.official_curricularface(x, w, y, t, scale=16.0, margin=0.5)
        np.testing.assert_allclose(loss, expected, rtol=2e-5)
        np.testing.assert_allclose(state.t, t, rtol=1e-5, atol=1e-7)


def test_adaface_with_state_is_the_official_module_over_three_steps():
    xs, w, ys = _steps(1)
    head = compose.adaface_with_state(momentum=0.3)  # a large momentum: the statistics move
    apply = jax.jit(lambda state, x, y: head.apply(state, x, w, y, scale=16.0))
    state, mean, std = head.init(batch_mean=2.0, batch_std=1.0), 2.0, 1.0
    for x, y in zip(xs, ys, strict=True):
        loss, state = apply(state, x, y)
        expected, mean, std = ref.official_adaface(x, w, y, mean, std, scale=16.0, t_alpha=0.3)
        np.testing.assert_allclose(loss, expected, rtol=2e-5)
        np.testing.assert_allclose(state, (mean, std), rtol=1e-5)


def test_the_two_references_agree():
    # The per-row references with the statistics after the official update are the official
    # forward passes.
    x, w, y = _batch(2, spread=3.0)
    loss, t = ref.official_curricularface(x, w, y, 0.4, scale=8.0, margin=1.0)
    np.testing.assert_allclose(
        ref.curricularface(x, w, y, t=t, scale=8.0, margin=1.0).mean(), loss, rtol=1e-12
    )
    loss, mean, std = ref.official_adaface(x, w, y, 1.5, 0.5, scale=8.0, h=0.5, t_alpha=0.5)
    expected = ref.adaface(x, w, y, batch_mean=mean, batch_std=std, scale=8.0, h=0.5)
    np.testing.assert_allclose(expected.mean(), loss, rtol=1e-12)


def test_the_update_is_not_differentiated():
    # The loss with the updated state has the gradient of the loss with that state fixed.
    x, w, y = _batch(3)
    head = compose.curricularface_with_state(momentum=0.5)

    @jax.jit
    def grads():
        stateful = jax.grad(lambda x, w: head.apply(head.init(0.2), x, w, y)[0], (0, 1))(x, w)
        t = jaxloss.curricularface_update(0.2, x, w, y, momentum=0.5)
        fixed = jax.grad(lambda x, w: jaxloss.curricularface(x, w, y, t=t), (0, 1))(x, w)
        return stateful, fixed

    for got, expected in zip(*grads(), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-6)


# --- Hand-worked statistics and gradients -------------------------------------------------


def test_updates_by_hand():
    x = np.array([[3.0, 4.0], [0.0, 0.5], [1e3, 0.0], [np.nan, 1.0]], np.float32)
    w = np.eye(2, dtype=np.float32)
    y = np.array([0, 1, 1, 0])
    where = np.array([True, True, True, False])
    t, (mean, std) = jax.jit(
        lambda: (
            jaxloss.curricularface_update(0.2, x, w, y, momentum=0.5, where=where),
            jaxloss.adaface_update(20.0, 100.0, x, momentum=0.5, where=where),
        )
    )()
    # cos θ_y: 0.6, 1, 0 (the NaN row masked): t = 0.5 · 1.6/3 + 0.5 · 0.2
    np.testing.assert_allclose(t, 0.5 * 1.6 / 3 + 0.1, rtol=1e-6)
    # clipped norms 5, 0.5, 100, and torch's unbiased std
    norms = np.array([5.0, 0.5, 100.0])
    np.testing.assert_allclose(mean, 0.5 * norms.mean() + 10.0, rtol=1e-6)
    np.testing.assert_allclose(std, 0.5 * norms.std(ddof=1) + 50.0, rtol=1e-6)


def test_no_row_leaves_the_statistics_and_one_row_the_std():
    x, w, y = _batch(4)
    nothing = np.zeros(len(y), bool)
    one = nothing.copy()
    one[0] = True
    head = compose.adaface_with_state()

    @jax.jit
    def run():
        return (
            jaxloss.curricularface_update(0.3, x, w, y, where=nothing),
            jaxloss.adaface_update(20.0, 100.0, x, where=nothing),
            jaxloss.adaface_update(20.0, 100.0, x, momentum=1.0, where=one),
            # labels out of range count nowhere: the loss is 0 and the state unchanged
            head.apply(head.init(), x, w, np.full_like(y, -1)),
        )

    t, unchanged, (mean, std), (loss, state) = run()
    assert float(t) == pytest.approx(0.3)
    assert tuple(map(float, unchanged)) == (20.0, 100.0)
    np.testing.assert_allclose(mean, np.linalg.norm(x[0]), rtol=1e-6)
    assert float(std) == 100.0  # torch's unbiased std of one value would be NaN
    assert float(loss) == 0.0 and tuple(map(float, state)) == (20.0, 100.0)


def test_adaface_gradient_reads_the_norm_as_a_constant():
    # The official code detaches the norms: the embeddings' gradient is that of the loss
    # with the margin scaler frozen, here by central differences of the float64 reference.
    x, w, y = _batch(5, batch=4, spread=3.0)
    options = {"batch_mean": 2.0, "batch_std": 0.5, "scale": 4.0, "margin": 0.4}
    grad = jax.jit(jax.grad(lambda x: jaxloss.adaface(x, w, y, reduction="sum", **options)))(x)
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    expected = np.zeros_like(grad, np.float64)
    step = 1e-6
    for index in np.ndindex(x.shape):
        shifted = [x.astype(np.float64).copy() for _ in range(2)]
        shifted[0][index] += step
        shifted[1][index] -= step
        values = [ref.adaface(s, w, y, norms=norms, **options).sum() for s in shifted]
        expected[index] = (values[0] - values[1]) / (2 * step)
    np.testing.assert_allclose(grad, expected, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("loss", ["curricularface", "adaface"])
def test_edge_cases_are_finite_and_masked_rows_get_no_gradient(loss):
    # θ = 0 and θ = π, a zero embedding, and a masked row of NaN, in one batch.
    _, w, _ = _batch(6)
    y = np.array([0, 1, 2, 3, 4])
    x = np.stack([w[0], -w[1], np.zeros(5), np.full(5, np.nan), w[4] * 1e3]).astype(np.float32)
    where = np.array([True, True, True, False, True])
    fn = getattr(jaxloss, loss)

    @jax.jit
    def run():
        outputs = []
        for chunk_size in (None, 2):
            value, grads = jax.value_and_grad(
                lambda x, w, chunk_size=chunk_size: fn(x, w, y, where=where, chunk_size=chunk_size),
                (0, 1),
            )(x, w)
            nothing = fn(x, w, y, where=np.zeros(5, bool), chunk_size=chunk_size)
            outputs.append((value, grads, nothing))
        return outputs

    for value, (dx, dw), nothing in run():
        assert np.isfinite(float(value)) and float(nothing) == 0.0
        assert np.all(np.isfinite(dx)) and np.all(np.isfinite(dw))
        assert np.all(dx[3] == 0)


# --- Eight devices: the batch split, the classes split, Partial FC ------------------------


def _mesh(axis):
    return jax.make_mesh((DEVICES,), (axis,), axis_types=(jax.sharding.AxisType.Auto,))


def test_statistics_over_eight_devices_equal_one_device():
    # Devices keep different numbers of rows (the first none): the global mean, not a mean
    # of per-device means. The StatefulLosses too: loss, gradient and state.
    x, w, y = _batch(7, batch=DEVICES * 2, spread=3.0)
    where = np.arange(DEVICES * 2) % 3 != 0
    where[:2] = False
    curricular = compose.curricularface_with_state(momentum=0.1)
    ada = compose.adaface_with_state(momentum=0.1)

    def everything(x, w, y, where, axis_name):
        options = {"where": where, "axis_name": axis_name}
        t = jaxloss.curricularface_update(0.2, x, w, y, **options)
        statistics = jaxloss.adaface_update(2.0, 1.0, x, **options)

        def losses(x, w):
            a, t = curricular.apply(curricular.init(0.2), x, w, y, scale=8.0, **options)
            b, s = ada.apply(ada.init(2.0, 1.0), x, w, y, scale=8.0, chunk_size=4, **options)
            return a + b, (t, s)

        (value, states), grads = jax.value_and_grad(losses, (0, 1), has_aux=True)(x, w)
        return t, statistics, value, states, grads

    sharded = jax.jit(
        jax.shard_map(
            lambda x, y, m, w: everything(x, w, y, m, "batch"),
            mesh=_mesh("batch"),
            in_specs=(P("batch"), P("batch"), P("batch"), P()),
            out_specs=(P(), P(), P(), P(), (P("batch"), P())),
        )
    )(x, y, where, w)
    whole = jax.jit(lambda: everything(x, w, y, where, None))()
    for got, expected in zip(jax.tree.leaves(sharded), jax.tree.leaves(whole), strict=True):
        np.testing.assert_allclose(got, expected, rtol=2e-5, atol=1e-6)
    # and not the update of one device's rows alone
    alone = jax.jit(lambda x, w, y: jaxloss.curricularface_update(0.2, x, w, y, where=where[2:4]))(
        x[2:4], w, y[2:4]
    )
    assert not np.isclose(float(alone), float(whole[0]))


@pytest.mark.parametrize("partial_fc", [False, True], ids=["classes", "partial_fc"])
def test_class_sharded_heads_and_updates_equal_one_device(partial_fc):
    # The classes split over 8 devices, the batch replicated (or split over the same
    # devices: Partial FC); unchunked and in chunks of 2 classes, compiled together. Under
    # Partial FC, the update alone: the heads' Partial FC is tests/_suite/test_multidevice.py's
    # (test_partial_fc_batch_and_classes_on_the_same_devices).
    x, w, y = _batch(8, batch=DEVICES * 2, classes=DEVICES * 3, spread=3.0)
    y[0] = -100  # excluded on every shard
    batch_spec, axis_name = (P("d"), "d") if partial_fc else (P(), None)
    heads = {
        "curricularface": {"t": 0.3, "scale": 8.0, "margin": 0.7},
        "adaface": {"batch_mean": 2.0, "batch_std": 0.5, "scale": 8.0},
    }
    options = {} if partial_fc else heads

    def everything(x, w, y, class_axis_name, axis_name):
        out = {}
        for name, kwargs in options.items():
            for chunk_size in (None, 2):
                out[f"{name}[{chunk_size}]"] = jax.value_and_grad(
                    lambda x, w, name=name, chunk_size=chunk_size, kwargs=kwargs: getattr(
                        jaxloss, name
                    )(
                        x,
                        w,
                        y,
                        chunk_size=chunk_size,
                        axis_name=axis_name,
                        class_axis_name=class_axis_name,
                        **kwargs,
                    ),
                    (0, 1),
                )(x, w)
        out["t"] = jaxloss.curricularface_update(
            0.3, x, w, y, axis_name=axis_name, class_axis_name=class_axis_name
        )
        return out

    sharded = jax.jit(
        jax.shard_map(
            lambda x, w, y: everything(x, w, y, "d", axis_name),
            mesh=_mesh("d"),
            in_specs=(batch_spec, P("d"), batch_spec),
            out_specs={
                **{f"{n}[{c}]": (P(), (batch_spec, P("d"))) for n in options for c in (None, 2)},
                "t": P(),
            },
        )
    )(x, w, y)
    whole = jax.jit(lambda: everything(x, w, y, None, None))()
    for key in whole:
        for got, expected in zip(
            jax.tree.leaves(sharded[key]), jax.tree.leaves(whole[key]), strict=True
        ):
            np.testing.assert_allclose(
                got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max(), err_msg=str(key)
            )

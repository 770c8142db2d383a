"""The proxy losses: hand-worked values, PML's numbers, chunks, masks and 8 devices.

The shared suites check the common properties of all three (``tests/margin/cases_proxies.py``;
``proxy_anchor``'s ``"none"`` is per proxy, its ``where`` per row: ``Case.per_class_none``).
Here: what they do not, as labels outside the classes, ``"none"`` under a mask, options
beyond the cases', a class without positives, a large ``alpha`` and class-sharded proxies.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jaxloss
from tests._suite.compiled import value_and_grads
from tests.margin import reference_proxies as ref

DEVICES = 8


def _inputs(seed, batch=9, classes=11, dim=5, per_class=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, dim)).astype(np.float32)
    shape = (classes, dim) if per_class is None else (classes, per_class, dim)
    w = rng.normal(size=shape).astype(np.float32)
    labels = rng.integers(0, classes, size=batch).astype(np.int32)
    return x, w, labels


def test_hand_worked_proxy_anchor_with_two_rows():
    # Rows on proxy 0 and proxy 1 (orthogonal), both labelled 0: proxy 0 has two
    # positives at cos 1 and 0, proxy 1 two negatives at cos 0 and 1; |P+| = 1, |P| = 2.
    x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    p = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    alpha, margin = 2.0, 0.25
    pos = np.log(1 + np.exp(-alpha * (1 - margin)) + np.exp(-alpha * (0 - margin)))
    neg = np.log(1 + np.exp(alpha * (0 + margin)) + np.exp(alpha * (1 + margin)))
    # Jitted: eagerly, every operation of the three calls would compile on its own.
    out = jax.jit(
        lambda: {
            reduction: jaxloss.proxy_anchor(
                x, p, jnp.array([0, 0]), alpha=alpha, margin=margin, reduction=reduction
            )
            for reduction in ("mean", "none", "sum")
        }
    )()
    np.testing.assert_allclose(out["mean"], pos + neg / 2, rtol=1e-6)
    np.testing.assert_allclose(out["none"], [pos, neg], rtol=1e-6)
    np.testing.assert_allclose(out["sum"], pos + neg, rtol=1e-6)


def test_hand_worked_soft_triple_regularizer():
    # One class, two orthogonal centers: ‖ŵ_1 − ŵ_2‖ = √2 (+ε), over C·K·(K−1) = 2; a
    # single class has no other class, so the softmax term is 0.
    centers = jnp.array([[[1.0, 0.0], [0.0, 3.0]]])
    loss = jax.jit(functools.partial(jaxloss.soft_triple, reg_weight=0.5))(
        jnp.ones((1, 2)), centers, jnp.array([0])
    )
    np.testing.assert_allclose(loss, 0.5 * np.sqrt(2 + 1e-5) / 2, rtol=1e-6)


ANCHOR_OPTIONS = [
    {},
    {"margin": 0.3, "alpha": 4.0},
    {"alpha": 4.0, "where": True},
]


@functools.cache
def _anchor_all(chunk_size):
    """Every reduction, with the gradients of the mean, of proxy_anchor: one compilation."""

    def run(x, w, labels, where, alpha, margin):
        out = {}
        for reduction in ("none", "sum", "mean"):
            fn = functools.partial(
                jaxloss.proxy_anchor,
                labels=labels,
                where=where,
                alpha=alpha,
                margin=margin,
                reduction=reduction,
                chunk_size=chunk_size,
            )
            out[reduction] = value_and_grads(fn, x, w)
        return out

    return jax.jit(run)


def _anchor(x, w, labels, where=None, alpha=32.0, margin=0.1, chunk_size=None):
    where = np.ones(len(x), bool) if where is None else where
    return _anchor_all(chunk_size)(x, w, labels, where, np.float32(alpha), np.float32(margin))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("options", ANCHOR_OPTIONS, ids=["defaults", "options", "where"])
def test_proxy_anchor_equals_the_reference(seed, options):
    options = dict(options)
    x, w, labels = _inputs(seed, batch=6 + seed, classes=5 + 3 * seed)
    labels[0] = -1  # outside the classes: no part, as a masked row
    where = (
        np.random.default_rng(seed).uniform(size=len(x)) < 0.7 if options.pop("where", 0) else None
    )
    out = _anchor(x, w, labels, where, **options)
    none = ref.proxy_anchor(x, w, labels, where=where, **options)
    np.testing.assert_allclose(out["none"][0], none, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["sum"][0], none.sum(), rtol=1e-5)
    np.testing.assert_allclose(
        out["mean"][0], ref.proxy_anchor_mean(x, w, labels, where=where, **options), rtol=1e-5
    )


def test_proxy_anchor_masking_equals_dropping_and_ignores_nan():
    x, w, labels = _inputs(3)
    keep = np.array([1, 0, 1, 1, 0, 1, 1, 0, 1], bool)
    poisoned = np.where(keep[:, None], x, np.nan).astype(np.float32)
    masked = _anchor(poisoned, w, labels, keep)
    dropped = _anchor(x[keep], w, labels[keep])
    for reduction in ("none", "sum", "mean"):
        value, (gx, gw) = masked[reduction]
        expected, (_, expected_gw) = dropped[reduction]
        np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=reduction)
        assert np.all(gx[~keep] == 0) and np.all(np.isfinite(gx))
        np.testing.assert_allclose(gw, expected_gw, rtol=1e-5, atol=1e-7, err_msg=reduction)


def test_proxy_anchor_all_masked_and_empty_are_zero():
    x, w, labels = _inputs(4)
    both = (_anchor(x, w, labels, np.zeros(len(x), bool)), _anchor(x[:0], w, labels[:0]))
    for out in jax.device_get(both):
        for reduction in ("none", "sum", "mean"):
            value, grads = out[reduction]
            assert np.all(value == 0), reduction
            assert all(np.all(g == 0) for g in grads), reduction


def test_proxy_anchor_class_without_positives_and_zero_embeddings():
    x, w, labels = _inputs(5)
    labels[:] = 2  # one proxy with positives: |P+| = 1
    x[0] = 0.0  # cos 0 to every proxy
    out = _anchor(x, w, labels)
    pos, neg, has = ref._anchor_terms(x, w, labels, 0.1, 32.0, None)
    assert has.sum() == 1 and np.all(pos[~has] == 0)
    np.testing.assert_allclose(out["none"][0], pos + neg, rtol=1e-5)
    np.testing.assert_allclose(out["mean"][0], pos[2] + neg.mean(), rtol=1e-5)
    assert all(np.all(np.isfinite(g)) for g in out["mean"][1])


def test_proxy_anchor_is_stable_at_large_alpha():
    x, w, labels = _inputs(6)
    out = _anchor(x, w, labels, alpha=300.0)
    value, grads = out["mean"]
    assert np.isfinite(value) and all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(value, ref.proxy_anchor_mean(x, w, labels, alpha=300.0), rtol=1e-5)


def test_proxy_anchor_does_not_retrace_for_alpha_and_margin():
    x, w, labels = _inputs(7)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(alpha, margin):
        return jaxloss.proxy_anchor(x, w, labels, alpha=alpha, margin=margin)

    for alpha, margin in ((32.0, 0.1), (4.0, 0.3)):
        np.testing.assert_allclose(
            loss(jnp.float32(alpha), jnp.float32(margin)),
            ref.proxy_anchor_mean(x, w, labels, alpha=alpha, margin=margin),
            rtol=1e-5,
        )


def test_proxy_anchor_rejects_bad_arguments():
    x, w, labels = _inputs(9)
    with pytest.raises(ValueError, match="proxies"):
        jaxloss.proxy_anchor(x, w[:, :2], labels)
    with pytest.raises(ValueError, match="where"):
        jaxloss.proxy_anchor(x, w, labels, where=np.ones(3, bool))


LOSSES = {
    "proxy_nca": (jaxloss.proxy_nca, None, {"scale": 3.0}),
    "proxy_anchor": (jaxloss.proxy_anchor, None, {"alpha": 16.0}),
    "soft_triple": (jaxloss.soft_triple, 3, {}),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_chunks_equal_the_unchunked_loss(name):
    # 11 classes in blocks of 1, 4 (not dividing: the last block overlaps) and 11; a class
    # without positives, a masked row holding NaN and a zero embedding.
    fn, per_class, options = LOSSES[name]
    x, w, labels = _inputs(10, per_class=per_class)
    x[1], x[2] = np.nan, 0.0
    where = np.arange(len(x)) != 1

    def run(x, w):
        return [
            value_and_grads(
                lambda x, w, c=chunk: fn(x, w, labels, where=where, chunk_size=c, **options), x, w
            )
            for chunk in (None, 1, 4, 11)
        ]

    (expected, expected_grads), *chunked = jax.jit(run)(x, w)
    assert np.isfinite(expected) and all(np.all(np.isfinite(g)) for g in expected_grads)
    for (value, grads), chunk in zip(chunked, (1, 4, 11), strict=True):
        np.testing.assert_allclose(value, expected, rtol=1e-5, err_msg=str(chunk))
        for g, e in zip(grads, expected_grads, strict=True):
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6 * np.abs(e).max())


# --- 8 devices: the proxies split by class, and soft_triple's Partial FC ------------------

multidevice = pytest.mark.skipif(
    jax.default_backend() != "cpu" or jax.device_count() != DEVICES,
    reason="needs the 8 CPU devices of tests/conftest.py",
)


def _mesh(name):
    return jax.make_mesh((DEVICES,), (name,), axis_types=(jax.sharding.AxisType.Auto,))


@multidevice
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_sharded_proxies_equal_one_device(name):
    # 16 rows, 48 classes: class-sharded (6 per device) and, for soft_triple, Partial FC (2
    # rows and 6 classes per device); each unchunked and in blocks of 4 classes; values and
    # gradients, compiled together. Partial FC of proxy_nca and proxy_anchor, on these
    # shapes, is the shared suite's (test_partial_fc_batch_and_classes_on_the_same_devices),
    # and so is their batch split with replicated proxies
    # (test_registry_loss_with_axis_name_equals_one_device, chunked in proxy_anchor[classes]).
    fn, per_class, options = LOSSES[name]
    x, w, labels = _inputs(11, batch=16, classes=48, per_class=per_class)
    labels[0] = -100  # excluded on every shard
    where = np.ones(16, bool)
    where[[1, 2, 3, 9]] = False  # the second device keeps nothing under Partial FC

    def whole(chunk):
        return lambda x, w: fn(x, w, labels, where=where, chunk_size=chunk, **options)

    def sharded(chunk, axis_name, class_axis_name):
        batch = P("d") if axis_name else P()
        classes = P("d") if class_axis_name else P()
        local = jax.shard_map(
            lambda x, w, y, m: fn(
                x,
                w,
                y,
                where=m,
                chunk_size=chunk,
                axis_name=axis_name,
                class_axis_name=class_axis_name,
                **options,
            ),
            mesh=_mesh("d"),
            in_specs=(batch, classes, batch, batch),
            out_specs=P(),
        )
        return lambda x, w: local(x, w, labels, where)

    layouts = [(None, "d")] + ([("d", "d")] if name == "soft_triple" else [])

    def run(x, w):
        out = []
        for chunk in (None, 4):
            out.append(value_and_grads(whole(chunk), x, w))
            out.extend(value_and_grads(sharded(chunk, *layout), x, w) for layout in layouts)
        return out

    results = jax.jit(run)(x, w)
    per_chunk = len(layouts) + 1
    for start in (0, per_chunk):
        expected, expected_grads = results[start]
        for layout, (value, grads) in zip(
            layouts, results[start + 1 : start + per_chunk], strict=True
        ):
            message = f"{layout}, chunk {'4' if start else 'None'}"
            np.testing.assert_allclose(value, expected, rtol=1e-5, err_msg=message)
            for g, e in zip(grads, expected_grads, strict=True):
                np.testing.assert_allclose(
                    g, e, rtol=1e-4, atol=1e-6 * np.abs(e).max(), err_msg=message
                )

"""Sub-center ArcFace, MagFace, ElasticFace, and per-example margins of the margin heads:
InsightFace-style per-row loops, the margin heads' family tests, 8 devices (class-sharded and
Partial FC), and their flax module."""

from __future__ import annotations

import functools
import math

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jaxloss
from tests.margin import reference as ref
from tests.margin import reference_face as ref_face
from tests.margin.test_margin import FALLBACK_COS, _aligned

KEY = jax.random.key(3)
# Each head with options that reach its particular paths (ElasticFace+ ranks the batch).
HEADS = {
    "subcenter_arcface": {"scale": 6.0, "margin": 0.7},
    "magface": {"scale": 6.0, "lower_norm": 1.0, "upper_norm": 3.0, "reg_weight": 2.0},
    "elasticface": {"scale": 6.0, "margin": 0.6, "sigma": 0.3, "plus": True},
}


def _inputs(batch=9, classes=23, dim=6, seed=0, sub_centers=3):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(batch, dim)).astype(np.float32)
    shape = (classes, sub_centers, dim) if sub_centers else (classes, dim)
    centers = rng.normal(size=shape).astype(np.float32)
    labels = rng.integers(0, classes, size=batch).astype(np.int32)
    return embeddings, centers, labels


def _head_inputs(name, **kwargs):
    return _inputs(sub_centers=3 if name == "subcenter_arcface" else 0, **kwargs)


def _loss(name, chunk_size=None, **overrides):
    options = dict(HEADS[name], **overrides)
    if name == "elasticface":
        options["key"] = KEY
    return functools.partial(getattr(jaxloss, name), chunk_size=chunk_size, **options)


# --- InsightFace-style per-row loops -------------------------------------------------------


def _row_loss(logits, label, target):
    """One row of InsightFace's head: the label's logit replaced, then cross-entropy."""
    logits = np.array(logits, np.float64)
    logits[label] = target
    top = logits.max()
    return top + math.log(np.exp(logits - top).sum()) - target


def _arc(cos, m):
    theta = math.acos(cos)
    return math.cos(theta + m) if theta + m <= math.pi else cos - m * math.sin(m)


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _loop(name, x, w, y):
    """The per-example losses, one row at a time, as the official codes compute them."""
    options = HEADS[name]
    s = options["scale"]
    out = []
    if name == "elasticface":
        margins = ref_face.elastic_margins(KEY, len(y), options["margin"], options["sigma"])
        cos_y = np.array([_unit(x[i]) @ _unit(w[y[i]]) for i in range(len(y))])
        margins = ref_face.dealt_by_rank(margins, cos_y, np.ones(len(y), bool))
    for i in range(len(y)):
        if name == "subcenter_arcface":
            cos = np.max(_unit(w) @ _unit(x[i]), axis=1)
            out.append(_row_loss(s * cos, y[i], s * _arc(cos[y[i]], options["margin"])))
            continue
        cos = _unit(w) @ _unit(x[i])
        if name == "magface":
            lo, hi = options["lower_norm"], options["upper_norm"]
            a = min(max(np.linalg.norm(np.float64(x[i])), lo), hi)
            m = (0.8 - 0.45) / (hi - lo) * (a - lo) + 0.45
            reg = options["reg_weight"] * (a / hi**2 + 1 / a)
            out.append(_row_loss(s * cos, y[i], s * _arc(cos[y[i]], m)) + reg)
        else:
            out.append(_row_loss(s * cos, y[i], s * _arc(cos[y[i]], margins[i])))
    return np.array(out)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_per_row_loop(name):
    x, w, y = _head_inputs(name, seed=1)
    x = x * np.linspace(0.3, 4.0, len(y), dtype=np.float32)[:, None]  # MagFace's range
    got = jax.jit(_loss(name, reduction="none"))(x, w, y)
    np.testing.assert_allclose(got, _loop(name, x, w, y), rtol=1e-5, atol=1e-6)


# Per-example margins of the margin heads: each row equals the head with that row's margin.
PER_EXAMPLE = {
    "arcface": ("margin",),
    "cosface": ("margin",),
    "combined_margin": ("m1", "m2", "m3"),
    "subcenter_arcface": ("margin",),
}


def _per_example_margins(name, batch, seed=0):
    rng = np.random.default_rng(seed)
    low = {"m1": 0.8}.get
    return {k: rng.uniform(low(k, 0.0), low(k, 0.0) + 0.9, batch) for k in PER_EXAMPLE[name]}


@pytest.mark.parametrize("name", sorted(PER_EXAMPLE))
def test_per_example_margins_match_a_per_row_loop(name):
    sub = 3 if name == "subcenter_arcface" else 0
    x, w, y = _inputs(sub_centers=sub, seed=2)
    margins = _per_example_margins(name, len(y))
    fn = getattr(jaxloss, name)
    got = jax.jit(functools.partial(fn, scale=4.0, reduction="none", chunk_size=5))(
        x, w, y, **margins
    )
    reference = ref_face if sub else ref
    expected = [
        getattr(reference, name)(
            x[i : i + 1], w, y[i : i + 1], scale=4.0, **{k: v[i] for k, v in margins.items()}
        )[0]
        for i in range(len(y))
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_per_example_margin_of_the_wrong_length_names_it():
    x, w, y = _inputs(sub_centers=0)
    with pytest.raises(ValueError, match="`margin`"):
        jaxloss.arcface(x, w, y, margin=np.ones(3))


# --- the margin heads' family tests ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(HEADS))
def test_chunked_equals_unchunked(name):
    # 23 classes: chunks of 5 (not a divisor), 23 and 64, compiled with the unchunked loss.
    x, w, y = _head_inputs(name)
    where = np.arange(9) != 4
    chunk_sizes = (None, 5, 23, 64)

    @jax.jit
    def run(x, w):
        return [
            jax.value_and_grad(
                lambda x, w, c=c: _loss(name, c, where=where)(x, w, y), argnums=(0, 1)
            )(x, w)
            for c in chunk_sizes
        ]

    (value, grads), *chunked_runs = run(x * 2, w)
    for chunk_size, (chunked, chunked_grads) in zip(chunk_sizes[1:], chunked_runs, strict=True):
        np.testing.assert_allclose(chunked, value, rtol=1e-5, err_msg=str(chunk_size))
        for g, cg in zip(grads, chunked_grads, strict=True):
            np.testing.assert_allclose(
                cg, g, rtol=1e-5, atol=1e-6 * np.abs(g).max(), err_msg=str(chunk_size)
            )


def _aligned_heads(cos_targets, norm=2.0):
    """``_aligned`` rows (cos θ_y as given, the other classes orthogonal), of norm ``norm``,
    with each class's sub-centers: the aligned one, then two orthogonal to every row."""
    x, w, y = _aligned(cos_targets, classes=4)
    dim = w.shape[1] + 2
    x = np.pad(x, ((0, 0), (0, 2))) * norm
    w = np.pad(w, ((0, 0), (0, 2)))
    spare = np.zeros((4, 2, dim), np.float32)
    spare[:, 0, -2], spare[:, 1, -1] = 1.0, 1.0
    return {
        "plain": (x, w, y),
        "sub": (x, np.concatenate([w[:, None], spare], axis=1), y),
    }


@functools.cache
def _value_and_grads(name):
    return jax.jit(jax.value_and_grad(_loss(name), argnums=(0, 1)))


def _run(name, inputs):
    return _value_and_grads(name)(*inputs["sub" if name == "subcenter_arcface" else "plain"])


@pytest.mark.parametrize("name", sorted(HEADS))
def test_finite_at_theta_0_and_pi_and_zero_embeddings(name):
    for cos in (1.0, -1.0):
        value, grads = _run(name, _aligned_heads(np.array([cos, 0.5, 0.0])))
        assert np.isfinite(float(value)), cos
        assert all(np.all(np.isfinite(g)) for g in grads), cos
    inputs = _aligned_heads(np.array([1.0, 0.5, 0.0]))
    zero = {
        k: (v[0] * np.array([[1.0], [0.0], [1.0]], np.float32), *v[1:]) for k, v in inputs.items()
    }
    value, grads = _run(name, zero)  # the same shapes: the same compilation
    assert np.isfinite(float(value))
    assert all(np.all(np.isfinite(g)) for g in grads)


@functools.cache
def _fallback_losses():
    """Every head on the aligned rows of test_margin's fallback test, compiled once."""
    options = {
        "subcenter_arcface": {"scale": 4.0, "margin": 0.5},
        # ‖x‖ = u_a: m = u_m = 0.8, so the fallback starts at cos θ = cos(π − 0.8) ≈ -0.70.
        "magface": {"scale": 4.0, "lower_norm": 1.0, "upper_norm": 2.0, "reg_weight": 1.0},
        "elasticface": {"scale": 4.0, "margin": 0.5, "sigma": 0.01, "key": KEY},
    }
    inputs = _aligned_heads(FALLBACK_COS)

    @jax.jit
    def run(inputs):
        return {
            name: getattr(jaxloss, name)(
                *inputs["sub" if name == "subcenter_arcface" else "plain"],
                reduction="none",
                **o,
            )
            for name, o in options.items()
        }

    return options, inputs, run(inputs)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_fallback_region(name):
    options, inputs, got = _fallback_losses()
    x, w, y = inputs["sub" if name == "subcenter_arcface" else "plain"]
    expected = getattr(ref_face, name)(x, w, y, **options[name])
    np.testing.assert_allclose(got[name], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_nan_in_masked_rows_reaches_nothing(name):
    x, w, y = _head_inputs(name, seed=3)
    where = np.arange(9) % 3 != 1
    poisoned = x.copy()
    poisoned[~where] = np.nan
    run = jax.jit(
        lambda x, w: jax.value_and_grad(_loss(name, 5, where=where), argnums=(0, 1))(x, w, y)
    )
    (value, grads), (clean, clean_grads) = jax.device_get((run(poisoned, w), run(x, w)))
    np.testing.assert_allclose(value, clean, rtol=1e-6)
    assert np.all(grads[0][~where] == 0)
    np.testing.assert_allclose(grads[1], clean_grads[1], rtol=1e-6, atol=1e-8)


def test_elasticface_margins_are_the_documented_draw():
    # σ small against the spread of cos θ_y: the per-row margins are visible in the loss.
    x, w, y = _inputs(sub_centers=0, seed=4)
    margins = ref_face.elastic_margins(KEY, len(y), 0.5, 0.2)
    got = jax.jit(
        functools.partial(
            jaxloss.elasticface, key=KEY, scale=3.0, sigma=0.2, kind="cos", reduction="none"
        )
    )(x, w, y)
    expected = ref_face.elasticface(x, w, y, KEY, scale=3.0, kind="cos", margins=margins - 0.15)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)  # cos: m = 0.35


def test_shape_and_option_errors_name_the_argument():
    x, w, y = _inputs(sub_centers=0)
    with pytest.raises(ValueError, match=r"`centers` \[num_classes, sub_centers, dim\]"):
        jaxloss.subcenter_arcface(x, w, y)
    with pytest.raises(ValueError, match="kind"):
        jaxloss.elasticface(x, w, y, key=KEY, kind="sphere")
    with pytest.raises(ValueError, match="lower_norm"):
        jaxloss.magface(x, w, y, lower_norm=0.0)


# --- 8 devices: classes split (model parallel), and Partial FC -----------------------------


def _eight_device_inputs(name):
    x, w, y = _head_inputs(name, batch=16, classes=48, dim=5, seed=5)
    y[0] = -100  # excluded on every shard
    return x * 2, w, y, np.arange(16) % 5 != 2


# MagFace and plain ElasticFace also run in tests/_suite/test_multidevice.py's Partial FC test.
@pytest.mark.parametrize("name", ["elasticface", "subcenter_arcface"])
def test_class_sharded_and_partial_fc_equal_one_device(name):
    x, w, y, where = _eight_device_inputs(name)
    mesh = jax.make_mesh((8,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))
    class_spec = P("d")

    def on_devices(chunk_size, partial_fc):
        loss = _loss(name, chunk_size)
        batch_spec = P("d") if partial_fc else P()
        axis = "d" if partial_fc else None
        return jax.shard_map(
            lambda x, w, y, m: loss(x, w, y, where=m, axis_name=axis, class_axis_name="d"),
            mesh=mesh,
            in_specs=(batch_spec, class_spec, batch_spec, batch_spec),
            out_specs=P(),
        )

    @jax.jit
    def run(x, w):
        out = {}
        for chunk_size in (None, 4):
            for mode in ("one device", "classes", "partial fc"):
                fn = (
                    functools.partial(
                        lambda x, w, y, m, c: _loss(name, c)(x, w, y, where=m), c=chunk_size
                    )
                    if mode == "one device"
                    else on_devices(chunk_size, mode == "partial fc")
                )
                out[str(chunk_size), mode] = jax.value_and_grad(
                    lambda x, w, fn=fn: fn(x, w, y, where), argnums=(0, 1)
                )(x, w)
        return out

    out = run(x, w)
    for chunk_size in (None, 4):
        value, grads = out[str(chunk_size), "one device"]
        for mode in ("classes", "partial fc"):
            got, got_grads = out[str(chunk_size), mode]
            message = f"{mode}, chunk_size {chunk_size}"
            np.testing.assert_allclose(got, value, rtol=1e-5, err_msg=message)
            for g, e in zip(got_grads, grads, strict=True):
                np.testing.assert_allclose(
                    g, e, rtol=1e-4, atol=1e-6 * np.abs(e).max(), err_msg=message
                )


@pytest.mark.parametrize("name", ["arcface", "cosface", "combined_margin"])
def test_per_example_margins_under_partial_fc(name):
    # Each device's margins go with its rows, which every device scores.
    x, w, y, where = _eight_device_inputs("arcface")
    margins = _per_example_margins(name, len(y), seed=6)
    fn = functools.partial(getattr(jaxloss, name), scale=4.0, chunk_size=4)
    mesh = jax.make_mesh((8,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))

    def sharded(x, w, margins):
        return jax.shard_map(
            lambda x, w, y, m, margins: fn(
                x, w, y, where=m, axis_name="d", class_axis_name="d", **margins
            ),
            mesh=mesh,
            in_specs=(P("d"), P("d"), P("d"), P("d"), P("d")),
            out_specs=P(),
        )(x, w, y, where, margins)

    @jax.jit
    def run(x, w, margins):
        return (
            jax.value_and_grad(sharded, argnums=(0, 1))(x, w, margins),
            jax.value_and_grad(lambda x, w: fn(x, w, y, where=where, **margins), argnums=(0, 1))(
                x, w
            ),
        )

    (value, grads), (expected, expected_grads) = run(x, w, margins)
    np.testing.assert_allclose(value, expected, rtol=1e-5)
    for g, e in zip(grads, expected_grads, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6 * np.abs(e).max())


# --- the flax module -------------------------------------------------------------------------


def test_margin_softmax_head_runs_the_face_heads():
    nnx = pytest.importorskip("flax.nnx")
    from jaxloss.nn import MarginSoftmaxHead

    x, _, y = _inputs(batch=6, classes=7, dim=5, sub_centers=0, seed=7)
    heads = {
        "subcenter_arcface": MarginSoftmaxHead(
            5, 7, loss="subcenter_arcface", sub_centers=3, scale=6.0, rngs=nnx.Rngs(0)
        ),
        "magface": MarginSoftmaxHead(5, 7, loss="magface", lower_norm=0.5, rngs=nnx.Rngs(1)),
        "elasticface": MarginSoftmaxHead(5, 7, loss="elasticface", rngs=nnx.Rngs(2)),
    }
    assert heads["subcenter_arcface"].centers.shape == (7, 3, 5)
    calls = {"elasticface": {"key": KEY}}
    defaults = {"subcenter_arcface": {"scale": 6.0}, "magface": {"lower_norm": 0.5}}

    @nnx.jit
    def run(heads):
        # Every head and its functional loss, and the sub-center head's cosines, compiled once.
        losses = {
            name: (
                head(x, y, **calls.get(name, {})),
                getattr(jaxloss, name)(
                    x, head.centers[...], y, **defaults.get(name, {}), **calls.get(name, {})
                ),
            )
            for name, head in heads.items()
        }
        return losses, heads["subcenter_arcface"].cosines(x)

    losses, cosines = run(heads)
    assert cosines.shape == (6, 7)
    for name, (got, expected) in losses.items():
        np.testing.assert_allclose(got, expected, rtol=1e-6, err_msg=name)
    with pytest.raises(ValueError, match="sub_centers"):
        MarginSoftmaxHead(5, 7, loss="arcface", sub_centers=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="sub_centers"):
        MarginSoftmaxHead(5, 7, loss="subcenter_arcface", rngs=nnx.Rngs(0))


def test_an_embedding_on_its_center_gets_the_margin_exactly():
    # θ_y = 0: ArcFace's target logit is s cos m. The arccos of a cosine clipped to
    # 1 − 1e-6 read θ = 1.4e-3 there, s sin m · 1.4e-3 = 0.043 off at s = 64; the clip
    # now acts on the derivative only (finite gradients at θ = 0, as before).
    center = np.array([1.0, 0.0], np.float32)
    other = np.array([0.95, np.sqrt(1 - 0.95**2)], np.float32)
    w = np.stack([center, other])
    x = center[None]
    value, grads = jax.jit(
        jax.value_and_grad(
            lambda x, w: jaxloss.arcface(x, w, np.array([0]), scale=64.0, margin=0.5), (0, 1)
        )
    )(x, w)
    cos_other = float(other.astype(np.float64) @ center / np.linalg.norm(other))
    logits = 64.0 * np.array([math.cos(0.5), cos_other])
    expected = np.logaddexp(*logits) - logits[0]
    np.testing.assert_allclose(value, expected, rtol=2e-6)
    assert all(np.all(np.isfinite(g)) for g in grads)


def _torch_magface(x, w, labels, *, scale, lower_norm, upper_norm, reg_weight):
    """The official MagLinear + MagLoss in float64 torch (``torch.norm(x).clamp(l_a, u_a)``),
    default margins 0.45 to 0.8."""
    import torch

    x, w = (
        torch.tensor(x, dtype=torch.float64, requires_grad=True),
        torch.tensor(w, dtype=torch.float64),
    )
    a = x.norm(dim=1).clamp(lower_norm, upper_norm)
    m = (0.8 - 0.45) / (upper_norm - lower_norm) * (a - lower_norm) + 0.45
    cos = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(w).T
    rows = torch.arange(len(labels))
    cos_y = cos[rows, labels]
    cos_m = cos_y * torch.cos(m) - torch.sqrt(1 - cos_y**2) * torch.sin(m)
    target = torch.where(cos_y > torch.cos(math.pi - m), cos_m, cos_y - torch.sin(math.pi - m) * m)
    logits = scale * cos.index_put((rows, torch.as_tensor(labels)), target)
    ce = torch.nn.functional.cross_entropy(logits, torch.as_tensor(labels, dtype=torch.long))
    loss = ce + reg_weight * torch.mean(a / upper_norm**2 + 1 / a)
    loss.backward()
    return loss.item(), x.grad.numpy()


def test_magface_norm_on_a_bound_gets_torchs_clamp_gradient():
    # ‖x‖ exactly 10 and 110 (3-4-5 rows): jnp.clip passed half the norm's gradient on a
    # bound, torch's clamp (the official code) all of it; inside, both pass it all.
    x = np.array([[6.0, 8.0], [66.0, 88.0], [30.0, 40.0]], np.float32)
    w = np.array([[1.0, 0.2], [0.1, 1.0], [-1.0, 0.3]], np.float32)
    labels = np.array([1, 0, 2])
    options = {"scale": 4.0, "lower_norm": 10.0, "upper_norm": 110.0, "reg_weight": 35.0}
    value, grad = jax.value_and_grad(lambda x: jaxloss.magface(x, w, labels, **options))(x)
    expected_value, expected_grad = _torch_magface(x, w, labels, **options)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-4, atol=1e-6)


def test_a_negative_arcface_margin_has_no_fallback():
    # θ + m never passes π for m < 0 (Liu et al., "Negative Margin Matters", 2020): the
    # target is cos(θ + m) at every θ. Past θ = π − |m| it took the fallback, and m sin m,
    # even in m, made -20° the target of +20°.
    angles = np.radians([30.0, 150.0, 175.0, 179.0])
    x = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    centers, labels = np.eye(2, dtype=np.float32), np.zeros(4, np.int32)
    margin, scale = math.radians(-20.0), 4.0
    values = jax.jit(
        lambda x: jaxloss.arcface(x, centers, labels, scale=scale, margin=margin, reduction="none")
    )(x)
    logits = scale * np.stack([np.cos(angles + margin), np.sin(angles)], axis=1)
    expected = np.log(np.exp(logits).sum(axis=1)) - logits[:, 0]
    np.testing.assert_allclose(values, expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["arcface", "subcenter_arcface", "curricularface"])
def test_an_angular_margin_in_degrees_is_refused(name):
    # 28.6 (PML's degrees) made cos(θ + m) a bonus: a loss of 0 with no gradient.
    x, labels = np.array([[0.0, 1.0]], np.float32), np.array([0])
    centers = np.eye(2, dtype=np.float32)
    if name == "subcenter_arcface":
        centers = centers[:, None]
    with pytest.raises(ValueError, match=r"`margin` must lie in \(-3.14"):
        getattr(jaxloss, name)(x, centers, labels, margin=28.6)
    with pytest.raises(ValueError, match="`margin`"):
        getattr(jaxloss, name)(x, centers, labels, margin=np.array([-3.5]))  # per example

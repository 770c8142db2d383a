"""Multi-device tests on 8 virtual CPU devices.

``tests/conftest.py`` gives JAX's CPU backend 8 devices (``jax_num_cpu_devices``, the
configuration form of ``XLA_FLAGS=--xla_force_host_platform_device_count=8``) before any
test starts, so these run in the suite's own processes, next to the single-device tests of
the same losses, and share their compiled functions. On another backend (a GPU run) they
are skipped, saying why.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

import jaxloss
from tests._suite.compiled import BATCH, DEVICES, KEEP, probe
from tests._suite.registry import (
    DEVICE_AND_CHECK_NAMES,
    REGISTRY,
    batched_positions,
    call,
    public_name,
    row_mask,
)

ROWS_PER_DEVICE = 8
ROWS = BATCH // DEVICES  # rows a device of the shared suites' batch (compiled.KEEP)
NUM_CLASSES = 7
IGNORE = 3


if jax.default_backend() != "cpu":
    pytest.skip(
        "needs the 8 CPU devices of tests/conftest.py (JAX_PLATFORMS=cpu)", allow_module_level=True
    )


def test_the_cpu_backend_has_8_devices():
    assert jax.device_count() == DEVICES, "tests/conftest.py sets jax_num_cpu_devices"


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(DEVICES * ROWS_PER_DEVICE, NUM_CLASSES)).astype(np.float32)
    labels = rng.choice([0, 1, 2, 4, 5, 6], size=(DEVICES, ROWS_PER_DEVICE))
    for device in range(DEVICES):
        # Device d holds d ignored targets: 0 on the first device, 7 of 8 on the last.
        labels[device, :device] = IGNORE
    weights = rng.uniform(0.3, 3.0, size=NUM_CLASSES).astype(np.float32)
    return logits, labels.reshape(-1), weights


def _value_and_grads(fn, argnums=0):
    """``jit(value_and_grad(fn))``: one compilation instead of eager dispatch op by op."""
    return jax.jit(jax.value_and_grad(fn, argnums=argnums))


def _sharded(fn):
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P("batch"), P("batch")), out_specs=P()))


OPTIONS = [
    {},
    {"class_weights": True},
    {"label_smoothing": 0.2},
    {"class_weights": True, "label_smoothing": 0.1},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "defaults")
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_with_axis_name_equals_one_device(options, reduction):
    logits, labels, weights = _batch()
    options = dict(options, ignore_index=IGNORE, reduction=reduction)
    if options.pop("class_weights", False):
        options["class_weights"] = weights

    def local(x, y):
        return jaxloss.cross_entropy(x, y, axis_name="batch", **options)

    value, grad_sharded = _value_and_grads(lambda x: _sharded(local)(x, labels))(logits)
    whole, grad_whole = _value_and_grads(lambda x: jaxloss.cross_entropy(x, labels, **options))(
        logits
    )
    np.testing.assert_allclose(value, whole, rtol=1e-6)
    np.testing.assert_allclose(grad_sharded, grad_whole, rtol=1e-5, atol=1e-8)


def test_a_mean_of_per_device_means_would_differ():
    # Guards the test above: with these unequal ignored counts the naive mean is wrong.
    logits, labels, _ = _batch()

    def naive(x, y):
        return jax.lax.pmean(jaxloss.cross_entropy(x, y, ignore_index=IGNORE), "batch")

    whole = jaxloss.cross_entropy(logits, labels, ignore_index=IGNORE)
    assert abs(float(_sharded(naive)(logits, labels)) - float(whole)) > 1e-3


def test_nll_with_axis_name_under_pmap():
    logits, labels, weights = _batch(1)
    log_probs = np.asarray(jax.jit(jax.nn.log_softmax)(logits))
    options = {"ignore_index": IGNORE, "class_weights": weights}
    per_device = jax.pmap(
        lambda x, y: jaxloss.nll(x, y, axis_name="batch", **options), axis_name="batch"
    )(log_probs.reshape(DEVICES, ROWS_PER_DEVICE, -1), labels.reshape(DEVICES, -1))
    whole = jax.jit(lambda x, y: jaxloss.nll(x, y, **options))(log_probs, labels)
    np.testing.assert_allclose(per_device, whole, rtol=1e-6)


def test_gradients_taken_on_each_device_under_shard_map_and_pmap():
    # A data-parallel step differentiates on each device. Under shard_map the gradient of a
    # replicated weight is the global loss's (shard_map sums it over the devices) and a
    # local input's is its share. Under pmap JAX transposes the psum of the global sums
    # into a psum: each device's gradient is DEVICES times its share, so the usual
    # lax.pmean of the gradients is the global loss's gradient (and psum DEVICES times it),
    # as docs/conventions.md says. The reference: the single-device gradient of the whole
    # batch (devices hold 0 to 7 ignored targets).
    logits, labels, weights = _batch(4)
    scale = np.float32(1.5)

    def loss(w, x, y, axis_name=None):
        return jaxloss.cross_entropy(
            w * x, y, ignore_index=IGNORE, class_weights=weights, axis_name=axis_name
        )

    whole = jax.jit(jax.grad(loss, argnums=(0, 1)))(scale, logits, labels)
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    on_devices = jax.jit(
        jax.shard_map(
            jax.grad(lambda w, x, y: loss(w, x, y, "batch"), argnums=(0, 1)),
            mesh=mesh,
            in_specs=(P(), P("batch"), P("batch")),
            out_specs=(P(), P("batch")),
        )
    )(scale, logits, labels)
    np.testing.assert_allclose(on_devices[0], whole[0], rtol=1e-5)
    np.testing.assert_allclose(on_devices[1], whole[1], rtol=1e-5, atol=1e-7)

    def pmap_step(w, x, y):
        grads = jax.grad(lambda w, x: loss(w, x, y, "batch"), argnums=(0, 1))(w, x)
        return grads, jax.lax.pmean(grads[0], "batch")

    (w_grads, x_grads), w_mean = jax.pmap(pmap_step, axis_name="batch", in_axes=(None, 0, 0))(
        scale, logits.reshape(DEVICES, ROWS_PER_DEVICE, -1), labels.reshape(DEVICES, -1)
    )
    np.testing.assert_allclose(w_mean[0], whole[0], rtol=1e-5)
    np.testing.assert_allclose(np.sum(w_grads), DEVICES * whole[0], rtol=1e-5)
    np.testing.assert_allclose(
        x_grads.reshape(logits.shape), DEVICES * whole[1], rtol=1e-5, atol=1e-7
    )


def test_a_device_with_only_ignored_targets_contributes_nothing():
    logits, labels, _ = _batch(2)
    labels = labels.copy()
    labels[:ROWS_PER_DEVICE] = IGNORE
    value = _sharded(
        lambda x, y: jaxloss.cross_entropy(x, y, ignore_index=IGNORE, axis_name="batch")
    )(logits, labels)
    whole = jaxloss.cross_entropy(logits, labels, ignore_index=IGNORE)
    np.testing.assert_allclose(value, whole, rtol=1e-6)
    assert np.isfinite(float(value))


def test_all_ignored_everywhere_is_zero():
    logits, labels, _ = _batch(3)
    value = _sharded(
        lambda x, y: jaxloss.cross_entropy(x, y, ignore_index=IGNORE, axis_name="batch")
    )(logits, jnp.full_like(labels, IGNORE))
    assert float(value) == 0.0


# --- Class-sharded heads (model parallel, as Partial FC) ----------------------------------

NUM_HEAD_CLASSES = 8 * 6
# The margin heads' options, from their cases (tests/margin/cases.py).
HEAD_OPTIONS = {
    name: case.kwargs
    for name, case in REGISTRY.items()
    if case.margin_head and case.fn is getattr(jaxloss, name, None)
}


def _head_inputs(seed=0):
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=(16, 5)).astype(np.float32)
    centers = rng.normal(size=(NUM_HEAD_CLASSES, 5)).astype(np.float32)
    labels = rng.integers(0, NUM_HEAD_CLASSES, size=16).astype(np.int32)
    labels[0] = -100  # excluded on every shard
    return embeddings, centers, labels


@pytest.mark.parametrize("name", sorted(HEAD_OPTIONS))
def test_class_sharded_margin_heads_equal_one_device(name):
    # Unchunked and in chunks of 4 classes, compiled together.
    embeddings, centers, labels = _head_inputs()
    fn = getattr(jaxloss, name)

    def both(loss):
        def run(x, w):
            return [
                jax.value_and_grad(loss(chunk_size), argnums=(0, 1))(x, w)
                for chunk_size in (None, 4)
            ]

        return jax.jit(run)

    def sharded(chunk_size):
        options = dict(HEAD_OPTIONS[name], chunk_size=chunk_size)
        return lambda x, w: jax.shard_map(
            lambda x, w, y: fn(x, w, y, class_axis_name="classes", **options),
            mesh=jax.make_mesh((DEVICES,), ("classes",), axis_types=(jax.sharding.AxisType.Auto,)),
            in_specs=(P(), P("classes"), P()),
            out_specs=P(),
        )(x, w, labels)

    def whole(chunk_size):
        options = dict(HEAD_OPTIONS[name], chunk_size=chunk_size)
        return lambda x, w: fn(x, w, labels, **options)

    got, expected = both(sharded)(embeddings, centers), both(whole)(embeddings, centers)
    for chunk_size, (value, grads), (expected_value, expected_grads) in zip(
        (None, 4), got, expected, strict=True
    ):
        np.testing.assert_allclose(value, expected_value, rtol=1e-5, err_msg=str(chunk_size))
        for g, e in zip(grads, expected_grads, strict=True):
            np.testing.assert_allclose(
                g, e, rtol=1e-4, atol=1e-6 * np.abs(e).max(), err_msg=str(chunk_size)
            )


@pytest.mark.parametrize("chunk_size", [None, 4])
def test_class_sharded_linear_cross_entropy_equals_one_device(chunk_size):
    rng = np.random.default_rng(1)
    hidden = rng.normal(size=(12, 5)).astype(np.float32)
    weight = rng.normal(size=(NUM_HEAD_CLASSES, 5)).astype(np.float32)
    bias = rng.normal(size=NUM_HEAD_CLASSES).astype(np.float32)
    labels = rng.integers(0, NUM_HEAD_CLASSES, size=12)
    labels[:3] = 7
    options = {"ignore_index": 7, "label_smoothing": 0.1, "chunk_size": chunk_size}
    mesh = jax.make_mesh((DEVICES,), ("classes",), axis_types=(jax.sharding.AxisType.Auto,))

    def sharded(h, w, b):
        return jax.jit(
            jax.shard_map(
                lambda h, w, b: jaxloss.linear_cross_entropy(
                    h, w, labels, bias=b, class_axis_name="classes", **options
                ),
                mesh=mesh,
                in_specs=(P(), P("classes"), P("classes")),
                out_specs=P(),
            )
        )(h, w, b)

    def whole(h, w, b):
        return jaxloss.linear_cross_entropy(h, w, labels, bias=b, **options)

    value, grads = _value_and_grads(sharded, (0, 1, 2))(hidden, weight, bias)
    expected_value, expected = _value_and_grads(whole, (0, 1, 2))(hidden, weight, bias)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6 * np.abs(e).max())


@pytest.mark.parametrize("chunk_size", [None, 1, 3])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_data_parallel_linear_cross_entropy_equals_one_device(chunk_size, reduction):
    # 8 rows and 7 classes per device: chunk_size=3 takes the row-blocked kernel, 1 the
    # class-blocked one. Devices hold 0-7 ignored rows; the weights are replicated.
    logits, labels, _ = _batch(2)
    hidden = logits[:, :5]
    rng = np.random.default_rng(3)
    weight = rng.normal(size=(NUM_CLASSES, 5)).astype(np.float32)
    options = {"ignore_index": IGNORE, "label_smoothing": 0.1, "chunk_size": chunk_size}
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))

    def sharded(h, w):
        return jax.jit(
            jax.shard_map(
                lambda h, w, y: jaxloss.linear_cross_entropy(
                    h, w, y, axis_name="batch", reduction=reduction, **options
                ),
                mesh=mesh,
                in_specs=(P("batch"), P(), P("batch")),
                out_specs=P(),
            )
        )(h, w, labels)

    def whole(h, w):
        return jaxloss.linear_cross_entropy(h, w, labels, reduction=reduction, **options)

    value, grads = _value_and_grads(sharded, (0, 1))(hidden, weight)
    expected_value, expected = _value_and_grads(whole, (0, 1))(hidden, weight)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6 * np.abs(e).max())


# --- pairs and triplets: mining and negatives over the global batch --------------------------


def _identity_batch(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=DEVICES * ROWS_PER_DEVICE).astype(np.int32)
    embeddings = rng.normal(size=(DEVICES * ROWS_PER_DEVICE, 4)).astype(np.float32)
    embeddings += rng.normal(size=(5, 4)).astype(np.float32)[labels]
    where = rng.uniform(size=DEVICES * ROWS_PER_DEVICE) < 0.8
    where[:ROWS_PER_DEVICE] = False  # one device holds no example at all
    return embeddings, labels, where


def _sharded_three(fn):
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    return jax.jit(jax.shard_map(fn, mesh=mesh, in_specs=(P("batch"),) * 3, out_specs=P()))


@pytest.mark.parametrize("mining", ["all", "hard", "semihard"])
@pytest.mark.parametrize("squared", [False, True])
def test_batch_triplet_mines_the_global_batch(mining, squared):
    embeddings, labels, where = _identity_batch(3)
    options = {"mining": mining, "squared": squared, "margin": 2.0}

    def sharded(x):
        return _sharded_three(
            lambda x, y, w: jaxloss.batch_triplet(x, y, where=w, axis_name="batch", **options)
        )(x, labels, where)

    def whole(x):
        return jaxloss.batch_triplet(x, labels, where=where, **options)

    value, grad = _value_and_grads(sharded)(embeddings)
    expected_value, expected = _value_and_grads(whole)(embeddings)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_nt_xent_negatives_from_every_device(reduction):
    rng = np.random.default_rng(4)
    z1, z2 = (rng.normal(size=(DEVICES * ROWS_PER_DEVICE, 6)).astype(np.float32) for _ in "12")
    where = rng.uniform(size=DEVICES * ROWS_PER_DEVICE) < 0.8
    options = {"temperature": 0.3, "reduction": reduction}

    def sharded(a, b):
        return _sharded_three(
            lambda a, b, w: jaxloss.nt_xent(a, b, where=w, axis_name="batch", **options)
        )(a, b, where)

    def whole(a, b):
        return jaxloss.nt_xent(a, b, where=where, **options)

    value, grads = _value_and_grads(sharded, (0, 1))(z1, z2)
    expected_value, expected = _value_and_grads(whole, (0, 1))(z1, z2)
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    for g, e in zip(grads, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "name, loss",
    [
        ("nt_xent", lambda z, y: jaxloss.nt_xent(z, 2 * z, axis_name="batch")),
        ("info_nce", lambda z, y: jaxloss.info_nce(z, z + 1, axis_name="batch")),
        ("supcon", lambda z, y: jaxloss.supcon(z, y, axis_name="batch")),
        ("batch_triplet", lambda z, y: jaxloss.batch_triplet(z, y, axis_name="batch")),
        ("multi_similarity", lambda z, y: jaxloss.multi_similarity(z, y, axis_name="batch")),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_an_empty_global_batch_gathers_to_an_empty_batch(name, loss):
    # XLA refuses an all-gather along a zero-size axis ("dimension size of operand at
    # 'all_gather_dim' cannot be zero"). One sharded operand: JAX 0.10.2's Shardy lowering
    # itself fails on a shard_map whose operands are all empty when there are two or more.
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = jax.shard_map(
        lambda z: loss(z, jnp.zeros(z.shape[0], jnp.int32)),
        mesh=mesh,
        in_specs=P("batch"),
        out_specs=P(),
    )
    value, grad = _value_and_grads(sharded)(np.zeros((0, 4), np.float32))
    assert float(value) == 0.0 and grad.shape == (0, 4), name


def test_batch_triplet_and_nt_xent_under_pmap():
    embeddings, labels, where = _identity_batch(5)

    def split(a):
        return a.reshape(DEVICES, ROWS_PER_DEVICE, *a.shape[1:])

    triplet = jax.pmap(
        lambda x, y, w: jaxloss.batch_triplet(x, y, where=w, mining="hard", axis_name="b"),
        axis_name="b",
    )(split(embeddings), split(labels), split(where))
    contrastive = jax.pmap(
        lambda a, b, w: jaxloss.nt_xent(a, b, where=w, axis_name="b"), axis_name="b"
    )(split(embeddings), split(embeddings[::-1]), split(where))
    # The one-device values, compiled together (eagerly: a compilation per operation).
    whole_triplet, whole_contrastive = jax.jit(
        lambda x, y, w: (
            jaxloss.batch_triplet(x, y, where=w, mining="hard"),
            jaxloss.nt_xent(x, x[::-1], where=w),
        )
    )(embeddings, labels, where)
    np.testing.assert_allclose(triplet, whole_triplet, rtol=1e-5)
    np.testing.assert_allclose(contrastive, whole_contrastive, rtol=1e-5)


def _token_batch(name: str, seed=0):
    """A case's per-token inputs with padding: device d holds d fully padded sequences."""
    rng = np.random.default_rng(seed)
    args = REGISTRY[name].make_inputs(rng, DEVICES * ROWS_PER_DEVICE)
    tokens = np.shape(args[0])[1]
    lengths = rng.integers(1, tokens + 1, size=(DEVICES, ROWS_PER_DEVICE))
    for device in range(DEVICES):
        lengths[device, :device] = 0
    return args, np.arange(tokens) < lengths.reshape(-1, 1)


TOKEN_LOSSES = [name for name, case in REGISTRY.items() if case.token_loss]


@pytest.mark.parametrize("name", TOKEN_LOSSES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_token_means_are_global(name, reduction):
    # The mean is over the valid tokens of every device, though devices hold different
    # numbers of them.
    args, valid = _token_batch(name)
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))

    def loss(first, *rest, where, **options):
        return call(name, first, *rest, where=where, reduction=reduction, **options)

    sharded = jax.jit(
        jax.shard_map(
            lambda first, *rest: loss(first, *rest[:-1], where=rest[-1], axis_name="batch"),
            mesh=mesh,
            in_specs=(P("batch"),) * (len(args) + 1),
            out_specs=P(),
        )
    )
    value, grad_sharded = _value_and_grads(lambda lp: sharded(lp, *args[1:], valid))(args[0])
    whole, grad_whole = _value_and_grads(lambda lp: loss(lp, *args[1:], where=valid))(args[0])
    np.testing.assert_allclose(value, whole, rtol=1e-5)
    # Relative to the largest entry: a softmax's gradient (q − p per vocabulary entry)
    # carries float32 noise of about 1e-7 of its scale between the sharded and whole sums.
    atol = 1e-5 * np.abs(grad_whole).max()
    np.testing.assert_allclose(grad_sharded, grad_whole, rtol=1e-5, atol=atol)


def test_ppo_clip_under_pmap():
    (logprobs, old, advantages), valid = _token_batch("ppo_clip", 1)
    split = [
        a.reshape(DEVICES, ROWS_PER_DEVICE, *a.shape[1:])
        for a in (logprobs, old, advantages, valid)
    ]
    mapped = jax.pmap(
        lambda lp, o, a, v: jaxloss.ppo_clip(lp, o, a, where=v, axis_name="batch"),
        axis_name="batch",
    )(*split)
    whole = jax.jit(lambda *a: jaxloss.ppo_clip(*a[:3], where=a[3]))(
        logprobs, old, advantages, valid
    )
    np.testing.assert_allclose(mapped, np.full(DEVICES, whole), rtol=1e-5)


# ---------------------------------------------------------------------------------------
# Every batch-reducing loss of the registry: global "mean"/"sum" under shard_map and pmap.

WITH_AXIS_NAME = sorted(
    name
    for name in REGISTRY
    # A factory's (``fenchel_young``) axis_name is on the loss it returns: the case's function.
    if "axis_name" in inspect.signature(getattr(jaxloss, public_name(name))).parameters
    or "axis_name" in inspect.signature(REGISTRY[name].fn).parameters
)


def test_every_batch_reducing_loss_takes_axis_name():
    # Every public loss that reduces over a batch (all of them but the non-losses) is here.
    reducing = {public_name(name) for name in REGISTRY}
    assert reducing == {public_name(name) for name in WITH_AXIS_NAME}
    assert "axis_name" in inspect.signature(jaxloss.center_update).parameters


def _registry_batch(name, seed=0):
    """The shared suites' inputs and ``where`` (``compiled.BATCH`` rows, 3 a device)."""
    args = [np.asarray(a) for a in REGISTRY[name].make_inputs(np.random.default_rng(seed), BATCH)]
    return args, row_mask(name, args, KEEP)


@pytest.mark.parametrize("name", sorted(set(WITH_AXIS_NAME) & set(DEVICE_AND_CHECK_NAMES)))
def test_registry_loss_with_axis_name_equals_one_device(name):
    # The global mean (value and gradients) and sum over 8 devices under shard_map and the
    # mean under pmap, compiled as one function, against the one-device values of the same
    # inputs and mask, which the shared suites' compiled function (``compiled.probe``) has
    # computed already. A per-class "none" (``Case.per_class_none``) is global too: every
    # device's equals the one-device value.
    case = REGISTRY[name]
    args, where = _registry_batch(name)
    batched = batched_positions(name, args)
    specs = tuple(P("batch") if i in batched else P() for i in range(len(args)))
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    positions = case.differentiable

    def split(a):
        return a.reshape(DEVICES, -1, *a.shape[1:])

    def everything(w, *a):
        def on_devices(reduction):
            def local(w, *local_args):
                return call(name, *local_args, where=w, reduction=reduction, axis_name="batch")

            return jax.shard_map(local, mesh=mesh, in_specs=(P("batch"), *specs), out_specs=P())

        mapped = jax.pmap(
            lambda w, *a: call(name, *a, where=w, axis_name="batch"),
            axis_name="batch",
            in_axes=(0, *(0 if i in batched else None for i in range(len(a)))),
        )(split(w), *(split(x) if i in batched else x for i, x in enumerate(a)))
        out = {
            "shard_map": (
                *jax.value_and_grad(lambda *x: on_devices("mean")(w, *x), argnums=positions)(*a),
                on_devices("sum")(w, *a),
            ),
            "pmap": mapped,
        }
        if case.per_class_none:  # the global per-class values, the same on every device
            out["none"] = on_devices("none")(w, *a)
        return out

    out = jax.tree.map(np.asarray, jax.jit(everything)(where, *args))
    whole = probe(name, args, where)
    if case.per_class_none:
        np.testing.assert_allclose(out["none"], whole["none"], rtol=1e-5, atol=1e-6, err_msg="none")
    mean, grads, total = out["shard_map"]
    np.testing.assert_allclose(mean, whole["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(total, whole["sum"], rtol=1e-5, atol=1e-6)
    for position, gs, gw in zip(positions, grads, whole["grads_mean"], strict=True):
        np.testing.assert_allclose(gs, gw, rtol=1e-4, atol=1e-6, err_msg=f"input {position}")
    np.testing.assert_allclose(out["pmap"], np.full(DEVICES, whole["mean"]), rtol=1e-5, atol=1e-6)


def test_registry_mask_makes_per_device_means_differ():
    # Guards the test above: a mean of per-device means is not the global mean here.
    args, where = _registry_batch("mse")
    per_device = [
        jaxloss.mse(
            *(a[d * ROWS : (d + 1) * ROWS] for a in args[:2]),
            where=where[d * ROWS : (d + 1) * ROWS],
        )
        for d in range(DEVICES)
    ]
    assert abs(np.mean(per_device) - float(jaxloss.mse(*args, where=where))) > 1e-2


def test_center_update_with_axis_name_equals_one_device():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(DEVICES * ROWS, 4)).astype(np.float32)
    labels = rng.integers(0, 5, size=DEVICES * ROWS).astype(np.int32)
    centers = rng.normal(size=(5, 4)).astype(np.float32)
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(jax.sharding.AxisType.Auto,))
    sharded = jax.shard_map(
        lambda c, x, y, w: jaxloss.center_update(c, x, y, alpha=0.7, where=w, axis_name="batch"),
        mesh=mesh,
        in_specs=(P(), P("batch"), P("batch"), P("batch")),
        out_specs=P(),
    )

    @jax.jit  # one compilation, not one per operation
    def run(centers, features, labels):
        return (
            sharded(centers, features, labels, KEEP),
            jaxloss.center_update(centers, features, labels, alpha=0.7, where=KEEP),
            # one device's rows alone
            jaxloss.center_update(centers, features[:3], labels[:3], alpha=0.7),
        )

    got, whole, first = run(centers, features, labels)
    np.testing.assert_allclose(got, whole, rtol=1e-6, atol=1e-7)
    # and it is not the update of one device's rows alone
    assert not np.allclose(first, whole)


# Every loss over class rows with a `class_axis_name`: the margin heads and the linear head.
PARTIAL_FC_HEADS = {
    name: case.kwargs
    for name, case in REGISTRY.items()
    if case.class_labels is not None
    and case.fn is getattr(jaxloss, name, None)
    and "class_axis_name" in inspect.signature(case.fn).parameters
}


@pytest.mark.parametrize("name", sorted(PARTIAL_FC_HEADS))
def test_partial_fc_batch_and_classes_on_the_same_devices(name):
    # Each device holds 2 rows of the batch and 1/8 of the classes (Partial FC). The mean
    # with its gradients, the sum and "none" are compiled as one function. Each device's
    # "none" is its rows' (or, ``per_class_none``, its classes'): concatenated, the whole.
    embeddings, centers, labels = _head_inputs(seed=4)
    where = np.ones(16, bool)
    where[[1, 2, 3, 9]] = False  # the second device keeps nothing
    fn = getattr(jaxloss, name)
    mesh = jax.make_mesh((DEVICES,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))

    def sharded(reduction, chunk_size):
        options = dict(PARTIAL_FC_HEADS[name], chunk_size=chunk_size)

        def loss(x, w):
            local = jax.shard_map(
                lambda x, w, y, m: fn(
                    x,
                    w,
                    y,
                    where=m,
                    axis_name="d",
                    class_axis_name="d",
                    reduction=reduction,
                    **options,
                ),
                mesh=mesh,
                in_specs=(P("d"), P("d"), P("d"), P("d")),
                out_specs=P("d") if reduction == "none" else P(),
            )
            return local(x, w, labels, where)

        return loss

    def whole(reduction, chunk_size):
        options = dict(PARTIAL_FC_HEADS[name], chunk_size=chunk_size)
        return lambda x, w: fn(x, w, labels, where=where, reduction=reduction, **options)

    def everything(loss):
        # Unchunked and in chunks of 4 classes, compiled together.
        def run(x, w):
            out = []
            for chunk in (None, 4):
                mean, grads = jax.value_and_grad(loss("mean", chunk), argnums=(0, 1))(x, w)
                out.append((mean, grads, loss("sum", chunk)(x, w), loss("none", chunk)(x, w)))
            return out

        return jax.jit(run)

    all_got = everything(sharded)(embeddings, centers)
    all_expected = everything(whole)(embeddings, centers)
    for chunk_size, got, expected in zip((None, 4), all_got, all_expected, strict=True):
        message = f"chunk_size={chunk_size}"
        for index in (0, 2, 3):  # mean, sum, none
            np.testing.assert_allclose(
                got[index], expected[index], rtol=1e-5, atol=1e-6, err_msg=message
            )
        for g, e in zip(got[1], expected[1], strict=True):
            np.testing.assert_allclose(
                g, e, rtol=1e-4, atol=1e-6 * np.abs(e).max(), err_msg=message
            )


def test_batch_and_class_axes_that_partly_overlap_are_an_error():
    mesh = jax.make_mesh((2, 4), ("a", "b"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    embeddings, centers, labels = _head_inputs()
    local = jax.shard_map(
        lambda x, w, y: jaxloss.arcface(x, w, y, axis_name=("a", "b"), class_axis_name="b"),
        mesh=mesh,
        in_specs=(P(("a", "b")), P("b"), P(("a", "b"))),
        out_specs=P(),
    )
    with pytest.raises(ValueError, match="share some axes"):
        local(embeddings, centers, labels)


def test_class_sharded_nnx_head_equals_one_device():
    from flax import nnx

    from jaxloss.nn import MarginSoftmaxHead

    embeddings, _, labels = _head_inputs(seed=5)
    head = MarginSoftmaxHead(
        5, NUM_HEAD_CLASSES, loss="arcface", scale=16.0, class_axis_name="d", rngs=nnx.Rngs(0)
    )
    one_device = MarginSoftmaxHead(
        5, NUM_HEAD_CLASSES, loss="arcface", scale=16.0, rngs=nnx.Rngs(0)
    )
    graphdef, state = nnx.split(head)
    mesh = jax.make_mesh((DEVICES,), ("d",), axis_types=(jax.sharding.AxisType.Auto,))

    def loss(state, x, y):
        return nnx.merge(graphdef, state)(x, y, axis_name="d")

    sharded = jax.jit(
        jax.shard_map(
            jax.value_and_grad(loss),
            mesh=mesh,
            in_specs=(nnx.get_partition_spec(state), P("d"), P("d")),
            out_specs=(P(), nnx.get_partition_spec(state)),
        )
    )
    value, grads = sharded(state, embeddings, labels)
    expected_value, expected_grads = nnx.jit(nnx.value_and_grad(lambda h, x, y: h(x, y)))(
        one_device, embeddings, labels
    )
    np.testing.assert_allclose(value, expected_value, rtol=1e-5)
    np.testing.assert_allclose(
        grads["centers"][...], expected_grads["centers"][...], rtol=1e-4, atol=1e-7
    )

"""RNN-T (``jaxloss.rnnt``) against the float64 references (Graves's alpha recursion, its
closed-form gradient and the brute force over every alignment): values and gradients for
every blank position, with and without the fused log-softmax, with gradient clamping;
lengths and hostile padding, ``where``, every reduction, half precision, large logits,
jit == eager, vmap, ``check_grads`` and the shape errors.

Each group of checks reads one compiled function (``functools.cache``): compilation, not
arithmetic, is the time of this module.
"""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxloss
from tests.sequence import reference as ref

# batch, frames, max labels, classes; logits are [batch, frames, max labels + 1, classes].
SHAPE = (6, 6, 4, 5)
# Full lattices, a single frame (labels emitted at once, then the final blank), no labels
# (blanks only) and a mix.
LOGIT_LENGTHS = np.array([6, 1, 4, 6, 3, 5], np.int32)
LABEL_LENGTHS = np.array([4, 2, 0, 3, 1, 4], np.int32)
CLAMP = 0.05

CONFIGS = {
    "blank0": {"blank": 0},
    "blank_last": {"blank": SHAPE[3] - 1},
    "blank2": {"blank": 2},
    "blank-1": {"blank": -1},  # torchaudio's default: the last class
    "unfused": {"blank": 0, "fused_log_softmax": False},
    "unfused-blank-1": {"blank": -1, "fused_log_softmax": False},
    "clamp": {"blank": 0, "clamp": CLAMP},
    "clamp-unfused-blank2": {"blank": 2, "clamp": CLAMP, "fused_log_softmax": False},
}
# The reference's keywords of a configuration (``clamp`` only for the gradient).
_REF_KEYS = ("blank", "fused_log_softmax")


def _reference_options(options: dict) -> dict:
    return {key: options[key] for key in _REF_KEYS if key in options}


def _padding(shape, logit_lengths, label_lengths) -> np.ndarray:
    """``[B, T, U+1, V]``: True outside each lattice (t >= T_b or u > U_b)."""
    batch, frames, max_labels, classes = shape
    past_frames = np.arange(frames)[None, :, None] >= logit_lengths[:, None, None]
    past_labels = np.arange(max_labels + 1)[None, None, :] > label_lengths[:, None, None]
    past = (past_frames | past_labels)[..., None]
    return np.broadcast_to(past, (batch, frames, max_labels + 1, classes))


def _hostile(logits: np.ndarray, padding: np.ndarray) -> np.ndarray:
    """NaN, ±inf and 1e30 outside the lattices."""
    garbage = np.array([np.nan, np.inf, -np.inf, 1e30])[np.arange(logits.size) % 4]
    return np.where(padding, garbage.reshape(logits.shape), logits).astype(logits.dtype)


def _inputs(shape, logit_lengths, label_lengths, blank, seed):
    """Float32 logits ``[B, T, U+1, V]`` and labels that are never blank."""
    batch, frames, max_labels, classes = shape
    rng = np.random.default_rng(seed)
    logits = (2 * rng.normal(size=(batch, frames, max_labels + 1, classes))).astype(np.float32)
    non_blank = np.array([k for k in range(classes) if k != blank % classes])
    labels = rng.choice(non_blank, size=(batch, max_labels)).astype(np.int32)
    return logits, labels, logit_lengths, label_lengths


def _hostile_labels(labels, label_lengths):
    """Labels past ``label_lengths`` out of the classes (-1 and 10**6): never read."""
    past = np.arange(labels.shape[1])[None, :] >= label_lengths[:, None]
    garbage = np.where(np.arange(labels.size).reshape(labels.shape) % 2, -1, 10**6)
    return np.where(past, garbage, labels).astype(labels.dtype)


def _loss(logits, labels, logit_lengths, label_lengths, **options):
    return jaxloss.rnnt(
        logits, labels, logit_lengths=logit_lengths, label_lengths=label_lengths, **options
    )


def _value_and_vjp(loss, logits, cotangent):
    value, vjp = jax.vjp(loss, logits)
    return value, vjp(cotangent.astype(value.dtype))[0]


def _value_and_grad(loss, logits):
    """``loss(logits)`` and the gradient of its sum."""

    def total(x):
        value = loss(x)
        return jnp.sum(value), value

    (_, value), grad = jax.value_and_grad(total, has_aux=True)(logits)
    return value, grad


# --- The float64 references against each other --------------------------------------------


def _finite_differences(loss, logits, step=1e-6):
    """Central differences of ``loss(logits).sum()`` (float64): each sequence's gradient."""
    grad = np.zeros(logits.shape)
    for index in np.ndindex(logits.shape):
        bump = np.zeros(logits.shape)
        bump[index] = step
        grad[index] = (loss(logits + bump).sum() - loss(logits - bump).sum()) / (2 * step)
    return grad


TINY = [
    # (shape, logit_lengths, label_lengths): T <= 4, U <= 3.
    ((3, 4, 3, 4), np.array([4, 3, 1], np.int32), np.array([3, 1, 2], np.int32)),
    ((2, 3, 2, 3), np.array([3, 2], np.int32), np.array([0, 2], np.int32)),
]
TINY_CONFIGS = {
    "blank0": {"blank": 0},
    "blank-1-unfused": {"blank": -1, "fused_log_softmax": False},
    "blank2": {"blank": 2},
}


@functools.cache
def _tiny_reference(tiny_index: int, config: str):
    """The tiny lattice's inputs, its brute-force values and their finite differences."""
    shape, logit_lengths, label_lengths = TINY[tiny_index]
    options = _reference_options(TINY_CONFIGS[config])
    inputs = _inputs(shape, logit_lengths, label_lengths, options["blank"], 100 + tiny_index)
    logits, labels = inputs[0].astype(np.float64), inputs[1]

    def brute_force(x):
        return ref.rnnt_brute_force(x, labels, logit_lengths, label_lengths, **options)

    return inputs, brute_force(logits), _finite_differences(brute_force, logits)


@pytest.mark.parametrize(
    "tiny_index, config",
    list(itertools.product(range(len(TINY)), TINY_CONFIGS)),
)
def test_references_agree(tiny_index, config):
    # The alpha recursion and the sum over every alignment; the closed-form gradient and
    # the brute force's finite differences.
    (logits, labels, logit_lengths, label_lengths), values, differences = _tiny_reference(
        tiny_index, config
    )
    options = _reference_options(TINY_CONFIGS[config])
    inputs = (logits.astype(np.float64), labels, logit_lengths, label_lengths)
    np.testing.assert_allclose(ref.rnnt(*inputs, **options), values, rtol=1e-12)
    grad = ref.rnnt_grad(*inputs, **options)
    np.testing.assert_allclose(grad, differences, atol=1e-7)
    padding = _padding(TINY[tiny_index][0], logit_lengths, label_lengths)
    assert np.all(grad[padding] == 0) and np.any(grad != 0)
    clipped = ref.rnnt_grad(*inputs, **options, clamp=0.1)
    np.testing.assert_array_equal(clipped, np.clip(grad, -0.1, 0.1))


def test_reference_of_a_hand_worked_lattice():
    # One frame, one label, two classes, uniform: emit the label then the final blank,
    # probability 1/2 * 1/2.
    logits = np.zeros((1, 1, 2, 2))
    labels = np.array([[1]])
    np.testing.assert_allclose(ref.rnnt(logits, labels), [np.log(4.0)])
    np.testing.assert_allclose(ref.rnnt_brute_force(logits, labels), [np.log(4.0)])
    # Two frames, no label: blank, blank.
    np.testing.assert_allclose(
        ref.rnnt(np.zeros((1, 2, 1, 3)), np.zeros((1, 0), int)), [np.log(9.0)]
    )


# --- The loss against the references: every configuration, one compilation --------------


def _config_inputs(options: dict):
    """The inputs of a configuration: the same for the same blank class and log-softmax
    (``clamp`` and ``blank0``, ``blank-1`` and ``blank_last``: same values). Without the
    fused log-softmax, log-probabilities, as torchaudio expects (arbitrary scores: see
    ``test_unfused_scores_are_taken_as_given``)."""
    blank, fused = options["blank"] % SHAPE[3], options.get("fused_log_softmax", True)
    logits, *rest = _inputs(SHAPE, LOGIT_LENGTHS, LABEL_LENGTHS, blank, 10 * fused + blank)
    if not fused:
        logits = ref.log_softmax(logits).astype(np.float32)
    return (logits, *rest)


@functools.cache
def _main():
    """Inputs and outputs of every check on ``SHAPE``, from one compiled function.

    Every configuration runs on hostile inputs (NaN, ±inf, 1e30 outside the lattices,
    labels out of the classes past ``label_lengths``) with ``reduction="none"`` and a
    random cotangent; ``blank0`` also on clean inputs, with every reduction, with ``where``
    (masked sequences all NaN), in half precision and at 1e4 scale.
    """
    inputs = {name: _config_inputs(options) for name, options in CONFIGS.items()}
    padding = _padding(SHAPE, LOGIT_LENGTHS, LABEL_LENGTHS)
    hostile = {
        name: (_hostile(logits, padding), _hostile_labels(labels, LABEL_LENGTHS), *lengths)
        for name, (logits, labels, *lengths) in inputs.items()
    }
    cotangent = np.random.default_rng(50).uniform(0.5, 2.0, size=SHAPE[0]).astype(np.float32)
    keep = np.array([True, False, True, True, False, True])
    clean = inputs["blank0"]
    masked = np.where(keep[:, None, None, None], clean[0], np.nan).astype(np.float32)
    large = (1e4 * clean[0]).astype(np.float32)

    @jax.jit
    def run(hostile, clean, masked, large, cotangent, keep, clamp):
        out = {}
        for name, (logits, labels, *lengths) in hostile.items():
            # clamp is traced (a hyperparameter, not a static option).
            options = {**CONFIGS[name], **({"clamp": clamp} if "clamp" in CONFIGS[name] else {})}
            loss = functools.partial(
                _loss,
                labels=labels,
                logit_lengths=lengths[0],
                label_lengths=lengths[1],
                reduction="none",
                **options,
            )
            out[name] = _value_and_vjp(loss, logits, cotangent)
        logits, labels, logit_lengths, label_lengths = clean
        base = functools.partial(
            _loss, labels=labels, logit_lengths=logit_lengths, label_lengths=label_lengths
        )
        out["clean"] = _value_and_vjp(lambda x: base(x, reduction="none"), logits, cotangent)
        # "none" is "clean" above; with where, the gradient of the mean only.
        for reduction in ("sum", "mean"):
            out[reduction] = _value_and_grad(functools.partial(base, reduction=reduction), logits)
        for reduction in ("none", "sum"):
            out[f"where-{reduction}"] = base(masked, reduction=reduction, where=keep), None
        out["where-mean"] = _value_and_grad(
            functools.partial(base, reduction="mean", where=keep), masked
        )
        out["all-masked"] = _value_and_grad(
            functools.partial(base, reduction="mean", where=jnp.zeros_like(keep)), masked
        )
        for dtype in (jnp.bfloat16, jnp.float16):
            half = hostile["blank0"][0].astype(dtype)  # 1e30: inf in float16
            out[jnp.dtype(dtype).name] = _value_and_grad(
                functools.partial(base, reduction="none"), half
            )
        out["large"] = _value_and_grad(functools.partial(base, reduction="none"), large)
        return out

    got = run(hostile, clean, masked, large, cotangent, keep, np.float32(CLAMP))
    got = jax.tree.map(np.asarray, got)
    return {
        "inputs": inputs,
        "hostile": hostile,
        "padding": padding,
        "cotangent": cotangent,
        "keep": keep,
        "masked": masked,
        "large": large,
        "got": got,
    }


def _expected(inputs, options, clamp=-1.0):
    """Float64 per-sequence values and gradients of the reference."""
    logits = np.asarray(inputs[0], np.float64)
    options = _reference_options(options)
    values = ref.rnnt(logits, *inputs[1:], **options)
    return values, ref.rnnt_grad(logits, *inputs[1:], **options, clamp=clamp)


def _assert_close_grads(got, want, err_msg=""):
    assert got.shape == want.shape, err_msg
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-6, err_msg=err_msg)


@pytest.mark.parametrize("config", CONFIGS)
def test_matches_the_float64_reference(config):
    # Value per sequence and the cotangent-weighted gradient: with clamp, each sequence's
    # gradient is clipped before the cotangent scales it.
    main = _main()
    options = CONFIGS[config]
    values, grads = _expected(main["inputs"][config], options, options.get("clamp", -1.0))
    value, grad = main["got"][config]
    assert value.dtype == np.float32 and value.shape == (SHAPE[0],)
    np.testing.assert_allclose(value, values, rtol=1e-5, atol=1e-5)
    cotangent = main["cotangent"][:, None, None, None]
    _assert_close_grads(grad, cotangent * grads, config)
    # Hostile padding: never read, exactly zero gradient.
    assert np.all(grad[main["padding"]] == 0)
    assert np.all(np.isfinite(grad))


def test_clamp_changes_the_gradient_only():
    main = _main()
    value, grad = main["got"]["clamp"]
    plain_value, plain_grad = main["got"]["blank0"]
    np.testing.assert_array_equal(value, plain_value)
    cotangent = main["cotangent"][:, None, None, None]
    assert np.all(np.abs(grad) <= CLAMP * cotangent * (1 + 1e-6))
    # The clamp acts on both sides (torchaudio's kernel clips only from below).
    assert np.any(plain_grad > CLAMP * cotangent) and np.any(plain_grad < -CLAMP * cotangent)
    assert np.any(np.isclose(grad, CLAMP * cotangent, rtol=1e-6, atol=0))
    assert np.any(np.isclose(grad, -CLAMP * cotangent, rtol=1e-6, atol=0))


def test_negative_blank_counts_from_the_end():
    main = _main()
    for part in range(2):
        np.testing.assert_array_equal(main["got"]["blank-1"][part], main["got"]["blank_last"][part])


def test_hostile_padding_changes_nothing():
    # NaN, ±inf, 1e30 outside the lattices and out-of-range labels past label_lengths:
    # the same value and gradient as clean padding. The two are separate computations in
    # one jitted function, which XLA may fuse differently (an ulp apart); the shared
    # suite's hostile-padding property checks one compiled function bit for bit.
    main = _main()
    np.testing.assert_array_equal(main["got"]["blank0"][0], main["got"]["clean"][0])
    np.testing.assert_allclose(
        main["got"]["blank0"][1], main["got"]["clean"][1], rtol=1e-6, atol=1e-7
    )
    assert np.all(main["got"]["clean"][1][main["padding"]] == 0)


def test_every_reduction():
    # "mean" over the batch, not normalized by lengths (torchaudio's).
    main = _main()
    values, grads = _expected(main["inputs"]["blank0"], CONFIGS["blank0"])
    cotangent = main["cotangent"][:, None, None, None]
    for reduction, scale, want in [
        ("clean", cotangent, values),  # "none", with a random cotangent
        ("sum", 1.0, values.sum()),
        ("mean", 1.0 / SHAPE[0], values.mean()),
    ]:
        value, grad = main["got"][reduction]
        assert value.dtype == np.float32 and value.shape == np.shape(want), reduction
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-5, err_msg=reduction)
        _assert_close_grads(grad, scale * grads, reduction)


def test_where_counts_only_the_kept_sequences():
    # The masked sequences' logits are all NaN: they count nothing, not even a NaN.
    main = _main()
    keep = main["keep"]
    values, grads = _expected(main["inputs"]["blank0"], CONFIGS["blank0"])
    grads = np.where(keep[:, None, None, None], grads, 0)
    for reduction, want in [
        ("none", np.where(keep, values, 0)),
        ("sum", values[keep].sum()),
        ("mean", values[keep].mean()),
    ]:
        value, _ = main["got"][f"where-{reduction}"]
        np.testing.assert_allclose(value, want, rtol=1e-5, atol=1e-5, err_msg=reduction)
    _, grad = main["got"]["where-mean"]
    assert np.all(grad[~keep] == 0)
    _assert_close_grads(grad, grads / keep.sum())
    value, grad = main["got"]["all-masked"]
    assert float(value) == 0.0 and np.all(grad == 0)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_is_computed_in_float32(dtype):
    main = _main()
    with np.errstate(over="ignore"):  # 1e30 becomes inf in float16
        logits = main["hostile"]["blank0"][0].astype(dtype)
    inputs = (logits.astype(np.float32), *main["inputs"]["blank0"][1:])
    values, grads = _expected(inputs, CONFIGS["blank0"])
    value, grad = main["got"][dtype]
    assert value.dtype == np.float32
    # Float32 arithmetic on the rounded logits.
    np.testing.assert_allclose(value, values, rtol=1e-5, atol=1e-5)
    assert grad.dtype == logits.dtype
    grad = grad.astype(np.float32)
    assert np.all(grad[main["padding"]] == 0)
    np.testing.assert_allclose(grad, grads, atol=1e-2)


def test_large_logits_stay_finite_and_accurate():
    main = _main()
    inputs = (main["large"], *main["inputs"]["blank0"][1:])
    values, grads = _expected(inputs, CONFIGS["blank0"])
    value, grad = main["got"]["large"]
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, values, rtol=1e-5)
    # Log-probabilities near 1e5 carry float32 rounding of about 0.01 (one ulp at 1e5 is
    # 0.008): the posteriors, exponentials of their differences, are good to a few percent.
    np.testing.assert_allclose(grad, grads, atol=5e-2)


# --- Tiny lattices: the brute force, jit == eager, vmap, check_grads ---------------------


@functools.cache
def _tiny(tiny_index: int):
    """Every configuration of ``TINY_CONFIGS`` on one tiny lattice, in one compilation;
    for the first lattice, also ``vmap`` over two batches of it, and for the second, the
    default lengths (every frame and label)."""
    inputs = {config: _tiny_reference(tiny_index, config)[0] for config in TINY_CONFIGS}

    @jax.jit
    def run(inputs):
        out = {}
        for config, (logits, labels, logit_lengths, label_lengths) in inputs.items():
            loss = functools.partial(
                _loss,
                labels=labels,
                logit_lengths=logit_lengths,
                label_lengths=label_lengths,
                reduction="none",
                **TINY_CONFIGS[config],
            )
            out[config] = _value_and_grad(loss, logits)
            if tiny_index == 0 and config == "blank0":
                stacked = jnp.stack([logits, 0.5 * logits])
                out["vmap"] = jax.vmap(loss)(stacked), [loss(x) for x in stacked]
            if tiny_index == 1 and config == "blank0":
                defaults = functools.partial(jaxloss.rnnt, labels=labels, reduction="none")
                out["default lengths"] = _value_and_grad(defaults, logits)
        return out

    return jax.tree.map(np.asarray, run(inputs))


@pytest.mark.parametrize(
    "tiny_index, config",
    list(itertools.product(range(len(TINY)), TINY_CONFIGS)),
)
def test_matches_the_brute_force(tiny_index, config):
    # Values against the sum over every alignment, gradients against its finite differences.
    _, values, differences = _tiny_reference(tiny_index, config)
    value, grad = _tiny(tiny_index)[config]
    np.testing.assert_allclose(value, values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, differences, rtol=1e-4, atol=2e-6)


def test_vmap_equals_a_loop():
    mapped, looped = _tiny(0)["vmap"]
    np.testing.assert_allclose(mapped, np.stack(looped), rtol=1e-6, atol=1e-6)


def test_default_lengths_are_the_full_lattice():
    (logits, labels, _, _), _, _ = _tiny_reference(1, "blank0")
    value, grad = _tiny(1)["default lengths"]
    logits = logits.astype(np.float64)
    np.testing.assert_allclose(value, ref.rnnt(logits, labels), rtol=1e-5, atol=1e-5)
    _assert_close_grads(grad, ref.rnnt_grad(logits, labels))


def test_jit_equals_eager():
    (logits, labels, logit_lengths, label_lengths), _, _ = _tiny_reference(0, "blank0")
    value, grad = _tiny(0)["blank0"]

    def loss(x):
        return _loss(x, labels, logit_lengths, label_lengths, reduction="sum")

    eager_value, eager_grad = jax.value_and_grad(loss)(logits)
    np.testing.assert_allclose(eager_value, value.sum(), rtol=1e-6)
    np.testing.assert_allclose(eager_grad, grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("fused", [True, False])
def test_check_grads(fused):
    # Against finite differences in float64; jitted, so check_grads compiles the loss and
    # its VJP once each. Unfused: log-probabilities, as torchaudio expects.
    (logits, labels, logit_lengths, label_lengths), _, _ = _tiny_reference(1, "blank0")
    with jax.enable_x64(True):
        logits = np.asarray(logits, np.float64)
        if not fused:
            logits = ref.log_softmax(logits)

        @jax.jit
        def loss(x):
            return _loss(
                x, labels, logit_lengths, label_lengths, fused_log_softmax=fused, reduction="sum"
            )

        check_grads(loss, (logits,), order=1, modes=("rev",))


def test_unfused_scores_are_taken_as_given():
    # Without the fused log-softmax, any scores (torchaudio: the "logits" as given), even
    # unnormalized ones: -log p may be negative and is not clipped at 0.
    _, values, _ = _tiny_reference(0, "blank-1-unfused")
    assert np.any(values < 0)
    value, _ = _tiny(0)["blank-1-unfused"]
    np.testing.assert_allclose(value, values, rtol=1e-5, atol=1e-5)


# --- Errors -------------------------------------------------------------------------------


def test_shape_errors_name_the_argument():
    # Checked at trace time: eval_shape traces and compiles nothing.
    logits = jax.ShapeDtypeStruct((2, 5, 4, 3), jnp.float32)
    labels = jax.ShapeDtypeStruct((2, 3), jnp.int32)

    def rnnt(logits, labels, **options):
        return jax.eval_shape(functools.partial(jaxloss.rnnt, **options), logits, labels)

    with pytest.raises(ValueError, match="`logits`"):
        rnnt(jax.ShapeDtypeStruct((2, 5, 3), jnp.float32), labels)
    with pytest.raises(ValueError, match=r"`labels`.*\(2, 4\)"):
        rnnt(logits, jax.ShapeDtypeStruct((2, 4), jnp.int32))  # 4 positions: 3 labels
    with pytest.raises(ValueError, match=r"`labels`.*\(3, 3\)"):
        rnnt(logits, jax.ShapeDtypeStruct((3, 3), jnp.int32))
    with pytest.raises(ValueError, match="`labels`"):
        rnnt(logits, jax.ShapeDtypeStruct((2,), jnp.int32))
    with pytest.raises(TypeError, match="`labels`"):
        rnnt(logits, jax.ShapeDtypeStruct((2, 3), jnp.float32))
    with pytest.raises(ValueError, match="`logit_lengths`"):
        rnnt(logits, labels, logit_lengths=jnp.array([5]))
    with pytest.raises(ValueError, match="`label_lengths`"):
        rnnt(logits, labels, label_lengths=jnp.array([[3, 3]]))
    for blank in (3, -4):
        with pytest.raises(ValueError, match="`blank`"):
            rnnt(logits, labels, blank=blank)
    with pytest.raises(ValueError, match="reduction"):
        rnnt(logits, labels, reduction="batchmean")
    with pytest.raises(ValueError, match="`where`"):
        rnnt(logits, labels, where=jnp.ones(3, bool))


def test_second_derivatives_differentiate_the_backward_pass():
    # ctc's and rnnt's gradients are custom_vjp (no jvp of the loss itself), but their
    # backward passes are ordinary JAX: forward over reverse (jax.hessian's way) gives the
    # directional derivative of the gradient, as central differences of it do.
    rng = np.random.default_rng(0)
    labels = np.array([[1, 2], [3, 3]], np.int32)
    losses = {
        "ctc": (lambda z: jaxloss.ctc(z, labels), rng.normal(size=(2, 6, 4))),
        "rnnt": (lambda z: jaxloss.rnnt(z, labels), rng.normal(size=(2, 6, 3, 4))),
    }

    @jax.jit
    def forward_over_reverse_and_differences(inputs, directions):
        out = {}
        for name, (loss, _) in losses.items():
            x, v, h = inputs[name], directions[name], 1e-2
            grad = jax.grad(loss)
            along = jax.jvp(grad, (x,), (v,))[1]
            out[name] = along, (grad(x + h * v) - grad(x - h * v)) / (2 * h)
        return out

    inputs = {name: np.float32(x) for name, (_, x) in losses.items()}
    directions = {name: np.float32(rng.normal(size=x.shape)) for name, x in inputs.items()}
    for name, (along, differences) in forward_over_reverse_and_differences(
        inputs, directions
    ).items():
        assert np.abs(along).max() > 0.1, name
        np.testing.assert_allclose(along, differences, rtol=2e-3, atol=2e-4, err_msg=name)


def test_linear_rnnt_takes_a_numpy_int_time_chunk():
    # As the decoders' widths: NumPy's ints are ints (np.int64(2) was refused); bools and
    # floats are not.
    rng = np.random.default_rng(1)
    encoder, predictor = rng.normal(size=(2, 5, 6)), rng.normal(size=(2, 3, 6))
    weight, labels = rng.normal(size=(6, 4)), np.array([[1, 2], [3, 1]])
    value = jax.jit(jaxloss.linear_rnnt, static_argnames="time_chunk")
    args = [np.float32(a) for a in (encoder, predictor, weight)] + [labels]
    np.testing.assert_array_equal(value(*args, time_chunk=np.int64(2)), value(*args, time_chunk=2))
    for bad in (True, 2.0):
        with pytest.raises(ValueError, match="`time_chunk` must be a positive int"):
            jaxloss.linear_rnnt(*args, time_chunk=bad)

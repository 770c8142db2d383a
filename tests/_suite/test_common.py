"""The suite every public loss passes, driven by ``tests/<family>/cases.py``.

Modelled on optax's ``contrib/_common_test.py``: the same properties checked on every loss,
so a new loss gets them by adding one registry entry. Values and gradients come from
``compiled.probe``: one compilation per loss and input shape serves every test here.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_jvp, check_vjp

import jaxloss
from tests._suite import compiled
from tests._suite.compiled import BATCH, KEEP, probe
from tests._suite.registry import (
    ALIASES,
    DEVICE_AND_CHECK_NAMES,
    NOT_LOSSES,
    REGISTRY,
    batched_positions,
    call,
    public_name,
    reference_mean,
    row_mask,
)

EPS = 1e-6  # the finite-difference step (float64: rounding about 1e-10 relative)
NAMES = sorted(REGISTRY)
REDUCTIONS = ("mean", "sum", "none")


def _inputs(name: str, seed: int = 0, batch: int = BATCH) -> list:
    return [np.asarray(a) for a in REGISTRY[name].make_inputs(np.random.default_rng(seed), batch)]


def _is_float(x) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def _differentiable_index(name: str, position: int) -> int:
    """Index among the differentiable inputs of the input at ``position``."""
    return REGISTRY[name].differentiable.index(position)


def _drop(name: str, args, keep: np.ndarray) -> list:
    """The inputs without the masked batch entries (inputs without a batch axis whole)."""
    batched = batched_positions(name, args)
    return [np.asarray(a)[keep] if i in batched else a for i, a in enumerate(args)]


def test_every_public_loss_is_registered():
    public = set(jaxloss.__all__)
    registered = {public_name(name) for name in REGISTRY}
    unknown = public - registered - set(ALIASES) - set(NOT_LOSSES)
    assert not unknown, f"public names without a case in tests/<family>/cases.py: {sorted(unknown)}"
    stale = (registered | set(ALIASES) | set(NOT_LOSSES)) - public
    assert not stale, f"registered names that jaxloss does not export: {sorted(stale)}"


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_is_the_same_function(alias):
    assert getattr(jaxloss, alias) is getattr(jaxloss, ALIASES[alias])


@pytest.mark.parametrize("name", NAMES)
def test_reference_value(name):
    case = REGISTRY[name]
    args = _inputs(name)
    expected = case.reference(*args, **case.kwargs)
    out = probe(name, args)
    for reduction in REDUCTIONS:
        assert out[reduction].dtype == jnp.float32, reduction
    assert out["none"].shape == expected.shape
    np.testing.assert_allclose(out["none"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["sum"], expected.sum(), rtol=1e-5)
    np.testing.assert_allclose(out["mean"], reference_mean(name, args), rtol=1e-5)


@pytest.mark.parametrize("name", DEVICE_AND_CHECK_NAMES)
def test_jit_equals_eager(name):
    # One eager call, through the mask and the mean (eager dispatch compiles every operation
    # on its own: the costliest call of the suite); the jitted "none" is checked against the
    # float64 reference above.
    args = _inputs(name)
    where = row_mask(name, args, KEEP)
    eager = call(name, *args, where=where, reduction="mean")
    np.testing.assert_allclose(probe(name, args, where)["mean"], eager, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", DEVICE_AND_CHECK_NAMES)
def test_vmap_equals_loop(name):
    sets = [_inputs(name, seed) for seed in range(3)]
    stacked = [np.stack(parts) for parts in zip(*sets, strict=True)]
    mapped = jax.jit(jax.vmap(lambda *a: call(name, *a)))(*stacked)
    looped = [probe(name, args)["mean"] for args in sets]
    np.testing.assert_allclose(mapped, np.stack(looped), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_are_finite(name):
    out = probe(name, _inputs(name))
    for g in out["grads_mean"]:
        assert g.dtype == jnp.float32
        assert np.all(np.isfinite(g))
        assert np.any(g != 0)


@pytest.mark.parametrize("name", NAMES)
def test_check_grads(name):
    # Against finite differences in float64: jax.test_util's check_jvp and check_vjp (what
    # check_grads runs at order 1), fed by one compiled function that returns the value, the
    # JVP and the gradient together, which also gives the values the finite differences
    # take. check_grads compiles four programs (the loss, its JVP, the VJP's forward pass
    # and its transpose); this, one.
    case = REGISTRY[name]
    with jax.enable_x64(True):
        args = compiled.as_float64(_inputs(name))
        diff = tuple(args[i] for i in case.differentiable)

        def loss(*diff):
            return call(name, *compiled.with_differentiable(name, args, diff))

        @jax.jit
        def derivatives(primals, tangents):
            value, grads = jax.value_and_grad(loss, argnums=range(len(primals)))(*primals)
            jvp = jax.jvp(loss, primals, tangents) if "fwd" in case.grad_modes else None
            return value, grads, jvp

        def run(primals, tangents=None):
            # NumPy in, always (one compiled signature); the tangents unused unless given.
            primals = tuple(np.asarray(p) for p in primals)
            tangents = primals if tangents is None else tuple(np.asarray(t) for t in tangents)
            return derivatives(primals, tangents)

        def value(*primals):
            return run(primals)[0]

        if "fwd" in case.grad_modes:

            def jvp(primals, tangents):
                return run(primals, tangents)[2]

            check_jvp(value, jvp, diff, eps=EPS, err_msg="JVP")
        if "rev" in case.grad_modes:

            def vjp(*primals):
                out, grads, _ = run(primals)
                assert np.ndim(out) == 0  # a scalar loss: its VJP scales the gradient
                return out, lambda cotangent: tuple(cotangent * np.asarray(g) for g in grads)

            check_vjp(value, vjp, diff, eps=EPS, err_msg="VJP")


ROWS_INDEPENDENT = [name for name in NAMES if REGISTRY[name].rows_independent]


@pytest.mark.parametrize("name", ROWS_INDEPENDENT)
def test_where_equals_dropping(name):
    # The masked value equals the float64 reference on the remaining rows.
    case = REGISTRY[name]
    args = _inputs(name)
    out = probe(name, args, row_mask(name, args, KEEP))
    dropped = _drop(name, args, KEEP)
    np.testing.assert_allclose(out["mean"], reference_mean(name, dropped), rtol=1e-5, atol=1e-6)
    expected_sum = case.reference(*dropped, **case.kwargs).sum()
    np.testing.assert_allclose(out["sum"], expected_sum, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_where_zeroes_masked_entries_and_their_gradients(name):
    args = _inputs(name)
    where = row_mask(name, args, KEEP)
    out = probe(name, args, where)
    if not REGISTRY[name].per_class_none:  # per class, no entry of "none" is a masked row's
        assert np.all(out["none"][~where] == 0)
    batched = batched_positions(name, args)
    for position, g in zip(REGISTRY[name].differentiable, out["grads_mean"], strict=True):
        if position in batched:
            assert np.all(g[~KEEP] == 0)
            assert np.any(g[KEEP] != 0)
        else:  # e.g. class centers: the masked entries must not reach them
            unmasked = probe(name, _drop(name, args, KEEP), float32_only=True)["grads_mean"]
            np.testing.assert_allclose(
                g, unmasked[_differentiable_index(name, position)], rtol=1e-5, atol=1e-7
            )


@pytest.mark.parametrize("name", NAMES)
def test_all_masked_is_zero_with_zero_gradients(name):
    args = _inputs(name)
    out = probe(name, args, row_mask(name, args, np.zeros(BATCH, bool)))
    for reduction in ("mean", "sum"):
        assert float(out[reduction]) == 0.0, reduction
        for g in out[f"grads_{reduction}"]:
            assert np.all(g == 0), reduction


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_half_precision_computes_in_float32(name, dtype):
    args = _inputs(name)
    half = [a.astype(dtype) if _is_float(a) else a for a in args]  # NumPy: no compilation
    out, expected = probe(name, half), probe(name, compiled.upcast(half))
    for reduction in ("mean", "none"):
        assert out[reduction].dtype == jnp.float32
        np.testing.assert_allclose(out[reduction], expected[reduction], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", [n for n in DEVICE_AND_CHECK_NAMES if REGISTRY[n].hyperparameters])
def test_no_retrace_when_a_hyperparameter_changes(name):
    case = REGISTRY[name]
    ((option, other_value),) = case.hyperparameters.items()
    args = _inputs(name)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def loss(value, *a):
        return case.fn(*a, **{**case.kwargs, option: value})

    first = loss(jnp.float32(case.kwargs.get(option, 0.0)), *args)
    second = loss(jnp.float32(other_value), *args)
    assert float(first) != float(second)
    np.testing.assert_allclose(
        second, reference_mean(name, args, **{option: other_value}), rtol=1e-5
    )


@pytest.mark.parametrize("name", NAMES)
def test_unknown_reduction_is_a_value_error(name):
    with pytest.raises(ValueError, match="reduction"):
        jax.eval_shape(lambda *a: call(name, *a, reduction="average"), *_inputs(name))


@pytest.mark.parametrize("name", NAMES)
def test_where_of_wrong_shape_is_a_value_error(name):
    args = _inputs(name)
    with pytest.raises(ValueError, match="where"):
        jax.eval_shape(lambda *a: call(name, *a, where=np.ones((BATCH + 1, 7), bool)), *args)

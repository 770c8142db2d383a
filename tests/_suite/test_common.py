"""The suite every public loss passes, driven by ``tests/<family>/cases.py``.

Modelled on optax's ``contrib/_common_test.py``: the same properties checked on every loss,
so a new loss gets them by adding one registry entry.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import jaxloss
from tests._suite import compiled
from tests._suite.registry import (
    ALIASES,
    NOT_LOSSES,
    REGISTRY,
    batched_positions,
    call,
    public_name,
    row_mask,
)

BATCH = 6
NAMES = sorted(REGISTRY)


def _inputs(name: str, seed: int = 0, batch: int = BATCH) -> list:
    return [np.asarray(a) for a in REGISTRY[name].make_inputs(np.random.default_rng(seed), batch)]


def _with_reductions(*reductions: str, names=NAMES) -> list:
    """``(name, reduction)`` for every loss of ``names`` and each of ``reductions`` it takes."""
    return [
        pytest.param(name, r, id=f"{name}-{r}")
        for name in names
        for r in reductions
        if r in REGISTRY[name].reductions
    ]


def _is_float(x) -> bool:
    return np.issubdtype(np.asarray(x).dtype, np.floating)


def _with_differentiable(case, args, diff_values):
    full = list(args)
    for position, value in zip(case.differentiable, diff_values, strict=True):
        full[position] = value
    return full


def _differentiable_index(name: str, position: int) -> int:
    """Index among the differentiable inputs of the input at ``position``."""
    return REGISTRY[name].differentiable.index(position)


def _grads(name: str, args, where=None, reduction: str = "mean") -> tuple:
    """Value and gradients with respect to every differentiable input (compiled once)."""
    return compiled.value_and_grads(name, reduction)(list(args), where)


def _value(name: str, args, where=None, reduction: str = "mean"):
    return compiled.value(name, reduction)(list(args), where)


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
    if case.scalar:
        value = _value(name, args)
        assert value.dtype == jnp.float32 and value.shape == ()
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6)
        return
    none = _value(name, args, reduction="none")
    assert none.dtype == jnp.float32
    assert none.shape == expected.shape
    np.testing.assert_allclose(none, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_value(name, args, reduction="sum"), expected.sum(), rtol=1e-5)
    expected_mean = case.reference_mean(expected, *args)
    np.testing.assert_allclose(_value(name, args), expected_mean, rtol=1e-5)


@pytest.mark.parametrize(("name", "reduction"), _with_reductions("mean", "none"))
def test_jit_equals_eager(name, reduction):
    args = _inputs(name)
    eager = call(name, *args, reduction=reduction)
    jitted = jax.jit(lambda *a: call(name, *a, reduction=reduction))(*args)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_equals_loop(name):
    sets = [_inputs(name, seed) for seed in range(3)]
    stacked = [np.stack(parts) for parts in zip(*sets, strict=True)]
    mapped = jax.jit(jax.vmap(lambda *a: call(name, *a)))(*stacked)
    looped = [_value(name, args) for args in sets]
    np.testing.assert_allclose(mapped, np.stack(looped), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_are_finite(name):
    _, grads = _grads(name, _inputs(name))
    for g in grads:
        assert g.dtype == jnp.float32
        assert np.all(np.isfinite(g))
        assert np.any(g != 0)


@pytest.mark.parametrize("name", NAMES)
def test_check_grads(name):
    case = REGISTRY[name]
    with jax.enable_x64(True):
        args = [np.asarray(a, np.float64) if _is_float(a) else a for a in _inputs(name)]

        def loss(*diff):
            return call(name, *_with_differentiable(case, args, diff))

        check_grads(loss, [args[i] for i in case.differentiable], order=1, modes=case.grad_modes)


def _drop(name: str, args: tuple, keep: np.ndarray) -> list:
    """The inputs without the masked batch entries (inputs without a batch axis whole)."""
    batched = batched_positions(name, args)
    return [np.asarray(a)[keep] if i in batched else a for i, a in enumerate(args)]


ROWS_INDEPENDENT = [name for name in NAMES if REGISTRY[name].rows_independent]


@pytest.mark.parametrize(
    ("name", "reduction"), _with_reductions("mean", "sum", names=ROWS_INDEPENDENT)
)
def test_where_equals_dropping(name, reduction):
    args = _inputs(name)
    keep = np.array([True, False, True, True, False, True])
    masked = _value(name, args, row_mask(name, args, keep), reduction)
    dropped = _value(name, _drop(name, args, keep), reduction=reduction)
    np.testing.assert_allclose(masked, dropped, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_where_zeroes_masked_entries_and_their_gradients(name):
    args = _inputs(name)
    keep = np.array([True, False, True, True, False, True])
    where = row_mask(name, args, keep)
    if "none" in REGISTRY[name].reductions:
        none = _value(name, args, where, "none")
        assert np.all(np.asarray(none)[~where] == 0)
    _, grads = _grads(name, args, where)
    batched = batched_positions(name, args)
    for position, g in zip(REGISTRY[name].differentiable, grads, strict=True):
        if position in batched:
            assert np.all(np.asarray(g)[~keep] == 0)
            assert np.any(np.asarray(g)[keep] != 0)
        else:  # e.g. class centers: the masked entries must not reach them
            _, unmasked = _grads(name, _drop(name, args, keep))
            np.testing.assert_allclose(
                g, unmasked[_differentiable_index(name, position)], rtol=1e-5, atol=1e-7
            )


@pytest.mark.parametrize(("name", "reduction"), _with_reductions("mean", "sum"))
def test_all_masked_is_zero_with_zero_gradients(name, reduction):
    args = _inputs(name)
    where = row_mask(name, args, np.zeros(BATCH, bool))
    value, grads = _grads(name, args, where, reduction)
    assert float(value) == 0.0
    for g in grads:
        assert np.all(np.asarray(g) == 0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16], ids=["bfloat16", "float16"])
def test_half_precision_computes_in_float32(name, dtype):
    args = _inputs(name)
    half = [jnp.asarray(a, dtype) if _is_float(a) else a for a in args]
    upcast = [jnp.asarray(a, jnp.float32) if _is_float(a) else a for a in half]
    for reduction in [r for r in ("mean", "none") if r in REGISTRY[name].reductions]:
        out = _value(name, half, reduction=reduction)
        assert out.dtype == jnp.float32
        np.testing.assert_allclose(
            out, _value(name, upcast, reduction=reduction), rtol=1e-6, atol=1e-7
        )


@pytest.mark.parametrize("name", [n for n in NAMES if REGISTRY[n].hyperparameters])
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
    expected = case.reference_mean(
        case.reference(*args, **{**case.kwargs, option: other_value}), *args
    )
    np.testing.assert_allclose(second, expected, rtol=1e-5)


@pytest.mark.parametrize("name", [n for n in NAMES if not REGISTRY[n].scalar])
def test_unknown_reduction_is_a_value_error(name):
    with pytest.raises(ValueError, match="reduction"):
        jax.eval_shape(lambda *a: call(name, *a, reduction="average"), *_inputs(name))


@pytest.mark.parametrize("name", NAMES)
def test_where_of_wrong_shape_is_a_value_error(name):
    args = _inputs(name)
    with pytest.raises(ValueError, match="where"):
        jax.eval_shape(lambda *a: call(name, *a, where=np.ones((BATCH + 1, 7), bool)), *args)

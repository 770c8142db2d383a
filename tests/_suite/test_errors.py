"""Trace-time shape and dtype errors, for every public loss: raised, and naming the input.

Driven by ``tests/<family>/cases.py``. Each loss gets two bad calls built from its own valid
inputs: a batched input one row short (a ``ValueError``), and its first differentiable
input as integers (a ``TypeError``); a loss with class rows (``centers``, ``proxies``) gets
them one column short. The message must name the loss's own arguments in backticks and, for
shapes, print the shapes involved.
"""

from __future__ import annotations

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.checkify import JaxRuntimeError

import jaxloss
from jaxloss import _checks
from tests._suite.registry import (
    DEVICE_AND_CHECK_NAMES,
    FORMULA_VARIANTS,
    REGISTRY,
    batched_positions,
    call,
    public_name,
)

NAMES = sorted(REGISTRY)
BATCH = 4
NAMED = re.compile(r"`\w+(\[\d+\])?`")  # `labels`, or `features[1]` of a list


def _parameter_names(name: str) -> list[str]:
    return list(inspect.signature(getattr(jaxloss, public_name(name))).parameters)


def _assert_names_arguments(name: str, message: str) -> None:
    """Every name the message puts in backticks is one of the loss's arguments (the public
    function's, or those of the case's wrapper), a list's entries (``features[1]``) too."""
    assert NAMED.search(message), message
    names = set(_parameter_names(name)) | set(inspect.signature(REGISTRY[name].fn).parameters)
    for match in NAMED.finditer(message):
        assert match.group(0).strip("`").split("[")[0] in names, (names, message)


def _inputs(name):
    return REGISTRY[name].make_inputs(np.random.default_rng(0), BATCH)


def _one_row_short(name):
    """The inputs with the last batched input (if there are two) one row short, or None."""
    args = _inputs(name)
    batched = [i for i in batched_positions(name, args) if np.ndim(args[i]) >= 1]
    if len(batched) < 2:
        return None
    args = list(args)
    args[batched[-1]] = np.asarray(args[batched[-1]])[:-1]
    return args


SHORT = [name for name in NAMES if _one_row_short(name) is not None]


@pytest.mark.parametrize("name", SHORT)
def test_a_batch_one_row_short_is_a_value_error_naming_the_input(name):
    with pytest.raises(ValueError) as error:
        jax.eval_shape(lambda *a: call(name, *a), *_one_row_short(name))
    message = str(error.value)
    _assert_names_arguments(name, message)
    assert re.search(r"\(\d+,|\[\d+", message) or "batch" in message, message


def _with_a_column(name):
    """The inputs with the first batched input given a trailing axis of 1 (a ``[B]`` as
    ``[B, 1]``, the classic column mistake) where another batched input has its shape, or
    None."""
    args = _inputs(name)
    batched = [i for i in batched_positions(name, args) if np.ndim(args[i]) >= 1]
    same = [i for i in batched if np.shape(args[i]) == np.shape(args[batched[0]])]
    if len(same) < 2:
        return None
    args = list(args)
    args[same[0]] = np.asarray(args[same[0]])[..., None]
    return args


COLUMN = [name for name in NAMES if _with_a_column(name) is not None]


@pytest.mark.parametrize("name", COLUMN)
def test_an_input_with_an_extra_axis_is_an_error_not_an_outer_product(name):
    # [B, 1] against [B] broadcasts to [B, B]: every prediction scored against every target,
    # a plausible number of the wrong pairs. 21 of these cases (the DPO family,
    # margin_ranking, contrastive, the triplet margins, the GAN losses) computed it before
    # session 49; the others raised for other reasons. (The soft Dice and Tversky read the
    # extra axis as the class axis of probabilities beside label maps, and then refuse the
    # float "labels": a TypeError naming them.)
    with pytest.raises((ValueError, TypeError)) as error:
        jax.eval_shape(lambda *a: call(name, *a), *_with_a_column(name))
    _assert_names_arguments(name, str(error.value))


@pytest.mark.parametrize("name", NAMES)
def test_an_integer_input_where_floats_belong_is_a_type_error_naming_it(name):
    case = REGISTRY[name]
    args = list(_inputs(name))
    position = case.differentiable[0]
    args[position] = np.ones(np.shape(args[position]), np.int32)
    with pytest.raises(TypeError) as error:
        jax.eval_shape(lambda *a: call(name, *a), *args)
    message = str(error.value)
    _assert_names_arguments(name, message)
    names = _parameter_names(name)
    if case.fn is getattr(jaxloss, public_name(name)):  # no wrapper: positions are names
        assert f"`{names[position]}`" in message, message


CLASS_ROWS = [n for n in NAMES if _parameter_names(n)[1:2] in (["centers"], ["proxies"])]


@pytest.mark.parametrize("name", CLASS_ROWS)
def test_class_rows_of_another_width_are_an_error_naming_them(name):
    # proxy_nca, which shares the margin heads' path, named its proxies `centers`.
    args = list(_inputs(name))
    args[1] = np.asarray(args[1])[..., :-1]
    with pytest.raises(ValueError) as error:
        jax.eval_shape(lambda *a: call(name, *a), *args)
    _assert_names_arguments(name, str(error.value))
    assert f"`{_parameter_names(name)[1]}`" in str(error.value), str(error.value)


INVALID = [(n, option) for n in NAMES for option in REGISTRY[n].invalid]


def test_losses_with_a_bounded_hyperparameter_declare_invalid_values():
    # Guards the table below from emptying: a loss's domain checks are tested through it.
    assert len({public_name(n) for n, _ in INVALID}) >= 5


@pytest.mark.parametrize(("name", "option"), INVALID, ids=[f"{n}-{o}" for n, o in INVALID])
def test_a_concrete_hyperparameter_outside_its_domain_is_a_value_error(name, option):
    args = _inputs(name)
    bad = REGISTRY[name].invalid[option]
    # A Python number, a NumPy one, and concrete arrays (an eager call of a step that holds
    # its hyperparameters as arrays, as compose.inject_hyperparams does).
    for value in (bad, np.float32(bad), np.asarray(bad), jnp.asarray(bad, jnp.float32)):
        with pytest.raises(ValueError, match=f"`{option}` must lie in"):
            call(name, *args, **{option: value})
    # Traced, the same value is not checked (a schedule inside jit may pass through it).
    jax.eval_shape(lambda value: call(name, *args, **{option: value}), bad)


def _update_inputs():
    rng = np.random.default_rng(0)
    x, w = rng.normal(size=(8, 4)).astype(np.float32), rng.normal(size=(3, 4)).astype(np.float32)
    return x, w, np.arange(8) % 3


# The public functions with hyperparameters that are not losses (the registry's cases
# cover the losses): option, a value outside its domain, and the call.
NON_LOSS_DOMAINS = {
    "grpo_advantages": ("eps", -1.5, lambda **o: jaxloss.grpo_advantages([[0.0, 2.0]], **o)),
    "curricularface_update": (
        "momentum",
        -1.0,
        lambda **o: jaxloss.curricularface_update(0.5, *_update_inputs(), **o),
    ),
    "adaface_update": (
        "momentum",
        2.0,
        lambda **o: jaxloss.adaface_update(20.0, 100.0, _update_inputs()[0], **o),
    ),
    "center_update": (
        "alpha",
        -0.5,
        lambda **o: jaxloss.center_update(np.zeros((3, 4)), *_update_inputs()[::2], **o),
    ),
}


@pytest.mark.parametrize("name", sorted(NON_LOSS_DOMAINS))
def test_state_updates_and_advantages_check_their_hyperparameters(name):
    option, bad, call_with = NON_LOSS_DOMAINS[name]
    with pytest.raises(ValueError, match=f"`{option}` must lie in"):
        call_with(**{option: bad})
    jax.tree.map(np.asarray, call_with())  # the defaults are inside


def test_every_entry_of_a_concrete_hyperparameter_array_is_checked():
    with pytest.raises(ValueError, match=r"`m` must lie in \(0, inf\), got -0.5 \(an entry"):
        _checks.in_range(jnp.array([0.1, -0.5, -2.0]), "m", low=0, low_open=True)
    with pytest.raises(ValueError, match=r"`m` must lie in \[0, 1\], got nan \(an entry"):
        _checks.in_range(np.array([[0.1], [np.nan]]), "m", low=0, high=1)
    with pytest.raises(ValueError, match=r"`m` must lie in \[0, 1\], got 2"):
        _checks.in_range([0.5, 2], "m", low=0, high=1)
    inside = jnp.array([0.0, 1.0])
    assert _checks.in_range(inside, "m", low=0, high=1) is inside


# Checked mode (a compile each, so a few): a traced hyperparameter outside its domain raises.
CHECKED_INVALID = [
    (name, option)
    for name, option in INVALID
    if name in ("cross_entropy", "huber", "supcon", "ppo_clip", "grpo", "ssim", "boundary")
]


@pytest.mark.parametrize(
    ("name", "option"), CHECKED_INVALID, ids=[f"{n}-{o}" for n, o in CHECKED_INVALID]
)
def test_checked_mode_rejects_a_traced_hyperparameter_outside_its_domain(name, option):
    args = _inputs(name)
    bad = REGISTRY[name].invalid[option]
    checked = jaxloss.checked(lambda *a, value: call(name, *a, **{option: value}))
    with pytest.raises(JaxRuntimeError, match=f"`{option}` must lie in"):
        checked(*args, value=jnp.float32(bad))


def test_every_loss_keeps_an_entry_in_the_device_and_checked_suites():
    # A formula variant leaves those suites only where another entry of its loss stays.
    kept = {public_name(name) for name in DEVICE_AND_CHECK_NAMES}
    assert {public_name(name) for name in REGISTRY} == kept
    assert FORMULA_VARIANTS <= set(REGISTRY)

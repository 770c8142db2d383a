"""Every loss of ``torch.nn.functional`` and ``optax.losses`` has a jaxloss translation that
gives the same numbers.

The catalogues are introspected at the pinned versions: torch's losses are the functions its
``torch.nn`` loss modules call plus every ``*_loss`` function; optax's are every public name
of ``optax.losses``. Each must have an entry in some ``tests/<family>/cases.py`` ``PEERS``
table (``tests/_suite/peer.py``), and each entry is checked numerically here: values and
gradients on random shapes, for every option combination it lists, and its spelling must
appear on the porting page of its library.
"""

from __future__ import annotations

import inspect
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from tests._suite.peer import LIBRARIES, library, peer_name
from tests._suite.registry import PEERS

PAGES = {"torch": "docs/porting.md", "optax": "docs/porting_optax.md"}
ROOT = pathlib.Path(__file__).resolve().parents[2]
# One random draw of shapes per entry: its options then share JAX's and torch's per-shape
# caches (a second draw doubles the module's time). The family tests vary shapes further.
SEEDS = (0,)


def torch_losses() -> set[str]:
    """The loss functions of ``torch.nn.functional``: those its loss modules call, and every
    ``*_loss`` function."""
    import torch.nn.modules.loss as modules

    called = set()
    for module in vars(modules).values():
        if inspect.isclass(module) and issubclass(module, modules._Loss):
            if module.forward is not modules._Loss.forward:
                called.update(re.findall(r"\bF\.(\w+)\(", inspect.getsource(module.forward)))
    functional = torch.nn.functional
    return called | {
        n for n in dir(functional) if n.endswith("_loss") and callable(getattr(functional, n))
    }


def optax_losses() -> set[str]:
    """Every public function of ``optax.losses``."""
    return {
        n for n in dir(optax.losses) if not n.startswith("_") and callable(getattr(optax.losses, n))
    }


CATALOGUES = {"torch": torch_losses, "optax": optax_losses}


@pytest.mark.parametrize("lib", LIBRARIES)
def test_every_peer_loss_has_a_translation(lib):
    catalogue = CATALOGUES[lib]()
    assert len(catalogue) > 15, f"introspecting {lib} found only {sorted(catalogue)}"
    translated = {peer_name(key) for key in PEERS if library(key) == lib}
    missing = catalogue - translated
    assert not missing, (
        f"{lib} losses without a PEERS entry in tests/<family>/cases.py: {sorted(missing)}"
    )
    stale = translated - catalogue
    assert not stale, f"PEERS entries for names {lib} does not have: {sorted(stale)}"


@pytest.mark.parametrize("key", sorted(PEERS))
def test_spelling_is_on_the_porting_page(key):
    page = (ROOT / PAGES[library(key)]).read_text()
    spelling = PEERS[key].spelling
    assert spelling in page, f"{PAGES[library(key)]} does not show {key}'s translation {spelling!r}"


def _peer_value_and_grads(key, inputs, cotangent_rng, options):
    entry = PEERS[key]
    if library(key) == "torch":
        tensors = [
            torch.tensor(x, dtype=torch.float64, requires_grad=i in entry.differentiable)
            if np.issubdtype(x.dtype, np.floating)
            else torch.tensor(x)
            for i, x in enumerate(inputs)
        ]
        value = entry.peer(*tensors, **options)
        cotangent = cotangent_rng.normal(size=tuple(value.shape))
        grads = torch.autograd.grad(
            value, [tensors[i] for i in entry.differentiable], torch.tensor(cotangent)
        )
        return value.detach().numpy(), cotangent, [g.numpy() for g in grads]
    return _jax_value_and_grads(entry.peer, inputs, entry.differentiable, cotangent_rng, options)


def _jax_value_and_grads(fn, inputs, differentiable, cotangent_rng, options, cotangent=None):
    def of_differentiable(*chosen):
        args = list(map(jnp.asarray, inputs))
        for i, x in zip(differentiable, chosen, strict=True):
            args[i] = x
        return fn(*args, **options)

    value, pullback = jax.vjp(of_differentiable, *(jnp.asarray(inputs[i]) for i in differentiable))
    if cotangent is None:
        cotangent = cotangent_rng.normal(size=value.shape)
    grads = pullback(jnp.asarray(cotangent, value.dtype))
    return np.asarray(value), cotangent, [np.asarray(g) for g in grads]


@pytest.mark.parametrize("key", sorted(PEERS))
def test_translation_gives_the_peers_numbers(key):
    entry = PEERS[key]
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        inputs = tuple(np.asarray(x) for x in entry.make_inputs(rng))
        for options in entry.options:
            expected, cotangent, expected_grads = _peer_value_and_grads(
                key, inputs, np.random.default_rng(seed), options
            )
            value, _, grads = _jax_value_and_grads(
                entry.ours, inputs, entry.differentiable, None, options, cotangent
            )
            where = f"{key}, seed {seed}, options {options}"
            assert value.shape == expected.shape, (
                f"{where}: shape {value.shape} != {expected.shape}"
            )
            np.testing.assert_allclose(value, expected, entry.rtol, entry.atol, err_msg=where)
            for position, grad, expected_grad in zip(
                entry.differentiable, grads, expected_grads, strict=True
            ):
                np.testing.assert_allclose(
                    grad,
                    expected_grad,
                    entry.rtol,
                    entry.atol,
                    err_msg=f"{where}: input {position}",
                )

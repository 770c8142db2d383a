"""Every loss of ``torch.nn.functional`` and ``optax.losses`` has a jaxloss translation that
gives the same numbers, and so does every loss of pytorch-metric-learning (PML), MONAI and
kornia that jaxloss has, the others being listed with the reason.

The catalogues are introspected at the pinned versions: torch's losses are the functions its
``torch.nn`` loss modules call plus every ``*_loss`` function; optax's are every public name
of ``optax.losses``; PML's every loss class of ``pytorch_metric_learning.losses``
(``tests/_suite/pml_catalogue.py``); MONAI's and kornia's the loss modules of
``monai.losses`` and ``kornia.losses`` (``tests/_suite/imaging_catalogues.py``). Each must
have an entry in some ``tests/<family>/cases*.py`` ``PEERS`` table
(``tests/_suite/peer.py``), or, for PML, MONAI and kornia, a line in its
``NOT_TRANSLATED`` table; each entry is checked numerically here: values and gradients on
random shapes, for every option combination it lists, and its spelling must appear on the
porting page of its library.
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

from tests._suite.imaging_catalogues import (
    KORNIA_NOT_TRANSLATED,
    MONAI_NOT_TRANSLATED,
    kornia_losses,
    monai_losses,
)
from tests._suite.peer import LIBRARIES, library, peer_name
from tests._suite.pml_catalogue import (
    PML_EXCLUDED,
    PML_NOT_TRANSLATED,
    pml_losses,
    pml_modules,
)
from tests._suite.registry import PEERS

PAGES = {
    "torch": "docs/porting.md",
    "optax": "docs/porting_optax.md",
    "pml": "docs/porting_pml.md",
    "monai": "docs/porting_monai.md",
    "kornia": "docs/porting_kornia.md",
}
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


CATALOGUES = {
    "torch": torch_losses,
    "optax": optax_losses,
    "pml": pml_losses,
    "monai": monai_losses,
    "kornia": kornia_losses,
}
# The losses a library has that jaxloss does not translate (yet), with the reason.
NOT_TRANSLATED = {
    "pml": PML_NOT_TRANSLATED,
    "monai": MONAI_NOT_TRANSLATED,
    "kornia": KORNIA_NOT_TRANSLATED,
}
# Where each NOT_TRANSLATED table is written.
TABLES = {
    "pml": "PML_NOT_TRANSLATED (tests/_suite/pml_catalogue.py)",
    "monai": "MONAI_NOT_TRANSLATED (tests/_suite/imaging_catalogues.py)",
    "kornia": "KORNIA_NOT_TRANSLATED (tests/_suite/imaging_catalogues.py)",
}


@pytest.mark.parametrize("lib", LIBRARIES)
def test_every_peer_loss_has_a_translation(lib):
    catalogue = CATALOGUES[lib]()
    assert len(catalogue) > 15, f"introspecting {lib} found only {sorted(catalogue)}"
    table = TABLES.get(lib, "a NOT_TRANSLATED table")
    translated = {peer_name(key) for key in PEERS if library(key) == lib}
    untranslated = set(NOT_TRANSLATED.get(lib, {}))
    missing = catalogue - translated - untranslated
    assert not missing, (
        f"{lib} losses without a PEERS entry in tests/<family>/cases*.py: {sorted(missing)}"
    )
    stale = translated - catalogue
    assert not stale, f"PEERS entries for names {lib} does not have: {sorted(stale)}"
    stale = untranslated - catalogue
    assert not stale, f"{table} lists names {lib} does not have: {sorted(stale)}"
    both = translated & untranslated
    assert not both, f"{sorted(both)} have PEERS entries: remove their lines from {table}"


def test_pml_catalogue_leaves_out_only_bases_and_wrappers():
    left_out = set(pml_modules()) - pml_losses()
    assert left_out == set(PML_EXCLUDED), (
        f"introspection leaves out {sorted(left_out)}; PML_EXCLUDED says {sorted(PML_EXCLUDED)}"
    )


@pytest.mark.parametrize("lib", sorted(NOT_TRANSLATED))
def test_untranslated_losses_are_on_the_porting_page(lib):
    page = (ROOT / PAGES[lib]).read_text()
    absent = [name for name in NOT_TRANSLATED[lib] if f"`{name}`" not in page]
    assert not absent, f"{PAGES[lib]} does not list the untranslated {absent}"


@pytest.mark.parametrize("key", sorted(PEERS))
def test_spelling_is_on_the_porting_page(key):
    page = (ROOT / PAGES[library(key)]).read_text()
    spelling = PEERS[key].spelling
    assert spelling in page, f"{PAGES[library(key)]} does not show {key}'s translation {spelling!r}"


def _torch_value_and_grads(key, inputs, options, cotangent_rng):
    """A torch-based (``"torch:"``, ``"pml:"``, ``"monai:"``, ``"kornia:"``) peer's float64
    value and the pullback of a normal cotangent of its shape drawn from ``cotangent_rng``."""
    entry = PEERS[key]
    # PML, MONAI and kornia index with their labels and want them int64, as torch's class
    # indices.
    integers = None if library(key) == "torch" else torch.int64
    tensors = [
        torch.tensor(x, dtype=torch.float64, requires_grad=i in entry.differentiable)
        if np.issubdtype(x.dtype, np.floating)
        else torch.tensor(x, dtype=integers)
        for i, x in enumerate(inputs)
    ]
    value = entry.peer(*tensors, **options)
    cotangent = cotangent_rng.normal(size=tuple(value.shape))
    grads = torch.autograd.grad(
        value, [tensors[i] for i in entry.differentiable], torch.tensor(cotangent)
    )
    return value.detach().numpy(), cotangent, [g.numpy() for g in grads]


def _vjp(fn, args, differentiable, options):
    """``fn(*args, **options)`` and its pullback to the ``differentiable`` args."""

    def of_chosen(*chosen):
        full = list(args)
        for i, x in zip(differentiable, chosen, strict=True):
            full[i] = x
        return fn(*full, **options)

    return jax.vjp(of_chosen, *(args[i] for i in differentiable))


def _compiled_values_and_grads(fn, inputs, differentiable, all_options, cotangents):
    """``fn``'s value for each options and the pullback of its cotangent, all from one
    compiled function: the inputs and cotangents traced, the options closed over (static,
    as a caller's Python options are).

    One compilation per entry: op by op, this module took 1.5 to 1.9 times as many CPU
    seconds, and with one compilation per options about 1.5 times."""

    def run(args, cotangents):
        out = []
        for options, cotangent in zip(all_options, cotangents, strict=True):
            value, pullback = _vjp(fn, args, differentiable, options)
            # Not pulled back if the shapes differ: the caller reports them.
            same = value.shape == cotangent.shape
            out.append((value, pullback(cotangent.astype(value.dtype)) if same else None))
        return out

    # NumPy in: jit converts it as jnp.asarray would, while an eager jnp.asarray of a NumPy
    # array compiles a program of its own for each new shape (JAX 0.10).
    out = jax.jit(run)([np.asarray(x) for x in inputs], [np.asarray(c) for c in cotangents])
    return jax.tree.map(np.asarray, out)


def _optax_values_and_grads(key, inputs, cotangent_rngs):
    """An ``"optax:"`` peer's values for each of the entry's options and the pullbacks of
    normal cotangents of their shapes, one drawn from each of ``cotangent_rngs``."""
    entry = PEERS[key]
    try:
        shapes = jax.eval_shape(
            lambda args: [entry.peer(*args, **o) for o in entry.options], list(inputs)
        )
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        # The peer needs concrete values (optax's dice losses check their probabilities in
        # Python): op by op.
        args = [jnp.asarray(x) for x in inputs]
        out = []
        for options, rng in zip(entry.options, cotangent_rngs, strict=True):
            value, pullback = _vjp(entry.peer, args, entry.differentiable, options)
            cotangent = rng.normal(size=value.shape)
            grads = pullback(jnp.asarray(cotangent, value.dtype))
            out.append((np.asarray(value), cotangent, [np.asarray(g) for g in grads]))
        return out
    cotangents = [rng.normal(size=s.shape) for s, rng in zip(shapes, cotangent_rngs, strict=True)]
    values_and_grads = _compiled_values_and_grads(
        entry.peer, inputs, entry.differentiable, entry.options, cotangents
    )
    return [(v, c, g) for (v, g), c in zip(values_and_grads, cotangents, strict=True)]


@pytest.mark.parametrize("key", sorted(PEERS))
def test_translation_gives_the_peers_numbers(key):
    entry = PEERS[key]
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        inputs = tuple(np.asarray(x) for x in entry.make_inputs(rng))
        rngs = [np.random.default_rng(seed) for _ in entry.options]
        if library(key) == "optax":
            peers = _optax_values_and_grads(key, inputs, rngs)
        else:
            peers = [
                _torch_value_and_grads(key, inputs, options, rng)
                for options, rng in zip(entry.options, rngs, strict=True)
            ]
        ours = _compiled_values_and_grads(
            entry.ours, inputs, entry.differentiable, entry.options, [c for _, c, _ in peers]
        )
        for options, (expected, _, expected_grads), (value, grads) in zip(
            entry.options, peers, ours, strict=True
        ):
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

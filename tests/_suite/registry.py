"""The catalogue the shared suites iterate over: one ``Case`` per public loss (and variant).

Each family declares its cases in ``tests/<family>/cases.py``, or in several modules
``tests/<family>/cases_<topic>.py`` for a large family (``CASES``, and ``ALIASES`` and
``NOT_LOSSES`` for its public names that are not separate losses, and ``PEERS`` for the
peer libraries' functions its losses translate); this module collects them into
``REGISTRY``. Every per-loss fact a shared suite needs is a field of ``Case``:
adding a loss adds one entry in its family's ``cases.py`` and nothing here.
"""

from __future__ import annotations

import importlib
import pkgutil

import jax
import numpy as np

import tests
from tests._suite.case import Case
from tests._suite.case import public_name as public_name
from tests._suite.peer import Peer


def _case_modules(family: str) -> list:
    """The family's ``cases`` module and its ``cases_<topic>`` modules, imported."""
    package = importlib.import_module(f"tests.{family}")
    names = sorted(
        m.name
        for m in pkgutil.iter_modules(package.__path__)
        if m.name == "cases" or m.name.startswith("cases_")
    )
    return [importlib.import_module(f"tests.{family}.{name}") for name in names]


def _collect() -> tuple[
    dict[str, Case], dict[str, str], dict[str, str], dict[str, str], dict[str, Peer]
]:
    """``CASES``, ``ALIASES``, ``NOT_LOSSES`` and ``PEERS`` of ``tests/<family>/cases*.py``."""
    cases: dict[str, Case] = {}
    peers: dict[str, Peer] = {}
    aliases: dict[str, str] = {}
    not_losses: dict[str, str] = {"checked": "tests/_suite/test_checked.py"}
    families: dict[str, str] = {}
    for package in pkgutil.iter_modules(tests.__path__):
        if not package.ispkg or package.name.startswith("_"):
            continue
        for module in _case_modules(package.name):
            for table, collected in (
                ("CASES", cases),
                ("ALIASES", aliases),
                ("NOT_LOSSES", not_losses),
                ("PEERS", peers),
            ):
                entries = getattr(module, table, {})
                repeated = set(entries) & set(collected)
                assert not repeated, f"{sorted(repeated)} declared twice (tests/{package.name})"
                collected.update(entries)
            families.update(dict.fromkeys(getattr(module, "CASES", {}), package.name))
    return dict(sorted(cases.items())), aliases, not_losses, families, dict(sorted(peers.items()))


REGISTRY, ALIASES, NOT_LOSSES, FAMILY, PEERS = _collect()
"""Every case by name; public aliases; public names that are not losses; each case's family;
the peer libraries' losses and their translations (``tests/_suite/peer.py``)."""


FORMULA_VARIANTS = frozenset(
    {
        "chamfer[lengths,single,chunked]",
        "chamfer[plain,sum,chunked]",
        "dice[sigmoid,soft]",
        "dice[squared,soft,no_background]",
        "elasticface[cos,plus]",
        "gan_generator[saturating]",
        "gaussian_nll[shared]",
        "generalized_dice[simple,soft,no_background]",
        "huber[weights]",
        "mae[weights]",
        "poisson_nll[rates]",
        "poly_cross_entropy[probabilities]",
        "total_variation[isotropic,mean,volumes]",
        "triplet_margin[p=1,swap]",
        "triplet_margin[p=3]",
        "triplet_margin[squared]",
        "triplet_margin_with_distance[cosine,swap]",
        "tversky[focal,soft]",
        "tversky[softmax,no_background]",
    }
)
"""Variants whose options change only the per-example formula: not which entries count
(masks, labels, lengths), not the inputs' domain, not what is gathered or mined across
the batch, not how the batch is reduced (the preference losses' variants are not listed:
issue 24 asks for each on 8 devices). The suites of the per-example arithmetic (values
against the references, gradients against finite differences, masks, padding, dtypes) run
on them; the suites of the transformations and the shared paths (eager against jit, vmap,
retracing, 8 devices, checked mode), which they share with their loss's other entries, run
on those entries only."""

DEVICE_AND_CHECK_NAMES = sorted(set(REGISTRY) - FORMULA_VARIANTS)
"""The entries the transformation, 8-device and checked-mode suites run on."""


def call(name: str, *args, **options):
    """Calls the entry's function with its kwargs (``options`` override them)."""
    case = REGISTRY[name]
    return case.fn(*args, **{**case.kwargs, **options})


def batched_positions(name: str, args: tuple) -> tuple[int, ...]:
    """The positions of the inputs whose leading axis is the batch."""
    batched = REGISTRY[name].batched
    return tuple(range(len(args))) if batched is None else batched


_NONE_SHAPES: dict[tuple, tuple[int, ...]] = {}


def none_shape(name: str, args) -> tuple[int, ...]:
    """The shape of the entry's ``"none"`` value, by tracing only (no compilation).

    Traced once per entry and input shapes: a trace costs 1 to 25 ms, more than running
    the compiled loss, and the suites ask for it at every ``probe`` and ``row_mask``.
    """
    key = (name, tuple((np.shape(a), getattr(a, "dtype", type(a))) for a in args))
    if key not in _NONE_SHAPES:
        shape = jax.eval_shape(lambda *a: call(name, *a, reduction="none"), *args).shape
        _NONE_SHAPES[key] = shape
    return _NONE_SHAPES[key]


def where_shape(name: str, args) -> tuple[int, ...]:
    """The shape of the entry's ``where``: its ``"none"`` shape, or ``[batch]`` for a
    ``per_class_none`` entry (whose ``where`` masks rows)."""
    if not REGISTRY[name].per_class_none:
        return none_shape(name, args)
    return np.shape(args[batched_positions(name, args)[0]])[:1]


def row_mask(name: str, args: tuple, keep: np.ndarray) -> np.ndarray:
    """``keep [batch]`` broadcast to the entry's ``where`` shape: a ``where`` of whole rows."""
    shape = where_shape(name, args)
    return np.broadcast_to(keep.reshape((-1,) + (1,) * (len(shape) - 1)), shape)


def reference_mean(name: str, args, **options) -> float:
    """The float64 reference's ``"mean"`` of the entry on ``args`` (``options`` override)."""
    case = REGISTRY[name]
    kwargs = {**case.kwargs, **options}
    return case.reference_mean(case.reference(*args, **kwargs), *args, **kwargs)

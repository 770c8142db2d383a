"""The benchmark cases of every loss family: one module per family, named after it.

Each module exposes ``cases(quick, rng) -> list[Case]`` and ``ORDER``. ``FAMILIES`` maps
the family names to those functions, found by listing this folder, so a new family is a new
module and nothing else. ``ORDER`` fixes the sequence because the families draw their inputs
from one shared generator in turn: the same seed reproduces the same inputs (and the
committed RESULTS.md has its sections in that order) only if that sequence never changes.
"""

from __future__ import annotations

import importlib
import pkgutil

_modules = sorted(
    (
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
        if not info.name.startswith("_")
    ),
    key=lambda module: module.ORDER,
)
assert len({m.ORDER for m in _modules}) == len(_modules), "two families share an ORDER"

FAMILIES = {module.__name__.rpartition(".")[2]: module.cases for module in _modules}

"""Test configuration shared by every test module.

* Rank promotion is an error.
* Every test parametrized by a registry entry (``name``) joins that entry's xdist group, so
  one worker runs all the tests of a loss and compiles its functions once
  (``tests/_suite/compiled.py`` caches them across the shared suites; ``--dist loadgroup``).
* JAX compiles with most optimizations off (``JAX_DISABLE_MOST_OPTIMIZATIONS``: LLVM at
  level 0, no expensive passes): compilation is most of the suite's time and the test
  inputs are tiny, so the speed of the machine code does not matter here; the arithmetic
  is the same IEEE arithmetic (no fast-math either way). The variable reaches the xdist
  workers and the 8-device child processes. Benchmarks and examples use JAX's defaults.
* At the end of a run, the time spent per test module and per loss family is printed, so
  the suite's growth is visible.
"""

from __future__ import annotations

import collections
import os

import jax
import pytest

# The environment variable for the child processes, the option for this one (JAX may have
# been imported before this file).
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
jax.config.update("jax_disable_most_optimizations", True)

# Accidental broadcasting between arrays of different ranks must fail loudly (as in equinox
# and optimistix): every loss broadcasts explicitly.
jax.config.update("jax_numpy_rank_promotion", "raise")


def _registry_name(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    name = callspec.params.get("name")
    from tests._suite.registry import REGISTRY

    return name if isinstance(name, str) and name in REGISTRY else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = _registry_name(item)
        if name is not None and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(name))


_TIMES: dict[str, collections.Counter] = {
    "module": collections.Counter(),
    "family": collections.Counter(),
}


def _family(nodeid: str) -> str | None:
    """The family (``tests/<family>``) of a test: its folder, or the case its id names."""
    from tests._suite.registry import FAMILY

    folder = nodeid.split("/")[1] if nodeid.count("/") >= 2 else ""
    if folder and not folder.startswith("_"):
        return folder
    start = nodeid.find("[")
    if start < 0:
        return None
    inside = nodeid[start + 1 : -1]
    for candidate in (inside, *inside.split("-")):
        if candidate in FAMILY:
            return FAMILY[candidate]
    return None


def pytest_runtest_logreport(report):
    if report.when not in ("setup", "call", "teardown"):
        return
    _TIMES["module"][report.nodeid.split("::")[0]] += report.duration
    family = _family(report.nodeid)
    if family is not None:
        _TIMES["family"][family] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _TIMES["module"]:
        return
    write = terminalreporter.write_line
    terminalreporter.section("time per test module and per loss family (worker seconds)")
    total = sum(_TIMES["module"].values())
    for kind in ("module", "family"):
        for key, seconds in _TIMES[kind].most_common():
            write(f"{kind:>7} {key:<40} {seconds:8.1f} s")
    write(f"{'total':>7} {'(all workers)':<40} {total:8.1f} s")

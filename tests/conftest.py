"""Test configuration shared by every test module.

* Rank promotion is an error.
* Every test whose parameters name a registry entry runs on that entry's xdist worker (a
  scheduler grouping tests by entry, ``pytest_xdist_make_scheduler``), so one worker runs
  all the tests of a loss and compiles its functions once (``tests/_suite/compiled.py``
  caches them across the shared suites); the cases of any other parametrized test run on
  one worker too.
* JAX compiles with most optimizations off (``JAX_DISABLE_MOST_OPTIMIZATIONS``: LLVM at
  level 0, no expensive passes): compilation is most of the suite's time and the test
  inputs are tiny, so the speed of the machine code does not matter here; the arithmetic
  is the same IEEE arithmetic (no fast-math either way). The variable reaches the xdist
  workers. For the same reason XLA's CPU backend uses its older fusion emitters
  (``--xla_cpu_use_fusion_emitters=false``), and XLA folds no constants (a test's inputs
  closed over a jitted function are computed by the kernels, not by XLA's evaluator at
  compile time). Benchmarks and examples use the defaults.
* One thread per worker for XLA's and torch's operations: the workers already fill the cores.
* One persistent compilation cache for the run, in a fresh temporary folder that the xdist
  workers share and that is removed at its end: a program one worker has compiled, or that
  two tests of one worker build as different functions, is read back instead of compiled
  again (about a fifth of the suite's compilations: both workers compile the same eager
  operations and helpers). Nothing outlives the run, so every run compiles from scratch; a
  ``JAX_COMPILATION_CACHE_DIR`` of the user's own is used instead.
* JAX's CPU backend has 8 devices in every process of the suite, for the multi-device tests
  (``tests/_suite/test_multidevice.py``), which run beside the other tests of their loss.
* After each test, Python's cycle collector collects what the test left and freezes the
  rest (``gc.freeze``): a full collection would otherwise walk every object alive, in a
  worker holding the traced and compiled functions of half the registry (gigabytes), and
  cost a twentieth of the suite's time.
* At the end of a run, the time spent per test module and per loss family is printed, so
  the suite's growth is visible.
"""

from __future__ import annotations

import collections
import gc
import os
import shutil
import tempfile

import jax
import pytest

# The environment variable for subprocesses (xdist workers), the option for this one (JAX may have
# been imported before this file).
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
jax.config.update("jax_disable_most_optimizations", True)

# XLA's CPU backend emits element-wise fusions with its older emitters: about 30% less
# compile time than the newer fusion emitters, for the same operations in float32 and
# float64. Read when the backend starts; the xdist workers inherit the variable.
# One LLVM module per program (no codegen split into parallel parts): the two xdist
# workers already use both cores, and the split's overhead cost about 7% of the compile time.
# No constant folding: a test that closes over its NumPy inputs (one jitted function for
# everything it compares, its options static as a caller's) would otherwise have XLA's HLO
# evaluator compute the loss at compile time, with its own arithmetic (log1p, exp, inf and
# NaN rules), instead of the kernels a program whose inputs are arguments runs.
for _XLA_FLAG in (
    "--xla_disable_hlo_passes=constant_folding",
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_cpu_parallel_codegen_split_count=1",
    "--xla_cpu_multi_thread_eigen=false",
):
    if _XLA_FLAG.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):  # the user's own wins
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_XLA_FLAG}".strip()

# One thread per worker for torch's (OpenMP) operations, set before torch is imported, and
# for XLA's (Eigen, the flag above): the xdist workers already use every core, and two
# workers' thread pools fighting over two cores slowed the oracle-heavy tests (tests/dense
# and the catalogues on 2 cores: 77-82 s with the pools, 68-71 s without, two runs each).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# The run's compilation cache: created by the first process (pytest itself, or the xdist
# controller before it starts its workers, which inherit the variable), removed by it at the end.
# JAX writes entries without a lock (no size limit, no eviction): a read that meets a write
# still in progress cannot decode it, and JAX warns and compiles the program itself (the
# warning is filtered in pyproject.toml: it happened once in a run's 8,600 compilations).
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxloss-tests-xla-")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # the small programs too
jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)

# Eight CPU devices for the multi-device tests (tests/_suite/test_multidevice.py), set before
# any backend starts: every process of the suite has them, and single-device code runs on
# the first as usual.
jax.config.update("jax_num_cpu_devices", 8)

# Accidental broadcasting between arrays of different ranks must fail loudly (as in equinox
# and optimistix): every loss broadcasts explicitly.
jax.config.update("jax_numpy_rank_promotion", "raise")


def _registry_entry(nodeid: str) -> str | None:
    """The registry entry a test id names among its parameters (``test_x[nan-arcface]``)."""
    from tests._suite.registry import REGISTRY

    start = nodeid.find("[")
    if start < 0:
        return None
    inside = nodeid[start + 1 : -1]
    for candidate in (inside, *inside.split("-")):
        if candidate in REGISTRY:
            return candidate
    return None


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    # pytest-xdist's own ``--dist loadgroup`` marks a group by renaming the test's nodeid,
    # which pytest 9.2 no longer allows (the rename is silently lost, every test is its own
    # group). Scheduling by scope, with the scope read from the id, needs no rename.
    from xdist.scheduler import LoadScopeScheduling

    # Other parametrized tests stay together by test function: their cases often share one
    # compiled function.
    class ByRegistryEntry(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            entry = _registry_entry(nodeid)
            if entry is not None:
                return f"registry entry {entry}"
            # Each peer translation compiles its own functions: nothing to share.
            if "test_catalogues.py" in nodeid:
                return nodeid
            return nodeid.split("[")[0]

    return ByRegistryEntry(config, log)


def pytest_unconfigure(config):
    if _OWN_CACHE:
        shutil.rmtree(os.environ.pop("JAX_COMPILATION_CACHE_DIR"), ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    # Everything older is frozen: this collection walks only the objects the test created.
    gc.collect()
    gc.freeze()


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
    entry = _registry_entry(nodeid)
    return None if entry is None else FAMILY[entry]


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

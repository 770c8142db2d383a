"""The timing and memory harness shared by every benchmark script.

Methodology, the same for every script: each contender is compiled (JAX) or built (torch)
and warmed up first; then the contenders run alternately, one call each per round, in an
order that cycles through every rotation and its reverse so that none follows the same
neighbour more often than the others (a multi-threaded torch call, whose threads spin after
it returns and which frees large buffers, slows whatever runs next: ``round_order``, and
``TORCH_SPINCOUNT`` shortens the spin);
medians over the rounds; ratios between contenders in the same process. Memory is XLA's
compiled memory analysis (``temp_size_in_bytes``), which is exact, not sampled.

``Case`` and ``measure`` apply this to every contender of one benchmark case at once (the
cases of ``run.py`` and its sweeps); the deep-dive scripts use the pieces directly.

Every script re-executes itself once with glibc's allocator held steady (``steady_allocator``,
called by ``parse_args``; ``--default-malloc`` opts out). Without it, each process draws
its own allocation pattern: in some, XLA:CPU's output and temporary buffers land in a heap
of a worker thread's arena that glibc unmaps when the buffer is freed, and every call then
faults in every page of its outputs anew (measured: ``x + y`` at 2^22 float32, 4,097 minor
page faults and 5.7–6.4 ms per call in those processes, 0 faults and 0.9–1.0 ms in the
others). That is a 3x per-process swing in every memory-bound row, decided by where glibc
put a buffer, not by the code timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

MIB = 1024 * 1024
PML = "pytorch-metric-learning"

# glibc's allocator held steady (``steady_allocator``): one arena, so no worker-thread heap
# is created and unmapped around a buffer; blocks up to 32 MiB (the tunable's maximum) from
# the heap, and freed memory kept, so a call reuses the pages of the call before.
STEADY_MALLOC = (
    "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=33554432:"
    "glibc.malloc.trim_threshold=4294967296"
)

# run.py's rounds: at least ``--repeats``, and more for fast cases, as many as fit in
# ``MIN_SECONDS`` of calls, up to ``MAX_ROUNDS`` (an 11-round median of a 0.5 ms call
# moved by ±10% from run to run).
MIN_SECONDS = 1.0
MAX_ROUNDS = 201


def compile_jax(fn: Callable, *args) -> tuple[Callable[[], object], object, float]:
    """Compiles ``jax.jit(fn)`` for ``args``.

    Args:
      fn: the function to time, e.g. ``jax.value_and_grad(loss)``.
      *args: its arguments.

    Returns:
      ``(run, output, temp_mib)``: a zero-argument callable running one call and blocking
      until it is done, the output of a first call, and XLA's temporary buffer size in MiB
      (``nan`` where the backend does not report it).
    """
    compiled = jax.jit(fn).lower(*args).compile()
    analysis = compiled.memory_analysis()
    temp = getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None

    def run() -> object:
        return jax.block_until_ready(compiled(*args))

    return run, run(), temp / MIB if temp is not None else float("nan")


# How long torch's OpenMP threads (GNU libgomp) spin after a parallel region before they
# sleep: libgomp's default, 300,000 spins (milliseconds here), kept a core busy through the
# next contender's call (measured: jaxloss's generalized_dice 8.2–8.4 ms after torch calls,
# 4.5–5.1 ms with 10,000 spins; torch's own times unchanged: its cross_entropy 3.4–3.6 ms,
# its huber 0.91–0.93 ms against 0.92–0.95; 1,000 spins slowed torch's huber to 1.1–1.2).
TORCH_SPINCOUNT = "10000"


def import_torch():
    """torch with as many threads as CPU cores, or None (printing a note) if not installed.

    Its OpenMP threads spin ``TORCH_SPINCOUNT`` times after a parallel region (unless
    ``GOMP_SPINCOUNT`` is set already), long enough for the gaps between its own kernels
    and short enough to leave the cores to the next contender.
    """
    os.environ.setdefault("GOMP_SPINCOUNT", TORCH_SPINCOUNT)
    try:
        import torch
    except ImportError:
        print("note: torch is not installed; skipping the torch rows.")
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def round_order(names: list[str], round_index: int) -> list[str]:
    """The contenders' order in round ``round_index``: every rotation of ``names``, then
    every rotation reversed (a cycle of ``2 n`` rounds), so that each contender follows
    each other one about equally often, across the rounds' boundaries included.

    A plain rotation does not: with three contenders (jaxloss, optax, torch, in that order)
    it ran jaxloss right after torch in 8 rounds of 12 and optax in 4, and a torch call
    leaves its OpenMP threads spinning on the cores for a while after it returns (measured:
    jaxloss's DPO 1.21 ms right after torch calls, 0.96 ms in a loop of its own).
    """
    count = len(names)
    position = round_index % (2 * count)
    shift = position % count
    order = names[shift:] + names[:shift]
    return order[::-1] if position >= count else order


def round_robin(
    contenders: dict[str, Callable[[], object]], repeats: int
) -> dict[str, list[float]]:
    """Times each contender ``repeats`` times, alternating, in milliseconds.

    Args:
      contenders: name -> zero-argument callable that runs one call to completion.
      repeats: number of rounds.

    Returns:
      name -> the ``repeats`` wall-clock times in ms.
    """
    for run in contenders.values():  # one more warm-up call each
        run()
    names = list(contenders)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        for name in round_order(names, round_index):
            start = time.perf_counter()
            contenders[name]()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def adaptive_rounds(
    contenders: dict[str, Callable[[], object]], repeats: int, min_seconds: float
) -> int:
    """``repeats``, or more for a fast case: as many rounds as fit in ``min_seconds`` of
    calls (one timed call of each contender estimates a round), at most ``MAX_ROUNDS``."""
    if min_seconds <= 0:
        return repeats
    start = time.perf_counter()
    for run in contenders.values():
        run()
    per_round = time.perf_counter() - start
    fit = math.floor(min_seconds / per_round) if per_round > 0 else MAX_ROUNDS
    return max(repeats, min(MAX_ROUNDS, fit))


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(ts) for name, ts in times.items()}


def paired_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of ``numerator / denominator`` within each round (drift cancels)."""
    return statistics.median(
        a / b for a, b in zip(times[numerator], times[denominator], strict=True)
    )


def describe_environment() -> str:
    """One line naming the JAX version, backend, CPU count and allocator settings."""
    return (
        f"jax {jax.__version__} ({jax.default_backend()}, {jax.device_count()} device(s)), "
        f"cpu_count {os.cpu_count()}, {allocator()}"
    )


def allocator() -> str:
    """How this process's allocator is set: ``steady_allocator``'s settings or the default."""
    if STEADY_MALLOC in os.environ.get("GLIBC_TUNABLES", ""):
        return f"GLIBC_TUNABLES={STEADY_MALLOC}"
    return "default malloc settings"


def steady_allocator() -> None:
    """Re-executes this script, once, with glibc's allocator held steady (``STEADY_MALLOC``).

    Does nothing where the settings are already in ``GLIBC_TUNABLES`` (the re-executed
    process) or the C library is not glibc. Other tunables the caller set are kept. Torch
    and the JAX contenders run under the same settings, in the same process.
    """
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if STEADY_MALLOC in tunables or platform.libc_ver()[0] != "glibc":
        return
    env = dict(os.environ, GLIBC_TUNABLES=":".join(t for t in (tunables, STEADY_MALLOC) if t))
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def parse_args(description: str, repeats: int, quick_repeats: int, extra=None):
    """The options every benchmark takes: ``--quick``, ``--repeats``, ``--seed``.

    Args:
      description: the script's one-line description.
      repeats: the default number of round-robin rounds.
      quick_repeats: the default with ``--quick``.
      extra: optional ``parser -> None`` adding the script's own options.

    Returns:
      The parsed arguments, ``repeats`` resolved to its default and checked.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats")
    parser.add_argument(
        "--repeats",
        type=int,
        help=f"round-robin rounds (default {repeats}; quick: {quick_repeats})",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed for the inputs")
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep glibc's default allocator settings (see steady_allocator)",
    )
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if not args.default_malloc:
        steady_allocator()
    if args.repeats is None:
        args.repeats = quick_repeats if args.quick else repeats
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


@dataclasses.dataclass
class Case:
    """One benchmark: the same inputs for every contender.

    Attributes:
      family: the loss family (a section of RESULTS.md).
      label: what is computed, with its shapes.
      arrays: the NumPy inputs, shared by every contender.
      wrt: indices of the inputs the gradient is taken with respect to.
      jax: name -> ``fn(*arrays) -> scalar``; the first one is jaxloss, the baseline.
      torch: name -> ``make(torch) -> fn(*tensors) -> scalar tensor`` (tensors on the torch
        device, float inputs in ``wrt`` with ``requires_grad``, integers as int64).
      rtol: every contender's value must equal jaxloss's to this relative tolerance;
        ``None`` where they compute different numbers (then ``note`` says why).
      note: one line for the table.
      rounds: at most this many round-robin rounds (a case of seconds per call), or None
        for the run's ``--repeats``.
    """

    family: str
    label: str
    arrays: list[np.ndarray]
    wrt: tuple[int, ...]
    jax: dict[str, Callable]
    torch: dict[str, Callable] = dataclasses.field(default_factory=dict)
    rtol: float | None = 1e-4
    note: str = ""
    rounds: int | None = None


@dataclasses.dataclass
class Result:
    """A measured case: medians (ms), paired ratios to jaxloss, temp MiB, values."""

    case: Case
    median_ms: dict[str, float]
    ratio: dict[str, float]
    temp_mib: dict[str, float]
    value: dict[str, float]


def torch_device(torch) -> str:
    """Where the torch contenders run: CUDA when torch has it, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class Torch:
    """torch (and its device) when installed; contenders needing it are skipped otherwise."""

    def __init__(self) -> None:
        self.module = import_torch()
        self.pml = None
        if self.module is None:
            self.device = None
            return
        self.device = torch_device(self.module)
        try:
            import pytorch_metric_learning

            self.pml = pytorch_metric_learning
        except ImportError:
            print(f"note: {PML} is not installed; skipping its rows.")

    def describe(self) -> str:
        if self.module is None:
            return "torch not installed"
        threads = self.module.get_num_threads()
        pml = f", {PML} {self.pml.__version__}" if self.pml else ""
        spin = os.environ.get("GOMP_SPINCOUNT", "default")
        return (
            f"torch {self.module.__version__} on {self.device} ({threads} threads, "
            f"GOMP_SPINCOUNT={spin}){pml}"
        )

    def step(self, make: Callable, arrays: list[np.ndarray], wrt: tuple[int, ...]):
        """A zero-argument forward + backward on ``arrays``, synchronized."""
        torch = self.module
        tensors = []
        for i, a in enumerate(arrays):
            if np.issubdtype(a.dtype, np.integer):
                tensors.append(torch.tensor(a, dtype=torch.int64, device=self.device))
            else:
                tensors.append(torch.tensor(a, device=self.device, requires_grad=i in wrt))
        fn = make(torch)

        def run():
            for i in wrt:
                tensors[i].grad = None
            loss = fn(*tensors)
            loss.backward()
            if self.device == "cuda":
                torch.cuda.synchronize()
            return loss

        return run


def measure(case: Case, tc: Torch, repeats: int, min_seconds: float = 0.0) -> Result:
    """Compiles, checks the values agree, times round-robin; see the module docstring.

    At least ``repeats`` rounds (at most ``case.rounds``), and more for a fast case: as many
    as fit in ``min_seconds`` (``adaptive_rounds``; run.py passes ``MIN_SECONDS``).
    """
    args = [jnp.asarray(a) for a in case.arrays]
    runs, temp, value = {}, {}, {}
    for name, fn in case.jax.items():
        step = jax.value_and_grad(fn, argnums=case.wrt)
        runs[name], (v, _), temp[name] = compile_jax(step, *args)
        value[name] = float(v)
    if tc.module is not None:
        for name, make in case.torch.items():
            if name.startswith(PML) and tc.pml is None:
                continue
            runs[name] = tc.step(make, case.arrays, case.wrt)
            value[name] = float(runs[name]().detach().cpu())
    baseline = next(iter(case.jax))
    if case.rtol is not None:
        for name, v in value.items():
            np.testing.assert_allclose(
                v, value[baseline], rtol=case.rtol, err_msg=f"{case.label}: {name}"
            )
    if case.rounds is not None:
        rounds = min(repeats, case.rounds)
    else:
        rounds = adaptive_rounds(runs, repeats, min_seconds)
    times = round_robin(runs, rounds)
    ratio = {name: paired_ratio(times, name, baseline) for name in runs}
    return Result(case, medians(times), ratio, temp, value)

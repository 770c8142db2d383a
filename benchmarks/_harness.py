"""The timing and memory harness shared by every benchmark script.

Methodology, the same for every script: each contender is compiled (JAX) or built (torch)
and warmed up first; then the contenders run alternately, one call each per round, the
starting contender rotating every round so that none always follows the same neighbour (a
multi-threaded torch call that frees large buffers slows whatever runs next); medians over
the rounds; ratios between contenders in the same process. Memory is XLA's compiled memory
analysis (``temp_size_in_bytes``), which is exact, not sampled.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import jax

MIB = 1024 * 1024


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


def import_torch():
    """torch with as many threads as CPU cores, or None (printing a note) if not installed."""
    try:
        import torch
    except ImportError:
        print("note: torch is not installed; skipping the torch rows.")
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


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
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    return {name: statistics.median(ts) for name, ts in times.items()}


def paired_ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> float:
    """Median over rounds of ``numerator / denominator`` within each round (drift cancels)."""
    return statistics.median(
        a / b for a, b in zip(times[numerator], times[denominator], strict=True)
    )


def describe_environment() -> str:
    """One line naming the JAX version, backend and CPU count."""
    return (
        f"jax {jax.__version__} ({jax.default_backend()}, {jax.device_count()} device(s)), "
        f"cpu_count {os.cpu_count()}"
    )


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
    if extra is not None:
        extra(parser)
    args = parser.parse_args()
    if args.repeats is None:
        args.repeats = quick_repeats if args.quick else repeats
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args

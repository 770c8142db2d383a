"""The report of ``run.py``: RESULTS.md (machine, versions, the summary, a table per family,
the roofline, the sweeps), one PNG plot per sweep, and the summary table it prints.

The summary table's layout is a contract: the README carries a copy of the full run's, and
``tests/test_results.py`` checks that the two are equal and that every family has a ratio.
"""

from __future__ import annotations

import datetime
import os
import platform

import _harness
import jax
import numpy as np
import optax
from _harness import Result, Torch


def backend_suffix(backend: str | None = None) -> str:
    """What the names of a run's files add for JAX's backend (``jax.default_backend()``
    unless given): nothing on the CPU, ``-gpu`` on a GPU (CUDA or ROCm), ``-tpu`` on a TPU,
    so that a run on an accelerator writes ``RESULTS-gpu.md`` and its plots beside the CPU
    ones instead of over them."""
    backend = jax.default_backend() if backend is None else backend
    if backend == "cpu":
        return ""
    return "-gpu" if backend in ("gpu", "cuda", "rocm") else f"-{backend}"


def plot(sweep: dict, folder: str) -> str:
    """A log-log line plot of one sweep; returns the PNG's file name (with the backend's
    suffix, :func:`backend_suffix`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in sweep["series"].items():
        ax.plot(sweep["xs"], ys, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(sweep["xlabel"])
    ax.set_ylabel(sweep["ylabel"])
    ax.set_title(sweep["title"], fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    name = f"{sweep['name']}{backend_suffix()}.png"
    fig.savefig(os.path.join(folder, name), dpi=110, bbox_inches="tight")
    plt.close(fig)
    return name


def versions(tc: Torch) -> str:
    import jaxlib

    return (
        f"Python {platform.python_version()}, jax {jax.__version__} (jaxlib "
        f"{jaxlib.__version__}), optax {optax.__version__}, numpy {np.__version__}, "
        f"{tc.describe()}"
    )


def cpu_model() -> str:
    """The CPU's model name and its widest vector extension (Linux; else the platform's)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or "CPU model unknown"
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line]
    flags = next(
        (line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")),
        [],
    )
    vector = next((v for v in ("avx512f", "avx2", "avx") if v in flags), "no AVX")
    return f"{names[0] if names else 'CPU model unknown'} ({vector})"


def machine() -> str:
    device = jax.devices()[0]
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{cpu_model()}; JAX backend "
        f"{jax.default_backend()} ({jax.device_count()} x {device.device_kind})"
    )


def fmt(x: float, digits: int = 2) -> str:
    return "—" if x is None or np.isnan(x) else f"{x:.{digits}f}"


def family_table(results: list[Result]) -> str:
    lines = [
        "| case | contender | median ms | contender / jaxloss (time) | temp MiB | value |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        for name, ms in r.median_ms.items():
            lines.append(
                f"| {r.case.label} | {name} | {fmt(ms)} | {fmt(r.ratio[name])} "
                f"| {fmt(r.temp_mib.get(name, float('nan')), 1)} | {r.value[name]:.5g} |"
            )
    notes = [f"- {r.case.label}: {r.case.note}" for r in results if r.case.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def summary_table(results: list[Result]) -> str:
    """One row per case: each competitor's time ratio to jaxloss, and the memory ratio."""
    lines = [
        "| family | case | competitor / jaxloss, time (> 1: jaxloss faster) "
        "| temp memory, JAX competitor / jaxloss |",
        "|---|---|---|---|",
    ]
    for r in results:
        baseline = next(iter(r.case.jax))
        others = [n for n in r.median_ms if n != baseline]
        if not others:
            continue
        times = "; ".join(f"{n} {fmt(r.ratio[n])}" for n in others)
        mem = "; ".join(
            f"{n} {fmt(r.temp_mib[n] / r.temp_mib[baseline])}"
            for n in others
            if n in r.temp_mib and r.temp_mib[baseline] > 0
        )
        lines.append(f"| {r.case.family} | {r.case.label} | {times} | {mem or '—'} |")
    return "\n".join(lines)


def sweep_table(sweep: dict) -> str:
    names = list(sweep["series"])
    lines = [
        f"| {sweep['xlabel']} | " + " | ".join(f"{n} ({sweep['ylabel']})" for n in names) + " |",
        "|---:|" + "---:|" * len(names),
    ]
    for i, x in enumerate(sweep["xs"]):
        lines.append(f"| {x} | " + " | ".join(fmt(sweep["series"][n][i]) for n in names) + " |")
    return "\n".join(lines)


def _case_loss(label: str) -> str:
    """The loss a case label names: ``"huber (delta=1), N=…"`` -> ``"huber"``."""
    return label.split(",")[0].split(" (")[0]


def roofline_section(roof, results: list[Result] = ()) -> str:
    """The "## Roofline" section from ``roofline.run``'s measurements; the peer ratios of the
    first case of ``results`` that times the same loss, where there is one."""
    first = {}
    for r in results:
        first.setdefault(_case_loss(r.case.label), r)
    lines = [
        "## Roofline",
        "",
        f"Written by `benchmarks/roofline.py` at N = {roof.n} float32 elements, "
        f"{roof.repeats} round-robin rounds: the triad `a + s*b` moves 12 B per element, "
        f"**{roof.bandwidth_gbs:.1f} GB/s** ({fmt(roof.triad_ms)} ms; a copy `x + 1`: "
        f"{fmt(roof.copy_ms)} ms). Each transcendental's cost is its throughput: eight "
        "evaluations an element in one loop, above the same loop with no function (median "
        "of per-round differences), over 8 N; one evaluation above the copy hides its "
        "arithmetic behind the memory traffic (the last column, for comparison). A loss's "
        "bound is the larger of its minimal fwd+bwd bytes over the bandwidth and its "
        "transcendentals' cost (the counts and their formulas: `WORK` in roofline.py); "
        "fraction = bound / jaxloss's `jit(value_and_grad)` median (1.00: at the roofline; "
        "issue 25 asks ≥ 0.77, within 1.3×). Peer ratios (competitor / jaxloss) come from "
        "this run's family tables, at their own sizes.",
        "",
        "| function | ms at N | ns / evaluation, throughput (the bound's cost) "
        "| ns / element alone, above the copy |",
        "|---|---:|---:|---:|",
    ]
    for name, ms in roof.function_ms.items():
        lines.append(
            f"| {name} | {fmt(ms)} | {fmt(roof.cost_ns[name], 3)} | {fmt(roof.alone_ns[name], 3)} |"
        )
    lines += [
        "",
        "| loss | shape | B / element | transcendentals / element | bound ms (bytes; "
        "transcendentals) | binds | jaxloss ms | fraction | within 1.3× | peers / jaxloss |",
        "|---|---|---:|---|---:|---|---:|---:|---|---|",
    ]
    for row in roof.rows:
        work = row.work
        counts = ", ".join(
            f"{c:g} {f}" if c >= 0.01 else f"1/{round(1 / c)} {f}"
            for f, c in work.transcendentals.items()
        )
        peers = "—"
        if work.loss in first:
            r = first[work.loss]
            baseline = next(iter(r.case.jax))
            peers = "; ".join(f"{n} {fmt(x)}" for n, x in r.ratio.items() if n != baseline)
        lines.append(
            f"| {work.loss} | {'×'.join(map(str, row.shape))} | {4 * work.words:.4g} "
            f"| {counts or '—'} | {fmt(row.bound_ms)} ({fmt(row.bytes_ms)}; "
            f"{fmt(row.compute_ms)}) | {row.binds} | {fmt(row.jaxloss_ms)} "
            f"| {fmt(row.fraction)} | {'yes' if row.fraction >= 1 / 1.3 else 'no'} "
            f"| {peers or '—'} |"
        )
    return "\n".join(lines)


def write_results(folder, args, tc, results, sweep_list, plots, seconds, roof=None) -> str:
    mode = "--quick (small shapes)" if args.quick else "full"
    parts = [
        "# Benchmark results",
        "",
        f"Written by `benchmarks/run.py` ({mode}, {args.repeats} round-robin rounds, seed "
        f"{args.seed}) on {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, in "
        f"{seconds:.0f} s.",
        "",
        f"- Machine: {machine()}; {_harness.allocator()}.",
        f"- Versions: {versions(tc)}.",
        "- Method: every contender compiled (JAX: `jit(value_and_grad)`) or built (torch: "
        "forward + `backward()`) and warmed up, then run round-robin in one "
        "process, the order cycling through every rotation and its reverse; "
        f"{args.repeats} rounds, or as many as fit in {_harness.MIN_SECONDS:g} s of calls "
        f"(at most {_harness.MAX_ROUNDS}) for a fast case of a full run; medians; "
        "ratios are medians of per-round ratios. glibc's allocator is held steady for "
        "every contender alike (`_harness.steady_allocator`: otherwise some processes "
        "fault in every page of XLA's output buffers on every call), and torch's OpenMP "
        "threads stop spinning sooner after its calls (`_harness.TORCH_SPINCOUNT`: "
        "torch's own times unchanged, the next contender's core left free). Temp memory is "
        "XLA's compiled `memory_analysis().temp_size_in_bytes` (exact; torch has none). "
        "Values are checked equal before timing unless a note says why not. Shared machines "
        "are noisy: read the ratios, not the absolute times.",
        "",
        "## Summary",
        "",
        summary_table(results),
    ]
    for family in dict.fromkeys(r.case.family for r in results):
        parts += [
            "",
            f"## {family}",
            "",
            family_table([r for r in results if r.case.family == family]),
        ]
    if roof is not None:
        parts += ["", roofline_section(roof, results)]
    if sweep_list:
        parts += ["", "## Scaling sweeps"]
    for sweep, png in zip(sweep_list, plots, strict=True):
        parts += [
            "",
            f"### {sweep['title']}",
            "",
            f"![{sweep['name']}]({png})",
            "",
            sweep_table(sweep),
        ]
    path = os.path.join(folder, f"RESULTS{backend_suffix()}.md")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")
    return path

"""Every loss family against optax, PyTorch and pytorch-metric-learning, in one run.

What it measures, for each case (``cases/``): one value-and-gradient call (``jax.jit`` of
``jax.value_and_grad`` for the JAX sides; forward + ``backward()`` for torch), all
contenders on the same inputs in the same process, compiled and warmed up, then run
round-robin, the order cycling through every rotation and its reverse
(``_harness.round_order``); medians over the rounds, and the
median of the per-round ratios *competitor / jaxloss* (above 1: jaxloss is faster). The JAX
sides also report XLA's compiled temporary memory (``memory_analysis()``, exact). Where two
contenders compute the same number, their values are checked equal before timing, so a
ratio never compares different work silently.

Then the scaling sweeps, each saved as a PNG: CTC time over T and over K, linear
cross-entropy memory and time over V, the LLM heads' (token log-probabilities, distillation)
memory over V, Chamfer memory over N, batch-hard triplet time over B.

Before the sweeps, the roofline (``roofline.py``; ``--no-roofline`` skips it): this machine's
memory bandwidth and transcendental costs, and how close each elementwise and row-wise loss
gets to the least work its formula needs, next to its peer ratios.

Everything lands in ``RESULTS.md`` (machine, versions, date, tables, plots) in the output
folder: ``benchmarks/`` for a full run (the committed results), ``benchmarks/quick/``
(ignored by git) with ``--quick``. Device-agnostic: JAX measures its default backend, torch
runs on CUDA when it has it, else on the CPU; the report says which. On a GPU the same run
writes ``RESULTS-gpu.md`` and plots named ``*-gpu.png`` beside the CPU ones
(``report.backend_suffix``), with the same tables, ratios and roofline fractions.

The pieces: the cases of each family in ``cases/`` (one module per family), the timing in
``_harness.py``, the sweeps in ``sweeps.py``, the roofline in ``roofline.py``, RESULTS.md
and the plots in ``report.py``.

Run it from the repository root (``pip install -e ".[bench,examples]"`` has every
competitor and matplotlib)::

    .venv/bin/python benchmarks/run.py            # every family, full shapes and sweeps
    .venv/bin/python benchmarks/run.py --quick    # small shapes, 3 rounds: under 3 minutes
    .venv/bin/python benchmarks/run.py --only ctc margin   # some families
"""

from __future__ import annotations

import os
import time

import _harness
import numpy as np
import report
import roofline
import sweeps
from cases import FAMILIES

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    """Parses the arguments, runs the families and sweeps, writes RESULTS.md and the plots."""

    def options(parser):
        parser.add_argument(
            "--only", nargs="+", choices=list(FAMILIES), help="run only these families"
        )
        parser.add_argument("--no-sweeps", action="store_true", help="skip the scaling sweeps")
        parser.add_argument("--no-roofline", action="store_true", help="skip the roofline")
        parser.add_argument(
            "--out", help="output folder (default benchmarks/, or benchmarks/quick/ with --quick)"
        )

    args = _harness.parse_args(__doc__.splitlines()[0], repeats=11, quick_repeats=3, extra=options)
    folder = args.out or (os.path.join(HERE, "quick") if args.quick else HERE)
    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    tc = _harness.Torch()
    print(report.machine())
    print(report.versions(tc))
    rng = np.random.default_rng(args.seed)
    min_seconds = 0.0 if args.quick else _harness.MIN_SECONDS
    results = []
    for family in args.only or FAMILIES:
        for case in FAMILIES[family](args.quick, rng):
            result = _harness.measure(case, tc, args.repeats, min_seconds)
            results.append(result)
            baseline = next(iter(case.jax))
            ratios = ", ".join(
                f"{n} {report.fmt(r)}" for n, r in result.ratio.items() if n != baseline
            )
            print(
                f"[{family}] {case.label}: {report.fmt(result.median_ms[baseline])} ms"
                f"{'; / jaxloss: ' + ratios if ratios else ''}",
                flush=True,
            )
    roof = None if args.no_roofline else roofline.run(args.quick, args.repeats, args.seed)
    if roof is not None:
        print(report.roofline_section(roof, results), flush=True)
    sweep_list = [] if args.no_sweeps else sweeps.run(args.quick, tc, args.repeats, args.seed)
    plots = [report.plot(s, folder) for s in sweep_list]
    path = report.write_results(
        folder, args, tc, results, sweep_list, plots, time.perf_counter() - start, roof
    )
    print(f"\nwrote {path} and {len(plots)} plots in {time.perf_counter() - start:.0f} s")
    print(report.summary_table(results))


if __name__ == "__main__":
    main()

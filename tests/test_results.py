"""The README's benchmark summary is the one benchmarks/run.py last wrote, for every family."""

from __future__ import annotations

import importlib
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = (ROOT / "benchmarks" / "RESULTS.md").read_text()
README = (ROOT / "README.md").read_text()


def _summary(text: str) -> str:
    match = re.search(r"^\| family \| case \|.*?(?=\n\n|\Z)", text, re.S | re.M)
    assert match, "no benchmark summary table found"
    return match.group(0)


def test_readme_shows_the_latest_full_summary():
    assert "--quick" not in RESULTS.splitlines()[2], "RESULTS.md holds a --quick run"
    assert _summary(RESULTS) == _summary(README)


def _benchmark_module(name: str):
    """A module of benchmarks/ (``cases``, ``_harness``, ``report``), imported the way the
    scripts import their siblings: as top-level modules."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def _harness_families() -> list[str]:
    """The family names of benchmarks/cases, imported the way run.py imports them."""
    return list(_benchmark_module("cases").FAMILIES)


def test_every_family_of_the_harness_has_a_ratio():
    names = _harness_families()
    assert len(names) >= 9
    rows = _summary(README).splitlines()[2:]
    for name in names:
        family_rows = [row for row in rows if row.startswith(f"| {name} |")]
        assert family_rows, f"the README's benchmark table has no row for {name}"
        assert all(re.search(r" \d+\.\d\d", row.split("|")[3]) for row in family_rows), name


def test_fast_cases_get_more_rounds_and_slow_ones_their_repeats():
    import time

    harness = _benchmark_module("_harness")
    fast = {"a": lambda: time.sleep(0.001), "b": lambda: time.sleep(0.001)}
    slow = {"a": lambda: time.sleep(0.03)}
    assert harness.adaptive_rounds(fast, 3, 0.0) == 3
    assert 3 < harness.adaptive_rounds(fast, 3, 1.0) <= harness.MAX_ROUNDS
    assert harness.adaptive_rounds(fast, 3, 1e6) == harness.MAX_ROUNDS
    assert harness.adaptive_rounds(slow, 3, 0.01) == 3


def test_a_script_reexecutes_itself_once_with_the_steady_allocator(tmp_path):
    import os
    import platform
    import subprocess

    harness = _benchmark_module("_harness")
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        "print('start', flush=True)\n"
        "import _harness\n"
        "_harness.steady_allocator()\n"
        "print(os.environ.get('GLIBC_TUNABLES', ''), _harness.allocator())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    if platform.libc_ver()[0] != "glibc":
        assert out == ["start", " default malloc settings"]
        return
    # Started twice (the re-execution), then the settings in place and reported.
    assert out[:2] == ["start", "start"]
    assert out[2] == f"{harness.STEADY_MALLOC} GLIBC_TUNABLES={harness.STEADY_MALLOC}"


def test_a_run_on_an_accelerator_writes_beside_the_cpu_results(tmp_path, monkeypatch):
    import argparse

    report = _benchmark_module("report")
    assert [report.backend_suffix(b) for b in ("cpu", "gpu", "cuda", "rocm", "tpu")] == [
        "",
        "-gpu",
        "-gpu",
        "-gpu",
        "-tpu",
    ]
    args = argparse.Namespace(quick=True, repeats=1, seed=0)
    cpu = report.write_results(str(tmp_path), args, report.Torch(), [], [], [], 1.0)
    assert pathlib.Path(cpu).name == "RESULTS.md"
    monkeypatch.setattr(report.jax, "default_backend", lambda: "gpu")
    gpu = report.write_results(str(tmp_path), args, report.Torch(), [], [], [], 1.0)
    assert pathlib.Path(gpu).name == "RESULTS-gpu.md"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RESULTS-gpu.md", "RESULTS.md"]

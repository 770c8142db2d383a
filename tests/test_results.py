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


def _harness_families() -> list[str]:
    """The family names of benchmarks/cases, imported the way run.py imports them."""
    # The benchmark scripts import their siblings (_harness, bench_ctc) as top-level modules.
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return list(importlib.import_module("cases").FAMILIES)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def test_every_family_of_the_harness_has_a_ratio():
    names = _harness_families()
    assert len(names) >= 9
    rows = _summary(README).splitlines()[2:]
    for name in names:
        family_rows = [row for row in rows if row.startswith(f"| {name} |")]
        assert family_rows, f"the README's benchmark table has no row for {name}"
        assert all(re.search(r" \d+\.\d\d", row.split("|")[3]) for row in family_rows), name

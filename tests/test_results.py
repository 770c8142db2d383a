"""The README's benchmark summary is the one benchmarks/run.py last wrote, for every family."""

from __future__ import annotations

import pathlib
import re

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


def test_every_family_of_the_harness_has_a_ratio():
    families = re.search(
        r"FAMILIES = \{(.*?)\}", (ROOT / "benchmarks" / "run.py").read_text(), re.S
    )
    names = re.findall(r'"(\w+)":', families.group(1))
    assert len(names) >= 9
    rows = _summary(README).splitlines()[2:]
    for name in names:
        family_rows = [row for row in rows if row.startswith(f"| {name} |")]
        assert family_rows, f"the README's benchmark table has no row for {name}"
        assert all(re.search(r" \d+\.\d\d", row.split("|")[3]) for row in family_rows), name

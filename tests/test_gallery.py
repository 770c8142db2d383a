"""The examples gallery (examples/README.md) shows every example and the scripts' own output."""

from __future__ import annotations

import pathlib
import re

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
GALLERY = (EXAMPLES / "README.md").read_text()


def test_every_example_is_in_the_gallery():
    scripts = sorted(p.name for p in EXAMPLES.glob("[a-z]*.py"))
    assert scripts, "no example scripts found"
    missing = [s for s in scripts if s not in GALLERY]
    assert not missing, f"examples/README.md does not mention {missing}"


def test_every_result_table_is_shown_as_the_script_wrote_it():
    tables = sorted((EXAMPLES / "images").glob("*.md"))
    assert tables, "examples/images holds no result tables"
    for table in tables:
        assert (EXAMPLES / f"{table.stem}.py").exists(), f"{table.name} has no script"
        assert table.read_text().strip() in GALLERY, (
            f"examples/README.md does not show {table.name} verbatim: regenerate the gallery "
            "section from the script's output"
        )


def test_every_figure_the_gallery_links_exists():
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", GALLERY)
    assert links, "the gallery shows no figures"
    missing = [link for link in links if not (EXAMPLES / link).is_file()]
    assert not missing, f"missing figures: {missing}"

"""The documentation site (docs/, mkdocs.yml): its code runs, and its API reference is complete.

The ```python blocks of each page below run in order, sharing one namespace per page; the
porting page's blocks compare torch and jaxloss numbers with asserts. Building the site itself
(`mkdocs build --strict`) is CI's docs step.
"""

from __future__ import annotations

import importlib
import pathlib
import re

import pytest

import jaxloss
from tests.test_readme import python_blocks

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES_WITH_CODE = ["index.md", "conventions.md", "porting.md"]


@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_page_snippets_run(page):
    blocks = python_blocks((DOCS / page).read_text())
    assert blocks, f"docs/{page} has no python blocks"
    namespace: dict = {}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"docs/{page} snippet {number}", "exec"), namespace)


def _api_pages() -> list[pathlib.Path]:
    return sorted((DOCS / "api").glob("*.md"))


def _documented() -> list[str]:
    """The objects of every ``::: identifier`` line of the API pages."""
    return [
        name
        for page in _api_pages()
        for name in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), flags=re.M)
    ]


def _resolve(identifier: str):
    module, _, name = identifier.rpartition(".")
    try:
        return importlib.import_module(identifier)
    except ModuleNotFoundError:
        return getattr(importlib.import_module(module), name)


def test_every_public_name_is_on_an_api_page():
    documented = set(_documented())
    missing = sorted(name for name in jaxloss.__all__ if f"jaxloss.{name}" not in documented)
    assert not missing, f"add `::: jaxloss.<name>` to a page of docs/api/ for: {missing}"
    for module in ("jaxloss.compose", "jaxloss.nn"):
        assert module in documented


def test_api_directives_name_real_objects_once():
    documented = _documented()
    assert len(documented) == len(set(documented)), "an object is documented twice"
    for identifier in documented:
        _resolve(identifier)


def test_every_page_is_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text()
    pages = [p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")]
    assert pages and all(f": {page}\n" in config for page in pages), pages

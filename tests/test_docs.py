"""The documentation site (docs/, mkdocs.yml): its code runs, and its API reference is complete.

The ```python blocks of each page below run in order, sharing one namespace per page; the
porting page's blocks compare torch and jaxloss numbers with asserts. Building the site itself
(`mkdocs build --strict`) is CI's docs step.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

import jaxloss
from tests.test_readme import python_blocks

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES_WITH_CODE = [
    "index.md",
    "conventions.md",
    "porting.md",
    "porting_optax.md",
    "porting_pml.md",
]


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


def test_the_site_loads_nothing_from_elsewhere():
    # Math is MathML rendered at build time by docs/_math.py (the build fails on a formula
    # it cannot convert), not a script from a CDN; the theme uses the system's fonts.
    config = (ROOT / "mkdocs.yml").read_text()
    assert "hooks:\n  - docs/_math.py" in config
    assert "font: false" in config
    assert "extra_javascript" not in config and "://" not in config.split("plugins:")[0]


def _args_entries(doc: str) -> list[tuple[str, str]]:
    """``(argument, description)`` of a Google-style ``Args:`` section, lines joined."""
    entries: list[list[str]] = []
    inside = False
    for line in doc.splitlines():
        if line.strip() == "Args:":
            inside = True
            continue
        if not inside:
            continue
        if not line.strip():
            break
        if not line.startswith("  "):
            continue
        match = re.match(r"^  (\w+): (.*)$", line)
        if match:
            entries.append([match.group(1), match.group(2)])
        elif entries:
            entries[-1][1] += " " + line.strip()
    return [(name, text) for name, text in entries]


def test_no_argument_paragraph_is_copied_across_docstrings():
    # A convention is explained once (docs/conventions.md, or a module docstring such as the
    # margin heads'); a docstring names its own shapes. A paragraph of more than 60
    # characters in more than 3 docstrings is a copy that a wording change would miss.
    seen: dict[tuple[str, str], list[str]] = {}
    for name in jaxloss.__all__:
        doc = inspect.getdoc(getattr(jaxloss, name)) or ""
        for entry in _args_entries(doc):
            seen.setdefault(entry, []).append(name)
    copies = {
        f"{arg}: {text[:60]}…": users
        for (arg, text), users in seen.items()
        if len(text) > 60 and len(users) > 3
    }
    assert not copies, copies
    assert len(seen) > 100  # the parser found the Args sections


def test_docstrings_are_the_source_docstrings():
    # No docstring is completed at import time: the docs build reads the source with stock
    # griffe, and `python -OO` (docstrings stripped) imports and runs jaxloss.
    code = "import jax.numpy as jnp, jaxloss; print(float(jaxloss.mse(jnp.ones(3), jnp.zeros(3))))"
    result = subprocess.run(
        [sys.executable, "-OO", "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    for name in jaxloss.__all__:
        fn = getattr(jaxloss, name)
        source = inspect.getsource(inspect.unwrap(fn)) if inspect.isfunction(fn) else None
        if source is not None and fn.__doc__:
            assert ast.get_docstring(ast.parse(textwrap.dedent(source)).body[0]) == (
                inspect.cleandoc(fn.__doc__)
            ), name

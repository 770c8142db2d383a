"""The README's "Use with optax and flax" snippets run as written, in order."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Use with optax and flax"


def python_blocks(markdown: str) -> list[str]:
    """The code of every ```python fenced block of a Markdown text, in order."""
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.S)


def _snippets() -> list[str]:
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return python_blocks(text[start:end])


def test_the_section_has_snippets():
    assert len(_snippets()) >= 5


def test_readme_snippets_run():
    namespace: dict = {}
    for number, snippet in enumerate(_snippets(), start=1):
        code = compile(snippet, f"README.md snippet {number}", "exec")
        exec(code, namespace)  # each snippet asserts its own result

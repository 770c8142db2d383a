"""mkdocs hook: the pages' math rendered to MathML when the site is built, offline.

``pymdownx.arithmatex`` (generic mode) leaves each formula of the Markdown pages and of the
docstrings (``docs/_griffe_rst.py`` turns ``:math:`` into it) as TeX in
``<span class="arithmatex">\\(...\\)</span>`` or ``<div class="arithmatex">\\[...\\]</div>``.
This hook converts each to MathML with ``latex2mathml`` (a pure-Python package of the
``docs`` extra), which browsers render natively: the site loads no script and nothing from a
CDN, so its math shows offline. A formula the converter rejects fails the build.
"""

from __future__ import annotations

import html
import re
from typing import Any

from latex2mathml.converter import convert

_MATH = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*\\(?P<open>[(\[])(?P<tex>.*?)\\[)\]]\s*</(?P=tag)>',
    re.S,
)


def render(page_html: str) -> str:
    """Every arithmatex formula of ``page_html`` as MathML (inline or display)."""

    def one(match: re.Match) -> str:
        tex = html.unescape(match.group("tex")).strip()
        display = "block" if match.group("open") == "[" else "inline"
        try:
            return convert(tex, display=display)
        except Exception as error:  # the converter raises several types
            raise ValueError(f"cannot render the formula {tex!r} to MathML: {error}") from error

    return _MATH.sub(one, page_html)


def on_page_content(html: str, **_: Any) -> str:
    """The mkdocs event: a page's HTML after Markdown, before the theme."""
    return render(html)

"""The glyph-identity data set of examples/glyph_verification.py: what its builder keeps.

The examples' own tests: they need the examples' extra (matplotlib draws the glyphs), so
they live here, outside the suite's test paths, and ``.ci/run`` runs them after installing
that extra (``.venv/bin/python -m pytest examples/tests``).
"""

from __future__ import annotations

import importlib
import os
import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def glyphs():
    sys.path.insert(0, str(EXAMPLES))
    try:
        yield importlib.import_module("_glyphs")
    finally:
        sys.path.remove(str(EXAMPLES))


def _font(glyphs, name: str) -> str:
    paths = [p for p in glyphs.font_files() if os.path.basename(p) == name]
    assert paths, f"{name} is not among the fonts"
    return paths[0]


def test_fonts_leave_out_fallback_and_non_unicode_ones(glyphs):
    names = [os.path.basename(p) for p in glyphs.font_files()]
    assert "DejaVuSans.ttf" in names and "cmr10.ttf" in names
    assert not [n for n in names if n.startswith(("LastResort", "STIXNonUni", "cmex", "cmsy"))]
    assert len(names) == len(set(names))


def test_missing_glyphs_are_dropped(glyphs):
    # U+0378 is unassigned; Computer Modern's TeX encoding gives letters and digits only.
    sans = glyphs._draw_font(_font(glyphs, "DejaVuSans.ttf"), ["A", "Ж", "\u0378", " "])
    assert sorted(sans) == ["A", "Ж"]
    tex = glyphs._draw_font(_font(glyphs, "cmr10.ttf"), ["A", "7", "α", "<"])
    assert sorted(tex) == ["7", "A"]
    assert sans["A"].shape == (glyphs.CANVAS, glyphs.CANVAS)


def test_homoglyphs_merge_and_distinct_characters_do_not(glyphs):
    characters = ["A", "B", "a", "Α", "А", "В"]  # Latin, Greek and Cyrillic capitals
    drawings = [
        glyphs._draw_font(_font(glyphs, name), characters)
        for name in ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
    ]
    representative = glyphs._merge_homoglyphs(drawings, sorted(characters))
    assert representative["Α"] == representative["А"] == representative["A"] == "A"
    assert representative["В"] == "B"
    assert representative["a"] == "a"


def test_samples_are_deterministic_32x32_bytes(glyphs):
    drawing = glyphs._draw_font(_font(glyphs, "DejaVuSans.ttf"), ["G"])["G"]
    first = glyphs._distort(np.random.default_rng(3), drawing)
    again = glyphs._distort(np.random.default_rng(3), drawing)
    other = glyphs._distort(np.random.default_rng(4), drawing)
    assert first.shape == (32, 32) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert np.any(first != other)
    assert first.max() > 100  # the glyph's ink survives the warp

"""Glyph identities: thousands of characters, each drawn by many fonts, as a stand-in for faces.

Not part of jaxloss: a helper module of the examples (``from _glyphs import glyphs``). Face
datasets cannot be downloaded here, but fonts are on every machine: an *identity* is a
character (Latin, Greek, Cyrillic, digits, arrows, math and other symbols) and a *sample*
is that character drawn by one font, then distorted at random (affine warp, stroke width,
contrast and noise) and shrunk to 32x32. Different fonts draw one character as differently
as lighting and pose change a face; a network that learns what stays the same can be asked
about characters it never saw.

How the set is made, deterministically and offline:

* fonts: the TrueType fonts that ship with matplotlib (DejaVu, STIX General, the Computer
  Modern text fonts) and those ``fc-list`` finds, one per file name. Fallback and
  non-Unicode fonts (LastResort, STIX's size and non-Unicode variants, the Display subsets,
  cmex10, cmsy10) are left out; the Computer Modern fonts, which use TeX's encodings, give
  only letters and digits.
* missing glyphs: a character counts for a font only if the font's character map has it,
  its drawing has ink, and the drawing differs from the font's fallback (``.notdef``) box.
* homoglyphs: characters drawn alike (Latin A, Greek Α, Cyrillic А; or accents too small to
  tell apart at 32x32, as in À and Á) are one identity. Two characters are merged when their
  drawings have a cosine above ``HOMOGLYPH_COSINE`` in at least half of the fonts that draw
  both.
* identities drawn by at least ``MIN_FONTS`` fonts are kept and split at random (fixed
  seed) into training and unseen ones; training identities get one sample per font,
  unseen ones ``TEST_SAMPLES`` samples from different fonts.

The result is cached as ``examples/output/glyphs_<VERSION>_<fonts>.npz`` (``<fonts>`` a hash
of the font file names); change ``VERSION`` when anything here changes.
``python examples/_glyphs.py`` builds it and prints a summary.
"""

from __future__ import annotations

import glob
import hashlib
import os
import subprocess
import time
from typing import NamedTuple

import matplotlib
import numpy as np
from matplotlib.ft2font import FT2Font
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

VERSION = "v1"
CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "output")
SIZE = 32  # side of a sample
CANVAS = 64  # side of the canonical drawing a sample is warped from
FONT_SIZE = 40  # pixels per em on the canonical drawing
BASELINE = 46  # row of the baseline on the canonical drawing
MIN_FONTS = 4  # an identity needs this many fonts
TEST_IDENTITIES = 500  # unseen identities; the rest train
TEST_SAMPLES = 5  # samples per unseen identity, from different fonts
HOMOGLYPH_COSINE = 0.985  # cosine of two 32x32 drawings above which they are "alike"
SEED = 0

# Unicode blocks the identities come from.
BLOCKS = (
    (0x0021, 0x007E),  # Basic Latin: letters, digits, punctuation
    (0x00A1, 0x024F),  # Latin-1 Supplement, Latin Extended-A and -B
    (0x0250, 0x02AF),  # IPA
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x052F),  # Cyrillic and its supplement
    (0x1E00, 0x1EFF),  # Latin Extended Additional
    (0x20A0, 0x20BF),  # currency
    (0x2100, 0x214F),  # letterlike symbols
    (0x2190, 0x23FF),  # arrows, mathematical operators, miscellaneous technical
    (0x25A0, 0x27BF),  # geometric shapes, miscellaneous symbols, dingbats
    (0x27C0, 0x27FF),  # miscellaneous mathematical symbols A, supplemental arrows A
    (0x2900, 0x2AFF),  # supplemental arrows B, math symbols B, supplemental operators
)
SKIPPED_FONTS = ("LastResort", "STIXNonUni", "STIXSiz", "Display", "cmex10", "cmsy10")
TEX_ONLY = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class Glyphs(NamedTuple):
    """The glyph-identity data set.

    Attributes:
      images: ``[n, 32, 32] uint8``, ink 255 on 0.
      identities: ``[n] int32``, the identity of each sample.
      fonts: ``[n] int32``, the font (index into ``font_names``) each sample was drawn in.
      unseen: ``[num_identities] bool``, the identities held out of training.
      characters: ``[num_identities]`` strings: the characters of each identity (more than
        one where homoglyphs were merged).
      font_names: the font file names.
    """

    images: np.ndarray
    identities: np.ndarray
    fonts: np.ndarray
    unseen: np.ndarray
    characters: np.ndarray
    font_names: np.ndarray


def font_files() -> list[str]:
    """The font files used: matplotlib's and ``fc-list``'s, one per file name, sorted."""
    paths = sorted(glob.glob(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "*.ttf")))
    try:
        listed = subprocess.run(
            ["fc-list", "--format", "%{file}\n"], capture_output=True, text=True, timeout=30
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        listed = []
    paths += sorted(p for p in listed if p.lower().endswith(".ttf"))
    chosen: dict[str, str] = {}
    for path in paths:
        name = os.path.basename(path)
        if not any(skip in name for skip in SKIPPED_FONTS):
            chosen.setdefault(name, path)
    return [chosen[name] for name in sorted(chosen)]


def _draw(font: ImageFont.FreeTypeFont, character: str) -> np.ndarray:
    """``[CANVAS, CANVAS] float32`` ink in [0, 1]: the character on a fixed baseline,
    centered horizontally, shrunk only if it does not fit."""
    big, baseline = 2 * CANVAS, CANVAS // 2 + BASELINE
    image = Image.new("L", (big, big))
    ImageDraw.Draw(image).text((big // 2, baseline), character, font=font, fill=255, anchor="ms")
    box = image.getbbox()
    if box is None:
        return np.zeros((CANVAS, CANVAS), np.float32)
    left, top = (box[0] + box[2]) // 2 - CANVAS // 2, baseline - BASELINE
    window = (left, top, left + CANVAS, top + CANVAS)
    if not (box[0] >= window[0] and box[1] >= top and box[2] <= window[2] and box[3] <= window[3]):
        # too big for the window: a square around window and ink, scaled down to fit
        left, top = min(left, box[0]), min(top, box[1])
        right, bottom = max(window[2], box[2]), max(window[3], box[3])
        side = max(bottom - top, right - left)
        left -= (side - (right - left)) // 2
        top -= (side - (bottom - top)) // 2
        window = (left, top, left + side, top + side)
    crop = image.crop(window)
    if crop.size != (CANVAS, CANVAS):
        crop = crop.resize((CANVAS, CANVAS), Image.BOX)
    return np.asarray(crop, dtype=np.float32) / 255.0


def _draw_font(path: str, candidates: list[str]) -> dict[str, np.ndarray]:
    """The canonical drawings of the ``candidates`` that the font really has."""
    charmap = FT2Font(path).get_charmap()
    font = ImageFont.truetype(path, FONT_SIZE)
    tex = os.path.basename(path).startswith("cm")
    fallback = _draw(font, "\U0010fffd")  # a private code point no font maps: .notdef
    drawings = {}
    for character in candidates:
        if ord(character) not in charmap or (tex and character not in TEX_ONLY):
            continue
        drawing = _draw(font, character)
        if drawing.sum() < 4.0 or np.abs(drawing - fallback).mean() < 1e-3:
            continue
        drawings[character] = drawing
    return drawings


def _thumbnails(drawings: dict[str, np.ndarray], side: int) -> np.ndarray:
    """``[len(drawings), side * side]`` unit-norm block means of the canonical drawings."""
    block = CANVAS // side
    stack = np.stack(list(drawings.values()))
    thumbs = stack.reshape(len(stack), side, block, side, block).mean(axis=(2, 4))
    thumbs = thumbs.reshape(len(stack), -1)
    return thumbs / np.maximum(np.linalg.norm(thumbs, axis=1, keepdims=True), 1e-6)


def _merge_homoglyphs(drawings: list[dict[str, np.ndarray]], characters: list[str]):
    """Union-find over characters drawn alike in at least half of the fonts that draw both.

    "Alike" in one font: the cosine of the two drawings at the samples' resolution is above
    ``HOMOGLYPH_COSINE``; candidates are found on 8x8 thumbnails first, for speed.

    Returns:
      ``{character: representative character}``.
    """
    index = {c: i for i, c in enumerate(characters)}
    alike: dict[tuple[int, int], int] = {}
    shared = np.zeros((len(characters), len(characters)), np.int16)
    for font in drawings:
        rows = np.array([index[c] for c in font])
        shared[np.ix_(rows, rows)] += 1
        coarse = _thumbnails(font, 8)
        first, second = np.nonzero(np.triu(coarse @ coarse.T > HOMOGLYPH_COSINE - 0.02, k=1))
        fine = _thumbnails(font, SIZE)
        close = np.einsum("pd,pd->p", fine[first], fine[second]) > HOMOGLYPH_COSINE
        for i, j in zip(rows[first[close]], rows[second[close]], strict=True):
            pair = (min(i, j), max(i, j))
            alike[pair] = alike.get(pair, 0) + 1
    parent = list(range(len(characters)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (i, j), count in sorted(alike.items()):
        if 2 * count >= shared[i, j]:
            a, b = root(int(i)), root(int(j))
            parent[max(a, b)] = min(a, b)
    return {c: characters[root(i)] for c, i in index.items()}


def _distort(rng: np.random.Generator, drawing: np.ndarray) -> np.ndarray:
    """One sample: stroke width, affine warp to 32x32, contrast and noise; ``uint8``."""
    stroke = rng.integers(-1, 3)  # -1 thinner, 0 as drawn, 1-2 bolder
    if stroke < 0:
        drawing = ndimage.grey_erosion(drawing, size=(2, 2))
    elif stroke > 0:
        drawing = ndimage.grey_dilation(drawing, size=(stroke + 1, stroke + 1))
    angle = np.deg2rad(rng.uniform(-12, 12))
    shear = rng.uniform(-0.25, 0.25)
    scale = rng.uniform(0.8, 1.05) * np.array([1.0, rng.uniform(0.88, 1.12)])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    # output pixel -> input pixel (row, col), about the centers
    forward = rotation @ np.array([[1.0, 0.0], [shear, 1.0]]) @ np.diag(scale) * (SIZE / CANVAS)
    inverse = np.linalg.inv(forward)
    shift = rng.uniform(-2, 2, size=2)
    offset = (CANVAS - 1) / 2 - inverse @ ((SIZE - 1) / 2 + shift)
    sample = ndimage.affine_transform(drawing, inverse, offset, (SIZE, SIZE), order=1)
    sample = sample * rng.uniform(0.6, 1.0) + rng.normal(0.0, rng.uniform(0.0, 0.12), sample.shape)
    return np.clip(np.round(sample * 255), 0, 255).astype(np.uint8)


def build(verbose: bool = True) -> Glyphs:
    """Draws, filters, merges, splits and distorts; deterministic for a given font set."""
    started = time.perf_counter()
    paths = font_files()
    candidates = [chr(c) for first, last in BLOCKS for c in range(first, last + 1)]
    candidates = [c for c in candidates if c.isprintable() and not c.isspace()]
    drawings = [_draw_font(path, candidates) for path in paths]
    drawn = sorted({c for font in drawings for c in font})
    representative = _merge_homoglyphs(drawings, drawn)
    # per identity, the fonts that draw it (one drawing per font, the representative's first)
    members: dict[str, dict[int, np.ndarray]] = {}
    for f, font in enumerate(drawings):
        for character in sorted(font, key=lambda c: c != representative[c]):
            members.setdefault(representative[character], {}).setdefault(f, font[character])
    kept = sorted(r for r, fonts in members.items() if len(fonts) >= MIN_FONTS)
    merged = {r: "".join(c for c in drawn if representative[c] == r) for r in kept}
    rng = np.random.default_rng(SEED)
    unseen = np.zeros(len(kept), bool)
    unseen[rng.permutation(len(kept))[:TEST_IDENTITIES]] = True
    images, identities, fonts = [], [], []
    for identity, character in enumerate(kept):
        available = sorted(members[character])
        if unseen[identity]:
            available = sorted(
                rng.choice(available, min(TEST_SAMPLES, len(available)), replace=False)
            )
        for f in available:
            images.append(_distort(rng, members[character][f]))
            identities.append(identity)
            fonts.append(f)
    glyphs = Glyphs(
        images=np.stack(images),
        identities=np.asarray(identities, np.int32),
        fonts=np.asarray(fonts, np.int32),
        unseen=unseen,
        characters=np.asarray([merged[c] for c in kept]),
        font_names=np.asarray([os.path.basename(p) for p in paths]),
    )
    if verbose:
        homoglyphs = sum(len(m) > 1 for m in merged.values())
        print(
            f"glyphs: {len(kept):,} identities ({(~unseen).sum():,} train, {unseen.sum():,} "
            f"unseen; {homoglyphs} merged homoglyph groups) from {len(paths)} fonts, "
            f"{len(images):,} samples; built in {time.perf_counter() - started:.1f} s"
        )
    return glyphs


def glyphs(cache: str = CACHE) -> Glyphs:
    """The data set, from the cache if it holds this ``VERSION`` and font set, else built
    and cached."""
    # the fonts differ between machines: they are part of the key
    fonts = hashlib.sha1("\n".join(map(os.path.basename, font_files())).encode()).hexdigest()
    path = os.path.join(cache, f"glyphs_{VERSION}_{fonts[:10]}.npz")
    if os.path.exists(path):
        with np.load(path) as data:
            return Glyphs(**{field: data[field] for field in Glyphs._fields})
    data = build()
    os.makedirs(cache, exist_ok=True)
    np.savez_compressed(path, **data._asdict())
    return data


if __name__ == "__main__":
    data = build()
    for identity in np.flatnonzero([len(c) > 1 for c in data.characters])[:40]:
        print(repr(str(data.characters[identity])), end=" ")
    print()

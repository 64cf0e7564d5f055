"""Built-in 5x7 bitmap font of the synthetic world's text scenes (docs/world.md, tier 2).

Uppercase A-Z, each glyph 5 dots wide and 7 high and spanning all 7 rows; a word is its glyphs
joined by one blank column (``6 n - 1`` dots wide). Text is drawn as the union of its lit dots, each
an axis-aligned square of side ``dot`` pixels, with the exact box-filter coverage of every pixel (the
limit of supersampling, like tier-1 squares): the coverage image is ``O_y @ bitmap @ O_x`` where
``O_y`` / ``O_x`` hold the overlap of each pixel row / column with each dot row / column. It is
antialiased at any resolution and position, and the analyzer renders its word templates with it.
No font files are read.
"""

from __future__ import annotations

import numpy as np

GLYPH_ROWS = 7
"""Dot rows of every glyph (all glyphs span rows 0-6)."""
GLYPH_COLS = 5
"""Dot columns of every glyph (plus one blank spacing column between letters)."""

_GLYPHS: dict[str, tuple[str, ...]] = {
    "A": (".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "B": ("####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."),
    "C": (".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."),
    "D": ("###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."),
    "E": ("#####", "#....", "#....", "####.", "#....", "#....", "#####"),
    "F": ("#####", "#....", "#....", "####.", "#....", "#....", "#...."),
    "G": (".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"),
    "H": ("#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"),
    "I": (".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."),
    "J": ("..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."),
    "K": ("#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"),
    "L": ("#....", "#....", "#....", "#....", "#....", "#....", "#####"),
    "M": ("#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"),
    "N": ("#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"),
    "O": (".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "P": ("####.", "#...#", "#...#", "####.", "#....", "#....", "#...."),
    "Q": (".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"),
    "R": ("####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"),
    "S": (".####", "#....", "#....", ".###.", "....#", "....#", "####."),
    "T": ("#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."),
    "U": ("#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."),
    "V": ("#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."),
    "W": ("#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."),
    "X": ("#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"),
    "Y": ("#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."),
    "Z": ("#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"),
}
GLYPHS: dict[str, np.ndarray] = {
    letter: np.array([[c == "#" for c in row] for row in rows], dtype=np.float64)
    for letter, rows in _GLYPHS.items()
}
"""The glyph of each uppercase letter: float64 (7, 5), 1 = lit dot."""


def word_bitmap(word: str) -> np.ndarray:
    """The dots of ``word`` (uppercase A-Z): float64 (7, 6 n - 1), letters separated by a blank column."""
    if not word or any(c not in GLYPHS for c in word):
        raise ValueError(f"cannot draw {word!r}: the font has only the uppercase letters A-Z")
    blank = np.zeros((GLYPH_ROWS, 1))
    parts = [part for c in word for part in (GLYPHS[c], blank)][:-1]
    return np.concatenate(parts, axis=1)


def ink_columns(bitmap: np.ndarray) -> tuple[int, int]:
    """First and last lit dot column of a bitmap (a word can start or end with a blank column, e.g. I)."""
    lit = np.flatnonzero(bitmap.any(axis=0))
    return int(lit[0]), int(lit[-1])


def _overlap(pixels: int, start: np.ndarray, dot: np.ndarray, cells: int) -> np.ndarray:
    """Overlap (pixels) of pixel ``[k, k + 1]`` with dot cell ``[start + i dot, start + (i + 1) dot]``:
    float64 (T, pixels, cells) for per-frame ``start`` and ``dot`` of shape (T,)."""
    edges = start[:, None] + np.arange(cells + 1)[None, :] * dot[:, None]  # (T, cells + 1)
    k = np.arange(pixels, dtype=np.float64)[None, :, None]  # (1, P, 1) pixel left edges
    low, high = edges[:, None, :-1], edges[:, None, 1:]  # (T, 1, cells)
    return np.clip(np.minimum(k + 1.0, high) - np.maximum(k, low), 0.0, 1.0)


def text_coverage(
    bitmap: np.ndarray, left: np.ndarray, top: np.ndarray, dot: np.ndarray | float, height: int, width: int
) -> np.ndarray:
    """Exact antialiased coverage in [0, 1], float32 (T, H, W), of a dot bitmap per frame.

    ``bitmap``: (rows, cols) of 0/1 dots (:func:`word_bitmap`); ``left`` / ``top``: (T,) pixel position
    of the bitmap's top-left corner in each frame (pixel ``k`` spans ``[k, k + 1]``); ``dot``: dot side
    in pixels (scalar or (T,)). Coverage of each pixel = area covered by lit dots (dots tile the plane,
    so it never exceeds 1).
    """
    left = np.atleast_1d(np.asarray(left, dtype=np.float64))
    top = np.atleast_1d(np.asarray(top, dtype=np.float64))
    dot = np.broadcast_to(np.asarray(dot, dtype=np.float64), left.shape)
    rows, cols = bitmap.shape
    oy = _overlap(height, top, dot, rows)  # (T, H, rows)
    ox = _overlap(width, left, dot, cols)  # (T, W, cols)
    return ((oy @ bitmap) @ ox.transpose(0, 2, 1)).astype(np.float32)  # (T, H, W)

"""Matplotlib's colormaps without importing matplotlib: its 256-entry lookup tables, stored as data.

Importing matplotlib took 0.24 s of the app's first page (a quarter of its script's first run) for
six tables of 256 colours. ``colormaps.npz`` holds them as uint8 RGB, written from matplotlib by

    python -m cbam_viz.colormaps

and :func:`colorize` indexes them the way ``matplotlib.colors.Colormap.__call__`` does, so its
output equals ``(matplotlib.colormaps[name](t)[..., :3] * 255).astype(np.uint8)`` exactly
(``tests/test_render.py`` checks every table against matplotlib).
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np

NAMES = ("jet", "inferno", "viridis", "magma", "gray", "Blues")  # Blues: the channel-weight heat map
FILE = Path(__file__).with_name("colormaps.npz")
SIZE = 256  # entries per table (matplotlib's default N)


def _load() -> MappingProxyType:
    with np.load(FILE) as tables:
        luts = {name: tables[name] for name in NAMES}
    for lut in luts.values():
        lut.flags.writeable = False
    return MappingProxyType(luts)


LUTS = _load() if __name__ != "__main__" else MappingProxyType({})  # read-only; the writer (below) reads none


def colorize(t: np.ndarray, name: str) -> np.ndarray:
    """RGB uint8 (..., 3) for values ``t`` in [0, 1] (clipped), as matplotlib's colormap ``name``
    draws them: entry ``floor(t * 256)``, 1.0 in the last one; NaN black, as matplotlib's "bad" colour."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    bad = np.isnan(t)
    index = np.minimum(np.nan_to_num(t) * SIZE, SIZE - 1).astype(np.intp)
    rgb = LUTS[name][index]
    rgb[bad] = 0
    return rgb


def tables_from_matplotlib() -> dict[str, np.ndarray]:
    """The lookup tables as matplotlib draws them (entry i is the colour of index i)."""
    from matplotlib import colormaps

    if any(colormaps[name].N != SIZE for name in NAMES):
        raise ValueError(f"a colormap of this matplotlib does not have {SIZE} entries")
    return {name: (colormaps[name](np.arange(SIZE))[:, :3] * 255).astype(np.uint8) for name in NAMES}


if __name__ == "__main__":
    np.savez(FILE, **tables_from_matplotlib())
    print(f"wrote {FILE}: {', '.join(NAMES)}")

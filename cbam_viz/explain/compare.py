"""Two views side by side: how far two analyses agree, block by block.

The two may be two configurations on one image, one model on two images, or a model and a
knock-out of it. Spatial maps of different sizes (a 7x7 and a 14x14) are compared on the larger
grid (bilinear, with opencv); channel weights are compared where the block has as many channels in
both. Agreement is Pearson's correlation; NaN where a gate is off in either view or a map is constant.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .results import Analysis


def common_grid(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both maps on the larger of their two grids (bilinear upsampling of the smaller)."""
    h, w = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])

    def resize(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float32)
        return m if m.shape == (h, w) else cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    return resize(a), resize(b)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson's correlation of two arrays of one shape; NaN when either is constant."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def difference(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``right`` minus ``left`` on their common grid: where the right view attends more (positive)."""
    a, b = common_grid(left, right)
    return b - a


@dataclass(frozen=True)
class Agreement:
    """How one block's attention agrees between two views."""

    block: str
    channel: float  # correlation of the channel weights Mc
    spatial: float  # correlation of the spatial maps Ms, on their common grid


def agreement(left: Analysis, right: Analysis) -> list[Agreement]:
    """One row per block present in both views, in the left view's forward order."""
    nan = float("nan")
    rows = []
    for a in left.blocks:
        b = next((r for r in right.blocks if r.name == a.name), None)
        if b is None:
            continue
        channel = (correlation(a.channel_weights, b.channel_weights)
                   if a.channel_weights is not None and b.channel_weights is not None
                   and a.channel_weights.shape == b.channel_weights.shape else nan)
        spatial = (correlation(*common_grid(a.spatial_map, b.spatial_map))
                   if a.spatial_map is not None and b.spatial_map is not None else nan)
        rows.append(Agreement(a.name, channel, spatial))
    return rows

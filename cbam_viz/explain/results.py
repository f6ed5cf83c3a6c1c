"""What an analysis produces, as plain numpy arrays.

No torch here: renderers, the UI and the precomputed gallery use these without loading it.
:func:`cbam_viz.explain.analysis.analyse` fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image


@dataclass
class BlockAttention:
    """One CBAM block's attention for one image: channel weights (C,), spatial map (H, W)."""

    name: str
    stage: str
    channel_weights: np.ndarray | None
    spatial_map: np.ndarray | None
    feature_shape: tuple[int, int, int]

    @property
    def label(self) -> str:
        """``layer3.1 · stage 3, 128 channels, 8x8``."""
        c, h, w = self.feature_shape
        return f"{self.name}  ·  stage {self.stage.removeprefix('layer')}, {c} channels, {h}x{w}"


@dataclass
class Analysis:
    """Predictions and attention of one model on one image."""

    top: list[tuple[str, float]]  # (class name, probability), best first
    probabilities: np.ndarray  # (num_classes,)
    blocks: list[BlockAttention]
    view: np.ndarray  # the region the model saw, at display resolution, uint8 (H, W, 3)
    seen: np.ndarray | None = None  # the input itself, at the model's resolution (S, S, 3), before normalising

    def spatial_stages(self) -> dict[str, list[BlockAttention]]:
        """The blocks that have a spatial map, grouped by stage, in forward order."""
        stages: dict[str, list[BlockAttention]] = {}
        for b in self.blocks:
            if b.spatial_map is not None:
                stages.setdefault(b.stage, []).append(b)
        return stages

    def block(self, name: str) -> BlockAttention:
        """The block called ``name`` (e.g. ``layer3.1``)."""
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"no CBAM block named {name!r}; blocks: {[b.name for b in self.blocks]}")


def top_classes(probabilities: np.ndarray, classes: list[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes and their probabilities, best first (:attr:`Analysis.top`)."""
    return [(classes[i], float(probabilities[i])) for i in np.argsort(-probabilities)[:k]]


def display_view(crop: Image.Image, display_size: int = 384) -> np.ndarray:
    """The model's crop at display resolution, uint8 (display_size, display_size, 3). A crop at most
    a quarter of that size (a 32x32 test image) is enlarged with nearest neighbours, so that its
    pixels stay visible as pixels; a photo is resized smoothly."""
    nearest = max(crop.size) * 4 <= display_size
    return cv2.resize(np.asarray(crop, dtype=np.uint8), (display_size, display_size),
                      interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_CUBIC)

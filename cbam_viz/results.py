"""What an analysis produces, as plain numpy arrays, and the region of the image a model sees.

No torch here: renderers, the UI and the precomputed gallery (:mod:`cbam_viz.gallery`) use these
without loading it. :func:`cbam_viz.analysis.analyse` fills them in.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass
class Analysis:
    """Predictions and attention of one model on one image."""

    top: list[tuple[str, float]]  # (class name, probability), best first
    probabilities: np.ndarray  # (num_classes,)
    blocks: list[BlockAttention]
    view: np.ndarray  # the region the model saw, at display resolution, uint8 (H, W, 3)

    def block(self, name: str) -> BlockAttention:
        """The block called ``name`` (e.g. ``layer3.1``)."""
        for b in self.blocks:
            if b.name == name:
                return b
        raise KeyError(f"no CBAM block named {name!r}; blocks: {[b.name for b in self.blocks]}")


def top_classes(probabilities: np.ndarray, classes: list[str], k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most probable classes and their probabilities, best first (:attr:`Analysis.top`)."""
    return [(classes[i], float(probabilities[i])) for i in np.argsort(-probabilities)[:k]]


def centre_crop_box(size: tuple[int, int], crop_fraction: float) -> tuple[int, int, int, int]:
    """The square centre crop the model sees: shorter side resized, then ``crop_fraction`` of it kept."""
    w, h = size
    side = min(w, h) * crop_fraction
    left, top = (w - side) / 2, (h - side) / 2
    return round(left), round(top), round(left + side), round(top + side)


def model_crop(image: Image.Image, preprocessing: dict) -> Image.Image:
    """The part of ``image`` the model sees, per a card's preprocessing: ``input_size`` S and optionally
    ``resize_size`` (the shorter side before the centre crop; S when absent, i.e. the whole centre square)."""
    size = preprocessing["input_size"]
    return image.crop(centre_crop_box(image.size, size / preprocessing.get("resize_size", size)))


def display_view(crop: Image.Image, display_size: int = 384) -> np.ndarray:
    """The model's crop at display resolution, uint8 (display_size, display_size, 3)."""
    return np.asarray(crop.resize((display_size, display_size), Image.BICUBIC), dtype=np.uint8)

"""Shared fixtures: a tiny image-folder dataset made by the test itself (no shared data)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("blue", "green", "red")


def make_image_folder(root: Path, per_class: dict[str, int], size: int = 16, seed: int = 0) -> Path:
    """root/<split>/<class>/*.png: noisy images whose dominant colour is the class."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
                pixels[..., 2 - c] += 140
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("tiny") / "colours", {"train": 32, "test": 8})

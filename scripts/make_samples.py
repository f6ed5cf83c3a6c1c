"""Regenerate assets/samples/ from the CC0 / public-domain photos that scikit-image ships.

    pip install scikit-image && python scripts/make_samples.py
"""

from pathlib import Path

import numpy as np
import skimage.data as data
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "assets" / "samples"
SAMPLES = {
    "cat": data.chelsea,
    "coffee": data.coffee,
    "astronaut": data.astronaut,
    "rocket": data.rocket,
    "horse": lambda: (~data.horse()).astype(np.uint8) * 255,  # a boolean mask: horse drawn black on white
}

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name, load in SAMPLES.items():
        image = Image.fromarray(load()).convert("RGB")
        image.thumbnail((512, 512))
        image.save(OUT / f"{name}.jpg", quality=90)
        print(f"{name}.jpg {image.size}")

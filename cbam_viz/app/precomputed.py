"""What the app shows before it has loaded torch: the gallery images analysed in advance (the reader).

Importing torch takes 2.5-4 s on a 2-core machine, most of the app's first page. The gallery images
are known in advance, so the family's canonical model analyses them once, here, and the app's first
page reads the results (plain arrays) instead of running the model. An entry is used only when the
card's weights sha256 and the image's sha256 both match the ones it was computed from, so a
retrained model or an edited image is analysed live instead; ``tests/test_precomputed.py`` checks
that the shipped file equals a live analysis.

    python -m cbam_viz.family gallery [--out assets/family]

writes ``<family>/precomputed.npz`` (:func:`cbam_viz.training.gallery.write`): per sample, the
canonical model's probabilities, the input it received and every block's attention.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from ..explain.results import Analysis, BlockAttention, display_view, top_classes
from ..models.preprocessing import model_crop
from ..models.weights import sha256_bytes
from .images import load_image

FILE_NAME = "precomputed.npz"
SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "samples"
SAMPLE_TYPES = (".jpg", ".png")


def test_images() -> Path:
    """Where ``python -m cbam_viz.family test-images`` puts CIFAR-10 test images for the gallery:
    ``$CBAM_VIZ_TEST_IMAGES``, else the user's cache. They are copies of the data set, so they are
    made locally from it and never shipped in the repository."""
    from ..models.download import CACHE_DIR

    return Path(os.environ.get("CBAM_VIZ_TEST_IMAGES") or CACHE_DIR / "test-images")


def test_split() -> Path:
    """Where the CIFAR-10 test split (``<class>/<file>``) is on this machine, for drawing the test images
    that the family's channel examples name: ``$CBAM_VIZ_TEST_SPLIT``, else where the training puts it."""
    from ..models.download import CACHE_DIR

    return Path(os.environ.get("CBAM_VIZ_TEST_SPLIT") or CACHE_DIR / "cifar10" / "test")


def sample_files(folder: str | os.PathLike = SAMPLES) -> dict[str, Path]:
    """The images in ``folder`` by name (file stem); none if it does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix in SAMPLE_TYPES and p.is_file()}


class Precomputed:
    """The precomputed analyses of a family (none when the file is missing or unreadable)."""

    def __init__(self, family_root: str | os.PathLike) -> None:
        self.meta: dict = {}
        self.arrays: dict[str, np.ndarray] = {}
        path = Path(family_root) / FILE_NAME
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as f:
                    self.arrays = {k: f[k] for k in f.files}
                for a in self.arrays.values():
                    a.setflags(write=False)  # shared by every session that shows them: never changed in place
                self.meta = json.loads(str(self.arrays.pop("meta")))
            except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile):
                self.meta, self.arrays = {}, {}  # a damaged file: everything is analysed live

    def analysis(self, card: dict, image_bytes: bytes, top_k: int = 5, display_size: int = 384) -> Analysis | None:
        """The analysis of ``image_bytes`` by the model of ``card``, if it was computed in advance, else None."""
        if not self.meta or card["weights"]["sha256"] != self.meta.get("weights_sha256"):
            return None
        digest = sha256_bytes(image_bytes)
        sample = next((s for s, e in self.meta["samples"].items() if e["image_sha256"] == digest), None)
        if sample is None:
            return None
        probs = self.arrays[f"{sample}/probabilities"]
        blocks = [
            BlockAttention(b["name"], b["stage"], self.arrays.get(f"{sample}/{b['name']}/channel"),
                           self.arrays.get(f"{sample}/{b['name']}/spatial"), tuple(b["feature_shape"]))
            for b in self.meta["samples"][sample]["blocks"]
        ]
        view = display_view(model_crop(load_image(image_bytes), card["preprocessing"]), display_size)
        return Analysis(top_classes(probs, card["classes"], top_k), probs, blocks, view, self.arrays.get(f"{sample}/seen"))

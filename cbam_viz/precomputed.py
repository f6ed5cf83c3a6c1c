"""What the app shows before it has loaded torch: the gallery images analysed in advance.

Importing torch takes 2.5-4 s on a 2-core machine, most of the app's first page. The gallery images
are known in advance, so the family's canonical model analyses them once, here, and the app's first
page reads the results (plain arrays) instead of running the model. An entry is used only when the
card's weights sha256 and the image's sha256 both match the ones it was computed from, so a
retrained model or an edited image is analysed live instead; ``tests/test_precomputed.py`` checks
that the shipped file equals a live analysis.

    python -m cbam_viz.precomputed [--family assets/family] [--samples assets/samples]

writes ``<family>/precomputed.npz``: per sample, the canonical model's probabilities and every
block's attention.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from .images import load_image
from .registry import DEFAULT_ROOT, Family, key_of
from .results import Analysis, BlockAttention, display_view, model_crop, top_classes

FILE_NAME = "precomputed.npz"
SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write(family_root: str | os.PathLike, samples: str | os.PathLike = SAMPLES) -> Path:
    """Analyse every ``*.jpg`` under ``samples`` with the canonical model of the family at
    ``family_root`` and write the results to ``<family_root>/precomputed.npz``."""
    from .analysis import analyse

    family = Family(family_root)
    model, card = family.load(key_of(family.canonical()))
    meta = {"variant": card["name"], "weights_sha256": card["weights"]["sha256"], "samples": {},
            "made_by": "python -m cbam_viz.precomputed"}
    arrays: dict[str, np.ndarray] = {}
    for path in sorted(Path(samples).glob("*.jpg")):
        data = path.read_bytes()
        result = analyse(model, load_image(data), card)
        meta["samples"][path.stem] = {
            "image_sha256": _sha256(data),
            "blocks": [{"name": b.name, "stage": b.stage, "feature_shape": list(b.feature_shape)} for b in result.blocks],
        }
        arrays[f"{path.stem}/probabilities"] = result.probabilities
        for b in result.blocks:
            for part, values in (("channel", b.channel_weights), ("spatial", b.spatial_map)):
                if values is not None:
                    arrays[f"{path.stem}/{b.name}/{part}"] = values
    out = Path(family_root) / FILE_NAME
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, out)
    return out


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
        digest = _sha256(image_bytes)
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
        return Analysis(top_classes(probs, card["classes"], top_k), probs, blocks, view)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cbam_viz.precomputed", description=__doc__.split("\n\n")[0])
    p.add_argument("--family", type=Path, default=DEFAULT_ROOT)
    p.add_argument("--samples", type=Path, default=SAMPLES)
    args = p.parse_args(argv)
    out = write(args.family, args.samples)
    meta = Precomputed(args.family).meta
    print(f"{out}: {len(meta['samples'])} images analysed by {meta['variant']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

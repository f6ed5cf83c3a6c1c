"""Write the family's precomputed gallery: the sample images analysed by the canonical model, for
the app's first page (read by :class:`cbam_viz.app.precomputed.Precomputed`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..app.images import load_image
from ..app.precomputed import FILE_NAME, SAMPLES
from ..explain.analysis import analyse
from ..models.registry import Family, key_of
from ..models.weights import sha256_bytes


def write(family_root: str | os.PathLike, samples: str | os.PathLike = SAMPLES) -> Path:
    """Analyse every ``*.jpg`` under ``samples`` with the canonical model of the family at
    ``family_root`` and write the results to ``<family_root>/precomputed.npz``."""
    family = Family(family_root)
    model, card = family.load(key_of(family.canonical()))
    meta = {"variant": card["name"], "weights_sha256": card["weights"]["sha256"], "samples": {},
            "made_by": "python -m cbam_viz.family gallery"}
    arrays: dict[str, np.ndarray] = {}
    for path in sorted(Path(samples).glob("*.jpg")):
        data = path.read_bytes()
        result = analyse(model, load_image(data), card)
        meta["samples"][path.stem] = {
            "image_sha256": sha256_bytes(data),
            "blocks": [{"name": b.name, "stage": b.stage, "feature_shape": list(b.feature_shape)} for b in result.blocks],
        }
        arrays[f"{path.stem}/probabilities"] = result.probabilities
        arrays[f"{path.stem}/seen"] = result.seen
        for b in result.blocks:
            for part, values in (("channel", b.channel_weights), ("spatial", b.spatial_map)):
                if values is not None:
                    arrays[f"{path.stem}/{b.name}/{part}"] = values
    out = Path(family_root) / FILE_NAME
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, out)
    return out

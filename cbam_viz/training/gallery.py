"""The gallery: CIFAR-10 test images exported beside the licensed photos, and the precomputed
analyses of every gallery image by the canonical model, for the app's first page (read by
:class:`cbam_viz.app.precomputed.Precomputed`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..app.images import load_image
from ..app.precomputed import FILE_NAME, SAMPLES, sample_files, test_images
from ..explain.analysis import analyse
from ..models.registry import Family, key_of
from ..models.weights import sha256_bytes


def write(family_root: str | os.PathLike, samples: str | os.PathLike = SAMPLES) -> Path:
    """Analyse every gallery image under ``samples`` with the canonical model of the family at
    ``family_root`` and write the results to ``<family_root>/precomputed.npz``."""
    family = Family(family_root)
    model, card = family.load(key_of(family.canonical()))
    meta = {"variant": card["name"], "weights_sha256": card["weights"]["sha256"], "samples": {},
            "made_by": "python -m cbam_viz.family gallery"}
    arrays: dict[str, np.ndarray] = {}
    for path in sample_files(samples).values():
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


CIFAR10_SOURCE = ("CIFAR-10 test set (Krizhevsky, Learning Multiple Layers of Features from Tiny Images, 2009; "
                  "https://www.cs.toronto.edu/~kriz/cifar.html)")


def export_test_images(family_root: str | os.PathLike, data: str | os.PathLike,
                       to: str | os.PathLike | None = None) -> list[Path]:
    """Write, per class, the first test image (in file order) that the family's canonical model
    classifies correctly as ``<to>/cifar10-<class>.png``, and list them with their source in
    ``<to>/CIFAR10.md``. Returns the files written."""
    from PIL import Image

    from .data import list_split, load_split

    family = Family(family_root)
    model, card = family.load(key_of(family.canonical()))
    items, classes = list_split(Path(data), "test")
    if classes != card["classes"]:
        raise ValueError(f"the test classes {classes} are not the model's {card['classes']}")
    size = card["preprocessing"]["input_size"]
    split = load_split(Path(data), "test", size, cache_dir=None)
    to = Path(to or test_images())
    to.mkdir(parents=True, exist_ok=True)
    written, rows = [], []
    for c, name in enumerate(classes):
        for i in np.flatnonzero(split.labels == c):
            pixels = split.images[i]
            result = analyse(model, Image.fromarray(pixels), card)
            if result.top[0][0] == name:
                path = to / f"cifar10-{name}.png"
                Image.fromarray(pixels).save(path)
                written.append(path)
                rows.append(f"| `{path.name}` | {name} | `test/{name}/{items[i][0].name}` | {100 * result.top[0][1]:.1f}% |")
                break
        else:
            rows.append(f"| (none) | {name} | no test image of this class is classified correctly | |")
    (to / "CIFAR10.md").write_text(
        "# CIFAR-10 test images in the gallery\n\n"
        f"Source: {CIFAR10_SOURCE}, from the JPEG (quality 75) copy the family was trained and tested on, "
        f"saved losslessly as PNG at {size}x{size} pixels. Per class, the first test image that the canonical "
        f"model `{card['name']}` classifies correctly (sha256 {card['weights']['sha256'][:12]}...). Written by "
        "`python -m cbam_viz.family test-images`.\n\n"
        "| file | class | test-set file | canonical model's probability |\n|---|---|---|---|\n" + "\n".join(rows) + "\n")
    return written


def export_channel_images(family_root: str | os.PathLike, data: str | os.PathLike, names: list[str] | None = None,
                          k: int = 6) -> list[Path]:
    """For every variant with channel attention (or those ``names``), the ``k`` test images that
    weight each channel most in each block and the class profiles, as ``<name>.channels.npz`` beside
    its card (:mod:`cbam_viz.explain.channel_images`). Returns the files written."""
    from ..explain import channel_images
    from .data import list_split, load_split
    from .evaluate import batches

    family = Family(family_root)
    items, classes = list_split(Path(data), "test")
    files = [f"{classes[label]}/{path.name}" for path, label in items]
    written = []
    for key, card in family.cards.items():
        if key.attention not in ("both", "channel") or (names and card["name"] not in names):
            continue
        if classes != card["classes"]:
            raise ValueError(f"the test classes {classes} are not {card['name']}'s {card['classes']}")
        model, card = family.load(key)
        pre = card["preprocessing"]
        split = load_split(Path(data), "test", pre["input_size"])
        weights = channel_images.channel_weights(model, batches(split.images, pre["mean"], pre["std"]))
        written.append(channel_images.save(Path(family_root) / f"{card['name']}{channel_images.SUFFIX}", weights,
                                           split.labels, files, len(classes), k))
        print(written[-1], flush=True)
    return written

"""Batched analysis speed on this machine: images per second with every block's attention captured,
decoding and preprocessing included (DataLoader workers), for the built-in canonical model (goal
>= 200 images/s on the 2 cores) and the ImageNet CBAM-ResNet-50 layout at 224 px (goal >= 10).

    python bench/batch.py [--family assets/family] [--images 1024] [--imagenet-images 64] [--imagenet-batch 8]

The images are JPEG files this script writes (320x240, smooth colours with noise); the ResNet-50
has random weights (the time does not depend on them). Runs on CUDA when there is a GPU.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cbam_viz.explain.analysis import card_prediction
from cbam_viz.explain.batch import analyse_files
from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.registry import Family, VariantKey, default_root
from cbam_viz.models.resnet import cbam_resnet50

IMAGENET_PRE = {"input_size": 224, "resize_size": 256, "interpolation": "bilinear",
                "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def write_images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:240, 0:320]
    paths = []
    for i in range(n):
        base = np.stack([x * (i % 7 + 1) % 256, y * (i % 5 + 1) % 256, (x + y) % 256], -1)
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"{i:05d}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=85)
    return paths


def images_per_second(model, card, paths, batch_size: int, workers: int, single_view: bool) -> float:
    list(analyse_files(model, card, paths[: batch_size], batch_size, workers, single_view=single_view))  # warm-up
    start = time.perf_counter()
    count = sum(1 for item in analyse_files(model, card, paths, batch_size, workers, single_view=single_view)
                if item.error is None)
    return count / (time.perf_counter() - start)


def forward_ceiling(model, card, batch_size: int, device: str, single_view: bool, repeats: int = 4) -> float:
    """Images per second of the card's prediction alone (:func:`card_prediction`: the mirror image too
    where the card says so, unless ``single_view``) on random tensors, without decoding, preprocessing
    or capture: the ceiling of ``images_per_second``."""
    size = card["preprocessing"]["input_size"]
    x = torch.randn(batch_size, 3, size, size, device=device)
    with torch.inference_mode():
        card_prediction(model, x, model(x), card, single_view)
        start = time.perf_counter()
        for _ in range(repeats):
            card_prediction(model, x, model(x), card, single_view)
    return batch_size * repeats / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", type=Path, default=default_root())
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--imagenet-images", type=int, default=64)
    p.add_argument("--imagenet-batch", type=int, default=8, help="the ResNet-50's batch (8 beat 16 on 2 cores)")
    args = p.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    family = Family(args.family)
    model, card = family.load(family.resolve(VariantKey()))
    resnet50 = cbam_resnet50(CBAMConfig(layout="official"), num_classes=1000).eval()
    r50_card = {"preprocessing": IMAGENET_PRE}
    print(f"device {device}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_images(Path(tmp), max(args.images, args.imagenet_images))
        for name, m, c, n, batch in ((f"{card['name']} ({args.family})", model, card, args.images, 128),
                                     ("CBAM-ResNet-50 (ImageNet layout, 224 px)", resnet50, r50_card,
                                      args.imagenet_images, args.imagenet_batch)):
            m.to(device)
            views = ((False, "with the mirror image"), (True, "single view")) if c["preprocessing"].get("flip_average") \
                else ((False, "one view"),)
            for single_view, how in views:
                print(f"  {name}, {how}: batch {batch}, the forward pass alone: "
                      f"{forward_ceiling(m, c, batch, device, single_view):7.1f} images/s (the ceiling of the rows below)")
                for workers in (0, 1, 2):
                    rate = images_per_second(m, c, paths[:n], batch, workers, single_view)
                    print(f"  {name}, {how}: batch {batch}, {workers} workers: {rate:7.1f} images/s over {n} images")


if __name__ == "__main__":
    main()

"""Training throughput of one process against two DistributedDataParallel processes (gloo) on this
machine: the family's network and recipe (half-width CBAM-ResNet-18, bfloat16, global batch 512)
on a generated 32 px data set, images per second of the second epoch.

    python bench/ddp_speed.py [--images 4096]

On two cores, two processes share the same cores (one thread each) and add the gradient
all-reduce: the figure says what that costs. On machines with more cores or GPUs, run the
training with torchrun as the README shows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from cbam_viz.training import family

RECIPE = [*family.RECIPE, "--epochs", "2"]  # the built-in family's recipe, 2 epochs


def image_folder(root: Path, train: int, test: int = 100) -> Path:
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("test", test)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n // 10):
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def images_per_second(cmd: list[str], out: Path, env: dict) -> float:
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    card = json.loads((out / "net.json").read_text())
    last = card["training"]["history"][-1]
    return card["dataset"]["train_images"] // 512 * 512 / last["seconds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=4096)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = image_folder(tmp / "data", args.images)
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        common = ["-m", "cbam_viz.train", "--data", str(data), "--name", "net", "--cache-dir", str(tmp / "cache"),
                  "--checkpoint-dir", str(tmp / "ck"), *RECIPE]
        one = images_per_second([sys.executable, *common, "--out", str(tmp / "one")], tmp / "one", env)
        two = images_per_second([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                 *common, "--out", str(tmp / "two")], tmp / "two", {**env, "OMP_NUM_THREADS": "1"})
    print(f"one process (2 threads): {one:.0f} images/s; two DDP processes (1 thread each, gloo): {two:.0f} images/s "
          f"({two / one:.2f}x)")


if __name__ == "__main__":
    main()

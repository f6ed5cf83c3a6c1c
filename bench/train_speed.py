"""Training speed of the built-in family's network on this machine, and what it means for the family.

Times optimizer steps of the canonical compact CBAM network (widths 64/256/256, 32 px, batch 1024,
channels-last, the optimizer and loss of ``cbam_viz.train``) on random images, end-to-end and as an
attention fine-tune on a frozen backbone (what every other variant trains), then prices the family's
training plan (``cbam_viz.family.plan``) and the 4-hour budget of the family issue at those speeds.

    python bench/train_speed.py [--steps 4] [--train-images 50000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cbam_viz.attention import CBAMConfig  # noqa: E402
from cbam_viz.family import plan  # noqa: E402
from cbam_viz.compact import CompactCBAMNet  # noqa: E402
from cbam_viz.train import _finetuned, _keep_freed_memory, _optimizer, parse_args  # noqa: E402

BATCH = 1024


def images_per_second(finetune: bool, steps: int) -> float:
    """Median speed of ``steps`` training steps after two warm-up steps."""
    torch.manual_seed(0)
    model = CompactCBAMNet(CBAMConfig(), num_classes=10).to(memory_format=torch.channels_last)
    model.stem.weight.requires_grad_(False)
    if finetune:
        for name, p in model.named_parameters():
            p.requires_grad_(_finetuned(name))
    optimizer = _optimizer(model, parse_args(["--data", ".", "--out", ".", "--name", "x"]))
    x = torch.randn(BATCH, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (BATCH,))
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.2, reduction="sum")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 2:
            times.append(time.perf_counter() - t)
    return BATCH / statistics.median(times)


def planned_images(train_images: int) -> tuple[int, int]:
    """Images the family plan trains on: (end-to-end runs, attention fine-tunes)."""
    end_to_end = finetune = 0
    for step in plan():
        args = list(step.args)
        epochs = int(args[args.index("--epochs") + 1])
        steps = train_images // BATCH
        if "--steps-per-epoch" in args:
            steps = min(steps, int(args[args.index("--steps-per-epoch") + 1]))
        if "--backbone" in args:
            finetune += epochs * steps * BATCH
        else:
            end_to_end += epochs * steps * BATCH
    return end_to_end, finetune


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4, help="timed steps per mode")
    p.add_argument("--train-images", type=int, default=50_000, help="size of the train split (CIFAR-10: 50,000)")
    args = p.parse_args()
    _keep_freed_memory()
    full = images_per_second(False, args.steps)
    tune = images_per_second(True, args.steps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, 32 px, channels-last")
    print(f"end-to-end training: {full:.0f} images/s ({args.train_images / full / 60:.1f} min per epoch)")
    print(f"attention fine-tune (convolutions frozen): {tune:.0f} images/s")
    e2e, ft = planned_images(args.train_images)
    hours = (e2e / full + ft / tune) / 3600
    print(f"family plan: {e2e / args.train_images:.0f} end-to-end epochs + {ft / args.train_images:.1f} epochs of "
          f"fine-tunes = {hours:.1f} h of training at these speeds (evaluation not included)")
    budget = 4 * 3600 * full / args.train_images
    print(f"4 h at this speed: {budget:.0f} end-to-end epochs for the whole family "
          f"({budget - ft / args.train_images * full / tune:.0f} once the fine-tunes are paid)")


if __name__ == "__main__":
    main()

"""Training speed of the family's network on this machine, and what it means for the family.

Times optimizer steps of the half-width CBAM-ResNet-18 (32 px, batch 512, channels-last, bfloat16
autocast, the optimizer and loss of ``cbam_viz.training.train``) on random images: the plain
network and the canonical CBAM network end-to-end, and an attention fine-tune on frozen
convolutions (what every like-for-like variant trains). Then prices the family's plan
(``cbam_viz.training.family.plan``) at those speeds.

    python bench/train_speed.py [--steps 4] [--train-images 50000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cbam_viz.training.family import plan
from cbam_viz.training.train import build_network, finetuned_names, optimizer_for, parse_args, train_step


def images_per_second(extra: list[str], finetune: bool, steps: int) -> float:
    """Median speed of ``steps`` training steps after two warm-up steps."""
    torch.manual_seed(0)
    args = parse_args(["--data", ".", "--out", ".", "--name", "x", *plan()[0].args, *extra])
    model = build_network(args, 10).to(memory_format=torch.channels_last)
    if finetune:
        trained = finetuned_names(model)
        for name, p in model.named_parameters():
            p.requires_grad_(name in trained)
    optimizer = optimizer_for(model, args)
    x = torch.randn(args.batch_size, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (args.batch_size,))
    times = []
    for i in range(steps + 2):
        t = time.perf_counter()
        train_step(model, optimizer, x, y, args)
        if i >= 2:
            times.append(time.perf_counter() - t)
    return args.batch_size / statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=4, help="timed steps per mode")
    p.add_argument("--train-images", type=int, default=50_000, help="size of the train split (CIFAR-10: 50,000)")
    args = p.parse_args()
    speeds = {
        "plain, end-to-end": images_per_second(["--attention", "none"], False, args.steps),
        "CBAM, end-to-end": images_per_second([], False, args.steps),
        "CBAM, attention fine-tune": images_per_second([], True, args.steps),
    }
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, 32 px, channels-last, bfloat16 autocast")
    for name, speed in speeds.items():
        print(f"{name:<28}{speed:>6.0f} images/s ({args.train_images / speed / 60:.1f} min per epoch)")
    seconds = 0.0
    for step in plan():
        a = list(step.args)
        epochs = int(a[a.index("--epochs") + 1])
        kind = ("CBAM, attention fine-tune" if "--backbone" in a else
                "plain, end-to-end" if "none" in a else "CBAM, end-to-end")
        seconds += epochs * args.train_images / speeds[kind]
    print(f"family plan: {len(plan())} runs, {seconds / 3600:.1f} h of training at these speeds (evaluation not included)")


if __name__ == "__main__":
    main()

"""Overhead of capturing every CBAM block's attention: bare forward vs forward inside AttentionRecorder.

Three ways of running the same model, interleaved in one process (their order alternates each
round, so that machine noise hits all alike): the bare forward; the forward with a hook that does
nothing on each gate module the recorder hooks (what PyTorch's forward hooks cost by themselves);
and the forward inside :class:`~cbam_viz.explain.recorder.AttentionRecorder` (built, entered and
left every pass, as the app does). Prints the medians and the median per-round ratio to the bare
forward. Goal: the recorder <= 1.03.

    python bench/capture_overhead.py [--rounds 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cbam_viz import AttentionRecorder, CBAMConfig, cbam_resnet18, cbam_resnet50
from cbam_viz.explain.recorder import gate_modules


def rounds(model: torch.nn.Module, x: torch.Tensor, n: int) -> dict[str, tuple[float, float]]:
    """Per way of running: (median seconds, median per-round ratio to the bare forward)."""
    gates = [module for _, _, module in gate_modules(model)]

    def hooked() -> None:
        handles = [g.register_forward_hook(lambda *_: None) for g in gates]
        try:
            model(x)
        finally:
            for h in handles:
                h.remove()

    def recorded() -> None:
        with AttentionRecorder(model) as rec:
            model(x)
        assert rec.records, "nothing was recorded"

    ways = {"bare": lambda: model(x), "no-op hooks": hooked, "recorder": recorded}
    for run in ways.values():
        run()
    seconds: dict[str, list[float]] = {k: [] for k in ways}
    for i in range(n):
        for name, run in (list(ways.items()) if i % 2 == 0 else reversed(ways.items())):
            t = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - t)
    return {k: (statistics.median(v), statistics.median(a / b for a, b in zip(v, seconds["bare"])))
            for k, v in seconds.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=30, help="rounds of the three ways, each timed once a round")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(1, 3, 224, 224)
    print(f"torch {torch.__version__}, {args.threads} threads, batch 1, 224 px, eval, no_grad, {args.rounds} rounds")
    print(f"{'model':<16}{'way':<14}{'ms':>8}{'ratio':>8}")
    for name, build in (("CBAM-ResNet-18", cbam_resnet18), ("CBAM-ResNet-50", cbam_resnet50)):
        model = build(CBAMConfig()).eval()
        with torch.no_grad():
            for way, (sec, ratio) in rounds(model, x, args.rounds).items():
                print(f"{name:<16}{way:<14}{sec * 1e3:>8.1f}{ratio:>8.3f}")


if __name__ == "__main__":
    main()

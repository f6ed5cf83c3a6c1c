"""Overhead of capturing every CBAM block's attention: bare forward vs forward inside AttentionRecorder.

Paired and interleaved in one process (bare, captured, bare, captured, ...) so that machine noise
hits both sides alike; prints the median of the per-pair ratios. Goal: <= 1.03.

    python bench/capture_overhead.py [--pairs 30] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cbam_viz import AttentionRecorder, CBAMConfig, cbam_resnet18, cbam_resnet50


def paired(model: torch.nn.Module, x: torch.Tensor, pairs: int) -> tuple[float, float, float]:
    """(median bare seconds, median captured seconds, median per-pair ratio)."""

    def bare() -> float:
        t = time.perf_counter()
        model(x)
        return time.perf_counter() - t

    def captured() -> float:
        t = time.perf_counter()
        with AttentionRecorder(model) as rec:
            model(x)
            records = rec.records
        elapsed = time.perf_counter() - t
        assert records, "nothing was recorded"
        return elapsed

    for _ in range(3):
        bare(), captured()
    b, c, ratios = [], [], []
    for i in range(pairs):
        # alternate which side goes first so a warming or cooling machine favours neither
        tb, tc = (bare(), captured()) if i % 2 == 0 else reversed((captured(), bare()))
        b.append(tb)
        c.append(tc)
        ratios.append(tc / tb)
    return statistics.median(b), statistics.median(c), statistics.median(ratios)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(1, 3, 224, 224)
    print(f"torch {torch.__version__}, {args.threads} threads, batch 1, 224 px, eval, no_grad, {args.pairs} pairs")
    print(f"{'model':<16}{'bare ms':>10}{'captured ms':>14}{'ratio':>8}")
    for name, build in (("CBAM-ResNet-18", cbam_resnet18), ("CBAM-ResNet-50", cbam_resnet50)):
        model = build(CBAMConfig()).eval()
        with torch.no_grad():
            tb, tc, ratio = paired(model, x, args.pairs)
        print(f"{name:<16}{tb * 1e3:>10.1f}{tc * 1e3:>14.1f}{ratio:>8.3f}")


if __name__ == "__main__":
    main()

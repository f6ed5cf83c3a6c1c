"""Time to switch the built-in family's variant with the shared backbone cached (goal <= 100 ms).

Loads every shipped variant once (which reads and verifies the backbone once), then times
``Family.load_variant`` for each variant in turn over several rounds: sha256 check of the
variant's file, reading it, building the network and loading the weights.

    python bench/variant_switch.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cbam_viz.models.registry import Family


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(2)
    family = Family()
    keys = family.keys()
    if not keys:
        raise SystemExit(f"no trained variants under {family.root}")
    t = time.perf_counter()
    family.load(keys[0])
    cold = time.perf_counter() - t
    for key in keys:
        family.load(key)
    times = []
    for _ in range(args.rounds):
        for key in keys:
            t = time.perf_counter()
            family.load(key)
            times.append(time.perf_counter() - t)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"{len(keys)} variants, {len(times)} switches, torch {torch.__version__}, 2 threads")
    print(f"first load (reads the backbone): {cold * 1e3:.1f} ms")
    print(f"switch with backbone cached: p50 {statistics.median(times) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms, "
          f"max {times[-1] * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

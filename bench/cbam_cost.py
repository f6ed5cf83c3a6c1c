"""Where CBAM's share of a CBAM-ResNet-50 forward goes (eval, batch 1, 224 px, 2 threads).

Times every block's CBAM module twice: inside the network's forward (timer hooks) and re-run on
its own saved inputs, over and over, so that they stay in the CPU caches. The gap between the two
is what the gates' passes over the feature maps cost when the maps come from memory, as they do in
a real forward. Also prints the whole forward against the same network built without attention.

    python bench/cbam_cost.py [--runs 25]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cbam_viz.attention import CBAM, CBAMConfig  # noqa: E402
from cbam_viz.resnet import cbam_resnet50  # noqa: E402


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=25)
    args = p.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    model = cbam_resnet50(CBAMConfig(layout="timm")).eval()
    plain = cbam_resnet50(CBAMConfig(attention="none")).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    in_network: dict[str, list[float]] = {}
    inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    started: dict[str, float] = {}

    def before(name: str):
        def hook(module, args):
            if name not in inputs:
                inputs[name] = (args[0].clone(), args[1].clone())
            started[name] = time.perf_counter()
        return hook

    def after(name: str):
        def hook(module, args, output):
            in_network.setdefault(name, []).append(time.perf_counter() - started[name])
        return hook

    gates = {n: m for n, m in model.named_modules() if isinstance(m, CBAM)}
    with torch.no_grad():
        for _ in range(3):
            model(x), plain(x)
        forward, bare = [], []
        for i in range(args.runs):  # interleaved with the network without attention
            for net, out in ((model, forward), (plain, bare)) if i % 2 else ((plain, bare), (model, forward)):
                t = time.perf_counter()
                net(x)
                out.append(time.perf_counter() - t)
        handles = [h for n, m in gates.items()
                   for h in (m.register_forward_pre_hook(before(n)), m.register_forward_hook(after(n)))]
        for _ in range(args.runs):
            model(x)
        for h in handles:
            h.remove()
        cached = {}
        for name, (features, residual) in inputs.items():
            times = []
            for _ in range(args.runs):
                copy = features.clone()  # the module refines its input in place
                t = time.perf_counter()
                gates[name](copy, residual)
                times.append(time.perf_counter() - t)
            cached[name] = times
    print(f"torch {torch.__version__}, 2 threads, batch 1, 224 px, eval, {args.runs} runs, medians")
    print(f"{'block':<16}{'feature map':>18}{'in network ms':>15}{'inputs cached ms':>18}")
    for name, (features, _) in inputs.items():
        shape = "x".join(map(str, features.shape[1:]))
        print(f"{name:<16}{shape:>18}{median_ms(in_network[name]):>15.2f}{median_ms(cached[name]):>18.2f}")
    total_net = sum(median_ms(v) for v in in_network.values())
    total_cached = sum(median_ms(v) for v in cached.values())
    print(f"{'all 16 CBAMs':<34}{total_net:>15.2f}{total_cached:>18.2f}")
    print(f"forward: with CBAM {median_ms(forward):.1f} ms, same network without attention {median_ms(bare):.1f} ms "
          f"(+{median_ms(forward) - median_ms(bare):.1f} ms)")


if __name__ == "__main__":
    main()

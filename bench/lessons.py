"""Time of the lesson instruments on the 2 cores: step-through of one block (goal <= 0.3 s), the
knock-out table over every block of the built-in model (<= 1 s), Grad-CAM and Grad-CAM++ (<= 3x the
forward pass), each the median of several runs on one image; and the faithfulness checks, run once
as the page runs them: deletion + insertion curves of 50 steps for one map (goal <= 2 s built-in,
<= 20 s ResNet-50), the page's default three maps (Ms, Grad-CAM, random), and the cascading
randomisation.

    python bench/lessons.py [--family assets/family] [--runs 10] [--imagenet]

``--imagenet`` also times the ImageNet CBAM-ResNet-50 layout (random weights: the time does not
depend on them) at 224 px.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from cbam_viz.explain.analysis import card_prediction
from cbam_viz.explain.faithfulness import cascading_randomisation, default_maps, deletion_insertion
from cbam_viz.explain.gradcam import grad_cam
from cbam_viz.explain.knockouts import knockout_table
from cbam_viz.explain.steps import cbam_modules, step_through
from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.registry import Family, VariantKey, default_root
from cbam_viz.models.resnet import cbam_resnet50


def median_s(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def once(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def report(name: str, model: torch.nn.Module, x: torch.Tensor, runs: int, card: dict) -> None:
    blocks = list(cbam_modules(model))
    block = blocks[len(blocks) // 2]
    with torch.no_grad():
        forward = median_s(lambda: model(x), runs)
    rows = [("forward pass", forward, ""),
            (f"step-through of {block}", median_s(lambda: step_through(model, block, x), runs), "goal <= 0.3 s"),
            (f"knock-out table, {len(blocks)} blocks (Ms := its mean)",
             median_s(lambda: knockout_table(model, x, "spatial-mean"), runs), "goal <= 1 s (built-in)")]
    for method in ("gradcam", "gradcam++"):
        t = median_s(lambda: grad_cam(model, x, block, method=method), runs)
        rows.append((f"{method} at {block}", t, f"{t / forward:.1f}x the forward pass; goal <= 3x"))

    def predict(b):  # as the page predicts: the mirror mean where the card says so
        return card_prediction(model, b, model(b), card).softmax(1)

    ms = step_through(model, block, x).spatial.weights
    page = default_maps(x.shape[-1])
    for names, goal in ((["Ms"], "goal <= 2 s built-in, <= 20 s ResNet-50"), (page, "the page's default maps")):
        ticks = []

        def curves():  # a Grad-CAM map is computed in the run, as the page does
            maps = {"Ms": ms, "Grad-CAM": grad_cam(model, x, block)[0], "random": None}
            return deletion_insertion(predict, x, {n: maps[n] for n in names}, 0, steps=50, progress=ticks.append)
        t = once(curves)
        rows.append((f"deletion + insertion, 50 steps: {', '.join(names)}", t, f"{goal} ({len(ticks)} progress updates)"))
    rows.append((f"cascading randomisation, {len(blocks)} blocks", once(lambda: cascading_randomisation(model, x)), ""))
    print(f"\n{name}, input {tuple(x.shape)}, {torch.get_num_threads()} threads, median of {runs} (checks: one run)")
    for what, seconds, note in rows:
        print(f"  {what:<48}{1000 * seconds:9.1f} ms  {note}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--family", type=Path, default=default_root())
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--imagenet", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(2)
    family = Family(args.family)
    model, card = family.load(family.resolve(VariantKey()))  # the canonical configuration
    size = card["preprocessing"]["input_size"]
    report(f"{card['name']} ({args.family})", model, torch.randn(1, 3, size, size), args.runs, card)
    if args.imagenet:
        torch.manual_seed(0)
        resnet50 = cbam_resnet50(CBAMConfig(layout="official"), num_classes=1000).eval()
        report("CBAM-ResNet-50 (ImageNet layout)", resnet50, torch.randn(1, 3, 224, 224), max(3, args.runs // 3),
               {"preprocessing": {}})  # one view


if __name__ == "__main__":
    main()

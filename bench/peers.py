"""Speed against the peers, measured in one run (eval, batch 1, 224 px, 2 threads, paired and interleaved).

1. our CBAM-ResNet-50 forward vs torchvision's bare ResNet-50 (the price of attention);
2. ours vs timm's CBAM ResNet-50 carrying identical weights (goal <= 1.0x);
3. capturing every block's attention: our AttentionRecorder vs timm.utils.AttentionExtract on the
   timm model, both hooking the gates (goal <= 1.0x);
4. upload -> full first view (decode, predictions, the block's charts, every block) for the built-in model and for
   the ResNet-50 at 224 px.

    python bench/peers.py [--pairs 60] [--rounds 7] [--ops]

``--ops`` adds, for the two CBAM-ResNet-50s, each operator's own CPU time per forward pass
(torch.profiler, 20 passes), where the two differ by more than 0.1 ms: where the time goes.

A single round's ratio moves by a few per cent from run to run, so the
comparisons run ``--rounds`` times and the median of the rounds' ratios is the figure.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

import numpy as np
import timm
import torch
from PIL import Image
from timm.utils import AttentionExtract
from torchvision.models import resnet50

from cbam_viz.explain.recorder import AttentionRecorder
from cbam_viz.render import charts, overlays, tables
from cbam_viz.explain.analysis import analyse
from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.checkpoints import load_state, to_native
from cbam_viz.models.imagenet import IMAGENET_PREPROCESSING, imagenet_classes
from cbam_viz.app.images import load_image
from cbam_viz.models.registry import Family, default_root
from cbam_viz.models.resnet import cbam_resnet50


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def paired(a, b, pairs: int) -> tuple[float, float, float]:
    """Median seconds of a and b, and the median of per-pair ratios b/a; order alternates each pair."""
    for _ in range(3):
        a(), b()
    ta, tb, ratios = [], [], []
    for i in range(pairs):
        if i % 2:
            y, x = timed(b), timed(a)
        else:
            x, y = timed(a), timed(b)
        ta.append(x)
        tb.append(y)
        ratios.append(y / x)
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


def operator_ms(model, x, passes: int = 20) -> dict[str, float]:
    """Each aten operator's own CPU milliseconds per forward pass of ``model`` on ``x``."""
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(passes):
            model(x)
    return {e.key: e.self_cpu_time_total / 1e3 / passes for e in prof.key_averages() if e.key.startswith("aten::")}


def first_view(model, card, image_bytes: bytes) -> None:
    """What the app computes for a new upload: decode, analyse, the block's charts and every block's maps."""
    result = analyse(model, load_image(image_bytes), card)
    jpegs = [overlays.encode_jpeg(overlays.overlay(result.view, b.spatial_map)) for b in result.blocks]  # every block
    block = result.blocks[-1]
    charts.spatial_map(jpegs[-1], block.spatial_map, "jet", "relative").to_dict()
    charts.channel_bars(tables.channel_rows(block.channel_weights), block.name).to_dict()
    charts.weight_distribution(result.blocks).to_dict()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=60)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--ops", action="store_true", help="also each operator's time in both CBAM-ResNet-50s")
    args = p.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    bare = resnet50().eval()
    theirs = timm.create_model("resnet50", pretrained=False, block_args=dict(attn_layer="cbam")).eval()
    ours = cbam_resnet50(CBAMConfig(layout="timm")).eval()
    load_state(ours, to_native(theirs.state_dict(), "timm"))
    gates = [n for n, m in theirs.named_modules() if n.endswith((".se.channel.gate", ".se.spatial.gate"))]
    extract = AttentionExtract(theirs, names=gates, method="hook")

    def ours_captured():
        with AttentionRecorder(ours) as rec:
            ours(x)
        assert len(rec.records) == 16

    def theirs_captured():
        assert len(extract(x)) == 32

    print(f"torch {torch.__version__}, timm {timm.__version__}, 2 threads, batch 1, 224 px, eval, no_grad, "
          f"{args.pairs} pairs a round, {args.rounds} rounds")
    print(f"{'comparison':<58}{'A ms':>8}{'B ms':>8}{'B/A':>7}")
    ratios: dict[str, list[float]] = {}
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-4)
        rows = [
            ("A torchvision ResNet-50 (no attention), B our CBAM-ResNet-50", lambda: bare(x), lambda: ours(x)),
            ("A timm CBAM ResNet-50, B ours (identical weights)", lambda: theirs(x), lambda: ours(x)),
            ("A timm AttentionExtract, B our AttentionRecorder", theirs_captured, ours_captured),
        ]
        for _ in range(args.rounds):
            for name, a, b in rows:
                ta, tb, ratio = paired(a, b, args.pairs)
                ratios.setdefault(name, []).append(ratio)
                print(f"{name:<58}{ta * 1e3:>8.1f}{tb * 1e3:>8.1f}{ratio:>7.3f}")
    print(f"\nmedian B/A over the {args.rounds} rounds")
    for name, values in ratios.items():
        print(f"  {name:<56}{statistics.median(values):>7.3f}  (rounds: {', '.join(f'{r:.3f}' for r in values)})")
    if args.ops:
        with torch.no_grad():
            t_ops, o_ops = operator_ms(theirs, x), operator_ms(ours, x)
        print("\noperators whose own time differs by > 0.1 ms a pass (timm ms, ours ms; convolutions vary run to run)")
        for op in sorted(set(t_ops) | set(o_ops), key=lambda k: -abs(o_ops.get(k, 0) - t_ops.get(k, 0))):
            if abs(o_ops.get(op, 0) - t_ops.get(op, 0)) > 0.1:
                print(f"  {op:<40}{t_ops.get(op, 0):>8.2f}{o_ops.get(op, 0):>8.2f}")

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(buf, "JPEG")
    upload = buf.getvalue()
    imagenet_card = {"classes": imagenet_classes(), "preprocessing": IMAGENET_PREPROCESSING}
    family = Family(default_root())  # CBAM_VIZ_FAMILY or the built-in family
    targets = [("ResNet-50 CBAM, ImageNet, 224 px", ours, imagenet_card)]
    if family.keys():
        model, card = family.load_variant()
        targets.insert(0, (f"built-in {card['name']}, 32 px", model, card))
    print("\nupload -> full first view (decode, predictions, the block's charts, every block), median of 10")
    for name, model, card in targets:
        first_view(model, card, upload)
        times = [timed(lambda: first_view(model, card, upload)) for _ in range(10)]
        print(f"  {name:<40}{statistics.median(times) * 1e3:>8.1f} ms")


if __name__ == "__main__":
    main()

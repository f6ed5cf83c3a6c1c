"""How each block's attention usually behaves over a data set: the spread of its maps and weights.

A single map is hard to read without knowing what is usual for its block: a spatial map spanning
0.97-0.99 is nearly flat, and that is either this image's quirk or how the block always works. The
training code measures, per block over the whole test split, the distribution of each image's
spatial-map range, minimum, maximum and mean and of its channel weights' range and mean, and writes
them into the model card; the app quotes them beside the map ("this block's maps usually span ...").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where statistics are measured: quoting them (the first page) needs none
    from torch import Tensor, nn

FLAT_RANGE = 0.05  # a map whose values span less than this is "nearly flat"
QUANTILES = {"p10": 10, "p50": 50, "p90": 90}


def _summary(values: list[Tensor]) -> dict[str, float]:
    """The 10th, 50th and 90th percentile of per-image values."""
    v = np.concatenate([t.float().numpy() for t in values])
    return {k: round(float(np.percentile(v, q)), 4) for k, q in QUANTILES.items()}


def _per_image(t: Tensor) -> dict[str, Tensor]:
    """Each image's minimum, maximum, range and mean of a (B, ...) tensor of gate outputs."""
    flat = t.flatten(1).float()
    lo, hi = flat.amin(1), flat.amax(1)
    return {"min": lo, "max": hi, "range": hi - lo, "mean": flat.mean(1)}


def attention_statistics(model: nn.Module, batches) -> dict:
    """Per block, percentiles over images of the spatial maps' and channel weights' spread.

    ``batches`` yields normalised input tensors (B, 3, H, W); each image is one forward pass (the
    image's own pass, as the app shows it). Returns ``{"images": N, "flat_below": FLAT_RANGE,
    "blocks": {block: {"spatial": {...}, "channel": {...}}}}`` where each statistic ("range", "min",
    "max", "mean") maps to its p10/p50/p90 over images, and "flat_fraction" is the share of images
    whose spatial map spans less than ``FLAT_RANGE``. A network without attention gets no blocks.
    """
    import torch

    from .recorder import AttentionRecorder

    was_training = model.training
    model.eval()
    collected: dict[str, dict[str, dict[str, list[Tensor]]]] = {}
    images = 0
    try:
        with torch.no_grad(), AttentionRecorder(model) as rec:
            for x in batches:
                rec.clear()
                model(x)
                images += len(x)
                for r in rec.records:
                    block = collected.setdefault(r.name, {})
                    for kind, t in (("spatial", r.spatial_map), ("channel", r.channel_weights)):
                        if t is not None:
                            for stat, v in _per_image(t).items():
                                block.setdefault(kind, {}).setdefault(stat, []).append(v.cpu())
    finally:
        model.train(was_training)
    blocks = {}
    for name, kinds in collected.items():
        blocks[name] = {kind: {stat: _summary(v) for stat, v in stats.items()} for kind, stats in kinds.items()}
        if "spatial" in kinds:
            ranges = np.concatenate([t.float().numpy() for t in kinds["spatial"]["range"]])
            blocks[name]["spatial"]["flat_fraction"] = round(float(np.mean(ranges < FLAT_RANGE)), 4)
    return {"images": images, "flat_below": FLAT_RANGE, "blocks": blocks}


def usual_spread(statistics: dict | None, block: str, kind: str = "spatial") -> str:
    """One sentence on what is usual for ``block`` over the card's test images, or "" if not measured."""
    if not statistics or block not in statistics.get("blocks", {}) or kind not in statistics["blocks"][block]:
        return ""
    s, n = statistics["blocks"][block][kind], statistics["images"]
    if kind == "channel":
        return (f"Over {n:,} test images this block's channel weights usually average {s['mean']['p50']:.2f} "
                f"and span {s['range']['p50']:.2f} (median; 80% of images between {s['range']['p10']:.2f} "
                f"and {s['range']['p90']:.2f}).")
    flat = s["flat_fraction"]
    return (f"Over {n:,} test images this block's maps usually span {s['min']['p50']:.2f} to "
            f"{s['max']['p50']:.2f} (median range {s['range']['p50']:.3f}; 80% of images between "
            f"{s['range']['p10']:.3f} and {s['range']['p90']:.3f}); "
            f"{100 * flat:.0f}% of them are nearly flat (range under {statistics['flat_below']}).")

"""Renderers: plain arrays in, images, charts, statistics and export files out. No torch here."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from .results import Analysis, BlockAttention

COLORMAPS = ("jet", "inferno", "viridis", "magma", "gray")


@dataclass(frozen=True)
class WeightStats:
    """Summary of one block's channel weights. ``entropy`` is the Shannon entropy of the weights
    normalised to sum to 1, divided by log(C): 1.0 means perfectly even weights, lower means
    attention concentrated on fewer channels."""

    mean: float
    std: float
    min: float
    max: float
    entropy: float


def weight_stats(weights: np.ndarray) -> WeightStats:
    """Mean, standard deviation, extremes and normalised entropy of channel weights (C,)."""
    w = np.asarray(weights, dtype=np.float64)
    p = w / w.sum()
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum() / np.log(len(w))) if len(w) > 1 else 1.0
    return WeightStats(float(w.mean()), float(w.std()), float(w.min()), float(w.max()), entropy)


def upsample(spatial_map: np.ndarray, size: int, smooth: bool) -> np.ndarray:
    """A (h, w) map resized to (size, size): nearest (shows the real grid) or bicubic (smooth)."""
    im = Image.fromarray(np.asarray(spatial_map, dtype=np.float32), mode="F")
    return np.asarray(im.resize((size, size), Image.BICUBIC if smooth else Image.NEAREST), dtype=np.float32)


def value_range(spatial_map: np.ndarray, scale: str) -> tuple[float, float]:
    """Colour range: ``absolute`` is the sigmoid's full [0, 1]; ``relative`` the map's own min..max."""
    if scale == "absolute":
        return 0.0, 1.0
    lo, hi = float(spatial_map.min()), float(spatial_map.max())
    return (lo, hi) if hi > lo else (lo, lo + 1e-6)


def colorize(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    """Map values to RGB uint8 with a matplotlib colormap over [vmin, vmax]."""
    t = np.clip((values - vmin) / (vmax - vmin), 0.0, 1.0)
    return (colormaps[cmap](t)[..., :3] * 255).astype(np.uint8)


def overlay(view: np.ndarray, spatial_map: np.ndarray, cmap: str = "jet", opacity: float = 0.5,
            smooth: bool = True, scale: str = "relative") -> np.ndarray:
    """The spatial map coloured and blended over the image the model saw; opacity 1 shows the map alone."""
    values = upsample(spatial_map, view.shape[0], smooth)
    colour = colorize(values, cmap, *value_range(spatial_map, scale)).astype(np.float32)
    return (opacity * colour + (1 - opacity) * view.astype(np.float32)).round().astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def colorbar(cmap: str, vmin: float, vmax: float, height: int = 384, width: int = 100) -> np.ndarray:
    """A vertical colorbar image labelled with the real map values at 5 ticks."""
    bar = colorize(np.linspace(vmax, vmin, height)[:, None].repeat(20, 1), cmap, vmin, vmax)
    canvas = Image.new("RGB", (width, height + 16), "white")
    canvas.paste(Image.fromarray(bar), (4, 8))
    draw = ImageDraw.Draw(canvas)
    font = _font(13)
    decimals = max(2, int(np.ceil(-np.log10(vmax - vmin))) + 2)  # enough to tell the ticks apart
    for i in range(5):
        y = 8 + round(i * (height - 1) / 4)
        draw.line([(24, y), (29, y)], fill="black")
        draw.text((32, y - 7), f"{vmax - i * (vmax - vmin) / 4:.{decimals}f}", fill="black", font=font)
    return np.asarray(canvas)


def grid(analysis: Analysis, cmap: str = "jet", opacity: float = 0.5, smooth: bool = True,
         scale: str = "relative", tile: int = 160) -> np.ndarray:
    """Every block's spatial map over the image: one row per stage, blocks left to right, labelled."""
    stages: dict[str, list[BlockAttention]] = {}
    for b in analysis.blocks:
        if b.spatial_map is not None:
            stages.setdefault(b.stage, []).append(b)
    if not stages:
        raise ValueError("this model has no spatial attention to show")
    cols = max(len(v) for v in stages.values())
    label_h, pad = 22, 6
    view = np.asarray(Image.fromarray(analysis.view).resize((tile, tile), Image.BICUBIC))
    canvas = Image.new("RGB", (pad + cols * (tile + pad), len(stages) * (tile + label_h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(14)
    for row, blocks in enumerate(stages.values()):
        y = pad + row * (tile + label_h + pad)
        for col, b in enumerate(blocks):
            x = pad + col * (tile + pad)
            canvas.paste(Image.fromarray(overlay(view, b.spatial_map, cmap, opacity, smooth, scale)), (x, y + label_h))
            h, w = b.spatial_map.shape
            draw.text((x, y + 3), f"{b.name}  {h}x{w}", fill="black", font=font)
    return np.asarray(canvas)


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of an RGB uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def side_by_side(*images: np.ndarray, pad: int = 8) -> np.ndarray:
    """Images of possibly different heights placed in a row on white."""
    height = max(i.shape[0] for i in images)
    canvas = Image.new("RGB", (sum(i.shape[1] for i in images) + pad * (len(images) - 1), height), "white")
    x = 0
    for i in images:
        canvas.paste(Image.fromarray(i), (x, 0))
        x += i.shape[1] + pad
    return np.asarray(canvas)


def channel_rows(weights: np.ndarray, sort: bool = False, top_k: int = 10) -> list[dict]:
    """Channel weights as table rows: channel index, weight, rank (1 = largest) and a top-k flag;
    in channel order, or in rank order when ``sort``."""
    w = np.asarray(weights, dtype=np.float64)
    rank = np.empty(len(w), dtype=int)
    rank[np.argsort(-w, kind="stable")] = np.arange(1, len(w) + 1)
    rows = [{"channel": c, "weight": float(w[c]), "rank": int(rank[c]), "top_k": bool(rank[c] <= top_k)}
            for c in range(len(w))]
    return sorted(rows, key=lambda r: r["rank"]) if sort else rows


def channel_csv(rows: list[dict]) -> str:
    """:func:`channel_rows` as CSV in channel order: channel, weight, rank, top_k."""
    out = io.StringIO()
    writer = csv.DictWriter(out, ["channel", "weight", "rank", "top_k"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["channel"]))
    return out.getvalue()


def channel_chart(rows: list[dict], title: str) -> dict:
    """Vega-Lite spec of one block's channel weights as bars, the top-k highlighted (data inline)."""
    # sorted: the bars in rank order, labelled by rank (each bar's channel is in its tooltip)
    by_rank = all(a["rank"] < b["rank"] for a, b in zip(rows, rows[1:]))
    x = {"field": "rank", "title": "rank (1 = largest weight)"} if by_rank else {"field": "channel", "title": "channel"}
    return {
        "title": title,
        "height": 260,
        "data": {"values": rows},
        "mark": "bar",
        "encoding": {
            "x": {**x, "type": "ordinal", "axis": {"labels": len(rows) <= 64}},
            "y": {"field": "weight", "type": "quantitative", "title": "channel weight Mc", "scale": {"domain": [0, 1]}},
            "color": {"condition": {"test": "datum.top_k", "value": "#d62728"}, "value": "#4c78a8"},
            "tooltip": [{"field": "channel", "type": "quantitative"},
                        {"field": "weight", "type": "quantitative", "format": ".4f"},
                        {"field": "rank", "type": "quantitative"}],
        },
    }


def distribution_chart(analysis: Analysis, bins: int = 20) -> dict:
    """Vega-Lite spec of every block's channel weights at a glance: per block, the share of channels
    per weight bin (data inline)."""
    rows = []
    edges = np.linspace(0, 1, bins + 1)
    for b in analysis.blocks:
        if b.channel_weights is None:
            continue
        counts, _ = np.histogram(b.channel_weights, bins=edges)
        for lo, c in zip(edges[:-1], counts / len(b.channel_weights)):
            rows.append({"block": b.name, "weight from": round(float(lo), 3), "share of channels": float(c)})
    if not rows:
        raise ValueError("this model has no channel attention to show")
    return {
        "height": {"step": 24},  # one 24 px row per block, so every block keeps its label
        "data": {"values": rows},
        "mark": "rect",
        "encoding": {
            "x": {"field": "weight from", "type": "ordinal", "title": "channel weight (bin start)"},
            "y": {"field": "block", "type": "ordinal", "sort": None, "title": None},
            "color": {"field": "share of channels", "type": "quantitative", "scale": {"scheme": "blues"}},
            "tooltip": [{"field": "block", "type": "nominal"}, {"field": "weight from", "type": "quantitative"},
                        {"field": "share of channels", "type": "quantitative", "format": ".1%"}],
        },
    }


def points(delta: float) -> str:
    """A change of probability in percentage points, signed, one decimal: ``+1.2``; ``0.0`` when it
    rounds to zero (never ``-0.0``)."""
    text = f"{100 * delta:+.1f}"
    return "0.0" if float(text) == 0 else text


MARKDOWN_SPECIAL = re.compile(r"[\\`*_\[\]<>|$#~]")  # escaped in table cells: a class name is shown as typed


def markdown_table(rows: list[dict], index: str | None = None) -> str:
    """``rows`` (dicts with the same keys) as a Markdown table; with ``index``, a first column of
    that name numbering the rows from 1. Markdown tables need no data-grid code in the browser."""
    if not rows:
        raise ValueError("a table needs at least one row")
    header = ([index] if index else []) + list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for i, row in enumerate(rows, 1):
        cells = ([str(i)] if index else []) + [MARKDOWN_SPECIAL.sub(r"\\\g<0>", str(v)) for v in row.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def predictions_json(analysis: Analysis, config: dict) -> str:
    """The configuration and predictions as JSON, for export."""
    return json.dumps({"configuration": config,
                       "predictions": [{"class": c, "probability": round(p, 6)} for c, p in analysis.top]}, indent=2)

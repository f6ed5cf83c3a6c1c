"""Renderers: plain arrays in, images, charts, statistics and export files out. No torch here."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import colormaps
from .results import Analysis, BlockAttention

COLORMAPS = ("jet", "inferno", "viridis", "magma", "gray")  # the overlay's choices


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
    """Map values to RGB uint8 with a matplotlib colormap (cbam_viz.colormaps) over [vmin, vmax]."""
    return colormaps.colorize((values - vmin) / (vmax - vmin), cmap)


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


BAR, TOP_K = (76, 120, 168), (214, 39, 40)  # a channel's bar, and one of the top-k


def _tick_below(draw: ImageDraw.ImageDraw, x: float, y: float, label: str, font: ImageFont.ImageFont) -> None:
    """A tick mark down from an x axis at (x, y), ``label`` centred under it."""
    draw.line([(x, y), (x, y + 4)], fill="black")
    draw.text((x - font.getlength(label) / 2, y + 5), label, fill="black", font=font)


def channel_bars(rows: list[dict], title: str, width: int = 640, height: int = 300) -> np.ndarray:
    """One block's channel weights (:func:`channel_rows`) as bars on [0, 1], the top-k in red: in
    channel order, or in rank order (labelled by rank) when the rows are sorted. Drawn here rather
    than by a chart library in the browser: the first page then loads no chart code (about 30
    script files) and shows the chart as soon as its image arrives."""
    by_rank = all(a["rank"] < b["rank"] for a, b in zip(rows, rows[1:]))
    left, right, top, bottom = 46, 22, 30, 40
    pw, ph = width - left - right, height - top - bottom
    # a palette image, colour 0 white, 1 grid, 2 a bar, 3 a top-k bar
    pixels = np.zeros((height, width), np.uint8)
    grid_rows = [top + ph - round(i * ph / 4) for i in range(5)]  # the weight axis: 0, 0.25, ..., 1
    pixels[grid_rows, left:left + pw] = 1
    # each pixel column shows the tallest bar that falls in it (red if a top-k one does); a gap
    # separates bars that are 4 pixels wide or more
    step = pw / len(rows)
    weight = np.clip([r["weight"] for r in rows], 0.0, 1.0)
    top_k = np.array([r["top_k"] for r in rows])
    first = np.minimum((np.arange(pw) / step).astype(int), len(rows) - 1)  # the first bar in each column
    last = np.minimum(((np.arange(pw) + 1) / step - 1e-9).astype(int), len(rows) - 1)
    heights = np.maximum.reduceat(weight, first) if step < 1 else weight[first]
    red = np.logical_or.reduceat(top_k, first) if step < 1 else top_k[first]
    shown = (heights * ph).round() > np.arange(ph)[::-1, None]  # (ph, pw): inside a bar
    if step >= 4:
        shown &= (np.arange(pw) + 1 < (last + 1) * step - 0.5) | (last != first)
    plot = pixels[top:top + ph, left:left + pw]
    plot[...] = np.where(shown, (2 + red).astype(np.uint8), plot)
    canvas = Image.fromarray(pixels, "P")
    canvas.putpalette([255, 255, 255, 220, 220, 220, *BAR, *TOP_K])
    canvas = canvas.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    font = _font(15)
    draw.text((left, 5), title, fill="black", font=_font(17))
    for i, y in enumerate(grid_rows):
        draw.text((4, y - 9), f"{i / 4:.2f}", fill="black", font=font)
    draw.line([(left, top + ph), (left + pw, top + ph)], fill="black")
    for i in sorted({0, len(rows) // 4, len(rows) // 2, 3 * len(rows) // 4, len(rows) - 1}):
        x = left + (i + 0.5) * step
        label = str(rows[i]["rank"] if by_rank else rows[i]["channel"])
        _tick_below(draw, x, top + ph, label, font)
    axis = "rank (1 = largest weight)" if by_rank else "channel"
    draw.text((left + (pw - font.getlength(axis)) / 2, height - 19), axis, fill="black", font=font)
    return np.asarray(canvas)


def weight_histograms(analysis: Analysis, bins: int = 20) -> tuple[list[str], np.ndarray]:
    """Per block with channel attention, the share of its channels in each of ``bins`` equal weight
    bins on [0, 1]: (block names, shares (blocks, bins), each row summing to 1)."""
    blocks = [b for b in analysis.blocks if b.channel_weights is not None]
    if not blocks:
        raise ValueError("this model has no channel attention to show")
    edges = np.linspace(0, 1, bins + 1)
    shares = np.stack([np.histogram(b.channel_weights, bins=edges)[0] / len(b.channel_weights) for b in blocks])
    return [b.name for b in blocks], shares


def weight_distribution(analysis: Analysis, bins: int = 20, width: int = 640) -> np.ndarray:
    """Every block's channel weights at a glance (:func:`weight_histograms`): one row per block,
    one cell per weight bin, darker where more of the block's channels fall, with a legend."""
    names, shares = weight_histograms(analysis, bins)
    font, row, top = _font(15), 24, 6
    label = round(max(font.getlength(n) for n in names)) + 10
    cell = (width - label - 20) // bins
    plot_bottom = top + row * len(names)
    canvas = Image.new("RGB", (width, plot_bottom + 92), "white")
    top_share = float(shares.max()) or 1.0
    cells = Image.fromarray(colorize(shares, "Blues", 0.0, top_share)).resize((bins * cell, row * len(names)), Image.NEAREST)
    canvas.paste(cells, (label, top))
    draw = ImageDraw.Draw(canvas)
    for r, name in enumerate(names):  # white lines between the cells
        draw.line([(label, top + (r + 1) * row - 1), (label + bins * cell, top + (r + 1) * row - 1)], fill="white", width=2)
        draw.text((4, top + r * row + 3), name, fill="black", font=font)
    for c in range(1, bins):
        draw.line([(label + c * cell - 1, top), (label + c * cell - 1, plot_bottom)], fill="white")
    for t in (0.0, 0.25, 0.5, 0.75, 1.0):  # the weight axis
        x = label + t * bins * cell
        _tick_below(draw, x, plot_bottom, f"{t:.2f}", font)
    axis = "channel weight Mc"
    draw.text((label + (bins * cell - font.getlength(axis)) / 2, plot_bottom + 22), axis, fill="black", font=font)
    legend_y = plot_bottom + 50  # the colour scale: share of a block's channels in a bin
    ramp = colorize(np.linspace(0, top_share, 200)[None, :].repeat(10, 0), "Blues", 0.0, top_share)
    canvas.paste(Image.fromarray(ramp), (label, legend_y))
    draw.text((label, legend_y + 13), "0%", fill="black", font=font)
    draw.text((label + 200 - font.getlength(f"{top_share:.0%}"), legend_y + 13), f"{top_share:.0%}", fill="black", font=font)
    draw.text((label + 212, legend_y - 3), "share of the block's channels in a bin", fill="black", font=font)
    return np.asarray(canvas)


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

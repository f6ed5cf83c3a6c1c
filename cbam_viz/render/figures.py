"""Figures people take away (slides, reports): matplotlib, as PNG or SVG.

Built with ``matplotlib.figure.Figure`` (no pyplot state, safe in the app's threads), sized and
lettered to be read on a projected slide. Colour bars show the maps' real values.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib import rc_context
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from ..explain.results import Analysis, BlockAttention
from .overlays import overlay, value_range
from .tables import channel_rows

FORMATS = ("png", "svg")
STYLE = {"font.size": 13, "axes.titlesize": 14, "svg.fonttype": "none"}  # legible on a slide; SVG text stays text


def _map_panel(fig: Figure, ax, view: np.ndarray, spatial_map: np.ndarray, cmap: str, opacity: float,
               smooth: bool, scale: str, title: str) -> None:
    ax.imshow(overlay(view, spatial_map, cmap, opacity, smooth, scale))
    ax.set_title(title)
    ax.set_axis_off()
    vmin, vmax = value_range(spatial_map, scale)
    fig.colorbar(ScalarMappable(Normalize(vmin, vmax), cmap), ax=ax, fraction=0.046, pad=0.04, label="Ms")


def block_figure(view: np.ndarray, block: BlockAttention, cmap: str = "jet", opacity: float = 0.5,
                 smooth: bool = True, scale: str = "relative", top_k: int = 10, sort: bool = False) -> Figure:
    """One block: its channel weights as bars (top-k in red) and its spatial map over the image,
    with a colour bar in the map's values."""
    panels = [p for p in (block.channel_weights, block.spatial_map) if p is not None]
    if not panels:
        raise ValueError(f"block {block.name} has no attention to draw")
    with rc_context(STYLE):
        fig = Figure(figsize=(6.5 * len(panels), 5.2), layout="constrained")
        _draw_block(fig, fig.subplots(1, len(panels), squeeze=False)[0], view, block, cmap, opacity, smooth, scale,
                    top_k, sort)
    return fig


def _draw_block(fig, axes, view, block, cmap, opacity, smooth, scale, top_k, sort) -> None:
    if block.channel_weights is not None:
        ax, rows = axes[0], channel_rows(block.channel_weights, sort, top_k)
        ax.bar(np.arange(len(rows)), [r["weight"] for r in rows], width=1.0,
               color=["#d62728" if r["top_k"] else "#4c78a8" for r in rows])
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.5, len(rows) - 0.5)
        ax.set_xlabel("rank (1 = largest weight)" if sort else "channel")
        if sort:
            ax.xaxis.set_major_formatter(lambda x, _: f"{int(x) + 1}")
        ax.set_ylabel("channel weight Mc")
        ax.set_title(f"{block.name}: channel weights (top-{top_k} in red)")
    if block.spatial_map is not None:
        h, w = block.spatial_map.shape
        _map_panel(fig, axes[-1], view, block.spatial_map, cmap, opacity, smooth, scale,
                   f"{block.name}: spatial map Ms ({h}x{w})")


def grid_figure(analysis: Analysis, cmap: str = "jet", opacity: float = 0.5, smooth: bool = True,
                scale: str = "relative") -> Figure:
    """Every block's spatial map over the image: one row per stage, blocks left to right, each with
    its colour bar."""
    stages = analysis.spatial_stages()
    if not stages:
        raise ValueError("this model has no spatial attention to show")
    cols = max(len(v) for v in stages.values())
    with rc_context(STYLE):
        fig = Figure(figsize=(4.2 * cols, 3.6 * len(stages)), layout="constrained")
        for row, blocks in zip(fig.subplots(len(stages), cols, squeeze=False), stages.values()):
            for ax in row[len(blocks):]:
                ax.set_axis_off()
            for ax, b in zip(row, blocks):
                h, w = b.spatial_map.shape
                _map_panel(fig, ax, analysis.view, b.spatial_map, cmap, opacity, smooth, scale, f"{b.name} ({h}x{w})")
    return fig


def specificity_figure(blocks: list[str], values: list[float]) -> Figure:
    """Each block's class specificity (:mod:`cbam_viz.explain.profiles`), blocks from early to late."""
    with rc_context(STYLE):
        fig = Figure(figsize=(max(6.0, 0.9 * len(blocks)), 4.2), layout="constrained")
        ax = fig.subplots()
        ax.bar(range(len(blocks)), np.nan_to_num(values), color="#4c78a8")
        ax.set_xticks(range(len(blocks)), blocks, rotation=45 if len(blocks) > 8 else 0)
        ax.set_ylim(0, 1)
        ax.set_xlabel("block (early to late)")
        ax.set_ylabel("class specificity")
        ax.set_title("Share of channel-weight variance between classes")
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 150) -> bytes:
    """The figure encoded as ``png`` or ``svg``."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    buf = io.BytesIO()
    with rc_context(STYLE):
        fig.savefig(buf, format=fmt, dpi=dpi)
    return buf.getvalue()

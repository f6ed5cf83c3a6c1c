"""Interactive charts for the page: Vega-Lite specifications built with Altair.

Every chart carries tooltips with the exact values; the channel bars carry a point selection
named :data:`CHANNEL_SELECTION` that the app reads back (``on_select="rerun"``).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from ..explain.results import BlockAttention
from .overlays import colorize, value_range
from .tables import weight_histograms

CHANNEL_SELECTION = "channel"
TOP_K_COLOUR, OTHER_COLOUR = "#d62728", "#4c78a8"


def channel_bars(rows: list[dict], title: str, selected: int | None = None) -> alt.Chart:
    """One block's channel weights (:func:`cbam_viz.render.tables.channel_rows`) as bars on [0, 1]:
    the top-k in red, in channel order or (rows sorted) in rank order; a click selects a channel."""
    frame = pd.DataFrame(rows)
    by_rank = bool((frame["rank"].diff().dropna() > 0).all()) and len(frame) > 1
    pick = alt.selection_point(name=CHANNEL_SELECTION, fields=["channel"], on="click", clear="dblclick",
                               value=None if selected is None else [{"channel": selected}])
    axis = alt.X("rank:O" if by_rank else "channel:O", title="rank (1 = largest weight)" if by_rank else "channel",
                 axis=alt.Axis(labelOverlap="greedy", labelAngle=0))
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=axis,
            y=alt.Y("weight:Q", title="channel weight Mc", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("top_k:N", title="top-k", scale=alt.Scale(domain=[True, False],
                                                                   range=[TOP_K_COLOUR, OTHER_COLOUR]),
                            legend=alt.Legend(orient="top", labelExpr="datum.value ? 'top-k' : 'other'")),
            opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)),  # all opaque while nothing is selected
            tooltip=[alt.Tooltip("channel:O"), alt.Tooltip("weight:Q", format=".6f"), alt.Tooltip("rank:O")],
        )
        .add_params(pick)
        .properties(height=260)
    )


def weight_distribution(blocks: Sequence[BlockAttention], bins: int = 20) -> alt.Chart:
    """Every block's channel weights at a glance (an analysis's ``blocks``): one row per block (forward
    order), one cell per weight bin, darker where more of the block's channels fall."""
    names, shares = weight_histograms(blocks, bins)
    sizes = {b.name: len(b.channel_weights) for b in blocks if b.channel_weights is not None}
    edges = np.linspace(0, 1, bins + 1)
    frame = pd.DataFrame([
        {"block": name, "from": edges[i], "to": edges[i + 1], "share": float(shares[r, i]),
         "channels": int(round(shares[r, i] * sizes[name]))}
        for r, name in enumerate(names) for i in range(bins)
    ])
    return (
        alt.Chart(frame, title="channel weights of every block")
        .mark_rect()
        .encode(
            x=alt.X("from:Q", bin="binned", title="channel weight Mc", scale=alt.Scale(domain=[0, 1])),
            x2="to:Q",
            y=alt.Y("block:N", sort=names, title=None),
            color=alt.Color("share:Q", title="share of channels", scale=alt.Scale(scheme="blues"),
                            legend=alt.Legend(format=".0%")),
            tooltip=[alt.Tooltip("block:N"), alt.Tooltip("from:Q", format=".2f", title="weight from"),
                     alt.Tooltip("to:Q", format=".2f", title="weight to"), alt.Tooltip("channels:Q"),
                     alt.Tooltip("share:Q", format=".1%")],
        )
        .properties(height=22 * len(names) + 20)
    )


def spatial_map(overlay_jpeg: bytes, values: np.ndarray, cmap: str, scale: str, size: int = 384) -> alt.LayerChart:
    """The map over the image: the overlay (:func:`cbam_viz.render.overlays.overlay`, as the JPEG the
    page also shows among every block's maps) as the background, under one invisible cell per map
    position that gives its exact value on hover, and a colour bar in the map's real values."""
    h, w = values.shape
    vmin, vmax = value_range(values, scale)
    rows, cols = np.mgrid[0:h, 0:w]
    # values to 6 decimals (the hover shows 5): a 32x32 map is sent on every change of block or setting
    cells = pd.DataFrame({"row": rows.ravel(), "column": cols.ravel(), "value": values.ravel().astype(float).round(6)})
    uri = "data:image/jpeg;base64," + base64.b64encode(overlay_jpeg).decode()
    x = alt.X("column:Q", scale=alt.Scale(domain=[0, w], nice=False), axis=None)
    y = alt.Y("row:Q", scale=alt.Scale(domain=[0, h], nice=False, reverse=True), axis=None)
    background = alt.Chart(pd.DataFrame({"url": [uri], "column": [0], "row": [0]})).mark_image(
        width=size, height=size, align="left", baseline="top").encode(x=x, y=y, url="url:N")
    grid = alt.Chart(cells).transform_calculate(row_end="datum.row + 1", column_end="datum.column + 1").mark_rect(
        opacity=0.0).encode(
        x=x, x2="column_end:Q", y=y, y2="row_end:Q",
        color=alt.Color("value:Q", title="Ms", scale=matplotlib_scale(cmap, vmin, vmax),
                        legend=alt.Legend(format=".4f", gradientLength=size - 40)),
        tooltip=[alt.Tooltip("row:Q"), alt.Tooltip("column:Q"), alt.Tooltip("value:Q", format=".5f", title="Ms")],
    )
    return alt.layer(background, grid).properties(width=size, height=size)


def matplotlib_scale(cmap: str, vmin: float, vmax: float, stops: int = 17) -> alt.Scale:
    """A Vega-Lite colour scale through matplotlib's colormap ``cmap`` on [vmin, vmax], so that the
    legend shows exactly the colours of the overlay (Vega has no "jet")."""
    values = np.linspace(vmin, vmax, stops)
    colours = colorize(values, cmap, vmin, vmax)
    return alt.Scale(domain=values.tolist(), range=["#%02x%02x%02x" % tuple(c) for c in colours], clamp=True,
                     interpolate="rgb")


def step_bars(series: dict[str, np.ndarray], title: str, y_title: str, x_title: str = "channel") -> alt.Chart:
    """Per-channel (or per-unit) values of one step, one bar colour per series (e.g. the average and
    max descriptors), with exact values on hover."""
    frame = pd.DataFrame([{"index": i, "series": name, "value": float(v)}
                          for name, values in series.items() for i, v in enumerate(values)])
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X("index:O", title=x_title, axis=alt.Axis(labelOverlap="greedy", labelAngle=0)),
            xOffset="series:N",
            y=alt.Y("value:Q", title=y_title),
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top")),
            tooltip=[alt.Tooltip("series:N"), alt.Tooltip("index:O"), alt.Tooltip("value:Q", format=".5f")],
        )
        .properties(height=200)
    )


def perturbation_curves(curves: list, mode: str) -> alt.Chart:
    """The class probability against the fraction of pixels removed (``deletion``) or revealed
    (``insertion``), one line per map (:class:`cbam_viz.explain.faithfulness.Curve`), its area in the legend."""
    frame = pd.DataFrame([{"map": f"{c.map} (area {c.area:.3f})", "fraction": float(f), "probability": float(p)}
                          for c in curves if c.mode == mode for f, p in zip(c.fractions, c.probabilities)])
    verb = "removed" if mode == "deletion" else "revealed"
    return (
        alt.Chart(frame, title=f"{mode.capitalize()}: most-attended pixels {verb} first")
        .mark_line(point=alt.OverlayMarkDef(size=12))
        .encode(
            x=alt.X("fraction:Q", title=f"fraction of pixels {verb}", axis=alt.Axis(format="%")),
            y=alt.Y("probability:Q", title="probability of the class", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("map:N", title=None, legend=alt.Legend(orient="bottom", direction="vertical")),
            tooltip=[alt.Tooltip("map:N"), alt.Tooltip("fraction:Q", format=".0%"),
                     alt.Tooltip("probability:Q", format=".4f")],
        )
        .properties(height=380)  # the whole chart: Streamlit fits the plot, title and legend into it
    )


def cascade_heatmap(blocks: list[str], steps: list[str], rho: np.ndarray, what: str) -> alt.Chart:
    """Rank correlation with the original attention (``rho``: steps x blocks) after each step of a
    cascading randomisation, blocks in forward order, steps from the original down; NaN cells empty."""
    frame = pd.DataFrame([{"block": b, "step": s, "rho": None if np.isnan(v) else round(float(v), 3)}
                          for s, row in zip(steps, rho) for b, v in zip(blocks, row)])
    base = alt.Chart(frame).encode(
        x=alt.X("block:O", sort=blocks, title="block", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("step:O", sort=steps, title="CBAM parameters randomised"),
    )
    cells = base.mark_rect().encode(
        color=alt.Color("rho:Q", title="Spearman", scale=alt.Scale(scheme="redblue", domain=[-1, 1])),
        tooltip=[alt.Tooltip("step:O"), alt.Tooltip("block:O"), alt.Tooltip("rho:Q", format="+.3f")],
    )
    labels = base.mark_text(fontSize=11).encode(
        text=alt.Text("rho:Q", format=".2f"),
        color=alt.condition("abs(datum.rho) > 0.6", alt.value("white"), alt.value("black")),
    )
    return (cells + labels).properties(title=f"{what}: rank correlation with the original model's",
                                       height=36 * len(steps) + 110)  # the whole chart, axes included


def specificity_bars(blocks: list[str], values: list[float]) -> alt.Chart:
    """Each block's class specificity (:mod:`cbam_viz.explain.profiles`), blocks from early to late."""
    frame = pd.DataFrame({"block": blocks, "specificity": [None if np.isnan(v) else float(v) for v in values]})
    return (
        alt.Chart(frame, title="How class-specific each block's channel weights are")
        .mark_bar()
        .encode(
            x=alt.X("block:O", sort=blocks, title="block (early to late)", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("specificity:Q", title="share of weight variance between classes", scale=alt.Scale(domain=[0, 1])),
            tooltip=[alt.Tooltip("block:O"), alt.Tooltip("specificity:Q", format=".3f")],
        )
        .properties(height=300)
    )


def class_profiles(means: np.ndarray, classes: list[str], chosen: list[int], block: str) -> alt.Chart:
    """The mean channel weights (``means``: classes x channels) of the ``chosen`` classes in ``block``,
    one line per class."""
    frame = pd.DataFrame([{"class": classes[k], "channel": c, "mean weight": float(v)}
                          for k in chosen for c, v in enumerate(means[k])])
    return (
        alt.Chart(frame, title=f"{block}: mean channel weights per class")
        .mark_line()
        .encode(
            x=alt.X("channel:Q", title="channel"),
            y=alt.Y("mean weight:Q", title="mean channel weight Mc", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("class:N", title=None, legend=alt.Legend(orient="top")),
            tooltip=[alt.Tooltip("class:N"), alt.Tooltip("channel:Q"), alt.Tooltip("mean weight:Q", format=".4f")],
        )
        .properties(height=320)
    )

"""The main view's charts and overlays, cached by what they show.

A class goes back and forth between configurations, so a control change mostly redraws pictures
the page has drawn before: each is built once for its values and display settings and then read
from Streamlit's data cache, which hashes the arrays themselves (a new image, map or setting is a
new entry). The charts are kept as Vega-Lite specifications for ``st.vega_lite_chart``; they are
built by :mod:`cbam_viz.render.charts`, whose tests validate each one against the Vega-Lite schema.

Streamlit code.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import streamlit as st

from ..explain.results import BlockAttention
from ..render import charts, overlays, tables


def vega_lite(chart: alt.TopLevelMixin) -> dict:
    """An Altair chart's Vega-Lite specification as Streamlit draws it: not validated again (the
    tests do that) and without the fixed view size of Altair's default theme (Streamlit sizes charts)."""
    spec = chart.to_dict(validate=False)
    spec.pop("config", None)
    return spec


@st.cache_data(max_entries=64, show_spinner=False)
def channel_bars(weights: np.ndarray, sort: bool, top_k: int, title: str) -> tuple[list[dict], dict]:
    """One block's channel rows (:func:`cbam_viz.render.tables.channel_rows`) and their bar chart."""
    rows = tables.channel_rows(weights, sort, top_k)
    return rows, vega_lite(charts.channel_bars(rows, title))


@st.cache_data(max_entries=32, show_spinner=False)
def spatial_map(overlay_jpeg: bytes, values: np.ndarray, cmap: str, scale: str, size: int) -> dict:
    """The chart of a spatial map over the image (its overlay from :func:`overlays_jpeg`), with its
    values on hover and its colour bar."""
    return vega_lite(charts.spatial_map(overlay_jpeg, values, cmap, scale, size))


@st.cache_data(max_entries=16, show_spinner=False)
def overlays_jpeg(view: np.ndarray, maps: tuple[np.ndarray, ...], cmap: str, opacity: float, smooth: bool,
                  scale: str) -> list[bytes]:
    """Spatial maps over the same image (:func:`cbam_viz.render.overlays.overlay`) as JPEG bytes, which
    ``st.image(..., output_format="JPEG")`` sends as they are. One entry for all of a view's maps, so
    that the image is hashed once per run, not once per map."""
    return [overlays.encode_jpeg(overlays.overlay(view, m, cmap, opacity, smooth, scale)) for m in maps]


@st.cache_data(max_entries=32, show_spinner=False)
def weight_distribution(blocks: Sequence[BlockAttention]) -> dict:
    """The chart of every block's channel weights (:func:`cbam_viz.render.charts.weight_distribution`)."""
    return vega_lite(charts.weight_distribution(blocks))

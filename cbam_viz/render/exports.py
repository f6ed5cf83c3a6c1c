"""The files a user can take away from one view: figures (PNG, SVG), channel weights (CSV), predictions
(JSON) and a report of the image (HTML, as ``python -m cbam_viz.report`` writes it)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from ..explain.results import Analysis, BlockAttention
from . import tables

MIMES = {"png": "image/png", "svg": "image/svg+xml"}


def _figure(kind: str, fmt: str, result: Analysis, block: BlockAttention, style: dict, top_k: int, sort: bool) -> bytes:
    from . import figures  # matplotlib: imported when a figure is asked for

    fig = (figures.block_figure(result.view, block, top_k=top_k, sort=sort, **style) if kind == "block"
           else figures.grid_figure(result, **style))
    return figures.figure_bytes(fig, fmt)


def _report(result: Analysis, card: dict, style: dict, name: str) -> str:
    from . import figures
    from .report import ReportItem, html_report, image_figures

    item = ReportItem(name, result)
    drawn = {k: figures.figure_bytes(fig, "png") for k, fig in image_figures(item, style).items()}
    return html_report([item], card, {name: drawn})


def downloads(result: Analysis, block: BlockAttention, config: dict, style: dict, top_k: int,
              sort: bool, card: dict | None = None) -> list[tuple[str, str | Callable[[], bytes | str], str, str]]:
    """(button label, data or a function that makes it, file name, MIME type) for every export of
    the view; figures and CSV are made only when asked for."""
    files = []
    for fmt, mime in MIMES.items():
        files.append((f"Block figure ({fmt.upper()})", partial(_figure, "block", fmt, result, block, style, top_k, sort),
                      f"{block.name}.{fmt}", mime))
        if block.spatial_map is not None:
            files.append((f"Every block ({fmt.upper()})", partial(_figure, "grid", fmt, result, block, style, top_k, sort),
                          f"every-block.{fmt}", mime))
    if block.channel_weights is not None:
        rows = tables.channel_rows(block.channel_weights, sort, top_k)
        files.append(("Channel weights (CSV)", partial(tables.channel_csv, rows), f"{block.name}-channel-weights.csv",
                      "text/csv"))
    files.append(("Configuration + predictions (JSON)", tables.predictions_json(result, config), "cbam-viz.json",
                  "application/json"))
    if card is not None:
        files.append(("Report of this image (HTML)", partial(_report, result, card, style, str(config.get("image", "image"))),
                      "cbam-viz-report.html", "text/html"))
    return files

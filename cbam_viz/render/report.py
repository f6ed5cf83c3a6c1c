"""A report people take away: one self-contained HTML file (figures embedded as PNG) over one image
or a set, with the predictions, every block's map and bars, the model card and, for a set, the
class profiles. Files that could not be read are listed with the reason.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass

from ..explain.profiles import Profiles
from ..explain.results import Analysis
from ..models.cards import facts, training_summary
from . import figures


@dataclass
class ReportItem:
    """One image of a report: its name and analysis, or why it was rejected."""

    name: str
    analysis: Analysis | None = None
    error: str | None = None


def _text(markdown: str) -> str:
    """A card fact (Markdown with **bold** and `code`) as HTML."""
    out = html.escape(markdown)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def image_figures(item: ReportItem, style: dict) -> dict[str, object]:
    """The matplotlib figures of one analysed image: ``grid`` (every block's map) where there is
    spatial attention, and one per block (bars and map)."""
    a = item.analysis
    out = {}
    if a.spatial_stages():
        out["grid"] = figures.grid_figure(a, **style)
    for b in a.blocks:
        out[b.name] = figures.block_figure(a.view, b, **style)
    return out


def html_report(items: list[ReportItem], card: dict, drawn: dict[str, dict[str, bytes]],
                profiles: Profiles | None = None, profiles_png: bytes | None = None) -> str:
    """The HTML page: per image (``drawn[name]``: figure name -> PNG) its predictions and figures;
    rejected files with their reasons; the class profiles of a set; the model card."""
    parts = [f"<h1>cbam-viz report: {html.escape(card['name'])}</h1>",
             f"<p>{len([i for i in items if i.analysis])} image(s) analysed, "
             f"{len([i for i in items if i.error])} rejected.</p>"]
    for item in items:
        parts.append(f"<h2>{html.escape(item.name)}</h2>")
        if item.error:
            parts.append(f'<p class="rejected">Not analysed: {html.escape(item.error)}</p>')
            continue
        rows = "".join(f"<tr><td>{k}</td><td>{html.escape(c)}</td><td>{100 * p:.1f}%</td></tr>"
                       for k, (c, p) in enumerate(item.analysis.top, 1))
        parts.append(f"<table><tr><th>rank</th><th>class</th><th>probability</th></tr>{rows}</table>")
        parts += [_img(png, f"{item.name}: {name}") for name, png in drawn.get(item.name, {}).items()]
    if profiles is not None and profiles.blocks:
        classes = card["classes"]
        parts.append("<h2>Class profiles over these images (grouped by predicted class)</h2>")
        if profiles_png:
            parts.append(_img(profiles_png, "class specificity per block"))
        rows = "".join(f"<tr><td>{b}</td><td>{profiles.specificity[b]:.3f}</td></tr>" for b in profiles.blocks)
        parts.append(f"<table><tr><th>block</th><th>class specificity</th></tr>{rows}</table>")
        counts = ", ".join(f"{classes[k]}: {n}" for k, n in enumerate(profiles.counts) if n)
        parts.append(f"<p>Images per predicted class: {html.escape(counts)}.</p>")
    parts.append("<h2>The model</h2><ul>" + "".join(f"<li>{_text(f)}</li>" for f in facts(card)) + "</ul>")
    if card.get("training"):
        parts.append(f"<p>{_text(training_summary(card['training']))}</p>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "img{max-width:100%;display:block;margin:1em 0}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px}.rejected{color:#a00}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>cbam-viz report</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")

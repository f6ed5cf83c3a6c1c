"""Numbers as tables and files: weight statistics, channel rows, Markdown, CSV and JSON exports."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..explain.results import Analysis, BlockAttention


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


def stats_table(weights: np.ndarray) -> str:
    """:func:`weight_stats` as a one-row Markdown table."""
    s = weight_stats(weights)
    return markdown_table([{k: f"{getattr(s, k):.4f}" for k in ("mean", "std", "min", "max", "entropy")}])


def channel_rows(weights: np.ndarray, sort: bool = False, top_k: int = 10) -> list[dict]:
    """Channel weights as rows: channel index, weight, rank (1 = largest) and a top-k flag;
    in channel order, or in rank order when ``sort``."""
    w = np.asarray(weights, dtype=np.float64)
    rank = np.empty(len(w), dtype=int)
    rank[np.argsort(-w, kind="stable")] = np.arange(1, len(w) + 1)
    rows = [{"channel": c, "weight": float(w[c]), "rank": int(rank[c]), "top_k": bool(rank[c] <= top_k)}
            for c in range(len(w))]
    return sorted(rows, key=lambda r: r["rank"]) if sort else rows


def picked_channel(selection: list[dict] | None, rows: list[dict]) -> int | None:
    """The channel a click on the bars selected (``selection`` as the chart reports it), if it is one of ``rows``."""
    picked = (selection or [{}])[0].get("channel")
    return picked if any(r["channel"] == picked for r in rows) else None


def selected_channel(rows: list[dict], picked: int | None, block: str) -> str:
    """Markdown naming the selected channel (:func:`picked_channel`), or how to select one."""
    row = next((r for r in rows if r["channel"] == picked), None)
    if row is None:
        return "*Hover a bar for its exact weight; click one to select that channel.*"
    return f"**Channel {picked}** of {block}: weight {row['weight']:.6f}, rank {row['rank']} of {len(rows)}."


def channel_csv(rows: list[dict]) -> str:
    """:func:`channel_rows` as CSV in channel order: channel, weight, rank, top_k."""
    out = io.StringIO()
    writer = csv.DictWriter(out, ["channel", "weight", "rank", "top_k"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["channel"]))
    return out.getvalue()


def weight_histograms(blocks: Sequence[BlockAttention], bins: int = 20) -> tuple[list[str], np.ndarray]:
    """Per block with channel attention (of an analysis's ``blocks``), the share of its channels in each
    of ``bins`` equal weight bins on [0, 1]: (block names, shares (blocks, bins), each row summing to 1)."""
    blocks = [b for b in blocks if b.channel_weights is not None]
    if not blocks:
        raise ValueError("this model has no channel attention to show")
    edges = np.linspace(0, 1, bins + 1)
    shares = np.stack([np.histogram(b.channel_weights, bins=edges)[0] / len(b.channel_weights) for b in blocks])
    return [b.name for b in blocks], shares


def points(delta: float) -> str:
    """A change of probability in percentage points, signed, one decimal: ``+1.2``; ``0.0`` when it
    rounds to zero (never ``-0.0``)."""
    text = f"{100 * delta:+.1f}"
    return "0.0" if float(text) == 0 else text


MARKDOWN_SPECIAL = re.compile(r"[\\`*_\[\]<>|$#~]")  # escaped in table cells: a class name is shown as typed


def markdown_table(rows: list[dict], index: str | None = None) -> str:
    """``rows`` (dicts with the same keys) as a Markdown table; with ``index``, a first column of
    that name numbering the rows from 1."""
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

"""Bytes the page sends for the one-block view's charts, per block of the built-in canonical model.

A control change or a new block re-sends the block's two Vega-Lite specifications (the channel
bars, the spatial map over the image) to the browser, which parses them and decodes the map's
image; this prints their JSON sizes for a gallery photo analysed in advance (no torch needed).

    python bench/chart_payload.py [--image cat] [--cmap jet]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cbam_viz.app import pictures  # noqa: E402
from cbam_viz.app.controls import map_size, overlay_style, start_values  # noqa: E402
from cbam_viz.app.precomputed import Precomputed, sample_files  # noqa: E402
from cbam_viz.models.registry import DEFAULT_ROOT, Family  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image", default="cat", help="a gallery photo's name")
    p.add_argument("--cmap", default="jet")
    args = p.parse_args()
    card = Family(DEFAULT_ROOT).canonical()
    result = Precomputed(DEFAULT_ROOT).analysis(card, sample_files()[args.image].read_bytes())
    if result is None:
        raise SystemExit("the precomputed gallery does not match the canonical model: python -m cbam_viz.family gallery")
    print(f"{card['name']}, {args.image}, overlay {result.view.shape[1]}x{result.view.shape[0]} px, default settings")
    print(f"{'block':<10}{'map':>8}{'map spec KB':>14}{'bars spec KB':>14}")
    start = {**start_values({}, [args.image]), "cmap": args.cmap}  # the page's first settings
    jpegs = pictures.overlays_jpeg(result.view, tuple(b.spatial_map for b in result.blocks), **overlay_style(start))
    for b, jpeg in zip(result.blocks, jpegs):  # the specs the page draws, from the functions it calls (their cache aside)
        spec = pictures.spatial_map(jpeg, b.spatial_map, start["cmap"], start["scale"], map_size(start["lesson"]))
        _, bars = pictures.channel_bars(b.channel_weights, start["sort"], start["topk"], f"{b.name}: channel weights Mc")
        h, w = b.spatial_map.shape
        print(f"{b.name:<10}{f'{h}x{w}':>8}{len(json.dumps(spec)) / 1024:>14.1f}{len(json.dumps(bars)) / 1024:>14.1f}")


if __name__ == "__main__":
    main()

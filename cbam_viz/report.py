"""``python -m cbam_viz.report IMAGES_OR_FOLDERS --out DIR``: a report over images, as one
self-contained HTML file plus every figure as PNG and SVG.

    python -m cbam_viz.report photos/ --out report                       # the built-in canonical model
    python -m cbam_viz.report cat.jpg --variant spatial-first-k7-r16 --out report
    python -m cbam_viz.report photos/ --weights cbam_resnet50.pth --out report   # the ImageNet model

Per image: the predictions, every block's spatial map (one grid) and each block's bars and map; for
a set of two or more, the class profiles grouped by predicted class; the model card. A file that
cannot be read is listed in the report with the reason (and logged), and the rest go on.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger("cbam_viz.report")
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"}


def image_files(inputs: list[Path]) -> list[Path]:
    """The files named and the image files under the folders named (by suffix, sorted)."""
    files = []
    for p in inputs:
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            files.append(p)
    return files


def load_model(family: Path | None, variant: str | None, weights: Path | None):
    """(model, card): the ImageNet model from ``weights``, else a family variant (default: canonical)."""
    if weights:
        from .models.imagenet import load_imagenet
        return load_imagenet(weights)
    from .models.registry import Family, default_root, key_of

    fam = Family(family or default_root())
    if variant is None:
        return fam.load(key_of(fam.canonical()))
    chosen = next((k for k, c in fam.cards.items() if c["name"] == variant), None)
    if chosen is None:
        raise SystemExit(f"no variant named {variant!r} in {fam.root}; variants: {', '.join(sorted(c['name'] for c in fam.cards.values()))}")
    return fam.load(chosen)


def write_report(files: list[Path], model, card: dict, out: Path, style: dict | None = None) -> Path:
    """Analyse ``files`` and write ``out/report.html`` and ``out/figures/*.png|svg``; returns the HTML path."""
    from .app.images import ImageError, load_image
    from .explain.analysis import analyse
    from .explain.profiles import predicted_class_profiles
    from .render.figures import figure_bytes, specificity_figure
    from .render.report import ReportItem, html_report, image_figures

    style = style or {"cmap": "jet", "opacity": 0.5, "smooth": True, "scale": "relative"}
    (out / "figures").mkdir(parents=True, exist_ok=True)

    def save(fig, stem: str) -> bytes:
        """Write the figure as PNG and SVG; its PNG, for the HTML page."""
        png = figure_bytes(fig, "png")
        (out / "figures" / f"{stem}.png").write_bytes(png)
        (out / "figures" / f"{stem}.svg").write_bytes(figure_bytes(fig, "svg"))
        return png

    items, drawn = [], {}
    for path in tqdm(files, desc="report", unit="image"):
        try:
            item = ReportItem(path.name, analyse(model, load_image(path.read_bytes()), card))
        except (ImageError, OSError) as e:
            log.warning("%s: not analysed: %s", path, e)
            items.append(ReportItem(path.name, error=str(e)))
            continue
        items.append(item)
        drawn[item.name] = {name: save(fig, f"{path.stem}-{name}") for name, fig in image_figures(item, style).items()}
    analysed = [i.analysis for i in items if i.analysis]
    profiles = profiles_png = None
    if len(analysed) >= 2:
        profiles = predicted_class_profiles(analysed, len(card["classes"]))
        if profiles.blocks:
            profiles_png = save(specificity_figure(profiles.blocks, [profiles.specificity[b] for b in profiles.blocks]),
                                "class-specificity")
    page = out / "report.html"
    page.write_text(html_report(items, card, drawn, profiles, profiles_png), encoding="utf-8")
    return page


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cbam_viz.report", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", type=Path, help="image files and folders")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--family", type=Path, help="a trained family (default: the built-in one)")
    p.add_argument("--variant", help="a variant's name in the family (default: the canonical model)")
    p.add_argument("--weights", type=Path, help="an ImageNet CBAM-ResNet checkpoint instead of the family")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    missing = [str(p) for p in args.inputs if not p.exists()]
    if missing:
        print("no such file or folder: " + ", ".join(missing), file=sys.stderr)
        return 1
    files = image_files(args.inputs)
    if not files:
        print("no image files found in " + ", ".join(map(str, args.inputs)), file=sys.stderr)
        return 1
    model, card = load_model(args.family, args.variant, args.weights)
    print(write_report(files, model, card, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

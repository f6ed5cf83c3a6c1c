"""Train the whole built-in family, resumably, and tabulate it from the model cards.

    python -m cbam_viz.family train --data ~/.cache/cbam-viz/cifar10 \\
        --dataset-archive ../shared/data/cifar10-jpg.tar.gz      # (re)trains what is missing
    python -m cbam_viz.family table --update-readme README.md       # accuracy table from the cards

The canonical model (channel-first, k=7, r=16) and the plain baseline are trained end-to-end.
Every other variant freezes the canonical model's convolutions and trains its own attention, the
BatchNorm layers and the classifier, starting from the canonical attention (see ``train.py``).
Finished variants are skipped; an interrupted one resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from .cards import read_card
from .registry import DEFAULT_ROOT
from .weights import sha256_file

CANONICAL = "channel-first-k7-r16"
ORDERS = ("channel-first", "spatial-first", "parallel")
KERNELS = (3, 7)
REDUCTIONS = (8, 16, 32)
END_TO_END = ["--epochs", "15"]
WHY = (
    "ResNet-18 layout (two basic blocks per stage, the smallest CBAM-ResNet of the paper) at half width, "
    "so that 15 end-to-end epochs of the canonical model and of the plain baseline plus every attention "
    "fine-tune fit the family's 4-hour budget on 2 CPU cores (see complexity and training.history); "
    "CIFAR stem (3x3 convolution, no max-pool) so the first stage keeps the full 32x32 grid and the "
    "spatial maps stay legible; full 32 px from the first epoch (an earlier run that spent its first epochs "
    "at 24 px ended lower)."
)
FINETUNE = ["--epochs", "1", "--steps-per-epoch", "100", "--lr", "0.05"]


def plan() -> list[tuple[str, list[str]]]:
    """(name, training arguments) for every variant, in training order (the canonical model first)."""
    canonical = (CANONICAL, ["--order", "channel-first", "--kernel-size", "7", "--reduction", "16", *END_TO_END,
                             "--why", WHY])
    backbone = ["--backbone", "{out}/" + CANONICAL + ".safetensors", *FINETUNE]
    variants = [
        (f"{o}-k{k}-r{r}", ["--order", o, "--kernel-size", str(k), "--reduction", str(r), *backbone])
        for o in ORDERS for k in KERNELS for r in REDUCTIONS if f"{o}-k{k}-r{r}" != CANONICAL
    ]
    variants += [(f"channel-only-r{r}", ["--attention", "channel", "--reduction", str(r), *backbone]) for r in REDUCTIONS]
    variants += [(f"spatial-only-k{k}", ["--attention", "spatial", "--kernel-size", str(k), *backbone]) for k in KERNELS]
    plain = ("plain", ["--attention", "none", *END_TO_END, "--why", "the canonical model's network and recipe without attention"])
    return [canonical, *variants, plain]


def _finished(out: Path, name: str) -> bool:
    """Whether ``name`` has a card, and (for a fine-tune) was trained on the backbone now shipped."""
    path = out / f"{name}.json"
    if not path.exists():
        return False
    backbone = read_card(path).get("backbone")
    if backbone is None:
        return True
    current = out / backbone["file"]
    if current.exists() and sha256_file(current) == backbone["sha256"]:
        return True
    print(f"{name}: stale (trained on another {backbone['name']}); retraining", flush=True)
    return False


def train_family(data: Path, out: Path, archive: Path | None, only: list[str] | None) -> int:
    """Train every variant that has no card yet; stop at the first failure."""
    for name, extra in plan():
        if only and name not in only:
            continue
        if _finished(out, name):
            print(f"{name}: done (card exists)", flush=True)
            continue
        cmd = [sys.executable, "-m", "cbam_viz.train", "--data", str(data), "--out", str(out), "--name", name, "--resume",
               *[a.format(out=out) for a in extra]]
        if archive:
            cmd += ["--dataset-archive", str(archive)]
        print("running:", " ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode != 0:
            print(f"{name}: training failed; rerun the same command to resume", file=sys.stderr)
            return 1
    return 0


def table(out: Path) -> str:
    """Markdown table of every card under ``out``: configuration, how trained, accuracy, size, time."""
    rows = []
    order = {name: i for i, (name, _) in enumerate(plan())}
    cards = sorted((read_card(p) for p in out.glob("*.json")), key=lambda c: order.get(c["name"], len(order)))
    for c in cards:
        cx, m, t = c["complexity"], c["metrics"], c["training"]
        trained = "end-to-end" if t["mode"] == "end-to-end" else "attention + BN + classifier"
        rows.append(
            f"| `{c['name']}` | {trained} | {m['test_top1']:.2f} | {min(m['test_per_class_top1']):.1f} | "
            f"{cx['params']:,} | {cx['attention_params']:,} | {cx['flops'] / 1e6:.1f} | {t['wall_time_s'] / 60:.1f} |"
        )
    total = sum(c["training"]["wall_time_s"] + c["training"].get("evaluation_s", 0) for c in cards) / 3600
    head = (
        "| variant | trained | test top-1 % | worst class % | params | attention params | MFLOPs | train min |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    count = f"{len(cards)} variant{'s' if len(cards) != 1 else ''}"
    return f"{head}\n" + "\n".join(rows) + f"\n\n{count}, {total:.2f} h of training and evaluation in all.\n"


def update_readme(readme: Path, text: str) -> None:
    """Replace the text between the family-table markers in ``readme``."""
    begin, end = "<!-- family-table:begin -->", "<!-- family-table:end -->"
    content = readme.read_text()
    if begin not in content or end not in content:
        raise SystemExit(f"{readme} has no {begin} ... {end} markers")
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    readme.write_text(pattern.sub(lambda _: f"{begin}\n{text}{end}", content))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cbam_viz.family", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train every missing variant (resumable)")
    t.add_argument("--data", type=Path, required=True)
    t.add_argument("--out", type=Path, default=DEFAULT_ROOT)
    t.add_argument("--dataset-archive", type=Path)
    t.add_argument("--only", nargs="+", help="train only these variant names")
    s = sub.add_parser("table", help="print the family's accuracy table from the cards")
    s.add_argument("--out", type=Path, default=DEFAULT_ROOT)
    s.add_argument("--update-readme", type=Path, help="write the table into this README between its markers")
    args = p.parse_args(argv)
    if args.command == "train":
        return train_family(args.data, args.out, args.dataset_archive, args.only)
    text = table(args.out)
    if args.update_readme:
        update_readme(args.update_readme, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

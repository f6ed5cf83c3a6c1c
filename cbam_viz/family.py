"""Train the whole built-in family, resumably, and tabulate it from the model cards.

    python -m cbam_viz.family train --data ~/.cache/cbam-viz/cifar10 \\
        --dataset-archive ../shared/data/cifar10-jpg.tar.gz      # (re)trains what is missing
    python -m cbam_viz.family table --update-readme README.md       # accuracy table from the cards

The canonical model (channel-first, k=7, r=16) and the plain baseline are trained end-to-end.
Every other variant freezes the canonical model's stem and convolutions and trains its own
attention, the BatchNorm layers and the classifier, starting from the canonical attention (see
``train.py``). The table's test top-1 is that of the mean of the logits of each image and its
mirror image (how the app predicts); "single view" is the image's own pass alone. Finished steps
are skipped; an interrupted one resumes from its last checkpoint; a variant whose card names other
backbone weights than the canonical model's now, or that predates mirror averaging, is trained
again (only evaluated again when its checkpoint is complete).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from . import precomputed
from .cards import read_card, training_minutes
from .registry import DEFAULT_ROOT
from .weights import sha256_file

CANONICAL = "channel-first-k7-r16"
ORDERS = ("channel-first", "spatial-first", "parallel")
KERNELS = (3, 7)
REDUCTIONS = (8, 16, 32)
CANONICAL_EPOCHS = ["--epochs", "14"]
PLAIN_EPOCHS = ["--epochs", "10"]
WHY = (
    "A compact residual network (three stages of one residual block, widths 64/256/256, 2.0 M parameters) "
    "and airbench94's fast CIFAR-10 recipe instead of a ResNet-18: on 2 CPU cores a half-width CBAM-ResNet-18 "
    "trains at 82-85 images/s and reached 87.8% after 23 epochs (4.2 h), which leaves no time for the family; "
    "this network trains at about 140 images/s and reaches 89-90% in 14 epochs (bench/recipe_probe.py, "
    "bench/README.md), so the canonical model, the plain baseline and every attention fine-tune fit in about 4 h. "
    "Each stage ends in a CBAM block, so the app shows three blocks with 15x15, 7x7 and 3x3 spatial maps."
)
FINETUNE = ["--epochs", "1", "--steps-per-epoch", "24", "--lr", "3"]  # half an epoch: bench/README.md


@dataclass(frozen=True)
class Step:
    """One shipped variant and the arguments of ``python -m cbam_viz.train`` that train it."""

    name: str
    args: tuple[str, ...]


def plan() -> list[Step]:
    """Every training step, in order: the canonical model first, then its fine-tunes, then the baseline."""
    canonical = Step(CANONICAL, ("--order", "channel-first", "--kernel-size", "7", "--reduction", "16",
                                 *CANONICAL_EPOCHS, "--why", WHY))
    backbone = ("--backbone", "{out}/" + CANONICAL + ".safetensors", *FINETUNE)
    variants = [
        Step(f"{o}-k{k}-r{r}", ("--order", o, "--kernel-size", str(k), "--reduction", str(r), *backbone))
        for o in ORDERS for k in KERNELS for r in REDUCTIONS if f"{o}-k{k}-r{r}" != CANONICAL
    ]
    variants += [Step(f"channel-only-r{r}", ("--attention", "channel", "--reduction", str(r), *backbone)) for r in REDUCTIONS]
    variants += [Step(f"spatial-only-k{k}", ("--attention", "spatial", "--kernel-size", str(k), *backbone)) for k in KERNELS]
    plain = Step("plain", ("--attention", "none", *PLAIN_EPOCHS,
                           "--why", "the canonical model's network and recipe without attention"))
    return [canonical, *variants, plain]


def shipped_names() -> list[str]:
    """Names of the variants the family ships, in training order."""
    return [step.name for step in plan()]


def _finished(out: Path, step: Step) -> bool:
    """Whether ``step`` has a card, built on the backbone weights that ship now."""
    path = out / f"{step.name}.json"
    if not path.exists():
        return False
    card = read_card(path)
    if card["architecture"].get("family") != "compact-cbam":
        print(f"{step.name}: stale (an older network); retraining", flush=True)
        return False
    if "test_top1_single_view" not in card["metrics"]:
        print(f"{step.name}: card from before mirror averaging; evaluating again (retraining without a checkpoint)", flush=True)
        return False
    ref = card.get("backbone")
    if ref and (out / ref["file"]).exists() and sha256_file(out / ref["file"]) != ref["sha256"]:
        print(f"{step.name}: stale (trained on another {ref['name']}); retraining", flush=True)
        return False
    return True


def train_family(data: Path, out: Path, archive: Path | None, only: list[str] | None) -> int:
    """Train every step that is not finished; stop at the first failure."""
    for step in plan():
        if only and step.name not in only:
            continue
        if _finished(out, step):
            print(f"{step.name}: done (card exists)", flush=True)
            continue
        cmd = [sys.executable, "-m", "cbam_viz.train", "--data", str(data), "--out", str(out),
               "--name", step.name, "--resume", *[a.format(out=out) for a in step.args]]
        if archive:
            cmd += ["--dataset-archive", str(archive)]
        print("running:", " ".join(cmd), flush=True)
        if subprocess.run(cmd, check=False).returncode != 0:
            print(f"{step.name}: training failed; rerun the same command to resume", file=sys.stderr)
            return 1
    if (out / f"{CANONICAL}.json").is_file():
        print(f"{precomputed.write(out)}: the gallery analysed by {CANONICAL} for the app's first page", flush=True)
    return 0


def table(out: Path) -> str:
    """Markdown table of every card under ``out``: configuration, how trained, accuracy, size, time."""
    rows = []
    order = {name: i for i, name in enumerate(shipped_names())}
    cards = sorted((read_card(p) for p in out.glob("*.json")), key=lambda c: order.get(c["name"], len(order)))
    for c in cards:
        cx, m, t = c["complexity"], c["metrics"], c["training"]
        trained = "end-to-end" if t["mode"] == "end-to-end" else "attention + BN + classifier"
        rows.append(
            f"| `{c['name']}` | {trained} | {m['test_top1']:.2f} | {m.get('test_top1_single_view', m['test_top1']):.2f} | "
            f"{min(m['test_per_class_top1']):.1f} | "
            f"{cx['params']:,} | {cx['attention_params']:,} | {cx['flops'] / 1e6:.1f} | {t['wall_time_s'] / 60:.1f} | "
            f"{t.get('evaluation_s', 0) / 60:.1f} |"
        )
    train_h = sum(c["training"]["wall_time_s"] for c in cards) / 3600
    total_h = sum(training_minutes(c["training"]) for c in cards) / 60
    head = (
        "| variant | trained | test top-1 % | single view % | worst class % | params | attention params | MFLOPs per pass "
        "| training min | evaluation min |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    count = f"{len(cards)} variant{'s' if len(cards) != 1 else ''}"
    return (f"{head}\n" + "\n".join(rows) + f"\n\n{count}: {train_h:.2f} h of training and "
            f"{total_h - train_h:.2f} h of evaluation, {total_h:.2f} h in all.\n")


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

"""Train the whole built-in family, resumably, and tabulate it from the model cards.

    python -m cbam_viz.family train --data ~/.cache/cbam-viz/cifar10 \\
        --dataset-archive ../shared/data/cifar10-jpg.tar.gz      # (re)trains what is missing
    python -m cbam_viz.family table --update-readme README.md       # accuracy table from the cards

The canonical model (channel-first, k=7, r=16) and the plain baseline are trained end-to-end in two
one-cycle runs: a first run from scratch (kept in a work folder, not shipped) and a shorter second
one that continues it (``--init``) at a lower peak learning rate. Every other variant freezes the
canonical model's convolutions and trains its own attention, the BatchNorm layers and the
classifier, starting from the canonical attention (see ``train.py``). Finished steps are skipped;
an interrupted one resumes from its last checkpoint; a step whose card names other weights than the
ones it builds on now (a retrained backbone, another first run) is trained again.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .cards import read_card, training_minutes
from .data import DEFAULT_CACHE
from .registry import DEFAULT_ROOT
from .weights import sha256_file

CANONICAL = "channel-first-k7-r16"
ORDERS = ("channel-first", "spatial-first", "parallel")
KERNELS = (3, 7)
REDUCTIONS = (8, 16, 32)
FIRST_RUN = ["--epochs", "15"]
SECOND_RUN = ["--epochs", "8", "--lr", "0.1"]
WHY = (
    "ResNet-18 layout (two basic blocks per stage, the smallest CBAM-ResNet of the paper) at half width, "
    "so that end-to-end training of the canonical model and of the plain baseline plus every attention "
    "fine-tune stays within hours on 2 CPU cores (see complexity and training); CIFAR stem (3x3 "
    "convolution, no max-pool) so the first stage keeps the full 32x32 grid and the spatial maps stay "
    "legible; 32 px from the first epoch; 15 epochs of one-cycle ended at 86-87% top-1 (an underfit "
    "network: train and test accuracy equal), so a second, 8-epoch one-cycle continues it "
    "(training.previous holds the first run)."
)
FINETUNE = ["--epochs", "1", "--steps-per-epoch", "100", "--lr", "0.05"]
DEFAULT_WORK = DEFAULT_CACHE / "family-work"


@dataclass(frozen=True)
class Step:
    """One training run of the family: a shipped variant, or a first run kept in the work folder."""

    name: str
    args: tuple[str, ...]
    interim: bool = False  # a first run that a shipped step continues; written to the work folder


def _end_to_end(name: str, config: list[str], why: str) -> list[Step]:
    first = Step(name, (*config, *FIRST_RUN), interim=True)
    return [first, Step(name, (*config, "--init", "{work}/" + name + ".safetensors", *SECOND_RUN, "--why", why))]


def plan() -> list[Step]:
    """Every training step, in order: the canonical model first, then its fine-tunes, then the baseline."""
    canonical = _end_to_end(CANONICAL, ["--order", "channel-first", "--kernel-size", "7", "--reduction", "16"], WHY)
    backbone = ("--backbone", "{out}/" + CANONICAL + ".safetensors", *FINETUNE)
    variants = [
        Step(f"{o}-k{k}-r{r}", ("--order", o, "--kernel-size", str(k), "--reduction", str(r), *backbone))
        for o in ORDERS for k in KERNELS for r in REDUCTIONS if f"{o}-k{k}-r{r}" != CANONICAL
    ]
    variants += [Step(f"channel-only-r{r}", ("--attention", "channel", "--reduction", str(r), *backbone)) for r in REDUCTIONS]
    variants += [Step(f"spatial-only-k{k}", ("--attention", "spatial", "--kernel-size", str(k), *backbone)) for k in KERNELS]
    plain = _end_to_end("plain", ["--attention", "none"], "the canonical model's network and recipe without attention")
    return [*canonical, *variants, *plain]


def shipped_names() -> list[str]:
    """Names of the variants the family ships, in training order."""
    return [step.name for step in plan() if not step.interim]


def _finished(out: Path, work: Path, step: Step) -> bool:
    """Whether ``step`` has a card built on the weights it builds on now (backbone or first run)."""
    path = (work if step.interim else out) / f"{step.name}.json"
    if not path.exists():
        return False
    card = read_card(path)
    if "--init" in step.args and not card.get("init"):
        print(f"{step.name}: stale (trained by an older recipe without a second run); retraining", flush=True)
        return False
    for key, root in (("backbone", out), ("init", work)):
        ref = card.get(key)
        weights = root / ref["file"] if ref else None
        if weights is not None and weights.exists() and sha256_file(weights) != ref["sha256"]:
            print(f"{step.name}: stale (trained on another {ref['name']}); retraining", flush=True)
            return False
    return True


def train_family(data: Path, out: Path, work: Path, archive: Path | None, only: list[str] | None) -> int:
    """Train every step that is not finished; stop at the first failure."""
    steps = plan()
    for step in steps:
        if only and step.name not in only:
            continue
        # a first run is not needed once the model that continues it is shipped
        shipped = next(s for s in steps if s.name == step.name and not s.interim) if step.interim else step
        if _finished(out, work, step) or (step.interim and _finished(out, work, shipped)):
            print(f"{step.name}{' (first run)' if step.interim else ''}: done (card exists)", flush=True)
            continue
        cmd = [sys.executable, "-m", "cbam_viz.train", "--data", str(data), "--out", str(work if step.interim else out),
               "--name", step.name, "--resume", *[a.format(out=out, work=work) for a in step.args]]
        if archive:
            cmd += ["--dataset-archive", str(archive)]
        print("running:", " ".join(cmd), flush=True)
        if subprocess.run(cmd).returncode != 0:
            print(f"{step.name}: training failed; rerun the same command to resume", file=sys.stderr)
            return 1
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
            f"| `{c['name']}` | {trained} | {m['test_top1']:.2f} | {min(m['test_per_class_top1']):.1f} | "
            f"{cx['params']:,} | {cx['attention_params']:,} | {cx['flops'] / 1e6:.1f} | {training_minutes(t):.1f} |"
        )
    total = sum(training_minutes(c["training"]) for c in cards) / 60
    head = (
        "| variant | trained | test top-1 % | worst class % | params | attention params | MFLOPs | minutes (train + eval) |\n"
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
    t.add_argument("--work", type=Path, default=DEFAULT_WORK, help="folder for first runs (not shipped)")
    t.add_argument("--dataset-archive", type=Path)
    t.add_argument("--only", nargs="+", help="train only these variant names")
    s = sub.add_parser("table", help="print the family's accuracy table from the cards")
    s.add_argument("--out", type=Path, default=DEFAULT_ROOT)
    s.add_argument("--update-readme", type=Path, help="write the table into this README between its markers")
    args = p.parse_args(argv)
    if args.command == "train":
        return train_family(args.data, args.out, args.work, args.dataset_archive, args.only)
    text = table(args.out)
    if args.update_readme:
        update_readme(args.update_readme, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train the whole built-in family, resumably, and tabulate it from the model cards.

    python -m cbam_viz.family train --data ~/.cache/cbam-viz/cifar10 --out DIR \\
        --dataset-archive ../shared/data/cifar10-jpg.tar.gz      # (re)trains what is missing
    python -m cbam_viz.family table --out DIR --update-readme README.md   # accuracy table from the cards
    python -m cbam_viz.family test-images --out DIR --data ~/.cache/cbam-viz/cifar10   # CIFAR-10 images for the gallery
    python -m cbam_viz.family channel-images --out DIR --data ~/.cache/cbam-viz/cifar10   # top test images per channel

The family is the half-width CBAM-ResNet-18 for 32 px images. The plain network (no attention)
and the canonical model (channel-first, k=7, r=16) are trained end-to-end with one recipe and
budget. Every attention configuration, a twin of the canonical one included, is then trained by
one like-for-like protocol: the plain network's stem and convolutions frozen, its own attention,
the BatchNorm layers and the classifier trained (see ``train.py``). The table's test top-1 is that
of the mean of the logits of each image and its mirror image (how the app predicts); "single
view" is the image's own pass alone. Finished steps are skipped; an interrupted one resumes from
its last checkpoint; a variant whose card names other backbone weights than the plain network's
now, or for another number of epochs than the plan's, is trained again.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from statistics import median
from pathlib import Path

from ..explain.classroom import PAPER, PAPER_CHECK, paper_comparison
from ..models.cards import read_card, training_minutes
from ..models.registry import DEFAULT_ROOT
from ..models.config import KERNEL_SIZES, ORDERS, REDUCTIONS
from ..models.weights import sha256_file
from ..render.tables import markdown_table
from . import gallery

CANONICAL = "channel-first-k7-r16"
TWIN = f"{CANONICAL}-twin"  # the canonical configuration trained like every other variant
RECIPE = ("--bf16",)  # and python -m cbam_viz.train's defaults: half width, batch 512, the learning rates
END_TO_END = ("--epochs", "48", "--eval-every", "4")  # 32 left the canonical model 0.22 points short of 91%
FINETUNE = ("--epochs", "2")
WHY = (
    "The CBAM-ResNet-18 layout (four stages of two BasicBlocks, a CBAM on every residual branch, CIFAR stem: "
    "3x3 convolution, no max-pool) at half width (32/64/128/256 channels, 2.8 M parameters), so that the blocks "
    "see 32x32, 16x16, 8x8 and 4x4 maps. Half width and 48 epochs under bfloat16 autocast keep the whole family "
    "(two end-to-end runs and 23 attention fine-tunes) within 8 hours of 2 CPU cores: bench/train_speed.py."
)


@dataclass(frozen=True)
class Step:
    """One shipped variant and the arguments of ``python -m cbam_viz.train`` that train it."""

    name: str
    args: tuple[str, ...]


def plan() -> list[Step]:
    """Every training step, in order: the plain network (the variants build on it), the canonical
    model, then every attention configuration by the like-for-like protocol."""
    plain = Step("plain", (*RECIPE, *END_TO_END, "--attention", "none", "--why", WHY))
    canonical = Step(CANONICAL, (*RECIPE, *END_TO_END, "--order", "channel-first", "--kernel-size", "7",
                                 "--reduction", "16", "--why", WHY))
    on_plain = (*RECIPE, *FINETUNE, "--backbone", "{out}/plain.safetensors")
    variants = [Step(TWIN if f"{o}-k{k}-r{r}" == CANONICAL else f"{o}-k{k}-r{r}",
                     (*on_plain, "--order", o, "--kernel-size", str(k), "--reduction", str(r)))
                for o in ORDERS for k in KERNEL_SIZES for r in REDUCTIONS]
    variants += [Step(f"channel-only-r{r}", (*on_plain, "--attention", "channel", "--reduction", str(r))) for r in REDUCTIONS]
    variants += [Step(f"spatial-only-k{k}", (*on_plain, "--attention", "spatial", "--kernel-size", str(k)))
                 for k in KERNEL_SIZES]
    return [plain, canonical, *variants]


def shipped_names() -> list[str]:
    """Names of the variants the family ships, in training order."""
    return [step.name for step in plan()]


def _finished(out: Path, step: Step) -> bool:
    """Whether ``step`` has a card, built on the backbone weights that ship now."""
    path = out / f"{step.name}.json"
    if not path.exists():
        return False
    card = read_card(path)
    if card["architecture"].get("family") != "cbam-resnet":
        print(f"{step.name}: stale (an older network); retraining", flush=True)
        return False
    epochs = step.args[step.args.index("--epochs") + 1] if "--epochs" in step.args else None
    if epochs is not None and str(card["training"]["epochs"]) != epochs:
        print(f"{step.name}: stale (trained for {card['training']['epochs']} epochs, the plan has {epochs}); "
              "retraining", flush=True)
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
        print(f"{gallery.write(out)}: the gallery analysed by {CANONICAL} for the app's first page", flush=True)
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
    paced_h = sum(paced_seconds(c["training"]) for c in cards) / 3600
    total_h = sum(training_minutes(c["training"]) for c in cards) / 60
    head = (
        "| variant | trained | test top-1 % | single view % | worst class % | params | attention params | MFLOPs per pass "
        "| training min | evaluation min |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    count = f"{len(cards)} variant{'s' if len(cards) != 1 else ''}"
    machines = Counter(c["training"]["machine"] for c in cards)
    where = "; ".join(f"{name} ({n} run{'s' if n != 1 else ''})" for name, n in machines.most_common())
    paper = (f"\nBeside the paper ({PAPER}; findings checked against {PAPER_CHECK}, numbers not verifiable "
             f"here so not quoted):\n\n{markdown_table(paper_comparison(cards))}\n")
    return (f"{head}\n" + "\n".join(rows) + f"\n\n{count}: {train_h:.2f} h of training and "
            f"{total_h - train_h:.2f} h of evaluation, {total_h:.2f} h in all; {paced_h:.2f} h of training at each "
            f"run's median epoch time (epochs slowed by other work on the machine counted at their run's usual "
            f"pace). Trained on {where}.\n" + paper)


def paced_seconds(training: dict) -> float:
    """A card's training time at its median epoch time: what the run takes without the epochs that
    other work on the machine slowed down (the card's wall time where it has no epoch history)."""
    seconds = [e["seconds"] for e in training.get("history") or []]
    return median(seconds) * len(seconds) if seconds else training["wall_time_s"]


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
    t.add_argument("--out", type=Path, required=True, help="the family's folder (the app's is assets/family)")
    t.add_argument("--dataset-archive", type=Path)
    t.add_argument("--only", nargs="+", help="train only these variant names")
    g = sub.add_parser("gallery", help="analyse the sample images with the canonical model for the app's first page")
    g.add_argument("--out", type=Path, default=DEFAULT_ROOT)
    ti = sub.add_parser("test-images", help="export one CIFAR-10 test image per class, classified correctly, to the gallery")
    ti.add_argument("--out", type=Path, default=DEFAULT_ROOT)
    ti.add_argument("--data", type=Path, required=True, help="image folder with test/<class>/*")
    ci = sub.add_parser("channel-images", help="per block and channel, the test images that weight it most (shipped)")
    ci.add_argument("--out", type=Path, default=DEFAULT_ROOT)
    ci.add_argument("--data", type=Path, required=True, help="image folder with test/<class>/*")
    ci.add_argument("--only", nargs="+", help="only these variant names")
    s = sub.add_parser("table", help="print the family's accuracy table from the cards")
    s.add_argument("--out", type=Path, default=DEFAULT_ROOT)
    s.add_argument("--update-readme", type=Path, help="write the table into this README between its markers")
    args = p.parse_args(argv)
    if args.command == "train":
        return train_family(args.data, args.out, args.dataset_archive, args.only)
    if args.command == "test-images":
        for path in gallery.export_test_images(args.out, args.data):
            print(path)
        return 0
    if args.command == "channel-images":
        gallery.export_channel_images(args.out, args.data, args.only)
        return 0
    if args.command == "gallery":
        print(f"{gallery.write(args.out)}: the gallery analysed by the canonical model")
        return 0
    text = table(args.out)
    if args.update_readme:
        update_readme(args.update_readme, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Model cards: one JSON record per trained model, written by the training code, read by the UI.

A card carries everything needed to use and trust its weights: the architecture, class names,
preprocessing, measured accuracy, parameters and FLOPs, how it was trained, and the sha256 of the
data archive and of the weights file.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch

from .attention import CBAMConfig
from .resnet import CBAMResNet


def architecture(model: CBAMResNet, num_classes: int) -> dict:
    """The JSON description of a CBAM-ResNet that :func:`build_model` turns back into the network."""
    cfg = model.cbam_config
    return {
        "family": "cbam-resnet",
        "depth": model.depth,
        "width": model.width,
        "stem": model.stem,
        "num_classes": num_classes,
        "cbam": None
        if cfg is None or cfg.attention == "none"
        else {
            "order": cfg.order,
            "kernel_size": cfg.kernel_size,
            "reduction": cfg.reduction,
            "attention": cfg.attention,
            "layout": cfg.layout,
        },
    }


def build_model(arch: dict) -> CBAMResNet:
    """A freshly initialised network for an :func:`architecture` description."""
    cbam = CBAMConfig(**arch["cbam"]) if arch.get("cbam") else None
    return CBAMResNet(arch["depth"], cbam, num_classes=arch["num_classes"], stem=arch["stem"], width=arch["width"])


def machine() -> str:
    """A one-line description of this machine (CPU model, cores, torch version)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"


def write_card(path: str | os.PathLike, card: dict) -> None:
    """Write a card as pretty JSON, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=2) + "\n")
    os.replace(tmp, path)


def read_card(path: str | os.PathLike) -> dict:
    """Read a card."""
    return json.loads(Path(path).read_text())


def training_runs(training: dict) -> list[dict]:
    """A card's training runs, earliest first: the runs it continues (``previous``), then its own."""
    return [*(training_runs(training["previous"]) if training.get("previous") else []), training]


def training_minutes(training: dict) -> float:
    """Training and evaluation time of a card's runs, the earlier runs it continues included."""
    return sum(r["wall_time_s"] + r.get("evaluation_s", 0) for r in training_runs(training)) / 60


def training_summary(training: dict) -> str:
    """How a model was trained, in one paragraph, every run it continues included."""
    runs = [
        f"{r['epochs']} epoch(s) of {r['steps_per_epoch']} steps, batch {r['batch_size']}, {r['optimizer']}, "
        f"{r['schedule']}; {r['augmentation']}; seed {r['seed']}; {r['wall_time_s'] / 60:.1f} min"
        for r in training_runs(training)
    ]
    return (f"{training['trained']}. " + "; then ".join(f"run {i}: {text}" for i, text in enumerate(runs, 1))
            + f". In all {training_minutes(training):.1f} min of training and evaluation on {training['machine']}.")

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

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
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a network is built: reading cards needs none
    from torch import nn

    from .resnet import CBAMResNet


def architecture(model: CBAMResNet, num_classes: int) -> dict:
    """The JSON description of a network that :func:`build_model` turns back into it."""
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


def build_model(arch: dict) -> nn.Module:
    """A freshly initialised network for an :func:`architecture` description."""
    from .attention import CBAMConfig
    from .resnet import CBAMResNet
    from .weights import WeightsError

    if arch.get("family", "cbam-resnet") != "cbam-resnet":  # a WeightsError: the app shows it and stays up
        raise WeightsError(f"this card describes a {arch['family']} network, which this version of cbam-viz no longer builds")
    cbam = CBAMConfig(**arch["cbam"]) if arch.get("cbam") else None
    return CBAMResNet(arch["depth"], cbam, num_classes=arch["num_classes"], stem=arch["stem"], width=arch["width"])


def machine() -> str:
    """A one-line description of this machine (CPU model, cores, torch version)."""
    import torch

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


def training_minutes(training: dict) -> float:
    """Training and evaluation time of a card's run, in minutes."""
    return (training["wall_time_s"] + training.get("evaluation_s", 0)) / 60


def training_summary(training: dict) -> str:
    """How a model was trained, in one paragraph (from the fields its card has)."""
    t = training
    recipe = [t.get(k) for k in ("optimizer", "schedule", "augmentation", "averaging")]
    if "label_smoothing" in t:
        recipe.insert(2, f"label smoothing {t['label_smoothing']}")
    return (f"{t['trained']}. {t['epochs']} epoch(s) of {t['steps_per_epoch']} steps, batch {t['batch_size']}; "
            + "; ".join(r for r in recipe if r)
            + f"; seed {t['seed']}. {training_minutes(t):.1f} min of training and evaluation on {t['machine']}.")


def facts(card: dict) -> list[str]:
    """The card's headline facts as Markdown lines: accuracy, parameters, FLOPs, how it predicts."""
    m, cx = card.get("metrics"), card["complexity"]
    mirrored = card["preprocessing"].get("flip_average", False)
    accuracy = (f"{m['test_top1']:.2f}% top-1 on {m['test_images']:,} test images" if m
                else "accuracy not measured here (no ImageNet data on this machine)")
    lines = [f"**{accuracy}**", f"{cx['params']:,} parameters",
             f"{cx['flops'] / 1e6:,.1f} M FLOPs at {cx['input_shape'][-1]} px" + (" per pass" if mirrored else "")]
    if mirrored:
        shown = " The attention shown is the image's own pass." if card["architecture"].get("cbam") else ""
        lines.insert(1, "predictions average the logits of the image and of its mirror image (two passes); the "
                        f"image alone: {m['test_top1_single_view']:.2f}%.{shown}")
    return lines

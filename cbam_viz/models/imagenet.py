"""The ImageNet CBAM-ResNet-50 with the official weights, and a model card made for it by code.

The paper's weights (Jongchan/attention-module, ``RESNET50_CBAM_new_name_wrap.pth``) are linked from
that repository's README on Google Drive, which offers no stable direct URL; pytorchcv publishes the
same ImageNet weights converted, as a GitHub release asset with a checksum in its model store
(``pytorchcv/models/common/model_metainfos.csv``: ``cbam_resnet50``, 28,089,624 parameters, sha1
below, release v0.0.537). Any of the three checkpoint formats can also be loaded from a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .cards import architecture
from .download import CACHE_DIR, Pretrained
from .weights import WeightsError, sha256_file

if TYPE_CHECKING:  # torch is imported when the model is loaded: the app's first page needs none
    from .resnet import CBAMResNet

CBAM_RESNET50 = Pretrained(
    name="CBAM-ResNet-50, ImageNet-1k (official weights, pytorchcv conversion)",
    url="https://github.com/osmr/imgclsmob/releases/download/v0.0.537/cbam_resnet50-0505-d8cf8488.pth.zip",
    file_name="cbam_resnet50-0505-d8cf8488.pth",
    checksum="sha1:d8cf8488efb97afecd6b3287a3ca9fa093fc3127",
    source="pytorchcv model store (osmr/imgclsmob release v0.0.537)",
)
IMAGENET_CACHE = CACHE_DIR / "imagenet"
IMAGENET_PREPROCESSING = {"input_size": 224, "resize_size": 256, "interpolation": "bilinear",
                          "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def imagenet_classes() -> list[str]:
    """The 1,000 ImageNet class names, from torchvision (no download)."""
    from torchvision.models import ResNet50_Weights  # imported here: torchvision is slow to import

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def load_imagenet(path: str | os.PathLike, label: str | None = None) -> tuple[CBAMResNet, dict]:
    """A 1000-class CBAM-ResNet from a checkpoint file of any supported format, with its card."""
    from .checkpoints import load_checkpoint
    from .complexity import count_complexity

    model, info = load_checkpoint(path)
    arch = info["architecture"]
    if arch["stem"] == "cifar":
        raise WeightsError(f"this is a CBAM-ResNet-{arch['depth']} for 32 px images ({arch['num_classes']} classes), "
                           "a model like those of the built-in family, not an ImageNet model")
    if arch["num_classes"] != 1000:
        raise WeightsError(f"this checkpoint has {arch['num_classes']} classes; an ImageNet model has 1000")
    card = {
        "name": label or Path(path).name,
        "architecture": architecture(model, 1000),
        "classes": imagenet_classes(),
        "preprocessing": IMAGENET_PREPROCESSING,
        "metrics": None,  # no ImageNet data on this machine: accuracy is not measured here
        "complexity": count_complexity(model, (1, 3, 224, 224)).as_dict(),
        "weights": {"file": Path(path).name, "sha256": sha256_file(path), "format": info["format"]},
        "training": {"mode": "pretrained", "trained": f"ImageNet-1k, {info['format']} checkpoint"},
    }
    return model, card

"""What a model sees of an image: a model card's preprocessing, through torchvision transforms.

A card's ``preprocessing`` holds ``input_size`` S, ``mean`` and ``std``, and optionally
``resize_size`` (the shorter side before the centre crop; S when absent, i.e. the whole centre
square) and ``interpolation`` (``bilinear`` or ``bicubic``). The ImageNet model follows the
official evaluation: shorter side to 256 (bilinear), centre crop 224.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:  # torchvision is imported when a model runs: the crop shown needs none
    from torchvision.transforms import Compose


def transform(preprocessing: dict) -> Compose:
    """The torchvision transform from a PIL image to the model's normalised (3, S, S) tensor."""
    from torchvision import transforms

    size = preprocessing["input_size"]
    mode = transforms.InterpolationMode(preprocessing.get("interpolation", "bicubic"))
    return transforms.Compose([
        transforms.Resize(preprocessing.get("resize_size", size), interpolation=mode),
        transforms.CenterCrop(size),
        transforms.ToTensor(),
        transforms.Normalize(preprocessing["mean"], preprocessing["std"]),
    ])


def crop_box(size: tuple[int, int], preprocessing: dict) -> tuple[int, int, int, int]:
    """The square region of an image of ``size`` (w, h) that the model sees, in its own pixels."""
    w, h = size
    side = min(w, h) * preprocessing["input_size"] / preprocessing.get("resize_size", preprocessing["input_size"])
    left, top = (w - side) / 2, (h - side) / 2
    return round(left), round(top), round(left + side), round(top + side)


def model_crop(image: Image.Image, preprocessing: dict) -> Image.Image:
    """The part of ``image`` the model sees."""
    return image.crop(crop_box(image.size, preprocessing))

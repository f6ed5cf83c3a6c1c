"""One analysis: image -> model input (the card's preprocessing) -> predictions + every block's attention.

The result holds plain numpy arrays only, so renderers and the UI never touch torch modules.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext

import numpy as np
import torch
from PIL import Image
from torch import nn

from .capture import AttentionRecorder
from .results import Analysis, BlockAttention, display_view, model_crop, top_classes


def average_with_mirror(model: nn.Module, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean of ``logits`` (the model's output for ``x``) and the model's logits for the mirror image of ``x``.

    The models trained by :mod:`cbam_viz.train` saw every image both ways round, and their cards
    (``preprocessing.flip_average``) say that they predict with this mean.
    """
    return (logits + model(x.flip(3))) / 2


def model_input(image: Image.Image, preprocessing: dict, display_size: int = 384) -> tuple[torch.Tensor, np.ndarray]:
    """The normalised (1, 3, S, S) tensor per the card's preprocessing, and the same region for display.

    ``preprocessing``: ``input_size`` S, ``mean``, ``std`` and optionally ``resize_size`` (the shorter
    side before the centre crop; S when absent, i.e. the whole centre square is used).
    """
    size = preprocessing["input_size"]
    crop = model_crop(image, preprocessing)
    x = np.asarray(crop.resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    x = (x - np.array(preprocessing["mean"], np.float32)) / np.array(preprocessing["std"], np.float32)
    view = display_view(crop, display_size)
    return torch.from_numpy(x).permute(2, 0, 1)[None].contiguous(), view


@torch.no_grad()
def analyse(model: nn.Module, image: Image.Image, card: dict, lock: threading.Lock | None = None,
            top_k: int = 5, display_size: int = 384) -> Analysis:
    """Run ``model`` (eval mode) on ``image`` and record every CBAM block's attention.

    When the card's preprocessing has ``flip_average``, the probabilities come from the mean of the
    logits of the image and its mirror image, as in the card's test accuracy; the attention is the
    image's own pass (the mirror pass runs after the hooks are removed).

    ``lock`` serialises use of a model shared between threads (the app's cached models): hooks are
    attached and removed inside it, so concurrent analyses never see each other's attention.
    """
    x, view = model_input(image, card["preprocessing"], display_size)
    with lock or nullcontext():
        with AttentionRecorder(model) as rec:
            logits = model(x)
        if card["preprocessing"].get("flip_average"):
            logits = average_with_mirror(model, x, logits)
    probs = torch.softmax(logits[0].float(), 0).numpy()
    blocks = [
        BlockAttention(
            r.name,
            r.stage,
            None if r.channel_weights is None else r.channel_weights[0].numpy().copy(),
            None if r.spatial_map is None else r.spatial_map[0, 0].numpy().copy(),
            r.feature_shape,
        )
        for r in rec.records
    ]
    return Analysis(top_classes(probs, card["classes"], top_k), probs, blocks, view)

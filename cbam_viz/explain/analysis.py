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

from ..models.preprocessing import model_crop, transform
from .recorder import AttentionRecord, AttentionRecorder
from .results import Analysis, BlockAttention, display_view, top_classes


def average_with_mirror(model: nn.Module, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean of ``logits`` (the model's output for ``x``) and the model's logits for the mirror image of ``x``.

    The models trained by :mod:`cbam_viz.training.train` saw every image both ways round, and their
    cards (``preprocessing.flip_average``) say that they predict with this mean.
    """
    return (logits + model(x.flip(3))) / 2


def card_prediction(model: nn.Module, x: torch.Tensor, logits: torch.Tensor, card: dict,
                    single_view: bool = False) -> torch.Tensor:
    """The logits the card predicts with, from ``logits``, the model's output for ``x``: the mean with
    the mirror image's (:func:`average_with_mirror`) where the card's preprocessing has ``flip_average``
    and not ``single_view`` (the card's single-view accuracy); else ``logits`` themselves."""
    if single_view or not card["preprocessing"].get("flip_average"):
        return logits
    return average_with_mirror(model, x, logits)


def per_image_blocks(records: list[AttentionRecord], images: int) -> list[list[BlockAttention]]:
    """Each of ``images`` images' blocks from one recorded pass: every gate's tensor leaves torch
    once, and each image's :class:`BlockAttention` holds its own rows of it."""
    def array(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else t.float().cpu().numpy()

    gates = [(r, array(r.channel_weights), array(r.spatial_map)) for r in records]
    return [[BlockAttention(r.name, r.stage, None if c is None else c[i], None if s is None else s[i, 0], r.feature_shape)
             for r, c, s in gates] for i in range(images)]


def model_input(image: Image.Image, preprocessing: dict, display_size: int = 384) -> tuple[torch.Tensor, np.ndarray]:
    """The normalised (1, 3, S, S) tensor per the card's preprocessing, and the same region for display."""
    return transform(preprocessing)(image)[None], display_view(model_crop(image, preprocessing), display_size)


def seen_image(x: torch.Tensor, preprocessing: dict) -> np.ndarray:
    """The model's input (1, 3, S, S) back in pixels: uint8 (S, S, 3), what the model received."""
    mean, std = (torch.tensor(preprocessing[k]).view(3, 1, 1) for k in ("mean", "std"))
    return (x[0] * std + mean).mul(255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


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
        logits = card_prediction(model, x, logits, card)
    probs = torch.softmax(logits[0].float(), 0).numpy()
    (blocks,) = per_image_blocks(rec.records, 1)
    return Analysis(top_classes(probs, card["classes"], top_k), probs, blocks, view, seen_image(x, card["preprocessing"]))

"""Test accuracy of a model on decoded images (top-1 and per class)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import to_tensor


@torch.no_grad()
def evaluate_arrays(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, mean: list[float], std: list[float],
    batch_size: int = 500,
) -> dict:
    """Top-1 accuracy (percent) overall and per class of ``model`` on uint8 images (N, H, W, 3)."""
    was_training = model.training
    model.eval()
    preds = []
    try:
        for i in range(0, len(labels), batch_size):
            x = to_tensor(images[i : i + batch_size], mean, std).contiguous(memory_format=torch.channels_last)
            preds.append(model(x).argmax(1))
    finally:
        model.train(was_training)
    pred = torch.cat(preds).numpy()
    hits = pred == labels
    classes = np.unique(labels)
    return {
        "top1": round(100.0 * float(hits.mean()), 2),
        "per_class": [round(100.0 * float(hits[labels == c].mean()), 2) for c in range(int(classes.max()) + 1)],
        "images": int(len(labels)),
    }

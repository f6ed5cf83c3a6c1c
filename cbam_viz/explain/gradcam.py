"""Class evidence beside the attention: Grad-CAM and Grad-CAM++ at a block's output.

Grad-CAM (Selvaraju et al., 2017) weighs each channel of a layer's activations A by the average
gradient of the class score over the positions, sums and rectifies; Grad-CAM++ (Chattopadhay et
al., 2018) weighs the positive gradients with per-position coefficients. Both are computed here by
one forward hook on the block (removed afterwards) and ``torch.autograd.grad`` with respect to its
output, so the shared model's parameters get no ``.grad``. They match pytorch-grad-cam's
``GradCAM`` and ``GradCAMPlusPlus`` on the same model, layer and image (``tests/test_lessons.py``);
:func:`rank_correlation` compares a CAM with the block's spatial map.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

METHODS = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++"}


def grad_cam(model: nn.Module, x: Tensor, layer: str, target: int | None = None,
             method: str = "gradcam") -> tuple[np.ndarray, int]:
    """The CAM (H, W) of class ``target`` (default: the predicted one) at the output of the module
    ``layer`` for the first image of ``x``, rectified but not rescaled; and the class."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    module = model.get_submodule(layer)
    kept: list[Tensor] = []
    handle = module.register_forward_hook(lambda m, i, out: kept.append(out))
    try:
        with torch.enable_grad():
            logits = model(x)
            cls = int(logits[0].argmax()) if target is None else int(target)
            (grads,) = torch.autograd.grad(logits[0, cls], kept[0])
    finally:
        handle.remove()
    a, g = kept[0][0].detach().double(), grads[0].double()
    if method == "gradcam":
        weights = g.mean((1, 2))
    else:
        g2 = g.pow(2)
        alpha = g2 / (2 * g2 + a.sum((1, 2))[:, None, None] * g2 * g + 1e-6)
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        weights = (g.clamp(min=0) * alpha).sum((1, 2))
    cam = (weights[:, None, None] * a).sum(0).clamp(min=0)
    return cam.float().cpu().numpy(), cls


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps of the same shape (ties get their average rank)."""
    import pandas as pd

    ra = pd.Series(np.ravel(a)).rank().to_numpy()
    rb = pd.Series(np.ravel(b)).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])

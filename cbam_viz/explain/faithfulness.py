"""Is the attention faithful? Deletion and insertion curves, and a cascading randomisation check.

**Deletion and insertion** (Petsiuk et al., 2018, RISE). Rank the input's pixels by a map (the
block's spatial map Ms, a Grad-CAM, or a random order as the reference), resized to the input with
bilinear interpolation, ties broken at random. *Deletion* removes the top-ranked pixels first (they
take the value 0 of the normalised input: the data set's mean colour) and follows the probability
of the class: a map that points at the evidence makes it fall fast (a small area under the curve).
*Insertion* starts from the blurred image and reveals the pixels in the same order: a faithful map
makes it rise fast (a large area). ::

    curves = deletion_insertion(predict, x, {"Ms": ms, "random": None}, target=3, steps=50)

**Cascading randomisation** (Adebayo et al., 2018, "Sanity checks for saliency maps"). On a copy of
the model, re-initialise the CBAM parameters block by block from the last block down, and after each
step measure how much every block's attention still ranks like the original (Spearman). Blocks
before the randomised ones are untouched (1.0); a randomised block's map that still correlates
strongly reflects the image more than what the gate learned.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor, nn
from torchvision.transforms.functional import gaussian_blur

from .gradcam import rank_correlation
from .recorder import AttentionRecorder
from .steps import cbam_modules

Progress = Callable[[float], None]
MODES = ("deletion", "insertion")
MAPS = ("Ms", "Grad-CAM", "random")


def default_maps(input_size: int) -> list[str]:
    """The maps checked by default: all three for a small input; at ImageNet sizes, where each map's
    pair of curves takes seconds (bench/lessons.py), the block's Ms and the random reference."""
    return list(MAPS) if input_size <= 64 else ["Ms", "random"]


@dataclass(frozen=True)
class Curve:
    """The class probability as a fraction of the pixels is removed (deletion) or revealed
    (insertion) in the order of one map."""

    map: str
    mode: str
    fractions: np.ndarray
    probabilities: np.ndarray

    @property
    def area(self) -> float:
        """Area under the curve (fraction 0..1): lower is better for deletion, higher for insertion."""
        return float(np.trapezoid(self.probabilities, self.fractions))


def pixel_ranks(saliency: np.ndarray | None, size: tuple[int, int], seed: int = 0) -> Tensor:
    """Each input pixel's rank (H, W), 0 for the most salient: ``saliency`` resized bilinearly to
    ``size`` (H, W), ties broken at random; a random order when ``saliency`` is None."""
    h, w = size
    tiebreak = np.random.default_rng(seed).random(h * w)
    if saliency is None:
        order = np.argsort(tiebreak)
    else:
        up = cv2.resize(np.asarray(saliency, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        order = np.lexsort((tiebreak, -up.ravel()))  # by saliency, high first; then at random
    ranks = np.empty(h * w, dtype=np.int64)
    ranks[order] = np.arange(h * w)
    return torch.from_numpy(ranks.reshape(h, w))


def blurred(x: Tensor) -> Tensor:
    """Insertion's starting image: ``x`` (N, 3, S, S) under a Gaussian blur of sigma S/16 (2 pixels
    at 32, 14 at 224), so that it keeps the colours but hardly any shape."""
    sigma = x.shape[-1] / 16
    return gaussian_blur(x, [2 * int(2 * sigma) + 1] * 2, [sigma, sigma])


def perturbation_curve(predict: Callable[[Tensor], Tensor], x: Tensor, ranks: Tensor, target: int, mode: str,
                       steps: int = 50, batch: int = 16, progress: Progress | None = None) -> np.ndarray:
    """The probability of ``target`` at ``steps`` + 1 evenly spaced fractions of the pixels removed
    (``deletion``) or revealed (``insertion``) in the order of ``ranks``; ``predict`` maps a batch of
    inputs to probabilities. ``progress`` gets the fraction of batches done after each batch."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    counts = torch.linspace(0, ranks.numel(), steps + 1).round()
    start, end = (x, torch.zeros_like(x)) if mode == "deletion" else (blurred(x), x)
    out = []
    for i in range(0, steps + 1, batch):
        changed = (ranks[None, None] < counts[i:i + batch, None, None, None]).to(x.dtype)  # (b, 1, H, W)
        with torch.no_grad():
            out.append(predict(start * (1 - changed) + end * changed)[:, target])
        if progress:
            progress(min(1.0, (i + batch) / (steps + 1)))
    return torch.cat(out).float().numpy()


def deletion_insertion(predict: Callable[[Tensor], Tensor], x: Tensor, maps: dict[str, np.ndarray | None],
                       target: int, steps: int = 50, batch: int = 16, seed: int = 0,
                       progress: Progress | None = None) -> list[Curve]:
    """Deletion and insertion curves of class ``target`` for the image ``x`` (1, 3, S, S), one pair
    per map (None: a random order)."""
    fractions = np.linspace(0, 1, steps + 1)
    jobs = [(name, mode) for name in maps for mode in MODES]
    curves = []
    for j, (name, mode) in enumerate(jobs):
        part = (lambda f, j=j: progress((j + f) / len(jobs))) if progress else None
        probs = perturbation_curve(predict, x, pixel_ranks(maps[name], x.shape[-2:], seed), target, mode, steps,
                                   batch, part)
        curves.append(Curve(name, mode, fractions, probs))
    return curves


@dataclass(frozen=True)
class Cascade:
    """How each block's attention (columns: ``blocks``) ranks like the original after each step of
    the cascade (rows: ``steps``, the first being the original model), for the spatial maps and the
    channel weights (NaN where a gate is off or a map is constant); and every spatial map at every step."""

    blocks: list[str]
    steps: list[str]
    spatial: np.ndarray
    channel: np.ndarray
    maps: list[dict[str, np.ndarray]]


def _attention(model: nn.Module, x: Tensor) -> dict[str, tuple[np.ndarray | None, np.ndarray | None]]:
    with torch.no_grad(), AttentionRecorder(model) as rec:
        model(x)
    return {r.name: (None if r.channel_weights is None else r.channel_weights[0].numpy(),
                     None if r.spatial_map is None else r.spatial_map[0, 0].numpy()) for r in rec.records}


def cascading_randomisation(model: nn.Module, x: Tensor, seed: int = 0, progress: Progress | None = None) -> Cascade:
    """Re-initialise the CBAM parameters of a copy of ``model`` block by block from the last block
    down (each module's own ``reset_parameters``, seeded) and compare every block's attention on ``x``
    with the original's after each step. ``model`` itself is not changed."""
    work = copy.deepcopy(model).eval()
    cbams = cbam_modules(work)
    blocks = list(cbams)
    original = _attention(work, x)
    steps, spatial, channel, maps = ["original"], [], [], []

    def compare(now: dict) -> None:
        def rho(i: int, name: str) -> float:
            a, b = original[name][i], now[name][i]
            return float("nan") if a is None else rank_correlation(a, b)
        spatial.append([rho(1, n) for n in blocks])
        channel.append([rho(0, n) for n in blocks])
        maps.append({n: now[n][1] for n in blocks if now[n][1] is not None})

    compare(original)
    with torch.random.fork_rng(devices=[]):
        for i, name in enumerate(reversed(blocks)):
            torch.manual_seed(seed + i)
            for m in cbams[name].modules():
                if m is not cbams[name] and hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            steps.append(f"down to {name}")
            compare(_attention(work, x))
            if progress:
                progress((i + 1) / len(blocks))
    return Cascade(blocks, steps, np.array(spatial), np.array(channel), maps)

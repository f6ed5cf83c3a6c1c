"""What a variant's channel weights do over the test split: the examples of the channel drill-down
and the class profiles.

Measured over the whole test split (each image's own pass) by ``python -m cbam_viz.family
channel-images`` and shipped beside the variant as ``<name>.channels.npz``: per CBAM block, the
``k`` test images whose channel weight Mc is largest for each channel (their indices in the split,
in file order, their weights and classes, and the split's file names for the images named), and
the block's class profiles (:mod:`cbam_viz.explain.profiles`). The file holds no pixels; the page
shows the images where the test split is on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .profiles import Profiles, class_profiles

if TYPE_CHECKING:
    from torch import nn

SUFFIX = ".channels.npz"


def channel_weights(model: nn.Module, batches) -> dict[str, np.ndarray]:
    """Per block with channel attention, every image's channel weights (N, C), for the images of
    ``batches`` (normalised inputs, in order; each image's own pass)."""
    import torch

    from .recorder import AttentionRecorder

    parts: dict[str, list[np.ndarray]] = {}
    with torch.no_grad(), AttentionRecorder(model) as rec:
        for x in batches:
            rec.clear()
            model(x)
            for r in rec.records:
                if r.channel_weights is not None:
                    parts.setdefault(r.name, []).append(r.channel_weights.float().cpu().numpy())
    return {name: np.concatenate(p) for name, p in parts.items()}


def top_images(weights: dict[str, np.ndarray], k: int = 6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per block, from its (N, C) weights (:func:`channel_weights`): the indices (C, k) of the images
    with the largest weight per channel, largest first, and those weights (C, k; float16, which the
    page shows to 3 decimals)."""
    tops = {}
    for name, w in weights.items():
        index = np.argsort(-w.T, axis=1, kind="stable")[:, :k]
        tops[name] = (index.astype(np.int32), np.take_along_axis(w.T, index, 1).astype(np.float16))
    return tops


def save(path: str | os.PathLike, weights: dict[str, np.ndarray], labels: np.ndarray, files: list[str],
         num_classes: int, k: int = 6) -> Path:
    """Write the top ``k`` images per channel and the class profiles of per-block (N, C) ``weights``
    (:func:`channel_weights`, forward order) over images with classes ``labels`` and file names
    ``files`` (relative to the split's folder; only those of the images named are stored)."""
    tops = top_images(weights, k)
    profiles = class_profiles(weights, labels, num_classes)
    named = sorted({int(i) for index, _ in tops.values() for i in index.ravel()})
    arrays = {"blocks": np.array(list(weights)), "named": np.array(named, dtype=np.int32),
              "files": np.array([files[i] for i in named]), "class_counts": profiles.counts}
    for block, (index, weight) in tops.items():
        arrays[f"{block}.index"], arrays[f"{block}.weight"] = index, weight
        arrays[f"{block}.label"] = labels[index].astype(np.int8)
        arrays[f"{block}.profile"] = profiles.means[block]
        arrays[f"{block}.specificity"] = np.float64(profiles.specificity[block])
    path = Path(path)
    np.savez_compressed(path, **arrays)
    return path


@dataclass(frozen=True)
class Example:
    """One test image for a channel: its index in the split, the channel's weight on it, its class,
    and its file relative to the split's folder (``<class>/<file>``)."""

    index: int
    weight: float
    label: int
    file: str


class ChannelImages:
    """A variant's shipped ``<name>.channels.npz``, read without pickle."""

    def __init__(self, path: str | os.PathLike) -> None:
        with np.load(path, allow_pickle=False) as z:
            self._arrays = {k: z[k] for k in z.files}
        self._files = dict(zip(self._arrays["named"].tolist(), self._arrays["files"].tolist()))

    def blocks(self) -> list[str]:
        """The blocks measured, in forward order."""
        return self._arrays["blocks"].tolist()

    def profiles(self) -> Profiles:
        """The class profiles over the test split."""
        blocks = self.blocks()
        return Profiles(blocks, {b: self._arrays[f"{b}.profile"] for b in blocks},
                        {b: float(self._arrays[f"{b}.specificity"]) for b in blocks}, self._arrays["class_counts"])

    def examples(self, block: str, channel: int) -> list[Example]:
        """The test images with the largest weight of ``channel`` in ``block``, largest first."""
        index, weight, label = (self._arrays[f"{block}.{part}"][channel] for part in ("index", "weight", "label"))
        return [Example(int(i), float(w), int(c), self._files[int(i)]) for i, w, c in zip(index, weight, label)]

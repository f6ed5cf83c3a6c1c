"""Which test images a channel's weight is largest for: the examples of the channel drill-down.

For every CBAM block and channel, the ``k`` test images whose channel weight Mc is largest,
measured over the whole test split (each image's own pass) by ``python -m cbam_viz.family
channel-images`` and shipped beside the variant as ``<name>.channels.npz``: per block the images'
indices in the split (file order), their weights and classes, and the split's file names for the
images named. The file holds no pixels; the page shows the images where the test split is on disk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch import nn

SUFFIX = ".channels.npz"


def top_images(model: nn.Module, batches, k: int = 6) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per block with channel attention: the indices (C, k) of the images of ``batches`` (normalised
    inputs, in order) with the largest weight per channel, largest first, and those weights (C, k;
    float16, which the page shows to 3 decimals)."""
    import torch

    from .recorder import AttentionRecorder

    weights: dict[str, list[np.ndarray]] = {}
    with torch.no_grad(), AttentionRecorder(model) as rec:
        for x in batches:
            rec.clear()
            model(x)
            for r in rec.records:
                if r.channel_weights is not None:
                    weights.setdefault(r.name, []).append(r.channel_weights.float().cpu().numpy())
    tops = {}
    for name, parts in weights.items():
        w = np.concatenate(parts).T  # (C, N)
        index = np.argsort(-w, axis=1, kind="stable")[:, :k]
        tops[name] = (index.astype(np.int32), np.take_along_axis(w, index, 1).astype(np.float16))
    return tops


def save(path: str | os.PathLike, tops: dict[str, tuple[np.ndarray, np.ndarray]], labels: np.ndarray,
         files: list[str]) -> Path:
    """Write ``tops`` with each image's class (``labels`` of the whole split) and file name (``files``,
    relative to the split's folder) for the images it names."""
    named = sorted({int(i) for index, _ in tops.values() for i in index.ravel()})
    arrays = {"named": np.array(named, dtype=np.int32), "files": np.array([files[i] for i in named])}
    for block, (index, weight) in tops.items():
        arrays[f"{block}.index"], arrays[f"{block}.weight"] = index, weight
        arrays[f"{block}.label"] = labels[index].astype(np.int8)
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
        """The blocks measured."""
        return sorted(k.removesuffix(".index") for k in self._arrays if k.endswith(".index"))

    def examples(self, block: str, channel: int) -> list[Example]:
        """The test images with the largest weight of ``channel`` in ``block``, largest first."""
        index, weight, label = (self._arrays[f"{block}.{part}"][channel] for part in ("index", "weight", "label"))
        return [Example(int(i), float(w), int(c), self._files[int(i)]) for i, w, c in zip(index, weight, label)]

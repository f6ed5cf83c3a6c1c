"""Class profiles: how each block weights its channels per class, and how class-specific that is.

The SE and CBAM papers argue from many images that early blocks weight channels much the same for
every class and late blocks are class-specific. Over a set of images with classes (the test split,
or a visitor's images grouped by predicted class): per block, the mean channel-weight vector of
each class, and the block's *class specificity*: the share of the weights' variance over the images
that lies between the class means (eta squared, summed over channels),

    specificity = sum_c sum_k n_k (mean_kc - mean_c)^2 / sum_c sum_i (w_ic - mean_c)^2

0 when every class gets the same weights on average, 1 when the weights are a function of the
class. With few images per class it is biased upwards by about (classes - 1) / images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def specificity(weights: np.ndarray, labels: np.ndarray) -> float:
    """The class specificity of (N, C) ``weights`` with classes ``labels`` (N,); NaN when they do not vary."""
    w = np.asarray(weights, dtype=np.float64)
    centred = w - w.mean(0)
    total = float((centred**2).sum())
    if total == 0:
        return float("nan")
    between = sum(float((labels == k).sum()) * float(((w[labels == k].mean(0) - w.mean(0)) ** 2).sum())
                  for k in np.unique(labels))
    return between / total


@dataclass(frozen=True)
class Profiles:
    """Per block (forward order): each class's mean channel weights (K, C; a class without images
    is NaN), and the block's class specificity; with the number of images per class."""

    blocks: list[str]
    means: dict[str, np.ndarray]
    specificity: dict[str, float]
    counts: np.ndarray

    def rows(self, classes: list[str]) -> list[dict]:
        """Every block, class and channel's mean weight, as rows for a CSV."""
        return [{"block": b, "class": classes[k], "channel": c, "mean weight": round(float(v), 6)}
                for b in self.blocks for k, row in enumerate(self.means[b]) if self.counts[k]
                for c, v in enumerate(row)]


def class_profiles(weights: dict[str, np.ndarray], labels: np.ndarray, num_classes: int) -> Profiles:
    """:class:`Profiles` of per-block (N, C) ``weights`` (forward order) over images with ``labels``."""
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=num_classes)
    means = {}
    for block, w in weights.items():
        m = np.full((num_classes, w.shape[1]), np.nan, dtype=np.float32)
        for k in np.flatnonzero(counts):
            m[k] = w[labels == k].mean(0)
        means[block] = m
    return Profiles(list(weights), means, {b: specificity(w, labels) for b, w in weights.items()}, counts)


def predicted_class_profiles(analyses: list, num_classes: int) -> Profiles:
    """:class:`Profiles` of analysed images (:class:`~cbam_viz.explain.results.Analysis`), grouped by
    the class each is predicted to be (a set without labels: a visitor's uploads, a report's folder)."""
    weights: dict[str, list[np.ndarray]] = {}
    for a in analyses:
        for b in a.blocks:
            if b.channel_weights is not None:
                weights.setdefault(b.name, []).append(b.channel_weights)
    labels = np.array([int(np.argmax(a.probabilities)) for a in analyses], dtype=np.int64)
    return class_profiles({b: np.stack(w) for b, w in weights.items()}, labels, num_classes)

"""Image-folder datasets (``root/train/<class>/*``, ``root/test/<class>/*``) decoded once into arrays.

Decoding 60,000 JPEGs every epoch would cost more than training a small network on two cores, so
each split is decoded once, in parallel, into one uint8 array and cached on disk under a key that
changes when the files or the image size change.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor
from torch.nn import functional as F

from ..models.download import CACHE_DIR

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


class DatasetError(ValueError):
    """The dataset folder is missing, empty or malformed; the message says what to fix."""


@dataclass
class Split:
    """One split of an image-folder dataset, decoded: images (N, H, W, 3) uint8 and labels (N,)."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]


def list_split(root: Path, split: str) -> tuple[list[tuple[Path, int]], list[str]]:
    """The (file, class index) pairs of ``root/split``, classes sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    folder = root / split
    if not folder.is_dir():
        raise DatasetError(f"{root} has no '{split}' folder: expected {root}/{split}/<class>/<image files>")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{folder} has no class folders: expected {folder}/<class>/<image files>")
    items = []
    for index, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DatasetError(
                f"class folder {folder / name} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        items.extend((f, index) for f in files)
    return items, classes


def _decode(args: tuple[str, int]) -> np.ndarray:
    path, size = args
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                scale = size / min(im.size)
                im = im.resize((max(size, round(im.width * scale)), max(size, round(im.height * scale))), Image.BICUBIC)
                left, top = (im.width - size) // 2, (im.height - size) // 2
                im = im.crop((left, top, left + size, top + size))
            return np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None


def _cache_key(items: list[tuple[Path, int]], classes: list[str], size: int) -> str:
    h = hashlib.sha256(f"{size}|{'|'.join(classes)}".encode())
    for path, label in items:
        st = path.stat()
        h.update(f"{path.resolve()}|{label}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_split(root: Path, split: str, image_size: int = 32, cache_dir: Path | None = CACHE_DIR) -> Split:
    """Decode ``root/split`` into a :class:`Split`, square images of ``image_size`` pixels.

    Images that are not square or not ``image_size`` pixels are resized (shorter side) and centre
    cropped. The decoded arrays are cached in ``cache_dir`` (``None`` disables the cache).
    """
    items, classes = list_split(root, split)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "arrays" / f"{Path(root).name}-{split}-{image_size}px-{_cache_key(items, classes, image_size)}.npz"
        if path.exists():
            with np.load(path) as z:
                return Split(z["images"], z["labels"], classes)
    jobs = [(str(p), image_size) for p, _ in items]
    workers = max(1, min(os.cpu_count() or 1, 8))
    if len(jobs) < 500 or workers == 1:
        arrays = [_decode(j) for j in jobs]
    else:
        with ProcessPoolExecutor(workers) as pool:
            arrays = list(pool.map(_decode, jobs, chunksize=256))
    split_data = Split(np.stack(arrays), np.array([label for _, label in items], dtype=np.int64), classes)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, images=split_data.images, labels=split_data.labels)
        os.replace(tmp, path)
    return split_data


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of uint8 images (N, H, W, 3), in [0, 1] units."""
    x = images.reshape(-1, 3).astype(np.float64) / 255.0
    return [round(float(v), 4) for v in x.mean(0)], [round(float(v), 4) for v in x.std(0)]


def to_tensor(images: np.ndarray, mean: list[float], std: list[float]) -> Tensor:
    """uint8 (N, H, W, 3) -> normalised float (N, 3, H, W)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


def translate(x: Tensor, shifts: Tensor, pad: int) -> Tensor:
    """Shift each image of a batch (N, C, H, W) by up to ``pad`` pixels, reflect-padded.

    ``shifts`` (N, 2) holds each image's offsets (dy, dx) into the padded image, in ``[0, 2 pad]``.
    """
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = (shifts[:, 0, None] + torch.arange(h))[:, None, :, None]
    cols = (shifts[:, 1, None] + torch.arange(w))[:, None, None, :]
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]

"""Many images at once: batched analysis through a DataLoader, every block's attention captured.

    for item in analyse_files(model, card, paths, batch_size=64, workers=2):
        item.path, item.error or (item.probabilities.argmax(), item.blocks)

Images are decoded and preprocessed in DataLoader workers (the card's preprocessing, the same
checks as an upload: :func:`cbam_viz.app.images.load_image`); a file that cannot be read is yielded
with its error, and the rest go on. The model runs on batches on its own device (CUDA when it is
there), with the recorder's hooks on the gates for each batch's own pass; the results are plain numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..app.images import ImageError, load_image
from ..models.preprocessing import transform
from .analysis import card_prediction, per_image_blocks
from .recorder import AttentionRecorder
from .results import BlockAttention


@dataclass
class BatchItem:
    """One file's result: its class probabilities and every block's attention, or why it was rejected."""

    path: Path
    probabilities: np.ndarray | None = None
    blocks: list[BlockAttention] | None = None
    error: str | None = None


class ImageFiles(Dataset):
    """Image files as the model's input tensors; a file that cannot be read gives its error instead."""

    def __init__(self, paths: Sequence[str | Path], preprocessing: dict) -> None:
        self.paths, self.preprocessing = [Path(p) for p in paths], preprocessing
        self._transform = None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        if self._transform is None:
            self._transform = transform(self.preprocessing)
        try:
            return i, self._transform(load_image(self.paths[i].read_bytes())), None
        except (ImageError, OSError) as e:
            return i, None, str(e)


def _collate(items: list) -> list:
    return items  # tensors are stacked after the rejected files are set aside


def analyse_files(model: nn.Module, card: dict, paths: Sequence[str | Path], batch_size: int = 64,
                  workers: int = 2, progress: Callable[[int], None] | None = None,
                  single_view: bool = False) -> Iterator[BatchItem]:
    """Analyse every file of ``paths`` with ``model`` (eval mode) in batches; yields one
    :class:`BatchItem` per file, in order. ``progress`` gets the number of files done so far.
    ``single_view``: probabilities from each image alone, not averaged with its mirror image (see
    :func:`~cbam_viz.explain.analysis.card_prediction`); the attention is the image's own either way."""
    device = next(model.parameters()).device
    files = ImageFiles(paths, card["preprocessing"])
    loader = DataLoader(files, batch_size=batch_size, num_workers=workers, collate_fn=_collate,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    done = 0
    with torch.no_grad():
        for batch in loader:
            ok = [(i, x) for i, x, _ in batch if x is not None]
            results: dict[int, BatchItem] = {i: BatchItem(files.paths[i], error=err) for i, x, err in batch if x is None}
            if ok:
                x = torch.stack([x for _, x in ok]).to(device, non_blocking=True)
                with AttentionRecorder(model) as rec:
                    logits = model(x)
                logits = card_prediction(model, x, logits, card, single_view)  # the mirror pass, unrecorded
                probs = torch.softmax(logits.float(), 1).cpu().numpy()
                for row, ((i, _), blocks) in enumerate(zip(ok, per_image_blocks(rec.records, len(ok)))):
                    results[i] = BatchItem(files.paths[i], probs[row], blocks)
            for i in sorted(results):
                yield results[i]
            done += len(batch)
            if progress:
                progress(done)

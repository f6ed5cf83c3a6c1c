"""What the page shows: one model on one image, and its analysis."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..explain.results import Analysis


@dataclass(frozen=True)
class View:
    """One column: a model (card, id, loader of (model, card, lock)) on an image (label, bytes), analysed."""

    card: dict
    model_id: str
    load: Callable
    label: str
    data: bytes
    result: Analysis

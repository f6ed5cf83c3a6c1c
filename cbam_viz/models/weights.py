"""Reading and writing weight files safely: safetensors, or ``torch.load(weights_only=True)``.

Nothing here ever unpickles arbitrary objects: a pickle that would construct objects other than
tensors and plain containers (the way a malicious ``.pth`` runs code) is rejected by PyTorch's
restricted unpickler and reported as :class:`WeightsError`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from safetensors import SafetensorError

if TYPE_CHECKING:
    from torch import Tensor

MAX_WEIGHTS_BYTES = 512 * 2**20
"""Largest weights file read: room for the biggest CBAM-ResNet here (a ResNet-101 state dict is
about 189 MiB in float32) with some extra, while a stranger's file cannot exhaust memory."""


class WeightsError(ValueError):
    """A weights file could not be read or does not fit the model; the message says why."""


def human_bytes(n: int) -> str:
    """``n`` bytes as a short binary size: ``512 B``, ``1.5 KiB``, ``512.0 MiB``."""
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n} B" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``sha256``, ``sha1``...), read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    return file_digest(path, "sha256")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of bytes in memory."""
    return hashlib.sha256(data).hexdigest()


def save_weights(path: str | os.PathLike, state: Mapping[str, Tensor], half: bool = False) -> str:
    """Write ``state`` as safetensors (floating tensors as fp16 when ``half``); return its sha256."""
    from safetensors.torch import save_file

    tensors = {
        k: (v.detach().half() if half and v.is_floating_point() else v.detach()).contiguous().cpu()
        for k, v in state.items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)
    return sha256_file(path)


def read_weights(path: str | os.PathLike, max_bytes: int | None = None) -> dict:
    """Load a weights file without running code: safetensors, or a torch pickle with ``weights_only=True``.

    Floating tensors come back as float32. Returns the top-level object (a state dict, or a dict
    that holds one, such as the official checkpoint's ``{"state_dict": ...}``). Files larger than
    ``max_bytes`` (default :data:`MAX_WEIGHTS_BYTES`) are rejected before reading.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    limit = MAX_WEIGHTS_BYTES if max_bytes is None else max_bytes
    size = path.stat().st_size
    if size > limit:
        raise WeightsError(f"{path.name} is {human_bytes(size)}, over the {human_bytes(limit)} limit for weights files")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise WeightsError(f"weights file {path.name} is empty")
    import torch  # here, not at the top: the app's first page reads no weights and needs no torch
    from safetensors.torch import load_file

    kind = _sniff(head)
    if kind == "safetensors" or path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path.name} is not a readable safetensors file: {e}") from None
    elif kind != "torch":
        raise WeightsError(f"{path.name} is not a PyTorch checkpoint (.pth) or a safetensors file"
                           + (f": it is {kind}" if kind else " (its first bytes match neither)"))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            reason = next((line.strip() for line in str(e).splitlines() if "GLOBAL" in line or "global" in line), "")
            raise WeightsError(
                f"{path.name} was rejected: it is not a plain weights file (it asks to build objects "
                f"other than tensors, which could run code). {reason}".strip()
            ) from None
        except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
            raise WeightsError(f"{path.name} is not a readable PyTorch checkpoint (truncated or damaged): "
                               f"{str(e).splitlines()[0]}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path.name} holds a {type(state).__name__}, not a dict of weights")
    return _as_float32(state)


_SIGNATURES = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"), (b"RIFF", "a RIFF file (WebP, WAV, AVI)"), (b"\x1f\x8b", "a gzip archive"),
    (b"<", "a text document (HTML, XML or SVG)"), (b"{", "a JSON document"),
)


def _sniff(head: bytes) -> str | None:
    """What the first bytes of a file say it is: ``torch`` (zip or pickle), ``safetensors``, a
    description of another known format, or None."""
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "torch"  # torch.save's zip container, or the legacy pickle format
    if len(head) >= 9 and int.from_bytes(head[:8], "little") < 100 * 2**20 and head[8:9] == b"{":
        return "safetensors"  # 8-byte header length, then the JSON header
    for magic, what in _SIGNATURES:
        if head.lstrip().startswith(magic):
            return what
    return None


def _as_float32(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _as_float32(v) for k, v in obj.items()}
    return obj

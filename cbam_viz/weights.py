"""Reading and writing weight files safely: safetensors, or ``torch.load(weights_only=True)``.

Nothing here ever unpickles arbitrary objects: a pickle that would construct objects other than
tensors and plain containers (the way a malicious ``.pth`` runs code) is refused by PyTorch's
restricted unpickler and reported as :class:`WeightsError`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor


class WeightsError(ValueError):
    """A weights file could not be read or does not fit the model; the message says why."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_weights(path: str | os.PathLike, state: Mapping[str, Tensor], half: bool = False) -> str:
    """Write ``state`` as safetensors (floating tensors as fp16 when ``half``); return its sha256."""
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


def read_weights(path: str | os.PathLike) -> dict:
    """Load a weights file without running code: safetensors, or a torch pickle with ``weights_only=True``.

    Floating tensors come back as float32. Returns the top-level object (a state dict, or a dict
    that holds one, such as the official checkpoint's ``{"state_dict": ...}``).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise WeightsError(f"weights file {path.name} is empty")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path.name} is not a readable safetensors file: {e}") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise WeightsError(
                f"{path.name} was refused: it is not a plain weights file (it asks to build objects "
                f"other than tensors, which could run code). Details: {str(e).splitlines()[0]}"
            ) from None
        except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
            raise WeightsError(f"{path.name} is not a readable PyTorch checkpoint (truncated or another format): {e}") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path.name} holds a {type(state).__name__}, not a dict of weights")
    return _as_float32(state)


def _as_float32(obj):
    if isinstance(obj, Tensor):
        return obj.float() if obj.is_floating_point() else obj
    if isinstance(obj, dict):
        return {k: _as_float32(v) for k, v in obj.items()}
    return obj

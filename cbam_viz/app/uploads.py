"""Uploaded checkpoints on disk, bounded: content-addressed files in one private folder, oldest evicted.

The checkpoint readers take a path, so an uploaded file has to be written somewhere. Each upload
is stored once under the sha256 of its bytes (two users who upload the same file share it, and
nobody can reach a file without having its exact content); the folder never holds more than
``max_files`` files or ``max_bytes`` bytes: the least recently used are deleted first. A partial
file that a writer left behind (a server killed mid-write) is deleted after :data:`STALE_PART_S`.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ..models.weights import MAX_WEIGHTS_BYTES, WeightsError, human_bytes, sha256_bytes

STALE_PART_S = 3600  # a write in progress takes seconds; a partial file this old was abandoned

def default_folder() -> Path:
    """Where uploads are kept: ``$CBAM_VIZ_UPLOADS``, else ``cbam-viz-uploads`` in the system's temporary folder."""
    return Path(os.environ.get("CBAM_VIZ_UPLOADS") or Path(tempfile.gettempdir()) / "cbam-viz-uploads")


class UploadStore:
    """A folder of uploaded weights files with a cap on their number and total size."""

    def __init__(self, root: str | os.PathLike | None = None, max_files: int = 4,
                 max_bytes: int = 2 * MAX_WEIGHTS_BYTES) -> None:
        self.root, self.max_files, self.max_bytes = Path(root or default_folder()), max_files, max_bytes

    def files(self) -> list[Path]:
        """The stored files, most recently used first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_file() and not p.name.endswith(".part")]
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)

    def put(self, data: bytes, suffix: str) -> Path:
        """Store ``data`` (rejected over :data:`MAX_WEIGHTS_BYTES`) and return its path; evict the oldest."""
        if len(data) > MAX_WEIGHTS_BYTES:
            raise WeightsError(f"the upload is {human_bytes(len(data))}, over the "
                               f"{human_bytes(MAX_WEIGHTS_BYTES)} limit for weights files")
        if suffix not in (".pth", ".pt", ".tar", ".safetensors"):
            raise WeightsError(f"{suffix!r} is not a weights file type (.pth, .pt, .tar, .safetensors)")
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.root / f"{sha256_bytes(data)}{suffix}"
        if path.exists():
            path.touch()  # recently used again
        else:
            fd, part = tempfile.mkstemp(dir=self.root, suffix=".part")  # unique per writer thread
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(part, path)
        self._evict(keep=path)
        return path

    def _evict(self, keep: Path) -> None:
        for part in self.root.glob("*.part"):
            if time.time() - part.stat().st_mtime > STALE_PART_S:
                part.unlink(missing_ok=True)
        total = 0
        for i, p in enumerate(self.files()):
            size = p.stat().st_size
            if p != keep and (i >= self.max_files or total + size > self.max_bytes):
                p.unlink(missing_ok=True)
            else:
                total += size

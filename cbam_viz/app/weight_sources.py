"""Where the ImageNet model's weights may come from: a server setting, never a visitor's choice.

A teacher runs one server for a class, so every visitor is untrusted. Three environment variables,
read when the page is drawn, decide which sources the sidebar offers:

=============================  =========  =====================================================
``CBAM_VIZ_WEIGHTS_DOWNLOAD``  ``1``      the pinned download (URL and checksum in the code)
``CBAM_VIZ_WEIGHTS_DIR``       unset      a folder: local checkpoints only from inside it
``CBAM_VIZ_WEIGHTS_UPLOAD``    ``0``      visitors may upload a checkpoint
``CBAM_VIZ_WEIGHTS_UPLOAD_MB`` ``256``    the largest upload, in MiB (at most the weights limit)
=============================  =========  =====================================================

A local path is resolved (``..``, ``~`` and symbolic links followed) and must name a regular file
inside the folder: anything else is rejected with a message that says why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..models.weights import MAX_WEIGHTS_BYTES, WeightsError

SOURCES = ("download", "path", "upload")
LABELS = {"download": "download", "path": "local file", "upload": "upload"}


def _flag(value: str | None, default: bool) -> bool:
    return default if value is None or value.strip() == "" else value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class WeightSources:
    """The sources the server offers for the ImageNet weights."""

    download: bool = True
    folder: Path | None = None
    upload: bool = False
    upload_bytes: int = MAX_WEIGHTS_BYTES // 2

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> WeightSources:
        """The setting in ``env`` (the process environment by default); defaults where unset."""
        folder = env.get("CBAM_VIZ_WEIGHTS_DIR", "").strip()
        try:
            limit = max(1, min(int(env["CBAM_VIZ_WEIGHTS_UPLOAD_MB"]) * 2**20, MAX_WEIGHTS_BYTES))
        except (KeyError, ValueError):
            limit = cls.upload_bytes  # the field's default
        return cls(download=_flag(env.get("CBAM_VIZ_WEIGHTS_DOWNLOAD"), True),
                   folder=Path(folder).expanduser().resolve() if folder else None,
                   upload=_flag(env.get("CBAM_VIZ_WEIGHTS_UPLOAD"), False), upload_bytes=limit)

    def offered(self) -> list[str]:
        """The sources to show, in the sidebar's order."""
        on = {"download": self.download, "path": self.folder is not None, "upload": self.upload}
        return [s for s in SOURCES if on[s]]

    def local_file(self, text: str) -> Path:
        """The checkpoint a visitor named, as a resolved path inside the folder; :class:`WeightsError`
        says why a name is rejected (outside the folder, a link out of it, not a regular file)."""
        if self.folder is None:
            raise WeightsError("this server does not offer local weights files")
        name = text.strip()
        if not name:
            raise WeightsError("type the name of a checkpoint file in the weights folder")
        path = Path(name).expanduser()
        path = path if path.is_absolute() else self.folder / path
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            raise WeightsError(f"there is no file {name!r} in the weights folder") from None
        if not resolved.is_relative_to(self.folder):
            raise WeightsError(f"{name!r} is outside the weights folder (or a link that leads out of it); this "
                               "server only reads checkpoints inside it")
        if not resolved.is_file():
            raise WeightsError(f"{name!r} is not a regular file (a folder or a device): name a checkpoint file")
        return resolved

    def listing(self, limit: int = 50) -> list[str]:
        """Names of the checkpoint files directly inside the folder that :meth:`local_file` accepts."""
        if self.folder is None or not self.folder.is_dir():
            return []
        names = []
        for p in sorted(self.folder.iterdir()):
            if p.suffix not in (".pth", ".pt", ".tar", ".safetensors") or len(names) == limit:
                continue
            try:
                self.local_file(p.name)
            except WeightsError:
                continue
            names.append(p.name)
        return names

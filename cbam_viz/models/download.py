"""Download a file with a progress callback into a cache folder, verified by checksum.

Nothing partial is ever used: bytes go to ``<dest>.part`` and only a complete file whose checksum
matches is moved into place.
"""

from __future__ import annotations

import os
import shutil
import socket
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .weights import file_digest

CACHE_DIR = Path(os.environ.get("CBAM_VIZ_CACHE", Path.home() / ".cache" / "cbam-viz"))
"""Where downloads, decoded data sets and training checkpoints are kept ($CBAM_VIZ_CACHE)."""

Progress = Callable[[int, "int | None"], None]


class DownloadError(RuntimeError):
    """A download failed; the message says why and what still works."""


def verify(path: Path, checksum: str) -> bool:
    """Whether ``path`` matches ``checksum``, written ``sha256:<hex>`` or ``sha1:<hex>``."""
    algorithm, _, expected = checksum.partition(":")
    return file_digest(path, algorithm) == expected.lower()


def download(url: str, dest: Path, progress: Progress | None = None, timeout: float = 30.0,
             chunk: int = 1 << 16) -> Path:
    """Fetch ``url`` into ``dest`` atomically; ``progress(done_bytes, total_bytes_or_None)`` per chunk."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    host = urllib.request.urlparse(url).netloc
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            while block := response.read(chunk):
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
        if total is not None and done != total:
            raise DownloadError(f"the connection to {host} closed after {done:,} of {total:,} bytes; try again")
    except DownloadError:
        part.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError, ValueError) as e:
        part.unlink(missing_ok=True)
        if isinstance(e, urllib.error.HTTPError):
            raise DownloadError(f"{host} answered HTTP {e.code} for {url}") from None
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"could not download from {host} ({reason}). This machine may be offline; the built-in "
            "models keep working, and the weights can be loaded from a local file instead."
        ) from None
    os.replace(part, dest)
    return dest


@dataclass(frozen=True)
class Pretrained:
    """A published weights file: where it is, what is inside, and the checksum of the weights."""

    name: str
    url: str
    file_name: str  # the weights file (inside the zip when ``url`` ends in .zip)
    checksum: str  # of the weights file, "sha1:<hex>" or "sha256:<hex>"
    source: str  # where the URL and checksum were published


def fetch(spec: Pretrained, cache_dir: Path, progress: Progress | None = None, timeout: float = 30.0) -> Path:
    """The verified weights file for ``spec`` in ``cache_dir``, downloaded (and unzipped) if needed."""
    cache_dir = Path(cache_dir)
    target = cache_dir / spec.file_name
    if target.is_file() and verify(target, spec.checksum):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    if not spec.url.endswith(".zip"):
        fetched = download(spec.url, cache_dir / (spec.file_name + ".download"), progress, timeout)
    else:
        archive = download(spec.url, cache_dir / (spec.file_name + ".zip"), progress, timeout)
        fetched = cache_dir / (spec.file_name + ".download")
        try:
            with zipfile.ZipFile(archive) as zf, zf.open(spec.file_name) as src, open(fetched, "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            fetched.unlink(missing_ok=True)
            raise DownloadError(f"the downloaded archive is damaged or lacks {spec.file_name} ({e})") from None
        finally:
            archive.unlink(missing_ok=True)
    if not verify(fetched, spec.checksum):
        fetched.unlink(missing_ok=True)
        raise DownloadError(f"the downloaded {spec.file_name} does not match its published checksum; it was deleted")
    os.replace(fetched, target)
    return target

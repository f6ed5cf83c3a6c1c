"""The page's ImageNet section: the weights source the server offers, and the model loaded from it.

Streamlit code: the sidebar's weights box and the model's cached loader. Which sources exist is the
server's setting (:mod:`cbam_viz.app.weight_sources`); every refusal is a message in the page.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import streamlit as st

from ..models.download import DownloadError, fetch, verify
from ..models.imagenet import load_imagenet
from ..models.weights import WeightsError, human_bytes
from . import weight_sources
from .jobs import Busy
from .resources import heavy_job
from .uploads import UploadStore

log = logging.getLogger(__name__)


@st.cache_resource(max_entries=3, show_spinner="Loading the ImageNet model and counting its FLOPs…")
def imagenet_model(path: str, order: str):
    """The ImageNet model (eval mode) run in ``order``, its card and a lock for its forward passes."""
    from ..models.attention import set_order  # torch

    model, card = load_imagenet(path)
    set_order(model, order)  # a what-if: the weights were trained channel-first
    return model, card, threading.Lock()


@st.cache_data(max_entries=8, show_spinner=False)
def _verified(path: str, mtime_ns: int, checksum: str) -> bool:
    return verify(Path(path), checksum)


@st.cache_resource
def _uploads() -> UploadStore:
    return UploadStore()


def _download(box) -> Path | None:
    from ..models import imagenet  # the pinned file (looked up on each run, so tests can point it elsewhere)

    spec, cache = imagenet.CBAM_RESNET50, imagenet.IMAGENET_CACHE
    cached = cache / spec.file_name
    if cached.is_file() and _verified(str(cached), cached.stat().st_mtime_ns, spec.checksum):
        return cached
    if box.button(f"Download from {spec.source}", key="download"):
        bar = box.progress(0.0, "downloading…")
        try:
            with heavy_job("download"):
                return fetch(spec, cache, lambda done, total: bar.progress(
                    min(1.0, done / total) if total else 0.0, f"{done / 2**20:.0f} MB"))
        except (DownloadError, Busy) as e:
            box.error(f"Download failed: {e}")
        finally:
            bar.empty()
    return None


def _local(box, sources: weight_sources.WeightSources) -> Path | None:
    names = sources.listing()
    text = box.text_input("Checkpoint in the weights folder (.pth / .safetensors; official, pytorchcv or timm format)",
                          key="weights_path", help="files here: " + (", ".join(names) or "none"))
    if not text:
        return None
    try:
        return sources.local_file(text)
    except WeightsError as e:
        box.error(f"{e}.")
        return None


def _upload(box, sources: weight_sources.WeightSources) -> Path | None:
    up = box.file_uploader("Checkpoint", type=["pth", "pt", "tar", "safetensors"], key="weights_upload",
                           max_upload_size=max(1, sources.upload_bytes // 2**20))
    if up is None:
        return None
    stored = st.session_state.get("stored_upload")  # (file id, path): each upload stored once
    if stored and stored[0] == up.file_id and Path(stored[1]).is_file():
        return Path(stored[1])
    if up.size > sources.upload_bytes:
        box.error(f"The upload is {human_bytes(up.size)}, over this server's {human_bytes(sources.upload_bytes)} "
                  "limit for weights files.")
        return None
    try:
        path = _uploads().put(up.getvalue(), Path(up.name).suffix.lower())
    except WeightsError as e:
        box.error(f"{e}.")
        return None
    st.session_state.stored_upload = (up.file_id, str(path))
    return path


def imagenet_weights(box) -> Path | None:
    """The ImageNet weights file from a source the server offers, or None while none is chosen."""
    sources = weight_sources.WeightSources.from_env()
    offered = sources.offered()
    if not offered:
        box.warning("This server offers no source for the ImageNet weights (see README, Serving a class).")
        return None
    source = box.radio("ImageNet weights", offered, horizontal=True, key="weights_source",
                       format_func=weight_sources.LABELS.get)
    if source == "download":
        return _download(box)
    if source == "path":
        return _local(box, sources)
    return _upload(box, sources)


def imagenet(weights_box, order: str) -> tuple[dict, str, object]:
    """The ImageNet model's card, id and loader, or a hint and a stop while no weights are chosen."""
    path = imagenet_weights(weights_box)
    if path is None:
        st.info("Choose where the ImageNet weights come from in the sidebar, under Model (this machine may be "
                "offline: the built-in CIFAR-10 family works without a network).")
        st.stop()
    try:
        loaded = imagenet_model(str(path), order)
    except WeightsError as e:
        log.info("ImageNet weights %s rejected: %s", path, e)
        st.error(f"These weights cannot be used: {e}")
        st.stop()
    return loaded[1], f"imagenet/{loaded[1]['weights']['sha256']}/{order}", lambda: loaded

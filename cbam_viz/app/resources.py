"""The app's cached resources, bounded: the family, its loaded variants, the precomputed gallery,
the analyses, the slots for heavy jobs, and the background import of torch. Streamlit's caches are the app's only state
shared between sessions."""

from __future__ import annotations

import importlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import astuple
from contextlib import AbstractContextManager

import streamlit as st

from ..explain.results import Analysis
from ..models.registry import Family, VariantKey
from ..models.weights import WeightsError
from .images import Limits, load_image
from .jobs import Busy, JobSlots, server_limit
from .precomputed import Precomputed

LIMITS = Limits()
KEPT = 6  # heavy results kept per session


@st.cache_resource(max_entries=4)
def family(root: str) -> Family:
    """The trained variants under ``root``."""
    return Family(root)


# room for every model of the built-in family, so a class visiting them all never reloads one
@st.cache_resource(max_entries=25, show_spinner="Loading the model (the first one also loads PyTorch)…")
def variant(root: str, *key_fields):
    """A loaded variant (model, card, lock for its forward passes), for the fields of its :class:`VariantKey`."""
    model, card = family(root).load(VariantKey(*key_fields))
    return model, card, threading.Lock()


def image_input(data: bytes, card: dict):
    """The model's input (1, 3, S, S) for an image's bytes, by the card's preprocessing (imports torch)."""
    from ..explain.analysis import model_input

    return model_input(load_image(data, LIMITS), card["preprocessing"])[0]


def member(root: str, key: VariantKey) -> tuple[dict, str, object]:
    """A family variant's card, its id (name and weights checksum) and a loader of (model, card,
    lock) that puts a message in the page and stops the run when the weights are unusable."""
    card = family(root).card(key)

    def load() -> tuple:
        try:
            return variant(root, *astuple(key))
        except WeightsError as e:
            st.error(str(e))
            st.stop()

    return card, f"cifar10/{card['name']}/{card['weights']['sha256']}", load


@st.cache_resource(max_entries=4)
def precomputed(root: str) -> Precomputed:
    """The gallery analysed in advance for the family under ``root``."""
    return Precomputed(root)


@st.cache_data(max_entries=64, show_spinner=False)
def analysed(model_id: str, image_bytes: bytes, root: str, _card: dict, _load_model) -> Analysis:
    """The analysis of an image: from the precomputed gallery when it is there, else run live."""
    known = precomputed(root).analysis(_card, image_bytes)
    if known is not None:
        return known
    from ..explain.analysis import analyse  # torch

    model, card, lock = _load_model()
    return analyse(model, load_image(image_bytes, LIMITS), card, lock=lock)


@st.cache_resource
def job_slots() -> JobSlots:
    """The server's slots for heavy jobs (curves, randomisation runs, downloads)."""
    return JobSlots(server_limit())


def heavy_job(what: str) -> AbstractContextManager[None]:
    """Hold one of the server's heavy-job slots for this session while the block runs; :class:`~cbam_viz.app.jobs.Busy`
    with a message for the page when none is free."""
    return job_slots().hold(st.session_state.setdefault("session_id", uuid.uuid4().hex), what)


def heavy_result(what: str, key: tuple, run: Callable) -> object | None:
    """The session's result for ``key``, or, on the button's click, run the heavy job ``run(progress)``
    for it with a progress bar; None while not computed."""
    ss = st.session_state
    kept = ss.setdefault("heavy_results", {})
    if key in kept:
        return kept[key]
    slot = st.empty()
    if not slot.button(f"Compute the {what}", key=f"run-{key[0]}"):
        return None
    bar = slot.progress(0.0, f"Computing the {what}…")  # in the button's place: the button goes
    try:
        with heavy_job(what):
            result = run(lambda f: bar.progress(min(1.0, f), f"Computing the {what}: {f:.0%}"))
    except Busy as e:
        st.warning(str(e))
        return None
    finally:
        bar.empty()
    while len(kept) >= KEPT:
        kept.pop(next(iter(kept)))
    kept[key] = result
    return result


@st.cache_resource
def torch_in_background() -> threading.Thread:
    """Import the analysis code (torch) once per server, so the first live analysis need not wait."""
    thread = threading.Thread(target=importlib.import_module, args=("cbam_viz.explain.analysis",), daemon=True,
                              name="cbam-viz-warm-up")
    thread.start()
    return thread

"""The page's class profiles: which blocks weight their channels by class, over many images.

Streamlit code. For a built-in variant, the profiles over the CIFAR-10 test split shipped with it
(:mod:`cbam_viz.explain.channel_images`); for any model, those of a set of uploaded images grouped
by the class the model predicts, computed as a heavy job with a progress bar.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from ..explain.profiles import Profiles
from ..render import charts
from .channel_panel import shipped_examples
from .resources import LIMITS, heavy_result
from .view import View

MAX_IMAGES = 200  # per uploaded set: a heavy job stays bounded


def _uploaded_profiles(view: View, files: list, progress) -> tuple[Profiles, list[str]]:
    """Profiles of the uploaded images by predicted class, and the files rejected (name: reason, as Markdown)."""
    from ..explain.analysis import analyse
    from ..explain.profiles import predicted_class_profiles
    from .images import ImageError, file_label, load_image, markdown_text

    model, card, lock = view.load()
    analysed, rejected = [], []
    for i, f in enumerate(files):
        try:
            analysed.append(analyse(model, load_image(f.getvalue(), LIMITS), card, lock=lock))
        except ImageError as e:
            rejected.append(f"{markdown_text(file_label(f.name))}: {e}")  # shown as Markdown, as typed
        progress((i + 1) / len(files))
    return predicted_class_profiles(analysed, len(card["classes"])), rejected


def class_profiles_panel(view: View, root: str | None, block: str) -> None:
    """Each block's class specificity from early to late, chosen classes' profiles, and a CSV of them."""
    panel = st.expander("Class profiles: which blocks weight their channels by class", key="profiles",
                        on_change="rerun")
    if not panel.open:
        return
    with panel:
        shipped = shipped_examples(root, view.card)
        sources = (["test split"] if shipped else []) + ["my images"]
        source = st.radio("Over", sources, horizontal=True, key="profiles_source",
                          format_func={"test split": "the test split (shipped with the model)",
                                       "my images": "images I upload (grouped by predicted class)"}.get)
        if source == "test split":
            profiles, note = shipped.profiles(), f"over {int(shipped.profiles().counts.sum()):,} test images"
        else:
            files = st.file_uploader(f"Images (at most {MAX_IMAGES})", accept_multiple_files=True, key="profile_files",
                                     max_upload_size=LIMITS.max_bytes // 2**20)
            if not files:
                st.caption("Upload a set of images: each is analysed and counted under the class the model predicts.")
                return
            files = files[:MAX_IMAGES]
            uploads = tuple(f.file_id for f in files)  # not a hash of up to 200 files on every rerun
            done = heavy_result("class profiles", ("profiles", view.model_id, uploads),
                                lambda progress: _uploaded_profiles(view, files, progress))
            if done is None:
                return
            profiles, rejected = done
            for line in rejected:
                st.warning(line)
            note = f"over {int(profiles.counts.sum())} uploaded images, grouped by predicted class"
            if not profiles.blocks:
                st.info("None of these images could be analysed, or this model has no channel attention.")
                return
        _show(profiles, view.card["classes"], block, note)


def _show(profiles: Profiles, classes: list[str], block: str, note: str) -> None:
    st.altair_chart(charts.specificity_bars(profiles.blocks, [profiles.specificity[b] for b in profiles.blocks]),
                    width="stretch")
    st.caption(f"Class specificity {note}: the share of the channel weights' variance that lies between the class "
               "means (0: every class weighted alike; 1: the weights follow the class). The SE and CBAM papers "
               "report early blocks near 0 and late blocks class-specific. With few images per class it reads high "
               f"by about (classes - 1) / images = {(len(classes) - 1) / max(1, profiles.counts.sum()):.3f}.")
    present = [k for k in range(len(classes)) if profiles.counts[k]]
    shown = block if block in profiles.blocks else profiles.blocks[-1]
    chosen = st.multiselect("Classes to compare", present, present[:2], key="profile_classes",
                            format_func=lambda k: f"{classes[k]} ({profiles.counts[k]} images)")
    if chosen:
        st.altair_chart(charts.class_profiles(profiles.means[shown], classes, chosen, shown), width="stretch")
    st.download_button("Class profiles (CSV)", pd.DataFrame(profiles.rows(classes)).to_csv(index=False),
                       "class-profiles.csv", "text/csv", on_click="ignore")

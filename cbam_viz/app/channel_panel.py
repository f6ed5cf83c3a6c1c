"""The page's channel drill-down: the channel a click on the bars selected, its feature map before and
after the block's gates on this image, and the test images that weight it most.

Streamlit code. The feature maps come from the step-through's capture of the block (cached with
it); the test images from the variant's shipped ``<name>.channels.npz``, drawn where the test split
is on this machine (:func:`~cbam_viz.app.precomputed.test_split`), else listed by class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from ..explain.channel_images import SUFFIX, ChannelImages
from ..render import overlays
from .lesson_panel import computed
from .precomputed import test_split
from .view import View

SIZE = 160  # pixels of each drawn map


@st.cache_resource(max_entries=8)
def _channel_images(path: str, mtime_ns: int) -> ChannelImages:
    return ChannelImages(path)


def shipped_examples(root: str | None, card: dict):
    """The variant's shipped channel examples, or None (the ImageNet model, or none measured)."""
    path = Path(root) / f"{card['name']}{SUFFIX}" if root else None
    return _channel_images(str(path), path.stat().st_mtime_ns) if path and path.is_file() else None


def channel_drilldown(view: View, root: str | None, block: str, channel: int, cmap: str) -> None:
    """Channel ``channel`` of ``block``: before and after the gates on this image, and its test images."""
    steps = computed("steps", view.model_id, view.data, (block,), view.card, view.load)
    before, after = steps.input[channel], steps.output[channel]
    lo, hi = float(min(before.min(), after.min())), float(max(before.max(), after.max()))
    hi = hi if hi > lo else lo + 1e-6
    weight = None if steps.channel is None else float(steps.channel.weights[channel])
    st.markdown(f"**Inside channel {channel} of {block}**: its feature map before and after the gates")
    left, right, note = st.columns([1, 1, 2])
    left.image(overlays.enlarge(overlays.colorize(before, cmap, lo, hi), SIZE), width=SIZE,
               caption=f"before the gates: {before.min():.3f} to {before.max():.3f}")
    right.image(overlays.enlarge(overlays.colorize(after, cmap, lo, hi), SIZE), width=SIZE,
                caption=f"after (x Mc x Ms): {after.min():.3f} to {after.max():.3f}")
    note.caption(f"One colour scale for both ({lo:.3f} to {hi:.3f}), so the change is what the gates did: every "
                 f"position scaled by the channel's weight{'' if weight is None else f' ({weight:.3f})'} and by its "
                 f"own spatial weight. Mean magnitude {np.abs(before).mean():.4f} before, {np.abs(after).mean():.4f} after.")
    examples = shipped_examples(root, view.card)
    if examples is None or block not in examples.blocks():
        st.caption("No test images were measured for this model's channels (the built-in family ships them).")
        return
    found = examples.examples(block, channel)
    classes, folder = view.card["classes"], test_split()
    st.markdown(f"**The {len(found)} test images that weight channel {channel} most** in {block}, largest first")
    cols = st.columns(len(found))
    for col, e in zip(cols, found):
        text = f"{classes[e.label]}, weight {e.weight:.3f}"
        if (folder / e.file).is_file():
            col.image(str(folder / e.file), caption=text, width="stretch")
        else:
            col.markdown(f"{text}  \n`test/{e.file}`")
    if not (folder / found[0].file).is_file():
        st.caption(f"The images are not drawn: the CIFAR-10 test split is not at {folder} on this server (set "
                   "CBAM_VIZ_TEST_SPLIT to its test folder). The file names are the data set's.")

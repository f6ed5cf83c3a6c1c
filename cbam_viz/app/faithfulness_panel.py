"""The page's faithfulness section: deletion and insertion curves, and the cascading randomisation check.

Streamlit code. Both are heavy jobs (:mod:`cbam_viz.app.jobs`): they start on a click, show a
progress bar, hold one of the server's slots, and run on a private copy of the model, so other
visitors' analyses never wait for them. Changing an input cancels a running job. Results are kept
in the session for the model, image and block they were computed for.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from ..render import charts, overlays, tables
from .resources import heavy_result, image_input


def _copy_of_model(load, card: dict):
    """A private copy of the loaded model and the prediction the page shows (the mirror mean where the card says)."""
    import copy

    from ..explain.analysis import card_prediction

    model, _, lock = load()
    with lock:
        model = copy.deepcopy(model)

    def predict(x):
        return card_prediction(model, x, model(x), card).softmax(1)
    return model, predict


def _curves(load, card: dict, data: bytes, block, target: int, maps: tuple[str, ...], progress):
    from ..explain.faithfulness import deletion_insertion
    from ..explain.gradcam import grad_cam

    model, predict = _copy_of_model(load, card)
    x = image_input(data, card)
    chosen = {"Ms": block.spatial_map, "random": None}
    if "Grad-CAM" in maps:
        chosen["Grad-CAM"] = grad_cam(model, x, block.name, target)[0]
    return deletion_insertion(predict, x, {m: chosen[m] for m in maps}, target, progress=progress)


def _cascade(load, card: dict, data: bytes, progress):
    from ..explain.faithfulness import cascading_randomisation

    model, _ = _copy_of_model(load, card)
    return cascading_randomisation(model, image_input(data, card), progress=progress)


def faithfulness_panel(load, model_id: str, data: bytes, card: dict, result, block, style: dict) -> None:
    """Deletion and insertion curves for the selected block's map, and the randomisation check."""
    panel = st.expander("Is the attention faithful? Deletion, insertion and a randomisation check", key="faithful",
                        on_change="rerun")
    if not panel.open:
        return
    image = hashlib.sha256(data).hexdigest()
    target = int(np.argmax(result.probabilities))
    with panel:
        st.markdown(f"**Deletion and insertion** for *{card['classes'][target]}* (the predicted class) at {block.name}")
        st.caption("Pixels ranked by a map (resized to the model's input). Deletion removes the top-ranked first (they "
                   "become the data set's mean colour): a map that points at the evidence makes the probability fall "
                   "fast, a small area. Insertion reveals them in the same order on a blurred copy: it should rise "
                   "fast, a large area. A random order is the reference; probabilities as in the top-5.")
        if block.spatial_map is None:
            st.info("Spatial attention is off in this configuration: there is no map Ms to rank pixels by.")
        else:
            from ..explain.faithfulness import MAPS, default_maps  # torch, only while the panel is open

            maps = tuple(st.multiselect("Maps", MAPS, default_maps(card["preprocessing"]["input_size"]),
                                        key="faithful_maps")) or ("Ms",)
            curves = heavy_result("deletion and insertion curves", ("curves", model_id, image, block.name, target, maps),
                          lambda progress: _curves(load, card, data, block, target, maps, progress))
            if curves:
                left, right = st.columns(2)
                left.altair_chart(charts.perturbation_curves(curves, "deletion"), width="stretch")
                right.altair_chart(charts.perturbation_curves(curves, "insertion"), width="stretch")
                areas = {c.map: {} for c in curves}
                for c in curves:
                    areas[c.map][f"{c.mode} area ({'lower' if c.mode == 'deletion' else 'higher'} is better)"] = f"{c.area:.3f}"
                st.markdown(tables.markdown_table([{"map": m, **a} for m, a in areas.items()]))
        st.markdown("**Sanity check** (Adebayo et al., 2018): randomise the CBAM parameters block by block, from the "
                    "last block down, on a copy of this model.")
        st.caption("Each row: the attention of every block after randomising the gates down to that block, as the rank "
                   "correlation with the original (1: unchanged). Blocks before the randomised ones stay at 1; a "
                   "randomised block's map that still correlates follows the image more than what its gate learned.")
        cascade = heavy_result("randomisation check", ("cascade", model_id, image), lambda progress: _cascade(load, card, data, progress))
        if cascade:
            what = st.radio("Attention", ["spatial maps Ms", "channel weights Mc"], horizontal=True, key="cascade_what")
            rho = cascade.spatial if what.startswith("spatial") else cascade.channel
            st.altair_chart(charts.cascade_heatmap(cascade.blocks, cascade.steps, rho, what), width="stretch")
            if block.name in cascade.maps[0]:
                step = st.select_slider(f"{block.name}'s map Ms at a step", cascade.steps, key="cascade_step")
                shown = cascade.maps[cascade.steps.index(step)][block.name]
                left, right = st.columns(2)
                left.image(overlays.overlay(result.view, cascade.maps[0][block.name], **style), width="stretch",
                           caption=f"{block.name}: the original Ms")
                right.image(overlays.overlay(result.view, shown, **style), width="stretch",
                            caption=f"{block.name} with the gates randomised from the last block {step}: "
                                    f"{overlays.range_note(shown)}" if step != "original" else f"{block.name}: the original Ms")

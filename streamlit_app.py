"""cbam-viz: upload an image, see what every CBAM block of a trained CBAM-ResNet attends to.

Run with ``streamlit run streamlit_app.py``. This script is the UI only: widgets, layout and calls
into ``cbam_viz``; every number it shows is computed there or read from a model card.
"""

from __future__ import annotations

import streamlit as st

# Nothing imported here loads torch: a gallery image analysed in advance (cbam_viz.app.precomputed)
# is shown without it, and torch is imported in a background thread meanwhile.
from cbam_viz.app import pictures
from cbam_viz.app.channel_panel import channel_drilldown
from cbam_viz.app.classroom_panel import classroom
from cbam_viz.app.compare_panel import side_by_side
from cbam_viz.app.controls import (MODELS, SCALES, Shown, attention_mode, classes_note, map_size, overlay_style,
                                   start_values)
from cbam_viz.app.imagenet_panel import imagenet
from cbam_viz.app.images import KINDS, ImageError, file_label, markdown_text
from cbam_viz.app.lesson_panel import lessons
from cbam_viz.app.precomputed import sample_files, test_images
from cbam_viz.app.predictions_panel import predictions_and_card
from cbam_viz.app.profiles_panel import class_profiles_panel
from cbam_viz.app.resources import LIMITS, analysed, family, member, torch_in_background
from cbam_viz.app.view import View
from cbam_viz.explain.results import Analysis
from cbam_viz.explain.statistics import usual_spread
from cbam_viz.models.config import KERNEL_SIZES, ORDERS, REDUCTIONS
from cbam_viz.models.registry import PROTOCOLS, VariantKey, VariantNotFound, default_root, normalise_key
from cbam_viz.render import charts, overlays, tables
from cbam_viz.render.exports import downloads

LESSON_CSS = "<style>html { font-size: 19px; } [data-testid='stMainBlockContainer'] { padding-top: 1.2rem; }</style>"
st.set_page_config(page_title="cbam-viz", layout="wide",  # a lesson-mode link opens with the sidebar closed
                   initial_sidebar_state="collapsed" if st.query_params.get("lesson") == "1" else "auto")
TEST_IMAGE = "cifar10-"  # the gallery's CIFAR-10 test images are named cifar10-<class>


# ---------------------------------------------------------------- sections of the page
def sidebar(start: dict):
    """Model, attention configuration and display controls (their values live in session state);
    returns the box under the model choice where the ImageNet weights source goes."""
    sb, ss = st.sidebar, st.session_state
    sb.title("cbam-viz")
    sb.radio("Model", MODELS, MODELS.index(start["model"]), key="model",
             format_func={"cifar10": "Built-in CIFAR-10 family", "imagenet": "ImageNet CBAM-ResNet-50"}.get)
    weights_box = sb.container()
    builtin = ss.model == "cifar10"
    sb.subheader("Attention")
    c1, c2 = sb.columns(2)
    c1.toggle("Channel", start["ca"], key="ca", disabled=not builtin)
    c2.toggle("Spatial", start["sa"], key="sa", disabled=not builtin)
    sb.radio("Training", PROTOCOLS, PROTOCOLS.index(start["protocol"]), key="protocol", disabled=not builtin,
             horizontal=True, help="end-to-end: every parameter trained from scratch (the canonical model and the plain "
             "network). like-for-like: every configuration trained the same way on the plain network's frozen "
             "convolutions, so that configurations compare fairly.")
    sb.selectbox("Order", ORDERS, ORDERS.index(start["order"]), key="order",
                 disabled=not ((ss.ca and ss.sa) or not builtin),
                 help="channel-first is the paper's; parallel computes both gates from the same input")
    if builtin:
        sb.selectbox("Spatial kernel size k", KERNEL_SIZES, KERNEL_SIZES.index(start["kernel"]), key="kernel",
                     disabled=not ss.sa)
        sb.selectbox("Reduction ratio r", REDUCTIONS, REDUCTIONS.index(start["ratio"]), key="ratio", disabled=not ss.ca)
        start["kernel"], start["ratio"] = ss.kernel, ss.ratio  # restored on the way back from the ImageNet model
    else:  # the ImageNet model's own values, not the family's last choice
        sb.selectbox("Spatial kernel size k", [7], disabled=True, key="imagenet_kernel")
        sb.selectbox("Reduction ratio r", [16], disabled=True, key="imagenet_ratio")
        sb.caption("Only one configuration of the ImageNet model was trained: k=7, r=16.")
        if ss.order != "channel-first":
            sb.warning(f"Untrained combination: channel-first weights run {ss.order}. A what-if, not a trained model.")
    sb.subheader("Display")
    sb.selectbox("Colormap", overlays.COLORMAPS, overlays.COLORMAPS.index(start["cmap"]), key="cmap")
    sb.slider("Overlay opacity", 0.0, 1.0, start["opacity"], key="opacity", step=0.05)
    sb.radio("Upsampling", [True, False], [True, False].index(start["smooth"]), key="smooth", horizontal=True,
             format_func=lambda s: "smooth" if s else "nearest")
    sb.radio("Colour scale", SCALES, SCALES.index(start["scale"]), key="scale", horizontal=True,
             help="relative: the map's own min..max; absolute: the sigmoid's full 0..1")
    sb.checkbox("Sort channels by weight", start["sort"], key="sort")
    sb.number_input("Highlight top-k channels", 1, 64, start["topk"], key="topk")
    sb.subheader("Classroom")
    sb.toggle("Lesson mode (projector)", start["lesson"], key="lesson", help="for 1280x720: the image, the block's "
              "map and bars on the first screen, larger type; the predictions below them")
    sb.toggle("Predict, then reveal", start["reveal"], key="reveal", help="the predictions stay hidden until a click")
    return weights_box


def builtin_model(root: str, attention: str) -> tuple[dict, str, object, VariantKey]:
    """The sidebar's variant: its card, id, a loader of (model, card, lock), and its key."""
    ss = st.session_state
    try:
        key = family(root).resolve(normalise_key(ss.order, ss.kernel, ss.ratio, attention, ss.protocol))
    except VariantNotFound as e:
        st.error(str(e))
        st.stop()
    if key.protocol != ss.protocol and attention != "none":
        st.sidebar.caption(f"This configuration was trained {key.protocol} only: that is the model shown.")
    return *member(root, key), key


def image_section(start: dict, samples: dict, root: str, card: dict, model_id: str, load) -> tuple[str, bytes, Analysis]:
    """The image (gallery, upload or camera) and its analysis."""
    source = st.radio("Image", ["gallery", "upload", "camera"], horizontal=True, key="source",
                      format_func=str.capitalize)
    data, label = None, None
    if source == "upload":
        up = st.file_uploader(f"An image ({KINDS})", key="upload",  # any file: the app says why one is rejected
                              max_upload_size=LIMITS.max_bytes // 2**20)
        data, label = (up.getvalue(), file_label(up.name)) if up is not None else (None, None)
    elif source == "camera":
        shot = st.camera_input("Take a picture")
        data, label = (shot.getvalue(), "camera") if shot is not None else (None, None)
    if data is not None:
        try:
            return label, data, analysed(model_id, data, root, card, load)
        except ImageError as e:
            st.error(f"{markdown_text(label)}: {e} Showing the gallery image instead.")
    names = list(samples)
    st.selectbox("Gallery image", names, names.index(start["sample"]), key="sample", format_func=sample_label,
                 help="photos: sources and licences in assets/samples/SOURCES.md; CIFAR-10 test images (the "
                 "built-in model's own world), where exported: CIFAR10.md beside them")
    label = st.session_state.sample
    data = samples[label].read_bytes()
    return label, data, analysed(model_id, data, root, card, load)


def sample_label(name: str) -> str:
    """A gallery image's name in the picker: what it shows and what kind of image it is."""
    return f"{name.removeprefix(TEST_IMAGE)} (CIFAR-10 test image)" if name.startswith(TEST_IMAGE) else f"{name} (photo)"


def what_the_model_saw(result: Analysis, card: dict, label: str, uploaded: bool) -> None:
    """The region of the photo the model saw beside the input it received, at the model's resolution."""
    if result.seen is None:
        return
    size = card["preprocessing"]["input_size"]
    photo, seen, note = st.columns([1, 1, 3])
    photo.image(result.view, width=160, caption="a CIFAR-10 test image, enlarged (nearest neighbours)"
                if label.startswith(TEST_IMAGE) and not uploaded else "the region the model saw")
    seen.image(overlays.enlarge(result.seen, 160), caption=f"what it received: {size}x{size} pixels", width=160)
    if uploaded and (text := classes_note(card)):
        note.info(text)


def one_block(view: View, start: dict, root: str | None, jpegs: dict[str, bytes]):
    """The chosen block's channel weights (interactive bars) and spatial map (over the image, from
    ``jpegs``), with what is usual for the block over the test set when its card measured it; in
    lesson mode, the image beside them."""
    ss, result, card = st.session_state, view.result, view.card
    st.subheader("One block")
    names = [b.name for b in result.blocks]
    # set on every run: a picker new to the browser would otherwise show its first option
    ss.block = ss.get("block") if ss.get("block") in names else (start["block"] if start["block"] in names else names[-1])
    st.selectbox("CBAM block (grouped by stage)", names, key="block", format_func=lambda n: result.block(n).label)
    block = result.block(ss.block)
    if ss.lesson:
        image_col, cw_col, sm_col = st.columns([2, 3, 3])
        image_col.image(result.view, caption="the region the model saw", width="stretch")
    else:
        cw_col, sm_col = st.columns(2)
    size = map_size(ss.lesson)
    with cw_col:
        if block.channel_weights is None:
            st.info("Channel attention is off in this configuration.")
        else:
            rows, bars = pictures.channel_bars(block.channel_weights, ss.sort, ss.topk, f"{block.name}: channel weights Mc")
            event = st.vega_lite_chart(spec=bars, on_select="rerun", key=f"bars-{block.name}", width="stretch",
                                       height=size - 44)
            picked = tables.picked_channel(event.selection.get(charts.CHANNEL_SELECTION), rows)
            st.markdown(tables.selected_channel(rows, picked, block.name))
            if picked is not None:
                channel_drilldown(view, root, block.name, picked, ss.cmap)
            st.markdown(tables.stats_table(block.channel_weights))
            st.caption("entropy: of the weights normalised to sum 1, divided by log C (1 = perfectly even). "
                       + usual_spread(card.get("attention_statistics"), block.name, "channel"))
    with sm_col:
        if block.spatial_map is None:
            st.info("Spatial attention is off in this configuration.")
        else:
            h, w = block.spatial_map.shape
            st.vega_lite_chart(spec=pictures.spatial_map(jpegs[block.name], block.spatial_map, ss.cmap, ss.scale, size),
                               key=f"map-{block.name}")
            st.caption(f"{block.name}: spatial map Ms ({h}x{w}) over the region the model saw; hover a cell for "
                       f"its value. {overlays.range_note(block.spatial_map)} "
                       + usual_spread(card.get("attention_statistics"), block.name))
    return block


def every_block(result: Analysis, jpegs: dict[str, bytes]) -> None:
    """Every block's spatial map (one row per stage, from ``jpegs``) and channel-weight distribution."""
    st.subheader("Every block")
    stages = result.spatial_stages()
    for blocks in stages.values():  # one row per stage, at most a quarter of the page per map
        for col, b in zip(st.columns(max(4, *map(len, stages.values()))), blocks):
            h, w = b.spatial_map.shape
            col.image(jpegs[b.name], caption=f"{b.name} ({h}x{w}): {overlays.range_note(b.spatial_map)}",
                      width="stretch", output_format="JPEG")
    if any(b.channel_weights is not None for b in result.blocks):
        st.vega_lite_chart(spec=pictures.weight_distribution(result.blocks), width="stretch")


def overlay_jpegs(result: Analysis) -> dict[str, bytes]:
    """Every spatial map over the image as JPEG, by block: made once per run for the block's chart and
    the every-block grid, in one cached entry (the image is hashed once)."""
    shown = [b for b in result.blocks if b.spatial_map is not None]
    return dict(zip((b.name for b in shown),
                    pictures.overlays_jpeg(result.view, tuple(b.spatial_map for b in shown), **style())))


def style() -> dict:
    """The sidebar's display settings for an overlay."""
    return overlay_style(st.session_state)


def exports(result: Analysis, block, config: dict, card: dict) -> None:
    """Download buttons for the view's figures (PNG, SVG), channel weights (CSV), predictions (JSON) and report (HTML)."""
    row, ss = st.container(horizontal=True), st.session_state
    for label, data, name, mime in downloads(result, block, config, style(), ss.topk, ss.sort, card):
        row.download_button(label, data, name, mime, on_click="ignore")  # saving a file needs no rerun


def main() -> None:
    ss = st.session_state
    samples = {**sample_files(), **sample_files(test_images())}  # the shipped photos, local test images
    if "start" not in ss:  # read once per session, then passed to the widgets as their defaults
        ss.start = start_values(st.query_params.to_dict(), list(samples))
    start = ss.start
    weights_box = sidebar(start)
    if ss.lesson:
        st.html(LESSON_CSS)
    else:
        st.title("What does CBAM attend to?")
    attention = attention_mode(ss.ca, ss.sa)
    root = str(default_root())
    builtin = ss.model == "cifar10"
    card, model_id, load, key = builtin_model(root, attention) if builtin else (*imagenet(weights_box, ss.order), None)
    label, data, result = image_section(start, samples, root, card, model_id, load)
    view = View(card, model_id, load, label, data, result)
    block_first = ss.lesson and result.blocks  # lesson mode: the block's maps first, the predictions below
    if not ss.lesson:
        what_the_model_saw(result, card, label, uploaded=ss.source != "gallery" and label != ss.get("sample"))
    if not block_first:
        told = predictions_and_card(view, Shown(label, ss.model, model_id), key, root)
    if not result.blocks:
        st.info("This is the plain ResNet without attention: there is no channel weight or spatial map to show. "
                "Turn a gate back on in the sidebar to compare.")
        st.stop()
    jpegs = overlay_jpegs(result)
    block = one_block(view, start, root if builtin else None, jpegs)
    if block_first:
        told = predictions_and_card(view, Shown(label, ss.model, model_id), key, root)
    if told:
        lessons(view, block, style())
        side_by_side(view, root, builtin, samples, block.name, style())
        class_profiles_panel(view, root if builtin else None, block.name)
    else:
        st.caption("The lesson panels, the side-by-side view and the downloads name the predicted class: they "
                   "appear once the predictions are revealed.")
    every_block(result, jpegs)
    classroom(card, ss.order if (ss.ca and ss.sa) or not builtin else None,
              list(family(root).cards.values()) if builtin else None)
    if told:
        exports(result, block, {"model": ss.model, "variant": card["name"], "attention": attention if builtin else "both",
                                "order": ss.order, "kernel_size": start["kernel"] if builtin else 7,
                                "reduction": start["ratio"] if builtin else 16, "image": label}, card)
    st.query_params.from_dict({
        "model": ss.model, "ca": int(ss.ca), "sa": int(ss.sa), "order": ss.order, "protocol": ss.protocol, "kernel": start["kernel"],
        "ratio": start["ratio"], "block": ss.block, "cmap": ss.cmap, "opacity": ss.opacity, "smooth": int(ss.smooth),
        "scale": ss.scale, "sort": int(ss.sort), "topk": ss.topk, "sample": ss.get("sample", start["sample"]),
        "lesson": int(ss.lesson), "reveal": int(ss.reveal),
    })
    torch_in_background()


main()

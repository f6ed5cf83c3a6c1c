"""cbam-viz: upload an image, see what every CBAM block of a trained CBAM-ResNet attends to.

Run with ``streamlit run streamlit_app.py``. This script is the UI only; everything it shows is
computed in ``cbam_viz`` or read from a model card.
"""

from __future__ import annotations

import html
import importlib
import sys
import threading
from functools import partial
from pathlib import Path

import streamlit as st

# Nothing imported here loads torch: it is loaded when a model first runs, so the first page, a
# gallery image analysed in advance (cbam_viz.precomputed), does not wait for it.
from cbam_viz import render
from cbam_viz.cards import training_summary
from cbam_viz.download import DownloadError, fetch, verify
from cbam_viz.explain import CHANNEL_FORMULA, ORDER_FORMULAS, SPATIAL_FORMULA, placement, reference_cbam512
from cbam_viz.imagenet import CBAM_RESNET50, DEFAULT_CACHE, load_imagenet
from cbam_viz.images import UPLOAD_TYPES, ImageError, Limits, load_image
from cbam_viz.precomputed import SAMPLES, Precomputed
from cbam_viz.registry import Family, VariantNotFound, default_root, normalise_key
from cbam_viz.results import Analysis
from cbam_viz.uploads import UploadStore
from cbam_viz.weights import MAX_WEIGHTS_BYTES, WeightsError

ORDERS = ["channel-first", "spatial-first", "parallel"]
KERNELS, RATIOS = [3, 7], [8, 16, 32]
MODELS, SCALES = ["cifar10", "imagenet"], ["relative", "absolute"]
LIMITS = Limits()

# The server's event loop answers the browser (the first page fetches ~60 script files) while a
# session's script runs in another thread of this process. With Python's default 5 ms switch
# interval each of its turns at the GIL waits up to 5 ms; 0.5 ms took ~0.2 s off the first page in
# an interleaved A/B (bench/README.md). An interpreter setting, not app state: idempotent.
sys.setswitchinterval(0.0005)

# no emoji page icon: checking one loads Streamlit's emoji catalogue, 0.2 s of the first page
st.set_page_config(page_title="cbam-viz", layout="wide")
# The placeholders of elements whose code is still loading pulse forever (an opacity animation). On a
# machine that draws the page without a GPU, that kept 60-90% of a core busy during the first page's
# load (bench/README.md). Still placeholders say the same. A style-only st.html takes no space.
st.html("<style>[data-testid=stSkeleton], [data-testid=stSkeletonElement] {animation: none !important}</style>")


# ---------------------------------------------------------------- cached resources (bounded)
@st.cache_resource(max_entries=4)
def family(root: str) -> Family:
    return Family(root)


@st.cache_resource(max_entries=24, show_spinner="Loading the model (the first one also loads PyTorch)…")
def variant(root: str, order: str, kernel: int, ratio: int, attention: str):
    model, card = family(root).load(normalise_key(order, kernel, ratio, attention))
    return model, card, threading.Lock()


@st.cache_resource(max_entries=3, show_spinner="Loading the ImageNet model and counting its FLOPs…")
def imagenet_model(path: str, order: str):
    model, card = load_imagenet(path)
    for m in model.modules():
        if hasattr(m, "order"):
            m.order = order  # a what-if: the weights were trained channel-first
    return model, card, threading.Lock()


@st.cache_resource(max_entries=4)
def precomputed(root: str) -> Precomputed:
    return Precomputed(root)


@st.cache_data(max_entries=64, show_spinner=False)
def analysed(model_id: str, image_bytes: bytes, root: str, _card: dict, _load_model) -> Analysis:
    """The analysis of an image by the model of ``_card``: read from the family's precomputed gallery
    when it is there (no model run, no torch), else run by ``_load_model()``'s (model, card, lock)."""
    known = precomputed(root).analysis(_card, image_bytes)
    if known is not None:
        return known
    from cbam_viz.analysis import analyse  # torch

    model, card, lock = _load_model()
    return analyse(model, load_image(image_bytes, LIMITS), card, lock=lock)


@st.cache_data(max_entries=64, show_spinner=False)
def distribution_png(model_id: str, image_bytes: bytes, _result: Analysis) -> bytes:
    """The heat map of every block's channel weights (render.weight_distribution) as PNG, drawn once per
    analysis: it depends on no display option, so the reruns that change one reuse it."""
    return render.png_bytes(render.weight_distribution(_result))


@st.cache_data(max_entries=8, show_spinner=False)
def verified(path: str, mtime_ns: int, checksum: str) -> bool:
    """Checksum of a cached download, computed once per version of the file (not on every rerun)."""
    return verify(Path(path), checksum)


@st.cache_resource
def torch_in_background() -> threading.Thread:
    """Imports the analysis code (torch) and loads CBAM's compiled gates (building them, the first time on
    this machine) in a background thread, once per server process, 2 s after the end of the first script
    run (whose page may need no torch): by then the browser has drawn that page, which this work would
    slow down on a small machine, and the first change need not wait for it."""
    def warm_up() -> None:
        importlib.import_module("cbam_viz.analysis")
        importlib.import_module("cbam_viz.fused").library()

    thread = threading.Timer(2.0, warm_up)
    thread.daemon = True
    thread.start()
    return thread


@st.cache_resource
def uploads() -> UploadStore:
    return UploadStore()


@st.cache_data(max_entries=1)
def reference() -> dict:
    return reference_cbam512()


# ---------------------------------------------------------------- the view a shared link starts from
def from_url(key: str, default, allowed=None, cast=str):
    """A control's starting value from the query string; ``default`` when absent or invalid."""
    try:
        value = cast(st.query_params[key]) if key in st.query_params else default
    except ValueError:
        return default
    return value if allowed is None or value in allowed else default


def as_bool(v: str) -> bool:
    return v in ("1", "true", "True")


samples = sorted(p.stem for p in SAMPLES.glob("*.jpg"))
if "start" not in st.session_state:
    # Read once per session and passed to the widgets as their defaults: the controls never depend on
    # session-state writes reaching the browser, which a run interrupted by the next one can lose.
    st.session_state.start = {
        "model": from_url("model", "cifar10", MODELS),
        "ca": from_url("ca", True, cast=as_bool), "sa": from_url("sa", True, cast=as_bool),
        "order": from_url("order", "channel-first", ORDERS),
        "kernel": from_url("kernel", 7, KERNELS, int), "ratio": from_url("ratio", 16, RATIOS, int),
        "cmap": from_url("cmap", "jet", render.COLORMAPS),
        "opacity": min(1.0, max(0.0, from_url("opacity", 0.5, cast=float))),
        "smooth": from_url("smooth", True, cast=as_bool),
        "scale": from_url("scale", "relative", SCALES),
        "sort": from_url("sort", False, cast=as_bool),
        "topk": min(64, max(1, from_url("topk", 10, cast=int))),
        "sample": from_url("sample", "cat" if "cat" in samples else samples[0], samples),
        "block": from_url("block", ""),
    }
start = st.session_state.start


def at(options: list, key: str) -> int:
    """Index of the starting value of control ``key`` among its ``options``."""
    return options.index(start[key])


# ---------------------------------------------------------------- sidebar: model and configuration
sb = st.sidebar
sb.title("cbam-viz")
sb.radio("Model", MODELS, at(MODELS, "model"), key="model",
         format_func={"cifar10": "Built-in CIFAR-10 family", "imagenet": "ImageNet CBAM-ResNet-50"}.get)
builtin = st.session_state.model == "cifar10"
weights_box = sb.container()  # the ImageNet model's weights source, filled in below, shown under the model choice
sb.subheader("Attention")
c1, c2 = sb.columns(2)
c1.toggle("Channel", start["ca"], key="ca", disabled=not builtin)
c2.toggle("Spatial", start["sa"], key="sa", disabled=not builtin)
both = (st.session_state.ca and st.session_state.sa) or not builtin
sb.selectbox("Order", ORDERS, at(ORDERS, "order"), key="order", disabled=not both,
             help="channel-first is the paper's; parallel computes both gates from the same input")
sb.selectbox("Spatial kernel size k", KERNELS, at(KERNELS, "kernel"), key="kernel",
             disabled=not builtin or not st.session_state.sa)
sb.selectbox("Reduction ratio r", RATIOS, at(RATIOS, "ratio"), key="ratio", disabled=not builtin or not st.session_state.ca)
if not builtin:
    sb.caption("Kernel and ratio are fixed by the ImageNet weights (k=7, r=16): only one configuration was trained.")
    if st.session_state.order != "channel-first":
        sb.warning(f"Untrained combination: channel-first weights run {st.session_state.order}. A what-if, not a trained model.")

sb.subheader("Display")
sb.selectbox("Colormap", render.COLORMAPS, at(list(render.COLORMAPS), "cmap"), key="cmap")
sb.slider("Overlay opacity", 0.0, 1.0, start["opacity"], key="opacity", step=0.05)
sb.radio("Upsampling", [True, False], at([True, False], "smooth"), key="smooth", horizontal=True,
         format_func=lambda s: "smooth" if s else "nearest")
sb.radio("Colour scale", SCALES, at(SCALES, "scale"), key="scale", horizontal=True,
         help="relative: the map's own min..max; absolute: the sigmoid's full 0..1")
sb.checkbox("Sort channels by weight", start["sort"], key="sort")
sb.number_input("Highlight top-k channels", 1, 64, start["topk"], key="topk")
show_raw = sb.checkbox("Show the raw map on its own")

st.title("What does CBAM attend to?")

# ---------------------------------------------------------------- the model
attention = {(True, True): "both", (True, False): "channel", (False, True): "spatial", (False, False): "none"}[
    (st.session_state.ca, st.session_state.sa)]
root = str(default_root())
if builtin:
    try:
        card = family(root).card(normalise_key(st.session_state.order, st.session_state.kernel,
                                               st.session_state.ratio, attention))
    except VariantNotFound as e:
        st.error(str(e))
        st.stop()
    model_id = f"cifar10/{card['name']}/{card['weights']['sha256']}"

    def load_model() -> tuple:
        """(model, card, lock), the weights read (and checked against the card) on first use."""
        try:
            return variant(root, st.session_state.order, st.session_state.kernel, st.session_state.ratio, attention)
        except WeightsError as e:
            st.error(str(e))
            st.stop()
else:
    cache = DEFAULT_CACHE
    cached = cache / CBAM_RESNET50.file_name
    source = weights_box.radio("ImageNet weights", ["download", "path", "upload"], horizontal=True,
                               key="weights_source",
                               format_func={"download": "download", "path": "local file", "upload": "upload"}.get)
    weights_path = None
    if source == "download":
        if cached.is_file() and verified(str(cached), cached.stat().st_mtime_ns, CBAM_RESNET50.checksum):
            weights_path = cached
        elif weights_box.button(f"Download from {CBAM_RESNET50.source}", key="download"):
            bar = weights_box.progress(0.0, "downloading…")
            reported = {"mb": -1}

            def progress(done: int, total: int | None) -> None:
                if done >> 20 != reported["mb"]:  # one update per MB
                    reported["mb"] = done >> 20
                    bar.progress(min(1.0, done / total) if total else 0.0, f"{done / 2**20:.0f} MB")

            try:
                weights_path = fetch(CBAM_RESNET50, cache, progress)
            except DownloadError as e:
                weights_box.error(f"Download failed: {e}")
    elif source == "path":
        text = weights_box.text_input("Path to a .pth / .safetensors checkpoint (official, pytorchcv or timm format)",
                                      key="weights_path")
        if text:
            weights_path = Path(text).expanduser()
    else:
        up = weights_box.file_uploader("Checkpoint", type=["pth", "pt", "tar", "safetensors"], key="weights_upload",
                                       max_upload_size=MAX_WEIGHTS_BYTES // 2**20)
        stored = st.session_state.get("stored_upload")  # (file id, path): store each upload once, not every rerun
        if up is not None and stored and stored[0] == up.file_id and Path(stored[1]).is_file():
            weights_path = Path(stored[1])
        elif up is not None:
            try:
                weights_path = uploads().put(up.getvalue(), Path(up.name).suffix.lower())
                st.session_state.stored_upload = (up.file_id, str(weights_path))
            except WeightsError as e:
                weights_box.error(str(e))
    if weights_path is None:
        st.info("Choose where the ImageNet weights come from in the sidebar, under Model (this machine may be "
                "offline: the built-in CIFAR-10 family works without a network).")
        st.stop()
    try:
        loaded = imagenet_model(str(weights_path), st.session_state.order)
    except WeightsError as e:
        st.error(f"These weights cannot be used: {e}")
        st.stop()
    card = loaded[1]
    model_id = f"imagenet/{card['weights']['sha256']}/{st.session_state.order}"

    def load_model() -> tuple:
        return loaded

# ---------------------------------------------------------------- the image
source = st.radio("Image", ["gallery", "upload", "camera"], horizontal=True, key="source",
                  format_func={"gallery": "Gallery", "upload": "Upload", "camera": "Camera"}.get)
image_bytes, image_label = None, None
if source == "upload":
    up = st.file_uploader("An image (JPEG, PNG, WebP, BMP, GIF, TIFF)", type=UPLOAD_TYPES, key="upload",
                          max_upload_size=LIMITS.max_bytes // 2**20)
    if up is not None:
        image_bytes, image_label = up.getvalue(), up.name
elif source == "camera":
    shot = st.camera_input("Take a picture")
    if shot is not None:
        image_bytes, image_label = shot.getvalue(), "camera"
result = None
if image_bytes is not None:
    try:
        result = analysed(model_id, image_bytes, root, card, load_model)
    except ImageError as e:
        st.error(f"{image_label}: {e} Showing the gallery image instead.")
if result is None:
    st.selectbox("Gallery image", samples, at(samples, "sample"), key="sample", help="sources and licences: assets/samples/SOURCES.md")
    image_bytes, image_label = (SAMPLES / f"{st.session_state.sample}.jpg").read_bytes(), st.session_state.sample
    result = analysed(model_id, image_bytes, root, card, load_model)

# ---------------------------------------------------------------- predictions and the model card
left, right = st.columns([3, 2])
with left:
    st.subheader("Top-5 predictions")
    # a new configuration is compared with the previous one of the same image and model (a new image
    # or model starts afresh); reruns that change only the display keep that baseline
    shown = (image_label, st.session_state.model, model_id)
    last = st.session_state.get("last")
    if last and last["shown"] != shown:  # same image and same label set (not CIFAR-10 against ImageNet)
        st.session_state.baseline = last if last["shown"][:2] == shown[:2] else None
    baseline = st.session_state.get("baseline")
    rows = []
    for cls, p in result.top:
        row = {"class": cls, "probability": f"{100 * p:.1f}%"}
        if baseline:
            before = baseline["probs"].get(cls)
            row["change (pts)"] = "new" if before is None else render.points(p - before)
        rows.append(row)
    st.container(key="predictions").markdown(render.markdown_table(rows, index="rank"))
    if baseline:
        st.caption(f"change (pts): in percentage points since {baseline['name']} on the same image "
                   "(new: not in its top-5)")
    st.session_state.last = {"shown": shown, "name": card["name"], "probs": dict(result.top)}
with right:
    st.subheader("This model")
    st.markdown(f"**{card['name']}**: {card['training']['trained']}")
    accuracy = (f"{card['metrics']['test_top1']:.2f}% top-1 on {card['metrics']['test_images']:,} test images"
                if card.get("metrics") else "accuracy not measured here (no ImageNet data on this machine)")
    mirrored = card["preprocessing"].get("flip_average", False)
    facts = [f"**{accuracy}**", f"{card['complexity']['params']:,} parameters",
             f"{card['complexity']['flops'] / 1e6:,.1f} M FLOPs at {card['complexity']['input_shape'][-1]} px"
             + (" per pass" if mirrored else "")]
    if mirrored:
        facts.insert(1, "predictions average the logits of the image and of its mirror image (two passes); the image "
                        f"alone: {card['metrics']['test_top1_single_view']:.2f}%. The attention shown is the image's own pass.")
    st.markdown("\n".join(f"- {f}" for f in facts))
    if card.get("metrics"):
        with st.expander("How it was trained, per-class accuracy"):
            st.markdown(training_summary(card["training"]))
            st.markdown(render.markdown_table([{"class": c, "top-1 %": f"{a:.1f}"} for c, a in
                                               zip(card["classes"], card["metrics"]["test_per_class_top1"])]))

if not result.blocks:
    st.info("This is the plain ResNet without attention: there is no channel weight or spatial map to show. "
            "Turn a gate back on in the sidebar to compare.")
    st.stop()

# ---------------------------------------------------------------- one block
st.subheader("One block")
names = [b.name for b in result.blocks]
chosen = st.session_state.get("block")
# set on every run: a picker that is new to the browser (another network's list, or the first one after
# the plain baseline, which has none) would otherwise show its first option while another block is drawn
st.session_state.block = chosen if chosen in names else (start["block"] if start["block"] in names else names[-1])
st.selectbox("CBAM block (grouped by stage)", names, key="block",
             format_func=lambda n: f"{n}  ·  stage {n[5]}, {result.block(n).feature_shape[0]} channels, "
                                   f"{result.block(n).feature_shape[1]}x{result.block(n).feature_shape[2]}")
block = result.block(st.session_state.block)
opts = dict(cmap=st.session_state.cmap, smooth=st.session_state.smooth, scale=st.session_state.scale)
cw_col, sm_col = st.columns(2)
csv = None
with cw_col:
    if block.channel_weights is None:
        st.info("Channel attention is off in this configuration.")
    else:
        frame = render.channel_rows(block.channel_weights, st.session_state.sort, st.session_state.topk)
        st.image(render.channel_bars(frame, f"{block.name}: channel weights Mc"),
                 caption="red: the top-k channels; every weight, exactly, in the CSV export below", output_format="PNG")
        s = render.weight_stats(block.channel_weights)
        st.markdown(render.markdown_table([{"mean": f"{s.mean:.4f}", "std": f"{s.std:.4f}", "min": f"{s.min:.4f}",
                                            "max": f"{s.max:.4f}", "entropy": f"{s.entropy:.4f}"}]))
        st.caption("entropy: of the weights normalised to sum 1, divided by log C (1 = perfectly even)")
        csv = partial(render.channel_csv, frame)  # built when the button is clicked
overlay_png = None
with sm_col:
    if block.spatial_map is None:
        st.info("Spatial attention is off in this configuration.")
    else:
        vmin, vmax = render.value_range(block.spatial_map, st.session_state.scale)
        overlaid = render.overlay(result.view, block.spatial_map, opacity=st.session_state.opacity, **opts)
        colorbar = render.colorbar(st.session_state.cmap, vmin, vmax, height=overlaid.shape[0])  # the raw map's too
        figure = render.side_by_side(overlaid, colorbar)
        h, w = block.spatial_map.shape
        st.image(figure, caption=f"{block.name}: spatial map Ms ({h}x{w}) over the region the model saw")
        if show_raw:
            raw = render.overlay(result.view, block.spatial_map, opacity=1.0, **opts)
            st.image(render.side_by_side(raw, colorbar), caption="the raw map on its own")
        overlay_png = partial(render.png_bytes, figure)  # encoded when the button is clicked, not on every rerun

# ---------------------------------------------------------------- every block
st.subheader("Every block")
grid_png = None
if any(b.spatial_map is not None for b in result.blocks):
    grid = render.grid(result, opacity=st.session_state.opacity, **opts)
    st.image(grid, caption="spatial maps from early (top) to late (bottom) stages")
    grid_png = partial(render.png_bytes, grid)
if any(b.channel_weights is not None for b in result.blocks):
    st.image(distribution_png(model_id, image_bytes, result),
             caption="channel weights of every block: the share of its channels in each weight bin")

# ---------------------------------------------------------------- classroom
# drawn only while open: its formulas load KaTeX in the browser, 0.3 s of the first page otherwise
classroom = st.expander("How CBAM works (for the classroom)", key="classroom", on_change="rerun")
if classroom.open:
    with classroom:
        st.markdown("**Channel attention** weighs each feature channel:")
        st.latex(CHANNEL_FORMULA)
        st.markdown("**Spatial attention** weighs each position:")
        st.latex(SPATIAL_FORMULA)
        order = st.session_state.order if both else None
        if order:
            st.markdown(f"**Order** ({order}):")
            st.latex(ORDER_FORMULAS[order])
        st.markdown("**Where CBAM sits**: on the residual branch, after the last BatchNorm, before the addition.")
        # a monospace block that keeps its line breaks, without loading st.code's syntax highlighter
        # (Streamlit turns a bare <pre> into a proportional-font <div>)
        diagram = html.escape(placement(card["architecture"]))
        st.markdown(f'<div class="placement" style="white-space: pre; font-family: monospace; overflow-x: auto; '
                    f'line-height: 1.3; margin-bottom: 1rem">{diagram}</div>', unsafe_allow_html=True)
        cx, ref = card["complexity"], reference()
        st.markdown(
            f"**This configuration**: {cx['params']:,} parameters, of which {cx['attention_params']:,} in CBAM; "
            f"{cx['flops']:,} FLOPs at {cx['input_shape'][-1]} px, of which {cx['attention_flops']:,} in CBAM "
            f"({100 * cx['attention_flops'] / cx['flops']:.2f}%).  \n"
            f"**Reference**: one CBAM(C=512, r=16, k=7) on a 512x7x7 input has {ref['params']:,} parameters and "
            f"{ref['flops']:,} FLOPs (thop's counting rules)."
            + (f"  \n**Accuracy** (model card): {card['metrics']['test_top1']:.2f}% top-1." if card.get("metrics") else "")
        )
        st.markdown(render.markdown_table([{"CBAM block": n, "parameters": f"{v['params']:,}", "FLOPs": f"{v['flops']:,}"}
                                            for n, v in cx["blocks"].items()]))

# ---------------------------------------------------------------- exports and the shareable URL
config = {"model": st.session_state.model, "variant": card["name"], "attention": attention,
          "order": st.session_state.order, "kernel_size": st.session_state.kernel, "reduction": st.session_state.ratio,
          "image": image_label}
exports = st.container(horizontal=True)  # one row of buttons at their natural widths, wrapping when narrow
saved = dict(on_click="ignore")  # saving a file needs no rerun
if overlay_png:
    exports.download_button("Overlay (PNG)", overlay_png, f"{block.name}-overlay.png", "image/png", **saved)
if grid_png:
    exports.download_button("Grid (PNG)", grid_png, "attention-grid.png", "image/png", **saved)
if csv:
    exports.download_button("Channel weights (CSV)", csv, f"{block.name}-channel-weights.csv", "text/csv", **saved)
exports.download_button("Configuration + predictions (JSON)", render.predictions_json(result, config),
                        "cbam-viz.json", "application/json", **saved)

st.query_params.from_dict({
    "model": st.session_state.model, "ca": int(st.session_state.ca), "sa": int(st.session_state.sa),
    "order": st.session_state.order, "kernel": st.session_state.kernel, "ratio": st.session_state.ratio,
    "block": st.session_state.block, "cmap": st.session_state.cmap, "opacity": st.session_state.opacity,
    "smooth": int(st.session_state.smooth), "scale": st.session_state.scale, "sort": int(st.session_state.sort),
    "topk": st.session_state.topk, "sample": st.session_state.get("sample", start["sample"]),
})
torch_in_background()

"""The page's lesson sections: step through the selected block's math, knock its gates out, and
Grad-CAM beside its spatial map (the faithfulness checks are in :mod:`.faithfulness_panel`).

Streamlit code. Each runs the loaded model on the image shown, under the model's lock, only while
its expander is open (a closed one costs nothing and loads no torch), and its result is cached per
model, image and settings, so a rerun for another control does not run it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from ..explain.knockouts import KNOCKOUTS
from ..render import charts, overlays, tables
from .faithfulness_panel import faithfulness_panel
from .resources import image_input
from .view import View

if TYPE_CHECKING:
    from ..explain.steps import BlockSteps


@st.cache_data(max_entries=32, show_spinner="Running the model on this image…")
def computed(what: str, model_id: str, data: bytes, args: tuple, _card: dict, _load):
    """One lesson computation (``steps``, ``knockouts`` or ``gradcam``) on the image by the model."""
    import torch

    from ..explain.gradcam import grad_cam
    from ..explain.knockouts import knocked_out, knockout_table
    from ..explain.steps import step_through

    model, _, lock = _load()
    x = image_input(data, _card)
    with lock, torch.no_grad():
        if what == "steps":
            return step_through(model, args[0], x)
        if what == "gradcam":
            return grad_cam(model, x, *args)
        blocks, kind, k = args
        with knocked_out(model, blocks, kind, k):
            probs = model(x).softmax(1)[0].numpy()
        return probs, *knockout_table(model, x, kind, k)


def _map(values: np.ndarray, cmap: str, caption: str, col) -> None:
    lo, hi = float(values.min()), float(values.max())
    picture = overlays.colorize(values, cmap, lo, hi if hi > lo else lo + 1e-12)
    col.image(overlays.enlarge(picture, 160), caption=f"{caption}: {lo:.4f} to {hi:.4f}", width="stretch")


def _channel_steps(steps: BlockSteps) -> None:
    c = steps.channel
    first = steps.sequence[0] == "channel" or steps.order == "parallel"
    st.markdown(f"**Channel gate** on {'the block input' if first else 'the spatially gated features'} "
                f"({len(c.weights)} channels, {len(c.hidden_avg)} hidden units)")
    left, right = st.columns(2)
    left.altair_chart(charts.step_bars({"average": c.avg, "max": c.max}, "1. descriptors: AvgPool and MaxPool",
                                       "value"), width="stretch", height=240)
    right.altair_chart(charts.step_bars({"average": c.hidden_avg, "max": c.hidden_max},
                                        "2. shared MLP, hidden layer after ReLU", "value", "hidden unit"), width="stretch",
                       height=240)
    left.altair_chart(charts.step_bars({"MLP(average)": c.mlp_avg, "MLP(max)": c.mlp_max, "sum": c.logits},
                                       "3. the MLP's two outputs and their sum", "logit"), width="stretch", height=240)
    right.altair_chart(charts.step_bars({"Mc": c.weights}, "4. sigmoid of the sum: the weights Mc", "weight"),
                       width="stretch", height=240)


def _spatial_steps(steps: BlockSteps, cmap: str) -> None:
    s = steps.spatial
    first = steps.sequence[0] == "spatial" or steps.order == "parallel"
    st.markdown(f"**Spatial gate** on {'the block input' if first else 'the channel-gated features'} "
                f"({s.weights.shape[0]}x{s.weights.shape[1]} positions, a {s.kernel.shape[-1]}x{s.kernel.shape[-1]} kernel)")
    cols = st.columns(7)
    for col, (values, caption) in zip(cols, [(s.mean, "1. channel mean"), (s.max, "1. channel max"),
                                             (s.kernel[0], "2. kernel, mean plane"), (s.kernel[1], "2. kernel, max plane"),
                                             (s.conv, "3. convolution"), (s.logits, "4. before the sigmoid"),
                                             (s.weights, "5. Ms")]):
        _map(values, cmap, caption, col)


def step_through_panel(load, model_id: str, data: bytes, card: dict, block: str, cmap: str) -> None:
    """The selected block's computation on this image, gate by gate in the block's order."""
    panel = st.expander("How the selected block computes its gates, step by step", key="steps", on_change="rerun")
    if not panel.open:
        return
    steps = computed("steps", model_id, data, (block,), card, load)
    with panel:
        st.caption(f"{block}, order {steps.order}. Every value is captured from the real modules on this image (forward hooks).")
        for gate in steps.sequence:
            if gate == "channel":
                _channel_steps(steps)
            else:
                _spatial_steps(steps, cmap)
        change = np.abs(steps.output - steps.input)
        st.markdown(f"**Refined output** = input x Mc x Ms: the features change by {change.mean():.4f} on average "
                    f"(largest change {change.max():.4f}; input magnitude {np.abs(steps.input).mean():.4f}).")


def knockout_panel(load, model_id: str, data: bytes, card: dict, block: str, blocks: list[str]) -> None:
    """Interventions on the loaded model's gates: the new top-5 and which block matters most here."""
    panel = st.expander("Knock a gate out (an intervention on this model)", key="knockouts", on_change="rerun")
    if not panel.open:
        return
    with panel:
        st.caption("Same weights, one gate's output replaced during the pass: unlike the sidebar, which loads other "
                   "trained models.")
        kind = st.selectbox("Intervention", list(KNOCKOUTS), format_func=KNOCKOUTS.get, key="knockout")
        stage = block.split(".")[0]
        scope = st.radio("Where", ["block", "stage", "every"], horizontal=True, key="knockout_scope",
                         format_func={"block": f"this block ({block})", "stage": f"its stage ({stage})",
                                      "every": "every block"}.get)
        k = st.number_input("k (top-k channels)", 1, 512, 10, key="knockout_k") if kind.endswith("-top") else 10
        chosen = {"block": [block], "stage": [n for n in blocks if n.split(".")[0] == stage], "every": blocks}[scope]
        probs, top, p, rows = computed("knockouts", model_id, data, (tuple(chosen), kind, int(k)), card, load)
        classes = card["classes"]
        left, right = st.columns(2)
        left.markdown(f"**Top-5 with the knock-out** ({len(chosen)} block(s)):")
        left.markdown(tables.markdown_table([{"class": classes[i], "probability": f"{100 * float(probs[i]):.1f}%"}
                                             for i in np.argsort(-probs)[:5]], index="rank"))
        right.markdown(f"**Each block alone**: the probability of *{classes[top]}* ({100 * p:.1f}% intact)")
        right.markdown(tables.markdown_table([
            {"block": r.block, "probability": f"{100 * r.probability:.1f}%", "drop (pts)": f"{100 * r.drop:+.1f}",
             "top class": classes[r.top_class]} for r in rows]))


def grad_cam_panel(load, model_id: str, data: bytes, card: dict, result, block, style: dict) -> None:
    """Grad-CAM or Grad-CAM++ at the selected block's output, beside the block's spatial map Ms."""
    panel = st.expander("Class evidence: Grad-CAM beside the spatial map", key="gradcam", on_change="rerun")
    if not panel.open:
        return
    from ..explain.gradcam import METHODS, rank_correlation  # torch

    with panel:
        left, right = st.columns(2)
        method = left.radio("Method", list(METHODS), format_func=METHODS.get, horizontal=True, key="cam_method")
        classes = card["classes"]
        target = right.selectbox("Class", [None, *range(len(classes))], key="cam_class",
                                 format_func=lambda c: "the predicted class" if c is None else classes[c])
        cam, cls = computed("gradcam", model_id, data, (block.name, target, method), card, load)
        left, right = st.columns(2)
        right.image(overlays.overlay(result.view, cam, **{**style, "scale": "relative"}), width="stretch",
                    caption=f"{METHODS[method]} for {classes[cls]} at {block.name}'s output ({cam.shape[0]}x{cam.shape[1]}): "
                            f"where the evidence for the class lies (relative colour scale: a CAM has no fixed range)")
        if block.spatial_map is None:
            left.info("Spatial attention is off in this configuration: no map Ms to compare with.")
            return
        left.image(overlays.overlay(result.view, block.spatial_map, **style), width="stretch",
                   caption=f"{block.name}: spatial map Ms, where the block attends")
        rho = rank_correlation(cam, block.spatial_map)
        st.markdown(f"Rank correlation (Spearman) of the two maps: **{rho:+.2f}**" if rho == rho else
                    "Rank correlation undefined: one of the maps is constant.")


def lessons(view: View, block, style: dict) -> None:
    """Every lesson section for the selected block, in teaching order: how it computes, what knocking it out
    changes, the class evidence beside it, and whether its map is faithful."""
    args = view.load, view.model_id, view.data, view.card
    step_through_panel(*args, block.name, style["cmap"])
    knockout_panel(*args, block.name, [b.name for b in view.result.blocks])
    grad_cam_panel(*args, view.result, block, style)
    faithfulness_panel(*args, view.result, block, style)

"""The page's side-by-side section: the view shown beside another configuration, another image, or a
knock-out of the same model, for the selected block, with a difference map and each block's agreement.

Streamlit code. The other view's analysis comes from the same caches as the main view's (a
knock-out's from its own), so flipping between the two columns costs nothing the second time.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from ..explain.compare import agreement, difference
from ..explain.knockouts import KNOCKOUTS
from ..explain.results import Analysis
from ..render import overlays, tables
from . import pictures
from .resources import LIMITS, analysed, family, member
from .view import View

CHOICES = {"configuration": "another configuration", "image": "another image", "knockout": "a knock-out of this model"}


@st.cache_data(max_entries=16, show_spinner="Running the knock-out…")
def _knocked_out(model_id: str, data: bytes, kind: str, blocks: tuple[str, ...], _card: dict, _load) -> Analysis:
    from ..explain.analysis import analyse
    from ..explain.knockouts import knocked_out
    from .images import load_image

    model, card, lock = _load()
    with lock, knocked_out(model, blocks, kind):
        return analyse(model, load_image(data, LIMITS), card)


def _other(view: View, root: str, builtin: bool, samples: dict, block: str) -> tuple[View, str] | None:
    """The other view the visitor picks, and its title."""
    choices = [c for c in CHOICES if builtin or c != "configuration"]
    with_what = st.radio("Compare with", choices, horizontal=True, key="compare_with", format_func=CHOICES.get)
    if with_what == "configuration":
        cards = family(root).cards
        protocol = next((k.protocol for k in cards if cards[k]["name"] == view.card["name"]), None)
        names = sorted(cards, key=lambda k: (cards[k]["name"] == view.card["name"], k.attention != "both",
                                             k.protocol != protocol, str(k)))  # like with like first
        key = st.selectbox("Configuration", names, key="compare_variant",
                           format_func=str)
        if protocol and key.protocol != protocol:
            st.caption(f"Trained differently ({protocol} here, {key.protocol} there): a difference mixes the configuration "
                       "with the training. Compare two like-for-like configurations to see the configuration alone.")
        card, model_id, load = member(root, key)
        other = View(card, model_id, load, view.label, view.data, analysed(model_id, view.data, root, card, load))
        return other, f"{card['name']}, trained {key.protocol}, on {view.label}"
    if with_what == "image":
        label = st.selectbox("Image", [n for n in samples if n != view.label], key="compare_image")
        if label is None:
            st.info("The gallery has no other image.")
            return None
        data = samples[label].read_bytes()
        other = View(view.card, view.model_id, view.load, label, data,
                     analysed(view.model_id, data, root, view.card, view.load))
        return other, f"{view.card['name']} on {label}"
    kind = st.selectbox("Knock-out (k = 10 for the top-k ones)", list(KNOCKOUTS), format_func=KNOCKOUTS.get,
                        key="compare_knockout")
    blocks = [b.name for b in view.result.blocks]
    scope = st.radio("In", ["block", "every"], horizontal=True, key="compare_scope",
                     format_func={"block": f"this block ({block})", "every": "every block"}.get)
    chosen = (block,) if scope == "block" else tuple(blocks)
    knocked = _knocked_out(view.model_id, view.data, kind, chosen, view.card, view.load)
    where = f"in {block}" if scope == "block" else "in every block"
    return (View(view.card, view.model_id, view.load, view.label, view.data, knocked),
            f"{view.card['name']} with {KNOCKOUTS[kind]} {where}, on {view.label}")


def _column(col, view: View, title: str, block: str, style: dict) -> None:
    col.markdown(f"**{title}**")
    b = _find(view.result, block)
    if b is None or b.spatial_map is None:
        col.info(f"No spatial map at {block} here.")
    else:
        col.image(pictures.overlays_jpeg(view.result.view, (b.spatial_map,), **style)[0], width="stretch",
                  caption=f"{block}: Ms. {overlays.range_note(b.spatial_map)}", output_format="JPEG")
    if b is not None and b.channel_weights is not None:
        # channel order in both columns, so that a channel sits at the same place; the sidebar's top-k
        _, bars = pictures.channel_bars(b.channel_weights, False, st.session_state.topk, f"{block}: channel weights Mc")
        col.vega_lite_chart(spec=bars, width="stretch", height=240)
    col.markdown(tables.markdown_table([{"class": c, "probability": f"{100 * p:.1f}%"} for c, p in view.result.top],
                                       index="rank"))


def side_by_side(view: View, root: str, builtin: bool, samples: dict, block: str, style: dict) -> None:
    """The view beside another one for ``block``: maps, bars, top-5, the difference map and each block's agreement."""
    panel = st.expander("Side by side: another configuration, another image or a knock-out", key="compare",
                        on_change="rerun")
    if not panel.open:
        return
    with panel:
        other = _other(view, root, builtin, samples, block)
        if other is None:
            return
        right, title = other
        left_col, right_col = st.columns(2)
        _column(left_col, view, f"This view: {view.card['name']} on {view.label}", block, style)
        _column(right_col, right, title, block, style)
        a, b = _find(view.result, block), _find(right.result, block)
        if a is not None and b is not None and a.spatial_map is not None and b.spatial_map is not None:
            d = difference(a.spatial_map, b.spatial_map)
            m = max(float(np.abs(d).max()), 1e-6)
            st.image(overlays.enlarge(overlays.colorize(d, "RdBu_r", -m, m), 240), width=240,
                     caption=f"Difference at {block}, right minus left ({d.shape[0]}x{d.shape[1]}): red where the right "
                             f"view attends more, blue where less; from {d.min():+.4f} to {d.max():+.4f}.")
        rows = agreement(view.result, right.result)
        st.markdown("**Agreement per block** (Pearson's correlation; spatial maps on a common grid)")
        st.markdown(tables.markdown_table([{"block": r.block, "channel weights r": _r(r.channel),
                                            "spatial maps r": _r(r.spatial)} for r in rows]))
        st.caption("1: the two views weight channels or positions alike; 0: unrelated; n/a: a gate is off in one "
                   "view or a map is constant.")


def _find(result: Analysis, block: str):
    return next((b for b in result.blocks if b.name == block), None)  # a plain network has no blocks


def _r(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{value:+.3f}"

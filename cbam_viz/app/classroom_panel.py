"""The page's classroom panel: how CBAM computes its gates, where it sits, and what it costs here."""

from __future__ import annotations

import streamlit as st

from ..explain.classroom import (CHANNEL_FORMULA, ORDER_FORMULAS, PAPER, PAPER_CHECK, SPATIAL_FORMULA,
                                 configuration_figures, paper_comparison, placement, reference_cbam512)
from ..render import tables


def _open_step_through() -> None:
    st.session_state["steps"] = True  # the step-through expander's state (lesson_panel.step_through_panel)


def _see_it(steps: str, gate: str) -> None:
    """A link from a formula to the same computation on the image shown."""
    st.button(f"See it computed on this image: {steps}", key=f"formula-{gate}", on_click=_open_step_through,
              type="tertiary", help="opens the step-through of the selected block above")


def classroom(card: dict, order: str | None, family_cards: list[dict] | None = None) -> None:
    """How CBAM works, with this configuration's figures; drawn only while open (formulas load KaTeX).
    ``order`` is the gates' order when both are on, else None; with the built-in family's cards, its
    like-for-like accuracy per choice beside the paper's findings."""
    panel = st.expander("How CBAM works (for the classroom)", key="classroom", on_change="rerun")
    if not panel.open:
        return
    with panel:
        st.markdown("**Channel attention** weighs each feature channel:")
        st.latex(CHANNEL_FORMULA)
        _see_it("the channel gate's steps 1 to 4 (descriptors, shared MLP, sum, sigmoid)", "channel")
        st.markdown("**Spatial attention** weighs each position:")
        st.latex(SPATIAL_FORMULA)
        _see_it("the spatial gate's steps 1 to 5 (channel mean and max, kernel, convolution, sigmoid)", "spatial")
        if order:
            st.markdown(f"**Order** ({order}):")
            st.latex(ORDER_FORMULAS[order])
        st.markdown("**Where CBAM sits**: on the residual branch, after the last BatchNorm, before the addition.")
        st.code(placement(card["architecture"]), language=None)
        st.markdown(configuration_figures(card, reference_cbam512()))
        cx = card["complexity"]
        st.markdown(tables.markdown_table([{"CBAM block": n, "parameters": f"{v['params']:,}", "FLOPs": f"{v['flops']:,}"}
                                           for n, v in cx["blocks"].items()]))
        if family_cards:
            st.markdown("**This family beside the paper**: like-for-like accuracy per choice (CIFAR-10)")
            st.markdown(tables.markdown_table(paper_comparison(family_cards)))
            st.caption(f"The paper: {PAPER}; its findings as checked against {PAPER_CHECK}. Its numbers are not "
                       "quoted: they could not be verified here.")

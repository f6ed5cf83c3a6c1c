"""The page's predictions and model card: the top-5, compared like with like with the previous
configuration of the same image, and the facts of the model shown; with "predict, then reveal", the
predictions stay out of the page until the class asks for them.

Streamlit code.
"""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from ..models.cards import facts, training_summary
from ..models.registry import VariantKey
from ..render import tables
from .controls import Shown, baseline_for, configuration_rows, prediction_rows
from .resources import analysed, family, member
from .view import View


def like_for_like(baseline: dict | None, key: VariantKey | None, root: str, data: bytes) -> dict | None:
    """The predictions to compare with, like with like: when the previous configuration was trained
    by another protocol, the same configuration trained by this one; if there is none, a note why
    nothing is compared."""
    if not baseline or key is None or baseline.get("key") is None or key.comparable(baseline["key"]):
        return baseline
    twin = replace(baseline["key"], protocol=key.protocol)
    if twin not in family(root).cards:
        return {"note": f"No change column: the previous model ({baseline['name']}) was trained "
                        f"{baseline['key'].protocol} and has no {key.protocol} twin. Set Training to like-for-like "
                        "to compare configurations."}
    card, model_id, load = member(root, twin)
    return {"name": card["name"], "key": twin, "probs": dict(analysed(model_id, data, root, card, load).top)}


def revealed(view: View) -> bool:
    """Whether the predictions for this model and image may be shown: always, unless "predict, then
    reveal" is on and the class has not yet clicked to reveal them (a new image or model hides them again)."""
    ss = st.session_state
    shown = (view.model_id, view.label, hash(view.data))
    if not ss.get("reveal") or ss.get("revealed") == shown:
        return True
    st.subheader("Top-5 predictions")
    st.info("Predict first: what will the model say, and which block's attention will matter? The top-5 and the "
            "panels that name the predicted class stay hidden until you reveal them.")
    st.button("Reveal the predictions", key="reveal_button", type="primary", on_click=ss.update,
              kwargs={"revealed": shown})
    return False


def predictions_and_card(view: View, shown: Shown, key: VariantKey | None, root: str) -> bool:
    """The top-5 (with the change since the previous configuration, like with like) and the model card's
    facts; or, while "predict, then reveal" hides them, the prompt to reveal them (returns False)."""
    if not revealed(view):
        return False
    ss, result, card, data = st.session_state, view.result, view.card, view.data
    left, right = st.columns([3, 2])
    with left:
        st.subheader("Top-5 predictions")
        ss.baseline = like_for_like(baseline_for(shown, ss.get("last"), ss.get("baseline")), key, root, data)
        baseline = ss.baseline if ss.baseline and "probs" in ss.baseline else None
        st.container(key="predictions").markdown(tables.markdown_table(prediction_rows(result.top, baseline), index="rank"))
        if ss.baseline and not baseline:
            st.caption(ss.baseline["note"])
        if baseline:
            trained = f", trained {baseline['key'].protocol}" if baseline.get("key") else ""
            st.caption(f"change (pts): in percentage points since {baseline['name']}{trained}, on the same image "
                       "(new: not in its top-5)")
        ss.last = {"shown": shown, "name": card["name"], "probs": dict(result.top), "key": key}
    with right:
        st.subheader("This model")
        st.markdown(f"**{card['name']}**: {card['training']['trained']}")
        st.markdown("\n".join(f"- {f}" for f in facts(card)))
        # drawn only while open, as the lesson panels: a control change does not resend the tables
        if key is not None and (panel := st.expander("Every configuration, like with like", key="configurations_panel",
                                                     on_change="rerun")).open:
            with panel:
                st.markdown(tables.markdown_table(configuration_rows(list(family(root).cards.values()), key)))
                st.caption("like-for-like: attention, BatchNorm and classifier trained on a shared network's frozen "
                           "convolutions, the same way for every configuration; compare configurations by these.")
        m = card.get("metrics")
        if m and (panel := st.expander("How it was trained, per-class accuracy", key="training_panel",
                                       on_change="rerun")).open:
            with panel:
                st.markdown(training_summary(card["training"]))
                st.markdown(tables.markdown_table([{"class": c, "top-1 %": f"{a:.1f}"}
                                                   for c, a in zip(card["classes"], m["test_per_class_top1"])]))
    return True

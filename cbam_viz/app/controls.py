"""The app's controls as plain values: the view a shared link starts from, what the toggles mean,
and the comparison of predictions with the previous configuration. No Streamlit here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..models.config import KERNEL_SIZES, ORDERS, REDUCTIONS
from ..models.registry import PROTOCOLS, VariantKey, key_of
from ..render.overlays import COLORMAPS
from ..render.tables import points

MODELS = ("cifar10", "imagenet")
SCALES = ("relative", "absolute")


def attention_mode(channel: bool, spatial: bool) -> str:
    """The CBAM ablation the two sidebar toggles select: ``both``, ``channel``, ``spatial`` or ``none``."""
    return {(True, True): "both", (True, False): "channel", (False, True): "spatial", (False, False): "none"}[
        (channel, spatial)]


def _as_bool(v: str) -> bool:
    return v in ("1", "true", "True")


def _read(query: Mapping[str, str], key: str, default, allowed=None, cast: Callable = str):
    try:
        value = cast(query[key]) if key in query else default
    except ValueError:
        return default
    return value if allowed is None or value in allowed else default


def start_values(query: Mapping[str, str], samples: list[str]) -> dict:
    """Every control's starting value from a URL's query string; defaults where absent or invalid."""
    return {
        "model": _read(query, "model", "cifar10", MODELS),
        "ca": _read(query, "ca", True, cast=_as_bool), "sa": _read(query, "sa", True, cast=_as_bool),
        "order": _read(query, "order", "channel-first", ORDERS),
        "protocol": _read(query, "protocol", PROTOCOLS[0], PROTOCOLS),
        "kernel": _read(query, "kernel", 7, KERNEL_SIZES, int), "ratio": _read(query, "ratio", 16, REDUCTIONS, int),
        "cmap": _read(query, "cmap", "jet", COLORMAPS),
        "opacity": min(1.0, max(0.0, _read(query, "opacity", 0.5, cast=float))),
        "smooth": _read(query, "smooth", True, cast=_as_bool),
        "scale": _read(query, "scale", "relative", SCALES),
        "sort": _read(query, "sort", False, cast=_as_bool),
        "topk": min(64, max(1, _read(query, "topk", 10, cast=int))),
        "sample": _read(query, "sample", "cat" if "cat" in samples else samples[0], samples),
        "block": _read(query, "block", ""),
        "lesson": _read(query, "lesson", False, cast=_as_bool), "reveal": _read(query, "reveal", False, cast=_as_bool),
    }


def overlay_style(values: Mapping) -> dict:
    """The display settings an overlay is drawn with (colormap, opacity, upsampling, colour scale),
    taken from the controls' values (session state or :func:`start_values`)."""
    return {k: values[k] for k in ("cmap", "opacity", "smooth", "scale")}


def map_size(lesson: bool) -> int:
    """Pixels on a side of the block's spatial-map chart: smaller in lesson mode, where the image
    stands beside it."""
    return 320 if lesson else 384


@dataclass(frozen=True)
class Shown:
    """What the predictions on screen belong to: the image, the model family (label set) and the variant."""

    image: str
    family: str
    variant_id: str


def baseline_for(shown: Shown, last: dict | None, baseline: dict | None) -> dict | None:
    """The predictions to compare with: those of the previous configuration of the same image and
    label set, kept while only the display changes; none for a new image or another model family."""
    if last and last["shown"] != shown:
        return last if (last["shown"].image, last["shown"].family) == (shown.image, shown.family) else None
    return baseline


def prediction_rows(top: list[tuple[str, float]], baseline: dict | None) -> list[dict]:
    """The top-k as table rows, with the change in points since ``baseline`` when there is one."""
    rows = []
    for cls, p in top:
        row = {"class": cls, "probability": f"{100 * p:.1f}%"}
        if baseline:
            before = baseline["probs"].get(cls)
            row["change (pts)"] = "new" if before is None else points(p - before)
        rows.append(row)
    return rows


def classes_note(card: dict, few: int = 100) -> str | None:
    """For a model with few classes, the plain warning that it gives one of them to any photo."""
    classes = card["classes"]
    if len(classes) >= few:
        return None
    return (f"The built-in model knows only {len(classes)} classes ({', '.join(classes)}) and gives one of them to "
            "any photo. For everyday photos, choose the ImageNet CBAM-ResNet-50 (1,000 classes) under Model in "
            "the sidebar.")


def configuration_rows(cards: list[dict], current: VariantKey) -> list[dict]:
    """Every configuration of a family with its test accuracy and the protocol it was trained by,
    and its difference from the plain network where that compares like with like: an end-to-end
    model (same recipe and budget as the plain one) or a variant built on the plain network's own
    convolutions. The variant on screen is marked "(shown)"."""
    keyed = sorted(((key_of(c), c) for c in cards if c.get("metrics")),
                   key=lambda kc: (kc[0].attention != "none", PROTOCOLS.index(kc[0].protocol), -kc[1]["metrics"]["test_top1"]))
    plain = next((c for k, c in keyed if k.attention == "none"), None)
    rows = []
    for key, card in keyed:
        top1 = card["metrics"]["test_top1"]
        fair = plain is not None and key.attention != "none" and (
            card.get("backbone") is None or card["backbone"]["name"] == plain["name"])
        rows.append({"variant": card["name"] + (" (shown)" if key == current else ""), "trained": key.protocol,
                     "test top-1 %": f"{top1:.2f}",
                     "vs plain (pts)": f"{top1 - plain['metrics']['test_top1']:+.2f}" if fair else ""})
    return rows

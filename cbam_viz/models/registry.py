"""The built-in family of trained models: find, verify and load the variant for a configuration.

    family = Family()                       # assets/family by default
    model, card = family.load_variant(order="spatial-first", kernel_size=3, reduction=8)

Each variant is a model card (``<name>.json``) and a safetensors file. A variant is trained by one
of two protocols: end-to-end (every parameter from scratch) or like-for-like (attention, BatchNorm
and classifier trained on a shared backbone's frozen convolutions; such variants store only what
they trained, and the backbone is read once per :class:`Family` and kept, so switching variants
costs one small file). A configuration may exist under both: the canonical model and its twin.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .cards import build_model, read_card
from .weights import WeightsError, read_weights, sha256_file

if TYPE_CHECKING:  # torch is imported when a model is loaded: listing the family needs none
    from torch import Tensor, nn

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "assets" / "family"


def default_root() -> Path:
    """The family the app shows: ``$CBAM_VIZ_FAMILY`` (a teacher's own, trained with
    ``python -m cbam_viz.family``) or the built-in CIFAR-10 family."""
    return Path(os.environ.get("CBAM_VIZ_FAMILY") or DEFAULT_ROOT)


class VariantNotFound(LookupError):
    """No trained weights exist for the requested configuration."""


PROTOCOLS = ("end-to-end", "like-for-like")


@dataclass(frozen=True)
class VariantKey:
    """What the sidebar selects: gate order, kernel size, reduction ratio, which gates are on, and
    the training protocol."""

    attention: str = "both"
    order: str | None = "channel-first"
    kernel_size: int | None = 7
    reduction: int | None = 16
    protocol: str = "end-to-end"

    def __str__(self) -> str:
        if self.attention == "none":
            return "no attention (plain ResNet)"
        if self.attention == "channel":
            text = f"channel attention only, r={self.reduction}"
        elif self.attention == "spatial":
            text = f"spatial attention only, k={self.kernel_size}"
        else:
            text = f"{self.order}, k={self.kernel_size}, r={self.reduction}"
        return f"{text} ({self.protocol})"

    def comparable(self, other: VariantKey) -> bool:
        """Whether accuracy and predictions of the two compare like with like: the same protocol, or
        one of them is the plain network (the like-for-like variants' common base)."""
        return self.protocol == other.protocol or "none" in (self.attention, other.attention)


def key_of(card: dict) -> VariantKey:
    """The :class:`VariantKey` a card was trained for (irrelevant fields are None)."""
    cbam = card["architecture"]["cbam"]
    protocol = PROTOCOLS[1] if card.get("backbone") else PROTOCOLS[0]
    if cbam is None:
        return VariantKey("none", None, None, None, protocol)
    attention = cbam["attention"]
    return VariantKey(
        attention,
        cbam["order"] if attention == "both" else None,
        cbam["kernel_size"] if attention in ("both", "spatial") else None,
        cbam["reduction"] if attention in ("both", "channel") else None,
        protocol,
    )


def normalise_key(order: str = "channel-first", kernel_size: int = 7, reduction: int = 16,
                  attention: str = "both", protocol: str = "end-to-end") -> VariantKey:
    """The key for sidebar values, dropping what the ablation makes irrelevant."""
    key = key_of({"architecture": {"cbam": None if attention == "none" else {
        "order": order, "kernel_size": kernel_size, "reduction": reduction, "attention": attention}}})
    return replace(key, protocol=protocol)


class Family:
    """The trained variants under ``root``, with the shared backbone weights cached after first use."""

    def __init__(self, root: str | os.PathLike = DEFAULT_ROOT) -> None:
        self.root = Path(root)
        self.cards: dict[VariantKey, dict] = {}
        if self.root.is_dir():
            for path in sorted(self.root.glob("*.json")):
                card = read_card(path)
                if "architecture" in card and "weights" in card:
                    self.cards[key_of(card)] = card
        self._backbones: dict[str, dict[str, Tensor]] = {}
        self._skeletons: dict[str, nn.Module] = {}

    def keys(self) -> list[VariantKey]:
        """Every configuration that has trained weights."""
        return list(self.cards)

    def resolve(self, key: VariantKey) -> VariantKey:
        """``key`` when it was trained, else the same configuration by the other protocol (the
        family trains most configurations one way only); :class:`VariantNotFound` if neither."""
        if key in self.cards:
            return key
        for protocol in PROTOCOLS:
            if (other := replace(key, protocol=protocol)) in self.cards:
                return other
        raise self._not_found(key)

    def canonical(self) -> dict:
        """The card of the end-to-end trained model that the other variants build on."""
        for card in self.cards.values():
            if card["architecture"]["cbam"] and card.get("backbone") is None:
                return card
        raise VariantNotFound(f"no end-to-end trained CBAM model under {self.root}")

    def card(self, key: VariantKey) -> dict:
        """The card for ``key``; :class:`VariantNotFound` lists what exists otherwise."""
        if key not in self.cards:
            raise self._not_found(key)
        return self.cards[key]

    def _not_found(self, key: VariantKey) -> VariantNotFound:
        have = "; ".join(str(k) for k in self.cards) or "none"
        return VariantNotFound(f"no trained weights for {key} under {self.root}. Trained configurations: {have}")

    def _verified(self, name: str, expected: str) -> Path:
        path = self.root / name
        if not path.is_file():
            raise WeightsError(f"weights file {path} named by its model card is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise WeightsError(f"{path.name} does not match its model card (sha256 {actual[:12]}... vs {expected[:12]}...)")
        return path

    def _backbone(self, info: dict) -> dict[str, Tensor]:
        if info["sha256"] not in self._backbones:
            self._backbones[info["sha256"]] = read_weights(self._verified(info["file"], info["sha256"]))
        return self._backbones[info["sha256"]]

    def _empty_model(self, arch: dict) -> nn.Module:
        """A network for ``arch`` whose tensors are on the meta device (shapes, no data): a copy of a
        skeleton built once per architecture, which skips the random initialisation that the
        weights replace anyway (most of a switch's time otherwise)."""
        key = json.dumps(arch, sort_keys=True)
        if key not in self._skeletons:
            self._skeletons[key] = build_model(arch).to("meta")
        return copy.deepcopy(self._skeletons[key])

    def load_variant(self, order: str = "channel-first", kernel_size: int = 7, reduction: int = 16,
                     attention: str = "both", protocol: str = "end-to-end") -> tuple[nn.Module, dict]:
        """The trained model (eval mode) and its card for a configuration of the sidebar's controls
        (by the other protocol where the configuration was trained one way only: :meth:`resolve`).

        Every weights file is checked against the sha256 in its card before use.
        """
        return self.load(self.resolve(normalise_key(order, kernel_size, reduction, attention, protocol)))

    def load(self, key: VariantKey) -> tuple[nn.Module, dict]:
        """Like :meth:`load_variant`, for a :class:`VariantKey`."""
        from .checkpoints import load_state

        card = self.card(key)
        own = read_weights(self._verified(card["weights"]["file"], card["weights"]["sha256"]))
        model = self._empty_model(card["architecture"])
        state = own
        if card.get("backbone"):
            backbone = self._backbone(card["backbone"])
            wanted = model.state_dict()
            # attention tensors always come from the variant's own file, never from the backbone;
            # the backbone's are copied, so that no two loaded models share a tensor
            state = {k: v.clone() for k, v in backbone.items() if k in wanted and ".cbam." not in k} | own
        load_state(model, state, assign=True)
        return model.eval(), card

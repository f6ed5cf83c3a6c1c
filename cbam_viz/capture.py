"""Capture every CBAM block's attention during a forward pass, with hooks that never outlive it.

    with AttentionRecorder(model) as rec:
        logits = model(x)
    for r in rec.records:           # forward order
        r.name, r.stage, r.channel_weights.shape, r.spatial_map.shape

Each CBAM module gets a forward pre-hook, which hands it a ``taps`` dict (:meth:`CBAM.forward`)
that CBAM fills with the gates' outputs: exactly the tensors it multiplied the features by, so
what is recorded is what the network used. Taps rather than hooks on the gates
themselves leave the gates unwatched, so the compiled kernels still run each block in one call
(:mod:`cbam_viz.fused`). The recorder only adds hooks: it changes no parameter, no
``requires_grad`` flag and not the train/eval mode, and removes its hooks on exit even when the
forward pass raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .attention import CBAM


@dataclass
class AttentionRecord:
    """The attention one CBAM block applied in one forward pass (tensors detached, on the model's device).

    ``channel_weights`` is (B, C) and ``spatial_map`` (B, 1, H, W); either is None when the block's
    configuration ablates that gate. ``feature_shape`` is the (C, H, W) of the features gated.
    """

    name: str
    stage: str
    channel_weights: Tensor | None
    spatial_map: Tensor | None
    feature_shape: tuple[int, int, int]


def cbam_blocks(model: nn.Module) -> list[tuple[str, CBAM]]:
    """(block name, CBAM module) for every CBAM in ``model``, in definition order (``layer3.1``).

    The modules as ``named_modules()`` finds them (each once), with a walk that skips leaf modules
    and does not enter a CBAM: 0.2 rather than 0.8 ms for a ResNet-50, paid by every capture."""
    if isinstance(model, CBAM):
        return [("cbam", model)]
    found: list[tuple[str, CBAM]] = []
    seen = {id(model)}

    def walk(module: nn.Module, prefix: str) -> None:
        for key, child in module._modules.items():
            if child is None or id(child) in seen or (not child._modules and not isinstance(child, CBAM)):
                continue  # nothing, seen already, or a leaf
            seen.add(id(child))
            if isinstance(child, CBAM):
                found.append((prefix[:-1] if key == "cbam" and prefix else prefix + key, child))
            else:
                walk(child, f"{prefix}{key}.")

    walk(model, "")
    return found


class AttentionRecorder:
    """Context manager that records one :class:`AttentionRecord` per CBAM block per forward pass."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._records: list[AttentionRecord] = []
        self._taps: list[tuple[str, tuple[int, int, int], dict]] = []  # calls whose records are not made yet
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> "AttentionRecorder":
        try:
            for name, cbam in cbam_blocks(self.model):
                self._handles.append(cbam.register_forward_pre_hook(self._hand_taps(name), with_kwargs=True))
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def remove(self) -> None:
        """Remove every hook this recorder added (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def clear(self) -> None:
        """Forget the records collected so far."""
        self._records.clear()
        self._taps.clear()

    @property
    def records(self) -> list[AttentionRecord]:
        """One record per finished call of a CBAM block, in forward order."""
        waiting = []
        for name, shape, taps in self._taps:
            if not taps:  # the block has not finished (or raised)
                waiting.append((name, shape, taps))
                continue
            channel, spatial = taps.get("channel"), taps.get("spatial")
            self._records.append(AttentionRecord(name, name.split(".", 1)[0],
                                                 None if channel is None else channel.detach().flatten(1),
                                                 None if spatial is None else spatial.detach(), shape))
        self._taps = waiting
        return self._records

    def _hand_taps(self, name: str):
        """The forward pre-hook of block ``name``: a fresh ``taps`` dict for this call, which CBAM fills
        with the gates' outputs once it has applied them (the record is made from it when read)."""

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            c, h, w = (args[0] if args else kwargs["x"]).shape[1:]
            taps: dict[str, Tensor] = {}
            self._taps.append((name, (int(c), int(h), int(w)), taps))
            return args, {**kwargs, "taps": taps}

        return hook

    def by_name(self) -> dict[str, AttentionRecord]:
        """The latest record of each block, keyed by block name."""
        return {r.name: r for r in self.records}

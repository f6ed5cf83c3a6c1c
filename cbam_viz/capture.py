"""Capture every CBAM block's attention during a forward pass, with hooks that never outlive it.

    with AttentionRecorder(model) as rec:
        logits = model(x)
    for r in rec.records:           # forward order
        r.name, r.stage, r.channel_weights.shape, r.spatial_map.shape

Forward hooks sit on the gates (:class:`ChannelAttention`, :class:`SpatialAttention`), whose
outputs are exactly the tensors CBAM multiplies the features by, so what is recorded is what the
network used. The recorder only adds hooks: it changes no parameter, no ``requires_grad`` flag and
not the train/eval mode, and removes its hooks on exit even when the forward pass raises.
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
    """(block name, CBAM module) for every CBAM in ``model``, in definition order (``layer3.1``)."""
    found = []
    for name, module in model.named_modules():
        if isinstance(module, CBAM):
            block = name[: -len(".cbam")] if name.endswith(".cbam") else (name or "cbam")
            found.append((block, module))
    return found


class AttentionRecorder:
    """Context manager that records one :class:`AttentionRecord` per CBAM block per forward pass."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.records: list[AttentionRecord] = []
        self._handles: list[RemovableHandle] = []
        self._pending: dict[int, AttentionRecord] = {}

    def __enter__(self) -> "AttentionRecorder":
        blocks = cbam_blocks(self.model)
        try:
            for name, cbam in blocks:
                self._handles.append(cbam.register_forward_pre_hook(self._open(name)))
                if cbam.channel is not None:
                    self._handles.append(cbam.channel.register_forward_hook(self._store(id(cbam), "channel_weights")))
                if cbam.spatial is not None:
                    self._handles.append(cbam.spatial.register_forward_hook(self._store(id(cbam), "spatial_map")))
                self._handles.append(cbam.register_forward_hook(self._close(id(cbam))))
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
        self._pending.clear()

    def clear(self) -> None:
        """Forget the records collected so far."""
        self.records.clear()

    def _open(self, name: str):
        stage = name.split(".", 1)[0]

        def hook(module: CBAM, inputs: tuple[Tensor, ...]) -> None:
            c, h, w = inputs[0].shape[1:]
            self._pending[id(module)] = AttentionRecord(name, stage, None, None, (int(c), int(h), int(w)))

        return hook

    def _store(self, key: int, field: str):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            value = output.detach()
            setattr(self._pending[key], field, value.flatten(1) if field == "channel_weights" else value)

        return hook

    def _close(self, key: int):
        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            self.records.append(self._pending.pop(key))

        return hook

    def by_name(self) -> dict[str, AttentionRecord]:
        """The latest record of each block, keyed by block name."""
        return {r.name: r for r in self.records}

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
        self._pending: dict[str, AttentionRecord] = {}

    def __enter__(self) -> "AttentionRecorder":
        try:
            for name, cbam in cbam_blocks(self.model):
                pairs = ((cbam.channel, "channel_weights"), (cbam.spatial, "spatial_map"))
                gates = [(gate, field) for gate, field in pairs if gate is not None]
                for gate, field in gates:
                    self._handles.append(gate.register_forward_hook(self._store(name, field, len(gates))))
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

    def _store(self, name: str, field: str, gates: int):
        """A hook on one gate of block ``name``; the block's record is complete once all its gates ran."""
        stage = name.split(".", 1)[0]

        def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            record = self._pending.get(name)
            if record is None:
                c, h, w = inputs[0].shape[1:]
                record = self._pending[name] = AttentionRecord(name, stage, None, None, (int(c), int(h), int(w)))
            value = output.detach()
            setattr(record, field, value.flatten(1) if field == "channel_weights" else value)
            if (record.channel_weights is not None) + (record.spatial_map is not None) == gates:
                self.records.append(self._pending.pop(name))

        return hook

    def by_name(self) -> dict[str, AttentionRecord]:
        """The latest record of each block, keyed by block name."""
        return {r.name: r for r in self.records}

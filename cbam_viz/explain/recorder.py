"""Record every CBAM block's gate outputs with forward hooks that never outlive the pass.

    with AttentionRecorder(model) as rec:
        logits = model(x)
    for r in rec.records:           # forward order
        r.name, r.stage, r.channel_weights.shape, r.spatial_map.shape

The recorder puts ``register_forward_hook`` on the gate modules and nothing else: by default
:class:`~cbam_viz.models.attention.ChannelAttention` and
:class:`~cbam_viz.models.attention.SpatialAttention`, whose outputs are the weights Mc and Ms that
the block multiplies in. Other CBAM code is recorded by naming its gate modules, as types or as a
predicate on ``(name, module)``; for timm's CBAM ResNets, whose gates return gated features, the
gates' final sigmoids hold the weights::

    AttentionRecorder(timm_model, channel=lambda n, m: n.endswith("channel.gate"),
                      spatial=lambda n, m: n.endswith("spatial.gate"))

A hook registered on a gate before the recorder (an intervention that replaces the gate's output)
runs first, so the recorder keeps what was really multiplied in. The recorder changes no parameter,
no ``requires_grad`` flag and not the train/eval mode, and removes its hooks on exit, also when
the forward pass raises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..models.attention import ChannelAttention, SpatialAttention

GateSelector = type | tuple[type, ...] | Callable[[str, nn.Module], bool]
CONTAINERS = ("cbam", "se", "attn", "attention")  # names of the attention module inside a residual block


@dataclass
class AttentionRecord:
    """The attention one CBAM block applied in one forward pass (tensors detached, on the model's device).

    ``channel_weights`` is (B, C) and ``spatial_map`` (B, 1, H, W); either is None when the block
    has no such gate. ``feature_shape`` is the (C, H, W) of the features gated.
    """

    name: str
    channel_weights: Tensor | None = None
    spatial_map: Tensor | None = None
    feature_shape: tuple[int, int, int] = (0, 0, 0)

    @property
    def stage(self) -> str:
        """The stage the block belongs to: ``layer3`` for ``layer3.1``."""
        return self.name.split(".", 1)[0]


def block_name(gate_name: str) -> str:
    """The residual block a gate module belongs to: ``layer3.1`` for ``layer3.1.cbam.channel`` (and for
    timm's ``layer3.1.se.spatial.gate``); ``cbam`` for a bare CBAM module's ``channel``."""
    parts = gate_name.split(".")
    kind = max(i for i, p in enumerate(parts) if p in ("channel", "spatial")) if {"channel", "spatial"} & set(parts) else len(parts)
    owner = parts[:kind]
    if len(owner) > 1 and owner[-1] in CONTAINERS:
        owner = owner[:-1]
    return ".".join(owner) or "cbam"


def _selector(spec: GateSelector) -> Callable[[str, nn.Module], bool]:
    if isinstance(spec, (type, tuple)):
        return lambda name, module: isinstance(module, spec)
    return spec


def gate_modules(model: nn.Module, channel: GateSelector = ChannelAttention,
                 spatial: GateSelector = SpatialAttention) -> list[tuple[str, str, nn.Module]]:
    """(block name, ``"channel"`` or ``"spatial"``, module) for every gate module of ``model``, in
    definition order."""
    is_channel, is_spatial = _selector(channel), _selector(spatial)
    found = []
    for name, module in model.named_modules():
        kind = "channel" if is_channel(name, module) else "spatial" if is_spatial(name, module) else None
        if kind:
            found.append((block_name(name), kind, module))
    return found


class AttentionRecorder:
    """Context manager that records one :class:`AttentionRecord` per CBAM block per forward pass."""

    def __init__(self, model: nn.Module, channel: GateSelector = ChannelAttention,
                 spatial: GateSelector = SpatialAttention) -> None:
        self.model = model
        self.gates = gate_modules(model, channel, spatial)
        self.records: list[AttentionRecord] = []
        self._open: dict[str, AttentionRecord] = {}  # the latest record of each block
        self._handles: list[RemovableHandle] = []

    def __enter__(self) -> AttentionRecorder:
        try:
            for block, kind, module in self.gates:
                self._handles.append(module.register_forward_hook(self._hook(block, kind)))
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
        self.records.clear()
        self._open.clear()

    def by_name(self) -> dict[str, AttentionRecord]:
        """The latest record of each block, keyed by block name."""
        return {r.name: r for r in self.records}

    def _hook(self, block: str, kind: str):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            record = self._open.get(block)
            if record is None or getattr(record, f"{kind}_weights" if kind == "channel" else "spatial_map") is not None:
                record = self._open[block] = AttentionRecord(block)  # a block's first gate in a new pass
                self.records.append(record)
            weights = output.detach()
            if kind == "channel":
                record.channel_weights = weights.flatten(1)
                _, h, w = record.feature_shape
                if inputs[0].dim() == 4 and inputs[0].shape[-2:] != (1, 1):  # the gate's input is the features
                    h, w = inputs[0].shape[-2:]
                record.feature_shape = (weights.shape[1], int(h), int(w))
            else:
                record.spatial_map = weights
                c = record.feature_shape[0] or (inputs[0].shape[1] if inputs[0].dim() == 4 else 0)
                record.feature_shape = (int(c), *map(int, weights.shape[-2:]))

        return hook

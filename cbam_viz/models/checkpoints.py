"""Load CBAM-ResNet checkpoints of the three formats people have into our network.

Key mapping to our names (``layerS.B`` is stage S, block B counted from 0):

================================================  ==========================================
official (Jongchan/attention-module)              ours
================================================  ==========================================
``module.`` prefix (DataParallel)                 dropped
``layerS.B.cbam.ChannelGate.mlp.1.*`` / ``mlp.3.*``  ``layerS.B.cbam.channel.mlp.0.*`` / ``mlp.2.*``
``layerS.B.cbam.SpatialGate.spatial.conv.weight``  ``layerS.B.cbam.spatial.conv.weight``
``layerS.B.cbam.SpatialGate.spatial.bn.*``         ``layerS.B.cbam.spatial.bn.*``
everything else (torchvision names)               unchanged
================================================  ==========================================

================================================  ==========================================
pytorchcv (``cbam_resnet50`` etc.)                ours
================================================  ==========================================
``features.init_block.conv.conv.weight`` / ``.bn.*``  ``conv1.weight`` / ``bn1.*``
``features.stageS.unitU.body.convI.conv.weight``  ``layer S . U-1 .convI.weight``
``features.stageS.unitU.body.convI.bn.*``         ``layerS.(U-1).bnI.*``
``features.stageS.unitU.identity_conv.conv/bn``   ``layerS.(U-1).downsample.0 / .1``
``...cbam.ch_gate.mlp.fc1 / fc2``                 ``...cbam.channel.mlp.0 / .2``
``...cbam.sp_gate.conv.conv.weight / .bn.*``      ``...cbam.spatial.conv.weight / .bn.*``
``output.*``                                      ``fc.*``
================================================  ==========================================

timm ResNets built with ``attn_layer='cbam'`` use torchvision names; their CBAM is
``layerS.B.se.channel.fc1/fc2`` (-> ``cbam.channel.mlp.0/.2``) and
``layerS.B.se.spatial.conv.conv/.bn`` (-> ``cbam.spatial.conv/.bn``).

The official and pytorchcv checkpoints use the ``official`` layout, timm's the ``timm`` layout
(see :mod:`cbam_viz.attention`). The order of the gates is not stored in any checkpoint: all three
are channel-first, as in the paper.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from torch import Tensor, nn

from .cards import build_model
from .resnet import DEPTHS, CBAMResNet
from .weights import WeightsError, read_weights

FORMATS = ("native", "official", "pytorchcv", "timm")


def unwrap(obj: Mapping) -> dict[str, Tensor]:
    """The state dict inside a checkpoint (``{"state_dict": ...}``, ``{"model": ...}`` or itself)."""
    for key in ("state_dict", "model", "model_state_dict", "state"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
            return dict(inner)
    if obj and all(isinstance(v, Tensor) for v in obj.values()):
        return dict(obj)
    raise WeightsError(f"no state dict of tensors found (top-level keys: {sorted(obj)[:8]})")


def detect_format(state: Mapping[str, Tensor]) -> str:
    """Which of :data:`FORMATS` a state dict is in, from its key names."""
    keys = list(state)
    if any(k.startswith("features.init_block.") for k in keys):
        return "pytorchcv"
    if any(".ChannelGate." in k or ".SpatialGate." in k for k in keys) or all(k.startswith("module.") for k in keys):
        return "official"
    if any(re.search(r"\.se\.(channel|spatial)\.", k) for k in keys):
        return "timm"
    if "conv1.weight" in state and "fc.weight" in state:
        return "native"
    raise WeightsError("unrecognised checkpoint: not a CBAM-ResNet in the official, pytorchcv, timm or cbam-viz format")


_OFFICIAL = [
    (r"\.cbam\.ChannelGate\.mlp\.1\.", ".cbam.channel.mlp.0."),
    (r"\.cbam\.ChannelGate\.mlp\.3\.", ".cbam.channel.mlp.2."),
    (r"\.cbam\.SpatialGate\.spatial\.conv\.", ".cbam.spatial.conv."),
    (r"\.cbam\.SpatialGate\.spatial\.bn\.", ".cbam.spatial.bn."),
]
_TIMM = [
    (r"\.se\.channel\.fc1\.", ".cbam.channel.mlp.0."),
    (r"\.se\.channel\.fc2\.", ".cbam.channel.mlp.2."),
    (r"\.se\.spatial\.conv\.conv\.", ".cbam.spatial.conv."),
    (r"\.se\.spatial\.conv\.bn\.", ".cbam.spatial.bn."),
]
_PYTORCHCV = [
    (r"^features\.init_block\.conv\.conv\.", "conv1."),
    (r"^features\.init_block\.conv\.bn\.", "bn1."),
    (r"\.body\.conv(\d)\.conv\.", r".conv\1."),
    (r"\.body\.conv(\d)\.bn\.", r".bn\1."),
    (r"\.identity_conv\.conv\.", ".downsample.0."),
    (r"\.identity_conv\.bn\.", ".downsample.1."),
    (r"\.cbam\.ch_gate\.mlp\.fc1\.", ".cbam.channel.mlp.0."),
    (r"\.cbam\.ch_gate\.mlp\.fc2\.", ".cbam.channel.mlp.2."),
    (r"\.cbam\.sp_gate\.conv\.conv\.", ".cbam.spatial.conv."),
    (r"\.cbam\.sp_gate\.conv\.bn\.", ".cbam.spatial.bn."),
    (r"^output\.", "fc."),
]


def _pytorchcv_unit(match: re.Match) -> str:
    return f"layer{match.group(1)}.{int(match.group(2)) - 1}."


def to_native(state: Mapping[str, Tensor], fmt: str | None = None) -> dict[str, Tensor]:
    """Rename a state dict of format ``fmt`` (detected when None) to our parameter names."""
    fmt = fmt or detect_format(state)
    rules = {"native": [], "official": _OFFICIAL, "pytorchcv": _PYTORCHCV, "timm": _TIMM}[fmt]
    out = {}
    for key, value in state.items():
        if fmt == "official":
            key = key.removeprefix("module.")
        if fmt == "pytorchcv":
            key = re.sub(r"^features\.stage(\d)\.unit(\d+)\.", _pytorchcv_unit, key)
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def infer_architecture(state: Mapping[str, Tensor]) -> dict:
    """The architecture (see :func:`cbam_viz.cards.architecture`) that a native state dict fits.

    Depth, stem, width, number of classes, reduction ratio, kernel size, ablation and layout are
    read off the tensors' names and shapes; the gate order is not stored in weights and is taken
    as channel-first.
    """
    if "conv1.weight" not in state or "fc.weight" not in state:
        raise WeightsError("not a CBAM-ResNet state dict: conv1.weight or fc.weight is missing")
    blocks = tuple(
        len({k.split(".")[1] for k in state if k.startswith(f"layer{s}.")}) for s in range(1, 5)
    )
    bottleneck = "layer1.0.conv3.weight" in state
    depth = next((d for d, (kind, layers) in DEPTHS.items()
                  if layers == blocks and (kind == "bottleneck") == bottleneck), None)
    if depth is None:
        raise WeightsError(f"blocks per stage {blocks} ({'bottleneck' if bottleneck else 'basic'}) match no ResNet depth 18/34/50/101")
    conv1 = state["conv1.weight"]
    arch = {
        "family": "cbam-resnet",
        "depth": depth,
        "width": conv1.shape[0] / 64,
        "stem": "imagenet" if conv1.shape[-1] == 7 else "cifar",
        "num_classes": int(state["fc.weight"].shape[0]),
        "cbam": None,
    }
    mlp = state.get("layer1.0.cbam.channel.mlp.0.weight")
    spatial = state.get("layer1.0.cbam.spatial.conv.weight")
    if mlp is None and spatial is None:
        return arch
    channels = state["layer1.0.cbam.channel.mlp.2.weight"].shape[0] if mlp is not None else None
    has_bn = "layer1.0.cbam.spatial.bn.weight" in state
    linear = mlp is not None and mlp.ndim == 2
    layout = "official" if linear else ("timm" if has_bn else "simple")
    arch["cbam"] = {
        "order": "channel-first",
        "kernel_size": int(spatial.shape[-1]) if spatial is not None else 7,
        "reduction": int(channels // mlp.shape[0]) if mlp is not None else 16,
        "attention": "both" if mlp is not None and spatial is not None else ("channel" if mlp is not None else "spatial"),
        "layout": layout,
    }
    return arch


def _short(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_state(model: nn.Module, state: Mapping[str, Tensor], assign: bool = False) -> None:
    """Load a native state dict strictly; on any mismatch raise :class:`WeightsError` naming the
    missing, unexpected and mis-shaped keys. ``assign=True`` makes ``state``'s tensors the model's
    own (for a model built on the meta device) instead of copying them in."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
                 if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or misshaped:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing: {_short(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected: {_short(unexpected)}")
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped (checkpoint vs model): {_short(misshaped)}")
        raise WeightsError("checkpoint does not fit the model; " + "; ".join(parts))
    model.load_state_dict(state, strict=True, assign=assign)


def load_checkpoint(path: str | os.PathLike, model: CBAMResNet | None = None) -> tuple[CBAMResNet, dict]:
    """Read a checkpoint of any supported format into ``model`` (built to fit when None).

    Returns the model in eval mode and ``{"format": ..., "architecture": ...}``.
    """
    state = unwrap(read_weights(path))
    fmt = detect_format(state)
    native = to_native(state, fmt)
    arch = infer_architecture(native)
    if model is None:
        model = build_model(arch)
    load_state(model, native)
    return model.eval(), {"format": fmt, "architecture": arch}

"""CBAM: channel attention, spatial attention, and the module that applies them.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018. Read it side by side with
timm's ``layers/cbam.py``: the same two gates, each a few stock PyTorch operators.

Three tensor layouts are exact here (see :data:`LAYOUTS`); they compute the same function family:

* ``simple``   - the layout most tutorials use: the shared MLP is two 1x1 convolutions without
  bias, the spatial convolution has no BatchNorm, the pooled maps are concatenated as
  ``[mean, max]``.
* ``official`` - Jongchan/attention-module (the paper's code): ``nn.Linear`` MLP with bias,
  BatchNorm after the spatial convolution, pooled maps concatenated as ``[max, mean]``.
* ``timm``     - ``timm.layers.CbamModule``: 1x1-conv MLP without bias, BatchNorm after the
  spatial convolution, ``[mean, max]``.

Every step of a gate is a submodule call, so forward hooks can watch each one: the gates return
their *weights* (Mc, Ms), and each gate ends in an ``nn.Sigmoid`` named ``gate`` whose input is the
pre-sigmoid logit. :mod:`cbam_viz.explain` records them without the modules knowing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ATTENTIONS, KERNEL_SIZES, LAYOUTS, ORDERS, REDUCTIONS, CBAMConfig, Layout

__all__ = ["ATTENTIONS", "CBAM", "KERNEL_SIZES", "LAYOUTS", "ORDERS", "REDUCTIONS", "CBAMConfig", "ChannelAttention",
           "ChannelPool", "GlobalMaxPool", "Layout", "SpatialAttention", "set_order"]

class ChannelAttention(nn.Module):
    """Mc(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))), one weight per channel: (B, C, 1, 1).

    The shared MLP runs twice, average descriptor first; ``gate``'s input is their sum.
    """

    def __init__(self, channels: int, reduction: int = 16, layout: str = "simple") -> None:
        super().__init__()
        hidden = channels // reduction
        if hidden < 1:
            raise ValueError(
                f"reduction ratio {reduction} is too large for {channels} channels: "
                f"C/r = {channels}/{reduction} < 1 leaves the MLP no hidden unit"
            )
        spec = LAYOUTS[layout]
        self.linear = spec.linear_mlp
        if self.linear:
            fc1, fc2 = nn.Linear(channels, hidden, spec.mlp_bias), nn.Linear(hidden, channels, spec.mlp_bias)
        else:
            fc1 = nn.Conv2d(channels, hidden, 1, bias=spec.mlp_bias)
            fc2 = nn.Conv2d(hidden, channels, 1, bias=spec.mlp_bias)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = GlobalMaxPool()
        self.mlp = nn.Sequential(fc1, nn.ReLU(inplace=True), fc2)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        avg, peak = self.avg_pool(x), self.max_pool(x)
        if self.linear:
            avg, peak = avg.flatten(1), peak.flatten(1)
        return self.gate(self.mlp(avg) + self.mlp(peak)).view(*x.shape[:2], 1, 1)


class GlobalMaxPool(nn.Module):
    """Each channel's maximum over all positions: (B, C, H, W) -> (B, C, 1, 1), the same values
    either way: ``amax`` where no gradient is needed (several times faster at inference), else
    ``adaptive_max_pool2d``, whose backward (a scatter to the kept indices) is about 3x cheaper
    than ``amax``'s in the family's bfloat16 training step."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return F.adaptive_max_pool2d(x, 1)
        return x.amax((2, 3), keepdim=True)


class ChannelPool(nn.Module):
    """The channel-wise mean and max maps of (B, C, H, W), concatenated: (B, 2, H, W)."""

    def __init__(self, max_first: bool = False) -> None:
        super().__init__()
        self.max_first = max_first

    def forward(self, x: Tensor) -> Tensor:
        mean, peak = x.mean(1, keepdim=True), x.amax(1, keepdim=True)
        return torch.cat([peak, mean] if self.max_first else [mean, peak], dim=1)

    def extra_repr(self) -> str:
        return "[max, mean]" if self.max_first else "[mean, max]"


class SpatialAttention(nn.Module):
    """Ms(F) = sigmoid(conv_kxk([mean_c(F), max_c(F)])), one weight per position: (B, 1, H, W)."""

    def __init__(self, kernel_size: int = 7, layout: str = "simple") -> None:
        super().__init__()
        spec = LAYOUTS[layout]
        self.pool = ChannelPool(spec.max_first)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(1, momentum=0.01) if spec.spatial_bn else nn.Identity()
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return self.gate(self.bn(self.conv(self.pool(x))))


class CBAM(nn.Module):
    """Refines features with channel and/or spatial attention in the configured order."""

    def __init__(self, channels: int, config: CBAMConfig = CBAMConfig()) -> None:
        super().__init__()
        if config.attention == "none":
            raise ValueError("CBAM with attention='none' has no gate; build the block without CBAM")
        self.order = config.order
        self.channel = ChannelAttention(channels, config.reduction, config.layout) if config.uses_channel else None
        self.spatial = SpatialAttention(config.kernel_size, config.layout) if config.uses_spatial else None

    def forward(self, x: Tensor) -> Tensor:
        if self.spatial is None:
            return x * self.channel(x)
        if self.channel is None:
            return x * self.spatial(x)
        if self.order == "channel-first":
            x = x * self.channel(x)
            return x * self.spatial(x)
        if self.order == "spatial-first":
            x = x * self.spatial(x)
            return x * self.channel(x)
        return x * self.channel(x) * self.spatial(x)  # parallel: both gates see the same input

    def extra_repr(self) -> str:
        return f"order={self.order}"


def set_order(model: nn.Module, order: str) -> None:
    """Make every CBAM of ``model`` apply its gates in ``order``: a what-if for weights trained in
    another order (nothing is retrained)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    for module in model.modules():
        if isinstance(module, CBAM):
            module.order = order

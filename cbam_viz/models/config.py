"""The configuration of CBAM modules, and the choices the family offers: plain data, no torch
(the app's first page reads it before torch is loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Order = Literal["channel-first", "spatial-first", "parallel"]
Attention = Literal["both", "channel", "spatial", "none"]

ORDERS: tuple[str, ...] = ("channel-first", "spatial-first", "parallel")
ATTENTIONS: tuple[str, ...] = ("both", "channel", "spatial", "none")
KERNEL_SIZES: tuple[int, ...] = (3, 7)  # the spatial kernels the paper compares (Table 3)
REDUCTIONS: tuple[int, ...] = (8, 16, 32)  # reduction ratios around the paper's r = 16


@dataclass(frozen=True)
class Layout:
    """How a CBAM module lays out its tensors."""

    linear_mlp: bool  # nn.Linear (True) or 1x1 nn.Conv2d (False) for the shared MLP
    mlp_bias: bool
    spatial_bn: bool  # BatchNorm after the spatial convolution
    max_first: bool  # pooled maps concatenated as [max, mean] (True) or [mean, max]


LAYOUTS: dict[str, Layout] = {
    "simple": Layout(linear_mlp=False, mlp_bias=False, spatial_bn=False, max_first=False),
    "official": Layout(linear_mlp=True, mlp_bias=True, spatial_bn=True, max_first=True),
    "timm": Layout(linear_mlp=False, mlp_bias=False, spatial_bn=True, max_first=False),
}


@dataclass(frozen=True)
class CBAMConfig:
    """Everything that configures the CBAM modules of a network.

    ``order`` chains the gates: ``channel-first`` (the paper's choice) feeds the channel-refined
    features to the spatial gate; ``spatial-first`` the reverse; ``parallel`` computes both gates
    from the same input and applies them together, ``out = x * Mc(x) * Ms(x)``.
    ``attention`` ablates gates: ``both``, ``channel`` (channel attention only), ``spatial``
    (spatial attention only) or ``none`` (a plain network).
    """

    order: Order = "channel-first"
    kernel_size: int = 7
    reduction: int = 16
    attention: Attention = "both"
    layout: str = "simple"

    def __post_init__(self) -> None:
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {self.attention!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {tuple(LAYOUTS)}, got {self.layout!r}")
        if not isinstance(self.kernel_size, int) or self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer (3, 5, 7), got {self.kernel_size!r}")
        if not isinstance(self.reduction, int) or self.reduction < 1:
            raise ValueError(f"reduction ratio must be a positive integer, got {self.reduction!r}")

    @property
    def uses_channel(self) -> bool:
        return self.attention in ("both", "channel")

    @property
    def uses_spatial(self) -> bool:
        return self.attention in ("both", "spatial")

"""CBAM: channel attention, spatial attention, and the module that chains them.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018.

Two tensor layouts are exact here (see :data:`LAYOUTS`):

* ``simple``   - the layout most tutorials use: the shared MLP is two 1x1 convolutions without
  bias, the spatial convolution has no BatchNorm, the pooled maps are concatenated as
  ``[mean, max]``.
* ``official`` - Jongchan/attention-module (the paper's code): ``nn.Linear`` MLP with bias,
  BatchNorm after the spatial convolution, pooled maps concatenated as ``[max, mean]``.
* ``timm``     - ``timm.layers.CbamModule``: 1x1-conv MLP without bias, BatchNorm after the
  spatial convolution, ``[mean, max]``.

The gates return their *weights*, not gated features, so a forward hook on a gate sees exactly
the tensor that the CBAM module multiplies the features by.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from . import fused

Order = Literal["channel-first", "spatial-first", "parallel"]
Attention = Literal["both", "channel", "spatial", "none"]

ORDERS: tuple[str, ...] = ("channel-first", "spatial-first", "parallel")
ATTENTIONS: tuple[str, ...] = ("both", "channel", "spatial", "none")


@dataclass(frozen=True)
class Layout:
    """How a CBAM module lays out its tensors; all layouts compute the same function family."""

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


class PointwiseConv(nn.Conv2d):
    """A 1x1 convolution (the tutorials' MLP layer) that runs as a matrix product on 1x1 inputs.

    Same parameters and results as ``nn.Conv2d(cin, cout, 1)``; on the pooled (N, C, 1, 1)
    descriptors ``F.linear`` is several times faster on CPU than a oneDNN convolution call.
    """

    def __init__(self, cin: int, cout: int, bias: bool) -> None:
        super().__init__(cin, cout, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2:] != (1, 1):
            return super().forward(x)
        return F.linear(x.flatten(1), self.weight.flatten(1), self.bias)[:, :, None, None]


class GateConv(nn.Conv2d):
    """The spatial gate's 2 -> 1 k x k convolution; in inference on CPU it runs ATen's direct kernel.

    Same parameters and results as ``nn.Conv2d(2, 1, k, padding=k // 2, bias=False)``. oneDNN
    spends longer preparing a one-output-channel convolution than running it: the direct (im2col)
    kernel is 2-5x faster on these maps (2-3 ms less per ResNet-50 forward on 2 threads). Under a
    dispatch mode (``torch.utils.flop_counter.FlopCounterMode``, tracing) it runs the standard
    convolution, which those tools know.
    """

    def __init__(self, kernel_size: int) -> None:
        super().__init__(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.training or x.device.type != "cpu" or is_in_torch_dispatch_mode():
            return super().forward(x)
        return torch._C._nn.thnn_conv2d(x, self.weight, self.kernel_size, self.bias, self.stride, self.padding)


class ChannelAttention(nn.Module):
    """Mc(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))), one weight per channel: (B, C, 1, 1)."""

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
            fc1 = nn.Linear(channels, hidden, bias=spec.mlp_bias)
            fc2 = nn.Linear(hidden, channels, bias=spec.mlp_bias)
        else:
            fc1 = PointwiseConv(channels, hidden, bias=spec.mlp_bias)
            fc2 = PointwiseConv(hidden, channels, bias=spec.mlp_bias)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.mlp = nn.Sequential(fc1, nn.ReLU(inplace=True), fc2)

    def kernel_args(self) -> tuple | None:
        """``(w1, b1, w2, b2)`` for :func:`cbam_viz.fused.channel_gate` when it may compute this gate:
        in inference, with plain parameters (a parametrized weight is not in ``_parameters``) and
        no hook on the MLP's modules; else None. (Submodules and parameters are read from their
        dicts, see _HOT_PATH.)"""
        avg_pool, (fc1, relu, fc2) = self._modules["avg_pool"], self._modules["mlp"]._modules.values()
        w1, b1, w2, b2 = (layer._parameters.get(name) for layer in (fc1, fc2) for name in ("weight", "bias"))
        if self.training or w1 is None or w2 is None or not fused.unobserved(avg_pool, fc1, relu, fc2):
            return None
        return w1, b1, w2, b2

    def forward(self, x: Tensor) -> Tensor:
        args = self.kernel_args()
        if args is not None and fused.usable(x, *args):
            return fused.channel_gate(x, *args)
        b, c = x.shape[:2]
        # Both descriptors go through the shared MLP as one batch of 2B rows.
        # amax rather than AdaptiveMaxPool2d, which also computes argmax indices (3x slower on CPU)
        pooled = torch.cat([self.avg_pool(x), x.amax((2, 3), keepdim=True)])
        logits = self.mlp(pooled.flatten(1) if self.linear else pooled).view(2 * b, c)
        return torch.add(logits[:b], logits[b:]).sigmoid_().view(b, c, 1, 1)


class SpatialAttention(nn.Module):
    """Ms(F) = sigmoid(conv_kxk([mean_c(F), max_c(F)])), one weight per position: (B, 1, H, W)."""

    def __init__(self, kernel_size: int = 7, layout: str = "simple") -> None:
        super().__init__()
        spec = LAYOUTS[layout]
        self.max_first = spec.max_first
        self.conv = GateConv(kernel_size)
        self.bn = nn.BatchNorm2d(1, momentum=0.01) if spec.spatial_bn else nn.Identity()

    def kernel_args(self) -> tuple | None:
        """``(weight, bn, max_first)`` for :func:`cbam_viz.fused.spatial_gate` when it may compute
        this gate (as :meth:`ChannelAttention.kernel_args`); ``bn`` is the BatchNorm's (weight,
        bias, running mean, running variance, eps), or None without BatchNorm."""
        conv, bn = self._modules["conv"], self._modules["bn"]  # (see _HOT_PATH)
        weight = conv._parameters.get("weight")
        stats = (bn._parameters.get("weight"), bn._parameters.get("bias"), bn._buffers.get("running_mean"),
                 bn._buffers.get("running_var")) if isinstance(bn, nn.BatchNorm2d) else ()
        if self.training or weight is None or any(t is None for t in stats) or not fused.unobserved(conv, bn):
            return None
        return weight, (*stats, bn.eps) if stats else None, self.max_first

    def forward(self, x: Tensor, scale: Tensor | None = None) -> Tensor:
        """The map of ``x``, or with ``scale`` (channel weights, B x C x 1 x 1) of ``x * scale``,
        which the compiled kernel never materialises."""
        args = self.kernel_args()
        if args is not None and fused.usable(x, scale, *_kernel_tensors(None, args)) \
                and (scale is None or scale.shape == (*x.shape[:2], 1, 1)):
            return fused.spatial_gate(x, *args, scale)
        if scale is not None:
            x = x * scale
        mean, amax = x.mean(1, keepdim=True), x.amax(1, keepdim=True)
        pooled = torch.cat([amax, mean] if self.max_first else [mean, amax], dim=1)
        return self.bn(self.conv(pooled)).sigmoid_()


# _HOT_PATH: in inference the gates read their submodules and parameters straight from the module's
# dicts (``self._modules["conv"]``, ``conv._parameters["weight"]``): ``self.conv`` first fails the
# normal attribute lookup, then goes through ``nn.Module.__getattr__``, ~4 us each on these CPUs,
# about 1 ms per CBAM-ResNet-50 forward.


def _kernel_tensors(mlp: tuple | None, conv: tuple | None) -> tuple:
    """The tensors among the gates' :meth:`kernel_args` (for :func:`cbam_viz.fused.usable`)."""
    return (*(mlp or ()), *(() if conv is None else (conv[0], *(conv[1] or ())[:4])))


def _tap(taps: dict | None, channel: Tensor | None, spatial: Tensor | None) -> None:
    """Keep the gates' outputs in ``taps`` (see :meth:`CBAM.forward`)."""
    if taps is not None:
        taps.update(((k, v) for k, v in (("channel", channel), ("spatial", spatial)) if v is not None))


def _apply(x: Tensor, weights: Tensor, inplace: bool) -> Tensor:
    """``x * weights``, in place when allowed and no backward pass will need ``x``."""
    if inplace and not (torch.is_grad_enabled() and (x.requires_grad or weights.requires_grad)):
        return x.mul_(weights)
    return x * weights


class CBAM(nn.Module):
    """Refines features with channel and/or spatial attention in the configured order.

    With ``inplace=True`` (how the residual blocks use it) inference overwrites the input with the
    refined features instead of allocating new ones, like ``nn.ReLU(inplace=True)``; training and
    any pass that needs gradients always work out of place.
    """

    def __init__(self, channels: int, config: CBAMConfig = CBAMConfig(), inplace: bool = False) -> None:
        super().__init__()
        if config.attention == "none":
            raise ValueError("CBAM with attention='none' has no gate; build the block without CBAM")
        self.order = config.order
        self.inplace = inplace
        self.channel = ChannelAttention(channels, config.reduction, config.layout) if config.uses_channel else None
        self.spatial = SpatialAttention(config.kernel_size, config.layout) if config.uses_spatial else None

    def forward(self, x: Tensor, residual: Tensor | None = None, relu: bool = False,
                taps: dict[str, Tensor] | None = None) -> Tensor:
        """The refined features; with ``residual``, ``residual + refined``, through a ReLU if ``relu``
        (the last gate, the addition and the ReLU then run as one pass, as the residual blocks use it).

        ``taps``, a dict, receives the gates' outputs that were multiplied in: ``"channel"``
        (B, C, 1, 1) and ``"spatial"`` (B, 1, H, W), for the gates this block has
        (:class:`cbam_viz.capture.AttentionRecorder` passes it through a forward pre-hook)."""
        if residual is not None and self.inplace and (out := self._compiled(x, residual, relu, taps)) is not None:
            return out
        inplace, channel, spatial = self.inplace, None, None
        if self.channel is None:
            first, last = x, (spatial := self.spatial(x))
        elif self.spatial is None:
            first, last = x, (channel := self.channel(x))
        elif self.order == "channel-first":
            first = _apply(x, (channel := self.channel(x)), inplace)
            last = spatial = self.spatial(first)
        elif self.order == "spatial-first":
            first = _apply(x, (spatial := self.spatial(x)), inplace)
            last = channel = self.channel(first)
        else:  # parallel: both gates from the same input
            channel, spatial = self.channel(x), self.spatial(x)
            first, last = _apply(x, channel, inplace), spatial
        _tap(taps, channel, spatial)
        if residual is None:
            return _apply(first, last, inplace)
        out = torch.addcmul(residual, first, last)
        return out.relu_() if relu else out

    def _compiled(self, x: Tensor, residual: Tensor, relu: bool, taps: dict | None) -> Tensor | None:
        """Inference with :mod:`cbam_viz.fused`, in place: one call for the whole block when no hook
        watches its gates; else the gates as module calls (so that the hooks see them), then
        ``residual + x * Mc * Ms`` (and the ReLU) in one pass over ``x``. None when the kernels
        cannot run here (:func:`cbam_viz.fused.usable`)."""
        channel_gate, spatial_gate = self._modules.get("channel"), self._modules.get("spatial")  # (see _HOT_PATH)
        gates = [gate for gate in (channel_gate, spatial_gate) if gate is not None]
        if residual.shape == x.shape and fused.unobserved(*gates) \
                and None not in (args := [gate.kernel_args() for gate in gates]):
            # nothing to show the gates to: the whole block in one call
            mlp = args[0] if channel_gate is not None else None
            conv = args[-1] if spatial_gate is not None else None
            if fused.usable(x, residual, *_kernel_tensors(mlp, conv)):
                x, channel, spatial = fused.cbam_block(x, residual, relu, self.order, mlp, conv, taps is not None)
                _tap(taps, channel, spatial)
                return x
        if not fused.usable(x, residual):
            return None
        if self.order == "spatial-first" and channel_gate is not None and spatial_gate is not None:
            spatial = spatial_gate(x)
            channel = channel_gate(x.mul_(spatial))
            _tap(taps, channel, spatial)
            return fused.gate_residual(x, residual, relu, channel, None)
        channel = None if channel_gate is None else channel_gate(x)
        # channel-first: the map of x * Mc, parallel: of x
        spatial = None if spatial_gate is None else spatial_gate(x, scale=channel if self.order == "channel-first" else None)
        _tap(taps, channel, spatial)
        return fused.gate_residual(x, residual, relu, channel, spatial)

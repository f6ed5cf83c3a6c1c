"""Step through one CBAM block on one image: every intermediate value of both gates, as computed.

    steps = step_through(model, "layer2.1", x)     # x: (1, 3, H, W), the model's input
    steps.channel.avg, steps.channel.hidden_avg, steps.channel.weights
    steps.spatial.mean, steps.spatial.kernel, steps.spatial.weights

Every value comes from a forward hook on the real submodule that computed it (the pools, the
MLP's ReLU and output, the spatial pool and convolution, the sigmoids): there is no second
implementation of the math. The hooks are removed when the pass ends, also when it raises.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from ..models.attention import CBAM


@dataclass(frozen=True)
class ChannelSteps:
    """The channel gate on one image: descriptors (C,), hidden layers (C/r,), MLP outputs (C,),
    their sum (the logits) and the weights Mc = sigmoid(logits)."""

    avg: np.ndarray
    max: np.ndarray
    hidden_avg: np.ndarray
    hidden_max: np.ndarray
    mlp_avg: np.ndarray
    mlp_max: np.ndarray
    logits: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class SpatialSteps:
    """The spatial gate on one image: channel-mean and channel-max maps (H, W), the k x k kernel's
    planes for each (2, k, k, in that order), the convolution's output, the logits (after the
    BatchNorm where the layout has one) and the weights Ms = sigmoid(logits)."""

    mean: np.ndarray
    max: np.ndarray
    kernel: np.ndarray
    conv: np.ndarray
    logits: np.ndarray
    weights: np.ndarray


@dataclass(frozen=True)
class BlockSteps:
    """One CBAM block's computation: its input and refined output (C, H, W) and each gate's steps
    (None when the gate is off), in the block's order."""

    name: str
    order: str
    input: np.ndarray
    output: np.ndarray
    channel: ChannelSteps | None
    spatial: SpatialSteps | None

    @property
    def sequence(self) -> list[str]:
        """The gates in the order the block applies them (``parallel``: both on the same input)."""
        gates = [g for g in ("channel", "spatial") if getattr(self, g) is not None]
        return gates[::-1] if self.order == "spatial-first" else gates


def cbam_modules(model: nn.Module) -> dict[str, CBAM]:
    """Every CBAM module of ``model`` by the name of the block it sits in (``layer2.1``)."""
    return {name.rsplit(".", 1)[0]: m for name, m in model.named_modules() if isinstance(m, CBAM)}


def _first(t: Tensor) -> np.ndarray:
    return t[0].detach().float().cpu().numpy().copy()


@torch.no_grad()
def step_through(model: nn.Module, block: str, x: Tensor) -> BlockSteps:
    """Run ``model`` on ``x`` (its first image is stepped through) and capture every step of the
    CBAM in ``block``."""
    cbam = cbam_modules(model).get(block)
    if cbam is None:
        raise KeyError(f"no CBAM block named {block!r}; blocks: {', '.join(cbam_modules(model)) or 'none'}")
    seen: dict[str, list[Tensor]] = {}

    def keep(key: str, what: str = "output"):
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            seen.setdefault(key, []).append((inputs[0] if what == "input" else output).detach().clone())
        return hook

    watched = [(cbam, "block_in", "input"), (cbam, "block_out", "output")]
    if cbam.channel is not None:
        c = cbam.channel
        watched += [(c.avg_pool, "avg", "output"), (c.max_pool, "max", "output"), (c.mlp[1], "hidden", "output"),
                    (c.mlp, "mlp", "output"), (c.gate, "c_logits", "input"), (c.gate, "c_weights", "output")]
    if cbam.spatial is not None:
        s = cbam.spatial
        watched += [(s.pool, "pooled", "output"), (s.conv, "conv", "output"), (s.gate, "s_logits", "input"),
                    (s.gate, "s_weights", "output")]
    with ExitStack() as stack:
        for module, key, what in watched:
            stack.callback(module.register_forward_hook(keep(key, what)).remove)
        model(x)
    channel = spatial = None
    if cbam.channel is not None:
        (avg,), (peak,), (h_avg, h_max), (m_avg, m_max) = seen["avg"], seen["max"], seen["hidden"], seen["mlp"]
        channel = ChannelSteps(*(_first(t).reshape(-1) for t in (avg, peak, h_avg, h_max, m_avg, m_max,
                                                                   seen["c_logits"][0], seen["c_weights"][0])))
    if cbam.spatial is not None:
        pooled = _first(seen["pooled"][0])
        kernel = cbam.spatial.conv.weight[0].detach().float().cpu().numpy().copy()
        mean_at, max_at = (1, 0) if cbam.spatial.pool.max_first else (0, 1)
        spatial = SpatialSteps(pooled[mean_at], pooled[max_at], kernel[[mean_at, max_at]], _first(seen["conv"][0])[0],
                               _first(seen["s_logits"][0])[0], _first(seen["s_weights"][0])[0])
    return BlockSteps(block, cbam.order, _first(seen["block_in"][0]), _first(seen["block_out"][0]), channel, spatial)

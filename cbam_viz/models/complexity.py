"""Parameters and FLOPs of a network, per CBAM block, per stage and in total.

FLOPs here are counted with the rules of thop (pytorch-OpCounter), the counter the CBAM
literature's figures come from, so the numbers can be compared with published ones:

* Conv2d / Linear: one multiply-accumulate per weight use (bias not counted);
* BatchNorm: 2 operations per element, 4 with an affine transform;
* AdaptiveAvgPool2d: one add per input element and one divide per output element;
* ReLU, max pooling, sigmoid, the spatial gate's channel pooling (no module thop knows) and other
  elementwise or selection ops: 0.

The tests check these counts against thop itself and the convolution/linear part against
``torch.utils.flop_counter``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .attention import CBAM, ChannelPool, GlobalMaxPool

_FREE = (ChannelPool, GlobalMaxPool, nn.ReLU, nn.GELU, nn.Sigmoid, nn.MaxPool2d, nn.AdaptiveMaxPool2d, nn.Identity, nn.Flatten, nn.Sequential)


def module_flops(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    """FLOPs of one call of a leaf module, by thop's rules."""
    if isinstance(module, nn.Conv2d):
        cin = inputs[0].shape[1]
        return output.numel() * (cin // module.groups) * module.kernel_size[0] * module.kernel_size[1]
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return inputs[0].numel() * (4 if module.affine else 2)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        return inputs[0].numel() + output.numel()
    if isinstance(module, _FREE):
        return 0
    raise TypeError(f"no FLOPs rule for {type(module).__name__}")


@dataclass
class Complexity:
    """Parameters and FLOPs of a whole network and of its parts, for one input size."""

    input_shape: tuple[int, ...]
    params: int
    flops: int
    stages: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> params, flops
    blocks: dict[str, dict[str, int]] = field(default_factory=dict)  # CBAM block -> params, flops

    @property
    def attention_params(self) -> int:
        return sum(b["params"] for b in self.blocks.values())

    @property
    def attention_flops(self) -> int:
        return sum(b["flops"] for b in self.blocks.values())

    def as_dict(self) -> dict:
        """A JSON-ready summary."""
        return {
            "input_shape": list(self.input_shape),
            "params": self.params,
            "flops": self.flops,
            "attention_params": self.attention_params,
            "attention_flops": self.attention_flops,
            "stages": self.stages,
            "blocks": self.blocks,
        }


def _stage_of(name: str) -> str:
    top = name.split(".", 1)[0]
    if top.startswith("layer"):
        return top
    return "head" if top in ("avgpool", "pool", "fc") else "stem"


def count_complexity(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, 224, 224)) -> Complexity:
    """Run one forward pass on zeros of ``input_shape`` and count parameters and FLOPs.

    ``blocks`` holds the CBAM module of each residual block (keyed by the block's name, e.g.
    ``layer3.1``); ``stages`` holds the stem, ``layer1``..``layer4`` and the head, attention
    included. Works on a bare CBAM module too (then it is its own single block, named ``cbam``).
    """
    flops: dict[str, int] = {}
    handles = []
    for name, module in model.named_modules():
        if next(module.children(), None) is not None:
            continue

        def hook(mod: nn.Module, inputs: tuple, output: Tensor, name: str = name) -> None:
            flops[name] = flops.get(name, 0) + module_flops(mod, inputs, output)

        handles.append(module.register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        param = next(model.parameters(), None)
        x = torch.zeros(input_shape, dtype=param.dtype if param is not None else torch.float32)
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)

    def owned_by(prefix: str) -> tuple[int, int]:
        params = sum(p.numel() for n, p in model.named_parameters() if n == prefix or n.startswith(prefix + "."))
        ops = sum(v for n, v in flops.items() if n == prefix or n.startswith(prefix + "."))
        return params, ops

    report = Complexity(
        tuple(input_shape), sum(p.numel() for p in model.parameters()), sum(flops.values())
    )
    if isinstance(model, CBAM):
        report.blocks["cbam"] = {"params": report.params, "flops": report.flops}
        return report
    for name, module in model.named_modules():
        if isinstance(module, CBAM):
            params, ops = owned_by(name)
            report.blocks[name.rsplit(".", 1)[0]] = {"params": params, "flops": ops}
    for name, p in model.named_parameters():
        stage = report.stages.setdefault(_stage_of(name), {"params": 0, "flops": 0})
        stage["params"] += p.numel()
    for name, ops in flops.items():
        stage = report.stages.setdefault(_stage_of(name), {"params": 0, "flops": 0})
        stage["flops"] += ops
    return report

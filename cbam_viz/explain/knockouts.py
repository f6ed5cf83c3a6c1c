"""Same-weights knock-outs: replace a gate's output on the loaded model and see what changes.

A knock-out is an intervention on *this* model, unlike the sidebar's variants (other trained
models). It is a forward hook on the gate module that returns a replacement for the gate's
weights, registered for one pass and removed afterwards, also when the pass raises::

    with knocked_out(model, ["layer2.0"], "channel-one"):
        logits = model(x)
    table = knockout_table(model, x, "spatial-mean")    # one row per block: what it did to the top class
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a knock-out runs: the page lists them without it
    from torch import Tensor, nn

KNOCKOUTS = {
    "channel-one": "Mc := 1 (channel gate off)",
    "channel-mean": "Mc := its mean (no channel preference)",
    "spatial-one": "Ms := 1 (spatial gate off)",
    "spatial-mean": "Ms := its mean (no position preference)",
    "zero-top": "zero the top-k channels (Mc := 0 there)",
    "keep-top": "keep only the top-k channels (Mc := 0 elsewhere)",
}


def _replacement(kind: str, k: int):
    import torch

    def replace(weights: Tensor) -> Tensor:
        if kind.endswith("-one"):
            return torch.ones_like(weights)
        if kind.endswith("-mean"):
            return weights.mean(dim=tuple(range(1, weights.dim())), keepdim=True).expand_as(weights).contiguous()
        flat = weights.flatten(1)
        top = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, flat.topk(min(k, flat.shape[1]), dim=1).indices, True)
        keep = ~top if kind == "zero-top" else top
        return (flat * keep).view_as(weights)
    return replace


@contextmanager
def knocked_out(model: nn.Module, blocks: Iterable[str], kind: str, k: int = 10) -> Iterator[None]:
    """Within the context, the gate that ``kind`` names returns its replacement in each of ``blocks``."""
    from .steps import cbam_modules

    if kind not in KNOCKOUTS:
        raise ValueError(f"unknown knock-out {kind!r}; one of {', '.join(KNOCKOUTS)}")
    cbams = cbam_modules(model)
    gate = "spatial" if kind.startswith("spatial") else "channel"
    replace = _replacement(kind, k)
    with ExitStack() as stack:
        for name in blocks:
            module = getattr(cbams[name], gate)
            if module is not None:
                stack.callback(module.register_forward_hook(lambda m, i, out: replace(out)).remove)
        yield


@dataclass(frozen=True)
class KnockoutRow:
    """What knocking out ``block`` did to the class the intact model predicts."""

    block: str
    probability: float  # of the intact model's top class, after the knock-out
    drop: float  # intact probability minus ``probability`` (positive: the gate supported that class)
    top_class: int  # the top class after the knock-out


def knockout_table(model: nn.Module, x: Tensor, kind: str, k: int = 10) -> tuple[int, float, list[KnockoutRow]]:
    """The intact top class and its probability, and one row per CBAM block knocked out alone,
    sorted from the largest drop ("which block's attention matters most for this image")."""
    import torch

    from .steps import cbam_modules

    with torch.no_grad():
        probs = model(x).softmax(1)[0]
        top = int(probs.argmax())
        rows = []
        for name in cbam_modules(model):
            with knocked_out(model, [name], kind, k):
                after = model(x).softmax(1)[0]
            rows.append(KnockoutRow(name, float(after[top]), float(probs[top] - after[top]), int(after.argmax())))
    return top, float(probs[top]), sorted(rows, key=lambda r: -r.drop)

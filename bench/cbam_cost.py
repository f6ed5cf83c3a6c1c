"""Where CBAM's share of a CBAM-ResNet-50 forward goes (eval, batch 1, 224 px, 2 threads).

Times every block's CBAM module twice: inside the network's forward (timer hooks) and re-run on
its own saved inputs, over and over, so that they stay in the CPU caches. The gap between the two
is what the gates' passes over the feature maps cost when the maps come from memory, as they do in
a real forward. Also prints the whole forward against the same network built without attention.

With ``--ablate``, times the forward against torchvision's ResNet-50 (interleaved, in one process)
in several setups: the gates as they are (the compiled kernels of :mod:`cbam_viz.fused`, when a C
compiler is there); the same on stock operators only; on stock operators, the channel gate without
its shared MLP, and both gates replaced by constants (only the multiplications left); every CBAM
module compiled by ``torch.compile`` (Inductor's C++ kernels; the first run compiles for ~30 s);
and every CBAM's inference written with the fewest ATen calls, the ceiling of stock operators
(same outputs within float rounding).

    python bench/cbam_cost.py [--runs 25] [--ablate]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cbam_viz import fused  # noqa: E402
from cbam_viz.attention import CBAM, CBAMConfig, ChannelAttention, SpatialAttention  # noqa: E402
from cbam_viz.resnet import cbam_resnet50  # noqa: E402

from bench.peers import paired  # noqa: E402


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1e3


def channel_without_mlp(self: ChannelAttention, x: torch.Tensor) -> torch.Tensor:
    return (x.mean((2, 3), keepdim=True) + x.amax((2, 3), keepdim=True)).sigmoid_()


def channel_constant(self: ChannelAttention, x: torch.Tensor) -> torch.Tensor:
    return x.new_full((x.shape[0], x.shape[1], 1, 1), 0.5)


def spatial_constant(self: SpatialAttention, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    return x.new_full((x.shape[0], 1, *x.shape[2:]), 0.5)


def fewest_ops(self: CBAM, features: torch.Tensor, residual: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """Channel-first CBAM inference (timm layout, as the model here) in the fewest ATen calls: both
    pooled descriptors through the first MLP layer in one product, the second layer once on the sum
    of the two hidden vectors (it is linear), the spatial convolution and BatchNorm called directly."""
    channel, spatial, b, c = self.channel, self.spatial, *features.shape[:2]
    w1, w2 = channel.mlp[0].weight.flatten(1), channel.mlp[2].weight.flatten(1)
    hidden = torch.mm(torch.cat([features.mean((2, 3)), features.amax((2, 3))]), w1.t()).relu_()
    features.mul_(torch.mm(hidden.sum(0, keepdim=True), w2.t()).sigmoid_().view(b, c, 1, 1))
    pooled = torch.cat([features.mean(1, keepdim=True), features.amax(1, keepdim=True)], 1)
    conv, bn = spatial.conv, spatial.bn
    s = torch._C._nn.thnn_conv2d(pooled, conv.weight, conv.kernel_size, None, conv.stride, conv.padding)
    s = torch.nn.functional.batch_norm(s, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    out = torch.addcmul(residual, features, s.sigmoid_())
    return out.relu_() if relu else out


def ablate(model: torch.nn.Module, x: torch.Tensor, runs: int) -> None:
    """The forward against torchvision's ResNet-50 with parts of the gates' arithmetic removed."""
    from torchvision.models import resnet50

    reference = resnet50().eval()
    gates = [m for m in model.modules() if isinstance(m, CBAM)]
    compiled = [torch.compile(m.forward, dynamic=False) for m in gates]
    as_is = (ChannelAttention.forward, SpatialAttention.forward)
    usable = fused.usable
    setups = {
        "gates as they are": as_is,
        "stock operators (no compiled kernels)": as_is,
        "channel gate without its MLP": (channel_without_mlp, as_is[1]),
        "both gates constant (multiplications only)": (channel_constant, spatial_constant),
        "CBAM modules compiled (torch.compile)": as_is,
        "fewest ATen calls (stock operators' ceiling)": as_is,
    }

    def use(name: str) -> None:
        ChannelAttention.forward, SpatialAttention.forward = setups[name]
        fused.usable = usable if name == "gates as they are" else (lambda *tensors: False)
        for gate, fast in zip(gates, compiled):
            if name.startswith("CBAM modules compiled"):
                gate.forward = fast
            elif name.startswith("fewest ATen calls"):
                gate.forward = fewest_ops.__get__(gate)
            else:
                gate.__dict__.pop("forward", None)

    print(f"\n{'ours / torchvision ResNet-50':<46}{'median ratio':>13}{'ours ms':>9}{'tv ms':>7}")
    with torch.no_grad():
        expected = model(x)
        try:
            for name in setups:
                use(name)  # paired() warms up first (and so compiles)
                if name.startswith("fewest ATen calls"):  # the same network, not a cheaper one
                    torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)
                theirs, ours, ratio = paired(lambda: reference(x), lambda: model(x), runs)
                print(f"{name:<46}{ratio:>13.3f}{ours * 1e3:>9.1f}{theirs * 1e3:>7.1f}")
        finally:
            use("gates as they are")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=25)
    p.add_argument("--ablate", action="store_true", help="also time the forward with parts of the gates removed")
    args = p.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x = torch.randn(1, 3, 224, 224)
    model = cbam_resnet50(CBAMConfig(layout="timm")).eval()
    plain = cbam_resnet50(CBAMConfig(attention="none")).eval()
    plain.load_state_dict(model.state_dict(), strict=False)
    in_network: dict[str, list[float]] = {}
    inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    started: dict[str, float] = {}

    def before(name: str):
        def hook(module, args):
            if name not in inputs:
                inputs[name] = (args[0].clone(), args[1].clone())
            started[name] = time.perf_counter()
        return hook

    def after(name: str):
        def hook(module, args, output):
            in_network.setdefault(name, []).append(time.perf_counter() - started[name])
        return hook

    gates = {n: m for n, m in model.named_modules() if isinstance(m, CBAM)}
    with torch.no_grad():
        for _ in range(3):
            model(x), plain(x)
        forward, bare = [], []
        for i in range(args.runs):  # interleaved with the network without attention
            for net, out in ((model, forward), (plain, bare)) if i % 2 else ((plain, bare), (model, forward)):
                t = time.perf_counter()
                net(x)
                out.append(time.perf_counter() - t)
        handles = [h for n, m in gates.items()
                   for h in (m.register_forward_pre_hook(before(n)), m.register_forward_hook(after(n)))]
        for _ in range(args.runs):
            model(x)
        for h in handles:
            h.remove()
        cached = {}
        for name, (features, residual) in inputs.items():
            times = []
            for _ in range(args.runs):
                copy = features.clone()  # the module refines its input in place
                t = time.perf_counter()
                gates[name](copy, residual)
                times.append(time.perf_counter() - t)
            cached[name] = times
    print(f"torch {torch.__version__}, 2 threads, batch 1, 224 px, eval, {args.runs} runs, medians")
    print(f"{'block':<16}{'feature map':>18}{'in network ms':>15}{'inputs cached ms':>18}")
    for name, (features, _) in inputs.items():
        shape = "x".join(map(str, features.shape[1:]))
        print(f"{name:<16}{shape:>18}{median_ms(in_network[name]):>15.2f}{median_ms(cached[name]):>18.2f}")
    total_net = sum(median_ms(v) for v in in_network.values())
    total_cached = sum(median_ms(v) for v in cached.values())
    print(f"{'all 16 CBAMs':<34}{total_net:>15.2f}{total_cached:>18.2f}")
    print(f"forward: with CBAM {median_ms(forward):.1f} ms, same network without attention {median_ms(bare):.1f} ms "
          f"(+{median_ms(forward) - median_ms(bare):.1f} ms)")
    if args.ablate:
        ablate(model, x, args.runs)


if __name__ == "__main__":
    main()

"""How far a fast-CIFAR recipe gets on this machine: a probe for the family's accuracy and time goals.

The built-in family's CBAM-ResNet-18 (half width) reached 86-87% after 15 epochs of a standard
one-cycle recipe on the CIFAR-10 JPEGs, ~10 min an epoch here. This script trains a smaller, faster
residual CBAM network with the training recipe of airbench94 (K. Jordan, "94% on CIFAR-10 in 3.29
seconds on a single GPU", 2024; hyperparameters from the paper, code written here) on the same data
and prints the test accuracy every two epochs and the wall time. It was the experiment that chose
the family's network (:mod:`cbam_viz.compact`, used here) and recipe, which ``python -m cbam_viz.train``
now runs; ``--device cuda`` runs the same sweep on a GPU in float32 (TF32 off).

The network: a frozen 2x2 whitening convolution (24 channels, from the eigenvectors of the first
5000 training images' 2x2 patches), then three stages of one residual block each (conv 3x3 ->
max-pool 2 -> BN -> GELU, then conv 3x3 -> BN -> CBAM, plus the identity, GELU), widths 64 / 256 /
256 by default, a global max-pool head and a linear layer without bias scaled by 1/9; BatchNorm
without scale, convolutions dirac-initialised. The recipe: batch 1024, Nesterov SGD with decoupled learning rate and weight
decay (lr 11.5, wd 0.0153 per 1024 images, momentum 0.85, BatchNorm biases at 64x the learning
rate), triangular schedule, label smoothing 0.2, 2-px reflect translation, alternating flips,
lookahead averaging from epoch 3. No test-time augmentation.

    python bench/recipe_probe.py --data ~/.cache/cbam-viz/cifar10 [--epochs 10] [--plain] [--seed 0]
        [--widths 64 256 256] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cbam_viz.attention import CBAMConfig  # noqa: E402
from cbam_viz.compact import CompactCBAMNet, init_whitening  # noqa: E402
from cbam_viz.data import load_split  # noqa: E402
from cbam_viz.evaluate import evaluate_arrays  # noqa: E402
from cbam_viz.train import _keep_freed_memory  # noqa: E402

BATCH, LR, MOMENTUM, WD, BIAS_SCALE, SMOOTHING = 1024, 11.5, 0.85, 0.0153, 64.0, 0.2


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="image folder with train/<class>/* and test/<class>/*")
    p.add_argument("--epochs", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plain", action="store_true", help="the same network without CBAM")
    p.add_argument("--widths", type=int, nargs=3, default=(64, 256, 256), help="channels of the three stages")
    p.add_argument("--device", default="cpu", help="torch device (e.g. cuda, for a quick sweep of epochs and seeds)")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # float32 as on the CPU
    _keep_freed_memory()
    torch.manual_seed(args.seed)

    train, test = load_split(args.data, "train", 32), load_split(args.data, "test", 32)
    mean = train.images.reshape(-1, 3).mean(0) / 255
    std = train.images.reshape(-1, 3).std(0) / 255
    m_t, s_t = torch.tensor(mean).view(1, 3, 1, 1).float(), torch.tensor(std).view(1, 3, 1, 1).float()
    x_all = (((torch.from_numpy(train.images).permute(0, 3, 1, 2).float() / 255) - m_t) / s_t).to(device)
    y_all = torch.from_numpy(train.labels).to(device)

    net = CompactCBAMNet(None if args.plain else CBAMConfig(), 10, tuple(args.widths))
    init_whitening(net.stem, x_all[:5000])
    net.stem.weight.requires_grad_(False)
    net = net.to(device, memory_format=torch.channels_last)

    scale = 1024 * (1 + 1 / (1 - MOMENTUM))  # Nesterov's step size relative to the gradient
    lr, wd = LR / scale, WD * BATCH / scale
    lr_bias = lr * BIAS_SCALE
    biases = [p for n, p in net.named_parameters() if ".bn" in n and p.requires_grad]
    others = [p for n, p in net.named_parameters() if ".bn" not in n and p.requires_grad]
    optimizer = torch.optim.SGD([dict(params=biases, lr=lr_bias, weight_decay=wd / lr_bias),
                                 dict(params=others, lr=lr, weight_decay=wd / lr)], momentum=MOMENTUM, nesterov=True)
    steps_per_epoch = len(y_all) // BATCH
    if steps_per_epoch < 1:
        p.error(f"the train split has {len(y_all)} images, fewer than one batch of {BATCH}")
    total = math.ceil(steps_per_epoch * args.epochs)
    factors = np.interp(np.arange(total + 1), [0, int(0.23 * total), total], [0.2, 1.0, 0.07])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: float(factors[min(i, total)]))

    flipped = torch.where((torch.rand(len(x_all), device=device) < 0.5).view(-1, 1, 1, 1), x_all.flip(-1), x_all)
    padded = F.pad(flipped, (2, 2, 2, 2), mode="reflect")
    average, step, t0 = None, 0, time.perf_counter()
    print(f"{'CBAM' if not args.plain else 'plain'} network {args.widths}, {sum(p.numel() for p in net.parameters()):,} parameters, "
          f"{args.epochs} epochs of {steps_per_epoch} steps, torch {torch.__version__}, {torch.get_num_threads()} threads",
          flush=True)
    for epoch in range(math.ceil(args.epochs)):
        net.stem.bias.requires_grad_(epoch < 3)
        dy, dx = (torch.randint(0, 5, (len(x_all),), device=device) for _ in range(2))
        images = torch.empty_like(x_all)
        for sy in range(5):
            for sx in range(5):
                m = (dy == sy) & (dx == sx)
                images[m] = padded[m, :, sy:sy + 32, sx:sx + 32]
        if epoch % 2 == 1:  # every image flipped the other way from last epoch
            images = images.flip(-1)
        perm = torch.randperm(len(x_all), device=device)
        net.train()
        seen = correct = 0
        for i in range(steps_per_epoch):
            idx = perm[i * BATCH:(i + 1) * BATCH]
            out = net(images[idx].contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(out, y_all[idx], label_smoothing=SMOOTHING, reduction="sum")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            correct += (out.argmax(1) == y_all[idx]).sum().item()
            seen += len(idx)
            if epoch >= 3 and step % 5 == 0:  # lookahead: pull the weights towards their running average
                state = net.state_dict()
                if average is None:
                    average = {k: v.clone() for k, v in state.items()}
                else:
                    rho = 0.95 ** 5 * (step / total) ** 3
                    for k, v in state.items():
                        if v.dtype.is_floating_point:
                            average[k].lerp_(v, 1 - rho)
                            v.copy_(average[k])
            if step >= total:
                break
        if average is not None:
            for k, v in net.state_dict().items():
                if v.dtype.is_floating_point:
                    v.copy_(average[k])
        line = f"epoch {epoch + 1}: train top-1 {100 * correct / seen:.2f}% (augmented) {(time.perf_counter() - t0) / 60:.1f} min"
        if epoch % 2 == 1 or step >= total:
            result = evaluate_arrays(net, test.images, test.labels, [float(v) for v in mean], [float(v) for v in std])
            line += f", test top-1 {result['top1']:.2f}%"
        print(line, flush=True)
        if step >= total:
            break
    print(f"done: {args.epochs} epochs in {(time.perf_counter() - t0) / 60:.1f} min (test evaluations included)")


if __name__ == "__main__":
    main()

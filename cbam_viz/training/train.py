"""Train a CBAM network on an image-folder dataset and write its weights and model card.

The network is the CBAM-ResNet-18 layout with a CIFAR stem (3x3 convolution, no max-pool) and a
width multiplier (:mod:`cbam_viz.models.resnet`). Two modes:

* end-to-end (default): every parameter is trained from scratch;
* ``--backbone FILE``: start from a trained network's weights (with or without attention), keep
  every convolution frozen and train only the attention modules, the BatchNorm layers (scale, bias
  and running statistics, which must follow the new attention) and the classifier. The weights
  file then holds only those tensors; the card names the backbone it completes.

The recipe follows airbench94 (K. Jordan, "94% on CIFAR-10 in 3.29 seconds on a single GPU", 2024;
the code is ours): Nesterov SGD on the batch's summed loss with decoupled learning rate and weight
decay, BatchNorm biases at a higher rate (``--bias-lr-scale``), a triangular schedule, label
smoothing, alternating horizontal flips, reflect-padded translation and lookahead averaging. The
defaults are the built-in family's recipe (:mod:`cbam_viz.training.family`); ``--bf16`` trains under
bfloat16 autocast.

Example (the family's plain network)::

    python -m cbam_viz.train --data ~/.cache/cbam-viz/cifar10 --out DIR --name plain --attention none --bf16

Every epoch ends with a checkpoint; ``--resume`` continues from it after an interruption (a run
whose checkpoint has every epoch only evaluates again and rewrites the card).

The card's test accuracy is that of the prediction the app makes: the mean of the logits of each
test image and its mirror image (``preprocessing.flip_average``; the network saw both during
training). The accuracy of the image's own pass alone is in the card too (``test_top1_single_view``).
"""

from __future__ import annotations

import argparse
import ctypes
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm import tqdm

from ..models.attention import ATTENTIONS, CBAM, ORDERS, CBAMConfig
from ..models.cards import architecture, machine, read_card, write_card
from ..models.resnet import CBAMResNet
from ..models.complexity import count_complexity
from ..models.download import CACHE_DIR
from . import distributed
from .data import DatasetError, channel_stats, load_split, translate
from .evaluate import evaluate_arrays, test_statistics
from ..models.weights import WeightsError, read_weights, save_weights, sha256_file

LOOKAHEAD_EVERY = 5  # steps between lookahead updates


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cbam_viz.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with train/<class>/* and test/<class>/*")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>.safetensors and <name>.json")
    p.add_argument("--name", required=True, help="name of the model files")
    p.add_argument("--width", type=float, default=0.5, help="width multiplier of the 64/128/256/512 channels")
    # the family's cards record commands that name the network: they stay runnable as written
    p.add_argument("--arch", choices=("resnet18",), default="resnet18", help=argparse.SUPPRESS)
    p.add_argument("--bf16", action="store_true", help="train under bfloat16 autocast (weights stay float32)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--order", default="channel-first", choices=ORDERS)
    p.add_argument("--kernel-size", type=int, default=7)
    p.add_argument("--reduction", type=int, default=16)
    p.add_argument("--attention", default="both", choices=ATTENTIONS)
    p.add_argument("--backbone", type=Path, help="train only attention, BatchNorm and classifier on top of these weights")
    p.add_argument("--epochs", type=int, default=48)
    p.add_argument("--steps-per-epoch", type=int, help="cap on optimizer steps per epoch (default: the whole split)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--lr", type=float, default=8.8,
                   help="peak learning rate in airbench94's units: a step is lr / (1024 (1 + 1/(1 - momentum))) "
                        "times the gradient of the batch's summed loss")
    p.add_argument("--weight-decay", type=float, default=0.005, help="decoupled weight decay per 1024 images")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--bias-lr-scale", type=float, default=1.0, help="learning-rate factor of BatchNorm biases")
    p.add_argument("--label-smoothing", type=float, default=0.2)
    p.add_argument("--translate", type=int, default=4, help="largest random shift in pixels (reflect padding)")
    p.add_argument("--lookahead-from", type=int, default=3, help="first epoch (0-based) of lookahead averaging")
    p.add_argument("--eval-every", type=int, default=0,
                   help="also measure test top-1 (single view) every N epochs, for the card's history (0: never)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fp32", action="store_true", help="store float32 weights (default: float16)")
    p.add_argument("--dataset-archive", type=Path, help="archive the data folder came from, for its sha256 in the card")
    p.add_argument("--checkpoint-dir", type=Path, default=CACHE_DIR / "checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch's checkpoint")
    p.add_argument("--stop-after-epoch", type=int, help="exit after this epoch's checkpoint (resume later)")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    p.add_argument("--why", help="why this network and recipe were chosen (stored in the card)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch-size must be >= 1")
    if not 0 <= args.momentum < 1 or args.translate < 0:
        p.error("--momentum must be in [0, 1) and --translate >= 0")
    return args


def finetuned_names(model: nn.Module) -> set[str]:
    """The state-dict names that a fine-tune on a backbone trains (and stores): attention,
    BatchNorm (parameters and running statistics) and the classifier."""
    names = set()
    for prefix, module in model.named_modules():
        if isinstance(module, (CBAM, nn.BatchNorm2d)) or prefix == "fc":
            names.update(f"{prefix}.{k}" for k in module.state_dict())
    return names


def batchnorm_biases(model: nn.Module) -> set[str]:
    """Names of the BatchNorm biases (trained at a higher learning rate)."""
    return {f"{prefix}.bias" for prefix, m in model.named_modules() if isinstance(m, nn.BatchNorm2d) and m.affine}


def build_network(args: argparse.Namespace, num_classes: int) -> nn.Module:
    """The network ``args`` describe, freshly initialised."""
    cbam = None if args.attention == "none" else CBAMConfig(args.order, args.kernel_size, args.reduction, args.attention)
    return CBAMResNet(18, cbam, num_classes=num_classes, stem="cifar", width=args.width)


def _resize_mlp(dst1: torch.Tensor, dst2: torch.Tensor, src1: torch.Tensor, src2: torch.Tensor) -> str:
    """Start a shared MLP of another width from a trained one, as close to its function as possible.

    A wider MLP keeps every trained hidden unit and adds units whose output weights are zero (so it
    starts as exactly the trained function); a narrower one keeps the hidden units that matter most
    (largest ``|w_in| * |w_out|``).
    """
    h_dst, h_src = dst1.shape[0], src1.shape[0]
    if h_dst >= h_src:
        dst1[:h_src] = src1
        dst2.zero_()
        dst2[:, :h_src] = src2
        return "every trained hidden unit kept, the new units added with zero output weights"
    importance = src1.flatten(1).norm(dim=1) * src2.flatten(1).norm(dim=0)
    keep = importance.topk(h_dst).indices.sort().values
    dst1.copy_(src1[keep])
    dst2.copy_(src2[:, keep])
    return f"the {h_dst / h_src:.0%} most important trained hidden units kept (largest |w_in|*|w_out|)"


def _init_from_backbone(model: nn.Module, backbone: dict) -> list[str]:
    """Initialise ``model`` from a trained network's weights; return how each differing part started.

    Tensors whose name and shape fit are copied. Attention of another shape starts from the trained
    attention: a smaller spatial kernel from the centre crop of the trained one, a shared MLP of
    another width by :func:`_resize_mlp`; attention that the backbone lacks (a plain network) keeps
    its fresh initialisation. Anything else that does not fit is an error.
    """
    own = model.state_dict()
    notes, misfits = {}, []
    for name, tensor in own.items():
        src = backbone.get(name)
        if src is not None and src.shape == tensor.shape:
            tensor.copy_(src)
        elif src is not None and name.endswith("spatial.conv.weight") and src.shape[-1] > tensor.shape[-1]:
            cut = (src.shape[-1] - tensor.shape[-1]) // 2
            tensor.copy_(src[..., cut : cut + tensor.shape[-2], cut : cut + tensor.shape[-1]])
            k, k_src = tensor.shape[-1], src.shape[-1]
            notes["spatial kernel"] = f"centre {k}x{k} of the trained {k_src}x{k_src} kernel"
        elif src is not None and name.endswith("channel.mlp.0.weight"):
            fc2 = name.replace("mlp.0.", "mlp.2.")
            notes["channel MLP"] = _resize_mlp(tensor, own[fc2], src, backbone[fc2])
        elif src is None and ".cbam." in name:
            notes["attention"] = "PyTorch's default initialisation (the backbone has no attention)"
        elif not name.endswith("channel.mlp.2.weight"):
            misfits.append(name)
    if misfits:
        raise WeightsError(f"backbone does not fit this network; missing or mis-shaped: {misfits[:8]}")
    return [f"{part}: {how}" for part, how in notes.items()] or ["all attention tensors copied from the backbone"]


class Lookahead:
    """Lookahead averaging (as in airbench94): every few steps the weights move to a running
    average of themselves, whose decay grows over training; at each epoch's end the network takes
    the average. Its state goes into the checkpoint."""

    def __init__(self, model: nn.Module, total_steps: int) -> None:
        self.model, self.total_steps = model, total_steps
        self.average: dict[str, Tensor] | None = None

    def update(self, step: int) -> None:
        """After optimizer step ``step`` (1-based)."""
        if step % LOOKAHEAD_EVERY:
            return
        state = self.model.state_dict()
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in state.items() if v.dtype.is_floating_point}
            return
        decay = 0.95**LOOKAHEAD_EVERY * (step / self.total_steps) ** 3
        for k, avg in self.average.items():
            avg.lerp_(state[k], 1 - decay)
            state[k].copy_(avg)

    def apply(self) -> None:
        """Give the network the averaged weights."""
        if self.average is not None:
            state = self.model.state_dict()
            for k, avg in self.average.items():
                state[k].copy_(avg)

    def state_dict(self) -> dict | None:
        return self.average

    def load_state_dict(self, average: dict | None) -> None:
        self.average = average


def optimizer_for(model: nn.Module, args: argparse.Namespace) -> torch.optim.SGD:
    """Nesterov SGD with decoupled learning rate and weight decay; BatchNorm biases at a higher rate."""
    scale = 1024 * (1 + 1 / (1 - args.momentum))
    lr, decay = args.lr / scale, args.weight_decay * args.batch_size / scale
    biases, others, bn_biases = [], [], batchnorm_biases(model)
    for name, p in model.named_parameters():
        if p.requires_grad:
            (biases if name in bn_biases else others).append(p)
    lr_bias = lr * args.bias_lr_scale
    groups = [{"params": biases, "lr": lr_bias, "weight_decay": decay / lr_bias},
              {"params": others, "lr": lr, "weight_decay": decay / lr}]
    return torch.optim.SGD([g for g in groups if g["params"]], momentum=args.momentum, nesterov=True)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, y: Tensor,
               args: argparse.Namespace, processes: int = 1) -> tuple[Tensor, Tensor]:
    """One optimizer step on a batch (bfloat16 autocast with ``args.bf16``, and always on a GPU); the
    logits and the summed loss. Under DDP with ``processes`` processes, whose gradients DDP averages,
    the loss is scaled so that the step is that of one process on the global batch."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=args.bf16 or x.is_cuda):
        logits = model(x)
    loss = F.cross_entropy(logits.float(), y, label_smoothing=args.label_smoothing, reduction="sum")
    optimizer.zero_grad(set_to_none=True)
    (loss * processes).backward()
    optimizer.step()
    return logits, loss


def _triangle(total_steps: int) -> np.ndarray:
    """Learning-rate factor per step: 0.2 rising to 1 at 23% of the run, then falling to 0.07."""
    return np.interp(np.arange(total_steps + 1), [0, int(0.23 * total_steps), total_steps], [0.2, 1.0, 0.07])


def _batch(images: Tensor, idx: Tensor, flip: Tensor, shifts: Tensor, pad: int, m_t: Tensor, s_t: Tensor) -> Tensor:
    """Normalised, flipped and translated training batch from uint8 images (N, 3, H, W)."""
    x = (images[idx].float().div_(255.0) - m_t) / s_t
    x = torch.where(flip[idx].view(-1, 1, 1, 1), x.flip(3), x)
    if pad:
        x = translate(x, shifts[idx], pad)
    return x.contiguous(memory_format=torch.channels_last)


def train(args: argparse.Namespace) -> dict:
    """Train, evaluate, write weights and card; return the card (empty when stopped early, and on
    every process but rank 0 of a distributed run)."""
    processes = distributed.setup()
    try:
        return _train(args, processes)
    finally:
        distributed.teardown(processes)


def _train(args: argparse.Namespace, procs: distributed.Processes) -> dict:
    torch.manual_seed(args.seed)
    train_split = load_split(args.data, "train", args.image_size, args.cache_dir)
    test_split = load_split(args.data, "test", args.image_size, args.cache_dir)
    if train_split.classes != test_split.classes:
        raise DatasetError(f"train and test class folders differ: {train_split.classes} vs {test_split.classes}")
    classes = train_split.classes
    n_train = len(train_split.labels)
    steps_per_epoch = n_train // args.batch_size
    if args.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.steps_per_epoch)
    if steps_per_epoch < 1:
        raise DatasetError(f"the train split has {n_train} images, fewer than one batch of {args.batch_size}")
    if args.batch_size % procs.world:
        raise ValueError(f"the batch size {args.batch_size} is not a multiple of the {procs.world} processes")

    model = build_network(args, len(classes))
    images = torch.from_numpy(train_split.images).permute(0, 3, 1, 2)  # uint8 (N, 3, H, W), a view
    labels = torch.from_numpy(train_split.labels)
    backbone_card = None
    if args.backbone is not None:
        backbone_card = read_card(args.backbone.with_suffix(".json"))
        mean, std = backbone_card["preprocessing"]["mean"], backbone_card["preprocessing"]["std"]
        if backbone_card["classes"] != classes:
            raise DatasetError(f"backbone was trained on classes {backbone_card['classes']}, this dataset has {classes}")
        own_arch, their_arch = architecture(model, len(classes)), backbone_card["architecture"]
        if {**own_arch, "cbam": None} != {**their_arch, "cbam": None}:
            raise WeightsError(f"backbone {args.backbone.name} is another network ({their_arch}) than this one ({own_arch})")
        init_notes = _init_from_backbone(model, read_weights(args.backbone))
        trained = finetuned_names(model)
        for name, p in model.named_parameters():
            p.requires_grad_(name in trained)
    else:
        mean, std = channel_stats(train_split.images)
        init_notes = ["convolutions: Kaiming normal (fan out); BatchNorm scale 1, bias 0; attention and classifier: "
                      "PyTorch's defaults"]
    m_t, s_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    model = model.to(procs.device, memory_format=torch.channels_last)
    net = nn.parallel.DistributedDataParallel(model) if procs.world > 1 else model

    total_steps = args.epochs * steps_per_epoch
    optimizer = optimizer_for(model, args)
    factors = _triangle(total_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: float(factors[min(i, total_steps)]))
    lookahead = Lookahead(model, total_steps)

    ckpt_path = args.checkpoint_dir / f"{args.out.resolve().name}-{args.name}.pt"
    start_epoch, elapsed, history = 0, 0.0, []
    ckpt = None
    if args.resume:  # read on rank 0, sent to the others
        ckpt = procs.share(torch.load(ckpt_path, map_location="cpu", weights_only=True)
                           if procs.main and ckpt_path.exists() else None)
    if ckpt is not None:
        if ckpt["config"] != _run_config(args):
            raise SystemExit(f"checkpoint {ckpt_path} was made with other settings; delete it or drop --resume")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        lookahead.load_state_dict(ckpt["lookahead"])
        start_epoch, elapsed, history = ckpt["epoch"], ckpt["elapsed"], ckpt["history"]
        print(f"resuming {args.name} after epoch {start_epoch}/{args.epochs}", file=sys.stderr)

    base_flip = torch.rand(n_train, generator=torch.Generator().manual_seed(args.seed)) < 0.5
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, args.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        perm = torch.randperm(n_train, generator=gen)
        shifts = torch.randint(0, 2 * args.translate + 1, (n_train, 2), generator=gen)
        flip = base_flip ^ bool(epoch % 2)  # every image flipped the other way from the last epoch
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"{args.name} epoch {epoch + 1}/{args.epochs}",
                   unit="step", file=sys.stderr, mininterval=5.0, dynamic_ncols=True, disable=not procs.main)
        for i in bar:
            idx = procs.shard(perm[i * args.batch_size : (i + 1) * args.batch_size])
            x = _batch(images, idx, flip, shifts, args.translate, m_t, s_t).to(procs.device, non_blocking=True)
            y = labels[idx].to(procs.device, non_blocking=True)
            logits, loss = train_step(net, optimizer, x, y, args, procs.world)
            scheduler.step()
            step += 1
            if epoch >= args.lookahead_from:
                lookahead.update(step)
            seen += len(y)
            correct += (logits.argmax(1) == y).sum().item()
            loss_sum += loss.item()
            rate = seen * procs.world / (time.perf_counter() - t0)
            remaining = (total_steps - step) * args.batch_size
            bar.set_postfix_str(
                f"loss {loss_sum / seen:.3f} acc {100 * correct / seen:.1f}% {rate:.0f} img/s "
                f"run ETA {remaining / rate / 60:.0f} min"
            )
        bar.close()
        lookahead.apply()
        loss_sum, correct, seen = procs.total([loss_sum, correct, seen])
        elapsed += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": round(loss_sum / seen, 4), "train_top1": round(100 * correct / seen, 2),
                        "seconds": round(time.perf_counter() - t0, 1)})
        if procs.main:
            if args.eval_every and (epoch + 1) % args.eval_every == 0:
                history[-1]["test_top1_single_view"] = evaluate_arrays(model, test_split.images, test_split.labels, mean, std)["top1"]
            args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            torch.save({"config": _run_config(args), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "lookahead": lookahead.state_dict(), "epoch": epoch + 1,
                        "elapsed": elapsed, "history": history}, ckpt_path.with_suffix(".tmp"))
            ckpt_path.with_suffix(".tmp").replace(ckpt_path)
            print(f"{args.name}: epoch {epoch + 1} " + " ".join(f"{k} {v}" for k, v in history[-1].items() if k != "epoch"),
                  file=sys.stderr)
        if args.stop_after_epoch == epoch + 1 and epoch + 1 < args.epochs:
            print(f"{args.name}: stopped after epoch {epoch + 1}; rerun with --resume to continue", file=sys.stderr)
            return {}

    if not procs.main:
        return {}
    run = {"elapsed": elapsed, "history": history, "steps_per_epoch": steps_per_epoch, "train_images": n_train,
           "processes": procs.world}
    return _finish(args, model, classes, mean, std, test_split, run, backbone_card, init_notes)


def _run_config(args: argparse.Namespace) -> dict:
    """What a checkpoint must match to be resumed: the settings, and the weights a run starts from."""
    skip = {"argv", "resume", "stop_after_epoch", "eval_every", "checkpoint_dir", "cache_dir", "dataset_archive", "why"}
    config = {k: str(v) for k, v in sorted(vars(args).items()) if k not in skip}
    if args.backbone is not None:
        config["backbone_sha256"] = sha256_file(args.backbone)
    return config


def _recipe(args: argparse.Namespace) -> dict:
    """The card's description of the training recipe."""
    scale = 1024 * (1 + 1 / (1 - args.momentum))
    return {
        "optimizer": f"SGD nesterov momentum {args.momentum} on the batch's summed loss, step lr {args.lr}/{scale:.0f}, "
                     f"decoupled weight decay {args.weight_decay} per 1024 images, BatchNorm biases at "
                     f"{args.bias_lr_scale:g}x the learning rate",
        "schedule": "triangular: 0.2x rising to 1x at 23% of the steps, then falling linearly to 0.07x",
        "label_smoothing": args.label_smoothing,
        "precision": "bfloat16 autocast (float32 weights)" if args.bf16 else "float32",
        "augmentation": f"random translation up to {args.translate} px (reflect padding); horizontal flips alternating "
                        "each epoch from a random first assignment",
        "averaging": f"lookahead every {LOOKAHEAD_EVERY} steps from epoch {args.lookahead_from + 1}, "
                     "the averaged weights taken at each epoch's end" if args.lookahead_from < args.epochs
                     else "no weight averaging",
    }


def _finish(args, model, classes, mean, std, test_split, run, backbone_card, init_notes) -> dict:
    elapsed, history = run["elapsed"], run["history"]
    t_eval = time.perf_counter()
    model.eval()
    fp32 = evaluate_arrays(model, test_split.images, test_split.labels, mean, std, flip_average=True)
    state = model.state_dict()
    if backbone_card is not None:
        trained = finetuned_names(model)
        state = {k: v for k, v in state.items() if k in trained}
    args.out.mkdir(parents=True, exist_ok=True)
    weights_path = args.out / f"{args.name}.safetensors"
    digest = save_weights(weights_path, state, half=not args.fp32)
    # The card reports the accuracy of the stored (possibly fp16) weights: reload them exactly as users will.
    stored = read_weights(weights_path)
    model.load_state_dict({**model.state_dict(), **stored})
    shipped = evaluate_arrays(model, test_split.images, test_split.labels, mean, std, flip_average=True)
    complexity = count_complexity(model, (1, 3, args.image_size, args.image_size)).as_dict()
    trained_desc = (
        "end-to-end: every parameter trained from scratch"
        if backbone_card is None
        else "attention modules, BatchNorm layers (scale, bias and running statistics) and classifier trained; "
        f"the stem and every convolution frozen from backbone {backbone_card['name']}"
    )
    card = {
        "name": args.name,
        "architecture": architecture(model, len(classes)),
        "classes": classes,
        "preprocessing": {"input_size": args.image_size, "mean": mean, "std": std, "resize": "shorter side, then centre crop",
                          "flip_average": True},
        "metrics": {
            "test_top1": shipped["top1"],
            "test_top1_single_view": shipped["single_view_top1"],
            "test_top1_fp32": fp32["top1"],
            "test_per_class_top1": shipped["per_class"],
            "test_images": shipped["images"],
        },
        "attention_statistics": test_statistics(model, test_split.images, mean, std),
        "complexity": complexity,
        "design": args.why,
        "weights": {"file": weights_path.name, "sha256": digest, "dtype": "float32" if args.fp32 else "float16"},
        "backbone": None
        if backbone_card is None
        else {"name": backbone_card["name"], "file": backbone_card["weights"]["file"], "sha256": backbone_card["weights"]["sha256"]},
        "training": {
            "mode": "end-to-end" if backbone_card is None else "attention-finetune",
            "trained": trained_desc,
            "initialisation": init_notes,
            "epochs": args.epochs,
            "steps_per_epoch": run["steps_per_epoch"],
            "batch_size": args.batch_size,
            **({"processes": run["processes"]} if run["processes"] > 1 else {}),
            **_recipe(args),
            "seed": args.seed,
            "wall_time_s": round(elapsed, 1),
            "evaluation_s": round(time.perf_counter() - t_eval, 1),
            "history": history,
            "machine": machine(),
            "command": shlex.join(["python", "-m", "cbam_viz.train", *args.argv]),
        },
        "dataset": {
            "folder": Path(args.data).name,
            "archive": args.dataset_archive.name if args.dataset_archive else None,
            "archive_sha256": sha256_file(args.dataset_archive) if args.dataset_archive else None,
            "train_images": run["train_images"],
            "test_images": len(test_split.labels),
        },
    }
    write_card(args.out / f"{args.name}.json", card)
    print(f"{args.name}: test top-1 {shipped['top1']:.2f}% (single view {shipped['single_view_top1']:.2f}%, "
          f"fp32 {fp32['top1']:.2f}%), "
          f"{elapsed / 60:.1f} min training", file=sys.stderr)
    return card


def _keep_freed_memory() -> None:
    """Ask glibc to keep freed memory instead of returning it to the kernel after every step.

    Each training step allocates and frees the same large activations; with glibc's defaults
    they are mmap'ed and unmapped every time and the page faults cost about a tenth of the run
    on two cores. Equivalent to MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ in the environment.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, (1 << 31) - 1)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _keep_freed_memory()
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        train(args)
    except (ValueError, WeightsError, FileNotFoundError) as e:  # DatasetError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

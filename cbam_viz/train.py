"""Train a CBAM-ResNet on an image-folder dataset and write its weights and model card.

Two modes:

* end-to-end (default): every parameter is trained from scratch;
* ``--backbone FILE``: start from a trained network's weights, keep every convolution frozen and
  train only the attention modules, the BatchNorm layers (affine parameters and running
  statistics, which must follow the new attention) and the classifier. The weights file then
  holds only those tensors; the card names the backbone it completes.

``--init FILE`` continues an end-to-end model of the same configuration with a new schedule (every
parameter trained); the card keeps the earlier run's training record under ``training.previous``.

Example (the canonical CIFAR-10 model)::

    python -m cbam_viz.train --data ~/.cache/cbam-viz/cifar10 --out assets/family \\
        --name channel-first-k7-r16 --epochs 14 --compile

Every epoch ends with a checkpoint; ``--resume`` continues from it after an interruption.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from .attention import ATTENTIONS, ORDERS, CBAMConfig
from .cards import architecture, machine, read_card, write_card
from .complexity import count_complexity
from .data import DEFAULT_CACHE, DatasetError, augment, channel_stats, load_split
from .evaluate import evaluate_arrays
from .resnet import DEPTHS, CBAMResNet
from .weights import WeightsError, read_weights, save_weights, sha256_file


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cbam_viz.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="folder with train/<class>/* and test/<class>/*")
    p.add_argument("--out", type=Path, required=True, help="folder for <name>.safetensors and <name>.json")
    p.add_argument("--name", required=True, help="name of the model files")
    p.add_argument("--depth", type=int, default=18, choices=sorted(DEPTHS))
    p.add_argument("--width", type=float, default=0.5, help="width multiplier of the ResNet stages")
    p.add_argument("--stem", default="cifar", choices=("cifar", "imagenet"))
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--order", default="channel-first", choices=ORDERS)
    p.add_argument("--kernel-size", type=int, default=7)
    p.add_argument("--reduction", type=int, default=16)
    p.add_argument("--attention", default="both", choices=ATTENTIONS)
    p.add_argument("--backbone", type=Path, help="train only attention, BatchNorm and classifier on top of these weights")
    p.add_argument("--init", type=Path, help="continue training every parameter of this end-to-end model (same configuration)")
    p.add_argument("--epochs", type=int, default=14)
    p.add_argument("--steps-per-epoch", type=int, help="cap on optimizer steps per epoch (default: the whole split)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.2, help="peak learning rate of the one-cycle schedule")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--low-res", type=int, default=24, help="image size for the first --low-res-epochs epochs")
    p.add_argument("--low-res-epochs", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (faster on long runs)")
    p.add_argument("--fp32", action="store_true", help="store float32 weights (default: float16)")
    p.add_argument("--dataset-archive", type=Path, help="archive the data folder came from, for its sha256 in the card")
    p.add_argument("--checkpoint-dir", type=Path, default=DEFAULT_CACHE / "checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from the last epoch's checkpoint")
    p.add_argument("--stop-after-epoch", type=int, help="exit after this epoch's checkpoint (resume later)")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--why", help="why this depth, width and recipe were chosen (stored in the card)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        p.error("--epochs and --batch-size must be >= 1")
    if args.init and args.backbone:
        p.error("--init (continue every parameter) and --backbone (fine-tune attention) exclude each other")
    return args


def _finetuned(name: str) -> bool:
    """Whether a fine-tune on a backbone trains (and stores) this tensor: attention, BatchNorm
    (parameters and running statistics) or the classifier."""
    return ".cbam." in name or name.startswith(("fc.", "bn1.")) or ".bn" in name or ".downsample.1." in name


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
    another width by :func:`_resize_mlp`. Anything else that does not fit is an error.
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
        elif not name.endswith("channel.mlp.2.weight"):
            misfits.append(name)
    if misfits:
        raise WeightsError(f"backbone does not fit this network; missing or mis-shaped: {misfits[:8]}")
    return [f"{part}: {how}" for part, how in notes.items()] or ["all attention tensors copied from the backbone"]


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(args: argparse.Namespace) -> dict:
    """Train, evaluate, write weights and card; return the card (empty when stopped early)."""
    torch.manual_seed(args.seed)
    train_split = load_split(args.data, "train", args.image_size, args.cache_dir)
    test_split = load_split(args.data, "test", args.image_size, args.cache_dir)
    if train_split.classes != test_split.classes:
        raise DatasetError(f"train and test class folders differ: {train_split.classes} vs {test_split.classes}")
    classes = train_split.classes

    cbam = None if args.attention == "none" else CBAMConfig(args.order, args.kernel_size, args.reduction, args.attention)
    model = CBAMResNet(args.depth, cbam, num_classes=len(classes), stem=args.stem, width=args.width,
                       zero_init_residual=args.backbone is None)
    backbone_card = init_card = None
    if args.init is not None:
        init_card = read_card(args.init.with_suffix(".json"))
        mean, std = init_card["preprocessing"]["mean"], init_card["preprocessing"]["std"]
        if init_card["classes"] != classes:
            raise DatasetError(f"{args.init.name} was trained on classes {init_card['classes']}, this dataset has {classes}")
        if init_card["architecture"] != architecture(model, len(classes)):
            raise WeightsError(f"{args.init.name} has another architecture: {init_card['architecture']}")
        model.load_state_dict(read_weights(args.init))
        init_notes = [f"every parameter from {init_card['name']} (sha256 {init_card['weights']['sha256'][:12]}), "
                      "whose own training is under training.previous"]
    elif args.backbone is not None:
        backbone_card = read_card(args.backbone.with_suffix(".json"))
        mean, std = backbone_card["preprocessing"]["mean"], backbone_card["preprocessing"]["std"]
        if backbone_card["classes"] != classes:
            raise DatasetError(f"backbone was trained on classes {backbone_card['classes']}, this dataset has {classes}")
        init_notes = _init_from_backbone(model, read_weights(args.backbone))
        for name, p in model.named_parameters():
            p.requires_grad_(_finetuned(name))
    else:
        mean, std = channel_stats(train_split.images)
        init_notes = ["every parameter freshly initialised (Kaiming normal, zero-init of the last BN in each block)"]
    model = model.to(memory_format=torch.channels_last)

    n_train = len(train_split.labels)
    steps_per_epoch = n_train // args.batch_size
    if args.steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, args.steps_per_epoch)
    if steps_per_epoch < 1:
        raise DatasetError(f"the train split has {n_train} images, fewer than one batch of {args.batch_size}")
    optimizer = torch.optim.SGD(_param_groups(model, args.weight_decay), lr=args.lr, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.25,
        div_factor=10.0, final_div_factor=100.0,
    )

    ckpt_path = args.checkpoint_dir / f"{args.out.resolve().name}-{args.name}.pt"
    start_epoch, elapsed, history = 0, 0.0, []
    if args.resume and ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        if ckpt["config"] != _run_config(args):
            raise SystemExit(f"checkpoint {ckpt_path} was made with other settings; delete it or drop --resume")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, elapsed, history = ckpt["epoch"], ckpt["elapsed"], ckpt["history"]
        print(f"resuming {args.name} after epoch {start_epoch}/{args.epochs}", file=sys.stderr)

    images = torch.from_numpy(train_split.images).permute(0, 3, 1, 2)  # uint8 (N, 3, H, W), a view
    labels = torch.from_numpy(train_split.labels)
    m_t, s_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    step_model = torch.compile(model, dynamic=False) if args.compile else model

    for epoch in range(start_epoch, args.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        perm = torch.randperm(n_train, generator=gen)
        size = args.low_res if epoch < args.low_res_epochs else None
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(range(steps_per_epoch), desc=f"{args.name} epoch {epoch + 1}/{args.epochs}",
                   unit="step", file=sys.stderr, mininterval=5.0, dynamic_ncols=True)
        for step in bar:
            idx = perm[step * args.batch_size : (step + 1) * args.batch_size]
            x = (images[idx].float().div_(255.0) - m_t) / s_t
            x = augment(x, gen, size=size).contiguous(memory_format=torch.channels_last)
            y = labels[idx]
            logits = step_model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=args.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(y)
            correct += (logits.argmax(1) == y).sum().item()
            loss_sum += loss.item() * len(y)
            rate = seen / (time.perf_counter() - t0)
            remaining = (args.epochs - epoch) * steps_per_epoch * args.batch_size - seen
            bar.set_postfix_str(
                f"loss {loss_sum / seen:.3f} acc {100 * correct / seen:.1f}% {rate:.0f} img/s "
                f"run ETA {remaining / rate / 60:.0f} min"
            )
        bar.close()
        elapsed += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": round(loss_sum / seen, 4), "train_top1": round(100 * correct / seen, 2),
                        "image_size": size or args.image_size, "seconds": round(time.perf_counter() - t0, 1)})
        args.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"config": _run_config(args), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "elapsed": elapsed, "history": history},
                   ckpt_path.with_suffix(".tmp"))
        ckpt_path.with_suffix(".tmp").replace(ckpt_path)
        print(f"{args.name}: epoch {epoch + 1} loss {history[-1]['loss']} train top-1 {history[-1]['train_top1']}%", file=sys.stderr)
        if args.stop_after_epoch == epoch + 1 and epoch + 1 < args.epochs:
            print(f"{args.name}: stopped after epoch {epoch + 1}; rerun with --resume to continue", file=sys.stderr)
            return {}

    run = {"elapsed": elapsed, "history": history, "steps_per_epoch": steps_per_epoch, "train_images": n_train}
    run["init"] = init_card
    return _finish(args, model, classes, mean, std, test_split, run, backbone_card, init_notes)


def _run_config(args: argparse.Namespace) -> dict:
    """What a checkpoint must match to be resumed: the settings, and the weights a run starts from."""
    skip = {"argv", "resume", "stop_after_epoch", "checkpoint_dir", "cache_dir", "compile", "dataset_archive", "why"}
    config = {k: str(v) for k, v in sorted(vars(args).items()) if k not in skip}
    for key in ("backbone", "init"):
        if getattr(args, key) is not None:
            config[f"{key}_sha256"] = sha256_file(getattr(args, key))
    return config


def _finish(args, model, classes, mean, std, test_split, run, backbone_card, init_notes) -> dict:
    elapsed, history = run["elapsed"], run["history"]
    t_eval = time.perf_counter()
    model.eval()
    fp32 = evaluate_arrays(model, test_split.images, test_split.labels, mean, std)
    state = model.state_dict()
    if backbone_card is not None:
        state = {k: v for k, v in state.items() if _finetuned(k)}
    args.out.mkdir(parents=True, exist_ok=True)
    weights_path = args.out / f"{args.name}.safetensors"
    digest = save_weights(weights_path, state, half=not args.fp32)
    # The card reports the accuracy of the stored (possibly fp16) weights: reload them exactly as users will.
    stored = read_weights(weights_path)
    model.load_state_dict({**model.state_dict(), **stored})
    shipped = evaluate_arrays(model, test_split.images, test_split.labels, mean, std)
    arch = architecture(model, len(classes))
    complexity = count_complexity(model, (1, 3, args.image_size, args.image_size)).as_dict()
    init_card = run["init"]
    previous = init_card["training"] if init_card else None
    trained_desc = (
        ("end-to-end: every parameter trained from scratch" if previous is None
         else f"end-to-end: every parameter trained, continuing a {previous['epochs']}-epoch end-to-end run")
        if backbone_card is None
        else "attention modules, BatchNorm layers (affine and running statistics) and classifier trained; "
        f"every convolution frozen from backbone {backbone_card['name']}"
    )
    card = {
        "name": args.name,
        "architecture": arch,
        "classes": classes,
        "preprocessing": {"input_size": args.image_size, "mean": mean, "std": std, "resize": "shorter side, then centre crop"},
        "metrics": {
            "test_top1": shipped["top1"],
            "test_top1_fp32": fp32["top1"],
            "test_per_class_top1": shipped["per_class"],
            "test_images": shipped["images"],
        },
        "complexity": complexity,
        "design": args.why,
        "weights": {"file": weights_path.name, "sha256": digest, "dtype": "float32" if args.fp32 else "float16"},
        "backbone": None
        if backbone_card is None
        else {"name": backbone_card["name"], "file": backbone_card["weights"]["file"], "sha256": backbone_card["weights"]["sha256"]},
        "init": None
        if init_card is None
        else {"name": init_card["name"], "file": init_card["weights"]["file"], "sha256": init_card["weights"]["sha256"]},
        "training": {
            "mode": "end-to-end" if backbone_card is None else "attention-finetune",
            "trained": trained_desc,
            "initialisation": init_notes,
            "epochs": args.epochs,
            "steps_per_epoch": run["steps_per_epoch"],
            "batch_size": args.batch_size,
            "optimizer": f"SGD nesterov momentum 0.9, weight decay {args.weight_decay} (not on BN/bias)",
            "schedule": f"one-cycle: peak lr {args.lr}, 25% warm-up from lr/10, cosine to lr/1000",
            "label_smoothing": args.label_smoothing,
            "augmentation": f"random crop {args.image_size} px with 4 px reflect padding, horizontal flip"
            + (f"; first {args.low_res_epochs} epochs at {args.low_res} px" if args.low_res_epochs else ""),
            "seed": args.seed,
            "wall_time_s": round(elapsed, 1),
            "evaluation_s": round(time.perf_counter() - t_eval, 1),
            "history": history,
            **({"previous": previous} if previous else {}),
            "machine": machine(),
            "command": "python -m cbam_viz.train " + " ".join(args.argv),
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
    print(f"{args.name}: test top-1 {shipped['top1']:.2f}% (fp32 {fp32['top1']:.2f}%), "
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
    except (DatasetError, WeightsError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

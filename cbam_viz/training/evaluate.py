"""Test accuracy of a model on decoded images (top-1 and per class), and its attention statistics."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..explain.analysis import average_with_mirror
from ..explain.statistics import attention_statistics
from .data import to_tensor


def _percent(hits: np.ndarray) -> float:
    return round(100.0 * float(hits.mean()), 2)


def batches(images: np.ndarray, mean: list[float], std: list[float], device: torch.device | str = "cpu",
            batch_size: int = 500):
    """Normalised channels-last input tensors for consecutive slices of uint8 images (N, H, W, 3)."""
    for i in range(0, len(images), batch_size):
        yield to_tensor(images[i : i + batch_size], mean, std).to(device).contiguous(memory_format=torch.channels_last)


def test_statistics(model: nn.Module, images: np.ndarray, mean: list[float], std: list[float]) -> dict:
    """:func:`~cbam_viz.explain.statistics.attention_statistics` of ``model`` over uint8 images."""
    return attention_statistics(model, batches(images, mean, std, next(model.parameters()).device))


@torch.no_grad()
def evaluate_arrays(
    model: nn.Module, images: np.ndarray, labels: np.ndarray, mean: list[float], std: list[float],
    flip_average: bool = False, batch_size: int = 500,
) -> dict:
    """Top-1 accuracy (percent) overall and per class of ``model`` on uint8 images (N, H, W, 3).

    With ``flip_average`` the predictions are those of the mean of the logits of each image and its
    mirror image (how the app predicts with such a model), and ``single_view_top1`` adds the
    accuracy of the image's own pass alone.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    single, averaged = [], []
    try:
        for x in batches(images, mean, std, device, batch_size):
            logits = model(x)
            single.append(logits.argmax(1).cpu())
            if flip_average:
                averaged.append(average_with_mirror(model, x, logits).argmax(1).cpu())
    finally:
        model.train(was_training)
    single_hits = torch.cat(single).numpy() == labels
    hits = torch.cat(averaged).numpy() == labels if flip_average else single_hits
    classes = np.unique(labels)
    result = {
        "top1": _percent(hits),
        "per_class": [_percent(hits[labels == c]) for c in range(int(classes.max()) + 1)],
        "images": int(len(labels)),
    }
    if flip_average:
        result["single_view_top1"] = _percent(single_hits)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m cbam_viz.evaluate``: recompute shipped variants' test accuracy and compare with their cards."""
    import argparse
    import sys
    from pathlib import Path

    from ..models.cards import write_card
    from ..models.download import CACHE_DIR
    from .data import DatasetError, load_split
    from ..models.registry import DEFAULT_ROOT, Family, key_of
    from ..models.weights import WeightsError

    p = argparse.ArgumentParser(prog="python -m cbam_viz.evaluate", description=main.__doc__)
    p.add_argument("--data", type=Path, required=True, help="image folder with test/<class>/*")
    p.add_argument("--family", type=Path, default=DEFAULT_ROOT, help="folder of model cards and weights")
    p.add_argument("--variant", action="append", help="variant name (repeatable); default: every variant")
    p.add_argument("--tolerance", type=float, default=0.05, help="largest allowed difference in points")
    p.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    p.add_argument("--write-statistics", action="store_true",
                   help="also measure each block's attention statistics over the test split and write them into the card")
    args = p.parse_args(argv)

    family = Family(args.family)
    cards = [c for c in family.cards.values() if not args.variant or c["name"] in args.variant]
    if args.variant and len(cards) != len(args.variant):
        known = sorted(c["name"] for c in family.cards.values())
        print(f"error: unknown variant among {args.variant}; shipped: {', '.join(known) or 'none'}", file=sys.stderr)
        return 2
    if not cards:
        print(f"error: no model cards under {args.family}", file=sys.stderr)
        return 2
    failures = 0
    splits = {}
    print(f"{'variant':<28}{'card':>8}{'measured':>10}{'diff':>8}")
    for card in sorted(cards, key=lambda c: c["name"]):
        size = card["preprocessing"]["input_size"]
        try:
            if size not in splits:
                splits[size] = load_split(args.data, "test", size, args.cache_dir)
            split = splits[size]
            if split.classes != card["classes"]:
                raise DatasetError(f"test classes {split.classes} differ from the card's {card['classes']}")
            model, _ = family.load(key_of(card))
        except (DatasetError, WeightsError) as e:
            print(f"error: {card['name']}: {e}", file=sys.stderr)
            return 2
        pre = card["preprocessing"]
        result = evaluate_arrays(model, split.images, split.labels, pre["mean"], pre["std"], pre.get("flip_average", False))
        claimed = card["metrics"]["test_top1"]
        diff = result["top1"] - claimed
        bad = abs(diff) > args.tolerance or result["images"] != card["metrics"]["test_images"]
        failures += bad
        print(f"{card['name']:<28}{claimed:>8.2f}{result['top1']:>10.2f}{diff:>+8.2f}{'  MISMATCH' if bad else ''}")
        if args.write_statistics and not bad:
            card["attention_statistics"] = test_statistics(model, split.images, pre["mean"], pre["std"])
            write_card(args.family / f"{card['name']}.json", card)
    print(f"{len(cards) - failures}/{len(cards)} variants reproduce their cards within {args.tolerance} points")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())

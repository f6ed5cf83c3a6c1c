"""Classroom text and reference figures for the explanation panel, computed by code."""

from __future__ import annotations

from functools import cache

CHANNEL_FORMULA = r"M_c(F) = \sigma\big(\mathrm{MLP}(\mathrm{AvgPool}(F)) + \mathrm{MLP}(\mathrm{MaxPool}(F))\big) \in \mathbb{R}^{C\times1\times1}"
SPATIAL_FORMULA = r"M_s(F) = \sigma\big(f^{k\times k}([\mathrm{AvgPool}_c(F);\ \mathrm{MaxPool}_c(F)])\big) \in \mathbb{R}^{1\times H\times W}"
ORDER_FORMULAS = {
    "channel-first": r"F' = M_c(F)\otimes F,\quad F'' = M_s(F')\otimes F'",
    "spatial-first": r"F' = M_s(F)\otimes F,\quad F'' = M_c(F')\otimes F'",
    "parallel": r"F'' = F \otimes M_c(F) \otimes M_s(F)",
}
PLACEMENTS = {  # the residual block of a ResNet of this depth, CBAM on its branch before the addition
    "basic": """\
x ──► 3x3 conv ─► BN ─► ReLU ─► 3x3 conv ─► BN ─► [ CBAM ] ──► (+) ─► ReLU ─► out
│                                                               ▲
└──────────────────────── shortcut (identity or 1x1 conv) ──────┘""",
    "bottleneck": """\
x ──► 1x1 conv ─► BN ─► ReLU ─► 3x3 conv ─► BN ─► ReLU ─► 1x1 conv ─► BN ─► [ CBAM ] ──► (+) ─► ReLU ─► out
│                                                                                         ▲
└──────────────────────────────────────────── shortcut (identity or 1x1 conv) ────────────┘""",
}


def placement(arch: dict) -> str:
    """A text diagram of the residual block of a network (:func:`cbam_viz.cards.architecture`), CBAM in it."""
    return PLACEMENTS["bottleneck" if arch.get("depth", 18) >= 50 else "basic"]


@cache  # a constant of the code: built and counted once per process, not on every rerun of the panel
def reference_cbam512() -> dict[str, int]:
    """Parameters and FLOPs of one CBAM(C=512, r=16, k=7), simple layout, on a (1, 512, 7, 7) input."""
    from ..models.attention import CBAM, CBAMConfig  # torch: the rest of this module needs none
    from ..models.complexity import count_complexity

    c = count_complexity(CBAM(512, CBAMConfig(kernel_size=7, reduction=16)), (1, 512, 7, 7))
    return {"params": c.params, "flops": c.flops}


def configuration_figures(card: dict, reference: dict[str, int]) -> str:
    """The classroom's figures for a card (Markdown): parameters and FLOPs in CBAM, beside the
    reference CBAM(512) of :func:`reference_cbam512`, and the card's accuracy."""
    cx = card["complexity"]
    text = (f"**This configuration**: {cx['params']:,} parameters, of which {cx['attention_params']:,} in CBAM; "
            f"{cx['flops']:,} FLOPs at {cx['input_shape'][-1]} px, of which {cx['attention_flops']:,} in CBAM "
            f"({100 * cx['attention_flops'] / cx['flops']:.2f}%).  \n"
            f"**Reference**: one CBAM(C=512, r=16, k=7) on a 512x7x7 input has {reference['params']:,} parameters and "
            f"{reference['flops']:,} FLOPs (thop's counting rules).")
    if card.get("metrics"):
        text += f"  \n**Accuracy** (model card): {card['metrics']['test_top1']:.2f}% top-1."
    return text


PAPER = "Woo et al., CBAM: Convolutional Block Attention Module, ECCV 2018 (ImageNet-1K, ResNet-50)"
PAPER_CHECK = ("https://sh-tsang.medium.com/reading-cbam-convolutional-block-attention-module-image-classification-"
               "ddbaf10f7430")
# What the paper found for each choice the family varies, only where its text could be checked here
# (through the summary at PAPER_CHECK); its tables' numbers could not be, so none is quoted.
PAPER_FINDINGS = {
    ("order", "channel-first"): "Table 3: the best arrangement; sequential beats parallel",
    ("order", "spatial-first"): "Table 3: slightly worse than channel-first",
    ("order", "parallel"): "Table 3: worse than either sequential order",
}


def paper_comparison(cards: list[dict]) -> list[dict]:
    """Our like-for-like test accuracy per order, kernel size and ablation (mean over the trained
    configurations that share it) beside what the paper found for the same choice."""
    from statistics import mean

    from ..models.registry import key_of

    keyed = [(key_of(c), c["metrics"]["test_top1"]) for c in cards if c.get("metrics")]
    fair = [(k, a) for k, a in keyed if k.protocol == "like-for-like"]
    groups = [(("order", o), [a for k, a in fair if k.attention == "both" and k.order == o]) for o in ORDER_FORMULAS]
    groups += [(("kernel", k), [a for key, a in fair if key.attention == "both" and key.kernel_size == k]) for k in (3, 7)]
    groups += [(("gates", g), [a for k, a in fair if k.attention == g]) for g in ("both", "channel", "spatial")]
    groups.append((("gates", "none"), [a for k, a in keyed if k.attention == "none"]))
    names = {"both": "channel and spatial (CBAM)", "channel": "channel only", "spatial": "spatial only",
             "none": "none (the plain network, end-to-end: the base the rows above fine-tune)"}
    rows = []
    for (kind, value), accs in groups:
        choice = f"k = {value}" if kind == "kernel" else names.get(value, value) if kind == "gates" else value
        rows.append({"choice": f"{kind}: {choice}",
                     "ours: test top-1 %": f"{mean(accs):.2f} (mean of {len(accs)})" if accs else "not trained",
                     "the paper": PAPER_FINDINGS.get((kind, value), "not quoted (not verifiable here)")})
    return rows

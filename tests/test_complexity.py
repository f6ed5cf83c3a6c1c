"""Parameter and FLOP counts against thop and torch.utils.flop_counter."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.complexity import count_complexity
from cbam_viz.models.resnet import cbam_resnet18, cbam_resnet50


def test_resnet50_cbam_total_matches_thop():
    thop = pytest.importorskip("thop")
    model = cbam_resnet50(CBAMConfig(layout="official"))
    ours = count_complexity(model, (1, 3, 224, 224))
    macs, params = thop.profile(model, (torch.zeros(1, 3, 224, 224),), verbose=False)
    assert ours.flops == int(macs)
    assert ours.params == int(params) == 28_089_624


def test_conv_and_linear_macs_match_torch_flop_counter():
    model = cbam_resnet18(CBAMConfig(kernel_size=3), stem="cifar", width=0.5, num_classes=10).eval()
    ours = count_complexity(model, (1, 3, 32, 32))
    mode = FlopCounterMode(display=False)
    with mode, torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    counts = mode.get_flop_counts()["Global"]
    torch_macs = sum(v for op, v in counts.items() if "conv" in str(op) or "mm" in str(op)) // 2
    # ours adds BatchNorm (4/elem) and average pooling (1/elem + 1/output), which torch's counter skips
    bn_and_pool = ours.flops - torch_macs
    assert bn_and_pool > 0
    # recount BatchNorm and pooling by hand from the feature shapes
    shapes = {}
    hooks = [m.register_forward_hook(lambda m, i, o, n=n: shapes.__setitem__(n, (m, i[0].numel(), o.numel())))
             for n, m in model.named_modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.AdaptiveAvgPool2d))]
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    extra = 0
    for m, n_in, n_out in shapes.values():
        extra += 4 * n_in if isinstance(m, torch.nn.BatchNorm2d) else n_in + n_out
    assert bn_and_pool == extra


def test_breakdown_adds_up():
    model = cbam_resnet18(CBAMConfig(), stem="cifar", width=0.5, num_classes=10)
    c = count_complexity(model, (1, 3, 32, 32))
    assert list(c.blocks) == [f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    assert sum(s["params"] for s in c.stages.values()) == c.params
    assert sum(s["flops"] for s in c.stages.values()) == c.flops
    plain = count_complexity(cbam_resnet18(None, stem="cifar", width=0.5, num_classes=10), (1, 3, 32, 32))
    assert c.params - plain.params == c.attention_params
    assert c.flops - plain.flops == c.attention_flops
    assert c.as_dict()["attention_flops"] == c.attention_flops


def test_counting_leaves_the_model_as_it_was():
    model = cbam_resnet18(stem="cifar", width=0.25).train()
    count_complexity(model, (1, 3, 32, 32))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())

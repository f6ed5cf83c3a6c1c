"""The lesson instruments: stepping through a block's math, and same-weights knock-outs."""

import copy

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cbam_viz.explain.knockouts import KNOCKOUTS, knocked_out, knockout_table
from cbam_viz.explain.steps import cbam_modules, step_through
from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.resnet import cbam_resnet18, cbam_resnet50


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def small(config=CBAMConfig(), seed=0):
    torch.manual_seed(seed)
    model = cbam_resnet18(config, stem="cifar", width=0.25, num_classes=10).eval()
    with torch.no_grad():  # BatchNorm statistics away from the identity, so every step matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("layout", ["simple", "official", "timm"])
@pytest.mark.parametrize("order", ["channel-first", "spatial-first", "parallel"])
def test_the_captured_steps_recompose_the_block(order, layout):
    model = small(CBAMConfig(order=order, layout=layout))
    x = torch.randn(1, 3, 32, 32)
    s = step_through(model, "layer2.1", x)
    c, sp, t = s.channel, s.spatial, torch.from_numpy
    assert s.sequence == (["spatial", "channel"] if order == "spatial-first" else ["channel", "spatial"])
    # the channel gate: what it pooled from, the shared MLP's two outputs, their sum, the sigmoid
    channel_input = t(s.input) * (t(sp.weights) if order == "spatial-first" else 1)
    assert torch.allclose(t(c.avg), channel_input.mean((1, 2)), atol=1e-5)
    assert torch.allclose(t(c.max), channel_input.amax((1, 2)), atol=1e-5)
    assert c.hidden_avg.shape == (s.input.shape[0] // 16,) and (c.hidden_avg >= 0).all()  # after the ReLU
    assert torch.allclose(t(c.mlp_avg + c.mlp_max), t(c.logits), atol=1e-5)
    assert torch.allclose(torch.sigmoid(t(c.logits)), t(c.weights), atol=1e-6)
    # the spatial gate: the channel-mean and -max maps, the kernel's planes, the map before the sigmoid
    spatial_input = t(s.input) * (t(c.weights)[:, None, None] if order == "channel-first" else 1)
    assert torch.allclose(t(sp.mean), spatial_input.mean(0), atol=1e-5)
    assert torch.allclose(t(sp.max), spatial_input.amax(0), atol=1e-5)
    k = sp.kernel.shape[-1]
    conv = F.conv2d(torch.stack([t(sp.mean), t(sp.max)])[None], t(sp.kernel)[None], padding=k // 2)[0, 0]
    assert torch.allclose(conv, t(sp.conv), atol=1e-5)
    assert torch.allclose(torch.sigmoid(t(sp.logits)), t(sp.weights), atol=1e-6)
    # the refined output is the input times both weights
    rebuilt = t(s.input) * t(c.weights)[:, None, None] * t(sp.weights)[None]
    assert torch.allclose(rebuilt, t(s.output), atol=1e-5)
    assert hook_count(model) == 0


def test_step_through_a_block_of_the_imagenet_resnet50_and_of_an_ablation():
    torch.manual_seed(0)
    model = cbam_resnet50(CBAMConfig(layout="official"), num_classes=1000).eval()
    s = step_through(model, "layer4.2", torch.randn(1, 3, 224, 224))
    assert s.output.shape == (2048, 7, 7) and s.channel.hidden_avg.shape == (128,) and s.spatial.kernel.shape == (2, 7, 7)
    spatial_only = step_through(small(CBAMConfig(attention="spatial")), "layer1.0", torch.randn(1, 3, 32, 32))
    assert spatial_only.channel is None and spatial_only.sequence == ["spatial"]
    with pytest.raises(KeyError, match="no CBAM block named 'layer9.0'"):
        step_through(small(), "layer9.0", torch.randn(1, 3, 32, 32))


def test_knocking_out_both_gates_everywhere_is_the_network_without_them():
    model = small()
    x = torch.randn(2, 3, 32, 32)
    blocks = list(cbam_modules(model))
    with torch.no_grad(), knocked_out(model, blocks, "channel-one"), knocked_out(model, blocks, "spatial-one"):
        knocked = model(x)
    bare = copy.deepcopy(model)
    for name in blocks:
        bare.get_submodule(name).cbam = nn.Identity()
    with torch.no_grad():
        assert torch.allclose(knocked, bare(x), atol=1e-5)
        assert not torch.allclose(knocked, model(x), atol=1e-3)  # and the hooks are gone
    assert hook_count(model) == 0


@pytest.mark.parametrize("kind", list(KNOCKOUTS))
def test_each_knockout_replaces_what_it_says(kind):
    from cbam_viz.explain.recorder import AttentionRecorder

    model = small()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad(), AttentionRecorder(model) as before:
        model(x)
    with torch.no_grad(), knocked_out(model, ["layer3.0"], kind, k=5), AttentionRecorder(model) as after:
        model(x)
    b, a = before.by_name()["layer3.0"], after.by_name()["layer3.0"]
    mc, ms = a.channel_weights[0], a.spatial_map[0]
    if kind == "channel-one":
        assert (mc == 1).all()
    elif kind == "channel-mean":
        assert torch.allclose(mc, torch.full_like(mc, float(b.channel_weights.mean())), atol=1e-6)
    elif kind == "spatial-one":
        assert (ms == 1).all()
    elif kind == "spatial-mean":
        assert ms.std() < 1e-6
    else:
        top = set(b.channel_weights[0].topk(5).indices.tolist())
        zeroed = set((mc == 0).nonzero().flatten().tolist())
        assert zeroed == (top if kind == "zero-top" else set(range(64)) - top)
    assert hook_count(model) == 0


def test_knockout_table_ranks_the_blocks_and_leaves_no_hook():
    model = small()
    x = torch.randn(1, 3, 32, 32)
    top, p, rows = knockout_table(model, x, "spatial-mean")
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    assert top == int(probs.argmax()) and abs(p - float(probs[top])) < 1e-6
    assert sorted(r.block for r in rows) == sorted(cbam_modules(model)) and len(rows) == 8
    assert [r.drop for r in rows] == sorted((r.drop for r in rows), reverse=True)
    assert all(abs(p - r.probability - r.drop) < 1e-6 for r in rows)
    assert hook_count(model) == 0
    with pytest.raises(ValueError, match="unknown knock-out"):
        knockout_table(model, x, "everything-off")



@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_grad_cam_matches_pytorch_grad_cam(method, arch):
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
    from pytorch_grad_cam.utils.image import scale_cam_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from cbam_viz.explain.gradcam import grad_cam

    if arch == "resnet18":
        model, x, layer = small(), torch.randn(1, 3, 32, 32), "layer2.0"
    else:
        torch.manual_seed(0)
        model, x, layer = cbam_resnet50(CBAMConfig(layout="official"), num_classes=1000).eval(), torch.randn(1, 3, 96, 96), "layer3.5"
    ours, cls = grad_cam(model, x, layer, method=method)
    assert cls == int(model(x).argmax()) and all(p.grad is None for p in model.parameters())
    assert hook_count(model) == 0
    reference = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}[method]
    with reference(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(cls)])[0]
    mine = scale_cam_image(scale_cam_image(ours[None], (x.shape[-1], x.shape[-2])))[0]
    assert np.abs(mine - theirs).max() < 1e-5
    other, _ = grad_cam(model, x, layer, target=(cls + 1) % 10, method=method)
    assert not np.allclose(other, ours)


def test_rank_correlation():
    from cbam_viz.explain.gradcam import rank_correlation

    a = np.arange(16.0).reshape(4, 4)
    assert rank_correlation(a, a ** 3) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert np.isnan(rank_correlation(a, np.ones_like(a)))

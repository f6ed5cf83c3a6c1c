"""CBAM modules: the paper's formulas by hand, the published parameter/FLOP figures, layouts, errors."""

import pytest
import torch
from torch.nn import functional as F

from cbam_viz.models.attention import CBAM, CBAMConfig, ChannelAttention, SpatialAttention
from cbam_viz.models.complexity import count_complexity


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_reference_figures_simple_layout():
    cbam = CBAM(512, CBAMConfig(reduction=16, kernel_size=7))
    assert n_params(cbam) == 32_866
    assert count_complexity(cbam, (1, 512, 7, 7)).flops == 95_938
    assert n_params(CBAM(512, CBAMConfig(reduction=16, kernel_size=3))) == 32_786


def test_layout_parameter_counts_in_readme():
    # Linear MLP with bias (16,416 + 16,896) + 7x7x2 conv + BatchNorm(1) affine
    assert n_params(CBAM(512, CBAMConfig(layout="official"))) == 33_412
    assert n_params(CBAM(512, CBAMConfig(layout="timm"))) == 32_868


def test_flops_agree_with_thop():
    thop = pytest.importorskip("thop")
    for config in (CBAMConfig(), CBAMConfig(kernel_size=3, reduction=8, layout="official")):
        cbam = CBAM(256, config)
        ours = count_complexity(cbam, (2, 256, 14, 14))
        macs, params = thop.profile(cbam, (torch.zeros(2, 256, 14, 14),), verbose=False)
        assert ours.flops == int(macs) and ours.params == int(params)


def test_channel_attention_matches_formula():
    torch.manual_seed(0)
    gate = ChannelAttention(8, reduction=2)
    x = torch.randn(3, 8, 5, 4)
    w1 = gate.mlp[0].weight.view(4, 8)
    w2 = gate.mlp[2].weight.view(8, 4)

    def mlp(v):
        return torch.relu(v @ w1.T) @ w2.T

    expected = torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))
    got = gate(x)
    assert got.shape == (3, 8, 1, 1)
    torch.testing.assert_close(got.view(3, 8), expected)


@pytest.mark.parametrize("layout,first", [("simple", "mean"), ("official", "max"), ("timm", "mean")])
def test_spatial_attention_matches_formula(layout, first):
    torch.manual_seed(0)
    gate = SpatialAttention(kernel_size=3, layout=layout).eval()
    x = torch.randn(2, 6, 5, 7)
    mean, amax = x.mean(1, keepdim=True), x.amax(1, keepdim=True)
    pooled = torch.cat([mean, amax] if first == "mean" else [amax, mean], 1)
    out = F.conv2d(pooled, gate.conv.weight, padding=1)
    if layout != "simple":
        bn = gate.bn
        out = (out - bn.running_mean.view(1, 1, 1, 1)) / torch.sqrt(bn.running_var + bn.eps).view(1, 1, 1, 1)
        out = out * bn.weight.view(1, 1, 1, 1) + bn.bias.view(1, 1, 1, 1)
    got = gate(x)
    assert got.shape == (2, 1, 5, 7)
    torch.testing.assert_close(got, torch.sigmoid(out))


def test_layout_tensors():
    official = CBAM(64, CBAMConfig(layout="official"))
    assert official.channel.mlp[0].weight.ndim == 2 and official.channel.mlp[0].bias is not None
    assert isinstance(official.spatial.bn, torch.nn.BatchNorm2d)
    simple = CBAM(64, CBAMConfig(layout="simple"))
    assert simple.channel.mlp[0].weight.shape == (4, 64, 1, 1) and simple.channel.mlp[0].bias is None
    assert isinstance(simple.spatial.bn, torch.nn.Identity)


@pytest.mark.parametrize("order", ["channel-first", "spatial-first", "parallel"])
def test_orders(order):
    torch.manual_seed(0)
    cbam = CBAM(16, CBAMConfig(order=order, reduction=4))
    x = torch.randn(2, 16, 6, 6)
    ca, sa = cbam.channel, cbam.spatial
    if order == "channel-first":
        y = x * ca(x)
        expected = y * sa(y)
    elif order == "spatial-first":
        y = x * sa(x)
        expected = y * ca(y)
    else:
        expected = x * ca(x) * sa(x)
    torch.testing.assert_close(cbam(x), expected)


def test_gates_are_plain_submodule_calls():
    """Every step of a gate is a submodule a forward hook can watch: the pooled descriptors, the
    MLP (called once per descriptor), the channel-pooled maps, the convolution, the sigmoids."""
    torch.manual_seed(0)
    cbam = CBAM(16, CBAMConfig(reduction=4, kernel_size=3))
    calls = []
    for name, module in cbam.named_modules():
        if name:
            module.register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    cbam(torch.randn(1, 16, 5, 5))
    mlp = ["channel.mlp.0", "channel.mlp.1", "channel.mlp.2", "channel.mlp"]  # forward hooks fire inside out
    assert calls == ["channel.avg_pool", "channel.max_pool", *mlp, *mlp, "channel.gate", "channel",
                     "spatial.pool", "spatial.conv", "spatial.bn", "spatial.gate", "spatial"]


def test_orders_differ():
    torch.manual_seed(0)
    x = torch.randn(1, 16, 6, 6)
    outs = []
    for order in ("channel-first", "spatial-first", "parallel"):
        torch.manual_seed(1)
        outs.append(CBAM(16, CBAMConfig(order=order, reduction=4))(x))
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[0], outs[2])


def test_ablations():
    x = torch.randn(1, 32, 4, 4)
    channel_only = CBAM(32, CBAMConfig(attention="channel"))
    assert channel_only.spatial is None
    torch.testing.assert_close(channel_only(x), x * channel_only.channel(x))
    spatial_only = CBAM(32, CBAMConfig(attention="spatial"))
    assert spatial_only.channel is None
    torch.testing.assert_close(spatial_only(x), x * spatial_only.spatial(x))
    with pytest.raises(ValueError, match="no gate"):
        CBAM(32, CBAMConfig(attention="none"))


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"C/r = 8/16 < 1"):
        CBAM(8, CBAMConfig(reduction=16))
    with pytest.raises(ValueError, match="odd"):
        CBAMConfig(kernel_size=4)
    with pytest.raises(ValueError, match="order must be one of"):
        CBAMConfig(order="sideways")
    with pytest.raises(ValueError, match="layout"):
        CBAMConfig(layout="keras")


def test_timm_cbam_module_equivalence():
    timm_cbam = pytest.importorskip("timm.layers.cbam")
    torch.manual_seed(0)
    ref = timm_cbam.CbamModule(64, rd_ratio=1 / 8, spatial_kernel_size=3).eval()
    with torch.no_grad():
        ref.spatial.conv.bn.running_mean.fill_(0.3)
        ref.spatial.conv.bn.weight.fill_(1.7)
    ours = CBAM(64, CBAMConfig(reduction=8, kernel_size=3, layout="timm")).eval()
    ours.load_state_dict({
        "channel.mlp.0.weight": ref.channel.fc1.weight,
        "channel.mlp.2.weight": ref.channel.fc2.weight,
        "spatial.conv.weight": ref.spatial.conv.conv.weight,
        **{f"spatial.bn.{k}": v for k, v in ref.spatial.conv.bn.state_dict().items()},
    })
    x = torch.randn(2, 64, 9, 9)
    torch.testing.assert_close(ours(x), ref(x))


def test_global_max_pool_gives_the_same_values_and_gradients_both_ways():
    from cbam_viz.models.attention import GlobalMaxPool

    x = torch.randn(2, 8, 5, 7, requires_grad=True)
    pool = GlobalMaxPool()
    with torch.no_grad():
        fast = pool(x)
    trained = pool(x)
    assert torch.equal(fast, trained) and torch.equal(fast, torch.amax(x.detach(), (2, 3), keepdim=True))
    trained.sum().backward()
    assert torch.equal(x.grad, (x == x.amax((2, 3), keepdim=True)).float())

"""CBAM-ResNet wiring: torchvision equivalence without attention, published parameter counts, stems."""

import pytest
import torch
from torchvision.models import resnet18, resnet50

from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.resnet import CBAMResNet, cbam_resnet18, cbam_resnet34, cbam_resnet50, cbam_resnet101


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_official_resnet50_cbam_parameter_count():
    # The paper's and the official code's figure for ResNet-50 + CBAM.
    assert n_params(cbam_resnet50(CBAMConfig(layout="official"))) == 28_089_624


@pytest.mark.parametrize("ours,theirs", [(cbam_resnet18, resnet18), (cbam_resnet50, resnet50)])
def test_plain_network_is_torchvision_resnet(ours, theirs):
    torch.manual_seed(0)
    reference = theirs().eval()
    model = ours(cbam=None).eval()
    model.load_state_dict(reference.state_dict())  # same names, same shapes: strict load
    x = torch.randn(2, 3, 96, 96)
    torch.testing.assert_close(model(x), reference(x))


def test_attention_none_equals_plain():
    assert n_params(cbam_resnet18(CBAMConfig(attention="none"))) == n_params(resnet18())


def test_cbam_sits_before_the_addition():
    model = cbam_resnet18(CBAMConfig()).eval()
    block = model.layer1[0]
    calls = []
    block.bn2.register_forward_hook(lambda m, i, o: calls.append(("bn2", o)))
    block.cbam.register_forward_hook(lambda m, i, o: calls.append(("cbam", i[0], o.clone())))  # the shortcut is then added in place
    x = torch.randn(1, 64, 8, 8)
    out = block(x)
    assert [c[0] for c in calls] == ["bn2", "cbam"]
    assert calls[1][1] is calls[0][1]  # CBAM refines the last BatchNorm's output
    torch.testing.assert_close(out, torch.relu(calls[1][2] + x))  # then the shortcut is added, then ReLU


def test_plain_blocks_have_an_identity_in_cbams_place():
    model = cbam_resnet18(None, stem="cifar", width=0.25, num_classes=10)
    assert isinstance(model.layer2[1].cbam, torch.nn.Identity)
    assert not any(".cbam." in k for k in model.state_dict())


@pytest.mark.parametrize("builder,blocks", [(cbam_resnet18, 8), (cbam_resnet34, 16), (cbam_resnet50, 16), (cbam_resnet101, 33)])
def test_depths_have_one_cbam_per_block(builder, blocks):
    model = builder(CBAMConfig(), num_classes=7, stem="cifar", width=0.25)
    assert sum(1 for n, _ in model.named_modules() if n.endswith(".cbam")) == blocks
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_stems_and_width():
    cifar = cbam_resnet18(stem="cifar", width=0.5, num_classes=10)
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert cifar.features(torch.randn(1, 3, 32, 32)).shape == (1, 256, 4, 4)
    imagenet = cbam_resnet18()
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert imagenet.features(torch.randn(1, 3, 224, 224)).shape == (1, 512, 7, 7)


def test_bad_arguments():
    with pytest.raises(ValueError, match="depth must be one of"):
        CBAMResNet(depth=20)
    with pytest.raises(ValueError, match="stem"):
        CBAMResNet(depth=18, stem="tiny")
    with pytest.raises(ValueError, match=r"C/r = 8/16 < 1"):
        cbam_resnet18(width=0.125, stem="cifar")

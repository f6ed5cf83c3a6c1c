"""The compact CBAM network of the built-in family: layout, whitening stem, cards, capture, FLOPs."""

import pytest
import torch

from cbam_viz.models.attention import CBAMConfig
from cbam_viz.explain.recorder import AttentionRecorder
from cbam_viz.models.cards import architecture, build_model
from cbam_viz.models.checkpoints import detect_format
from cbam_viz.models.compact import CompactCBAMNet, init_whitening
from cbam_viz.models.complexity import count_complexity
from cbam_viz.models.weights import WeightsError


def test_blocks_are_named_by_stage_and_maps_shrink():
    model = CompactCBAMNet(CBAMConfig(order="parallel", kernel_size=3, reduction=8)).eval()
    with AttentionRecorder(model) as rec:
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert [(r.name, r.stage, r.feature_shape) for r in rec.records] == [
        ("layer1.0", "layer1", (64, 15, 15)), ("layer2.0", "layer2", (256, 7, 7)), ("layer3.0", "layer3", (256, 3, 3))]
    assert rec.records[1].channel_weights.shape == (2, 256) and rec.records[2].spatial_map.shape == (2, 1, 3, 3)
    # other input sizes work too (global pooling head)
    assert model(torch.randn(1, 3, 48, 48)).shape == (1, 10)


def test_plain_network_has_no_attention_and_bn_has_no_trained_scale():
    plain = CompactCBAMNet(None, num_classes=4, widths=(8, 16, 16))
    assert not any(".cbam." in n for n, _ in plain.named_parameters())
    assert not any(p.requires_grad for n, p in plain.named_parameters() if n.endswith(("bn1.weight", "bn2.weight")))
    with pytest.raises(ValueError, match="three positive widths"):
        CompactCBAMNet(None, widths=(8, 16))


def test_architecture_round_trip():
    model = CompactCBAMNet(CBAMConfig(attention="spatial", kernel_size=3), num_classes=3, widths=(16, 32, 32))
    arch = architecture(model, 3)
    assert arch["family"] == "compact-cbam" and arch["widths"] == [16, 32, 32] and arch["cbam"]["attention"] == "spatial"
    rebuilt = build_model(arch)
    assert isinstance(rebuilt, CompactCBAMNet)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}


def test_whitening_stem_decorrelates_patches():
    torch.manual_seed(0)
    mix = torch.tensor([[1.0, 0.8, 0.3], [0.0, 0.6, 0.5], [0.0, 0.0, 0.4]])
    images = torch.einsum("ij,njhw->nihw", mix, torch.randn(200, 3, 16, 16))  # correlated channels
    model = CompactCBAMNet(None, num_classes=2, widths=(8, 8, 8))
    init_whitening(model.stem, images)
    with torch.no_grad():
        out = model.stem(images)[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)
    cov = out.T @ out / len(out)
    assert torch.allclose(cov, torch.eye(12), atol=0.05)  # eps keeps the smallest directions just under 1
    assert torch.equal(model.stem.weight[12:], -model.stem.weight[:12]) and not model.stem.bias.any()


def test_complexity_counts_the_compact_network():
    report = count_complexity(CompactCBAMNet(), (1, 3, 32, 32))
    assert set(report.stages) == {"stem", "layer1", "layer2", "layer3", "head"}
    assert list(report.blocks) == ["layer1.0", "layer2.0", "layer3.0"]
    # conv FLOPs by hand at 32 px: stem 31x31, layer1 31x31 then 15x15, layer2 15x15 then 7x7, layer3 7x7 then 3x3
    by_hand = (31 * 31 * 24 * 12 + 31 * 31 * 64 * 24 * 9 + 15 * 15 * 64 * 64 * 9 + 15 * 15 * 256 * 64 * 9
               + 7 * 7 * 256 * 256 * 9 + 7 * 7 * 256 * 256 * 9 + 3 * 3 * 256 * 256 * 9)
    assert by_hand < report.flops < by_hand * 1.01


def test_a_family_model_is_not_taken_for_an_imagenet_checkpoint():
    state = CompactCBAMNet(None, num_classes=3, widths=(8, 16, 16)).state_dict()
    with pytest.raises(WeightsError, match=r"compact network for small images \(3 classes\)"):
        detect_format(state)

"""AttentionRecorder: forward hooks on the gates; what it records is what the network multiplied by; no trace left."""

import threading

import pytest
import torch

from cbam_viz.models.attention import CBAMConfig
from cbam_viz.explain.recorder import AttentionRecorder
from cbam_viz.models.resnet import cbam_resnet18, cbam_resnet50


def small(config=CBAMConfig(), seed=0):
    torch.manual_seed(seed)
    return cbam_resnet18(config, stem="cifar", width=0.25, num_classes=10).eval()


def hook_count(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_records_every_block_in_forward_order():
    model = small()
    x = torch.randn(3, 3, 32, 32)
    with AttentionRecorder(model) as rec:
        model(x)
    names = [r.name for r in rec.records]
    assert names == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    assert [r.stage for r in rec.records][::2] == ["layer1", "layer2", "layer3", "layer4"]
    widths, sides = [16, 16, 32, 32, 64, 64, 128, 128], [32, 32, 16, 16, 8, 8, 4, 4]
    for r, c, s in zip(rec.records, widths, sides):
        assert r.feature_shape == (c, s, s)
        assert r.channel_weights.shape == (3, c)
        assert r.spatial_map.shape == (3, 1, s, s)
        assert 0 < r.channel_weights.min() and r.channel_weights.max() < 1
        assert not r.channel_weights.requires_grad


def test_bottleneck_names():
    model = cbam_resnet50(width=0.25, num_classes=5).eval()
    with AttentionRecorder(model) as rec:
        model(torch.randn(1, 3, 64, 64))
    assert [r.name for r in rec.records][-3:] == ["layer4.0", "layer4.1", "layer4.2"]
    assert rec.records[-1].channel_weights.shape == (1, 512)


@pytest.mark.parametrize("order", ["channel-first", "spatial-first", "parallel"])
def test_recorded_weights_rebuild_the_block_output(order):
    model = small(CBAMConfig(order=order, kernel_size=3, reduction=8))
    x = torch.randn(2, 3, 32, 32)
    seen = {}
    block = model.layer2[1]
    handles = [
        block.bn2.register_forward_hook(lambda m, i, o: seen.__setitem__("branch", o)),
        block.register_forward_hook(lambda m, i, o: seen.update(input=i[0], output=o)),
    ]
    with AttentionRecorder(model) as rec:
        model(x)
    for h in handles:
        h.remove()
    r = rec.by_name()["layer2.1"]
    cw = r.channel_weights[:, :, None, None]
    # the maps themselves are what was multiplied, so the block's output follows from them alone
    rebuilt = torch.relu(seen["branch"] * cw * r.spatial_map + seen["input"])
    torch.testing.assert_close(rebuilt, seen["output"], rtol=1e-5, atol=1e-5)
    # and they are not interchangeable between orders: the spatial map depends on where it sits
    cbam = block.cbam
    if order == "channel-first":
        torch.testing.assert_close(r.spatial_map, cbam.spatial(seen["branch"] * cw))
    elif order == "spatial-first":
        torch.testing.assert_close(r.channel_weights, cbam.channel(seen["branch"] * r.spatial_map).flatten(1))
    else:
        torch.testing.assert_close(r.spatial_map, cbam.spatial(seen["branch"]))


def test_ablated_gates_record_none():
    model = small(CBAMConfig(attention="channel"))
    with AttentionRecorder(model) as rec:
        model(torch.randn(1, 3, 32, 32))
    assert all(r.spatial_map is None and r.channel_weights is not None for r in rec.records)
    plain = small(None)
    with AttentionRecorder(plain) as rec:
        plain(torch.randn(1, 3, 32, 32))
    assert rec.records == []


def test_hooks_removed_and_state_kept_even_when_forward_raises():
    model = small().train()
    model.layer1[0].conv1.weight.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    before = hook_count(model)
    with pytest.raises(RuntimeError):
        with AttentionRecorder(model):
            model(torch.randn(1, 5, 32, 32))  # wrong channel count
    assert hook_count(model) == before == 0
    assert model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    model.eval()
    with AttentionRecorder(model):
        model(torch.randn(1, 3, 32, 32))
    assert not model.training and hook_count(model) == 0


def test_two_recorders_in_two_threads_stay_apart():
    models = [small(seed=0), small(seed=1)]
    inputs = [torch.randn(2, 3, 32, 32) for _ in models]
    expected = []
    for m, x in zip(models, inputs):
        with AttentionRecorder(m) as rec:
            m(x)
        expected.append(rec.records)
    results, errors = [None, None], []
    barrier = threading.Barrier(2)

    def work(i):
        try:
            barrier.wait()
            for _ in range(5):
                with AttentionRecorder(models[i]) as rec:
                    models[i](inputs[i])
                assert len(rec.records) == 8
            results[i] = rec.records
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got, want in zip(results, expected):
        for a, b in zip(got, want):
            torch.testing.assert_close(a.channel_weights, b.channel_weights)
            torch.testing.assert_close(a.spatial_map, b.spatial_map)
    assert not torch.allclose(results[0][0].channel_weights, results[1][0].channel_weights)


def test_records_the_gate_output_a_hook_replaced():
    model = small()
    gate = model.layer2[0].cbam.spatial
    handle = gate.register_forward_hook(lambda m, i, o: torch.full_like(o, 0.5))  # what gets multiplied in
    for grad in (False, True):
        with torch.set_grad_enabled(grad), AttentionRecorder(model) as rec:
            model(torch.randn(1, 3, 32, 32))
        record = rec.by_name()["layer2.0"].spatial_map
        assert record.shape == (1, 1, 16, 16) and bool((record == 0.5).all())
    handle.remove()


def test_records_timm_cbam_resnet_directly(tmp_path):
    """The recorder observes a model it did not write: timm's CBAM ResNet-18, its gates' sigmoids
    hooked by name, gives the same weights as our network carrying the same weights."""
    timm = pytest.importorskip("timm")
    from cbam_viz.models.checkpoints import load_checkpoint
    from cbam_viz.models.weights import save_weights

    torch.manual_seed(3)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=10, block_args=dict(attn_layer="cbam")).eval()
    x = torch.randn(2, 3, 64, 64)
    with AttentionRecorder(ref, channel=lambda n, m: n.endswith("channel.gate"),
                           spatial=lambda n, m: n.endswith("spatial.gate")) as theirs:
        ref(x)
    save_weights(tmp_path / "timm.safetensors", ref.state_dict())
    ours, _ = load_checkpoint(tmp_path / "timm.safetensors")
    with AttentionRecorder(ours) as rec:
        ours(x)
    assert [r.name for r in theirs.records] == [r.name for r in rec.records] == [
        f"layer{s}.{b}" for s in range(1, 5) for b in range(2)]
    for a, b in zip(theirs.records, rec.records):
        assert a.feature_shape == b.feature_shape
        torch.testing.assert_close(a.channel_weights, b.channel_weights, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(a.spatial_map, b.spatial_map, rtol=1e-5, atol=1e-5)


def test_attention_statistics_summarise_every_block_over_the_images():
    from cbam_viz.explain.statistics import FLAT_RANGE, attention_statistics, usual_spread

    model = small()
    batches = [torch.randn(4, 3, 32, 32), torch.randn(3, 3, 32, 32)]
    stats = attention_statistics(model, iter(batches))
    assert stats["images"] == 7 and stats["flat_below"] == FLAT_RANGE
    assert list(stats["blocks"]) == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1",
                                     "layer4.0", "layer4.1"]
    # the medians are those of the per-image values the recorder gives, over both batches
    with AttentionRecorder(model) as rec:
        for x in batches:
            model(x)
    maps = torch.cat([r.spatial_map for r in rec.records if r.name == "layer2.1"]).flatten(1)
    ranges = maps.amax(1) - maps.amin(1)
    spatial = stats["blocks"]["layer2.1"]["spatial"]
    assert spatial["range"]["p50"] == pytest.approx(float(ranges.median()), abs=1e-4)
    assert spatial["range"]["p10"] <= spatial["range"]["p50"] <= spatial["range"]["p90"]
    assert spatial["flat_fraction"] == pytest.approx(float((ranges < FLAT_RANGE).float().mean()), abs=1e-4)
    weights = torch.cat([r.channel_weights for r in rec.records if r.name == "layer2.1"])
    channel = stats["blocks"]["layer2.1"]["channel"]
    assert channel["mean"]["p50"] == pytest.approx(float(weights.mean(1).median()), abs=1e-4)
    assert model.training is False and hook_count(model) == 0
    text = usual_spread(stats, "layer2.1")
    assert text.startswith("Over 7 test images this block's maps usually span")
    assert f"median range {spatial['range']['p50']:.3f}" in text
    assert "channel weights usually average" in usual_spread(stats, "layer2.1", "channel")
    assert usual_spread(stats, "layer9.9") == "" and usual_spread(None, "layer2.1") == ""


def test_a_network_without_attention_has_no_statistics():
    from cbam_viz.explain.statistics import attention_statistics

    stats = attention_statistics(small(CBAMConfig(attention="none")), iter([torch.randn(2, 3, 32, 32)]))
    assert stats["blocks"] == {} and stats["images"] == 2

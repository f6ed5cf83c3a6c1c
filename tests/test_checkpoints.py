"""Checkpoint interop: pytorchcv, timm and the official layout give the same logits in our network."""

import os
import pickle
import time

import pytest
import torch

from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.checkpoints import detect_format, infer_architecture, load_checkpoint, load_state, to_native
from cbam_viz.models.resnet import cbam_resnet18, cbam_resnet50
from cbam_viz.models.weights import WeightsError, read_weights, save_weights

pytorchcv_provider = pytest.importorskip("pytorchcv.model_provider")
timm = pytest.importorskip("timm")


def randomise_bn(model, seed=0):
    """Random BatchNorm statistics and affine parameters, so eval-mode BN is not the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def official_keys(pytorchcv_state):
    """Rename pytorchcv keys into the official Jongchan/attention-module layout (DataParallel prefix)."""
    ours = to_native(pytorchcv_state, "pytorchcv")
    renames = {".cbam.channel.mlp.0.": ".cbam.ChannelGate.mlp.1.", ".cbam.channel.mlp.2.": ".cbam.ChannelGate.mlp.3.",
               ".cbam.spatial.conv.": ".cbam.SpatialGate.spatial.conv.", ".cbam.spatial.bn.": ".cbam.SpatialGate.spatial.bn."}
    out = {}
    for k, v in ours.items():
        for a, b in renames.items():
            k = k.replace(a, b)
        out["module." + k] = v
    return out


@pytest.fixture(scope="module")
def pytorchcv_resnet50():
    torch.manual_seed(0)
    return randomise_bn(pytorchcv_provider.get_model("cbam_resnet50", pretrained=False))


def test_pytorchcv_resnet50_equivalence(pytorchcv_resnet50):
    state = pytorchcv_resnet50.state_dict()
    assert detect_format(state) == "pytorchcv"
    model = cbam_resnet50(CBAMConfig(layout="official")).eval()
    load_state(model, to_native(state))
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        diff = (model(x) - pytorchcv_resnet50(x)).abs().max().item()
    assert diff <= 1e-4


def test_pytorchcv_resnet18_equivalence():
    torch.manual_seed(1)
    ref = randomise_bn(pytorchcv_provider.get_model("cbam_resnet18", pretrained=False), seed=1)
    native = to_native(ref.state_dict())
    arch = infer_architecture(native)
    assert (arch["depth"], arch["stem"], arch["cbam"]["layout"], arch["cbam"]["reduction"]) == (18, "imagenet", "official", 16)
    model = cbam_resnet18(CBAMConfig(layout="official")).eval()
    load_state(model, native)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() <= 1e-4


def test_official_checkpoint_loads_exactly(tmp_path, pytorchcv_resnet50):
    checkpoint = {"epoch": 90, "arch": "resnet", "best_prec1": 77.34,
                  "state_dict": official_keys(pytorchcv_resnet50.state_dict())}
    assert "module.layer1.0.cbam.ChannelGate.mlp.1.weight" in checkpoint["state_dict"]
    assert "module.layer1.0.cbam.SpatialGate.spatial.bn.running_var" in checkpoint["state_dict"]
    path = tmp_path / "RESNET50_CBAM_new_name_wrap.pth"
    torch.save(checkpoint, path)
    model, info = load_checkpoint(path)  # strict: no missing or unexpected keys
    assert info["format"] == "official" and info["architecture"]["depth"] == 50
    assert sum(p.numel() for p in model.parameters()) == 28_089_624
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - pytorchcv_resnet50(x)).abs().max().item() <= 1e-4


@pytest.mark.parametrize("name,depth", [("resnet18", 18), ("resnet50", 50)])
def test_timm_equivalence(tmp_path, name, depth):
    torch.manual_seed(2)
    ref = randomise_bn(timm.create_model(name, pretrained=False, block_args=dict(attn_layer="cbam")), seed=2)
    path = tmp_path / f"timm_{name}.safetensors"
    save_weights(path, ref.state_dict())
    model, info = load_checkpoint(path)
    assert info["format"] == "timm" and info["architecture"]["depth"] == depth
    assert info["architecture"]["cbam"]["layout"] == "timm"
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() <= 1e-4


def test_native_roundtrip_small_cifar(tmp_path):
    model = randomise_bn(cbam_resnet18(CBAMConfig(kernel_size=3, reduction=8, attention="spatial"), stem="cifar", width=0.5, num_classes=10))
    path = tmp_path / "ours.safetensors"
    save_weights(path, model.state_dict())
    loaded, info = load_checkpoint(path)
    assert info["format"] == "native"
    assert info["architecture"]["cbam"] == {"order": "channel-first", "kernel_size": 3, "reduction": 16,
                                            "attention": "spatial", "layout": "simple"}
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), model(x))


class _Payload:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/cbam_viz_pwned_marker",))


def test_malicious_pickle_is_rejected_before_running(tmp_path):
    marker = "/tmp/cbam_viz_pwned_marker"
    import os
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "payload": _Payload()}, path)
    raw = tmp_path / "evil_raw.pkl"
    raw.write_bytes(pickle.dumps(_Payload()))
    for p in (path, raw):
        with pytest.raises(WeightsError, match="rejected|not a readable"):
            read_weights(p)
    assert not os.path.exists(marker)


def test_mismatch_names_missing_unexpected_and_misshaped_keys():
    model = cbam_resnet18(CBAMConfig(reduction=16), stem="cifar", width=0.5)
    other_ratio = cbam_resnet18(CBAMConfig(reduction=8), stem="cifar", width=0.5).state_dict()
    with pytest.raises(WeightsError) as e:
        load_state(model, other_ratio)
    assert "mis-shaped" in str(e.value) and "layer1.0.cbam.channel.mlp.0.weight (4, 32, 1, 1) vs (2, 32, 1, 1)" in str(e.value)
    deeper = cbam_resnet50(CBAMConfig(), stem="cifar", width=0.5)
    with pytest.raises(WeightsError) as e:
        load_state(model, deeper.state_dict())
    assert "unexpected: layer1.0.conv3.weight" in str(e.value)
    with pytest.raises(WeightsError) as e:
        load_state(deeper, model.state_dict())
    assert "missing: layer1.0.conv3.weight" in str(e.value)


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        read_weights(empty)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="safetensors"):
        read_weights(garbage)
    truncated = tmp_path / "cut.pth"
    torch.save({"a": torch.zeros(1000)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        read_weights(truncated)
    with pytest.raises(WeightsError, match="unrecognised"):
        detect_format({"encoder.weight": torch.zeros(1)})


def test_oversized_weights_are_rejected_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.pth"
    torch.save({"w": torch.zeros(300_000)}, path)
    with pytest.raises(WeightsError, match=r"big.pth is 1.1 MiB, over the 1.0 MiB limit"):
        read_weights(path, max_bytes=2**20)
    import cbam_viz.models.weights
    monkeypatch.setattr(cbam_viz.models.weights, "MAX_WEIGHTS_BYTES", 2**20)
    with pytest.raises(WeightsError, match="over the 1.0 MiB limit"):
        read_weights(path)


def test_wrong_architecture_and_wrong_format_messages(tmp_path):
    from cbam_viz.models.checkpoints import load_checkpoint
    not_a_resnet = tmp_path / "mlp.pth"
    torch.save({"encoder.weight": torch.zeros(4, 4), "decoder.weight": torch.zeros(4, 4)}, not_a_resnet)
    with pytest.raises(WeightsError, match="unrecognised"):
        load_checkpoint(not_a_resnet)
    image = tmp_path / "photo.pth"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(WeightsError, match="photo.pth is not a PyTorch checkpoint .* it is a PNG image"):
        load_checkpoint(image)
    as_list = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], as_list)
    with pytest.raises(WeightsError, match="holds a list, not a dict of weights"):
        load_checkpoint(as_list)


def test_upload_store_is_content_addressed_and_bounded(tmp_path):
    from cbam_viz.app.uploads import STALE_PART_S, UploadStore
    store = UploadStore(tmp_path / "up", max_files=2, max_bytes=250)
    a = store.put(b"a" * 100, ".pth")
    assert store.put(b"a" * 100, ".pth") == a and a.read_bytes() == b"a" * 100  # same content, same file
    assert a.stat().st_mode & 0o777 and (tmp_path / "up").stat().st_mode & 0o077 == 0  # private folder
    b = store.put(b"b" * 100, ".safetensors")
    c = store.put(b"c" * 100, ".pth")  # a third file: the least recently used (a) goes
    assert not a.exists() and b.exists() and c.exists()
    d = store.put(b"d" * 200, ".pth")  # 200 + 100 > 250 bytes: only the newest fits
    assert [p.name for p in store.files()] == [d.name]
    with pytest.raises(WeightsError, match="not a weights file type"):
        store.put(b"x", ".exe")
    assert not list((tmp_path / "up").glob("*.part"))
    abandoned, writing = tmp_path / "up" / "old.part", tmp_path / "up" / "new.part"
    abandoned.write_bytes(b"half")
    writing.write_bytes(b"half")
    os.utime(abandoned, (time.time() - 2 * STALE_PART_S,) * 2)
    store.put(b"e" * 10, ".pth")  # cleans what a killed writer left, not another writer's file in progress
    assert not abandoned.exists() and writing.exists()

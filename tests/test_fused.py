"""The compiled gates (cbam_viz.fused) against the stock operators, and when each path runs.

Skipped with a reason on a machine without a C compiler, except when CBAM_VIZ_REQUIRE_FUSED=1
(CI), where missing kernels fail the suite.
"""

import itertools
import os
import threading
import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cbam_viz import AttentionRecorder, fused
from cbam_viz.attention import CBAM, CBAMConfig
from cbam_viz.compact import CompactCBAMNet
from cbam_viz.resnet import cbam_resnet18, cbam_resnet50

REASON = None if fused.library() is not None else "no C compiler here: CBAM's gates run on stock operators"
if REASON and os.environ.get("CBAM_VIZ_REQUIRE_FUSED") == "1":
    raise RuntimeError(f"the compiled gates are required here but unavailable: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")


@pytest.fixture
def stock(monkeypatch):
    """Run a callable with the compiled gates switched off."""
    def run(fn, *args, **kwargs):
        with monkeypatch.context() as m:
            m.setattr(fused, "usable", lambda *tensors: False)
            return fn(*args, **kwargs)
    return run


@pytest.fixture
def kernel_calls(monkeypatch):
    """Names of the kernels called, in order."""
    calls = []
    for name in ("channel_gate", "spatial_gate", "gate_residual", "cbam_block"):
        original = getattr(fused, name)
        monkeypatch.setattr(fused, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    return calls


def randomised(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights and BatchNorm statistics far from their initial values, so that every term counts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return module.eval()


CONFIGS = [CBAMConfig(order=o, attention=a, kernel_size=k, reduction=8, layout=l)
           for l, o, a, k in itertools.product(("simple", "official", "timm"), ("channel-first", "spatial-first", "parallel"),
                                               ("both", "channel", "spatial"), (3, 7))]
SHAPES = [(1, 32, 7, 7), (2, 16, 9, 13), (1, 64, 56, 56), (1, 24, 1, 1), (3, 8, 2, 40)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.layout}-{c.order}-{c.attention}-k{c.kernel_size}")
def test_cbam_block_equals_stock_operators(config, stock, kernel_calls):
    gates = 2 if config.attention == "both" else 1
    for shape in SHAPES:
        cbam = randomised(CBAM(shape[1], config, inplace=True))
        x, residual = torch.randn(shape), torch.randn(shape)
        for relu in (False, True):
            with torch.no_grad():
                expected = stock(cbam, x.clone(), residual.clone(), relu=relu)
                kernel_calls.clear()
                whole = cbam(x.clone(), residual.clone(), relu=relu)
                assert kernel_calls == ["cbam_block"]  # nothing watches the gates: one call
                handles = [g.register_forward_hook(lambda *a: None) for g in (cbam.channel, cbam.spatial) if g]
                kernel_calls.clear()
                watched = cbam(x.clone(), residual.clone(), relu=relu)
                for h in handles:
                    h.remove()
                assert kernel_calls[-1] == "gate_residual" and len(kernel_calls) == 1 + gates  # the gates, then the last pass
            torch.testing.assert_close(whole, expected, rtol=1e-5, atol=1e-5)
            assert torch.equal(whole, watched)  # watching the gates changes no bit of the result


@pytest.mark.parametrize("build,size", [(lambda: cbam_resnet18(CBAMConfig(layout="official")), 64),
                                        (lambda: cbam_resnet50(CBAMConfig(layout="timm")), 64),
                                        (lambda: CompactCBAMNet(CBAMConfig(order="parallel")), 32)])
def test_networks_and_their_captured_attention_equal_stock(build, size, stock):
    torch.manual_seed(0)
    model = build().eval()  # the networks' own initialisation: deep stacks of random weights overflow
    x = torch.randn(2, 3, size, size)

    def run():
        with torch.no_grad(), AttentionRecorder(model) as rec:
            return model(x), rec.by_name()

    (logits, records), (stock_logits, stock_records) = run(), stock(run)
    torch.testing.assert_close(logits, stock_logits, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        assert torch.equal(model(x), logits)  # unwatched (one kernel call per block): the same bits as captured
    assert records.keys() == stock_records.keys() and records
    for name, record in records.items():
        torch.testing.assert_close(record.channel_weights, stock_records[name].channel_weights, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(record.spatial_map, stock_records[name].spatial_map, rtol=1e-4, atol=1e-5)


def test_recording_keeps_one_kernel_call_per_block(kernel_calls):
    model = cbam_resnet18(CBAMConfig(order="spatial-first"), stem="cifar", width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        kernel_calls.clear()
        with AttentionRecorder(model) as rec:
            captured = model(x)
    assert kernel_calls == ["cbam_block"] * 8 and len(rec.records) == 8
    assert torch.equal(captured, plain)
    record = rec.records[0]
    assert record.channel_weights.shape == (2, 16) and record.spatial_map.shape == (2, 1, 32, 32)


def test_a_watched_module_is_always_called(kernel_calls):
    cbam = randomised(CBAM(32, CBAMConfig(layout="official"), inplace=True))
    x, residual = torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8)
    seen = []
    for module in (cbam.channel.mlp[0], cbam.spatial.bn):
        module.register_forward_hook(lambda m, i, o: seen.append(type(m).__name__))
    with torch.no_grad():
        cbam(x, residual)
    assert seen == ["Linear", "BatchNorm2d"]  # the MLP runs once, on both descriptors as one batch
    assert kernel_calls == ["gate_residual"]  # both gates ran their modules; the last pass is still compiled


def test_odd_shapes_are_broadcast_or_refused_never_read_past(stock):
    cbam = randomised(CBAM(16, CBAMConfig(layout="timm"), inplace=True))
    x = torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        residual = torch.randn(1, 16, 1, 1)  # broadcast, as torch.addcmul does
        torch.testing.assert_close(cbam(x.clone(), residual, relu=True), stock(cbam, x.clone(), residual, relu=True))
        for gate, replaced in ((cbam.spatial, lambda o: o.mean((2, 3), keepdim=True)), (cbam.channel, lambda o: o[:1])):
            handle = gate.register_forward_hook(lambda m, i, o, f=replaced: f(o))  # a hook replaces the gate's output
            torch.testing.assert_close(cbam(x.clone(), x.clone()), stock(cbam, x.clone(), x.clone()))
            handle.remove()
        cbam.channel.mlp[2].weight = torch.nn.Parameter(torch.randn(8, 1, 1, 1))  # not (C, C/r): never read past it
        with pytest.raises(ValueError, match="channel MLP"):
            cbam(x.clone(), x.clone())


def test_a_parametrized_weight_takes_the_stock_path(stock, kernel_calls):
    cbam = randomised(CBAM(16, CBAMConfig(layout="official"), inplace=True))
    torch.nn.utils.parametrizations.weight_norm(cbam.channel.mlp[0])
    torch.nn.utils.parametrizations.weight_norm(cbam.spatial.conv)
    x = torch.randn(1, 16, 5, 5)
    with torch.no_grad():
        got = cbam(x.clone(), x.clone())
        assert kernel_calls == ["gate_residual"]
        torch.testing.assert_close(got, stock(cbam, x.clone(), x.clone()))


def test_stock_operators_where_the_kernels_do_not_apply(kernel_calls):
    cbam = randomised(CBAM(16, CBAMConfig(), inplace=True))
    x = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        cbam(x.clone(), x.clone())
        assert kernel_calls, "float32 inference uses the kernels"
        kernel_calls.clear()
        cbam(x.clone().to(memory_format=torch.channels_last), x.clone())
        cbam.double()(x.double(), x.double())
        cbam.float()
        with FlopCounterMode(display=False):
            cbam(x.clone(), x.clone())
    cbam(x.clone(), x.clone())  # autograd on
    cbam.train()(x.clone(), x.clone())
    assert kernel_calls == []
    with torch.no_grad():
        cbam.eval()(x.clone())  # the standalone module, no residual: compiled gates, then a plain product
    assert kernel_calls == ["channel_gate", "spatial_gate"]


def test_nan_propagates_as_in_torch(stock):
    cbam = randomised(CBAM(16, CBAMConfig(layout="timm"), inplace=True))
    x = torch.randn(1, 16, 6, 6)
    x[0, 3, 2, 2] = float("nan")
    x[0, 5] = float("inf")
    with torch.no_grad(), AttentionRecorder(cbam) as rec:
        out = cbam(x.clone(), torch.zeros_like(x), relu=True)
        record = rec.by_name()["cbam"]
    with torch.no_grad(), AttentionRecorder(cbam) as rec:
        expected = stock(cbam, x.clone(), torch.zeros_like(x), relu=True)
        expected_record = rec.by_name()["cbam"]
    torch.testing.assert_close(out, expected, equal_nan=True)
    torch.testing.assert_close(record.channel_weights, expected_record.channel_weights, equal_nan=True)
    torch.testing.assert_close(record.spatial_map, expected_record.spatial_map, equal_nan=True)
    assert record.spatial_map.isnan().any()


def test_threads_share_one_model():
    model = randomised(cbam_resnet18(CBAMConfig(), stem="cifar", width=0.25))
    inputs = [torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    with torch.no_grad():
        expected = [model(x) for x in inputs]
    results = [None] * len(inputs)

    def work(i):
        with torch.no_grad():
            for _ in range(5):
                results[i] = model(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        torch.testing.assert_close(got, want)


def test_build_is_cached_and_fails_cleanly(tmp_path, monkeypatch):
    path = fused.build(tmp_path)
    stamp = path.stat().st_mtime_ns
    assert fused.build(tmp_path) == path and path.stat().st_mtime_ns == stamp  # built once
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    with pytest.raises(OSError):
        fused.build(tmp_path / "other", compiler=str(tmp_path / "no-such-compiler"))
    (tmp_path / "file").write_text("")
    elsewhere = fused.build(tmp_path / "file" / "cache")  # the cache cannot be made: a private folder instead
    assert elsewhere.is_file() and tmp_path not in elsewhere.parents

    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'cc (test) 1.0'; [ \"$1\" = --version ] && exit 0; echo 'no' >&2; exit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    monkeypatch.setenv("CBAM_VIZ_KERNEL_CACHE", str(tmp_path / "cache"))
    fused.library.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="stock operators run instead"):
            assert fused.library() is None
        model = randomised(CBAM(16, CBAMConfig(), inplace=True))
        with torch.no_grad():
            model(torch.randn(1, 16, 4, 4), torch.randn(1, 16, 4, 4))  # still works, on stock operators
        assert not list((tmp_path / "cache").glob("*.so"))
        monkeypatch.setenv("CBAM_VIZ_FUSED", "0")
        fused.library.cache_clear()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert fused.library() is None  # switched off: no warning
    finally:
        monkeypatch.undo()
        fused.library.cache_clear()
    assert fused.library() is not None

"""A cached model shared by many sessions: concurrent analyses stay isolated and never change it."""

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from cbam_viz.explain.analysis import analyse
from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.resnet import cbam_resnet18

CARD = {"classes": [f"c{i}" for i in range(10)],
        "preprocessing": {"input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}


def fingerprint(model):
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode() + v.numpy().tobytes())
    return h.hexdigest(), model.training, [p.requires_grad for p in model.parameters()]


def test_concurrent_analyses_match_sequential_and_leave_the_model_untouched():
    torch.manual_seed(0)
    model = cbam_resnet18(CBAMConfig(), stem="cifar", width=0.25, num_classes=10).eval()
    lock = threading.Lock()
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(12)]
    reference = [analyse(model, im, CARD) for im in images]
    before = fingerprint(model)

    def job(i):
        return i, analyse(model, images[i % 12], CARD, lock=lock)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(job, range(48)))
    for i, result in results:
        ref = reference[i % 12]
        np.testing.assert_allclose(result.probabilities, ref.probabilities, rtol=1e-5, atol=1e-7)
        for a, b in zip(result.blocks, ref.blocks):
            np.testing.assert_allclose(a.channel_weights, b.channel_weights, rtol=1e-5)
            np.testing.assert_allclose(a.spatial_map, b.spatial_map, rtol=1e-5)
    assert fingerprint(model) == before
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())

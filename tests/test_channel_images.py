"""What a variant's channel weights do over a data set: the drill-down's top images and the class profiles."""

import numpy as np
import torch

from cbam_viz.explain.channel_images import ChannelImages, channel_weights, save, top_images
from cbam_viz.explain.profiles import class_profiles, specificity
from cbam_viz.explain.recorder import AttentionRecorder

from .test_lessons import hook_count, small


def test_top_images_are_the_largest_weights_of_each_channel_and_round_trip(tmp_path):
    model = small()
    x = torch.randn(20, 3, 32, 32)
    weights = channel_weights(model, [x[:8], x[8:]])  # two batches: images count across them
    with torch.no_grad(), AttentionRecorder(model) as rec:
        model(x)
    direct = {r.name: r.channel_weights.numpy() for r in rec.records}
    assert list(weights) == list(direct) and hook_count(model) == 0
    assert all(np.allclose(weights[b], direct[b], atol=1e-6) for b in direct)
    tops = top_images(weights, k=3)
    for block, (index, weight) in tops.items():
        w = direct[block]  # (N, C)
        assert index.shape == weight.shape == (w.shape[1], 3)
        best = np.sort(w, axis=0)[::-1][:3].T  # per channel, its three largest weights
        assert np.allclose(weight, best, atol=1e-3)  # stored as float16
        assert np.allclose(w[index[:, 0], np.arange(w.shape[1])], best[:, 0])
    labels = np.arange(20) % 3
    files = [f"class{i % 3}/{i:03d}.png" for i in range(20)]
    path = save(tmp_path / "v.channels.npz", weights, labels, files, num_classes=4, k=3)
    shipped = ChannelImages(path)
    assert shipped.blocks() == list(direct)  # forward order
    block = shipped.blocks()[0]
    examples = shipped.examples(block, 2)
    assert [e.index for e in examples] == tops[block][0][2].tolist()
    assert all(e.file == files[e.index] and e.label == labels[e.index] for e in examples)
    profiles = shipped.profiles()
    assert profiles.counts.tolist() == [7, 7, 6, 0] and np.isnan(profiles.means[block][3]).all()
    assert np.allclose(profiles.means[block][1], direct[block][labels == 1].mean(0), atol=1e-6)
    assert profiles.specificity[block] == specificity(direct[block], labels)
    assert path.stat().st_size < 20_000  # a small file: no pixels


def test_specificity_is_high_where_weights_follow_the_class_and_low_where_they_do_not():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 100)
    by_class = rng.random((10, 32))[labels] + 0.05 * rng.standard_normal((1000, 32))  # late block: class-specific
    shared = rng.random(32) + 0.05 * rng.standard_normal((1000, 32))  # early block: the same for every class
    profiles = class_profiles({"layer1.0": shared, "layer4.1": by_class}, labels, 10)
    assert profiles.specificity["layer4.1"] > 0.9 and profiles.specificity["layer1.0"] < 0.03
    assert abs(profiles.specificity["layer1.0"] - 9 / 1000) < 0.01  # its bias: about (classes - 1) / images
    rows = profiles.rows([f"c{k}" for k in range(10)])
    assert len(rows) == 2 * 10 * 32 and rows[0] == {"block": "layer1.0", "class": "c0", "channel": 0,
                                                     "mean weight": round(float(shared[labels == 0, 0].mean()), 6)}
    assert np.isnan(specificity(np.ones((5, 3)), np.arange(5)))

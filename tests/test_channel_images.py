"""The channel drill-down's examples: the test images that weight each channel most, saved and read back."""

import numpy as np
import torch

from cbam_viz.explain.channel_images import ChannelImages, save, top_images
from cbam_viz.explain.recorder import AttentionRecorder

from .test_lessons import hook_count, small


def test_top_images_are_the_largest_weights_of_each_channel_and_round_trip(tmp_path):
    model = small()
    x = torch.randn(20, 3, 32, 32)
    tops = top_images(model, [x[:8], x[8:]], k=3)  # two batches: indices count across them
    with torch.no_grad(), AttentionRecorder(model) as rec:
        model(x)
    direct = {r.name: r.channel_weights.numpy() for r in rec.records}
    assert set(tops) == set(direct) and hook_count(model) == 0
    for block, (index, weight) in tops.items():
        w = direct[block]  # (N, C)
        assert index.shape == weight.shape == (w.shape[1], 3)
        best = np.sort(w, axis=0)[::-1][:3].T  # per channel, its three largest weights
        assert np.allclose(weight, best, atol=1e-3)  # stored as float16
        assert np.allclose(w[index[:, 0], np.arange(w.shape[1])], best[:, 0])
    labels = np.arange(20) % 3
    files = [f"class{i % 3}/{i:03d}.png" for i in range(20)]
    path = save(tmp_path / "v.channels.npz", tops, labels, files)
    shipped = ChannelImages(path)
    assert shipped.blocks() == sorted(tops)
    block = shipped.blocks()[0]
    examples = shipped.examples(block, 2)
    assert [e.index for e in examples] == tops[block][0][2].tolist()
    assert all(e.file == files[e.index] and e.label == labels[e.index] for e in examples)
    assert path.stat().st_size < 20_000  # a small file: no pixels

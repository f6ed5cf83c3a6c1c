"""Batched analysis: the same numbers as one image at a time, rejected files reported, the rest go on."""

import numpy as np
import pytest
from PIL import Image

from cbam_viz.explain.analysis import analyse
from cbam_viz.explain.batch import analyse_files

from .test_lessons import hook_count, small

CARD = {"preprocessing": {"input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "flip_average": True},
        "classes": [str(i) for i in range(10)]}


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_equal_single_analyses_and_skip_broken_files(tmp_path, workers):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(7):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (40 + i, 48, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    (tmp_path / "broken.jpg").write_bytes(b"not a picture")
    paths.insert(3, tmp_path / "broken.jpg")
    model = small()
    seen = []
    items = list(analyse_files(model, CARD, paths, batch_size=3, workers=workers, progress=seen.append))
    assert [i.path for i in items] == paths and seen[-1] == len(paths) and hook_count(model) == 0
    broken = items[3]
    assert broken.probabilities is None and "not an image file" in broken.error
    for item in items[:3] + items[4:]:
        single = analyse(model, Image.open(item.path), CARD)
        assert np.allclose(item.probabilities, single.probabilities, atol=1e-5)
        for a, b in zip(item.blocks, single.blocks):
            assert a.name == b.name and np.allclose(a.channel_weights, b.channel_weights, atol=1e-5)
            assert np.allclose(a.spatial_map, b.spatial_map, atol=1e-5)


def test_single_view_predicts_from_the_image_alone_with_the_same_attention(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 255, (36, 36 + i, 3), dtype=np.uint8)).save(paths[-1])
    model = small()
    both = list(analyse_files(model, CARD, paths, batch_size=4, workers=0))
    alone = list(analyse_files(model, CARD, paths, batch_size=4, workers=0, single_view=True))
    single_card = {**CARD, "preprocessing": {**CARD["preprocessing"], "flip_average": False}}
    for a, b in zip(alone, both):
        expected = analyse(model, Image.open(a.path), single_card).probabilities  # no mirror image
        assert np.allclose(a.probabilities, expected, atol=1e-5)
        assert not np.allclose(a.probabilities, b.probabilities, atol=1e-5)
        for x, y in zip(a.blocks, b.blocks):
            assert np.allclose(x.channel_weights, y.channel_weights, atol=1e-6)
            assert np.allclose(x.spatial_map, y.spatial_map, atol=1e-6)

"""Analysis and renderers: predictions, per-block arrays, overlays, statistics, exports."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cbam_viz import colormaps, render
from cbam_viz.analysis import analyse, model_input
from cbam_viz.attention import CBAMConfig
from cbam_viz.capture import AttentionRecorder
from cbam_viz.resnet import cbam_resnet18
from cbam_viz.results import centre_crop_box

CARD = {"classes": [f"c{i}" for i in range(10)],
        "preprocessing": {"input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return cbam_resnet18(CBAMConfig(), stem="cifar", width=0.25, num_classes=10).eval()


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))


def test_model_input_matches_preprocessing(image):
    x, view = model_input(image, CARD["preprocessing"], display_size=96)
    assert x.shape == (1, 3, 32, 32) and view.shape == (96, 96, 3)
    crop = image.crop((8, 0, 56, 48)).resize((32, 32), Image.BICUBIC)
    expected = (np.asarray(crop, np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert centre_crop_box((400, 300), 224 / 256) == (69, 19, 331, 281)


def test_analysis_equals_direct_forward(model, image):
    result = analyse(model, image, CARD, top_k=5)
    x, _ = model_input(image, CARD["preprocessing"])
    with AttentionRecorder(model) as rec, torch.no_grad():
        probs = torch.softmax(model(x)[0], 0).numpy()
    assert [c for c, _ in result.top] == [CARD["classes"][i] for i in np.argsort(-probs)[:5]]
    np.testing.assert_allclose(result.probabilities, probs, rtol=1e-5)
    assert [b.name for b in result.blocks] == [r.name for r in rec.records]
    np.testing.assert_allclose(result.block("layer2.1").channel_weights, rec.records[3].channel_weights[0].numpy())
    assert result.block("layer4.0").spatial_map.shape == (4, 4)
    with pytest.raises(KeyError, match="no CBAM block named"):
        result.block("layer9.9")


def test_flip_averaged_prediction_keeps_the_images_own_attention(model, image):
    card = {**CARD, "preprocessing": {**CARD["preprocessing"], "flip_average": True}}
    plain, averaged = analyse(model, image, CARD), analyse(model, image, card)
    x, _ = model_input(image, CARD["preprocessing"])
    with torch.no_grad():
        logits = (model(x) + model(x.flip(3))) / 2
    np.testing.assert_allclose(averaged.probabilities, torch.softmax(logits[0], 0).numpy(), rtol=1e-5)
    assert not np.allclose(averaged.probabilities, plain.probabilities)
    for a, b in zip(averaged.blocks, plain.blocks, strict=True):  # the mirror pass is not recorded
        np.testing.assert_array_equal(a.channel_weights, b.channel_weights)
        np.testing.assert_array_equal(a.spatial_map, b.spatial_map)


def test_weight_stats_by_hand():
    s = render.weight_stats(np.array([0.25, 0.25, 0.25, 0.25]))
    assert (s.mean, s.std, s.min, s.max) == (0.25, 0.0, 0.25, 0.25) and s.entropy == pytest.approx(1.0)
    s = render.weight_stats(np.array([1.0, 1e-12, 1e-12, 1e-12]))
    assert s.entropy == pytest.approx(0.0, abs=1e-6)
    p = np.array([0.5, 0.3, 0.2])
    assert render.weight_stats(p).entropy == pytest.approx(-(p * np.log(p)).sum() / np.log(3))


def test_markdown_table_numbers_rows_and_escapes_pipes():
    table = render.markdown_table([{"class": "cat|dog", "probability": "61.0%"}, {"class": "ship", "probability": "9.5%"}],
                                  index="rank")
    assert table.splitlines() == ["| rank | class | probability |", "| --- | --- | --- |",
                                  "| 1 | cat\\|dog | 61.0% |", "| 2 | ship | 9.5% |"]
    assert render.markdown_table([{"a": 1}]).splitlines()[2] == "| 1 |"
    assert render.markdown_table([{"class": "$5_bill *new*"}]).splitlines()[2] == r"| \$5\_bill \*new\* |"
    with pytest.raises(ValueError, match="at least one row"):
        render.markdown_table([])


def test_overlay_and_upsampling():
    view = np.zeros((8, 8, 3), np.uint8)
    m = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    near = render.upsample(m, 8, smooth=False)
    assert near[0, 0] == 0 and near[0, 7] == 1 and set(np.unique(near)) == {0.0, 1.0}
    assert len(np.unique(render.upsample(m, 8, smooth=True))) > 2
    full = render.overlay(view, m, cmap="gray", opacity=1.0, smooth=False)
    assert full[0, 0].tolist() == [0, 0, 0] and full[0, 7].tolist() == [255, 255, 255]
    half = render.overlay(view + 100, m, cmap="gray", opacity=0.5, smooth=False)
    assert half[0, 7].tolist() == [178, 178, 178]  # (255 + 100) / 2, rounded
    # absolute scale: a flat map at 0.5 is mid-grey, relative scale would stretch it
    assert render.value_range(np.full((2, 2), 0.5), "absolute") == (0.0, 1.0)
    assert render.value_range(m, "relative") == (0.0, 1.0)


def test_colormap_tables_equal_matplotlib():
    """The shipped tables are matplotlib's and are indexed as matplotlib does: the same colours for
    random values, both ends, the values just below each entry's edge, out of range and NaN."""
    from matplotlib import colormaps as mpl

    assert set(render.COLORMAPS) <= set(colormaps.NAMES)
    edges = np.arange(1, 256) / 256
    t = np.concatenate([np.random.default_rng(0).random(4096), [0.0, 1.0, -0.5, 1.5, np.nan],
                        edges, np.nextafter(edges, 0)]).reshape(29, 159)  # 2-D, as the maps are
    tables = colormaps.tables_from_matplotlib()
    for name in colormaps.NAMES:
        np.testing.assert_array_equal(colormaps.LUTS[name], tables[name], err_msg=name)
        expected = (mpl[name](np.clip(t, 0, 1))[..., :3] * 255).astype(np.uint8)
        np.testing.assert_array_equal(colormaps.colorize(t, name), expected, err_msg=name)


def test_grid_and_exports(model, image):
    result = analyse(model, image, CARD)
    g = render.grid(result, tile=40)
    assert g.shape[0] == 4 * (40 + 22 + 6) + 6 and g.shape[1] == 6 + 2 * (40 + 6)  # 4 stages x 2 blocks
    png = render.png_bytes(g)
    assert png.startswith(b"\x89PNG")
    weights = result.block("layer1.0").channel_weights
    frame = render.channel_rows(weights, sort=True, top_k=3)
    assert [r["rank"] for r in frame] == list(range(1, len(weights) + 1)) and sum(r["top_k"] for r in frame) == 3
    assert [r["weight"] for r in frame] == sorted(weights.astype(float), reverse=True)
    rows = render.channel_csv(frame).splitlines()
    assert rows[0] == "channel,weight,rank,top_k" and len(rows) == 1 + len(frame)
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(len(frame)))  # channel order, not rank order
    assert [float(r.split(",")[1]) for r in rows[1:]] == weights.astype(float).tolist()  # every digit kept
    data = json.loads(render.predictions_json(result, {"order": "parallel"}))
    assert data["configuration"]["order"] == "parallel" and len(data["predictions"]) == 5
    bar = render.colorbar("jet", 0.49, 0.51, height=50)
    assert bar.shape == (66, 100, 3)
    names, shares = render.weight_histograms(result)
    assert names == [b.name for b in result.blocks] and shares.shape == (8, 20)  # 8 blocks x 20 bins
    np.testing.assert_allclose(shares.sum(1), 1.0)
    assert render.weight_distribution(result).shape[1] == 640


def test_channel_bars_draw_every_weight_and_the_top_k():
    weights = np.array([0.1, 0.9, 0.5, 0.25])
    image = render.channel_bars(render.channel_rows(weights, top_k=1), "four channels", width=440, height=236)
    plot = image[30:30 + 166, 46:46 + 372]  # the plot area: 166 px for weights 0..1, 93 px per bar
    red = np.all(plot == render.TOP_K, axis=2)
    blue = np.all(plot == render.BAR, axis=2)
    assert red.any(axis=0)[93:185].all() and not red.any(axis=0)[:93].any() and not red.any(axis=0)[185:].any()
    for i, w in enumerate(weights):  # each bar as tall as its weight, a gap between bars
        column = (red | blue)[:, i * 93 + 40]
        assert abs(column.sum() - round(w * 166)) <= 1 and not (red | blue)[:, i * 93 + 92].any()
    many = render.channel_bars(render.channel_rows(np.linspace(0, 1, 2048), sort=True, top_k=5), "2048 channels")
    assert np.all(many[30:260, 46:618] == render.TOP_K, axis=2)[:, 0].sum() > 200  # thinner than a pixel: still shown


def test_grid_without_spatial_attention_says_so(image):
    torch.manual_seed(0)
    channel_only = cbam_resnet18(CBAMConfig(attention="channel"), stem="cifar", width=0.25, num_classes=10).eval()
    result = analyse(channel_only, image, CARD)
    with pytest.raises(ValueError, match="no spatial attention"):
        render.grid(result)


@pytest.mark.parametrize("delta,text", [(0.0123, "+1.2"), (-0.2, "-20.0"), (-0.0004, "0.0"),
                                        (0.0004, "0.0"), (0.0, "0.0")])
def test_points_are_signed_and_never_negative_zero(delta, text):
    assert render.points(delta) == text

"""Analysis and renderers: predictions, per-block arrays, overlays, charts, figures, exports."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from cbam_viz.explain.analysis import analyse, model_input
from cbam_viz.explain.recorder import AttentionRecorder
from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.preprocessing import crop_box
from cbam_viz.models.resnet import cbam_resnet18
from cbam_viz.render import charts, figures, overlays, tables

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


@pytest.fixture(scope="module")
def result(model, image):
    return analyse(model, image, CARD)


def test_model_input_is_shorter_side_resize_then_centre_crop(image):
    x, view = model_input(image, CARD["preprocessing"], display_size=96)
    assert x.shape == (1, 3, 32, 32) and view.shape == (96, 96, 3)
    # by hand: 64x48 -> 42x32 (bicubic), then the centre 32x32
    crop = image.resize((42, 32), Image.BICUBIC).crop((5, 0, 37, 32))
    expected = (np.asarray(crop, np.float32) / 255 - 0.5) / 0.25
    np.testing.assert_allclose(x[0].permute(1, 2, 0).numpy(), expected, atol=1e-5)
    assert crop_box((400, 300), {"input_size": 224, "resize_size": 256}) == (69, 19, 331, 281)


def test_the_input_the_model_received_is_kept(result, image):
    crop = image.resize((42, 32), Image.BICUBIC).crop((5, 0, 37, 32))
    assert result.seen.shape == (32, 32, 3) and result.seen.dtype == np.uint8
    assert np.abs(result.seen.astype(int) - np.asarray(crop, int)).max() <= 1


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
    s = tables.weight_stats(np.array([0.25, 0.25, 0.25, 0.25]))
    assert (s.mean, s.std, s.min, s.max) == (0.25, 0.0, 0.25, 0.25) and s.entropy == pytest.approx(1.0)
    s = tables.weight_stats(np.array([1.0, 1e-12, 1e-12, 1e-12]))
    assert s.entropy == pytest.approx(0.0, abs=1e-6)
    p = np.array([0.5, 0.3, 0.2])
    assert tables.weight_stats(p).entropy == pytest.approx(-(p * np.log(p)).sum() / np.log(3))
    assert tables.stats_table(p).splitlines()[2] == "| 0.3333 | 0.1247 | 0.2000 | 0.5000 | 0.9372 |"


def test_markdown_table_numbers_rows_and_escapes_pipes():
    table = tables.markdown_table([{"class": "cat|dog", "probability": "61.0%"}, {"class": "ship", "probability": "9.5%"}],
                                  index="rank")
    assert table.splitlines() == ["| rank | class | probability |", "| --- | --- | --- |",
                                  "| 1 | cat\\|dog | 61.0% |", "| 2 | ship | 9.5% |"]
    assert tables.markdown_table([{"a": 1}]).splitlines()[2] == "| 1 |"
    assert tables.markdown_table([{"class": "$5_bill *new*"}]).splitlines()[2] == r"| \$5\_bill \*new\* |"
    with pytest.raises(ValueError, match="at least one row"):
        tables.markdown_table([])


def test_overlay_and_upsampling():
    view = np.zeros((8, 8, 3), np.uint8)
    m = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)
    near = overlays.upsample(m, 8, smooth=False)
    assert near[0, 0] == 0 and near[0, 7] == 1 and set(np.unique(near)) == {0.0, 1.0}
    assert len(np.unique(overlays.upsample(m, 8, smooth=True))) > 2
    full = overlays.overlay(view, m, cmap="gray", opacity=1.0, smooth=False)
    assert full[0, 0].tolist() == [0, 0, 0] and full[0, 7].tolist() == [255, 255, 255]
    half = overlays.overlay(view + 100, m, cmap="gray", opacity=0.5, smooth=False)
    assert half[0, 0].tolist() == [50, 50, 50] and half[0, 7].tolist() == [178, 178, 178]  # (255 + 100) / 2
    # absolute scale: the sigmoid's 0..1; relative scale: the map's own range
    assert overlays.value_range(np.full((2, 2), 0.5), "absolute") == (0.0, 1.0)
    assert overlays.value_range(m, "relative") == (0.0, 1.0)


def test_colours_are_matplotlibs_colormap_over_the_value_range():
    from matplotlib import colormaps

    lo, hi = colormaps["viridis"](0.0, bytes=True)[:3], colormaps["viridis"](1.0, bytes=True)[:3]
    got = overlays.colorize(np.array([0.2, 0.4, 0.1, 0.9]), "viridis", 0.2, 0.4)
    assert got[0].tolist() == list(lo) and got[1].tolist() == list(hi)
    assert got[2].tolist() == list(lo) and got[3].tolist() == list(hi)  # clipped outside the range


@pytest.mark.parametrize("values,flat,passes", [((0.1, 0.9), False, False), ((0.40, 0.43), True, False),
                                                ((0.9968, 0.99997), True, True)])
def test_range_note_says_when_a_map_is_nearly_flat(values, flat, passes):
    note = overlays.range_note(np.array([[values[0], values[1]]]))
    assert note.startswith(f"Values {values[0]:.4f} to {values[1]:.4f}")
    assert ("Nearly flat" in note) == flat and ("passes almost everything" in note) == passes


def test_channel_bars_chart_has_tooltips_top_k_and_a_selection():
    rows = tables.channel_rows(np.array([0.1, 0.9, 0.5, 0.25]), top_k=1)
    spec = charts.channel_bars(rows, "four channels").to_dict()
    data = next(iter(spec["datasets"].values()))
    assert [(d["channel"], d["weight"], d["rank"], d["top_k"]) for d in data] == [
        (0, 0.1, 4, False), (1, 0.9, 1, True), (2, 0.5, 2, False), (3, 0.25, 3, False)]
    assert [t["field"] for t in spec["encoding"]["tooltip"]] == ["channel", "weight", "rank"]
    assert spec["encoding"]["x"]["field"] == "channel" and spec["encoding"]["y"]["scale"]["domain"] == [0, 1]
    assert spec["params"][0]["name"] == charts.CHANNEL_SELECTION and spec["params"][0]["select"]["fields"] == ["channel"]
    by_rank = charts.channel_bars(tables.channel_rows(np.array([0.1, 0.9, 0.5]), sort=True), "sorted").to_dict()
    assert by_rank["encoding"]["x"]["field"] == "rank"


def test_weight_distribution_chart_has_a_row_per_block(result):
    names, shares = tables.weight_histograms(result.blocks)
    assert names == [b.name for b in result.blocks] and shares.shape == (8, 20)  # 8 blocks x 20 bins
    np.testing.assert_allclose(shares.sum(1), 1.0)
    spec = charts.weight_distribution(result.blocks).to_dict()
    data = next(iter(spec["datasets"].values()))
    assert len(data) == 8 * 20 and spec["encoding"]["y"]["sort"] == names
    for name, c in zip(names, (16, 16, 32, 32, 64, 64, 128, 128)):  # channels per block at width 0.25
        assert sum(d["channels"] for d in data if d["block"] == name) == c


def test_spatial_map_chart_gives_every_cell_and_the_real_range(result):
    block = result.block("layer2.0")
    picture = overlays.encode_jpeg(overlays.overlay(result.view, block.spatial_map))
    spec = charts.spatial_map(picture, block.spatial_map, "jet", "relative").to_dict()
    image_layer, cells = spec["layer"]
    assert next(iter(spec["datasets"][image_layer["data"]["name"]]))["url"].startswith("data:image/jpeg;base64,")
    values = spec["datasets"][cells["data"]["name"]]
    assert len(values) == 16 * 16 and values[17] == {"row": 1, "column": 1,
                                                     "value": round(float(block.spatial_map[1, 1]), 6)}
    assert {"calculate": "datum.row + 1", "as": "row_end"} in cells["transform"]  # each cell spans one map position
    domain = cells["encoding"]["color"]["scale"]["domain"]
    assert domain[0] == pytest.approx(block.spatial_map.min()) and domain[-1] == pytest.approx(block.spatial_map.max())


def test_the_page_draws_the_validated_specifications(result):
    from cbam_viz.app.pictures import vega_lite

    block = result.block("layer2.0")
    picture = overlays.encode_jpeg(overlays.overlay(result.view, block.spatial_map))
    for chart in (charts.channel_bars(tables.channel_rows(block.channel_weights), "bars"),
                  charts.spatial_map(picture, block.spatial_map, "jet", "relative"),
                  charts.weight_distribution(result.blocks)):
        validated = chart.to_dict()  # raises when the specification breaks the Vega-Lite schema
        assert vega_lite(chart) == {k: v for k, v in validated.items() if k != "config"}  # Streamlit sizes the chart


def test_the_page_cache_keys_pictures_by_their_values_and_settings(result):
    from cbam_viz.app import pictures

    view, values = result.view, result.block("layer2.0").spatial_map
    style = dict(cmap="jet", opacity=0.5, smooth=True, scale="relative")

    def jpeg(m, **change):
        return pictures.overlays_jpeg(view, (m,), **{**style, **change})[0]

    assert jpeg(values) == overlays.encode_jpeg(overlays.overlay(view, values, **style))
    for change in ({"cmap": "gray"}, {"opacity": 0.25}, {"smooth": False}, {"scale": "absolute"}):
        assert jpeg(values, **change) != jpeg(values)
    other = 1.0 - values  # another map of the same shape is another picture
    assert jpeg(other) != jpeg(values)
    assert pictures.overlays_jpeg(view, (values, other), **style) == [jpeg(values), jpeg(other)]  # one per map, in order
    assert pictures.spatial_map(jpeg(other), other, "jet", "relative", 384) != pictures.spatial_map(jpeg(values), values, "jet", "relative", 384)
    weights = result.block("layer2.0").channel_weights
    rows, spec = pictures.channel_bars(weights, True, 3, "bars")
    assert rows == tables.channel_rows(weights, True, 3) and spec == pictures.channel_bars(weights, True, 3, "bars")[1]
    assert pictures.channel_bars(weights, True, 4, "bars")[1] != spec


def test_figures_are_png_and_svg_with_colour_bars_in_real_values(result):
    block = result.block("layer3.1")
    fig = figures.block_figure(result.view, block, top_k=3)
    colourbar = fig.axes[-1]
    assert colourbar.get_ylim() == pytest.approx(overlays.value_range(block.spatial_map, "relative"))
    assert figures.figure_bytes(fig, "png").startswith(b"\x89PNG")
    svg = figures.figure_bytes(fig, "svg").decode()
    assert svg.lstrip().startswith("<?xml") and "channel weight Mc" in svg and "layer3.1: spatial map Ms (8x8)" in svg
    grid = figures.grid_figure(result)
    assert sum(1 for ax in grid.axes if ax.images) == 8
    with pytest.raises(ValueError, match="png"):
        figures.figure_bytes(fig, "gif")


def test_exports(result):
    weights = result.block("layer1.0").channel_weights
    frame = tables.channel_rows(weights, sort=True, top_k=3)
    assert [r["rank"] for r in frame] == list(range(1, len(weights) + 1)) and sum(r["top_k"] for r in frame) == 3
    assert [r["weight"] for r in frame] == sorted(weights.astype(float), reverse=True)
    rows = tables.channel_csv(frame).splitlines()
    assert rows[0] == "channel,weight,rank,top_k" and len(rows) == 1 + len(frame)
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(len(frame)))  # channel order, not rank order
    assert [float(r.split(",")[1]) for r in rows[1:]] == weights.astype(float).tolist()  # every digit kept
    data = json.loads(tables.predictions_json(result, {"order": "parallel"}))
    assert data["configuration"]["order"] == "parallel" and len(data["predictions"]) == 5


def test_no_spatial_attention_is_said_plainly(image):
    torch.manual_seed(0)
    channel_only = cbam_resnet18(CBAMConfig(attention="channel"), stem="cifar", width=0.25, num_classes=10).eval()
    result = analyse(channel_only, image, CARD)
    assert result.spatial_stages() == {}
    with pytest.raises(ValueError, match="no spatial attention"):
        figures.grid_figure(result)


@pytest.mark.parametrize("delta,text", [(0.0123, "+1.2"), (-0.2, "-20.0"), (-0.0004, "0.0"),
                                        (0.0004, "0.0"), (0.0, "0.0")])
def test_points_are_signed_and_never_negative_zero(delta, text):
    assert tables.points(delta) == text

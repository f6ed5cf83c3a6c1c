"""The Streamlit app, driven headless by AppTest against a small trained family made by the tests."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

import cbam_viz.models.imagenet
from cbam_viz.app.images import markdown_text
from cbam_viz.explain.classroom import CHANNEL_FORMULA, ORDER_FORMULAS, SPATIAL_FORMULA, reference_cbam512
from cbam_viz.models.weights import MAX_WEIGHTS_BYTES

from .conftest import BLOCKS, CLASSES

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


@pytest.fixture
def app(app_family, monkeypatch):
    monkeypatch.setenv("CBAM_VIZ_FAMILY", str(app_family))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def prediction_rows(at) -> list[dict]:
    """The top-5 table (Markdown) as dicts keyed by its header."""
    table = next(m.value for m in at.markdown if m.value.startswith("| rank | class | probability"))
    header, _, *rows = [[c.strip() for c in line.strip("|").split(" | ")] for line in table.splitlines()]
    return [dict(zip(header, r)) for r in rows]


def predictions(at):
    return [[r["class"], r["probability"]] for r in prediction_rows(at)]


def model_name(at):
    return next(m.value for m in at.markdown if m.value.startswith("**") and ":" in m.value).split("**")[1]


def png(colour, size=(40, 30)):
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def test_first_screen_is_a_sample_already_analysed(app, app_family):
    assert not app.error
    assert len(predictions(app)) == 3  # the tiny family has 3 classes
    assert list(prediction_rows(app)[0]) == ["rank", "class", "probability"]  # no change column: nothing to compare
    assert model_name(app) == "channel-first-k7-r16"
    assert app.selectbox(key="block").value == "layer4.1"
    captions = [c.value for c in app.caption]
    assert any(c.startswith("layer4.1: spatial map Ms (4x4)") for c in captions)  # 32 px input: 4x4 in the last stage
    block = next(c for c in captions if c.startswith("layer4.1: spatial map Ms"))
    assert "Values 0." in block  # the map's actual range beside it
    grid = [c for image in app.image for c in image.captions if c.startswith("layer")]
    assert [c.split(" (")[0] for c in grid] == BLOCKS  # every block, one row per stage
    assert "what it received: 32x32 pixels" in [c for image in app.image for c in image.captions]
    charts = app.get("vega_lite_chart")
    assert len(charts) == 3  # the channel bars, the spatial map with its values, every block's weights
    card = json.loads((app_family / "channel-first-k7-r16.json").read_text())
    facts = next(m.value for m in app.markdown if "test images**" in m.value)
    assert f"**{card['metrics']['test_top1']:.2f}% top-1 on {card['metrics']['test_images']:,} test images**" in facts
    assert f"the image alone: {card['metrics']['test_top1_single_view']:.2f}%" in facts and "FLOPs at 32 px per pass" in facts


def test_a_flat_map_says_so_in_both_scales_with_the_blocks_usual_spread(app_family, tmp_path, monkeypatch):
    import shutil

    from cbam_viz.models.cards import read_card, write_card
    from cbam_viz.models.weights import read_weights, save_weights
    from cbam_viz.training.evaluate import test_statistics
    from cbam_viz.models.registry import Family, key_of

    family = tmp_path / "family"
    shutil.copytree(app_family, family)
    card = read_card(family / "channel-first-k7-r16.json")
    state = read_weights(family / card["weights"]["file"])
    for name in [n for n in state if n.endswith("spatial.conv.weight")]:  # every spatial map all but constant
        state[name] = state[name] * 1e-4
    card["weights"]["sha256"] = save_weights(family / card["weights"]["file"], state)
    write_card(family / "channel-first-k7-r16.json", card)
    model, card = Family(family).load(key_of(card))
    images = np.random.default_rng(0).integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    card["attention_statistics"] = test_statistics(model, images, card["preprocessing"]["mean"], card["preprocessing"]["std"])
    write_card(family / "channel-first-k7-r16.json", card)

    monkeypatch.setenv("CBAM_VIZ_FAMILY", str(family))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    for scale in ("relative", "absolute"):
        at.radio(key="scale").set_value(scale).run()
        assert not at.exception and not at.error
        block = next(c.value for c in at.caption if c.value.startswith("layer4.1: spatial map Ms"))
        assert "Values 0.5000 to 0.500" in block and ". Nearly flat: every position gets almost the same weight" in block
        assert "Over 6 test images this block's maps usually span" in block and "100% of them are nearly flat" in block
        grid = [c for image in at.image for c in image.captions if c.startswith("layer")]
        assert len(grid) == len(BLOCKS) and all("Nearly flat" in c for c in grid)


def test_upload_is_analysed(app):
    before = predictions(app)
    assert not any("knows only" in i.value for i in app.info)  # a gallery image: no note
    app.radio(key="source").set_value("upload").run()
    app.file_uploader(key="upload").set_value(("red.png", png((230, 10, 10)), "image/png")).run()
    assert not app.exception and not app.error
    after = predictions(app)
    assert after != before and after[0][0] == "red"
    note = next(i.value for i in app.info if "knows only" in i.value)
    assert "knows only 3 classes (blue, green, red)" in note and "ImageNet" in note
    captions = [c for image in app.image for c in image.captions]
    assert "what it received: 32x32 pixels" in captions and "the region the model saw" in captions


def test_bad_upload_shows_an_error_and_the_app_keeps_working(app):
    app.radio(key="source").set_value("upload").run()
    app.file_uploader(key="upload").set_value(("photo.png", b"PK\x03\x04 not really a png", "image/png")).run()
    assert not app.exception
    assert any("ZIP archive" in e.value for e in app.error)
    assert len(predictions(app)) == 3  # the gallery image is analysed instead
    app.file_uploader(key="upload").set_value(("ok.png", png((10, 10, 230)), "image/png")).run()
    assert not app.error and predictions(app)[0][0] == "blue"
    # types a browser filter would have rejected silently reach the app, which says why in the page
    icon = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(icon, format="ICO")
    for name, data, message in [("logo.ico", icon.getvalue(), "ICO images are not supported"),
                                ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG drawing"),
                                ("notes.pdf", b"%PDF-1.7\n%%EOF\n", "PDF document")]:
        app.file_uploader(key="upload").set_value((name, data, "application/octet-stream")).run()
        errors = [e.value for e in app.error]
        shown = markdown_text(name)  # as typed, whatever Markdown would make of it
        assert not app.exception and any(e.startswith(f"{shown}: ") and message in e for e in errors), errors
        assert any("Showing the gallery image instead" in e for e in errors) and len(predictions(app)) == 3


@pytest.mark.parametrize("control,key,value,expected", [
    ("selectbox", "order", "spatial-first", "spatial-first-k7-r16"),
    ("selectbox", "order", "parallel", "parallel-k7-r16"),
    ("selectbox", "kernel", 3, "channel-first-k3-r16"),
    ("selectbox", "ratio", 8, "channel-first-k7-r8"),
    ("toggle", "sa", False, "channel-only-r16"),
    ("toggle", "ca", False, "spatial-only-k7"),
])
def test_each_control_loads_its_variant_and_changes_the_numbers(app, control, key, value, expected):
    before = predictions(app)
    getattr(app.sidebar, control)(key=key).set_value(value).run()
    assert not app.exception and not app.error
    assert model_name(app) == expected
    assert predictions(app) != before
    changes = [r["change (pts)"] for r in prediction_rows(app)]
    assert any(c != "0.0" for c in changes)
    assert any("since channel-first-k7-r16-twin, trained like-for-like, on the same image" in c.value for c in app.caption)
    app.sidebar.selectbox(key="cmap").set_value("viridis").run()  # a display change keeps the comparison
    assert [r["change (pts)"] for r in prediction_rows(app)] == changes
    sample = app.selectbox(key="sample")
    sample.set_value("horse" if sample.value != "horse" else "coffee").run()  # a new image starts afresh
    assert "change (pts)" not in prediction_rows(app)[0]


def test_configurations_compare_like_with_like(app, app_family):
    assert model_name(app) == "channel-first-k7-r16"  # the end-to-end canonical model is the default view
    app.sidebar.selectbox(key="order").set_value("spatial-first").run()
    assert not app.exception and not app.error and model_name(app) == "spatial-first-k7-r16"
    assert any("trained like-for-like only" in c.value for c in app.sidebar.caption)
    # the change is measured from the canonical configuration's like-for-like twin, not the end-to-end model
    assert any(c.value.startswith("change (pts): in percentage points since channel-first-k7-r16-twin, trained "
                                  "like-for-like") for c in app.caption)
    app.sidebar.selectbox(key="order").set_value("channel-first").run()
    assert model_name(app) == "channel-first-k7-r16"  # end-to-end again: spatial-first has no such twin
    assert "change (pts)" not in prediction_rows(app)[0]
    assert any(c.value.startswith("No change column: the previous model (spatial-first-k7-r16) was trained "
                                  "like-for-like") for c in app.caption)
    app.sidebar.selectbox(key="cmap").set_value("gray").run()  # a display change keeps the note
    assert any(c.value.startswith("No change column") for c in app.caption)
    app.session_state["configurations_panel"] = True  # the table of every configuration is drawn while open
    app.sidebar.radio(key="protocol").set_value("like-for-like").run()
    assert model_name(app) == "channel-first-k7-r16-twin"
    table = next(m.value for m in app.markdown if m.value.startswith("| variant | trained | test top-1 %"))
    rows = {r.split(" | ")[0].strip("| ").removesuffix(" (shown)"): r for r in table.splitlines()[2:]}
    assert set(rows) == {json.loads(p.read_text())["name"] for p in app_family.glob("*.json")}
    assert "channel-first-k7-r16-twin (shown)" in rows["channel-first-k7-r16-twin"]
    plain = json.loads((app_family / "plain.json").read_text())["metrics"]["test_top1"]
    twin = json.loads((app_family / "channel-first-k7-r16-twin.json").read_text())["metrics"]["test_top1"]
    assert f"| like-for-like | {twin:.2f} | {twin - plain:+.2f} |" in rows["channel-first-k7-r16-twin"]
    assert rows["plain"].endswith("|  |")  # nothing to compare the plain network with


def test_step_through_and_knockouts_run_on_the_image_shown(app, app_family):
    app.session_state["steps"] = True
    app.selectbox(key="block").set_value("layer2.0").run()
    assert not app.exception and not app.error
    titles = [json.loads(c.proto.spec).get("title") for c in app.get("vega_lite_chart")]
    assert sorted(t for t in titles if t and t[0].isdigit()) == ["1. descriptors: AvgPool and MaxPool", "2. shared MLP, hidden layer after ReLU",
                          "3. the MLP's two outputs and their sum", "4. sigmoid of the sum: the weights Mc"]
    steps = [c for image in app.image for c in image.captions if c[:2] in ("1.", "2.", "3.", "4.", "5.")]
    assert [c.split(":")[0] for c in steps] == ["1. channel mean", "1. channel max", "2. kernel, mean plane",
                                               "2. kernel, max plane", "3. convolution", "4. before the sigmoid", "5. Ms"]
    assert any(m.value.startswith("**Refined output** = input x Mc x Ms") for m in app.markdown)
    app.session_state["steps"] = False
    app.session_state["knockouts"] = True
    app.run()
    assert not app.exception and not app.error
    app.selectbox(key="knockout").set_value("spatial-one").run()
    app.radio(key="knockout_scope").set_value("every").run()
    tables = [m.value for m in app.markdown if m.value.startswith("| block | probability | drop (pts)")]
    assert len(tables) == 1 and len(tables[0].splitlines()) == 2 + len(BLOCKS)  # one row per block of the tiny family
    assert any(m.value.startswith(f"**Top-5 with the knock-out** ({len(BLOCKS)} block(s))") for m in app.markdown)
    app.selectbox(key="knockout").set_value("keep-top").run()
    assert app.number_input(key="knockout_k").value == 10 and not app.exception
    app.session_state["knockouts"] = False
    app.session_state["gradcam"] = True
    app.run()
    assert not app.exception and not app.error
    captions = [c for image in app.image for c in image.captions]
    assert any(c.startswith("Grad-CAM for ") and "at layer2.0's output" in c for c in captions)
    assert any(m.value.startswith("Rank correlation (Spearman) of the two maps: **") for m in app.markdown)
    app.radio(key="cam_method").set_value("gradcam++").run()
    app.selectbox(key="cam_class").set_value(1).run()
    assert any(c.startswith("Grad-CAM++ for green at layer2.0") for image in app.image for c in image.captions)


def faithfulness_checks(app, maps):
    """Open the faithfulness panel, run both heavy jobs on the image shown; the chart titles drawn."""
    app.session_state["faithful"] = True
    app.run()
    app.multiselect(key="faithful_maps").set_value(maps).run()
    app.button(key="run-curves").click().run()
    app.button(key="run-cascade").click().run()
    assert not app.exception and not app.error and not app.warning
    return [json.loads(c.proto.spec).get("title") for c in app.get("vega_lite_chart")]


def test_faithfulness_curves_and_randomisation_check(app):
    titles = faithfulness_checks(app, ["Ms", "Grad-CAM", "random"])
    assert "Deletion: most-attended pixels removed first" in titles and "Insertion: most-attended pixels revealed first" in titles
    assert "spatial maps Ms: rank correlation with the original model's" in titles
    areas = next(m.value for m in app.markdown if m.value.startswith("| map | deletion area"))
    assert [r.split(" | ")[0].strip("| ") for r in areas.splitlines()[2:]] == ["Ms", "Grad-CAM", "random"]
    app.select_slider(key="cascade_step").set_value(app.select_slider(key="cascade_step").options[-1]).run()
    captions = [c for image in app.image for c in image.captions]
    assert any(c.startswith(f"{app.selectbox(key='block').value} with the gates randomised from the last block down to") for c in captions)
    app.radio(key="cascade_what").set_value("channel weights Mc").run()
    assert not app.exception
    from cbam_viz.app.resources import job_slots
    assert job_slots().running() == 0  # every slot given back


def test_side_by_side_configuration_image_and_knockout(app):
    app.session_state["compare"] = True
    app.selectbox(key="block").set_value("layer2.0").run()
    assert not app.exception and not app.error
    chosen = app.selectbox(key="compare_variant").value  # another configuration with both gates
    assert chosen.attention == "both" and chosen.protocol == "like-for-like"  # the tiny family's only other e2e is plain
    assert any(c.value.startswith("Trained differently (end-to-end here, like-for-like there)") for c in app.caption)
    titles = [m.value for m in app.markdown if m.value.startswith("**This view: ")]
    assert len(titles) == 1 and " on " in titles[0]
    agreement = next(m.value for m in app.markdown if m.value.startswith("| block | channel weights r | spatial maps r"))
    assert len(agreement.splitlines()) == 2 + len(BLOCKS)  # every block of the tiny family
    assert any(c.startswith("Difference at layer2.0, right minus left") for i in app.image for c in i.captions)
    app.radio(key="compare_with").set_value("image").run()
    assert not app.exception and not app.error
    assert any(m.value.startswith("**channel-first-k7-r16 on ") for m in app.markdown)
    app.radio(key="compare_with").set_value("knockout").run()
    app.selectbox(key="compare_knockout").set_value("spatial-one").run()
    assert not app.exception and not app.error
    rows = next(m.value for m in app.markdown if m.value.startswith("| block | channel weights r")).splitlines()[2:]
    cells = {r.split(" | ")[0].strip("| "): r.strip("| ").split(" | ")[1:] for r in rows}
    assert cells["layer1.0"] == ["+1.000", "+1.000"]  # before the knocked-out block: the same attention
    assert cells["layer2.0"][1] == "n/a"  # Ms := 1 is constant: no correlation
    assert any("Ms := 1 (spatial gate off) in layer2.0" in m.value for m in app.markdown)


def channel_page(root: str, block: str, channel: int) -> None:
    """The channel drill-down alone, for the canonical model of the family at ``root`` on a red image
    (a click on a bar is the browser's; this is what it draws)."""
    import io as io_

    from PIL import Image as Image_

    from cbam_viz.app.channel_panel import channel_drilldown
    from cbam_viz.app.resources import analysed, member
    from cbam_viz.app.view import View
    from cbam_viz.models.registry import VariantKey

    buf = io_.BytesIO()
    Image_.new("RGB", (40, 30), "red").save(buf, format="PNG")
    card, model_id, load = member(root, VariantKey())
    result = analysed(model_id, buf.getvalue(), root, card, load)
    channel_drilldown(View(card, model_id, load, "red", buf.getvalue(), result), root, block, channel, "viridis")


def test_channel_drilldown_feature_maps_and_test_images(app_family, tiny_dataset, monkeypatch):
    from cbam_viz.explain.channel_images import ChannelImages

    monkeypatch.setenv("CBAM_VIZ_TEST_SPLIT", str(tiny_dataset / "test"))
    at = AppTest.from_function(channel_page, args=(str(app_family), "layer2.0", 1), default_timeout=120).run()
    assert not at.exception and not at.error
    assert any(m.value.startswith("**Inside channel 1 of layer2.0**") for m in at.markdown)
    captions = [c for image in at.image for c in image.captions]
    assert any("by the channel's weight (0." in c.value for c in at.caption)
    assert captions[0].startswith("before the gates: ") and captions[1].startswith("after (x Mc x Ms): ")
    shipped = ChannelImages(app_family / "channel-first-k7-r16.channels.npz").examples("layer2.0", 1)
    assert captions[2:] == [f"{sorted(CLASSES)[e.label]}, weight {e.weight:.3f}" for e in shipped]
    assert [e.weight for e in shipped] == sorted((e.weight for e in shipped), reverse=True)
    monkeypatch.setenv("CBAM_VIZ_TEST_SPLIT", str(tiny_dataset / "elsewhere"))  # no test split on this server
    at = AppTest.from_function(channel_page, args=(str(app_family), "layer2.0", 1), default_timeout=120).run()
    assert len(at.image) == 2 and any("not drawn: the CIFAR-10 test split is not at" in c.value for c in at.caption)
    assert any(f"`test/{shipped[0].file}`" in m.value for m in at.markdown)


def test_class_profiles_shipped_and_of_uploaded_images(app, app_family):
    from cbam_viz.explain.channel_images import ChannelImages

    app.session_state["profiles"] = True
    app.run()
    assert not app.exception and not app.error
    titles = [json.loads(c.proto.spec).get("title") for c in app.get("vega_lite_chart")]
    assert "How class-specific each block's channel weights are" in titles
    assert f"{app.selectbox(key='block').value}: mean channel weights per class" in titles
    shipped = ChannelImages(app_family / "channel-first-k7-r16.channels.npz").profiles()
    assert any(f"over {int(shipped.counts.sum()):,} test images" in c.value for c in app.caption)
    app.radio(key="profiles_source").set_value("my images").run()
    files = [(f"{c}.png", png(rgb), "image/png") for c, rgb in [("r", (230, 10, 10)), ("g", (10, 230, 10)),
                                                                 ("b", (10, 10, 230))]]
    app.file_uploader(key="profile_files").set_value([*files, ("broken.png", b"nope", "image/png")]).run()
    app.button(key="run-profiles").click().run()
    assert not app.exception and not app.error
    assert any(w.value.startswith("broken.png: This file is not an image file") for w in app.warning)
    assert any("over 3 uploaded images, grouped by predicted class" in c.value for c in app.caption)
    assert app.get("download_button")


def test_both_gates_off_is_the_plain_baseline(app):
    app.selectbox(key="block").set_value("layer2.0").run()
    app.sidebar.toggle(key="ca").set_value(False).run()
    app.sidebar.toggle(key="sa").set_value(False).run()
    assert model_name(app) == "plain" and any("without attention" in i.value for i in app.info)
    facts = next(m.value for m in app.markdown if "test images**" in m.value)
    assert "mirror image" in facts and "attention shown" not in facts  # nothing to show: no word about it
    app.sidebar.toggle(key="ca").set_value(True).run()  # back to a model with blocks: the chosen block again
    assert app.selectbox(key="block").value == "layer2.0"


def test_classroom_panel_is_drawn_when_opened(app, app_family):
    assert not app.latex  # closed: not drawn, so the first page loads no formula renderer
    app.session_state["classroom"] = True
    app.sidebar.selectbox(key="order").set_value("spatial-first").run()
    assert [f.value.strip("$\n") for f in app.latex] == [CHANNEL_FORMULA, SPATIAL_FORMULA, ORDER_FORMULAS["spatial-first"]]
    figures = next(m.value for m in app.markdown if "**Reference**" in m.value)
    ref = reference_cbam512()
    assert (ref["params"], ref["flops"]) == (32_866, 95_938)  # the figures, computed
    assert f"has {ref['params']:,} parameters and {ref['flops']:,} FLOPs" in figures
    card = json.loads((app_family / "spatial-first-k7-r16.json").read_text())
    cx = card["complexity"]
    assert f"{cx['params']:,} parameters, of which {cx['attention_params']:,} in CBAM" in figures
    assert f"**Accuracy** (model card): {card['metrics']['test_top1']:.2f}% top-1" in figures
    paper = next(m.value for m in app.markdown if m.value.startswith("| choice | ours: test top-1 % | the paper |"))
    spatial_first = [json.loads((app_family / f"spatial-first-k{k}-r16.json").read_text())["metrics"]["test_top1"]
                     for k in (3, 7)]  # the family's like-for-like spatial-first variants
    assert f"| order: spatial-first | {sum(spatial_first) / 2:.2f} (mean of 2) | Table 3: slightly worse" in paper
    app.button(key="formula-channel").click().run()  # each formula links to its computation on this image
    assert app.session_state["steps"] and any(
        json.loads(c.proto.spec).get("title") == "4. sigmoid of the sum: the weights Mc" for c in app.get("vega_lite_chart"))
    app.session_state["classroom"] = False
    app.session_state["steps"] = False
    assert not app.run().latex


def test_card_tables_are_drawn_when_opened(app, app_family):
    def table(start):
        return next((m.value for m in app.markdown if m.value.startswith(start)), None)

    assert table("| variant | trained |") is None and table("| class | top-1 % |") is None  # closed: not sent
    app.session_state["training_panel"] = True
    app.run()
    card = json.loads((app_family / "channel-first-k7-r16.json").read_text())
    for c, a in zip(card["classes"], card["metrics"]["test_per_class_top1"]):
        assert f"| {c} | {a:.1f} |" in table("| class | top-1 % |")
    how = table("end-to-end: every parameter trained")
    assert "4 epoch(s) of" in how and "min of training and evaluation on" in how  # from the card
    app.session_state["training_panel"] = False
    assert table("| class | top-1 % |") is not None and app.run() and table("| class | top-1 % |") is None


def test_untrained_configuration_lists_what_exists(app):
    app.sidebar.selectbox(key="ratio").set_value(32).run()
    assert not app.exception
    message = app.error[0].value
    assert "channel-first, k=7, r=32" in message and "spatial-first, k=3, r=16" in message


def test_view_is_restored_from_the_url(app_family, monkeypatch):
    monkeypatch.setenv("CBAM_VIZ_FAMILY", str(app_family))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"order": "parallel", "block": "layer2.0", "cmap": "viridis", "opacity": "0.8",
                            "sample": "horse", "kernel": "5"})  # 5 is not offered: falls back to 7
    at.run()
    assert not at.exception
    assert at.selectbox(key="order").value == "parallel" and model_name(at) == "parallel-k7-r16"
    assert at.selectbox(key="block").value == "layer2.0" and at.selectbox(key="cmap").value == "viridis"
    assert at.slider(key="opacity").value == 0.8 and at.selectbox(key="sample").value == "horse"
    assert at.selectbox(key="kernel").value == 7
    assert at.query_params["order"] == ["parallel"] or at.query_params["order"] == "parallel"


def test_lesson_mode_and_predict_then_reveal_from_the_url(app_family, monkeypatch):
    monkeypatch.setenv("CBAM_VIZ_FAMILY", str(app_family))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update({"lesson": "1", "reveal": "1", "block": "layer2.0"})
    at.run()
    assert not at.exception and at.toggle(key="lesson").value and at.toggle(key="reveal").value
    assert not at.main.title and any("font-size" in h.proto.body for h in at.get("html"))  # projector layout
    assert at.image[0].captions == ["the region the model saw"]  # beside the block's bars and map
    hidden = lambda: not any(m.value.startswith("| rank | class | probability") for m in at.markdown)  # noqa: E731
    assert hidden() and not at.get("download_button") and at.button(key="reveal_button")
    assert not any(e.label.startswith("Side by side") for e in at.expander)
    at.button(key="reveal_button").click().run()
    assert not hidden() and len(predictions(at)) == 3 and at.get("download_button")  # the tiny family: 3 classes
    at.selectbox(key="sample").set_value("horse").run()  # a new image: predict again
    assert hidden()
    assert at.query_params["lesson"] in (["1"], "1") and at.query_params["reveal"] in (["1"], "1")
    at.toggle(key="reveal").set_value(False).run()
    assert not hidden() and not at.exception


@pytest.fixture
def imagenet_checkpoint(tmp_path):
    pytorchcv = pytest.importorskip("pytorchcv.model_provider")
    torch.manual_seed(0)
    path = tmp_path / "cbam_resnet18_pytorchcv.pth"
    model = pytorchcv.get_model("cbam_resnet18", pretrained=False)
    with torch.no_grad():
        model.output.weight.mul_(30)  # random weights give near-uniform outputs; make them decisive, not saturated
    torch.save(model.state_dict(), path)
    return path


def test_imagenet_model_from_a_local_file_with_order_what_if(app, imagenet_checkpoint, monkeypatch):
    app.sidebar.selectbox(key="kernel").set_value(3).run()
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_DIR", str(imagenet_checkpoint.parent))
    app.sidebar.radio(key="model").set_value("imagenet").run()
    app.sidebar.radio(key="weights_source").set_value("path").run()
    app.sidebar.text_input(key="weights_path").input(imagenet_checkpoint.name).run()
    assert not app.exception and not app.error
    assert len(predictions(app)) == 5
    assert "change (pts)" not in prediction_rows(app)[0]  # ImageNet classes are not compared with CIFAR-10's
    kernel, ratio = app.sidebar.selectbox(key="imagenet_kernel"), app.sidebar.selectbox(key="imagenet_ratio")
    assert kernel.disabled and ratio.disabled  # showing the ImageNet model's values, not the family's last choice
    assert (kernel.value, ratio.value) == (7, 16)
    assert any("not measured" in m.value for m in app.markdown)
    titles = faithfulness_checks(app, ["Ms"])  # the lesson's heavy checks on the ResNet-50 too
    assert "Deletion: most-attended pixels removed first" in titles and len(app.select_slider(key="cascade_step").options) == 8 + 1  # pytorchcv CBAM-ResNet-18
    app.session_state["faithful"] = False
    app.session_state["compare"] = True
    app.run()
    assert app.radio(key="compare_with").options == ["another image", "a knock-out of this model"]  # no family here
    app.radio(key="compare_with").set_value("knockout").run()
    assert not app.exception and not app.error
    assert any(m.value.startswith("| block | channel weights r | spatial maps r") for m in app.markdown)
    app.session_state["compare"] = False
    before = predictions(app)
    app.sidebar.selectbox(key="order").set_value("parallel").run()
    assert any("Untrained combination" in w.value for w in app.sidebar.warning)
    assert predictions(app) != before
    app.sidebar.selectbox(key="order").set_value("channel-first").run()
    app.sidebar.radio(key="model").set_value("cifar10").run()
    assert app.sidebar.selectbox(key="kernel").value == 3 and model_name(app) == "channel-first-k3-r16"  # back as it was


def test_every_lesson_panel_on_the_imagenet_resnet50(app, tmp_path, monkeypatch):
    """The lesson panels on a random-weight CBAM-ResNet-50 checkpoint in pytorchcv's format (16 blocks, 224 px)."""
    pytorchcv = pytest.importorskip("pytorchcv.model_provider")
    torch.manual_seed(0)
    model = pytorchcv.get_model("cbam_resnet50", pretrained=False)
    with torch.no_grad():
        model.output.weight.mul_(30)
    torch.save(model.state_dict(), tmp_path / "cbam_resnet50.pth")
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_DIR", str(tmp_path))
    app.default_timeout = 600
    app.sidebar.radio(key="model").set_value("imagenet").run()
    app.sidebar.radio(key="weights_source").set_value("path").run()
    app.sidebar.text_input(key="weights_path").input("cbam_resnet50.pth").run()
    app.selectbox(key="block").set_value("layer3.1").run()
    for panel in ("steps", "knockouts", "gradcam"):
        app.session_state[panel] = True
    app.run()
    assert not app.exception and not app.error
    assert any(m.value.startswith("**Refined output** = input x Mc x Ms") for m in app.markdown)
    table = next(m.value for m in app.markdown if m.value.startswith("| block | probability | drop (pts)"))
    assert len(table.splitlines()) == 2 + 16  # one row per block of the ResNet-50
    assert any(c.startswith("Grad-CAM for ") and "at layer3.1's output (14x14)" in c for i in app.image for c in i.captions)
    for panel in ("steps", "knockouts", "gradcam"):
        app.session_state[panel] = False
    titles = faithfulness_checks(app, ["Ms"])
    assert "Deletion: most-attended pixels removed first" in titles and len(app.select_slider(key="cascade_step").options) == 17
    app.session_state["faithful"] = False
    app.session_state["compare"] = True
    app.run()
    app.radio(key="compare_with").set_value("knockout").run()
    app.radio(key="compare_scope").set_value("every").run()
    agreement = next(m.value for m in app.markdown if m.value.startswith("| block | channel weights r | spatial maps r"))
    assert len(agreement.splitlines()) == 2 + 16 and not app.exception


def test_imagenet_bad_file_and_offline_download(app, tmp_path, monkeypatch):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    app.sidebar.radio(key="model").set_value("imagenet").run()
    assert app.sidebar.radio(key="weights_source").options == ["download"]  # the server's default: no paths, no uploads
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_DIR", str(tmp_path))
    app.run()
    assert any("offline" in i.value for i in app.info)
    assert [t.value for t in app.main.title] == ["What does CBAM attend to?"]
    assert [r.key for r in app.sidebar.radio][:2] == ["model", "weights_source"]  # the source sits under the model
    app.sidebar.radio(key="weights_source").set_value("path").run()
    app.sidebar.text_input(key="weights_path").input("bad.pth").run()
    assert not app.exception and "cannot be used" in app.error[0].value
    app.sidebar.text_input(key="weights_path").input("/etc/passwd").run()
    assert not app.exception and "outside the weights folder" in app.sidebar.error[0].value
    monkeypatch.setattr(cbam_viz.models.imagenet, "CBAM_RESNET50", cbam_viz.models.imagenet.CBAM_RESNET50.__class__(
        "x", "http://127.0.0.1:9/w.pth.zip", "w.pth", "sha1:" + "0" * 40, "a server that is down"))
    monkeypatch.setattr(cbam_viz.models.imagenet, "IMAGENET_CACHE", tmp_path / "cache")
    app.sidebar.radio(key="weights_source").set_value("download").run()
    app.sidebar.button(key="download").click().run()
    assert not app.exception
    assert any("may be offline" in e.value for e in app.sidebar.error)
    assert not app.get("progress")  # the failed download's bar is gone
    app.sidebar.radio(key="model").set_value("cifar10").run()
    assert not app.error and len(predictions(app)) == 3, [e.value for e in app.error]


def test_imagenet_weights_from_strangers_get_clear_messages(app, app_family, tmp_path, monkeypatch):
    """Truncated, wrong-format, wrong-architecture and oversized files: a message, never a traceback."""
    import cbam_viz.models.weights

    truncated = tmp_path / "cut.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    image = tmp_path / "holiday.pth"
    image.write_bytes(png("red"))
    cifar = tmp_path / "cifar.safetensors"  # a CIFAR-10 model: 3 classes, not 1000
    cifar.write_bytes((app_family / "channel-first-k7-r16.safetensors").read_bytes())
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_DIR", str(tmp_path))
    cases = [(truncated, "not a readable PyTorch checkpoint"), (image, "it is a PNG image"),
             (cifar, "a CBAM-ResNet-18 for 32 px images (3 classes)")]
    app.sidebar.radio(key="model").set_value("imagenet").run()
    app.sidebar.radio(key="weights_source").set_value("path").run()
    for path, message in cases:
        app.sidebar.text_input(key="weights_path").input(path.name).run()
        assert not app.exception and message in app.error[0].value, (path.name, [e.value for e in app.error])
    monkeypatch.setattr(cbam_viz.models.weights, "MAX_WEIGHTS_BYTES", 1024)
    app.sidebar.text_input(key="weights_path").input(cifar.name).run()
    assert not app.exception and "over the 1.0 KiB limit for weights files" in app.error[0].value
    app.sidebar.radio(key="model").set_value("cifar10").run()
    assert not app.error and len(predictions(app)) == 3, [e.value for e in app.error]


def test_imagenet_checkpoint_upload_is_stored_once_and_used(app, imagenet_checkpoint, monkeypatch):
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_DIR", str(imagenet_checkpoint.parent))
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_UPLOAD", "1")
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_UPLOAD_MB", "1")
    app.sidebar.radio(key="model").set_value("imagenet").run()
    app.sidebar.radio(key="weights_source").set_value("path").run()
    app.sidebar.text_input(key="weights_path").input(imagenet_checkpoint.name).run()
    from_path = predictions(app)
    app.sidebar.radio(key="weights_source").set_value("upload").run()
    data = imagenet_checkpoint.read_bytes()
    app.sidebar.file_uploader(key="weights_upload").set_value(("cbam18.pth", data, "application/octet-stream")).run()
    assert not app.exception and "over this server's 1.0 MiB limit for weights files" in app.sidebar.error[0].value
    monkeypatch.setenv("CBAM_VIZ_WEIGHTS_UPLOAD_MB", "64")  # the server's limit raised: the upload goes through
    app.run()
    app.sidebar.file_uploader(key="weights_upload").set_value(("cbam18.pth", data, "application/octet-stream")).run()
    assert not app.exception and not app.error
    assert predictions(app) == from_path
    stored = app.session_state["stored_upload"][1]
    app.sidebar.selectbox(key="cmap").set_value("gray").run()  # a rerun reuses the stored file
    assert app.session_state["stored_upload"][1] == stored and predictions(app) == from_path


def test_server_settings_as_streamlit_reads_them():
    """`streamlit config show` in the project folder (where `streamlit run` reads .streamlit/config.toml):
    no e-mail prompt to block the first start, no file watcher over the folder (and its .venv), the
    weights-file upload limit, a viewer's toolbar."""
    shown = subprocess.run([sys.executable, "-m", "streamlit", "config", "show"], cwd=Path(APP).parent,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for setting in ("showEmailPrompt = false", 'fileWatcherType = "none"', f"maxUploadSize = {MAX_WEIGHTS_BYTES // 2**20}",
                    'toolbarMode = "viewer"'):
        assert setting in shown, setting

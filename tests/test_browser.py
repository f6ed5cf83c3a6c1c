"""The app in a real browser: upload, change order and kernel, see predictions and overlay change.

Needs Debian's chromium and Playwright for Python; skipped with the reason where they are missing,
except when CBAM_VIZ_REQUIRE_BROWSER=1 (CI), where a missing browser fails the suite.
Screenshots go to test-output/browser/.
"""

import io
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .browser import (PREDICTIONS_JS, PREDICTIONS_TABLE, ROOT, browser_missing, change_and_wait, launch, start_server,
                      state, stop_server, wait_ready)

REASON = browser_missing()
if REASON and os.environ.get("CBAM_VIZ_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"browser tests are required here but cannot run: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
OUT = ROOT / "test-output" / "browser"


def download(page, label: str) -> bytes:
    """The file a download button gives. A button drawn by a script run that a newer run has replaced
    serves nothing (Streamlit drops its file), so a click that brings no file is tried once more."""
    for attempt in (1, 2):
        try:
            with page.expect_download(timeout=30_000) as file:
                page.get_by_role("button", name=label).click()
            return Path(file.value.path()).read_bytes()
        except Exception:
            if attempt == 2:
                raise
            wait_ready(page)


@pytest.fixture
def weights_dir(tmp_path):
    """The server's folder of local ImageNet checkpoints (the only place it reads them from)."""
    folder = tmp_path / "weights"
    folder.mkdir()
    return folder


@pytest.fixture
def server(app_family, weights_dir):
    proc, url, _ = start_server({"CBAM_VIZ_FAMILY": str(app_family), "CBAM_VIZ_WEIGHTS_DIR": str(weights_dir)})
    yield url
    stop_server(proc)


def test_upload_then_order_and_kernel_change_predictions_and_overlay(server, tmp_path):
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    photo = tmp_path / "red.png"
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[..., 0] = 220
    pixels[10:30, 20:40] = (30, 30, 200)
    Image.fromarray(pixels).save(photo)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(server)
        wait_ready(page)
        first = state(page)
        assert first["model"] == "channel-first-k7-r16" and "%" in first["predictions"]
        page.screenshot(path=OUT / "1-first-screen.png", full_page=True)

        page.get_by_text("Upload", exact=True).click()
        page.locator('input[type="file"]').first.set_input_files(str(photo))
        page.wait_for_function("([table, before]) => (document.querySelector(table) || {}).innerText !== before",
                               arg=[PREDICTIONS_TABLE, first["predictions"]], timeout=60_000)
        wait_ready(page)
        uploaded = state(page)
        assert page.evaluate(PREDICTIONS_JS, PREDICTIONS_TABLE)[0][0] == "red"  # (class, probability) of the best row
        page.screenshot(path=OUT / "2-uploaded.png", full_page=True)

        ordered = change_and_wait(page, "Order", "spatial-first", "spatial-first-k7-r16", uploaded)
        assert ordered["predictions"] != uploaded["predictions"] and ordered["overlay"] != uploaded["overlay"]
        assert "change (pts)" in ordered["predictions"]  # the change since the last configuration is shown
        page.screenshot(path=OUT / "3-spatial-first.png", full_page=True)

        kernel = change_and_wait(page, "Spatial kernel size k", "3", "spatial-first-k3-r16", ordered)
        assert kernel["predictions"] != ordered["predictions"] and kernel["overlay"] != ordered["overlay"]
        page.screenshot(path=OUT / "4-kernel-3.png", full_page=True)

        # the channel bars: a click on a bar selects its channel, and the page says which
        bars = page.locator('[data-testid="stVegaLiteChart"]').first
        bars.scroll_into_view_if_needed()
        box = bars.bounding_box()
        selected = page.get_by_text("of layer4.1: weight")
        for fraction in (0.5, 0.45, 0.55, 0.35, 0.65, 0.25, 0.75):
            page.mouse.click(box["x"] + box["width"] * fraction, box["y"] + box["height"] * 0.72)
            try:
                selected.wait_for(timeout=5_000)
                break
            except Exception:
                continue
        assert selected.is_visible(), "clicking the channel bars selected no channel"
        wait_ready(page)  # the rerun the click started has finished
        page.screenshot(path=OUT / "4b-channel-selected.png", full_page=True)

        # exports: the figures are drawn when their button is clicked
        files = {}
        labels = ("Block figure (PNG)", "Block figure (SVG)", "Every block (PNG)", "Every block (SVG)",
                  "Channel weights (CSV)", "Configuration + predictions (JSON)")
        for label in labels:
            files[label] = download(page, label)
        for label in ("Block figure (PNG)", "Every block (PNG)"):
            assert Image.open(io.BytesIO(files[label])).size[0] > 600, label
        for label in ("Block figure (SVG)", "Every block (SVG)"):
            assert b"<svg" in files[label][:1000], label
        assert b"channel weight Mc" in files["Block figure (SVG)"]
        assert files["Channel weights (CSV)"].decode().startswith("channel,weight,rank,top_k")
        exported = json.loads(files["Configuration + predictions (JSON)"])
        assert exported["configuration"]["variant"] == "spatial-first-k3-r16"
        assert [p["class"] for p in exported["predictions"]][0] == "red"  # the tiny family has 3 classes: top-3

        # the classroom panel's block diagram keeps its three lines, in a monospace font
        page.get_by_text("How CBAM works (for the classroom)").click()
        diagram = page.locator('[data-testid="stCode"] code').first
        diagram.wait_for(timeout=30_000)
        assert diagram.inner_text().strip().count("\n") == 2 and "identity" in diagram.inner_text()
        assert "monospace" in diagram.evaluate("e => getComputedStyle(e).fontFamily")
        page.screenshot(path=OUT / "5-classroom.png", full_page=True)
        browser.close()


BUILT_IN = pytest.mark.skipif(not (ROOT / "assets" / "family" / "channel-first-k7-r16.json").exists(),
                              reason="the built-in family is not trained yet")


@contextmanager
def built_in_page(query: str, viewport: tuple[int, int] = (1400, 1500)):
    """A browser page on a server of the built-in family, opened at ``query`` and ready."""
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    proc, url, _ = start_server({"CBAM_VIZ_FAMILY": ""})
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
            page.goto(url + query)
            wait_ready(page)
            yield page
            browser.close()
    finally:
        stop_server(proc)


@BUILT_IN
def test_readme_screenshot_of_the_built_in_family():
    with built_in_page("/?block=layer2.0&opacity=0.55") as page:
        assert state(page)["model"] == "channel-first-k7-r16"
        page.screenshot(path=OUT / "readme.png", full_page=False)

def test_block_picker_stays_in_step_with_the_view(server, weights_dir):
    """Through the plain baseline (which has no picker) and to a network with other blocks (ResNet-50),
    the picker keeps showing the block whose maps and weights are drawn; ImageNet predictions are not
    compared with CIFAR-10 ones."""
    import torch
    from playwright.sync_api import sync_playwright

    pytorchcv = pytest.importorskip("pytorchcv.model_provider")
    checkpoint = weights_dir / "cbam_resnet50.pth"
    torch.manual_seed(0)
    torch.save(pytorchcv.get_model("cbam_resnet50", pretrained=False).state_dict(), checkpoint)
    picked = """() => Array.from(document.querySelectorAll('[data-testid="stSelectbox"]'))
        .find(e => e.textContent.includes('CBAM block')).querySelector('[role="combobox"]').value"""
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.goto(server)
        wait_ready(page)
        assert "layer4.1" in page.evaluate(picked)  # the last block of the family's CBAM-ResNet-18
        # through the plain baseline (no picker there) to spatial attention only: the picker comes back as it was
        for gate, model in (("Spatial", "channel-only-r16"), ("Channel", "plain"), ("Spatial", "spatial-only-k7")):
            page.get_by_text(gate, exact=True).click()
            page.wait_for_function("name => Array.from(document.querySelectorAll('strong'))"
                                   ".some(e => e.textContent === name)", arg=model, timeout=60_000)
        wait_ready(page)
        assert "layer4.1" in page.evaluate(picked)
        page.get_by_text("layer4.1: spatial map Ms").first.wait_for(timeout=30_000)
        page.get_by_text("ImageNet CBAM-ResNet-50").click()
        page.get_by_text("local file").click()
        path = page.get_by_label("Checkpoint in the weights folder (.pth / .safetensors; official, pytorchcv or timm format)", exact=True)
        path.fill(checkpoint.name)
        path.press("Enter")
        page.wait_for_selector("text=ImageNet-1k, pytorchcv checkpoint", timeout=120_000)
        wait_ready(page)
        assert "layer4.1" in page.evaluate(picked) and "2048 channels" in page.evaluate(picked)
        page.get_by_text("layer4.1: spatial map Ms (7x7)").first.wait_for(timeout=30_000)
        assert "change (pts)" not in state(page)["predictions"]
        page.screenshot(path=OUT / "6-resnet50.png", full_page=True)
        browser.close()


@BUILT_IN
def test_step_through_knockout_and_grad_cam_panels_in_the_browser():
    """The lesson panels on the built-in model, drawn by a real browser (the README's tour images)."""
    with built_in_page("/?block=layer2.0") as page:
        page.get_by_text("How the selected block computes its gates, step by step").click()
        page.get_by_text("Refined output").first.wait_for(timeout=120_000)
        wait_ready(page)
        steps = page.locator('[data-testid="stExpander"]').filter(has_text="step by step")
        for title in ("1. descriptors: AvgPool and MaxPool", "4. sigmoid of the sum: the weights Mc"):
            assert steps.get_by_text(title).count() >= 1 or title in steps.inner_text()
        assert "5. Ms" in steps.inner_text()
        steps.screenshot(path=OUT / "steps.png")
        page.get_by_text("Knock a gate out (an intervention on this model)").click()
        page.get_by_text("Each block alone").first.wait_for(timeout=120_000)
        wait_ready(page)
        knockouts = page.locator('[data-testid="stExpander"]').filter(has_text="intervention on this model")
        text = knockouts.inner_text()
        assert "Top-5 with the knock-out" in text and "drop (pts)" in text and "layer3.0" in text
        knockouts.screenshot(path=OUT / "knockouts.png")
        page.get_by_text("Class evidence: Grad-CAM beside the spatial map").click()
        page.get_by_text("Rank correlation (Spearman) of the two maps").first.wait_for(timeout=120_000)
        wait_ready(page)
        cam = page.locator('[data-testid="stExpander"]').filter(has_text="Class evidence: Grad-CAM")
        assert "Grad-CAM for cat at layer2.0's output" in cam.inner_text()
        cam.screenshot(path=OUT / "gradcam.png")


@BUILT_IN
def test_side_by_side_faithfulness_and_channel_drilldown_in_the_browser():
    """The other lesson panels in a real browser: a click on a bar opens the channel's drill-down; side by side
    with another configuration; the deletion and insertion curves and the randomisation check run with a click."""
    with built_in_page("/?block=layer2.0") as page:
        chart = page.locator('[data-testid="stVegaLiteChart"]').filter(has_text="layer2.0: channel weights Mc").first
        bars = chart.locator("g.mark-rect path")  # Vega's SVG bars, one per channel of layer2.0 (64)
        bars.nth(63).wait_for(timeout=60_000)
        bars.nth(32).click()
        page.get_by_text("before the gates:").first.wait_for(timeout=60_000)
        wait_ready(page)
        text = page.inner_text("body")
        assert "after (x Mc x Ms):" in text and "test images that weight channel" in text
        page.locator('[data-testid="stColumn"]').filter(has_text="before the gates:").first.screenshot(
            path=OUT / "channel.png")
        page.get_by_text("Side by side: another configuration, another image or a knock-out").click()
        page.get_by_text("Agreement per block").first.wait_for(timeout=120_000)
        wait_ready(page)
        side = page.locator('[data-testid="stExpander"]').filter(has_text="Side by side")
        assert "This view: channel-first-k7-r16" in side.inner_text() and "spatial maps r" in side.inner_text()
        side.screenshot(path=OUT / "side-by-side.png")
        page.get_by_text("Is the attention faithful?").click()
        faithful = page.locator('[data-testid="stExpander"]').filter(has_text="Is the attention faithful?")
        faithful.get_by_role("button", name="Compute the deletion and insertion curves").click()
        faithful.get_by_text("deletion area").first.wait_for(timeout=180_000)
        wait_ready(page)
        faithful.get_by_role("button", name="Compute the randomisation check").click()
        faithful.get_by_text("layer2.0's map Ms at a step").wait_for(timeout=180_000)
        wait_ready(page)
        faithful.get_by_role("button", name="Compute the randomisation check").wait_for(state="detached", timeout=60_000)
        wait_ready(page)
        faithful.screenshot(path=OUT / "faithfulness.png")


@BUILT_IN
def test_lesson_mode_fits_a_projector_screen():
    """At 1280x720 in lesson mode, the image, the selected block's map and its bars are on the first screen;
    with predict-then-reveal the top-5 appears only after the click."""
    with built_in_page("/?lesson=1&reveal=1&block=layer2.0", (1280, 720)) as page:
        image = page.get_by_text("the region the model saw").first
        charts = page.locator('[data-testid="stVegaLiteChart"]')
        for element in (image, charts.nth(0), charts.nth(1)):  # the image, the bars, the map
            box = element.bounding_box()
            assert box and box["y"] >= 0 and box["y"] + box["height"] <= 720, box
        assert page.locator(PREDICTIONS_TABLE).count() == 0
        page.screenshot(path=OUT / "lesson-mode.png")
        page.get_by_text("Reveal the predictions").click()
        page.locator(PREDICTIONS_TABLE).wait_for(timeout=60_000)
        assert "lesson=1" in page.url and "reveal=1" in page.url

"""Reports: one self-contained HTML file and every figure, over a folder with a broken file in it."""

import re

from PIL import Image

from cbam_viz.models.registry import Family, key_of
from cbam_viz.render.exports import downloads
from cbam_viz.report import main

from .conftest import BLOCKS


def test_report_over_a_folder_with_a_broken_file(app_family, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (40, 30), (230, 20, 20)).save(folder / "red.png")
    Image.new("RGB", (40, 30), (20, 20, 230)).save(folder / "sub" / "blue.jpg")
    (folder / "broken.png").write_bytes(b"not a picture")
    (folder / "notes.txt").write_text("not an image, not a candidate")
    out = tmp_path / "report"
    assert main([str(folder), "--family", str(app_family), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "2 image(s) analysed, 1 rejected." in page and "notes.txt" not in page
    assert re.search(r"<h2>broken.png</h2><p class=\"rejected\">Not analysed: This file is not an image file", page)
    blocks = BLOCKS  # the tiny family's
    for stem in ("red", "blue"):
        for name in ("grid", *blocks):
            assert (out / "figures" / f"{stem}-{name}.png").stat().st_size > 1000
            assert b"<svg" in (out / "figures" / f"{stem}-{name}.svg").read_bytes()[:500]
    assert page.count("data:image/png;base64,") == 2 * (1 + len(blocks)) + 1  # every figure embedded, + profiles
    assert "Class profiles over these images (grouped by predicted class)" in page and "class specificity" in page
    assert "<h2>The model</h2>" in page and not re.search(r"(src|href)=\"(?!data:)", page)  # self-contained
    assert main([str(tmp_path / "missing"), "--out", str(out)]) == 1
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(out)]) == 1


def test_the_apps_report_download_is_the_same_report_for_one_image(app_family):
    from cbam_viz.app.images import load_image
    from cbam_viz.explain.analysis import analyse

    family = Family(app_family)
    model, card = family.load(key_of(family.canonical()))
    image = Image.new("RGB", (40, 30), (20, 230, 20))
    result = analyse(model, load_image(_png(image)), card)
    style = {"cmap": "jet", "opacity": 0.5, "smooth": True, "scale": "relative"}
    files = {label: (data, name, mime) for label, data, name, mime in
             downloads(result, result.blocks[0], {"image": "green.png"}, style, 10, False, card)}
    data, name, mime = files["Report of this image (HTML)"]
    page = data()
    assert (name, mime) == ("cbam-viz-report.html", "text/html") and "<h2>green.png</h2>" in page
    assert "1 image(s) analysed, 0 rejected." in page and "Class profiles" not in page


def _png(image):
    import io
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()

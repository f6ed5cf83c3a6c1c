"""Every file of the hostile corpus: a specific message or a correct analysis, in the library and in
the app, never a traceback; the next normal upload always works. Prints a file -> outcome table."""

import re

import numpy as np
from streamlit.testing.v1 import AppTest

from cbam_viz.app.images import ImageError, file_label, load_image, markdown_text

from .conftest import write_report
from .corpus import corpus, encode, expected_size, photo
from .test_app import APP, predictions

CORPUS = corpus()


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 45 and len({n for n, _, _ in CORPUS}) == len(CORPUS)


def test_library_outcomes():
    rows = []
    for name, data, expect in CORPUS:
        try:
            image = load_image(data)
            outcome = f"analysable {image.size[0]}x{image.size[1]} RGB"
            assert expect == "ok", f"{name} should have been rejected ({expect})"
            assert image.mode == "RGB"
            if expected_size(name):
                assert image.size == expected_size(name), name
                # the white marker (top-left of the stored pixels) must land where the orientation says
                corner = np.asarray(image)[:4, :4].mean()
                assert (corner > 240) == (int(name.split("-")[-1][0]) in (1, 5)), name
        except ImageError as e:
            outcome = f"rejected: {e}"
            assert expect != "ok" and re.search(expect, str(e)), f"{name}: {e}"
        rows.append((name, outcome))
    write_report("corpus-library.txt", ["library: file -> outcome", *(f"  {n:<28} {o}" for n, o in rows)])


def test_app_outcomes_and_recovery(app_family, monkeypatch):
    monkeypatch.setenv("CBAM_VIZ_FAMILY", str(app_family))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.radio(key="source").set_value("upload").run()
    normal = encode(photo(), "PNG")
    rows = []
    for name, data, expect in CORPUS:
        at.file_uploader(key="upload").set_value((name, data, "application/octet-stream")).run()
        assert not at.exception, f"{name}: {at.exception}"
        errors = [e.value for e in at.error]
        if expect == "ok":
            assert not errors, f"{name}: {errors}"
            outcome = f"analysed: top-1 {predictions(at)[0][0]} {predictions(at)[0][1]}"
        else:
            assert errors and re.search(expect, errors[0]), f"{name}: {errors}"
            shown = markdown_text(file_label(name))  # no folders; Markdown escaped so the name shows as typed
            assert errors[0].startswith(f"{shown}: "), errors[0]
            outcome = "message: " + errors[0][len(shown) + 2:]
        rows.append((name, outcome))
        at.file_uploader(key="upload").set_value(("normal.png", normal, "image/png")).run()
        assert not at.exception and not at.error and len(predictions(at)) == 3, name
    write_report("corpus-app.txt", ["app: file -> outcome (each followed by a normal upload, which worked)",
                                    *(f"  {n:<28} {o}" for n, o in rows)])

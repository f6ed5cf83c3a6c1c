"""The gallery analysed in advance: equal to a live analysis, used only when weights and image match,
and the app's first page drawn from it without importing torch."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cbam_viz.explain.analysis import analyse
from cbam_viz.app.images import load_image
from cbam_viz.app.precomputed import FILE_NAME, SAMPLES, Precomputed, sample_files
from cbam_viz.training.gallery import write
from cbam_viz.models.registry import DEFAULT_ROOT, Family, key_of

ROOT = Path(__file__).resolve().parent.parent


def assert_same(pre, live) -> None:
    assert [c for c, _ in pre.top] == [c for c, _ in live.top]
    np.testing.assert_allclose(pre.probabilities, live.probabilities, rtol=0, atol=1e-5)
    assert [(b.name, b.stage, b.feature_shape) for b in pre.blocks] == [(b.name, b.stage, b.feature_shape) for b in live.blocks]
    for p, q in zip(pre.blocks, live.blocks):
        for a, b in ((p.channel_weights, q.channel_weights), (p.spatial_map, q.spatial_map)):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(pre.view, live.view)


def test_shipped_file_equals_a_live_analysis_of_every_sample():
    family = Family(DEFAULT_ROOT)
    model, card = family.load(key_of(family.canonical()))
    pre = Precomputed(DEFAULT_ROOT)
    samples = list(sample_files(SAMPLES).values())
    assert samples and set(pre.meta["samples"]) == {p.stem for p in samples}
    for path in samples:
        data = path.read_bytes()
        assert_same(pre.analysis(card, data), analyse(model, load_image(data), card))


@pytest.fixture(scope="module")
def written(app_family, tmp_path_factory):
    """A copy of the tests' family with its own precomputed file for two images."""
    family = tmp_path_factory.mktemp("pre") / "family"
    shutil.copytree(app_family, family)
    samples = family.parent / "samples"
    samples.mkdir()
    for name in ("cat", "horse"):
        shutil.copy(SAMPLES / f"{name}.jpg", samples)
    write(family, samples)
    return family, samples


def test_an_entry_is_used_only_for_the_weights_and_image_it_was_computed_from(written):
    family_root, samples = written
    family = Family(family_root)
    model, card = family.load(key_of(family.canonical()))
    pre = Precomputed(family_root)
    data = (samples / "cat.jpg").read_bytes()
    assert_same(pre.analysis(card, data), analyse(model, load_image(data), card))
    shown = pre.analysis(card, data)
    with pytest.raises(ValueError, match="read-only"):  # shared by every session: nobody may change them
        shown.blocks[0].spatial_map[0, 0] = 0.0
    assert pre.analysis(card, (SAMPLES / "rocket.jpg").read_bytes()) is None  # not in this file
    assert pre.analysis(card, data[:-10] + b"\0" * 10) is None  # an edited image
    other = family.card(next(k for k in family.keys() if k != key_of(card)))
    assert pre.analysis(other, data) is None  # another model's card
    retrained = json.loads(json.dumps(card))
    retrained["weights"]["sha256"] = "0" * 64
    assert pre.analysis(retrained, data) is None


@pytest.mark.parametrize("content", [b"", b"not a zip file", b"PK\x03\x04 truncated"])
def test_a_missing_or_damaged_file_means_everything_runs_live(tmp_path, content):
    assert Precomputed(tmp_path).meta == {}  # no file
    (tmp_path / FILE_NAME).write_bytes(content)
    pre = Precomputed(tmp_path)
    assert pre.meta == {}
    assert pre.analysis({"weights": {"sha256": "x"}}, (SAMPLES / "cat.jpg").read_bytes()) is None


FIRST_PAGE = """
import sys, threading
importers = []  # the threads that import torch, in order


class Watch:
    def find_spec(self, name, path, target=None):
        if name == "torch":
            importers.append(threading.current_thread().name)


sys.meta_path.insert(0, Watch())
from streamlit.testing.v1 import AppTest
at = AppTest.from_file({app!r}, default_timeout=120).run()
assert not at.exception and not at.error, (at.exception, at.error)
assert at.image, "no overlay or grid on the first page"
print("torch loaded by the page:", any(name != "cbam-viz-warm-up" for name in importers))
at.selectbox(key="order").set_value("parallel").run()  # a control change runs a model: torch now
assert not at.exception and not at.error, (at.exception, at.error)
print("torch loaded after a change:", "torch" in sys.modules)
"""


def test_the_first_page_needs_no_torch():
    """In a fresh interpreter, the app's first page (the shipped family, a gallery image) is drawn
    without importing torch (only the warm-up thread may have started to); the first change that
    runs a model has it."""
    code = FIRST_PAGE.format(app=str(ROOT / "streamlit_app.py"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "CBAM_VIZ_FAMILY": ""})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "torch loaded by the page: False" in out.stdout and "torch loaded after a change: True" in out.stdout


def test_the_default_image_and_every_test_image_are_classified_correctly():
    from cbam_viz.app.controls import start_values
    from cbam_viz.app.precomputed import test_images

    family, samples = Family(DEFAULT_ROOT), sample_files()
    card = family.canonical()
    default = start_values({}, list(samples))["sample"]
    assert Precomputed(DEFAULT_ROOT).analysis(card, samples[default].read_bytes()).top[0][0] == default
    # the CIFAR-10 test images are made locally from the data set (never shipped): checked where exported
    local = sample_files(test_images())
    if local:
        model, _ = family.load(key_of(card))
        truth = {n: n.removeprefix("cifar10-") for n in local}
        assert len(truth) == len(card["classes"])  # one test image per class
        for name, label in truth.items():
            assert analyse(model, load_image(local[name].read_bytes()), card).top[0][0] == label, name

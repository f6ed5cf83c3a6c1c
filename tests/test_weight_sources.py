"""Weight sources are a server setting: what is offered, and local paths that must stay in one folder."""

import os

import pytest

from cbam_viz.app.weight_sources import WeightSources
from cbam_viz.models.weights import MAX_WEIGHTS_BYTES, WeightsError


def test_defaults_offer_only_the_pinned_download():
    sources = WeightSources.from_env({})
    assert sources.offered() == ["download"] and sources.folder is None and not sources.upload
    with pytest.raises(WeightsError, match="does not offer local weights files"):
        sources.local_file("anything.pth")


def test_the_setting_turns_sources_on_and_off(tmp_path):
    env = {"CBAM_VIZ_WEIGHTS_DOWNLOAD": "0", "CBAM_VIZ_WEIGHTS_DIR": str(tmp_path), "CBAM_VIZ_WEIGHTS_UPLOAD": "yes",
           "CBAM_VIZ_WEIGHTS_UPLOAD_MB": "3"}
    sources = WeightSources.from_env(env)
    assert sources.offered() == ["path", "upload"] and sources.upload_bytes == 3 * 2**20
    assert WeightSources.from_env({"CBAM_VIZ_WEIGHTS_UPLOAD_MB": "99999999"}).upload_bytes == MAX_WEIGHTS_BYTES
    assert WeightSources.from_env({"CBAM_VIZ_WEIGHTS_UPLOAD_MB": "lots"}).upload_bytes == MAX_WEIGHTS_BYTES // 2


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "weights"
    (root / "sub").mkdir(parents=True)
    (root / "model.pth").write_bytes(b"x")
    (root / "sub" / "deep.safetensors").write_bytes(b"y")
    (tmp_path / "secret.pth").write_bytes(b"z")
    os.symlink(tmp_path / "secret.pth", root / "escape.pth")
    os.symlink(root / "model.pth", root / "alias.pth")
    os.symlink("/dev/null", root / "null.pth")
    os.symlink("/proc/self/environ", root / "environ.pth")
    return root


@pytest.mark.parametrize("name", ["model.pth", "sub/deep.safetensors", "alias.pth", "./sub/../model.pth"])
def test_files_inside_the_folder_are_read(folder, name):
    path = WeightSources(folder=folder.resolve()).local_file(name)
    assert path.is_file() and path.is_relative_to(folder.resolve())


@pytest.mark.parametrize("name, message", [
    ("../secret.pth", "outside the weights folder"),
    ("sub/../../secret.pth", "outside the weights folder"),
    ("/etc/passwd", "outside the weights folder"),
    ("~/.ssh/id_rsa", "no file"),
    ("/proc/self/environ", "outside the weights folder"),
    ("/dev/zero", "outside the weights folder"),
    ("escape.pth", "a link that leads out of it"),
    ("null.pth", "outside the weights folder"),
    ("environ.pth", "outside the weights folder"),
    ("sub", "not a regular file"),
    (".", "not a regular file"),
    ("missing.pth", "no file"),
    ("   ", "type the name of a checkpoint"),
])
def test_everything_else_is_rejected_with_the_reason(folder, name, message):
    with pytest.raises(WeightsError, match=message):
        WeightSources(folder=folder.resolve()).local_file(name)


def test_listing_names_the_checkpoints_in_the_folder(folder):
    assert WeightSources(folder=folder.resolve()).listing() == ["alias.pth", "model.pth"]  # no link out of it

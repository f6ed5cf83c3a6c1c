"""Shared fixtures: a tiny image-folder dataset made by the test itself (no shared data)."""

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLASSES = ("blue", "green", "red")
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"


def write_report(name: str, lines: list[str]) -> Path:
    """A table a test made, written to ``test-output/<name>`` (not between pytest's progress lines)."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / name
    path.write_text("\n".join(lines) + "\n")
    return path


def make_image_folder(root: Path, per_class: dict[str, int], size: int = 16, seed: int = 0) -> Path:
    """root/<split>/<class>/*.png: noisy images whose dominant colour is the class."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 90, (size, size, 3), dtype=np.uint8)
                pixels[..., 2 - c] += 140
                Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session", autouse=True)
def private_upload_folder(tmp_path_factory):
    """The app's uploads (and those of the servers the tests start) go to pytest's temporary folder,
    never to the real upload store."""
    before = os.environ.get("CBAM_VIZ_UPLOADS")
    os.environ["CBAM_VIZ_UPLOADS"] = str(tmp_path_factory.mktemp("uploads"))
    yield
    if before is None:
        os.environ.pop("CBAM_VIZ_UPLOADS")
    else:
        os.environ["CBAM_VIZ_UPLOADS"] = before


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("tiny") / "colours", {"train": 32, "test": 8})


# train.py's defaults are the built-in family's network (half-width CBAM-ResNet-18, CIFAR stem) and recipe
BLOCKS = [f"layer{stage}.{i}" for stage in (1, 2, 3, 4) for i in (0, 1)]  # its 8 CBAM blocks
TINY_TRAIN = ["--image-size", "32", "--batch-size", "16", "--epochs", "1"]
APP_VARIANTS = {
    "channel-first-k7-r16-twin": [],
    "spatial-first-k7-r16": ["--order", "spatial-first"],
    "parallel-k7-r16": ["--order", "parallel"],
    "channel-first-k3-r16": ["--kernel-size", "3"],
    "spatial-first-k3-r16": ["--order", "spatial-first", "--kernel-size", "3"],
    "channel-first-k7-r8": ["--reduction", "8"],
    "channel-only-r16": ["--attention", "channel"],
    "spatial-only-k7": ["--attention", "spatial"],
}


@pytest.fixture(scope="session")
def app_family(tiny_dataset, tmp_path_factory) -> Path:
    """A small trained family shaped as the built-in one: the plain network and the canonical model
    trained end-to-end, and one like-for-like variant per sidebar control (the canonical
    configuration's twin among them) on the plain network's frozen convolutions."""
    from cbam_viz.training import train

    reuse = os.environ.get("CBAM_VIZ_TEST_FAMILY")  # a folder to keep the family in between local runs
    out = Path(reuse) if reuse else tmp_path_factory.mktemp("app") / "family"
    if reuse and (out / "channel-first-k7-r16-twin.json").is_file():
        return with_channel_images(out, tiny_dataset)
    common = ["--data", str(tiny_dataset), "--out", str(out), "--checkpoint-dir", str(out.parent / "ckpt"),
              "--cache-dir", str(out.parent / "cache"), *TINY_TRAIN]
    assert train.main([*common, "--name", "plain", "--attention", "none", "--epochs", "4"]) == 0
    assert train.main([*common, "--name", "channel-first-k7-r16", "--epochs", "4"]) == 0
    for name, extra in APP_VARIANTS.items():
        assert train.main([*common, "--name", name, *extra, "--backbone", str(out / "plain.safetensors")]) == 0
    return with_channel_images(out, tiny_dataset)


def with_channel_images(family: Path, dataset: Path) -> Path:
    """The family with each variant's top test images per channel, as the built-in family ships them."""
    from cbam_viz.training.gallery import export_channel_images

    if not (family / "channel-first-k7-r16.channels.npz").is_file():
        export_channel_images(family, dataset, k=3)
    return family

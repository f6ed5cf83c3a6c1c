"""Training command, model cards, registry and evaluation on a tiny dataset the test makes."""

import json
import shutil

import numpy as np
import pytest
import torch

from cbam_viz.training import evaluate, family, train
from cbam_viz.training.data import to_tensor
from cbam_viz.models.cards import machine
from cbam_viz.models.registry import DEFAULT_ROOT, Family, VariantNotFound, key_of
from cbam_viz.models.weights import read_weights, sha256_file

from .conftest import CLASSES, make_image_folder

TINY = ["--image-size", "16", "--batch-size", "16"]


def run(tiny_dataset, tmp_path, name, *extra):
    argv = ["--data", str(tiny_dataset), "--out", str(tmp_path / "family"), "--name", name,
            "--checkpoint-dir", str(tmp_path / "ckpt"), "--cache-dir", str(tmp_path / "cache"), *TINY, *extra]
    return train.main(argv)


@pytest.fixture(scope="module")
def tiny_family(tiny_dataset, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fam")
    assert run(tiny_dataset, tmp, "canonical", "--epochs", "2") == 0
    backbone = str(tmp / "family" / "canonical.safetensors")
    assert run(tiny_dataset, tmp, "sf-k3-r8", "--order", "spatial-first", "--kernel-size", "3", "--reduction", "8",
               "--backbone", backbone, "--epochs", "1", "--steps-per-epoch", "3") == 0
    assert run(tiny_dataset, tmp, "spatial-only-k7", "--attention", "spatial", "--backbone", backbone, "--epochs", "1") == 0
    return tmp / "family"


def test_training_writes_weights_and_card(tiny_family):
    card = json.loads((tiny_family / "canonical.json").read_text())
    assert card["classes"] == list(CLASSES)
    assert card["architecture"]["cbam"] == {"order": "channel-first", "kernel_size": 7, "reduction": 16,
                                            "attention": "both", "layout": "simple"}
    assert card["preprocessing"]["input_size"] == 16 and len(card["preprocessing"]["mean"]) == 3
    assert card["weights"]["sha256"] == sha256_file(tiny_family / card["weights"]["file"])
    assert len(card["metrics"]["test_per_class_top1"]) == 3 and card["metrics"]["test_images"] == 24
    assert 0 <= card["metrics"]["test_top1"] <= 100
    assert abs(card["metrics"]["test_top1"] - card["metrics"]["test_top1_fp32"]) <= 100 / 24 + 1e-6
    assert card["preprocessing"]["flip_average"] and 0 <= card["metrics"]["test_top1_single_view"] <= 100
    assert card["complexity"]["params"] > card["complexity"]["attention_params"] > 0
    assert card["architecture"]["family"] == "cbam-resnet" and card["architecture"]["depth"] == 18
    assert card["architecture"]["width"] == 0.5 and card["architecture"]["stem"] == "cifar"
    assert [h["epoch"] for h in card["training"]["history"]] == [1, 2]
    assert card["training"]["mode"] == "end-to-end" and card["training"]["seed"] == 0
    assert card["backbone"] is None
    stats = card["attention_statistics"]  # every block's maps and weights over the test split
    assert stats["images"] == 24 and list(stats["blocks"]) == [f"layer{s}.{i}" for s in (1, 2, 3, 4) for i in (0, 1)]
    spatial = stats["blocks"]["layer1.0"]["spatial"]
    assert 0 <= spatial["min"]["p50"] <= spatial["max"]["p50"] <= 1 and 0 <= spatial["flat_fraction"] <= 1


def test_finetuned_variant_card_and_weights(tiny_family):
    card = json.loads((tiny_family / "sf-k3-r8.json").read_text())
    canonical = json.loads((tiny_family / "canonical.json").read_text())
    assert card["backbone"]["sha256"] == canonical["weights"]["sha256"]
    assert card["training"]["mode"] == "attention-finetune" and card["training"]["steps_per_epoch"] == 3
    notes = " ".join(card["training"]["initialisation"])
    assert "centre 3x3 of the trained 7x7 kernel" in notes and "new units added with zero output" in notes
    # the variant's file holds only what it trained: no convolution weights
    from safetensors.torch import load_file
    keys = load_file(str(tiny_family / "sf-k3-r8.safetensors")).keys()
    assert any(".cbam.spatial.conv.weight" in k for k in keys)
    assert not any(k.endswith("conv1.weight") or k.endswith("conv2.weight") for k in keys)


def test_resume_continues_from_checkpoint(tiny_dataset, tmp_path, capsys):
    assert run(tiny_dataset, tmp_path, "r", "--epochs", "2", "--lookahead-from", "0", "--stop-after-epoch", "1") == 0
    assert not (tmp_path / "family" / "r.json").exists()
    assert (tmp_path / "ckpt" / "family-r.pt").exists()
    first = capsys.readouterr().err
    assert "stopped after epoch 1" in first
    assert run(tiny_dataset, tmp_path, "r", "--epochs", "2", "--lookahead-from", "0", "--resume") == 0
    assert "resuming r after epoch 1/2" in capsys.readouterr().err
    history = json.loads((tmp_path / "family" / "r.json").read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    # an uninterrupted run ends with the same weights: the seed fixes data order and augmentation, and
    # the checkpoint holds the optimizer, the schedule and the lookahead average (on from epoch 1 here)
    assert run(tiny_dataset, tmp_path, "straight", "--epochs", "2", "--lookahead-from", "0") == 0
    cards = [json.loads((tmp_path / "family" / f"{n}.json").read_text()) for n in ("r", "straight")]
    assert cards[0]["training"]["history"][0]["loss"] == cards[1]["training"]["history"][0]["loss"]
    assert cards[0]["weights"]["sha256"] == cards[1]["weights"]["sha256"]
    # resumed once more, a finished run only evaluates again: same weights, same training record
    assert run(tiny_dataset, tmp_path, "r", "--epochs", "2", "--lookahead-from", "0", "--resume") == 0
    again = json.loads((tmp_path / "family" / "r.json").read_text())
    assert again["weights"] == cards[0]["weights"] and again["training"]["history"] == cards[0]["training"]["history"]
    assert again["training"]["wall_time_s"] == cards[0]["training"]["wall_time_s"]


@pytest.mark.parametrize("damage,message", [
    ("missing", "does not exist"),
    ("no_test", "has no 'test' folder"),
    ("empty_class", "holds no images"),
    ("no_classes", "has no class folders"),
    ("bad_image", "cannot read image"),
])
def test_bad_dataset_folders_get_clear_messages(tmp_path, capsys, damage, message):
    root = make_image_folder(tmp_path / "ds", {"train": 2, "test": 1}, size=8)
    if damage == "missing":
        root = tmp_path / "nowhere"
    elif damage == "no_test":
        shutil.rmtree(root / "test")
    elif damage == "empty_class":
        for f in (root / "train" / "red").iterdir():
            f.unlink()
    elif damage == "no_classes":
        shutil.rmtree(root / "train")
        (root / "train").mkdir()
    elif damage == "bad_image":
        (root / "train" / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    assert run(root, tmp_path, "x", "--epochs", "1") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_registry_loads_variants_and_caches_backbone(tiny_family):
    fam = Family(tiny_family)
    model, card = fam.load_variant("spatial-first", 3, 8)
    assert card["name"] == "sf-k3-r8" and not model.training
    assert model.layer1[0].cbam.spatial.conv.kernel_size == (3, 3)
    assert len(fam._backbones) == 1
    cached = next(iter(fam._backbones.values()))
    fam.load_variant(attention="spatial", kernel_size=7, reduction=999, order="parallel")  # irrelevant fields ignored
    assert next(iter(fam._backbones.values())) is cached
    with pytest.raises(VariantNotFound) as e:
        fam.load_variant("parallel", 7, 32)
    assert "parallel, k=7, r=32" in str(e.value) and "spatial-first, k=3, r=8" in str(e.value)


def test_registry_models_own_their_tensors(tiny_family):
    """Variants are built from a data-less skeleton: every tensor comes from the weights, none is
    left on the meta device, and no two loaded models (nor the backbone cache) share storage."""
    fam = Family(tiny_family)
    first, card = fam.load_variant("spatial-first", 3, 8)
    again, _ = fam.load_variant("spatial-first", 3, 8)
    backbone = next(iter(fam._backbones.values()))
    own = read_weights(tiny_family / card["weights"]["file"])
    ptrs = {}
    for name, model in (("first", first), ("again", again)):
        state = model.state_dict()
        assert not any(t.is_meta for t in state.values())
        for key, tensor in state.items():
            if key not in own:
                assert torch.equal(tensor, backbone[key]) and tensor.data_ptr() != backbone[key].data_ptr()
            ptrs.setdefault(tensor.data_ptr(), []).append((name, key))
    assert all(len(owners) == 1 for ptr, owners in ptrs.items() if ptr)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(first(x), again(x))


def test_registry_refuses_tampered_weights(tiny_family, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_family, copy)
    with open(copy / "sf-k3-r8.safetensors", "r+b") as f:
        f.seek(-4, 2)
        f.write(b"\x00\x01\x02\x03")
    from cbam_viz.models.weights import WeightsError
    with pytest.raises(WeightsError, match="does not match its model card"):
        Family(copy).load_variant("spatial-first", 3, 8)


def test_evaluate_reproduces_cards(tiny_dataset, tiny_family, tmp_path, capsys):
    argv = ["--data", str(tiny_dataset), "--family", str(tiny_family), "--cache-dir", str(tmp_path)]
    assert evaluate.main(argv) == 0
    assert "3/3 variants reproduce their cards" in capsys.readouterr().out
    copy = tmp_path / "copy"
    shutil.copytree(tiny_family, copy)
    card = json.loads((copy / "canonical.json").read_text())
    card["metrics"]["test_top1"] = card["metrics"]["test_top1"] - 4.0
    (copy / "canonical.json").write_text(json.dumps(card))
    assert evaluate.main(["--data", str(tiny_dataset), "--family", str(copy), "--cache-dir", str(tmp_path)]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    assert evaluate.main([*argv, "--variant", "nope"]) == 2
    del card["attention_statistics"]  # a card written before the statistics existed gets them on request
    card["metrics"]["test_top1"] += 4.0
    (copy / "canonical.json").write_text(json.dumps(card))
    argv = ["--data", str(tiny_dataset), "--family", str(copy), "--cache-dir", str(tmp_path), "--variant", "canonical"]
    assert evaluate.main([*argv, "--write-statistics"]) == 0
    written = json.loads((copy / "canonical.json").read_text())["attention_statistics"]
    assert written == json.loads((tiny_family / "canonical.json").read_text())["attention_statistics"]


def test_evaluation_with_flip_averaging_by_hand(tiny_family):
    """Accuracy of the mean of each image's and its mirror's logits, and of the image alone, counted here."""
    model, card = Family(tiny_family).load(key_of(json.loads((tiny_family / "canonical.json").read_text())))
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 255, (40, 16, 16, 3), dtype=np.uint8), rng.integers(0, 3, 40)
    mean, std = card["preprocessing"]["mean"], card["preprocessing"]["std"]
    with torch.no_grad():
        x = to_tensor(images, mean, std)
        single, averaged = model(x).argmax(1).numpy(), (model(x) + model(x.flip(3))).argmax(1).numpy()
    result = evaluate.evaluate_arrays(model, images, labels, mean, std, flip_average=True, batch_size=16)
    assert result["top1"] == round(100 * float((averaged == labels).mean()), 2)
    assert result["single_view_top1"] == round(100 * float((single == labels).mean()), 2)
    assert result["per_class"][1] == round(100 * float((averaged == labels)[labels == 1].mean()), 2)
    assert "single_view_top1" not in evaluate.evaluate_arrays(model, images, labels, mean, std)


def test_family_plan_covers_every_configuration():
    steps = family.plan()
    assert [s.name for s in steps[:2]] == ["plain", family.CANONICAL]  # the variants build on the plain network
    end_to_end = [s.name for s in steps if "--backbone" not in s.args]
    assert end_to_end == ["plain", family.CANONICAL]
    variants = [s for s in steps if "--backbone" in s.args]
    assert len(variants) == 3 * 2 * 3 + 3 + 2 and family.TWIN in {s.name for s in variants}  # the twin included
    assert all(s.args[s.args.index("--backbone") + 1] == "{out}/plain.safetensors" for s in variants)
    recipe = {s.args[:len(family.RECIPE)] for s in steps}
    assert recipe == {family.RECIPE}  # one recipe for all


def test_family_table_from_cards(tiny_family, tmp_path):
    text = family.table(tiny_family)
    assert "| `canonical` | end-to-end |" in text and "3 variants" in text
    assert "h of training at each run's median epoch time" in text
    assert f"Trained on {machine()} (3 runs)." in text  # where each card's time was measured
    assert "Beside the paper (Woo et al." in text and "| order: spatial-first |" in text
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- family-table:begin -->\nold\n<!-- family-table:end -->\nb\n")
    family.update_readme(readme, text)
    assert "old" not in readme.read_text() and "`sf-k3-r8`" in readme.read_text()


SHIPPED = sorted(DEFAULT_ROOT.glob("*.json"))


def test_built_in_family_has_its_canonical_model():
    assert (DEFAULT_ROOT / f"{family.CANONICAL}.json").is_file(), "the app's default model is not shipped"
    assert {p.stem for p in SHIPPED} <= set(family.shipped_names()), "a shipped card is not in the plan"


@pytest.mark.parametrize("card_path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_variant_loads_and_matches_its_card(card_path):
    fam = Family(DEFAULT_ROOT)
    card = json.loads(card_path.read_text())
    assert sha256_file(DEFAULT_ROOT / card["weights"]["file"]) == card["weights"]["sha256"]
    model, loaded = fam.load(key_of(card))
    assert loaded["name"] == card["name"] and not model.training
    size = card["preprocessing"]["input_size"]
    assert model(torch.zeros(1, 3, size, size)).shape == (1, len(card["classes"]))


def test_family_retrains_variants_of_an_older_backbone_or_network(tiny_family, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_family, copy)
    canonical, variant = family.Step("canonical", ()), family.Step("sf-k3-r8", ("--backbone", "x"))
    assert family._finished(copy, canonical) and family._finished(copy, variant)
    with open(copy / "canonical.safetensors", "ab") as f:  # the backbone was retrained since
        f.write(b"\0")
    assert family._finished(copy, canonical) and not family._finished(copy, variant)
    assert not family._finished(copy, family.Step("never-trained", ()))
    assert family._finished(copy, family.Step("canonical", ("--epochs", "2")))  # as trained
    assert not family._finished(copy, family.Step("canonical", ("--epochs", "3")))  # the plan changed its budget
    card = json.loads((copy / "canonical.json").read_text())
    card["architecture"] = {"family": "compact-cbam", "widths": [16, 32, 32]}
    (copy / "canonical.json").write_text(json.dumps(card))  # a card of another network than the step trains
    assert not family._finished(copy, canonical)


def test_a_family_of_a_network_no_longer_built_is_rejected_with_the_reason(tiny_family, tmp_path):
    """A family folder of the removed compact network (a server's CBAM_VIZ_FAMILY): loading it is a
    WeightsError, which the app shows as a message, not a traceback."""
    from cbam_viz.models.weights import WeightsError

    copy = tmp_path / "old"
    shutil.copytree(tiny_family, copy)
    card = json.loads((copy / "canonical.json").read_text())
    card["architecture"] = {"family": "compact-cbam", "widths": [16, 32, 32], "num_classes": 3, "cbam": None}
    (copy / "canonical.json").write_text(json.dumps(card))
    old = Family(copy)
    with pytest.raises(WeightsError, match="compact-cbam network, which this version of cbam-viz no longer builds"):
        old.load(key_of(card))


def test_translate_shifts_each_image_with_reflection():
    from cbam_viz.training.data import translate

    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    out = translate(x, torch.tensor([[2, 2], [0, 4]]), pad=2)
    assert torch.equal(out[0], x[0])  # offset (pad, pad): unshifted
    assert torch.equal(out[1, :, 2:, :2], x[1, :, :2, 2:])  # 2 down, 2 left
    assert torch.equal(out[1, :, 0], x[1, :, 2, [2, 3, 2, 1]])  # reflected rows and columns


def test_gallery_gets_correctly_classified_test_images(tiny_dataset, tiny_family, tmp_path):
    from PIL import Image

    from cbam_viz.app.images import load_image
    from cbam_viz.app.precomputed import sample_files
    from cbam_viz.explain.analysis import analyse
    from cbam_viz.training.gallery import export_test_images

    written = export_test_images(tiny_family, tiny_dataset, tmp_path)
    assert written and set(sample_files(tmp_path).values()) == set(written)
    model, card = Family(tiny_family).load(key_of(json.loads((tiny_family / "canonical.json").read_text())))
    listing = (tmp_path / "CIFAR10.md").read_text()
    for path in written:
        name = path.stem.removeprefix("cifar10-")
        assert Image.open(path).size == (16, 16)  # the test image as the model receives it, losslessly
        assert analyse(model, load_image(path.read_bytes()), card).top[0][0] == name
        assert f"| `{path.name}` | {name} | `test/{name}/" in listing
    assert "https://www.cs.toronto.edu/~kriz/cifar.html" in listing
    assert listing.count("\n| ") == 1 + len(CLASSES)  # a row per class, also for one with no correct image


def test_small_images_are_enlarged_with_nearest_neighbours():
    from PIL import Image

    from cbam_viz.explain.results import display_view

    pixels = np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)
    view = display_view(Image.fromarray(pixels), 64)
    assert (view[::4, ::4] == pixels).all() and (view[1::4, 1::4] == pixels).all()  # blocks of 4x4 equal pixels
    photo = display_view(Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), np.uint8)), 64)
    assert len(np.unique(photo.reshape(-1, 3), axis=0)) > 1600  # a photo is resized smoothly

"""Faithfulness: deletion and insertion curves, cascading randomisation, and the heavy-job slots they run in."""

import threading

import numpy as np
import pytest
import torch

from cbam_viz.app.jobs import Busy, JobSlots, server_limit
from cbam_viz.explain.faithfulness import (blurred, cascading_randomisation, deletion_insertion, perturbation_curve,
                                           pixel_ranks)
from cbam_viz.models.attention import CBAMConfig
from cbam_viz.models.resnet import cbam_resnet50

from .test_lessons import hook_count, small


def corner_model(x):
    """A 'classifier' whose class-1 evidence is the texture (mean absolute value) of the top-left quadrant:
    removing pixels (zeros) or blurring them takes it away."""
    evidence = x[:, :, :16, :16].abs().mean((1, 2, 3)) * 2
    return torch.stack([-evidence, evidence], 1).softmax(1)


def test_pixel_ranks_follow_the_map_and_break_ties_at_random():
    saliency = np.zeros((4, 4))
    saliency[0, 0] = 1
    ranks = pixel_ranks(saliency, (32, 32))
    assert sorted(ranks.flatten().tolist()) == list(range(32 * 32))
    assert ranks[:4, :4].max() < 16 and ranks[:4, :4].max() < ranks[20:, 20:].min()  # the peak (a 4x4 plateau) first
    flat = pixel_ranks(np.ones((4, 4)), (32, 32))
    assert not torch.equal(flat.flatten(), torch.arange(32 * 32))  # a flat map ranks at random, not in raster order
    assert torch.equal(pixel_ranks(None, (8, 8), seed=1), pixel_ranks(None, (8, 8), seed=1))


def test_curves_start_and_end_where_they_must():
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ranks = pixel_ranks(None, (32, 32))
    deletion = perturbation_curve(corner_model, x, ranks, 1, "deletion", steps=10, batch=4)
    insertion = perturbation_curve(corner_model, x, ranks, 1, "insertion", steps=10, batch=4)
    assert deletion.shape == insertion.shape == (11,)
    assert deletion[0] == pytest.approx(float(corner_model(x)[0, 1]), abs=1e-6)
    assert deletion[-1] == pytest.approx(0.5, abs=1e-6)  # everything removed: zero evidence
    assert insertion[0] == pytest.approx(float(corner_model(blurred(x))[0, 1]), abs=1e-6)
    assert insertion[-1] == pytest.approx(deletion[0], abs=1e-6)
    with pytest.raises(ValueError, match="deletion, insertion"):
        perturbation_curve(corner_model, x, ranks, 1, "erase")


def test_a_map_on_the_evidence_beats_a_random_order_and_the_opposite_map_loses():
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    right, wrong = np.zeros((4, 4)), np.ones((4, 4))
    right[:2, :2], wrong[:2, :2] = 1, 0
    seen = []
    curves = {(c.map, c.mode): c for c in deletion_insertion(corner_model, x, {"right": right, "wrong": wrong,
                                                                               "random": None}, 1, steps=20,
                                                             progress=seen.append)}
    area = {k: c.area for k, c in curves.items()}
    assert area["right", "deletion"] < area["random", "deletion"] < area["wrong", "deletion"]
    assert area["right", "insertion"] > area["random", "insertion"] > area["wrong", "insertion"]
    assert seen == sorted(seen) and seen[-1] == pytest.approx(1.0)
    assert curves["right", "deletion"].fractions[[0, -1]].tolist() == [0.0, 1.0]


def test_cascading_randomisation_leaves_earlier_blocks_and_the_model_alone():
    model = small()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []
    cascade = cascading_randomisation(model, torch.randn(1, 3, 32, 32), progress=seen.append)
    blocks = cascade.blocks
    assert cascade.steps == ["original", *[f"down to {b}" for b in reversed(blocks)]]
    assert cascade.spatial.shape == cascade.channel.shape == (len(blocks) + 1, len(blocks))
    assert np.allclose(cascade.spatial[0], 1) and np.allclose(cascade.channel[0], 1)
    for step in range(1, len(blocks) + 1):  # step s randomised the last s blocks; the ones before are unchanged
        untouched = len(blocks) - step
        assert np.allclose(cascade.spatial[step, :untouched], 1) and np.allclose(cascade.channel[step, :untouched], 1)
        assert cascade.spatial[step, untouched] < 0.99  # the block just randomised changed
    assert seen[-1] == pytest.approx(1.0) and len(cascade.maps) == len(cascade.steps)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and hook_count(model) == 0
    x = torch.randn(1, 3, 32, 32)
    assert np.array_equal(cascading_randomisation(model, x).spatial, cascading_randomisation(model, x).spatial)  # seeded


def test_both_checks_run_on_the_imagenet_resnet50():
    torch.manual_seed(0)
    model = cbam_resnet50(CBAMConfig(layout="official"), num_classes=1000).eval()
    x = torch.randn(1, 3, 224, 224)
    cascade = cascading_randomisation(model, x)
    assert cascade.spatial.shape == (17, 16) and cascade.maps[0]["layer4.2"].shape == (7, 7)
    curves = deletion_insertion(lambda b: model(b).softmax(1), x, {"random": None}, 3, steps=4)
    assert [c.mode for c in curves] == ["deletion", "insertion"] and all(len(c.probabilities) == 5 for c in curves)


def test_heavy_jobs_one_per_session_and_a_few_per_server_released_when_cancelled():
    slots = JobSlots(limit=2)
    with slots.hold("a", "curves"):
        with pytest.raises(Busy, match="already running the curves"):
            with slots.hold("a", "randomisation check"):
                pass
        with slots.hold("b", "download"):
            assert slots.running() == 2
            with pytest.raises(Busy, match="busy with 2 other long computations"):
                with slots.hold("c", "curves"):
                    pass
    assert slots.running() == 0

    class Stopped(Exception):  # what Streamlit raises in the script thread when the visitor changes an input
        pass

    with pytest.raises(Stopped):
        with slots.hold("a", "curves"):
            raise Stopped
    assert slots.running() == 0

    results, start = [], threading.Barrier(8)

    def visitor(i):
        start.wait()
        try:
            with slots.hold(str(i), "curves"):
                threading.Event().wait(0.2)
                results.append("ran")
        except Busy:
            results.append("busy")
    threads = [threading.Thread(target=visitor, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results.count("ran") == 2 and results.count("busy") == 6 and slots.running() == 0


def test_server_limit_setting(monkeypatch):
    monkeypatch.setenv("CBAM_VIZ_HEAVY_JOBS", "5")
    assert server_limit() == 5
    for bad in ("0", "-3"):
        monkeypatch.setenv("CBAM_VIZ_HEAVY_JOBS", bad)
        assert server_limit() == 1
    monkeypatch.setenv("CBAM_VIZ_HEAVY_JOBS", "many")
    assert server_limit() == 2

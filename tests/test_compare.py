"""Two views side by side: common grid, difference and per-block agreement."""

import numpy as np

from cbam_viz.explain.compare import agreement, common_grid, correlation, difference
from cbam_viz.explain.results import Analysis, BlockAttention


def analysis(blocks):
    return Analysis([("a", 1.0)], np.array([1.0]), blocks, np.zeros((8, 8, 3), np.uint8))


def test_maps_of_two_sizes_meet_on_the_larger_grid():
    small, large = np.arange(4.0).reshape(2, 2), np.ones((4, 4))
    a, b = common_grid(small, large)
    assert a.shape == b.shape == (4, 4) and np.array_equal(b, large)
    assert a[0, 0] == 0 and a[-1, -1] == 3  # bilinear upsampling keeps the corners
    d = difference(small, large)
    assert d.shape == (4, 4) and np.allclose(d, 1 - a)


def test_agreement_per_block_with_gates_off_and_constant_maps():
    rng = np.random.default_rng(0)
    w, m = rng.random(16), rng.random((4, 4))
    left = analysis([BlockAttention("layer1.0", "layer1", w, m, (16, 4, 4)),
                     BlockAttention("layer2.0", "layer2", w, m, (16, 4, 4))])
    right = analysis([BlockAttention("layer1.0", "layer1", 2 * w + 1, np.kron(m, np.ones((2, 2))), (16, 8, 8)),
                      BlockAttention("layer2.0", "layer2", None, np.ones((4, 4)), (16, 4, 4))])
    rows = agreement(left, right)
    assert [r.block for r in rows] == ["layer1.0", "layer2.0"]
    assert abs(rows[0].channel - 1) < 1e-12  # an affine change of the weights: r = 1
    assert 0.8 < rows[0].spatial <= 1  # the same map at twice the resolution
    assert np.isnan(rows[1].channel) and np.isnan(rows[1].spatial)  # gate off; constant map
    assert np.isnan(correlation(np.ones(3), np.arange(3)))

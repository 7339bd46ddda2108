"""Phase maps threshold each phase's fringe amplitude against the noise floor measured from the FFT background
(issue #36): a uniform crystal maps whole, amorphous frames map empty, grain areas match the truth."""

import numpy as np
import pytest

from matsight.tem.lattice import Grain, _disk, lattice_image, two_phase_image
from matsight.tem.phasemap import noise_threshold, phase_maps
from matsight.tem.predict import analyze

PS = 0.02
SHAPE = (512, 512)


def test_noise_threshold_is_the_false_positive_quantile():
    # sum of exponentials of unequal means (spots of different size and background) vs the Gamma quantile
    rng = np.random.default_rng(0)
    b, n = np.array([1.0, 2.0, 0.5, 3.0]), np.array([30, 50, 20, 80])
    mu = 4 * n * b / float(np.prod(SHAPE)) ** 2
    A = np.sqrt((mu[:, None] * rng.exponential(size=(4, 400_000))).sum(axis=0))
    for fpr in (1e-2, 1e-3):
        t = noise_threshold(b, n, SHAPE, fpr)
        assert fpr / 2 <= (A > t).mean() <= 2 * fpr  # the Gamma law's tail is a little light


@pytest.mark.parametrize(
    "phase, zone, dose", [("Li2O", (0, 1, 1), 100.0), ("LiF", (0, 0, 1), 500.0), ("Li2CO3", (0, 1, 0), 100.0)]
)
def test_uniform_crystal_maps_whole(phase, zone, dose):
    # Otsu on a phase's own amplitude used to cut this unimodal map in two (69–83 %)
    li = lattice_image(SHAPE, PS, grains=[Grain(phase, zone, 23.0)], dose=dose, seed=4)
    res = analyze(li.image, PS)
    assert res.phases_found == [phase]
    assert res.maps.area_fraction[phase] >= 0.95


def test_amorphous_frame_maps_empty():
    li = lattice_image(SHAPE, PS, grains=[Grain("Li2O", (0, 1, 1), 17.0)], seed=1)
    res = analyze(li.image, PS)
    for seed in range(3):  # the crystal's spot masks on pure amorphous frames
        am = lattice_image(SHAPE, PS, grains=[], seed=10 + seed)
        assert phase_maps(am.image, res.spots, res.match).area_fraction["Li2O"] <= 0.05


def test_crystal_in_amorphous_keeps_its_area():
    m = _disk(SHAPE, (256, 256), 150)
    li = lattice_image(SHAPE, PS, grains=[Grain("LiF", (0, 0, 1), 33.0, m)], seed=1)
    lab = analyze(li.image, PS).maps.labels > 0
    assert lab[m].mean() >= 0.95 and lab[~m].mean() <= 0.05
    assert abs(lab.mean() - m.mean()) <= 0.03


@pytest.mark.parametrize("pair, layout", [(("LiF", "Li"), "halves"), (("LiF", "Li"), "disk")])
def test_two_grains_within_3_percent(pair, layout):
    li = two_phase_image(SHAPE, PS, phases=pair, layout=layout, seed=3)
    res = analyze(li.image, PS)
    for k, name in enumerate(li.phase_names):
        truth = float((li.phase_labels == k + 1).mean())
        assert abs(res.maps.area_fraction[name] - truth) <= 0.03, (name, res.maps.area_fraction, truth)

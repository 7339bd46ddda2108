"""Strong reflections are never missed (issue #36): near the Nyquist edge, at the ends of the d range, and
when a spot is sharp (one-pixel power that the 3×3-averaged noise map dilutes)."""

import numpy as np
import pytest

from matsight.tem import fft as _fft
from matsight.tem.lattice import Grain, lattice_image, two_phase_image
from matsight.tem.spots import annulus_crop, detect_spots, radial_background, strong_threshold


def _has(table, d, rel=0.02):
    return bool(np.any(np.abs(table.d / d - 1) < rel))


@pytest.mark.parametrize("pixel_nm", [0.02, 0.06, 0.08])
def test_li2o_220_found_up_to_the_nyquist_edge(pixel_nm):
    # at 0.08 nm/px the 1.63 Å {220} lies at 98 % of Nyquist: the annulus used to stop at 97 %
    li = lattice_image((512, 512), pixel_nm, grains=[Grain("Li2O", (0, 1, 1), 17.0)], seed=1)
    t = detect_spots(li.image, pixel_nm)
    assert _has(t, 1.6305) and _has(t, 2.662)


@pytest.mark.parametrize("d_min, d_max", [(1.62, 15.0), (1.0, 2.68), (1.62, 2.68)])
def test_strong_spots_at_the_ends_of_the_d_range(d_min, d_max):
    li = lattice_image((512, 512), 0.02, grains=[Grain("Li2O", (0, 1, 1), 17.0)], seed=1)
    t = detect_spots(li.image, 0.02, d_min=d_min, d_max=d_max)
    assert _has(t, 1.6305) and _has(t, 2.662)
    assert np.all((t.d >= d_min * 0.99) & (t.d <= d_max * 1.01))


def test_sharp_strong_spot_of_a_large_grain_is_found():
    # a Li2O matrix around a LiF disk: its {111} is one pixel wide at 41× its background (3×3-mean z 3.3)
    li = two_phase_image((512, 512), 0.02, phases=("Li2O", "LiF"), layout="disk", seed=3)
    t = detect_spots(li.image, 0.02)
    assert _has(t, 2.662) and _has(t, 1.6305)


def test_strong_threshold_holds_on_amorphous_frames():
    for seed, shape in enumerate([(256, 256), (512, 512), (1024, 1024)]):
        li = lattice_image(shape, 0.02, grains=[], amorphous=0.5, dose=50.0, seed=100 + seed)
        spec = _fft.spectrum(li.image)
        box, ps, _ = annulus_crop(spec.shape, 0.02, 1.0)
        bg = radial_background(np.abs(spec[box]) ** 2, ps)
        assert bg.power_ratio.max() < strong_threshold(bg.valid) * (1 + bg.margin.max())
        assert len(detect_spots(li.image, 0.02)) == 0

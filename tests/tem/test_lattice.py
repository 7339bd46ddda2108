import numpy as np
import pytest

from matsight import InputError
from matsight.tem import crystals, fft, lattice


def test_seeded_and_counts_follow_dose():
    a = lattice.two_phase_image((128, 128), 0.02, seed=4, dose=300)
    b = lattice.two_phase_image((128, 128), 0.02, seed=4, dose=300)
    assert np.array_equal(a.image, b.image)
    assert a.image.dtype == np.float64 and np.all(a.image >= 0) and np.all(a.image == np.round(a.image))
    # mean counts = dose × pixel area (0.2 Å)²
    assert a.image.mean() == pytest.approx(300 * 0.2 * 0.2, rel=0.05)
    c = lattice.two_phase_image((128, 128), 0.02, seed=5, dose=300)
    assert not np.array_equal(a.image, c.image)


def test_ground_truth_spots_are_the_structure():
    li = lattice.lattice_image(
        (128, 160), (0.02, 0.025), grains=[lattice.Grain("LiF", (0, 0, 1), 30.0)], seed=1
    )
    lif = crystals.load_phase("LiF")
    for s in li.spots:
        assert s["d"] == pytest.approx(lif.d_spacing(s["hkl"]), rel=1e-9)
        assert 10 / np.hypot(s["gy"], s["gx"]) == pytest.approx(s["d"], rel=1e-9)
        assert s["hkl"][2] == 0  # in the [001] zone
        r, c = fft.g_to_pixel(s["gy"], s["gx"], (128, 160), (0.02, 0.025))
        assert (s["row"], s["col"]) == pytest.approx((float(r), float(c)))
    # in-plane angle between (200) and (020) is 90°
    v = {s["hkl"]: np.array([s["gy"], s["gx"]]) for s in li.spots}
    a, b = v[(2, 0, 0)], v[(0, 2, 0)]
    assert np.dot(a, b) == pytest.approx(0, abs=1e-9)
    # labels: the grain fills the frame
    assert li.phase_names == ["LiF"] and np.all(li.phase_labels == 1)


def test_spot_labels_symmetric_and_visible():
    li = lattice.two_phase_image((128, 128), 0.02, seed=2, dose=2000)
    m = li.spot_labels
    assert m.any() and np.array_equal(m, fft.from_half(fft.to_half(m), 128))
    for s in li.visible_spots():
        r, c = int(round(s["row"])), int(round(s["col"]))
        assert m[r - 1 : r + 2, c - 1 : c + 2].any()
    # a very low dose hides spots
    lo = lattice.two_phase_image((128, 128), 0.02, seed=2, dose=0.05)
    assert len(lo.visible_spots()) < len(li.visible_spots())


def test_two_phase_layouts_and_errors():
    li = lattice.two_phase_image((96, 96), 0.02, layout="disk", seed=0)
    assert set(np.unique(li.phase_labels)) == {0, 1, 2}
    with pytest.raises(InputError, match="layout"):
        lattice.two_phase_image((96, 96), 0.02, layout="stripes")
    with pytest.raises(InputError, match="mask shape"):
        lattice.lattice_image((64, 64), 0.02, grains=[lattice.Grain("Li", mask=np.ones((8, 8), bool))])


def test_random_grains():
    g = lattice.random_grains((64, 64), seed=3)
    assert g and all(gr.mask.shape == (64, 64) for gr in g)
    assert all(str(gr.phase) in lattice.ZONES for gr in g)


@pytest.mark.parametrize("shape", [(-5, 64), (64.5, 64), (0, 64), 64, (64, 64, 64), "ab"])
def test_lattice_images_bad_shapes(shape):
    for f in (lattice.lattice_image, lattice.two_phase_image, lattice.random_grains):
        with pytest.raises(InputError, match="shape"):
            f(shape)


def test_random_grains_bad_counts():
    with pytest.raises(InputError, match="n_grains"):
        lattice.random_grains((32, 32), n_grains=(5, 1))
    with pytest.raises(InputError, match="crystalline"):
        lattice.random_grains((32, 32), crystalline=2)

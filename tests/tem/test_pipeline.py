import numpy as np
import pytest

from matsight import InputError
from matsight.tem import analyze, lattice

SRTIO3 = {
    "name": "SrTiO3",
    "space_group": "P m -3 m",
    "cell": {"a": 3.905},
    "atoms": [
        {"element": "Sr", "xyz": [0, 0, 0]},
        {"element": "Ti", "xyz": [0.5, 0.5, 0.5]},
        {"element": "O", "xyz": [0.5, 0.5, 0]},
    ],
    "source": "cubic perovskite, a = 3.905 Å",
}


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_two_phase_identified_and_mapped():
    li = lattice.two_phase_image((320, 320), 0.02, phases=("LiF", "Li"), seed=1, dose=600)
    res = analyze(li.image, 0.02)  # all four shipped phases searched
    assert set(res.phases_found) == {"LiF", "Li"}
    for name in ("LiF", "Li"):
        gt = li.phase_labels == li.phase_names.index(name) + 1
        pred = res.maps.labels == res.maps.phase_names.index(name) + 1
        assert _iou(gt, pred) >= 0.7, name
        assert res.maps.area_fraction[name] == pytest.approx(gt.mean(), abs=0.1)
    rows = res.table()
    assert {r["phase"] for r in rows} <= {"LiF", "Li"}
    err = np.abs([r["d_error_percent"] for r in rows])
    assert err.mean() < 0.3 and err.max() < 1.0  # % ; spots 20-60 px from the centre at 320²
    zones = {g["zone"] for g in res.match.grains}
    assert (0, 0, 1) in zones or (0, 0, -1) in zones


def test_amorphous_frame_finds_nothing():
    im = lattice.lattice_image((256, 256), 0.02, grains=[], dose=300, amorphous=0.3, seed=0)
    res = analyze(im.image, 0.02)
    assert len(res.spots) == 0 and res.phases_found == [] and res.maps.labels.max() == 0


def test_bad_inputs():
    with pytest.raises(InputError, match="1D signal"):
        analyze(np.zeros(512), 0.02)
    with pytest.raises(InputError, match="pixel size"):
        analyze(np.zeros((64, 64)), None)
    with pytest.raises(InputError, match="detector"):
        analyze(np.zeros((64, 64)), 0.02, detector="magic")


def _io_ready():
    try:
        from matsight.io import read_microscope  # noqa: F401
    except ImportError:
        return False
    return True


needs_io = pytest.mark.skipif(not _io_ready(), reason="matsight.io.read_microscope not available yet")


@needs_io
def test_srtio3_real_image(shared_data):
    from matsight.tem import analyze_file

    # STEM HAADF image: Z-contrast, kinematic electron intensities do not rank its spots → min_intensity 0
    res, img = analyze_file(
        shared_data / "tem" / "16_STOimage.emi", phases=[SRTIO3], tolerance=0.05, min_intensity=0, maps=False
    )
    assert img.shape == (1024, 1024)
    assert res.pixel_size_nm == pytest.approx((0.0100127, 0.0100127), rel=1e-3)
    found = {}
    for r in res.table():
        if r["phase"] == "SrTiO3":
            fam = "".join(sorted(r["hkl"].replace("-", "").strip("()")))
            found.setdefault(fam, []).append(r["d_angstrom"])
    for fam, d_ref in (("001", 3.905), ("011", 2.761), ("002", 1.9525)):
        assert fam in found, fam
        assert all(abs(d / d_ref - 1) < 0.05 for d in found[fam])


@needs_io
@pytest.mark.parametrize(
    ("name", "msg"),
    [
        ("test_diffraction_pattern.dm3", "diffraction|reciprocal|1/nm"),
        ("ROI_Random_Scan_movie.mrc", "pixel size|calibration"),
        ("test-1.dm4", "pixel size|calibration"),
    ],
)
def test_file_errors(shared_data, name, msg):
    from matsight.tem import analyze_file

    with pytest.raises(InputError, match=msg):
        analyze_file(shared_data / "tem" / name)


@needs_io
def test_1d_signal_file(tmp_path):
    from matsight.tem import analyze_file

    f = tmp_path / "profile.npy"
    np.save(f, np.random.default_rng(0).random(300))
    with pytest.raises(InputError, match="1D signal|1D array|no 2D image"):
        analyze_file(f, pixel_size=0.02)

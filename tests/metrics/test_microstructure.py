import json
import warnings

import numpy as np
import pytest

from matsight import InputError
from matsight.data.microstructures import particle_electrode, two_phase
from matsight.metrics import microstructure as ms


@pytest.fixture(scope="module")
def electrode():
    return particle_electrode((40, 44, 48), volume_fraction=0.45, binder_fraction=0.1, radius=5, seed=7)


@pytest.fixture(scope="module")
def nmc_crop(shared_data):
    from matsight.io import read_labels

    return read_labels(shared_data / "superres" / "nmc_lr.tif")[:64, :64, :64]


def _l_shape(n=64):
    # TauFactor's corner test scaled up: phase 1 fills the plane x0 = 0, phase 2 the plane x1 = 0 (it wins
    # their shared line), pore elsewhere -> one line of n edges along axis 2 touches all three phases
    img = np.zeros((n, n, n), dtype=np.uint8)
    img[0] = 1
    img[:, 0] = 2
    return img


# ------------------------------------------------------------------------------------------ closed forms
def test_volume_fraction():
    img = np.zeros((4, 5, 6), dtype=np.uint8)
    img[:1] = 1
    img[1:, :2, :3] = 3
    vf = ms.volume_fraction(img)
    assert vf == {0: 1 - 0.25 - 18 / 120, 1: 0.25, 3: 18 / 120}
    assert ms.volume_fraction(img, phases=[1, 2]) == {1: 0.25, 2: 0.0}


@pytest.mark.parametrize("n", [8, 16])
def test_flat_interface_ssa_is_one_over_n(n):
    img = np.zeros((n, n, n), dtype=np.uint8)
    img[: n // 2] = 1
    ssa = ms.specific_surface_area(img)
    assert ssa == {0: pytest.approx(1 / n, abs=1e-15), 1: pytest.approx(1 / n, abs=1e-15)}
    # physical units: the interface is normal to Z, area Y·X spacing, volume Z·Y·X spacing → 1/(n·dz)
    assert ms.specific_surface_area(img, phase=1, spacing=(2.0, 3.0, 5.0)) == pytest.approx(1 / (2 * n))
    assert ms.interfacial_area(img) == {(0, 1): pytest.approx(1 / n)}
    # paper normalisation: faces between phases / all internal faces = n² / (3 n² (n − 1))
    assert ms.interfacial_area(img, normalize="faces")[(0, 1)] == pytest.approx(1 / (3 * (n - 1)))
    assert ms.interfacial_area(img, normalize="none")[(0, 1)] == n * n


def test_l_shaped_three_phase_line_tpb_closed_form():
    img = _l_shape(64)
    assert ms.triple_phase_boundary(img) == pytest.approx(64 / 762048, rel=1e-15)
    assert 3 * 64 * 63 * 63 == 762048
    # as a length per volume: 64 unit edges in 64³ voxels; along axis 2 with spacing 0.5 → 32 / (64³/8)
    assert ms.triple_phase_boundary(img, normalize="volume") == pytest.approx(64 / 64**3)
    sp = (1.0, 1.0, 0.5)
    assert ms.triple_phase_boundary(img, normalize="volume", spacing=sp) == pytest.approx(32 / (64**3 / 2))
    assert ms.triple_phase_boundary(img, phases=(0, 1, 2)) == ms.triple_phase_boundary(img)
    assert ms.triple_phase_boundary(img, phases=(0, 1, 3)) == 0.0


def test_taufactor_tpb_unit_cases():
    img = np.zeros((3, 3), dtype=np.uint8)
    img[0] = 1
    img[:, 0] = 2
    assert ms.triple_phase_boundary(img) == 0.25
    cube = np.zeros((2, 2, 2), dtype=np.uint8)
    cube[0, 0, 0] = cube[1, 1, 1] = 1
    cube[0, 1, 1] = cube[1, 0, 0] = 2
    assert ms.triple_phase_boundary(cube) == 1
    corner = np.zeros((2, 2, 2), dtype=np.uint8)
    corner[0] = 1
    corner[:, 0] = 2
    assert ms.triple_phase_boundary(corner) == pytest.approx(1 / 3)
    assert ms.triple_phase_boundary(np.zeros((4, 4, 4), dtype=np.uint8)) == 0.0


def test_two_point_correlation_closed_forms_and_brute_force(rng):
    img = rng.integers(0, 3, size=(12, 13, 14)).astype(np.uint8)
    vf = ms.volume_fraction(img)
    for axis in (0, 1, 2):
        c = ms.two_point_correlation(img, 1, 2, axis=axis, max_distance=6)
        t = np.moveaxis(img, axis, -1)
        a, b = t == 1, t == 2
        n = t.shape[-1]
        brute = [
            (a[..., : n - r] & b[..., r:]).mean() + (b[..., : n - r] & a[..., r:]).mean() for r in range(7)
        ]
        brute = 0.5 * np.array(brute)
        np.testing.assert_allclose(c.probability, brute, atol=1e-6)
        assert c.probability[0] == pytest.approx(0, abs=1e-6)
        cc = ms.two_point_correlation(img, 1, axis=axis, max_distance=6)
        assert cc.probability[0] == pytest.approx(vf[1], abs=1e-6)
    # radial: at lag 0 S = VF; uncorrelated noise → VF² beyond zero lag
    r = ms.two_point_correlation(img, 1, max_distance=5)
    assert r.distance[0] == 0 and r.probability[0] == pytest.approx(vf[1], abs=1e-6)
    np.testing.assert_allclose(r.probability[1:], vf[1] ** 2, atol=0.02)
    # lag along a slab is perfectly correlated
    slab = np.zeros((16, 16, 16), dtype=np.uint8)
    slab[:, :, :6] = 1
    s = ms.two_point_correlation(slab, 1, axis=0, max_distance=10).probability
    np.testing.assert_allclose(s, 6 / 16, atol=1e-6)
    # float32 spectra round to tiny negatives where the probability is 0: clipped, never below 0
    half = np.zeros((20, 20, 20), dtype=np.uint8)
    half[:, :, 10:] = 1
    for axis in (None, 0, 2):
        assert ms.two_point_correlation(half, 0, 1, axis=axis, max_distance=15).probability.min() >= 0


def test_chord_lengths_closed_form():
    line = np.array([[0, 1, 1, 0, 1, 1, 1, 0, 1], [1, 0, 0, 1, 1, 1, 1, 1, 0]], dtype=np.uint8)
    cl = ms.chord_length_distribution(line, 1, axis=1)
    assert sorted(cl.chords) == [2, 3, 5]  # chords touching the ends are trimmed
    assert list(cl.count) == [0, 1, 1, 0, 1] and cl.mean == pytest.approx(10 / 3)
    full = ms.chord_length_distribution(line, 1, axis=1, trim_edges=False, spacing=0.5)
    assert sorted(full.chords) == [1, 1, 2, 3, 5] and full.mean == pytest.approx(12 / 5 * 0.5)
    assert ms.chord_length_distribution(line, 0, axis=0, trim_edges=False).chords.sum() == (line == 0).sum()


def test_chord_length_weighted_pdf_closed_form():
    # one line with chords of 2 and 6 voxels: half the chords each, but 2/8 and 6/8 of the phase's voxels
    line = np.array([[0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0]], dtype=np.uint8)
    cl = ms.chord_length_distribution(line, 1, axis=1, spacing=0.5)
    np.testing.assert_allclose(cl.pdf, [0, 0.5, 0, 0, 0, 0.5])
    np.testing.assert_allclose(cl.length_weighted_pdf, [0, 0.25, 0, 0, 0, 0.75])  # spacing cancels
    d = cl.to_dict()
    assert d["length_weighted_pdf"] == pytest.approx([0, 0.25, 0, 0, 0, 0.75]) and d["pdf"][1] == 0.5
    # no chord at all: zeros, not nan
    assert not ms.chord_length_distribution(np.zeros((3, 5), np.uint8), 1, axis=1).length_weighted_pdf.any()


def test_radial_fft_profile_white_noise_and_sinusoid(rng):
    noise = rng.normal(0, 2.0, size=(64, 64, 64))
    prof = ms.radial_fft_profile(noise)
    # |FFT|/sqrt(N) of white noise is Rayleigh distributed with mean σ·sqrt(π)/2
    np.testing.assert_allclose(np.nanmean(prof.magnitude[2:]), 2.0 * np.sqrt(np.pi) / 2, rtol=0.03)
    yy, xx = np.mgrid[:64, :64]
    wave = np.sin(2 * np.pi * (8 * yy + 6 * xx) / 64)  # |f| = 10/64 cycles per pixel
    p2 = ms.radial_fft_profile(wave, n_bins=32)
    assert p2.frequency[np.nanargmax(p2.magnitude)] == pytest.approx(10 / 64, abs=0.5 / 32)
    stack = np.repeat(wave[None], 4, axis=0)
    p3 = ms.radial_fft_profile(stack, slice_axis=0, n_bins=32)
    np.testing.assert_allclose(p3.magnitude, p2.magnitude, rtol=1e-5)


def test_fft_orientation_ratio_sees_diagonal_streaks(rng):
    from scipy import ndimage as ndi

    yy, xx = np.mgrid[:96, :96]
    diagonal = np.sin(2 * np.pi * (yy + xx) / 6) > 0  # streaks at 45°, |f| = 0.24 cycles per pixel
    across = np.sin(2 * np.pi * yy / 5) > 0  # rows, |f| = 0.2
    assert ms.fft_orientation_ratio(diagonal) > 100
    assert ms.fft_orientation_ratio(across) < 0.01
    # an isotropic texture (smoothed noise): about 1, and the same whatever axis a stack is sliced along
    blobs = ndi.gaussian_filter(rng.normal(size=(48, 96, 96)), 1.5) > 0
    assert ms.fft_orientation_ratio(blobs, slice_axis=0) == pytest.approx(1.0, abs=0.1)
    assert ms.fft_orientation_ratio(np.swapaxes(blobs, 0, 2), slice_axis=2) == pytest.approx(
        ms.fft_orientation_ratio(blobs, slice_axis=0)
    )
    assert np.isnan(ms.fft_orientation_ratio(np.zeros((16, 16))))
    with pytest.raises(InputError, match="band"):
        ms.fft_orientation_ratio(across, band=(0.3, 0.1))


def test_euler_density_matches_skimage_and_counts_grains(rng):
    from skimage.measure import euler_number

    for connectivity in (1, 2):
        for _ in range(3):
            img = (rng.random((30, 41)) < 0.45).astype(np.uint8)
            padded = np.pad(img, 1)  # background around it: the whole image's Euler number
            chi = ms.euler_density(padded, 1, connectivity=connectivity) * 31 * 42
            assert chi == pytest.approx(euler_number(img, connectivity=connectivity))
    # closed forms: k separate squares → k; a ring → 0; the background around them, unpadded: −k (its holes;
    # the part of it the image edges cut off has no boundary inside, as in an endless structure)
    img = np.zeros((20, 20), np.uint8)
    img[2:5, 2:5] = img[8:12, 3:6] = img[14:18, 12:19] = 1
    assert ms.euler_density(np.pad(img, 1), 1) * 21 * 21 == pytest.approx(3)
    assert ms.euler_density(img, 0) * 19 * 19 == pytest.approx(-3)
    ring = np.zeros((12, 12), np.uint8)
    ring[2:10, 2:10] = 1
    ring[4:8, 4:8] = 0
    assert ms.euler_density(ring, 1) == 0
    # a diagonal touch joins two grains only with corner connectivity
    diag = np.pad(np.eye(2, dtype=np.uint8), 1)
    assert ms.euler_density(diag, 1) * 9 == pytest.approx(2)
    assert ms.euler_density(diag, 1, connectivity=2) * 9 == pytest.approx(1)
    # 3D: the mean over the slices of the chosen plane; spacing: per unit area
    vol = np.stack([np.pad(img, 1)] * 4)
    assert ms.euler_density(vol, 1, slice_axis=0) == pytest.approx(ms.euler_density(np.pad(img, 1), 1))
    assert ms.euler_density(img, 1, spacing=0.5) == pytest.approx(4 * ms.euler_density(img, 1))
    with pytest.raises(InputError, match="slice_axis"):
        ms.euler_density(vol, 1)
    with pytest.raises(InputError, match="connectivity"):
        ms.euler_density(img, 1, connectivity=3)


# ------------------------------------------------------------------------------- cross-checks (dev extra)
def test_ssa_interfaces_tpb_match_taufactor(electrode):
    tm = pytest.importorskip("taufactor.metrics")
    img = electrode.astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_ssa = tm.specific_surface_area(img, spacing=(1, 2, 3), method="face_counting", device="cpu")
        ref_ia = tm.interfacial_areas(img, device="cpu")
        ref_tpb = float(tm.triple_phase_boundary(img))
        ref_tpb2 = float(tm.triple_phase_boundary(img[:, :, 5]))
    ssa = ms.specific_surface_area(electrode, spacing=(1, 2, 3))
    assert {str(k): v for k, v in ssa.items()} == pytest.approx(ref_ssa, rel=1e-12)
    assert ms.interfacial_area(electrode) == pytest.approx(ref_ia, rel=1e-12)
    assert ms.triple_phase_boundary(electrode) == pytest.approx(ref_tpb, rel=1e-6)  # TauFactor: float32
    assert ms.triple_phase_boundary(electrode[:, :, 5]) == pytest.approx(ref_tpb2, rel=1e-6)
    assert 0.005 < ms.triple_phase_boundary(electrode) < 0.05


def _porespy():
    pytest.importorskip("porespy")
    import porespy as ps

    return ps


@pytest.mark.parametrize("which", ["nmc", "electrode"])
def test_two_point_correlation_matches_porespy(which, request):
    ps = _porespy()
    img = request.getfixturevalue("nmc_crop" if which == "nmc" else "electrode")
    for a in ms.volume_fraction(img):
        ref = ps.metrics.two_point_correlation(img == a)
        ours = ms.two_point_correlation(img, a, bins=ref.bin_edges)
        np.testing.assert_allclose(ours.distance, ref.distance)
        np.testing.assert_allclose(ours.probability, ref.probability_scaled, atol=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("which", ["nmc", "electrode"])
def test_chord_lengths_match_porespy(which, request):
    ps = _porespy()
    img = request.getfixturevalue("nmc_crop" if which == "nmc" else "electrode")
    for phase in ms.volume_fraction(img):
        for axis in range(3):
            chords = ps.filters.apply_chords(img == phase, spacing=1, axis=axis, trim_edges=True)
            ref = ps.metrics.chord_counts(chords)
            # porespy samples every other line and drops chords on the outermost sampled lines
            sl = [slice(1, -1) if k != axis else slice(None) for k in range(3)]
            sub = img[tuple(slice(None, None, 2) if k != axis else slice(None) for k in range(3))][tuple(sl)]
            ours = ms.chord_length_distribution(sub, phase, axis=axis)
            np.testing.assert_array_equal(np.sort(ours.chords), np.sort(ref))
            ref_pdf = ps.metrics.chord_length_distribution(
                chords, bins=np.arange(0.5, ours.count.size + 1.5)
            ).pdf
            np.testing.assert_allclose(ours.pdf, ref_pdf)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_chord_length_weighted_pdf_matches_porespy():
    ps = _porespy()
    img = (np.random.default_rng(5).random((9, 40, 41)) < 0.6).astype(np.uint8)
    for axis in range(3):
        chords = ps.filters.apply_chords(img == 1, spacing=1, axis=axis, trim_edges=True)
        sl = [slice(1, -1) if k != axis else slice(None) for k in range(3)]
        sub = img[tuple(slice(None, None, 2) if k != axis else slice(None) for k in range(3))][tuple(sl)]
        ours = ms.chord_length_distribution(sub, 1, axis=axis)
        bins = np.arange(0.5, ours.count.size + 1.5)  # unit bins: pdf per bin = probability per length
        ref = ps.metrics.chord_length_distribution(chords, bins=bins, normalization="length").pdf
        np.testing.assert_allclose(ours.length_weighted_pdf, ref, rtol=1e-12)
        assert not np.allclose(ours.length_weighted_pdf, ours.pdf)  # the two weightings differ


# ------------------------------------------------------------------------------ sub-volumes and summary
def test_subvolume_statistics(electrode):
    full = ms.subvolume_statistics(electrode, size=40, n=3, seed=0)
    vf = ms.volume_fraction(electrode[:, :40, :40])
    assert full["corners"].shape == (3, 3) and full["corners"][:, 0].max() == 0
    stats = ms.subvolume_statistics(electrode, size=16, n=20, seed=1, transport=True)
    assert set(stats["volume_fraction"]) == {0, 1, 2} and stats["triple_phase_boundary"].shape == (20,)
    # each sub-cube's numbers are those of the cube itself
    c = stats["corners"][4]
    cube = electrode[c[0] : c[0] + 16, c[1] : c[1] + 16, c[2] : c[2] + 16]
    assert stats["specific_surface_area"][1][4] == ms.specific_surface_area(cube, phase=1)
    assert stats["triple_phase_boundary"][4] == ms.triple_phase_boundary(cube)
    total = sum(stats["volume_fraction"][p] for p in (0, 1, 2))
    np.testing.assert_allclose(total, 1.0)
    te = stats["transport_efficiency"][0]
    assert np.all(te >= 0) and np.all(te <= stats["volume_fraction"][0] + 1e-9)
    assert set(full["volume_fraction"]) == {0, 1, 2} and vf  # size == an image edge is allowed
    with pytest.raises(InputError, match="size"):
        ms.subvolume_statistics(electrode, size=41)


def test_summary_is_strict_json_and_consistent():
    img = two_phase((24, 24, 24), volume_fraction=0.4, size=2, seed=0)
    img[:, :, :2] = 2  # a third phase that only percolates along axes 0 and 1
    s = ms.summary(img, axes=[0, 2], max_distance=8)
    text = json.dumps(s, allow_nan=False)
    assert json.loads(text)["volume_fraction"]["2"] == pytest.approx(2 / 24)
    assert s["tortuosity"]["2"]["0"]["tau"] == pytest.approx(1.0, rel=1e-6)
    assert s["tortuosity"]["2"]["2"] == {
        "tau": None,
        "transport_efficiency": 0.0,
        "percolating": False,
        "percolating_fraction": 0.0,
    }
    assert s["two_point_correlation"]["1-1"]["0"][0] == pytest.approx(s["volume_fraction"]["1"], abs=1e-6)
    assert set(s["two_point_correlation"]) == {"0-0", "0-1", "0-2", "1-1", "1-2", "2-2"}
    assert s["triple_phase_boundary"] == ms.triple_phase_boundary(img)
    assert s["chord_length"]["1"]["2"]["mean"] > 1
    # 2D Euler density per slicing plane; slices normal to axis 2 are all phase 2 or none: no boundary, 0
    assert set(s["euler_density"]["2"]) == {"0", "2"}
    assert s["euler_density"]["2"]["0"] == pytest.approx(ms.euler_density(img, 2, slice_axis=0))
    assert s["euler_density"]["2"]["2"] == 0


@pytest.mark.parametrize(
    "bad",
    [np.zeros(5, dtype=np.uint8), np.linspace(0, 1, 1000).reshape(10, 10, 10), -np.ones((3, 3), dtype=int)],
)
def test_bad_labels_raise_input_error(bad):
    with pytest.raises(InputError):
        ms.volume_fraction(bad)
    with pytest.raises(InputError):
        ms.triple_phase_boundary(bad)


def test_bad_options_raise_input_error(electrode):
    with pytest.raises(InputError, match="spacing"):
        ms.specific_surface_area(electrode, spacing=(1, 2))
    with pytest.raises(InputError, match="axis"):
        ms.chord_length_distribution(electrode, 1, axis=3)
    with pytest.raises(InputError, match="max_distance"):
        ms.two_point_correlation(electrode, 1, axis=0, max_distance=100)
    with pytest.raises(InputError, match="phases"):
        ms.triple_phase_boundary(electrode, phases=(0, 0, 1))

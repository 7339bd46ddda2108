import warnings

import numpy as np
import pytest
from scipy import ndimage

from matsight._errors import InputError
from matsight.metrics.tortuosity import TortuosityResult, tortuosity

METHODS = ("direct", "amg")


def blobs(n=64, seed=0):
    """Seeded 3-phase structure: smoothed noise cut at its 40% and 70% quantiles."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, n, n)), 2.0)
    return np.digitize(field, np.quantile(field, [0.4, 0.7])).astype(np.uint8)


def slanted_strip(length=20):
    """TauFactor's test geometry: a 2x2 strip shifted by one voxel per plane, in 20x21x21."""
    img = np.zeros((length, length + 1, length + 1), dtype=np.uint8)
    for i in range(length):
        img[i, i : i + 2, i : i + 2] = 1
    return img


# ---------------------------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_uniform_block_tau_is_one(method, axis):
    img = np.ones((12, 14, 16), dtype=np.uint8)
    res = tortuosity(img, axis=axis, method=method)
    assert isinstance(res, TortuosityResult)
    assert res.tau == pytest.approx(1.0, abs=1e-9)
    assert res.transport_efficiency == pytest.approx(1.0, abs=1e-9)
    assert res.volume_fraction == 1.0 and res.percolating_fraction == 1.0
    assert res.axis == axis and res.converged and res.method == method


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_straight_channels_tau_one_and_efficiency_equals_vf(method, axis):
    # three phases: two straight channels of phase 2 along `axis` in a 0/1 background
    shape = (18, 20, 22)
    img = np.zeros(shape, dtype=np.uint8)
    img[(np.indices(shape).sum(axis=0) % 3) == 0] = 1
    idx = [slice(None)] * 3
    others = [k for k in range(3) if k != axis]
    for lo, hi in ((2, 5), (10, 14)):
        sel = list(idx)
        sel[others[0]] = slice(lo, hi)
        sel[others[1]] = slice(3, 9)
        img[tuple(sel)] = 2
    vf = np.mean(img == 2)
    res = tortuosity(img, phase=2, axis=axis, method=method)
    assert res.tau == pytest.approx(1.0, abs=1e-9)
    assert res.transport_efficiency == pytest.approx(vf, rel=1e-9)
    assert res.effective_diffusivity == pytest.approx(vf, rel=1e-9)
    assert res.volume_fraction == pytest.approx(vf)


@pytest.mark.parametrize("method", METHODS)
def test_taufactor_slanted_strip(method):
    res = tortuosity(slanted_strip(), phase=1, axis=0, method=method)
    assert res.tau == pytest.approx(7.51667, rel=1e-3)
    assert res.volume_fraction == pytest.approx(80 / (20 * 21 * 21))
    assert res.transport_efficiency == pytest.approx(res.volume_fraction / res.tau)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_axis_argument_permutes(axis):
    strip = slanted_strip()
    moved = np.moveaxis(strip, 0, axis)
    res = tortuosity(moved, phase=1, axis=axis)
    assert res.tau == pytest.approx(7.516667, rel=1e-6)
    assert res.axis == axis % 3
    # a wall normal to `axis` blocks that axis only
    walled = np.ones((8, 9, 10), dtype=np.uint8)
    walled[(slice(None),) * (axis % 3) + (4,)] = 0
    with pytest.warns(RuntimeWarning, match=f"does not percolate along axis {axis % 3}"):
        assert tortuosity(walled, axis=axis).tau == np.inf
    assert tortuosity(walled, axis=(axis + 1) % 3).tau == pytest.approx(1.0)


def test_series_path_in_2d_with_anisotropic_spacing():
    # one-voxel path: inlet -(1/2)- (0,0) -1- (1,0) -lateral- (1,1) -1- (2,1) -1- (3,1) -(1/2)- outlet
    img = np.zeros((4, 2), dtype=np.uint8)
    img[0:2, 0] = 1
    img[1:4, 1] = 1
    vf = 5 / 8
    for spacing, lateral in ((None, 1.0), ((1.0, 2.0), 4.0), ((2.0, 1.0), 0.25)):
        conductance = 1.0 / (0.5 + 1 + lateral + 1 + 1 + 0.5)
        d_rel = conductance * 4 / 2  # D_eff = G · N / A
        res = tortuosity(img, axis=0, spacing=spacing)
        assert res.transport_efficiency == pytest.approx(d_rel, rel=1e-12)
        assert res.tau == pytest.approx(vf / d_rel, rel=1e-12)


def test_dead_ends_add_volume_not_flux():
    base = np.zeros((16, 16, 16), dtype=np.uint8)
    base[:, 4:8, 4:8] = 1  # through channel: D_eff = 16/256
    with_dead = base.copy()
    # a bulky pocket hanging off the channel through a neck in one plane (x = 5): it all sits at c(x=5)
    with_dead[5, 8:10, 5:7] = 1
    with_dead[3:9, 10:14, 4:8] = 1
    with_dead[2:5, 12:15, 12:15] = 1  # isolated blob
    with_dead[:6, 0:2, 0:2] = 1  # dead end touching only the inlet face
    ref = tortuosity(base)
    assert ref.effective_diffusivity == pytest.approx(16 / 256, rel=1e-12)
    for method in METHODS:
        res = tortuosity(with_dead, method=method)
        assert res.effective_diffusivity == pytest.approx(ref.effective_diffusivity, rel=1e-9)
        assert res.volume_fraction == pytest.approx(np.mean(with_dead == 1))
        assert res.tau == pytest.approx(res.volume_fraction / ref.effective_diffusivity, rel=1e-9)
        assert res.tau > ref.tau
        n_through = 256 + 4 + 96  # channel, neck, pocket: connected to both faces
        assert res.percolating_fraction == pytest.approx(n_through / np.count_nonzero(with_dead))


def test_non_percolating_is_inf_with_warning():
    img = np.zeros((10, 20, 20), dtype=np.uint8)
    img[:8, 10, 10] = 1  # TauFactor's dead-end test: a line that stops short of the outlet
    with pytest.warns(RuntimeWarning, match="does not percolate along axis 0"):
        res = tortuosity(img)
    assert res.tau == np.inf
    assert res.transport_efficiency == 0.0 and res.effective_diffusivity == 0.0
    assert res.percolating_fraction == 0.0
    assert res.volume_fraction == pytest.approx(8 / img.size)
    with pytest.warns(RuntimeWarning, match="does not occur"):
        assert tortuosity(img, phase=3).tau == np.inf


def test_bool_mask_and_phase_zero():
    lab = blobs(24, seed=3)
    mask = lab == 1
    a = tortuosity(lab, phase=1)
    b = tortuosity(mask)
    assert b.tau == pytest.approx(a.tau, rel=1e-12)
    assert tortuosity(~mask, phase=0).tau == pytest.approx(a.tau, rel=1e-12)
    not_one = tortuosity((lab != 1).astype(np.int16), phase=1)
    assert tortuosity(mask, phase=0).tau == pytest.approx(not_one.tau, rel=1e-12)


def test_amg_matches_direct_on_random_structure():
    lab = blobs(32, seed=1)
    direct = tortuosity(lab, phase=2, method="direct")
    amg = tortuosity(lab, phase=2, method="amg", tol=1e-8)
    assert amg.method == "amg" and amg.iterations > 0 and amg.converged
    assert amg.tau == pytest.approx(direct.tau, rel=1e-7)
    assert amg.tau_error <= 1e-8


def test_tolerance_controls_accuracy_and_maxiter_warns():
    rng = np.random.default_rng(0)
    img = rng.random((40, 40, 40)) < 0.5  # iid random voxels: a hard, ragged network
    exact = tortuosity(img, method="amg", tol=1e-10).tau
    loose = tortuosity(img, method="amg", tol=1e-3)
    assert loose.converged and abs(loose.tau / exact - 1) < 1e-3
    with pytest.warns(RuntimeWarning, match="stopped after 1 iterations"):
        res = tortuosity(img, method="amg", maxiter=1, tol=1e-12)
    assert not res.converged and res.iterations == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"labels": np.zeros(10, dtype=np.uint8)}, "2D or 3D"),
        ({"labels": np.zeros((0, 4, 4), dtype=np.uint8)}, "empty"),
        ({"labels": np.linspace(0, 1, 64).reshape(4, 4, 4)}, "must be integers"),
        ({"labels": np.ones((4, 4, 4)), "axis": 3}, "axis"),
        ({"labels": np.ones((4, 4, 4)), "spacing": (1, 1)}, "spacing"),
        ({"labels": np.ones((4, 4, 4)), "spacing": (1, 0, 1)}, "spacing"),
        ({"labels": np.ones((4, 4, 4)), "method": "sor"}, "method"),
        ({"labels": np.ones((4, 4, 4)), "tol": 0}, "tol"),
        ({"labels": np.ones((4, 4, 4), dtype=bool), "phase": 2}, "boolean"),
        ({"labels": np.ones((4, 4, 4), dtype=np.uint8), "phase": 1.5}, "phase"),
    ],
)
def test_bad_input_raises_input_error(kwargs, match):
    with pytest.raises(InputError, match=match):
        tortuosity(**kwargs)


def test_integral_float_labels_are_accepted():
    img = np.zeros((6, 6, 6))
    img[:, :3] = 1.0
    assert tortuosity(img).tau == pytest.approx(1.0)


def test_progress_runs_quietly_without_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tortuosity(blobs(16), phase=0, progress=True).tau > 1


# ------------------------------------------------------------------------------------ TauFactor cross-checks


def taufactor_tau(mask):
    tf = pytest.importorskip("taufactor")
    solver = tf.Solver(np.ascontiguousarray(mask, dtype=np.uint8), device="cpu")
    solver.solve(verbose=False)
    return float(np.ravel(solver.tau)[0])


@pytest.mark.parametrize("phase", [0, 1, 2])
def test_matches_taufactor_on_generated_three_phase_volume(phase):
    lab = blobs(64, seed=0)
    for axis in (0, 2):
        ours = tortuosity(lab, phase=phase, axis=axis)
        ref = taufactor_tau(np.moveaxis(lab == phase, axis, 0))  # TauFactor's flux runs along axis 0
        assert ours.tau == pytest.approx(ref, rel=0.01)


def read_nmc(shared_data):
    tifffile = pytest.importorskip("tifffile")
    path = shared_data / "superres" / "nmc_lr.tif"
    if not path.exists():
        pytest.skip("nmc_lr.tif not present")
    return tifffile.imread(path)


@pytest.mark.parametrize("phase", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_matches_taufactor_on_nmc(shared_data, phase):
    nmc = read_nmc(shared_data)
    ours = tortuosity(nmc, phase=phase, axis=0)
    assert ours.volume_fraction == pytest.approx({0: 0.580, 1: 0.420}[phase], abs=1e-3)
    assert ours.tau == pytest.approx(taufactor_tau(nmc == phase), rel=0.01)


def test_matches_taufactor_on_nmc_crop(shared_data):
    crop = read_nmc(shared_data)[:64, :64, :64]
    for phase in (0, 1):
        ours = tortuosity(crop, phase=phase, axis=0)
        assert ours.tau == pytest.approx(taufactor_tau(crop == phase), rel=0.01)

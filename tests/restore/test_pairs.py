"""Simulated LQ scans of an HQ volume."""

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.data.grayscale import synthetic_grayscale
from matsight.restore.pairs import downsample, simulate_lq


def test_downsample_block_mean():
    a = np.arange(16.0).reshape(4, 4)
    np.testing.assert_allclose(downsample(a, 2), [[2.5, 4.5], [10.5, 12.5]])
    assert downsample(np.ones((9, 9)), 1.5).shape == (6, 6)


def test_simulate_lq_is_a_noisy_coarse_scan():
    hq = synthetic_grayscale((96, 96), seed=0, noise=0.0)
    ref = downsample(hq, 2)
    clean = simulate_lq(hq, scale=2, dose=None, shift=(0, 0), rotation_deg=0, n_projections=150)
    noisy = simulate_lq(hq, scale=2, dose=200, shift=(0, 0), rotation_deg=0, n_projections=150, seed=1)
    assert clean.shape == noisy.shape == (48, 48)
    inner = (slice(6, -6), slice(6, -6))
    err_clean = np.abs(clean - ref)[inner].mean()
    err_noisy = np.abs(noisy - ref)[inner].mean()
    assert err_clean < 0.05 * (hq.max() - hq.min())  # FBP of enough noise-free projections ≈ the coarse image
    assert err_noisy > 1.5 * err_clean
    np.testing.assert_array_equal(
        noisy, simulate_lq(hq, scale=2, dose=200, shift=(0, 0), rotation_deg=0, n_projections=150, seed=1)
    )
    few = simulate_lq(hq, scale=2, dose=None, shift=(0, 0), rotation_deg=0, n_projections=12)
    assert np.abs(few - ref)[inner].mean() > err_clean  # streaks from too few angles


def test_simulate_lq_volume_and_misalignment():
    hq = synthetic_grayscale((8, 64, 48), seed=0, noise=0.0)
    lq = simulate_lq(hq, scale=2, shift=(0, 4.0, 0), rotation_deg=0, dose=None, n_projections=100)
    assert lq.shape == (4, 32, 24)
    ref = downsample(hq, 2)
    # content moved down by 4 HQ px = 2 LQ px
    inner = (slice(None), slice(6, -6), slice(4, -4))
    err0 = np.abs(lq - ref)[inner].mean()
    err2 = np.abs(lq[:, 2:] - ref[:, :-2])[:, 4:-6, 4:-4].mean()
    assert err2 < err0


def test_downsample_bad_scale():
    with pytest.raises(InputError, match="scale"):
        downsample(np.zeros((8, 8)), float("nan"))


def test_simulate_lq_errors():
    with pytest.raises(InputError, match="constant"):
        simulate_lq(np.zeros((16, 16)))
    with pytest.raises(InputError, match="n_projections"):
        simulate_lq(np.eye(16), n_projections=1)
    with pytest.raises(InputError, match="2D"):
        simulate_lq(np.zeros(16))

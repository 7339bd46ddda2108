"""Resolution metrics: closed-form FWHM of erf edges and Gaussian lines, in images and volumes."""

import math

import numpy as np
import pytest
from scipy import ndimage, special

from matsight._errors import InputError
from matsight.data.grayscale import synthetic_grayscale
from matsight.metrics.resolution import GAUSS_FWHM, edge_fwhm, fwhm_from_profile, line_fwhm


@pytest.mark.parametrize("sigma", [1.2, 2.0, 3.5])
def test_fwhm_from_profile_erf_closed_form(sigma):
    x = np.arange(-20, 20.01, 0.5)
    prof = 3.0 - 2.0 * special.erf((x - 0.7) / (math.sqrt(2) * sigma))  # bright -> dark, offset, scaled
    expected = GAUSS_FWHM * sigma * 10.0  # samples every 0.5 px of 10 nm pixels -> nm
    assert GAUSS_FWHM == pytest.approx(2.3548, abs=1e-4)
    assert fwhm_from_profile(prof, spacing=5.0) == pytest.approx(expected, rel=0.03)
    assert fwhm_from_profile(prof, spacing=5.0, method="derivative") == pytest.approx(expected, rel=0.03)


def test_fwhm_from_profile_rejects_non_edges(rng):
    assert math.isnan(fwhm_from_profile(rng.normal(size=60)))
    assert math.isnan(fwhm_from_profile(np.r_[np.zeros(10), np.ones(20), np.zeros(10)] + 0.0))
    with pytest.raises(InputError, match="1D"):
        fwhm_from_profile(np.zeros((3, 3)))
    with pytest.raises(InputError, match="method"):
        fwhm_from_profile(np.arange(10.0), method="quadratic")


@pytest.mark.parametrize("angle", [0.0, 25.0, 70.0])
def test_edge_fwhm_straight_erf_edge(angle):
    sigma = 2.0
    yy, xx = np.mgrid[:128, :128].astype(float)
    t = np.deg2rad(angle)
    img = 10 + 5 * special.erf((xx * np.cos(t) + yy * np.sin(t) - 70) / (math.sqrt(2) * sigma))
    res = edge_fwhm(img, spacing=50.0)
    assert res.widths.size >= 4
    assert res.median == pytest.approx(GAUSS_FWHM * sigma * 50.0, rel=0.03)
    # the profiles run along the true normal
    normal = np.array([np.sin(t), np.cos(t)])
    assert np.all(np.abs(np.abs(res.normals @ normal) - 1) < 1e-3)


def test_edge_fwhm_blurred_disc_with_noise(rng):
    sigma = 2.5
    yy, xx = np.mgrid[:160, :160]
    disc = (np.hypot(yy - 80, xx - 80) < 50).astype(float)
    img = ndimage.gaussian_filter(disc, sigma) + rng.normal(0, 0.01, disc.shape)
    res = edge_fwhm(img, n_edges=30)
    assert res.widths.size >= 10
    assert res.median == pytest.approx(GAUSS_FWHM * sigma, rel=0.03)
    sharper = edge_fwhm(ndimage.gaussian_filter(disc, 1.5) + rng.normal(0, 0.01, disc.shape), n_edges=30)
    assert sharper.median < res.median


def test_edge_fwhm_volume_and_errors():
    vol = synthetic_grayscale((6, 96, 96), seed=2, noise=0.0)
    res = edge_fwhm(vol, n_edges=20)
    assert res.points.shape[1] == 3 and res.widths.size > 5
    assert set(res.as_dict()) == {"median", "mean", "std", "n_edges", "n_candidates"}
    with pytest.raises(InputError, match="too small"):
        edge_fwhm(np.zeros((10, 10)))
    assert edge_fwhm(np.zeros((64, 64))).widths.size == 0  # no edges: empty, median NaN
    assert math.isnan(edge_fwhm(np.zeros((64, 64))).median)


@pytest.mark.parametrize("angle", [0.0, 30.0])
def test_line_fwhm_gaussian_lines_closed_form(angle, rng):
    # straight Gaussian lines of known σ, 16 px apart: the profile across a line is the Gaussian itself
    sigma = 1.2
    yy, xx = np.mgrid[:160, :160].astype(float)
    t = np.deg2rad(angle)
    u = (xx * np.cos(t) + yy * np.sin(t)) % 16 - 8
    img = np.exp(-0.5 * (u / sigma) ** 2) + rng.normal(0, 0.01, u.shape)
    res = line_fwhm(img, spacing=2.0, profile_length=12, n_lines=40)
    assert res.finite.size >= 20
    assert res.median == pytest.approx(GAUSS_FWHM * sigma * 2.0, rel=0.03)
    normal = np.array([np.sin(t), np.cos(t)])
    assert np.all(np.abs(np.abs(res.normals @ normal) - 1) < 0.02)
    # measured at the same places on a blurrier copy: wider by the convolution rule, rows stay paired
    blur = ndimage.gaussian_filter(img, 1.0)
    same = line_fwhm(blur, points=res.points, normals=res.normals, profile_length=12)
    assert same.widths.shape == res.widths.shape
    assert same.median == pytest.approx(GAUSS_FWHM * math.hypot(sigma, 1.0), rel=0.04)
    # dark lines are found with polarity="dark", not as bright ones; edges (steps) are no lines
    assert line_fwhm(-img, polarity="dark", profile_length=12).median == pytest.approx(
        res.median / 2, rel=0.03
    )
    step = (xx > 80).astype(float)
    assert line_fwhm(ndimage.gaussian_filter(step, 1.5), profile_length=12).finite.size == 0
    with pytest.raises(InputError, match="polarity"):
        line_fwhm(img, polarity="up")


def test_edge_fwhm_noisy_edge_profile_averaging(rng):
    sigma = 2.0
    yy, xx = np.mgrid[:128, :128].astype(float)
    t = np.deg2rad(35)
    clean = special.erf((xx * np.cos(t) + yy * np.sin(t) - 75) / (math.sqrt(2) * sigma))
    noisy = clean + rng.normal(0, 0.25, clean.shape)  # CNR ~ 4 per pixel
    res = edge_fwhm(noisy, n_edges=20, sigma=2.5, profile_width=21)
    assert res.widths.size >= 3
    assert res.median == pytest.approx(GAUSS_FWHM * sigma, rel=0.1)
    with pytest.raises(InputError, match="profile_width"):
        edge_fwhm(noisy, profile_width=0)

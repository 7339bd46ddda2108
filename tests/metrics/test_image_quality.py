"""Image-quality metrics: scikit-image equivalence, hand-computed CNR/SNR, SIFT, the summary."""

import math

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.data.grayscale import synthetic_grayscale
from matsight.metrics.image_quality import (
    cnr,
    otsu_masks,
    psnr,
    quality_summary,
    sift_congruent_keypoints,
    snr,
    ssim,
)


@pytest.fixture(scope="module")
def gray():
    return synthetic_grayscale((192, 192), seed=0)


def test_psnr_ssim_equal_scikit_image(gray, rng):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    noisy = gray + rng.normal(0, 0.05, gray.shape).astype(np.float32)
    dr = float(gray.max()) - float(gray.min())
    assert psnr(gray, noisy) == pytest.approx(peak_signal_noise_ratio(gray, noisy, data_range=dr), rel=1e-9)
    assert psnr(gray, noisy, data_range=2.0) == pytest.approx(
        peak_signal_noise_ratio(gray, noisy, data_range=2.0), rel=1e-9
    )
    assert ssim(gray, noisy) == pytest.approx(structural_similarity(gray, noisy, data_range=dr), rel=1e-9)
    # closed form: PSNR = 10 log10(range^2 / MSE)
    mse = np.mean((gray.astype(float) - noisy) ** 2)
    assert psnr(gray, noisy) == pytest.approx(10 * math.log10(dr**2 / mse), rel=1e-6)
    assert ssim(gray, gray) == pytest.approx(1.0)
    vol = synthetic_grayscale((12, 32, 32), seed=1)
    assert 0 < ssim(vol, vol + 0.1 * rng.random(vol.shape)) < 1


def test_psnr_ssim_mask(gray, rng):
    from skimage.metrics import structural_similarity

    noisy = gray + rng.normal(0, 0.05, gray.shape).astype(np.float32)
    noisy[:20] += 1.0  # a damaged band outside the mask
    m = np.zeros(gray.shape, bool)
    m[40:150, 30:170] = True
    dr = float(gray[m].max()) - float(gray[m].min())
    mse = np.mean((gray[m].astype(float) - noisy[m]) ** 2)
    assert psnr(gray, noisy, mask=m) == pytest.approx(10 * math.log10(dr**2 / mse), rel=1e-9)
    assert psnr(gray, noisy, mask=m) > psnr(gray, noisy) + 5
    _, smap = structural_similarity(gray, noisy, data_range=2.0, full=True)
    assert ssim(gray, noisy, data_range=2.0, mask=m) == pytest.approx(smap[m].mean())
    with pytest.raises(InputError, match="selects no pixels"):
        psnr(gray, noisy, mask=np.zeros(gray.shape, bool))
    with pytest.raises(InputError, match="does not fit"):
        ssim(gray, noisy, mask=m[:10])


def test_psnr_ssim_errors(gray):
    with pytest.raises(InputError, match="differ in shape"):
        psnr(gray, gray[:-1])
    with pytest.raises(InputError, match="data_range"):
        psnr(np.ones((8, 8)), np.zeros((8, 8)))
    bad = gray.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        ssim(gray, bad)
    with pytest.raises(InputError, match="window"):
        ssim(gray[:5, :5], gray[:5, :5])


def test_cnr_snr_hand_computed():
    img = np.array([[10.0, 12.0, 2.0, 4.0], [14.0, 12.0, 3.0, 3.0]])
    fg = np.array([[1, 1, 0, 0], [1, 1, 0, 0]], bool)
    bg = ~fg
    # fg: mean 12, var ((4+0+4+0)/4) = 2; bg: mean 3, var (1+1+0+0)/4 = 0.5
    assert cnr(img, fg, bg) == pytest.approx(9 / math.sqrt(2.5))
    assert cnr(img, fg, bg, noise="background") == pytest.approx(9 / math.sqrt(0.5))
    assert cnr(img, fg, bg, noise="mean") == pytest.approx(9 / math.sqrt(1.25))
    assert snr(img, fg, bg) == pytest.approx(12 / math.sqrt(0.5))
    assert snr(img, fg) == pytest.approx(12 / math.sqrt(2))
    with pytest.raises(InputError, match="shape"):
        cnr(img, fg[:, :2], bg)
    with pytest.raises(InputError, match="neither"):
        cnr(img, fg)
    with pytest.raises(InputError, match="noise"):
        cnr(img, fg, bg, noise="peak")


def test_otsu_masks_default_cnr(rng):
    img = np.zeros((64, 64))
    img[:, 32:] = 1.0
    img += rng.normal(0, 0.1, img.shape)
    fg, bg = otsu_masks(img, erode=2)
    assert fg[:, 37:].all() and not fg[:, :31].any() and bg[:, :27].all() and not bg[:, 33:].any()
    assert cnr(img) == pytest.approx(cnr(img, fg, bg))
    assert cnr(img) == pytest.approx(1 / math.sqrt(0.02), rel=0.1)
    with pytest.raises(InputError, match="constant"):
        otsu_masks(np.ones((8, 8)))


def test_sift_congruent_identical_vs_noise(gray, rng):
    same = sift_congruent_keypoints(gray, gray, return_details=True)
    assert same["keypoints_a"] > 50
    assert same["congruent"] >= 0.9 * same["keypoints_a"]
    noise = rng.random(gray.shape)
    assert sift_congruent_keypoints(gray, noise) <= 2
    noisy = gray + rng.normal(0, 0.05, gray.shape)
    n_noisy = sift_congruent_keypoints(gray, noisy)
    assert 2 < n_noisy < same["congruent"]
    # position tolerance matters: a 6-pixel shift keeps matches but they are not congruent within 2 px
    shifted = np.roll(gray, 6, axis=1)
    d = sift_congruent_keypoints(gray, shifted, max_distance=2.0, return_details=True)
    assert d["matches"] > 20 and d["congruent"] < 0.2 * d["matches"]
    with pytest.raises(InputError, match="too small"):
        sift_congruent_keypoints(gray[:8, :8], gray[:8, :8])


def test_quality_summary_consistent_with_parts(gray, rng):
    noisy = gray + rng.normal(0, 0.05, gray.shape).astype(np.float32)
    m = np.zeros(gray.shape, bool)
    m[16:-16, 16:-16] = True
    q = quality_summary(gray, noisy, mask=m, data_range=1.0)
    assert q["psnr"] == pytest.approx(psnr(gray, noisy, mask=m, data_range=1.0))
    assert q["ssim"] == pytest.approx(ssim(gray, noisy, mask=m, data_range=1.0))
    fg, bg = otsu_masks(gray)
    assert q["cnr"] == pytest.approx(cnr(noisy, fg & m, bg & m))
    assert q["snr"] == pytest.approx(snr(noisy, fg & m, bg & m))
    assert q["fwhm_n"] > 0 and q["sift_congruent"] <= q["sift_matches"]
    clean = quality_summary(gray, gray, mask=m, data_range=1.0, sift=False)
    assert clean["psnr"] == math.inf and clean["cnr"] > q["cnr"] and "sift_congruent" not in clean

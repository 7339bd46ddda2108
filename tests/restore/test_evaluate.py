import numpy as np
import pytest
from scipy import ndimage

from matsight import InputError
from matsight.restore.evaluate import compare, profile_line


@pytest.fixture
def scene(rng):
    img = np.zeros((96, 96), np.float32)
    yy, xx = np.mgrid[:96, :96]
    for cy, cx, r in [(25, 25, 12), (60, 70, 15), (70, 25, 10)]:
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1.0
    return ndimage.gaussian_filter(img, 1.0)


def test_compare_orders_blur_and_noise(scene, rng):
    blurred = ndimage.gaussian_filter(scene, 2.0)
    noisy = scene + rng.normal(0, 0.15, scene.shape).astype(np.float32)
    m = compare(scene, {"same": scene.copy(), "blurred": blurred, "noisy": noisy}, n_edges=20, sift=False)
    assert list(m)[0] == "HQ"
    assert m["same"]["psnr"] == np.inf and m["same"]["ssim"] == pytest.approx(1.0)
    # Gaussian blur widths add in quadrature: sqrt(1 + 4) vs 1 (FWHM = 2.355 σ)
    assert m["HQ"]["fwhm_median"] == pytest.approx(2.355, rel=0.15)
    assert m["blurred"]["fwhm_median"] == pytest.approx(2.355 * np.sqrt(5), rel=0.15)
    assert m["noisy"]["cnr"] < m["HQ"]["cnr"] / 2
    assert m["blurred"]["psnr"] > 15 and m["noisy"]["psnr"] < m["blurred"]["psnr"] + 10


def test_compare_rejects_mismatched_and_nan(scene):
    with pytest.raises(InputError, match="HQ grid"):
        compare(scene, {"x": scene[:90]}, sift=False)
    bad = scene.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        compare(scene, {"x": bad}, sift=False)


def test_profile_line_crosses_edges(scene):
    r, c0, c1 = profile_line(scene, length=40)
    prof = scene[r, c0:c1]
    assert prof.max() - prof.min() > 0.8 and c1 - c0 == 40

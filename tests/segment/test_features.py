import numpy as np
import pytest
from scipy import ndimage as ndi

from matsight.segment.features import compute_features, feature_names, feature_radius, normalize


@pytest.mark.parametrize("ndim", [2, 3])
def test_names_match_channels(rng, ndim):
    img = rng.random((12,) * ndim).astype(np.float32)
    cfg = {"sigmas": [1, 2]}
    f = compute_features(img, cfg)
    names = feature_names(cfg, ndim)
    assert f.shape == (*img.shape, len(names)) and f.dtype == np.float32
    # intensity + per sigma: gaussian, gradient, log, dog, ndim Hessian eigs, ndim structure-tensor eigs
    assert len(names) == 1 + 2 * (4 + 2 * ndim)
    assert np.array_equal(f[..., 0], img)


def test_gaussian_and_hessian_match_scikit_image(rng):
    from skimage.feature import hessian_matrix, hessian_matrix_eigvals
    from skimage.filters import gaussian

    img = ndi.gaussian_filter(rng.random((80, 90)), 3).astype(np.float32)
    img = normalize(img, img.min(), img.max())
    f = compute_features(img, {"sigmas": [2.0], "kinds": ["gaussian", "hessian"]})
    g = gaussian(img, 2.0, mode="reflect", truncate=4.0, preserve_range=True)
    np.testing.assert_allclose(f[..., 0], g, atol=1e-6)
    ev = hessian_matrix_eigvals(
        hessian_matrix(img, 2.0, order="rc", use_gaussian_derivatives=True, mode="reflect")
    )
    core = (slice(10, -10), slice(10, -10))  # skimage uses a longer kernel: compare away from borders
    scale = np.abs(ev).max()
    assert np.abs(f[..., 1] - ev[0])[core].max() < 0.01 * scale
    assert np.abs(f[..., 2] - ev[1])[core].max() < 0.01 * scale


def test_hessian_of_quadratic_is_constant_closed_form():
    yy, xx = np.mgrid[:60, :70].astype(np.float64)
    q = 0.01 * (yy - 30) ** 2 - 0.02 * (xx - 35) ** 2 + 0.005 * (yy - 30) * (xx - 35)
    f = compute_features(q, {"sigmas": [2.0], "kinds": ["hessian", "log"]})
    exact = np.linalg.eigvalsh([[0.02, 0.005], [0.005, -0.04]])[::-1]
    # channel order is canonical: log, then the Hessian eigenvalues (descending)
    np.testing.assert_allclose(f[30, 35, 0], 0.02 - 0.04, rtol=0.02)  # LoG = trace
    np.testing.assert_allclose(f[30, 35, 1:], exact, rtol=0.02)


def test_3d_hessian_eigenvalues_of_quadratic():
    z, y, x = np.mgrid[:24, :24, :24].astype(np.float64) - 12
    q = 0.03 * z**2 + 0.01 * y**2 - 0.02 * x**2
    f = compute_features(q, {"sigmas": [1.5], "kinds": ["hessian"]})
    np.testing.assert_allclose(f[12, 12, 12], [0.06, 0.02, -0.04], rtol=0.02)


@pytest.mark.parametrize("shape", [(70, 65), (30, 34, 28)])
def test_halo_gives_bit_identical_core(rng, shape):
    img = rng.random(shape).astype(np.float32)
    cfg = {"sigmas": [1.0, 2.5]}
    full = compute_features(img, cfg)
    h = feature_radius(cfg)
    core = tuple(slice(s // 2 - 3, s // 2 + 4) for s in shape)
    ext = tuple(slice(max(0, c.start - h), min(s, c.stop + h)) for c, s in zip(core, shape, strict=False))
    part = compute_features(img[ext], cfg)
    inner = tuple(slice(c.start - e.start, c.stop - e.start) for c, e in zip(core, ext, strict=False))
    assert np.array_equal(part[inner], full[core])


def test_radius():
    # structure tensor: inner sigma/2 + outer sigma kernels, truncated at 4 sigma
    assert feature_radius({"sigmas": [4.0]}) == 8 + 16
    assert feature_radius({"sigmas": [4.0], "kinds": ["gaussian"]}) == 16

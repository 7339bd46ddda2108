import numpy as np
import pytest

from matsight import InputError
from matsight.tem import fft


@pytest.mark.parametrize("n", [8, 9, 16, 17])
def test_friedel_mate_indices(n):
    c = n // 2
    for k in range(-(n // 2) + (n % 2 == 0), (n - 1) // 2 + 1):
        assert fft.friedel_mate(c + k, (n,)) == c - k
    if n % 2 == 0:  # Nyquist index is its own mate
        assert fft.friedel_mate(0, (n,)) == 0
    idx = np.arange(n)
    assert np.array_equal(fft.friedel_mate(fft.friedel_mate(idx, (n,)), (n,)), idx)


@pytest.mark.parametrize("shape", [(32, 32), (33, 31), (32, 35), (17, 20), (16, 17)])
def test_half_roundtrip_exact_even_and_odd(shape, rng):
    img = rng.random(shape)
    S = fft.spectrum(img, window_kind="none")
    ref = np.fft.fftshift(np.fft.fft2(img - img.mean()))
    np.testing.assert_allclose(S, ref, atol=1e-10)
    half = fft.to_half(S)
    assert half.shape == (shape[0], shape[1] // 2 + 1)
    assert np.array_equal(fft.from_half(half, shape[1], conjugate=True), S)
    mag = np.abs(S)
    assert np.array_equal(fft.from_half(fft.to_half(mag), shape[1]), mag)
    # magnitude is exactly Friedel-symmetric everywhere
    ii, jj = np.indices(shape)
    mi, mj = fft.friedel_mate(np.stack([ii, jj], -1), shape).transpose(2, 0, 1)
    assert np.array_equal(mag[mi, mj], mag)
    # the half spectrum equals rfft2 (with a row fftshift)
    np.testing.assert_allclose(half, np.fft.fftshift(np.fft.rfft2(img - img.mean()), axes=0), atol=1e-10)


def test_from_half_rejects_wrong_width():
    with pytest.raises(InputError, match="half spectrum width"):
        fft.from_half(np.zeros((8, 4)), 8)


def test_calibration_non_square_anisotropic():
    # fringes of known spacing on a 96×160 frame with 0.02 × 0.03 nm pixels
    ny, nx, py, px = 96, 160, 0.02, 0.03
    gy_true, gx_true = 10 / (ny * py), 20 / (nx * px)  # exactly on pixels 10 and 20 off the centre
    yy, xx = np.mgrid[:ny, :nx]
    img = 100 + 10 * np.cos(2 * np.pi * (gy_true * yy * py + gx_true * xx * px))
    P = np.abs(fft.spectrum(img, window_kind="none")) ** 2
    P[ny // 2, nx // 2] = 0
    r, c = np.unravel_index(np.argmax(P), P.shape)
    gy, gx = fft.pixel_to_g(r, c, P.shape, (py, px))
    assert {(round(abs(float(gy)), 9), round(abs(float(gx)), 9))} == {(round(gy_true, 9), round(gx_true, 9))}
    d = fft.d_spacing(gy, gx)
    assert d == pytest.approx(10 / np.hypot(gy_true, gx_true), rel=1e-12)
    r2, c2 = fft.g_to_pixel(gy, gx, P.shape, (py, px))
    assert (r2, c2) == pytest.approx((r, c))


def test_denoise_paper_steps():
    x = np.linspace(0, 1, 101)
    out = fft.denoise(x)
    assert out.min() >= 0 and out.max() <= 1
    assert np.all(out[x <= x.mean()] == pytest.approx(11 / 255))  # below the mean: brightness only
    assert np.all(np.diff(out) >= 0)


def test_window_kinds():
    for kind in ("hann", "tukey", "none"):
        w = fft.window((8, 12), kind)
        assert w.shape == (8, 12) and w.max() <= 1
    with pytest.raises(InputError, match="unknown window"):
        fft.window((8, 8), "boxcar")


@pytest.mark.parametrize(
    ("arr", "msg"),
    [(np.zeros(100), "1D signal"), (np.zeros((3, 32, 32)), "tem series"), (np.full((32, 32), np.nan), "NaN")],
)
def test_check_frame_errors(arr, msg):
    with pytest.raises(InputError, match=msg):
        fft.check_frame(arr)


@pytest.mark.parametrize("ps", [None, 0, -1, np.nan, (0.1, 0.2, 0.3)])
def test_check_pixel_size_errors(ps):
    with pytest.raises(InputError, match="pixel size"):
        fft.check_pixel_size(ps)

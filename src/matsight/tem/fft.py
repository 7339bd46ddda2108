"""Windowed FFT of raw HRTEM counts, reciprocal-space calibration and exact half-spectrum (Friedel) tools.

Conventions (used by every module of :mod:`matsight.tem`):

- A centred spectrum ``S`` of a ``(ny, nx)`` frame is ``fftshift(fft2(frame))``; the zero frequency sits at
  ``(cy, cx) = (ny // 2, nx // 2)``.
- Pixel ``(i, j)`` of ``S`` is the reciprocal vector ``g = ((i - cy) / (ny py), (j - cx) / (nx px))`` in 1/nm,
  with ``(py, px)`` the pixel size in nm per axis (non-square frames, anisotropic pixels handled), and the
  lattice spacing is ``d = 10 / |g|`` Å.
- The Friedel mate of ``(i, j)`` is ``((2 cy - i) mod ny, (2 cx - j) mod nx)``: for even ``n`` the mate of
  ``n/2 + k`` is ``n/2 - k`` and the Nyquist index 0 is its own mate; for odd ``n`` the mate of ``cy + k`` is
  ``cy - k``.
- The *half* spectrum keeps columns ``cx ... nx-1`` and, for even ``nx``, the Nyquist column 0 appended last:
  ``(ny, nx // 2 + 1)`` — exactly the layout of :func:`numpy.fft.rfft2` after a row ``fftshift``. It holds one
  member of every Friedel pair, so :func:`from_half` rebuilds the full spectrum exactly.

The paper's tool takes the FFT of an 8-bit display PNG; here the FFT is always of the raw counts in float64.
"""

import numpy as np

from .._errors import InputError

__all__ = [
    "window",
    "periodic_component",
    "spectrum",
    "log_magnitude",
    "denoise",
    "reciprocal_coords",
    "pixel_to_g",
    "g_to_pixel",
    "d_spacing",
    "friedel_mate",
    "to_half",
    "from_half",
    "check_frame",
    "check_pixel_size",
]


def check_frame(image):
    """Return ``image`` as a 2D float64 array or raise :class:`InputError` naming the problem and the fix."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "biuf":
        raise InputError(
            f"image must be numeric, got dtype {arr.dtype}; pass the raw counts of an HRTEM frame"
        )
    if arr.ndim == 1:
        raise InputError(
            f"got a 1D signal of {arr.shape[0]} samples, not an image; pass a 2D HRTEM frame (y, x)"
        )
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise InputError(
            f"expected one 2D frame, got an array of shape {arr.shape}; use `matsight tem series` for stacks"
        )
    if min(arr.shape) < 16:
        raise InputError(
            f"frame {arr.shape} is too small for an FFT analysis; use frames of at least 16×16 px"
        )
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        raise InputError("image contains NaN or inf values; crop or fill them before the FFT")
    return arr


def check_pixel_size(pixel_size_nm, ndim=2):
    """Return the pixel size as a ``(py, px)`` tuple in nm; a scalar means square pixels."""
    if pixel_size_nm is None:
        raise InputError(
            "no pixel size: the file has no calibration; pass --pixel-size NM (pixel_size_nm=...) in nm"
        )
    ps = np.atleast_1d(np.asarray(pixel_size_nm, dtype=float)).ravel()
    if ps.size == 1:
        ps = np.repeat(ps, ndim)
    if ps.size != ndim:
        raise InputError(f"pixel size needs {ndim} values (y, x) in nm, got {ps.size}")
    if not np.all(np.isfinite(ps)) or np.any(ps <= 0):
        raise InputError(
            f"invalid pixel size {tuple(ps)} nm; give a positive calibration with --pixel-size NM"
        )
    return tuple(float(p) for p in ps)


def window(shape, kind="hann", *, alpha=0.25):
    """Separable 2D apodisation window that suppresses the edge cross of a non-periodic frame.

    Parameters
    ----------
    shape : tuple of int
        ``(ny, nx)``.
    kind : {"hann", "tukey", "none"}
        Hann (default, best leakage suppression) or Tukey (flat centre, keeps more of the frame's area).
    alpha : float
        Tukey taper fraction.

    Returns
    -------
    ndarray, float64, shape ``shape``
    """
    import scipy.signal

    if kind in (None, "none", "periodic"):
        return np.ones(shape)
    if kind == "hann":
        wy, wx = (scipy.signal.windows.hann(n, sym=False) for n in shape)
    elif kind == "tukey":
        wy, wx = (scipy.signal.windows.tukey(n, alpha, sym=False) for n in shape)
    else:
        raise InputError(f"unknown window {kind!r}; use hann, tukey or none")
    return np.outer(wy, wx)


def periodic_component(image):
    """Periodic part of a frame (Moisan's periodic + smooth decomposition): no edge cross in its FFT."""
    u = np.asarray(image, float)
    ny, nx = u.shape
    v = np.zeros_like(u)
    v[0, :] += u[-1, :] - u[0, :]
    v[-1, :] += u[0, :] - u[-1, :]
    v[:, 0] += u[:, -1] - u[:, 0]
    v[:, -1] += u[:, 0] - u[:, -1]
    q = np.fft.fftfreq(ny)[:, None]
    r = np.fft.rfftfreq(nx)[None, :]
    den = 2 * np.cos(2 * np.pi * q) + 2 * np.cos(2 * np.pi * r) - 4
    den[0, 0] = 1.0
    V = np.fft.rfft2(v) / den
    V[0, 0] = 0.0
    return u - np.fft.irfft2(V, s=u.shape)


def spectrum(image, *, window_kind="hann", half=False):
    """Centred complex spectrum of a frame's raw counts (float64), after mean subtraction and apodisation.

    Computed with a real FFT and mirrored, so ``|S|`` is *exactly* Friedel-symmetric.

    Parameters
    ----------
    image : array_like, 2D
        Raw counts.
    window_kind : {"hann", "tukey", "periodic", "none"}
        ``"periodic"`` removes the edge discontinuity by Moisan's periodic + smooth decomposition instead of
        tapering, so grains near the frame edges count as much as central ones.
    half : bool
        Return only the half spectrum (see the module docstring) — cheaper.

    Returns
    -------
    ndarray, complex128
        ``(ny, nx)`` centred spectrum, or ``(ny, nx // 2 + 1)`` half spectrum.
    """
    img = check_frame(image)
    img = img - img.mean()  # remove the DC spike before windowing
    if window_kind == "periodic":
        img = periodic_component(img)
    elif window_kind not in (None, "none"):
        img = img * window(img.shape, window_kind)
    r = np.fft.rfft2(img)
    h = np.fft.fftshift(r, axes=0)
    # the gx = 0 (and Nyquist) columns are their own mirror: make them exactly Hermitian (FFT rounding is not)
    ny = h.shape[0]
    mate = friedel_mate(np.arange(ny), (ny,))
    cols = [0, h.shape[1] - 1] if img.shape[1] % 2 == 0 else [0]
    for c in cols:
        h[:, c] = 0.5 * (h[:, c] + np.conj(h[mate, c]))
    # rfft columns are frequencies 0..nx//2 = centred columns cx..nx-1 (+ Nyquist column 0 when nx is even)
    if half:
        return h
    return from_half(h, img.shape[1], conjugate=True)


def log_magnitude(spec, *, normalise=True):
    """``log(1 + |S|)``, optionally scaled to [0, 1] (the paper's display image)."""
    out = np.log1p(np.abs(spec))
    if normalise:
        lo, hi = out.min(), out.max()
        out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
    return out


def denoise(logmag, *, contrast=3.0, brightness=11.0 / 255.0):
    """The paper's FFT denoising: subtract the mean, clip at 0, then linear contrast/brightness.

    ``logmag`` is a normalised log magnitude in [0, 1]; the paper's ``convertScaleAbs(alpha=3, beta=11)`` on
    8-bit values is ``contrast=3, brightness=11/255`` here, saturated to [0, 1].
    """
    x = np.clip(logmag - logmag.mean(), 0.0, None)
    return np.clip(contrast * x + brightness, 0.0, 1.0)


def _centre(shape):
    return shape[0] // 2, shape[1] // 2


def reciprocal_coords(shape, pixel_size_nm):
    """Reciprocal coordinates of every pixel of a centred spectrum.

    Returns
    -------
    gy, gx : ndarray
        1D arrays (1/nm) for the rows and columns: ``g = (k - n//2) / (n * pixel)``.
    """
    py, px = check_pixel_size(pixel_size_nm)
    ny, nx = shape
    gy = (np.arange(ny) - ny // 2) / (ny * py)
    gx = (np.arange(nx) - nx // 2) / (nx * px)
    return gy, gx


def pixel_to_g(rows, cols, shape, pixel_size_nm):
    """Sub-pixel spectrum positions → reciprocal vectors ``(gy, gx)`` in 1/nm."""
    py, px = check_pixel_size(pixel_size_nm)
    cy, cx = _centre(shape)
    return (np.asarray(rows, float) - cy) / (shape[0] * py), (np.asarray(cols, float) - cx) / (shape[1] * px)


def g_to_pixel(gy, gx, shape, pixel_size_nm):
    """Reciprocal vectors (1/nm) → sub-pixel positions ``(row, col)`` in the centred spectrum."""
    py, px = check_pixel_size(pixel_size_nm)
    cy, cx = _centre(shape)
    return np.asarray(gy, float) * shape[0] * py + cy, np.asarray(gx, float) * shape[1] * px + cx


def d_spacing(gy, gx):
    """Lattice spacing in Å from a reciprocal vector in 1/nm (``d = 10 / |g|``); inf at g = 0."""
    g = np.hypot(gy, gx)
    with np.errstate(divide="ignore"):
        return 10.0 / g


def friedel_mate(index, shape):
    """Index of the Friedel mate ``-g`` of centred-spectrum index ``index`` (per axis, exact for any size).

    For even ``n`` the mate of ``n/2 + k`` is ``n/2 - k`` (index 0, the Nyquist row/column, is its own
    mate); for odd ``n`` the mate of ``(n-1)/2 + k`` is ``(n-1)/2 - k``.
    """
    index = np.asarray(index)
    shape = np.asarray(shape)
    centre = shape // 2
    if index.shape and index.shape[-1] == shape.size:
        return (2 * centre - index) % shape
    return (2 * centre[0] - index) % shape[0]


def to_half(full):
    """One member of every Friedel pair: columns ``cx..nx-1`` (+ the Nyquist column 0 if ``nx`` is even)."""
    full = np.asarray(full)
    nx = full.shape[-1]
    cx = nx // 2
    if nx % 2 == 0:
        return np.concatenate([full[..., cx:], full[..., :1]], axis=-1)
    return full[..., cx:].copy()


def from_half(half, nx, *, conjugate=False):
    """Rebuild a full centred array from its half (inverse of :func:`to_half`), exactly.

    Parameters
    ----------
    half : ndarray, shape ``(..., ny, nx // 2 + 1)``
    nx : int
        Width of the full array (needed: even and odd widths give the same half width).
    conjugate : bool
        Conjugate the mirrored values (True for a complex spectrum, False for magnitudes, masks, labels).
    """
    half = np.asarray(half)
    ny = half.shape[-2]
    cx = nx // 2
    if half.shape[-1] != nx // 2 + 1:
        raise InputError(f"half spectrum width {half.shape[-1]} does not match a full width of {nx}")
    full = np.empty(half.shape[:-1] + (nx,), dtype=half.dtype)
    right = nx - cx  # columns cx..nx-1
    full[..., cx:] = half[..., :right]
    if nx % 2 == 0:
        full[..., 0] = half[..., right]  # Nyquist column
        cols = np.arange(1, cx)
    else:
        cols = np.arange(0, cx)
    # row mate (2cy - i) mod ny: a flip, rolled by one for even ny (row 0 = Nyquist is its own mate)
    flipped = half[..., ::-1, :]
    if ny % 2 == 0:
        flipped = np.roll(flipped, 1, axis=-2)
    # column mates 2cx - j of the missing columns are half columns (2cx - j - cx), in reverse order
    lo = cols[0]
    src = flipped[..., 2 * cx - (cx - 1) - cx : 2 * cx - lo - cx + 1][..., ::-1]
    full[..., lo:cx] = np.conj(src) if conjugate else src
    return full

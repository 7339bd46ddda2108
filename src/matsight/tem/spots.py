"""FFT spot detection: a classical detector and a wrapper for the learned (U-Net) detector.

Classical detector (default), on the windowed power spectrum ``P = |S|²`` of the raw counts:

1. *Radially flattened background*: ``L = log(mean3x3(P))`` is compared with its radial median profile
   (bins of one reciprocal pixel in ``|g|``, so anisotropic pixels and non-square frames are handled), scaled
   by the radial spread (84th − 50th percentile). The result ``z`` is a noise-normalised map: speckle and
   amorphous rings become ``z ≈ N(0, 1)``-like everywhere, whatever the dose.
2. *Noise-adaptive threshold*: local maxima with ``z > threshold`` seed spots; each spot grows over
   ``z > grow`` (hysteresis) and touching spots are split by a watershed from their maxima.
3. *Friedel pairing*: every spot must have a partner at ``-g`` (within 1.5 px or a quarter of its size);
   the pair gives ``g = (p - q) / 2``, which cancels any error in the centre.
4. *Sub-pixel position*: the peak pixel of the 3×3-averaged power in each region, refined by a weighted
   least-squares 2D Gaussian fit (paraboloid of the log, with the cross term) of the Gaussian-smoothed
   (σ = 1 px) power above the local background in the 5×5 window around it (centroid of the excess power as
   fallback), and the paper's feature size ``sqrt(major² + minor²)`` of the spot region.

Spots are returned once per Friedel pair (the member with ``gx > 0``, or ``gy > 0`` on the ``gx = 0`` line).
"""

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from .._errors import InputError
from . import fft as _fft

log = logging.getLogger(__name__)

__all__ = [
    "auto_threshold",
    "strong_threshold",
    "check_d_range",
    "SpotTable",
    "SpotBackground",
    "radial_background",
    "detect_spots",
    "spots_from_mask",
    "spot_mask",
    "annulus_crop",
    "suppress_streaks",
]


@dataclass
class SpotTable:
    """Detected FFT spots, one row per Friedel pair (all arrays have length ``n``).

    Attributes
    ----------
    row, col : ndarray
        Sub-pixel position in the centred full spectrum of shape ``shape``.
    gy, gx : ndarray
        Reciprocal vector in 1/nm (pixel size per axis applied).
    d : ndarray
        Spacing in Å.
    intensity : ndarray
        Integrated excess FFT amplitude over the spot region (same units as ``|S|``).
    snr : ndarray
        Peak of the noise-normalised map ``z``.
    size : ndarray
        Feature size in pixels, ``sqrt(major² + minor²)`` of the spot region (paper eq. 11).
    shape : tuple
        Spectrum (= frame) shape.
    pixel_size_nm : tuple
    regions : ndarray of int32 or None
        Label image of spot regions in the full spectrum (``k + 1`` for spot ``k``, on both mates).
    """

    row: np.ndarray
    col: np.ndarray
    gy: np.ndarray
    gx: np.ndarray
    d: np.ndarray
    intensity: np.ndarray
    snr: np.ndarray
    size: np.ndarray
    shape: tuple
    pixel_size_nm: tuple
    regions: np.ndarray | None = field(default=None, repr=False)

    def __len__(self):
        return len(self.row)

    @property
    def mate_row(self):
        """Row of the Friedel mate ``-g``."""
        return 2 * (self.shape[0] // 2) - self.row

    @property
    def mate_col(self):
        """Column of the Friedel mate ``-g``."""
        return 2 * (self.shape[1] // 2) - self.col

    @property
    def angle_deg(self):
        """Direction of ``g`` in degrees (counter-clockwise from +x, with +y pointing down the rows)."""
        return np.degrees(np.arctan2(self.gy, self.gx))

    def subset(self, index):
        """A new table with the rows ``index`` (regions relabelled accordingly)."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        regions = None
        if self.regions is not None:
            lut = np.zeros(len(self) + 1, np.int32)
            lut[index + 1] = np.arange(1, len(index) + 1)
            regions = lut[self.regions]
        kw = {k: getattr(self, k)[index] for k in ("row", "col", "gy", "gx", "d", "intensity", "snr", "size")}
        return SpotTable(**kw, shape=self.shape, pixel_size_nm=self.pixel_size_nm, regions=regions)

    def to_records(self):
        """List of dicts (one per spot) for tables and JSON."""
        return [
            {
                "row": float(self.row[k]),
                "col": float(self.col[k]),
                "gy_per_nm": float(self.gy[k]),
                "gx_per_nm": float(self.gx[k]),
                "d_angstrom": float(self.d[k]),
                "angle_deg": float(self.angle_deg[k]),
                "intensity": float(self.intensity[k]),
                "snr": float(self.snr[k]),
                "size_px": float(self.size[k]),
            }
            for k in range(len(self))
        ]

    @classmethod
    def empty(cls, shape, pixel_size_nm):
        """A table with no spots."""
        z = np.zeros(0)
        return cls(z, z, z, z, z, z, z, z, tuple(shape), tuple(pixel_size_nm), np.zeros(shape, np.int32))


@dataclass
class SpotBackground:
    """Radial background model of a power spectrum (see :func:`radial_background`)."""

    z: np.ndarray  # noise-normalised map, NaN outside the analysed annulus
    background_amplitude: np.ndarray  # expected |S| of the background at every pixel
    valid: np.ndarray  # bool: inside the analysed annulus
    margin: (
        np.ndarray
    )  # threshold margin for the estimation error of few-pixel bins: 3 / sqrt(independent px)
    power_ratio: np.ndarray | None = None  # P / mean background power at the pixel's radius (0 outside)


def check_d_range(d_min, d_max):
    """Refuse an analysed range of spacings that is not ``0 < d_min < d_max < inf`` (Å)."""
    for opt, v in (("--d-min", d_min), ("--d-max", d_max)):
        if not 0 < v < np.inf:  # also refuses NaN
            raise InputError(f"{opt} must be a positive spacing in Å, got {v}")
    if not d_min < d_max:
        raise InputError(f"--d-min ({d_min} Å) must be smaller than --d-max ({d_max} Å)")


def _radius_bins(shape, pixel_size_nm):
    gy, gx = _fft.reciprocal_coords(shape, pixel_size_nm)
    g = np.hypot(gy[:, None], gx[None, :])
    width = min(gy[1] - gy[0], gx[1] - gx[0])  # one reciprocal pixel along the finer axis
    return g, (g / width).astype(np.int32), width


def _annulus_limits(shape, pixel_size_nm, d_min, d_max):
    """``(g_lo, g_hi)`` in 1/nm of the analysed annulus, and the radius bins ``(g, b, width)``.

    ``g_hi`` stops at ``10 / d_min`` and 2 px inside the Nyquist frequency of the coarser axis (the 5×5
    windows of the peak search and the fit wrap around the periodic spectrum, so a spot up to there is found
    whole; it used to stop at 0.97 × Nyquist, which on a 512² frame at 0.08 nm/px dropped the 1.63 Å {220}
    of Li2O, 1.9 % inside it). ``g_lo`` stops at ``10 / d_max`` and 4 px from the zero frequency.
    """
    ps = _fft.check_pixel_size(pixel_size_nm)
    g, b, width = _radius_bins(shape, ps)
    nyq = min(0.5 / p for p in ps)
    edge = min((n // 2 - 2) / (n * p) for n, p in zip(shape, ps, strict=True))
    g_lo = max(10.0 / d_max, 4 * width)
    g_hi = min(10.0 / d_min, edge)
    if g_hi <= g_lo:
        raise InputError(
            f"no usable frequencies between d = {d_max} and {d_min} Å for this frame and pixel size "
            f"(Nyquist d = {10 / nyq:.3g} Å); widen --d-min/--d-max or check the pixel size"
        )
    return g_lo, g_hi, g, b


def _radial_stats(bs, vs, nb):
    """Radial median and spread (half the 16–84 % range) of ``vs`` per bin ``bs`` (sorted by bin, value)."""
    x = np.arange(nb)
    starts = np.searchsorted(bs, x)
    counts = np.diff(np.append(starts, bs.size))
    ok = counts >= 8
    if ok.sum() < 2:
        raise InputError("frame too small for a radial background; use frames of at least 64×64 px")
    i50 = starts + (counts * 0.5).astype(int)
    i84 = starts + np.minimum((counts * 0.8413).astype(int), counts - 1)
    i16 = starts + (counts * 0.1587).astype(int)
    med = np.interp(x, x[ok], vs[i50[ok]])
    spread = np.interp(x, x[ok], 0.5 * (vs[i84[ok]] - vs[i16[ok]]))
    # bins near the centre hold few pixels: smooth the profiles along r
    med = ndi.median_filter(med, 5, mode="nearest")
    spread = np.maximum(ndi.median_filter(spread, 9, mode="nearest"), 1e-6)
    return med, spread


def _sorted_by_bin(bs, vs):
    """``(bs, vs)`` sorted by (bin, value) with one argsort."""
    lo_v, hi_v = vs.min(), vs.max()
    order = np.argsort(bs + (vs - lo_v) / (hi_v - lo_v + 1e-12) * 0.999, kind="stable")
    return bs[order], vs[order]


def radial_background(power, pixel_size_nm, *, d_min=1.0, d_max=15.0, smooth=3, sample=400_000, seed=0):
    """Noise-normalised spectrum ``z`` from the radial median and spread of ``log(mean_smooth(P))``.

    Parameters
    ----------
    power : ndarray
        Centred power spectrum ``|S|²`` (full).
    pixel_size_nm : float or (float, float)
    d_min, d_max : float
        Analysed annulus in Å (``d_max`` keeps the low-frequency hump out; ``d_min`` the noise corners).
    smooth : int
        Box size of the power average before the log (sums a spot's lobes; narrows the noise).
    sample : int
        Number of pixels used to estimate the radial statistics (random subset: speed).
    seed : int

    Returns
    -------
    SpotBackground
        Also ``power_ratio``: each pixel's own power over the mean background power at its radius (the radial
        median of the unsmoothed ``P`` over ln 2: exponential speckle), for :func:`strong_threshold`.
    """
    check_d_range(d_min, d_max)
    g_lo, g_hi, g, b = _annulus_limits(power.shape, pixel_size_nm, d_min, d_max)
    valid = (g >= g_lo) & (g <= g_hi)
    ps = power if smooth <= 1 else ndi.uniform_filter(power, smooth, mode="wrap")
    L = np.log(ps + 1e-300)
    nb = int(b.max()) + 2
    flat_idx = np.flatnonzero(valid)
    if flat_idx.size > sample:
        flat_idx = np.random.default_rng(seed).choice(flat_idx, sample, replace=False)
    b_s = b.ravel()[flat_idx]
    bs, vs = _sorted_by_bin(b_s, L.ravel()[flat_idx])
    med, spread = _radial_stats(bs, vs, nb)
    # spots can fill much of a ring in small frames and bias the statistics: clip them and re-estimate (twice)
    for _ in range(2):
        keep = (vs - med[bs]) < 2.5 * spread[bs]
        bs, vs = bs[keep], vs[keep]  # still sorted by (bin, value)
        med, spread = _radial_stats(bs, vs, nb)
    z = (L - med[b]) / spread[b]
    z[~valid] = np.nan
    bg_amp = np.exp(0.5 * med[b])
    # each bin holds ~2πr pixels, half of them Friedel copies: the median/spread of small-r bins are uncertain
    n_bin = np.bincount(b.ravel(), minlength=nb).astype(float)
    margin = (3.0 / np.sqrt(np.maximum(n_bin / 2.0, 1.0)))[b]
    # the median of the raw power is robust to the few spot pixels of a ring
    med_raw, _ = _radial_stats(*_sorted_by_bin(b_s, np.log(power.ravel()[flat_idx] + 1e-300)), nb)
    ratio = np.where(valid, power / (np.exp(med_raw)[b] / np.log(2.0)), 0.0)
    return SpotBackground(z=z, background_amplitude=bg_amp, valid=valid, margin=margin, power_ratio=ratio)


_FIT_SIGMA = 1.0  # px: Gaussian smoothing of the power before the sub-pixel fit
_FIT_HALF = 2  # the fit window is (2·_FIT_HALF + 1)² px
_FIT_PAD = int(3.0 * _FIT_SIGMA + 0.5)  # radius of the smoothing kernel (truncate = 3)


def _gauss_fit2d(values):
    """Sub-pixel (row, col) offset of the peak of a square window centred on its peak pixel; None: ill-posed.

    Weighted least-squares paraboloid ``a + b·y + c·x + d·y² + e·x² + f·xy`` of ``log(v)`` over the pixels
    with ``v > 0`` (a 2D Gaussian with any orientation), each residual weighted by ``v`` (the
    log of a noisy value is uncertain in proportion to ``1/v``). Ill-posed: fewer than 6 usable pixels, not a
    maximum, or a vertex more than 1.5 px from the window centre.
    """
    h = values.shape[0] // 2
    yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
    ok = values > 0
    if ok.sum() < 6:
        return None
    v = values[ok]
    y, x = yy[ok].astype(float), xx[ok].astype(float)
    A = np.column_stack([np.ones_like(y), y, x, y * y, x * x, x * y])
    coef = np.linalg.lstsq(A * v[:, None], np.log(v) * v, rcond=None)[0]
    _, b, c, d, e, f = coef
    H = np.array([[2 * d, f], [f, 2 * e]])
    det = H[0, 0] * H[1, 1] - f * f
    if not (H[0, 0] < 0 and det > 0):
        return None
    off = np.linalg.solve(H, [-b, -c])
    if not np.all(np.isfinite(off)) or np.abs(off).max() > 1.5:
        return None
    return float(off[0]), float(off[1])


def _region_props(labels, power, bg_power, z):
    """Per region: sub-pixel position, excess intensity, peak z, size.

    Position: the peak pixel is the region's maximum of the 3×3-averaged power (averaging tames the
    exponential per-pixel noise of a power spectrum when *choosing* the pixel). Around it, the power is
    smoothed by a Gaussian (σ = 1 px: a Gaussian-blurred Gaussian stays a Gaussian with the same centre, so
    the smoothing averages the noise without the pull towards the half pixel that a 3×3 box average gives),
    the local background is subtracted, and a weighted least-squares 2D Gaussian (paraboloid of the log, with
    the cross term) over the 5×5 window gives the sub-pixel position. Unlike 3-point fits along the two axes,
    it follows tilted, elongated spots (grains cut by a boundary), and the smoothing makes the narrow,
    non-Gaussian peak of a Hann-windowed or periodic-component spectrum nearly Gaussian (noiseless bias
    ≤ 0.01 px; benchmarks/README.md). Fallback when the fit is ill-posed (noise): centroid of the excess power
    in the 5×5 window.
    """
    from skimage.measure import regionprops

    smooth = ndi.uniform_filter(power, 3, mode="wrap")
    ny, nx = power.shape
    yy, xx = np.mgrid[-_FIT_HALF : _FIT_HALF + 1, -_FIT_HALF : _FIT_HALF + 1]
    reach = np.arange(-_FIT_HALF - _FIT_PAD, _FIT_HALF + _FIT_PAD + 1)
    inner = slice(_FIT_PAD, _FIT_PAD + 2 * _FIT_HALF + 1)
    out = []
    for rp in regionprops(labels):
        sl = rp.slice
        m = labels[sl] == rp.label
        zr = np.where(m, np.nan_to_num(z[sl], nan=-np.inf), -np.inf)
        k = np.unravel_index(np.argmax(np.where(m, smooth[sl], -np.inf)), zr.shape)
        r0, c0 = k[0] + sl[0].start, k[1] + sl[1].start
        rows, cols = (r0 + yy) % ny, (c0 + xx) % nx
        # Gaussian smoothing of the window only (periodic spectrum: wrapped indices, as mode="wrap")
        patch = power[np.ix_((r0 + reach) % ny, (c0 + reach) % nx)]
        g = ndi.gaussian_filter(patch, _FIT_SIGMA, mode="nearest", truncate=3.0)[inner, inner]
        off = _gauss_fit2d(g - bg_power[rows, cols])
        if off is not None:
            r_c, c_c = r0 + off[0], c0 + off[1]
        else:
            w = np.clip(power[rows, cols] - bg_power[rows, cols], 0, None)
            wsum = w.sum()
            r_c = r0 + ((yy * w).sum() / wsum if wsum > 0 else 0.0)
            c_c = c0 + ((xx * w).sum() / wsum if wsum > 0 else 0.0)
        excess = np.clip(np.sqrt(power[sl]) - np.sqrt(bg_power[sl]), 0, None)
        inten = float(excess[m].sum())
        major = rp.axis_major_length if rp.area > 1 else 1.0
        minor = rp.axis_minor_length if rp.area > 1 else 1.0
        size = max(float(np.hypot(major, minor)), 2.0)
        out.append((rp.label, r_c, c_c, inten, float(zr.max()), size))
    return out


def _pair_and_table(props, labels, shape, pixel_size_nm, *, require_mate=True):
    """Friedel-pair regions; one table row per pair."""
    ps = _fft.check_pixel_size(pixel_size_nm)
    cy, cx = shape[0] // 2, shape[1] // 2
    if not props:
        return SpotTable.empty(shape, ps)
    P = np.array([(r, c) for _, r, c, *_ in props])
    mates = np.column_stack([2 * cy - P[:, 0], 2 * cx - P[:, 1]])
    sizes = np.array([s for *_, s in props])
    # nearest region centroid to each expected mate position
    dist = np.hypot(P[None, :, 0] - mates[:, None, 0], P[None, :, 1] - mates[:, None, 1])
    partner = np.argmin(dist, axis=1)
    tol = np.maximum(1.5, sizes / 4)
    used = np.zeros(len(props), bool)
    rows = []
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    for i in range(len(props)):
        if used[i]:
            continue
        j = partner[i]
        if dist[i, j] > tol[i] or (j != i and partner[j] != i):
            if require_mate:
                continue
            j = i
        used[i] = used[j] = True
        if j == i:  # its own mate (only on a self-conjugate line) or unpaired
            r, c = P[i]
        else:
            # g from the pair: (p - q)/2 cancels a centre offset
            r = cy + 0.5 * ((P[i, 0] - cy) - (P[j, 0] - cy))
            c = cx + 0.5 * ((P[i, 1] - cx) - (P[j, 1] - cx))
        # representative in the right half (gx > 0, or gy > 0 on gx = 0)
        if (c - cx) < -1e-9 or (abs(c - cx) <= 1e-9 and r < cy):
            r, c = 2 * cy - r, 2 * cx - c
        inten = props[i][3] + (props[j][3] if j != i else 0.0)
        snr = max(props[i][4], props[j][4])
        size = 0.5 * (props[i][5] + props[j][5])
        rows.append((r, c, inten, snr, size))
        k = len(rows)
        lut[props[i][0]] = k
        lut[props[j][0]] = k
    if not rows:
        return SpotTable.empty(shape, ps)
    arr = np.array(rows)
    gy, gx = _fft.pixel_to_g(arr[:, 0], arr[:, 1], shape, ps)
    return SpotTable(
        row=arr[:, 0],
        col=arr[:, 1],
        gy=gy,
        gx=gx,
        d=_fft.d_spacing(gy, gx),
        intensity=arr[:, 2],
        snr=arr[:, 3],
        size=arr[:, 4],
        shape=tuple(shape),
        pixel_size_nm=ps,
        regions=lut[labels],
    )


def annulus_crop(shape, pixel_size_nm, d_min):
    """Centred crop of a spectrum that holds every ``d ≥ d_min`` (the rest is never analysed).

    Each cropped axis gets an odd length ``2R + 1`` around the zero frequency, so the crop is itself a centred
    spectrum (Friedel mates stay exact) whose calibration is kept by an *effective* pixel size
    ``p · n / (2R + 1)``. A 2048² frame at 0.02 nm analysed down to 1 Å keeps 1/6 of its pixels.

    Returns
    -------
    box : (slice, slice)
    pixel_size_eff : (float, float)
    offset : (int, int)
        Full-spectrum index of the crop's pixel (0, 0).
    """
    ps = _fft.check_pixel_size(pixel_size_nm)
    if not 0 < d_min < np.inf:
        raise InputError(f"--d-min must be a positive spacing in Å, got {d_min}")
    g_hi = 10.0 / d_min
    box, ps_eff, off = [], [], []
    for n, p in zip(shape, ps, strict=True):
        # radial_background keeps g ≤ 0.97 × Nyquist of the crop: leave that margin plus the 5×5 filters'
        r = int(np.ceil(g_hi * n * p / 0.97)) + 4
        c = n // 2
        if 2 * r + 1 >= n:
            box.append(slice(0, n))
            ps_eff.append(p)
            off.append(0)
        else:
            box.append(slice(c - r, c + r + 1))
            ps_eff.append(p * n / (2 * r + 1))
            off.append(c - r)
    return tuple(box), tuple(ps_eff), tuple(off)


def _uncrop(table, shape, pixel_size_nm, offset):
    """Table found on an :func:`annulus_crop` → full-spectrum coordinates (g and d are unchanged)."""
    if offset == (0, 0) and table.shape == tuple(shape):
        return table
    regions = None
    if table.regions is not None:
        regions = np.zeros(shape, np.int32)
        h, w = table.regions.shape
        regions[offset[0] : offset[0] + h, offset[1] : offset[1] + w] = table.regions
    table.row = table.row + offset[0]
    table.col = table.col + offset[1]
    table.shape = tuple(shape)
    table.pixel_size_nm = _fft.check_pixel_size(pixel_size_nm)
    table.regions = regions
    return table


def suppress_streaks(table, *, ratio=0.1, min_dz=None, peak_ratio=None):
    """Drop weak spots that the streaks of a much stronger spot explain.

    A straight grain edge (or the frame edge) turns every spot into a streak whose amplitude falls as
    ``A/(πk)`` at ``k`` px from it; on large frames those streaks stand out of the noise and would be read as
    extra spots (measured on synthetic two-phase frames: fakes have ``A_j/(π d_ij A_i) ≥ 0.18``, real spots
    ``≤ 0.09`` unless weak and next to a strong one). Spot ``i`` is dropped when some spot ``j`` (or its
    Friedel mate) has ``intensity_j / (π d_ij intensity_i) > ratio`` and a peak ``min_dz`` noise units higher.
    Default ``min_dz``: 6 up to 512² px, 1 less per doubling of the side beyond, at least 4.5 (on 2048² frames
    streak fragments next to a strong spot peak only ~5 units below it; in small frames real spots next to a
    strong one sit ~4 units below).

    ``peak_ratio`` (optional, per spot: peak power over the background, :attr:`SpotBackground.power_ratio`)
    keeps a spot whose peak is over 10× the power that ``j``'s streak can carry there, ``peak_j / (π d_ij)²``:
    the sharp {111} of a large Li2O grain, 15 px from a 75× stronger LiF spot, is no streak of it.
    """
    n = len(table)
    if n < 2 or ratio is None or ratio <= 0:
        return table
    if min_dz is None:
        side = np.sqrt(float(table.shape[0]) * float(table.shape[1]))
        min_dz = float(np.clip(6.0 - np.log2(max(side, 1.0) / 512.0), 4.5, 6.0))
    P = np.column_stack([table.row, table.col])
    M = np.column_stack([table.mate_row, table.mate_col])
    d = np.minimum(
        np.hypot(*(P[:, None, :] - P[None, :, :]).transpose(2, 0, 1)),
        np.hypot(*(P[:, None, :] - M[None, :, :]).transpose(2, 0, 1)),
    )
    np.fill_diagonal(d, np.inf)
    inten = np.maximum(table.intensity, 1e-300)
    score = inten[None, :] / (np.pi * np.maximum(d, 1.0) * inten[:, None])
    # ... and only when j's peak is much higher (Δz ≥ min_dz, ~10× in power): in small frames real spots sit
    # close to strong ones with score > ratio, but their peaks are comparable
    much_stronger = (table.snr[None, :] - table.snr[:, None]) >= min_dz
    explained = (score > ratio) & much_stronger
    if peak_ratio is not None:
        pr = np.asarray(peak_ratio, float)
        explained &= pr[:, None] < 10.0 * pr[None, :] / (np.pi * np.maximum(d, 1.0)) ** 2
    keep = ~np.any(explained, axis=1)
    if keep.all():
        return table
    log.debug("suppress_streaks: dropped %d of %d spots", int((~keep).sum()), n)
    return table.subset(keep)


def auto_threshold(shape):
    """Default seed level: 4.0 up to 512² pixels, + 0.3 per doubling of the side beyond (4.6 at 2048²)."""
    side = np.sqrt(float(shape[0]) * float(shape[1]))
    return float(4.0 + 0.3 * max(0.0, np.log2(side / 512.0)))


STRONG_MIN_Z = 3.0  # a strong (per-pixel) seed must also stand this far out of the 3×3-averaged noise


def strong_threshold(valid, false_alarm=1e-3):  # α = false_alarm
    """Power ratio ``P / background`` that no noise pixel of the annulus ``valid`` reaches, but at odds ``α``.

    A speckle pixel's power over its mean is exponential (``P(q > K) = e^{-K}``); the ``n`` independent
    pixels of the annulus (half of ``valid``: Friedel copies) all stay below ``K = ln(n / false_alarm)``
    but with probability ``false_alarm``: 17 for a 512² frame at 0.02 nm and ``d_min`` = 1 Å, 19.5 at 2048².
    """
    n = max(float(np.count_nonzero(valid)) / 2.0, 1.0)
    return float(np.log(n / false_alarm))


def _seeded_regions(zf, grow, seed_level, strong=None):
    """Spot regions: connected ``zf > grow`` holding a local maximum above ``seed_level`` (hysteresis).

    ``strong`` (bool map, optional): pixels whose own power is far above any noise (:func:`strong_threshold`)
    also seed and grow regions. The noise-normalised ``zf`` is of the 3×3-averaged power, which dilutes a
    sharp spot (power in one or two pixels, e.g. a large grain) ~4×: the 2.66 Å {111} of a Li2O matrix at 41×
    its background reached only z = 3.3 < 4. Regions holding several maxima are split by a watershed.
    Returns an int label image (0 outside every region), or None when no pixel exceeds ``grow``.
    """
    grow_mask = zf > grow
    maxima = (zf == ndi.maximum_filter(zf, size=5, mode="wrap")) & (zf > seed_level)
    if strong is not None and strong.any():
        # one seed per strong spot, unless a z seed already marks it
        zpeak = np.where(strong, zf, -np.inf)
        top = strong & (zpeak == ndi.maximum_filter(zpeak, size=5, mode="wrap"))
        maxima |= top & ~ndi.binary_dilation(maxima, np.ones((5, 5), bool))
        grow_mask |= strong
    labels, n = ndi.label(grow_mask)
    if n == 0:
        return None
    # seeds: local maxima above threshold; regions without a seed are dropped
    seed_lab = labels[maxima]
    n_seeds = np.bincount(seed_lab, minlength=n + 1)
    keep = n_seeds > 0
    keep[0] = False
    labels = np.where(keep[labels], labels, 0)
    # split regions holding several maxima with a watershed inside their bounding boxes
    from skimage.segmentation import watershed

    objs = ndi.find_objects(labels)
    out = np.zeros_like(labels)
    nxt = 0
    for lab, sl in enumerate(objs, start=1):
        if sl is None or not keep[lab]:
            continue
        m = labels[sl] == lab
        if n_seeds[lab] > 1:
            mk, nm = ndi.label(maxima[sl] & m)
            sub = watershed(-zf[sl], mk, mask=m)
            out[sl][sub > 0] = sub[sub > 0] + nxt
            nxt += nm
        else:
            nxt += 1
            out[sl][m] = nxt
    return out


def detect_spots(
    image,
    pixel_size_nm,
    *,
    threshold=None,
    grow=2.5,
    d_min=1.0,
    d_max=15.0,
    window_kind="hann",
    spectrum=None,
    max_spots=200,
    streak_ratio=0.1,
):
    """Classical FFT spot detector (see the module docstring).

    Parameters
    ----------
    image : array_like, 2D
        Raw counts of one frame (ignored when ``spectrum`` is given).
    pixel_size_nm : float or (float, float)
        Pixel size in nm (per axis).
    threshold : float, optional
        Seed level in units of the radial noise spread of the log power (noise-adaptive). Default
        :func:`auto_threshold`: 4.0 up to 512² px, rising with the number of pixels so that pure noise and
        amorphous frames give no spot (measured maximum of noise ``z``: 3.4 at 512², 3.8 at 2048²).
    grow : float
        Region-growing level (hysteresis).
    d_min, d_max : float
        Analysed range of spacings in Å.
    window_kind : {"hann", "tukey", "none"}
    spectrum : ndarray, optional
        A precomputed centred complex spectrum (from :func:`matsight.tem.fft.spectrum`).
    max_spots : int
        Keep at most this many Friedel pairs (strongest first).
    streak_ratio : float or None
        Drop spots explained by the edge streaks of a stronger spot (:func:`suppress_streaks`); None keeps
        all.

    Returns
    -------
    SpotTable
    """
    ps_full = _fft.check_pixel_size(pixel_size_nm)
    if spectrum is None:
        spectrum = _fft.spectrum(image, window_kind=window_kind)
    full_shape = spectrum.shape
    if threshold is None:
        # noise maxima grow with the frame's pixel count, not the crop's
        threshold = auto_threshold(full_shape)
    # only the annulus d >= d_min is analysed: work on that centred crop (exact calibration, 1/6 of a
    # 2048² frame)
    box, ps, offset = annulus_crop(full_shape, ps_full, d_min)
    sub = spectrum[box]
    power = sub.real**2 + sub.imag**2
    bg = radial_background(power, ps, d_min=d_min, d_max=d_max)
    z = bg.z
    zf = np.nan_to_num(z, nan=-np.inf)
    # strong: far above any noise pixel (widened where a ring holds few pixels, as the z seed level is) and
    # standing out of the 3×3-averaged noise too (a lone hot pixel of a Thon ring does not)
    strong = (bg.power_ratio > strong_threshold(bg.valid) * (1.0 + bg.margin)) & (zf > STRONG_MIN_Z)
    out = _seeded_regions(zf, grow, threshold + bg.margin, strong)
    if out is None:
        return SpotTable.empty(full_shape, ps_full)
    props = _region_props(out, power, bg.background_amplitude**2, z)
    table = _pair_and_table(props, out, power.shape, ps)
    peak = ndi.maximum(bg.power_ratio, table.regions, np.arange(1, len(table) + 1)) if len(table) else None
    table = _uncrop(table, full_shape, ps_full, offset)
    table = suppress_streaks(table, ratio=streak_ratio, peak_ratio=peak)
    if len(table) > max_spots:
        table = table.subset(np.argsort(-table.intensity)[:max_spots])
    return table


def spots_from_mask(
    mask, spectrum, pixel_size_nm, *, d_min=1.0, d_max=15.0, require_mate=True, background=None, power=None
):
    """Turn a binary spot mask of the full spectrum (e.g. a U-Net output) into a :class:`SpotTable`.

    Connected components → regions; sub-pixel positions and sizes as in :func:`detect_spots`. ``background``
    (a :class:`SpotBackground` of this spectrum) and ``power`` (``|S|²``) skip recomputing them.
    """
    ps = _fft.check_pixel_size(pixel_size_nm)
    if power is None:
        power = spectrum.real**2 + spectrum.imag**2
    bg = background if background is not None else radial_background(power, ps, d_min=d_min, d_max=d_max)
    labels, n = ndi.label(np.asarray(mask, bool) & bg.valid)
    if n == 0:
        return SpotTable.empty(power.shape, ps)
    props = _region_props(labels, power, bg.background_amplitude**2, bg.z)
    return _pair_and_table(props, labels, power.shape, ps, require_mate=require_mate)


def spot_mask(shape, rows, cols, radii, *, friedel=True):
    """Boolean disks of ``radii`` px around spectrum positions (and their Friedel mates)."""
    shape = tuple(shape)
    mask = np.zeros(shape, bool)
    cy, cx = shape[0] // 2, shape[1] // 2
    rows, cols, radii = np.broadcast_arrays(
        np.asarray(rows, float), np.asarray(cols, float), np.asarray(radii)
    )
    pts = list(zip(rows, cols, radii, strict=True))
    if friedel:
        pts += [(2 * cy - r, 2 * cx - c, rad) for r, c, rad in zip(rows, cols, radii, strict=True)]
    for r, c, rad in pts:
        r0, r1 = int(np.floor(r - rad)), int(np.ceil(r + rad)) + 1
        c0, c1 = int(np.floor(c - rad)), int(np.ceil(c + rad)) + 1
        rr, cc = np.mgrid[r0:r1, c0:c1]
        inside = (rr - r) ** 2 + (cc - c) ** 2 <= rad**2
        mask[rr[inside] % shape[0], cc[inside] % shape[1]] = True
    return mask

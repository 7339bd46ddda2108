"""Spatial resolution of an image: the full width at half maximum (FWHM) of edges and thin lines.

Used to judge restoration (``papers/indi_4d_nanotomography.txt``, Methods, Fig. 3B).

- :func:`fwhm_from_profile` — the width of one intensity profile across an edge: FWHM of its derivative.
- :func:`edge_fwhm` — edges found automatically (Canny), profiles sampled along the gradient direction.
- :func:`line_fwhm` — thin lines (Hessian ridges), whose profile is the line spread function.
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize, special

from matsight._errors import InputError

from ._checks import as_image as _image

log = logging.getLogger(__name__)

__all__ = ["GAUSS_FWHM", "EdgeWidths", "edge_fwhm", "fwhm_from_profile", "line_fwhm"]

#: FWHM of a Gaussian in units of its standard deviation, 2 sqrt(2 ln 2).
GAUSS_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


# ------------------------------------------------------------------------------------------------------- FWHM
def _erf_edge(x, base, step, x0, sigma):
    return base + step * 0.5 * (1.0 + special.erf((x - x0) / (math.sqrt(2.0) * sigma)))


def _fwhm_interp(x, profile):
    from scipy.interpolate import CubicSpline

    # differentiate the interpolating cubic spline on a 10x finer grid: finite differences on the samples
    # would broaden narrow edges
    fine = np.linspace(x[0], x[-1], 10 * (len(x) - 1) + 1)
    d = CubicSpline(x, profile)(fine, 1)
    x = fine
    k = int(np.argmax(np.abs(d)))
    if d[k] < 0:
        d = -d
    peak = d[k]
    base = float(np.median(np.r_[d[: max(1, len(d) // 8)], d[-max(1, len(d) // 8) :]]))
    half = base + 0.5 * (peak - base)
    left = k
    while left > 0 and d[left] > half:
        left -= 1
    right = k
    while right < len(d) - 1 and d[right] > half:
        right += 1
    if d[left] > half or d[right] > half:
        return math.nan  # the peak does not fall to half maximum inside the profile
    xl = x[left] + (half - d[left]) * (x[left + 1] - x[left]) / (d[left + 1] - d[left])
    xr = x[right - 1] + (half - d[right - 1]) * (x[right] - x[right - 1]) / (d[right] - d[right - 1])
    return float(xr - xl)


def _fwhm_fit(x, profile, *, min_r2=0.9):
    p = np.asarray(profile, dtype=np.float64)
    n = len(p)
    edge = max(1, n // 8)
    lo, hi = p[:edge].mean(), p[-edge:].mean()
    d = np.abs(np.gradient(p, x))
    x0 = x[int(np.argmax(d))]
    span = x[-1] - x[0]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            popt, _ = optimize.curve_fit(_erf_edge, x, p, p0=(lo, hi - lo, x0, span / 10), maxfev=2000)
    except (RuntimeError, ValueError):
        return math.nan
    sigma = abs(popt[3])
    resid = p - _erf_edge(x, *popt)
    ss = np.sum((p - p.mean()) ** 2)
    if ss <= 0 or 1 - np.sum(resid**2) / ss < min_r2:
        return math.nan  # not an edge (or buried in noise)
    if not (x[0] <= popt[2] <= x[-1]) or GAUSS_FWHM * sigma > span:
        return math.nan  # edge centre outside the profile, or wider than it
    return float(GAUSS_FWHM * sigma)


def fwhm_from_profile(profile, spacing=1.0, *, method="fit", min_r2=0.9):
    """Edge width: FWHM of the derivative of an intensity profile taken across one edge.

    Parameters
    ----------
    profile : array_like, 1D
        Intensities sampled at equal steps across the edge (either direction; dark→bright or bright→dark).
    spacing : float
        Distance between samples (pixels, or nm to get nm).
    method : {"fit", "derivative"}
        ``"fit"``: least-squares fit of an error-function edge ``a + b Φ((x - x0)/σ)`` whose derivative is a
        Gaussian, FWHM = 2 sqrt(2 ln 2) σ (robust to noise; exact for Gaussian blur).
        ``"derivative"``: numerical derivative, half-maximum crossings by linear interpolation (model-free).
    min_r2 : float
        For ``"fit"``: profiles whose fit explains less of the variance are rejected (NaN).

    Returns
    -------
    float
        FWHM in the units of ``spacing``; NaN when the profile holds no measurable edge.
    """
    p = np.asarray(profile, dtype=np.float64)
    if p.ndim != 1 or p.size < 5:
        raise InputError(f"profile must be 1D with at least 5 samples, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise InputError("profile contains NaN/inf; sample inside the image")
    if not spacing > 0:
        raise InputError(f"spacing must be positive, got {spacing}")
    x = np.arange(p.size) * float(spacing)
    if method == "fit":
        return _fwhm_fit(x, p, min_r2=min_r2)
    if method == "derivative":
        return _fwhm_interp(x, p)
    raise InputError(f"unknown FWHM method {method!r}; use 'fit' or 'derivative'")


@dataclass
class EdgeWidths:
    """Result of :func:`edge_fwhm`.

    Attributes
    ----------
    widths : ndarray
        FWHM per accepted edge (units of ``spacing``).
    points : ndarray, (n, 2) or (n, 3)
        Edge positions (pixel coordinates) of the accepted edges.
    normals : ndarray
        Unit normals (in-plane, y/x) along which the profiles were sampled.
    profiles : ndarray, (n, m)
        The sampled profiles.
    n_candidates : int
        Edge points examined (accepted + rejected).
    """

    widths: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    profiles: np.ndarray = field(repr=False)
    n_candidates: int = 0

    @property
    def finite(self):
        """The measured widths (NaN entries, points given without a measurable line, left out)."""
        return self.widths[np.isfinite(self.widths)]

    @property
    def median(self):
        """Median width (the figure to report); NaN without edges."""
        w = self.finite
        return float(np.median(w)) if w.size else math.nan

    @property
    def mean(self):
        """Mean width; NaN without edges."""
        w = self.finite
        return float(np.mean(w)) if w.size else math.nan

    @property
    def std(self):
        """Standard deviation of the widths; NaN without edges."""
        w = self.finite
        return float(np.std(w)) if w.size else math.nan

    def as_dict(self):
        """Summary for JSON reports: median, mean, std, n_edges, n_candidates."""
        return {
            "median": self.median,
            "mean": self.mean,
            "std": self.std,
            "n_edges": int(self.finite.size),
            "n_candidates": int(self.n_candidates),
        }


def _cross_profile(img, y, x, ny, nx, t, width):
    """Mean of ``width`` parallel profiles along the unit normal ``(ny, nx)`` through ``(y, x)``, 1 px apart
    along the tangent, sampled at offsets ``t`` by cubic interpolation (a wide line profile, as in ImageJ).
    """
    offs = np.arange(width) - (width - 1) / 2
    cy = y + t[None, :] * ny - offs[:, None] * nx
    cx = x + t[None, :] * nx + offs[:, None] * ny
    prof = ndimage.map_coordinates(img, np.array([cy.ravel(), cx.ravel()]), order=3, mode="nearest")
    return prof.reshape(len(offs), -1).mean(axis=0)


def _edges_2d(img, *, sigma, n_edges, half, step, min_separation, mask, method, min_r2, width):
    from skimage.feature import canny

    gy = ndimage.gaussian_filter(img, sigma, order=(1, 0))
    gx = ndimage.gaussian_filter(img, sigma, order=(0, 1))
    mag = np.hypot(gy, gx)
    edges = canny(img, sigma=sigma)
    m = int(math.ceil(half)) + 2
    edges[:m] = edges[-m:] = False
    edges[:, :m] = edges[:, -m:] = False
    if mask is not None:
        edges &= mask
    ys, xs = np.nonzero(edges)
    if ys.size == 0:
        return [], [], [], [], 0
    order = np.argsort(mag[ys, xs])[::-1]
    ys, xs = ys[order], xs[order]
    # greedy selection of the strongest edge points, at least min_separation apart (independent profiles)
    chosen = []
    taken = np.zeros(img.shape, dtype=bool)
    r = int(math.ceil(min_separation))
    budget = 4 * n_edges  # candidates to try; rejected fits do not count toward n_edges
    for y, x in zip(ys, xs, strict=True):
        if taken[y, x]:
            continue
        chosen.append((y, x))
        taken[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = True
        if len(chosen) >= budget:
            break
    t = np.arange(-half, half + step / 2, step)
    widths, pts, nrm, profs = [], [], [], []
    for y, x in chosen:
        n = np.array([gy[y, x], gx[y, x]]) / mag[y, x]
        # parallel profiles averaged along the edge: less noise, same edge width
        prof = _cross_profile(img, y, x, n[0], n[1], t, width)
        w = fwhm_from_profile(prof, step, method=method, min_r2=min_r2)
        if math.isfinite(w):
            widths.append(w)
            pts.append((y, x))
            nrm.append(n)
            profs.append(prof)
            if len(widths) >= n_edges:
                break
    return widths, pts, nrm, profs, len(chosen)


def _widths(widths, pts, nrm, profs, n_candidates, spacing, ndim):
    """:class:`EdgeWidths` of widths measured in pixels (scaled to ``spacing``) and where they were taken."""
    return EdgeWidths(
        widths=np.asarray(widths, dtype=np.float64) * float(spacing),
        points=np.asarray(pts, dtype=np.float64).reshape(-1, ndim),
        normals=np.asarray(nrm, dtype=np.float64).reshape(-1, 2),
        profiles=np.asarray(profs, dtype=np.float64) if profs else np.empty((0, 0)),
        n_candidates=n_candidates,
    )


def _z_slices(n, max_slices):
    """Up to ``max_slices`` evenly spaced indices into ``range(n)``."""
    return np.unique(np.linspace(0, n - 1, min(max_slices, n)).round().astype(int))


def _edge_profile(image, spacing, n_edges, profile_width, profile_length, sigma, min_separation):
    """Check :func:`edge_fwhm`'s arguments; the half profile length and the separation of edge points."""
    if not spacing > 0:
        raise InputError(f"spacing must be positive, got {spacing}")
    if n_edges < 1:
        raise InputError(f"n_edges must be at least 1, got {n_edges}")
    if int(profile_width) < 1:
        raise InputError(f"profile_width must be at least 1, got {profile_width}")
    length = float(profile_length) if profile_length is not None else max(16.0, 8.0 * sigma)
    half = length / 2
    sep = float(min_separation) if min_separation is not None else half
    if min(image.shape[-2:]) < 2 * half + 6:
        raise InputError(
            f"image {image.shape} is too small for {length:g}-px edge profiles; "
            "give a larger image or a shorter profile_length"
        )
    return half, sep


def _edges_of_slices(img, mask, max_slices, n_edges, **kw):
    """:func:`_edges_2d` of a 2D image, or of up to ``max_slices`` Z slices of a volume (``n_edges`` shared
    among them), pooled; points of a volume get their ``z`` first.
    """
    if img.ndim == 2:
        slices = [(img, mask, None)]
    else:
        slices = [(img[i], None if mask is None else mask[i], i) for i in _z_slices(img.shape[0], max_slices)]
    per = max(1, int(math.ceil(n_edges / len(slices))))
    widths, pts, nrm, profs, n_cand = [], [], [], [], 0
    for sl, m, z in slices:
        w, p, n, pr, c = _edges_2d(sl, n_edges=per, mask=m, **kw)
        widths += w
        pts += [(z, *q) for q in p] if z is not None else p
        nrm += n
        profs += pr
        n_cand += c
    return widths, pts, nrm, profs, n_cand


def edge_fwhm(
    image,
    *,
    spacing=1.0,
    n_edges=50,
    sigma=1.5,
    profile_length=None,
    step=0.25,
    min_separation=None,
    mask=None,
    method="fit",
    min_r2=0.9,
    max_slices=8,
    profile_width=7,
):
    """Spatial resolution from many automatically found edges: FWHM of the derivative across each edge.

    The paper measured edges by hand (line profiles across particle boundaries, Fig. 3B). Here: Canny edges
    (``sigma``) give candidate points; the strongest, at least ``min_separation`` apart, are kept; at each an
    intensity profile of ``profile_length`` pixels is sampled along the gradient direction (cubic
    interpolation, ``step`` px) from the *unsmoothed* image, and its width measured by
    :func:`fwhm_from_profile`. Profiles without a clean edge (poor fit, a second edge inside) are rejected.

    Parameters
    ----------
    image : ndarray
        2D image; a 3D volume is measured on up to ``max_slices`` evenly spaced Z slices (in-plane edges).
    spacing : float
        Pixel size; widths are returned in its units (e.g. nm).
    n_edges : int
        Number of edges to measure (per image; per slice for volumes, divided among the slices).
    sigma : float
        Gaussian scale (px) for Canny and for the gradient direction.
    profile_length : float, optional
        Profile length in pixels; default ``max(16, 8 * sigma)``.
    step : float
        Sampling step along the profile in pixels.
    min_separation : float, optional
        Minimum distance between measured edge points (pixels); default ``profile_length / 2``.
    mask : ndarray of bool, optional
        Only edges inside the mask (e.g. the field of view).
    profile_width : int
        Number of parallel profiles, 1 px apart along the edge, averaged into one (like a wide line profile
        in ImageJ): noise drops by ``sqrt(profile_width)`` while the width across the edge is kept. For very
        noisy images (few edges accepted: see ``.as_dict()["n_edges"]``) raise it (15–21) together with
        ``sigma`` (3) and lower ``min_r2`` (0.7–0.8); compare images only with the same settings.
    method, min_r2
        Passed to :func:`fwhm_from_profile`.

    Returns
    -------
    EdgeWidths
        ``.widths`` per edge, ``.median`` (the figure to report), ``.mean``, ``.std``, ``.as_dict()``.
    """
    image = _image(image, "image")
    half, sep = _edge_profile(image, spacing, n_edges, profile_width, profile_length, sigma, min_separation)
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), image.shape)
    img = image.astype(np.float64)
    widths, pts, nrm, profs, n_cand = _edges_of_slices(
        img,
        mask,
        max_slices,
        n_edges,
        sigma=sigma,
        half=half,
        step=step,
        min_separation=sep,
        method=method,
        min_r2=min_r2,
        width=int(profile_width),
    )
    res = _widths(widths, pts, nrm, profs, n_cand, spacing, img.ndim)
    if res.widths.size == 0:
        log.warning("edge_fwhm: no measurable edge found among %d candidates", n_cand)
    return res


def _gauss_line(x, b, a, x0, s, c):
    return b + c * (x - x0) + a * np.exp(-0.5 * ((x - x0) / s) ** 2)


def _line_width(x, p, *, min_r2, polarity):
    """FWHM of a Gaussian line (peak or trough) on a linear baseline fitted to one profile; NaN if none."""
    sign = 1.0 if polarity == "bright" else -1.0
    q = sign * p
    mid = len(x) // 2
    lo = min(q[0], q[-1])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            popt, _ = optimize.curve_fit(
                _gauss_line, x, q, p0=(lo, q[mid] - lo, x[mid], (x[-1] - x[0]) / 8, 0.0), maxfev=2000
            )
    except (RuntimeError, ValueError):
        return math.nan
    b, a, x0, sd, c = popt
    sd = abs(sd)
    ss = np.sum((q - q.mean()) ** 2)
    r2 = 1 - np.sum((q - _gauss_line(x, *popt)) ** 2) / ss if ss > 0 else -np.inf
    span = x[-1] - x[0]
    if a <= 0 or r2 < min_r2 or abs(x0 - x[mid]) > span / 4 or GAUSS_FWHM * sd > span / 2:
        return math.nan  # no line of this polarity near the centre, or wider than the profile allows
    if abs(c) * span > 0.5 * a:
        return math.nan  # the shoulder of a step edge, not a line: the baseline trend dominates
    return float(GAUSS_FWHM * sd)


def _ridge_points(img, *, sigma, polarity, mask, margin, n, min_separation):
    """Strongest centre-line points of thin lines (Hessian ridge measure), greedy at ``min_separation``."""
    from skimage.feature import hessian_matrix, hessian_matrix_eigvals

    h = hessian_matrix(img, sigma=sigma, order="rc", use_gaussian_derivatives=True)
    ev = hessian_matrix_eigvals(h)  # ev[0] >= ev[1]
    strength = -ev[1] if polarity == "bright" else ev[0]
    strength = np.where(strength > 0, strength, 0.0)
    hrr, hrc, hcc = h
    # normal = eigenvector of the dominant curvature; (hrc, lam - hrr) solves (H - lam I) v = 0
    lam = ev[1] if polarity == "bright" else ev[0]
    ny, nx = hrc, lam - hrr
    bad = np.hypot(ny, nx) < 1e-12
    ny, nx = np.where(bad, lam - hcc, ny), np.where(bad, hrc, nx)
    norm = np.hypot(ny, nx) + 1e-30
    ny, nx = ny / norm, nx / norm
    # centre line: a maximum of the ridge strength across the line (non-maximum suppression)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]].astype(np.float64)
    fwd = ndimage.map_coordinates(strength, [yy + ny, xx + nx], order=1, mode="nearest")
    bwd = ndimage.map_coordinates(strength, [yy - ny, xx - nx], order=1, mode="nearest")
    cand = (strength >= fwd) & (strength >= bwd) & (strength > 0)
    cand[:margin] = cand[-margin:] = False
    cand[:, :margin] = cand[:, -margin:] = False
    if mask is not None:
        cand &= mask
    if cand.any():
        cand &= strength >= np.percentile(strength[cand], 50)  # the clearer half of the candidates
    ys, xs = np.nonzero(cand)
    order = np.argsort(strength[ys, xs])[::-1]
    taken = np.zeros(img.shape, dtype=bool)
    r = int(math.ceil(min_separation))
    out = []
    for y, x in zip(ys[order], xs[order], strict=True):
        if taken[y, x]:
            continue
        out.append((y, x, ny[y, x], nx[y, x]))
        taken[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = True
        if len(out) >= n:
            break
    return out


def _find_lines(img, mask, sigma, polarity, margin, n_lines, sep, max_slices):
    """Centre-line points and unit normals of thin lines in a 2D image, or in up to ``max_slices`` Z slices
    of a volume (``n_lines`` shared among them; points of a volume get their ``z`` first).
    """
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), img.shape)
    if img.ndim == 2:
        found = _ridge_points(
            img, sigma=sigma, polarity=polarity, mask=mask, margin=margin, n=n_lines, min_separation=sep
        )
        found = [(None, q) for q in found]
    else:
        zs = _z_slices(img.shape[0], max_slices)
        per = max(1, int(math.ceil(n_lines / len(zs))))
        found = [
            (z, q)
            for z in zs
            for q in _ridge_points(img[z], sigma=sigma, polarity=polarity,
                                   mask=None if mask is None else mask[z], margin=margin, n=per,
                                   min_separation=sep)
        ]  # fmt: skip
    pts = [((z,) if z is not None else ()) + (q[0], q[1]) for z, q in found]
    nrm = [(q[2], q[3]) for _, q in found]
    return pts, nrm


def _line_widths(img, pts, nrm, t, width, min_r2, polarity, *, keep_nan):
    """Widths, points, normals and profiles of the lines measured at ``pts`` (all of them with ``keep_nan``,
    else only those holding a clean line).
    """
    widths, profs, keep_pts, keep_nrm = [], [], [], []
    for pt, (ny, nx) in zip(pts, nrm, strict=True):
        sl = img[int(round(pt[0]))] if img.ndim == 3 else img
        prof = _cross_profile(sl, pt[-2], pt[-1], ny, nx, t, width)
        w = _line_width(t, prof, min_r2=min_r2, polarity=polarity)
        if not keep_nan and not math.isfinite(w):
            continue  # found here but not a clean line: skip (given points keep NaN, so rows stay paired)
        widths.append(w)
        profs.append(prof)
        keep_pts.append(pt)
        keep_nrm.append((ny, nx))
    return widths, keep_pts, keep_nrm, profs


def line_fwhm(
    image,
    *,
    points=None,
    normals=None,
    spacing=1.0,
    n_lines=60,
    sigma=1.0,
    polarity="bright",
    profile_length=9.0,
    step=0.25,
    profile_width=5,
    min_separation=None,
    mask=None,
    min_r2=0.8,
    max_slices=8,
):
    """Spatial resolution from thin lines: FWHM of the profile across many automatically found lines.

    Structures thinner than the resolution (electrode windings, current-collector foils, cracks) have no
    step edges for :func:`edge_fwhm`: their profile *is* the line spread function. Centre lines are found
    with the Hessian ridge measure (scale ``sigma``; bright or dark lines) and non-maximum suppression; at the
    strongest points, at least ``min_separation`` apart, ``profile_width`` parallel profiles across the line
    (cubic interpolation, ``step`` px) are averaged and fitted with a Gaussian on a linear baseline,
    FWHM = 2 sqrt(2 ln 2) σ. Poor fits, off-centre or over-wide peaks are rejected.

    To compare images fairly, measure them at the same places: pass ``points``/``normals`` of another
    result (e.g. the HQ's), as :func:`matsight.restore.evaluate.compare` does.

    Parameters
    ----------
    image : ndarray
        2D image; a 3D volume is measured on up to ``max_slices`` evenly spaced Z slices.
    points, normals : ndarray, optional
        Where to measure (``(n, 2)`` or ``(n, 3)`` pixel coordinates and ``(n, 2)`` unit normals), as
        returned in ``.points``/``.normals``; default: found in ``image``.
    spacing : float
        Pixel size; widths are returned in its units.
    n_lines : int
        Number of line points to find (per image; divided among the slices of a volume).
    polarity : {"bright", "dark"}
        Bright lines on a darker background, or the reverse.
    profile_length : float
        Profile length in pixels; keep it below twice the spacing between neighbouring lines.
    min_separation : float, optional
        Minimum distance between measured points (pixels); default ``profile_length``.
    mask : ndarray of bool, optional
        Only lines inside the mask.

    Returns
    -------
    EdgeWidths
        ``.widths`` (NaN where a given point holds no measurable line), ``.points``, ``.normals``,
        ``.median`` over the finite widths.
    """
    image = _image(image, "image")
    if polarity not in ("bright", "dark"):
        raise InputError(f"polarity must be 'bright' or 'dark', got {polarity!r}")
    if not spacing > 0:
        raise InputError(f"spacing must be positive, got {spacing}")
    half = float(profile_length) / 2
    if min(image.shape[-2:]) < 2 * half + 6:
        raise InputError(f"image {image.shape} is too small for {profile_length:g}-px line profiles")
    img = image.astype(np.float64)
    t = np.arange(-half, half + step / 2, step)
    if points is None:
        sep = float(min_separation) if min_separation is not None else 2 * half
        margin = int(math.ceil(half + profile_width)) + 2
        pts, nrm = _find_lines(img, mask, sigma, polarity, margin, n_lines, sep, max_slices)
    else:
        pts = np.asarray(points, dtype=np.float64).reshape(-1, img.ndim)
        nrm = np.asarray(normals, dtype=np.float64).reshape(-1, 2)
        if len(pts) != len(nrm):
            raise InputError(f"got {len(pts)} points but {len(nrm)} normals")
    given = points is not None
    measured = _line_widths(img, pts, nrm, t, int(profile_width), min_r2, polarity, keep_nan=given)
    return _widths(*measured, len(pts), spacing, img.ndim)

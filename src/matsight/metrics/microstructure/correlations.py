"""Two-point correlation functions, intra- and inter-phase, along an axis or radially, by FFT."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..._errors import InputError
from ._common import _axis, _labels, _spacing

__all__ = ["Correlation", "two_point_correlation"]


@dataclass
class Correlation:
    """A two-point correlation function ``S_ab(r) = P(x in a and x + r in b)``.

    Attributes
    ----------
    distance : ndarray
        Lag (bin centre), in voxels or ``spacing`` units.
    probability : ndarray
        ``S_ab`` at each distance: ``S_aa(0) = VF_a``, ``S_ab(0) = 0`` for ``a != b``, and
        ``S_ab → VF_a·VF_b`` at distances beyond the feature size.
    phase_a, phase_b : int
    axis : int or None
        Axis of the lag, or None for the radial (orientation-averaged) function.
    """

    distance: np.ndarray
    probability: np.ndarray
    phase_a: int
    phase_b: int
    axis: int | None

    def to_dict(self):
        """JSON-able form."""
        return {
            "phase_a": self.phase_a,
            "phase_b": self.phase_b,
            "axis": self.axis,
            "distance": [float(v) for v in self.distance],
            "probability": [float(v) for v in self.probability],
        }


def _next_fast(n):
    from scipy import fft as sfft

    return sfft.next_fast_len(int(n), real=True)


def _axis_correlations(arr, pairs, axis, max_distance, *, chunk_voxels=1 << 22):
    """Unbiased non-periodic correlations along ``axis`` for every ``(a, b)`` in ``pairs`` (lags 0..R).

    Returns ``{(a, b): (S_ab(+r) + S_ab(-r)) / 2}``: for ``a == b`` the two are equal; for ``a != b`` the
    average is the orientation-symmetric cross-correlation.
    """
    from scipy import fft as sfft

    t = np.moveaxis(arr, axis, -1)
    n = t.shape[-1]
    lines = t.reshape(-1, n)
    m = _next_fast(n + max_distance)
    phases = sorted({p for pr in pairs for p in pr})
    acc = {pr: np.zeros(m // 2 + 1, dtype=np.complex128) for pr in pairs}
    step = max(1, chunk_voxels // n)
    for start in range(0, lines.shape[0], step):
        block = lines[start : start + step]
        spec = {p: sfft.rfft((block == p).astype(np.float32), n=m, axis=-1) for p in phases}
        for a, b in pairs:
            # sum_x A(x) B(x + r) over the block, in Fourier space, summed over lines
            acc[(a, b)] += (np.conj(spec[a]) * spec[b]).sum(axis=0)
    r = np.arange(max_distance + 1)
    n_pairs = lines.shape[0] * (n - r).astype(np.float64)
    out = {}
    for a, b in pairs:
        c = acc[(a, b)]
        plus = sfft.irfft(c, n=m)[: max_distance + 1]
        minus = sfft.irfft(np.conj(c), n=m)[: max_distance + 1]
        # a probability: FFT rounding (float32 spectra) must not show as tiny negative values
        out[(a, b)] = np.clip(0.5 * (plus + minus) / n_pairs, 0.0, 1.0)
    return out


def _radial_correlation(arr, a, b, sp, edges):
    """Orientation-averaged correlation: mean of the unbiased ``S_ab(r_vec)`` over lag vectors per bin."""
    from scipy import fft as sfft

    ndim = arr.ndim
    reach = [min(int(np.floor(edges[-1] / s)), n - 1) for s, n in zip(sp, arr.shape, strict=True)]
    fshape = [_next_fast(n + r) for n, r in zip(arr.shape, reach, strict=True)]
    fa = sfft.rfftn((arr == a).astype(np.float32), s=fshape)
    if a == b:
        fa *= np.conj(fa)
    else:
        fa = np.conj(fa)
        fa *= sfft.rfftn((arr == b).astype(np.float32), s=fshape)
    corr = sfft.irfftn(fa, s=fshape)
    del fa
    # keep lags -reach..reach on every axis (circular indices), centred
    idx = [np.r_[m - r : m, 0 : r + 1] for m, r in zip(fshape, reach, strict=True)]
    corr = corr[np.ix_(*idx)]
    dist2 = np.zeros(corr.shape)
    overlap = np.ones(corr.shape)
    for k in range(ndim):
        lag = np.arange(-reach[k], reach[k] + 1).reshape([-1 if j == k else 1 for j in range(ndim)])
        dist2 = dist2 + (lag * sp[k]) ** 2
        overlap = overlap * (arr.shape[k] - np.abs(lag))
    s = np.clip(corr / overlap, 0.0, 1.0).ravel()  # FFT rounding aside, a probability
    dist = np.sqrt(dist2).ravel()
    which = np.searchsorted(edges, dist, side="right") - 1
    ok = (which >= 0) & (which < len(edges) - 1)
    nb = len(edges) - 1
    sums = np.bincount(which[ok], weights=s[ok], minlength=nb)
    cnt = np.bincount(which[ok], minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)


def two_point_correlation(
    labels, phase_a, phase_b=None, *, max_distance=None, axis=None, bins=None, spacing=None
) -> Correlation:
    """Intra- (``phase_b`` = ``phase_a``) or inter-phase two-point correlation, by FFT.

    ``S_ab(r)`` is the probability that a point lies in ``phase_a`` and the point ``r`` away lies in
    ``phase_b``. Estimated without periodic wrap-around: the image is zero-padded before the FFT and each lag
    is divided by the number of voxel pairs inside the image at that lag (the unbiased estimator of
    ``porespy.metrics.two_point_correlation``).

    Parameters
    ----------
    labels : array_like of int, 2D or 3D
    phase_a : int
    phase_b : int, optional
        Default ``phase_a`` (intra-phase).
    max_distance : float, optional
        Largest lag, in voxels (``spacing`` units if given). Default ``min(80, min(shape) // 2)`` voxels
        (the SuperRes paper plots d = 0..80).
    axis : int, optional
        Lags along this axis only (``S_ab(+r)`` and ``S_ab(-r)`` averaged). Default: radial, i.e. averaged
        over all lag vectors whose length falls in each bin (every voxel-lattice vector is one sample).
    bins : array_like, optional
        Radial mode only: bin edges; bin ``i`` holds lags with ``edges[i] <= |r| < edges[i+1]`` and
        ``distance`` is the bin centre (porespy's binning). Default: one bin per voxel of distance, centred
        on the integers (``|r|`` rounded).
    spacing : float or sequence of float, optional
        Voxel size per axis; distances are then physical.

    Returns
    -------
    Correlation
        ``distance`` and ``probability`` arrays.

    Notes
    -----
    The radial mode transforms the whole image once, padded by ``max_distance`` (memory ≈ 3 float32 copies
    of the padded image); the axis mode works line by line and needs little memory.
    """
    arr = _labels(labels)
    sp = _spacing(spacing, arr.ndim)
    a = int(phase_a)
    b = a if phase_b is None else int(phase_b)
    if bins is not None and axis is not None:
        raise InputError("bins applies to the radial correlation only; leave axis=None or drop bins")
    if max_distance is not None:
        max_distance = _non_negative(max_distance)
    if axis is not None:
        axis = _axis(axis, arr.ndim)
        if max_distance is None:
            r_vox = min(80, arr.shape[axis] // 2)
        else:
            # a hair of tolerance: 0.3 / 0.1 is 2.9999999999999996 in floating point, and means 3 lags
            r_vox = int(np.floor(float(max_distance) / sp[axis] * (1 + 1e-9)))
        if not 0 <= r_vox < arr.shape[axis]:
            raise InputError(
                f"max_distance must be in [0, {(arr.shape[axis] - 1) * sp[axis]:g}) along axis {axis}, "
                f"got {max_distance!r}"
            )
        s = _axis_correlations(arr, [(a, b)], axis, r_vox)[(a, b)]
        return Correlation(np.arange(r_vox + 1) * sp[axis], s, a, b, axis)
    centres, edges = _radial_bins(arr.shape, sp, max_distance, bins)
    s = _radial_correlation(arr, a, b, sp, edges)
    return Correlation(centres, s, a, b, None)


def _non_negative(max_distance):
    """``max_distance`` as a finite float ≥ 0, or an :class:`InputError`."""
    given = max_distance
    try:
        max_distance = float(max_distance)
    except (TypeError, ValueError):
        max_distance = float("nan")
    if not (math.isfinite(max_distance) and max_distance >= 0):
        raise InputError(
            f"max_distance must be a non-negative number (voxels or spacing units), got {given!r}"
        )
    return max_distance


def _radial_bins(shape, sp, max_distance, bins):
    """Bin centres and edges of the radial correlation: ``bins`` if given, else one per voxel of distance."""
    if bins is None:
        if max_distance is None:
            max_distance = min(80, min(shape) // 2) * min(sp)
        max_distance = float(max_distance)
        if not 0 <= max_distance:
            raise InputError(f"max_distance must be non-negative, got {max_distance!r}")
        step = min(sp)
        centres = np.arange(0, max_distance + step / 2, step)
        edges = np.r_[centres - step / 2, centres[-1] + step / 2]
        edges[0] = 0.0
    else:
        edges = np.asarray(bins, dtype=float)
        if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0) or edges[0] < 0:
            raise InputError("bins must be at least two increasing, non-negative bin edges")
        centres = (edges[1:] + edges[:-1]) / 2
    return centres, edges

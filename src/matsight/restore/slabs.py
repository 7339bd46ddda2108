"""A volume enhanced in z-slabs, equal to the whole-volume :func:`~matsight.restore.predict.predict`.

The cubic mode of :func:`~matsight.restore.predict.predict` is split into three passes whose memory is set by
the slab size, not by the volume (:mod:`matsight.restore.series` runs them, on dask or serially):

1. :func:`enhance_slab` — LQ slices ``[z0, z1)``: bicubic in xy, normalised, enhanced with ``N`` InDI steps
   (and ``N = 1``). A 2.5D network reads ``context · step`` neighbouring LQ slices on either side: the slab
   reads that many more raw slices (cheap: they are not enhanced).
2. :func:`zoom_slab` — output slices ``[j0, j1)`` of the cubic interpolation along z, from the enhanced LQ
   slices of pass 1 plus :data:`~matsight.restore.zinterp.SPLINE_HALO` on either side.
3. :func:`line_sums` / :func:`residual_slab` — the data-consistency map: the least-squares grey-level line
   needs sums over the whole volume (pass 2 returns them per slab), the residual's Gaussian smoothing reads
   :func:`smooth_halo` slices beyond the slab.

Every pass reproduces the whole-volume result to float precision (``tests/restore/test_series.py``).
"""

import math

import numpy as np
from scipy import ndimage

from .._errors import InputError
from .predict import _downsample, _norm
from .register import upscale
from .zinterp import SPLINE_HALO, zoom_z

__all__ = [
    "context_halo",
    "enhance_slab",
    "line_sums",
    "grey_line",
    "residual_slab",
    "smooth_halo",
    "zoom_slab",
    "plan_slabs",
]


def plan_slabs(n, size):
    """``[(z0, z1), ...]``: ``n`` slices in runs of ``size`` (the last one shorter)."""
    size = max(1, int(size))
    return [(z, min(n, z + size)) for z in range(0, n, size)]


def context_step(job, upscaled):
    """Slices between a 2.5D network's neighbours, as :func:`~matsight.restore.predict._cubic` takes them."""
    return max(1, int(round(job.spacing[0]))) if upscaled else 1


def context_halo(job, upscaled):
    """Raw LQ slices that pass 1 reads beyond a slab on either side."""
    return job.context * context_step(job, upscaled)


def _checked(a, where):
    a = np.asarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        n = int((~np.isfinite(a)).sum())
        raise InputError(f"{where} contains {n} NaN/inf values; fill or crop them (e.g. np.nan_to_num) first")
    return a


def enhance_slab(job, read, z0, z1, n_lq, wanted, *, upscaled=False, where="the input"):
    """Pass 1: ``(y, {N: result})`` for LQ slices ``[z0, z1)`` (normalised, HQ grid in xy, LQ grid in z).

    Parameters
    ----------
    job : matsight.restore.predict._Job
        From :func:`~matsight.restore.predict.setup_job` for a 3D input.
    read : callable
        ``read(lo, hi)`` → raw LQ slices ``[lo, hi)`` of the volume (ZYX).
    z0, z1, n_lq : int
        The slab and the volume's number of LQ slices.
    wanted : sequence of int
        InDI step counts to run (``N``, and 1 for the comparison).
    upscaled : bool
        The input is already on the HQ grid.
    where : str
        How to name the input in an error (a time step's name).
    """
    halo = context_halo(job, upscaled)
    lo, hi = max(0, z0 - halo), min(n_lq, z1 + halo)
    a = _checked(read(lo, hi), where)
    sxy = job.s[-2:]
    y = np.stack([upscale(p, sxy) for p in a]) if not np.allclose(sxy, 1) else a
    y = _norm(y, job.lq_stats)
    rows = range(z0 - lo, z1 - lo)
    step = context_step(job, upscaled)
    results = {n: job.slices(y, n, f"InDI N={n}", step, rows=rows) for n in wanted}
    return y[z0 - lo : z1 - lo], results


def zoom_slab(read, j0, j1, n_in, n_out):
    """Pass 2: output slices ``[j0, j1)`` of the z interpolation; ``read(lo, hi)`` gives pass 1's slices."""
    if n_in == n_out:
        return np.asarray(read(j0, j1), dtype=np.float32)
    lo = max(0, int(math.floor(j0 * n_in / n_out)) - SPLINE_HALO - 1)
    hi = min(n_in, int(math.ceil(j1 * n_in / n_out)) + SPLINE_HALO + 2)
    return zoom_z(read(lo, hi), n_in=n_in, n_out=n_out, lo=lo, j0=j0, j1=j1)


def line_sums(output, lq_n, scale):
    """Sums for the least-squares line ``lq ≈ a · degrade(output) + b`` over one slab, and the degraded slab.

    ``output`` is on the HQ grid (normalised), ``lq_n`` the normalised LQ slices it covers, ``scale`` whole
    numbers per axis. Returns ``(sums, degraded)``, ``sums`` = [Σd², Σd, Σd·lq, Σlq, n] in float64.
    """
    d = _downsample(np.asarray(output, dtype=np.float64), scale)
    lq = np.asarray(lq_n, dtype=np.float64)
    shape = tuple(min(m, n) for m, n in zip(d.shape, lq.shape, strict=True))
    sl = tuple(slice(0, n) for n in shape)
    d, lq = d[sl], lq[sl]
    sums = np.array([np.sum(d * d), np.sum(d), np.sum(d * lq), np.sum(lq), d.size], dtype=np.float64)
    return sums, d.astype(np.float32)


def grey_line(sums):
    """``(a, b)`` of the least-squares line from the added :func:`line_sums` of every slab."""
    sdd, sd, sdl, sl, n = (float(v) for v in np.sum(np.atleast_2d(sums), axis=0))
    coef, *_ = np.linalg.lstsq(np.array([[sdd, sd], [sd, n]]), np.array([sdl, sl]), rcond=None)
    return float(coef[0]), float(coef[1])


def smooth_halo(smooth):
    """Slices a Gaussian of ``smooth`` slices reads on either side (scipy truncates at 4 σ)."""
    return int(4.0 * float(smooth) + 0.5) if smooth else 0


def residual_slab(read_lq, read_d, z0, z1, n, line, *, smooth=1.0):
    """Pass 3: the consistency residual ``lq − (a · d + b)``, smoothed, on LQ slices ``[z0, z1)``.

    ``read_lq`` and ``read_d`` give normalised LQ and degraded output slices ``[lo, hi)``; ``line`` is
    :func:`grey_line`'s. Returns ``(residual float32, Σ residual²)``.
    """
    h = smooth_halo(smooth)
    lo, hi = max(0, z0 - h), min(n, z1 + h)
    a, b = line
    res = np.asarray(read_lq(lo, hi), np.float64) - (a * np.asarray(read_d(lo, hi), np.float64) + b)
    if smooth:
        res = ndimage.gaussian_filter(res, smooth)
    res = res[z0 - lo : z1 - lo]
    return res.astype(np.float32), float(np.sum(res**2))

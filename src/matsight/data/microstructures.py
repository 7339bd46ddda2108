"""Seeded synthetic microstructures: labelled 2D/3D images with known volume fractions.

- :func:`particle_electrode` — overlapping polydisperse spheres (active material) in pore, optionally with a
  binder / carbon-binder phase that bridges particle contacts and coats them thinly (0 pore, 1 active,
  2 binder). The ground truth of the synthetic fuse benchmark.
- :func:`two_phase` — thresholded Gaussian random field ("blobs"), 0 and 1.

Both hit the requested volume fractions exactly (up to one voxel) by thresholding a continuous field at its
quantile rather than by trial placement, and both are vectorised (no Python loop over voxels; the particle
generator loops over particles, each touching only its bounding box).
"""

from __future__ import annotations

import logging
import math
import numbers

import numpy as np

from .._errors import InputError
from .checks import check_seed, check_shape

log = logging.getLogger(__name__)

__all__ = ["particle_electrode", "two_phase"]

_BIG = np.float32(1e6)


def _check_shape(shape):
    return check_shape(shape)


def _check_fraction(name, value, *, low=0.0, high=1.0, closed_low=False):
    ok = isinstance(value, numbers.Real) and (low <= value if closed_low else low < value) and value < high
    if not ok:
        lo = "[" if closed_low else "("
        raise InputError(f"{name} must be a number in {lo}{low:g}, {high:g}), got {value!r}")
    return float(value)


def _threshold_count(field, count):
    """Boolean mask of the ``count`` smallest values of ``field`` (exact count; ties broken by position)."""
    flat = field.ravel()
    mask = np.zeros(flat.size, dtype=bool)
    if count > 0:
        idx = np.argpartition(flat, count - 1)[:count] if count < flat.size else slice(None)
        mask[idx] = True
    return mask.reshape(field.shape)


def _check_electrode_args(shape, n_phases, volume_fraction, binder_fraction, radius, polydispersity):
    """Validate the arguments of :func:`particle_electrode`; return the shape, active and binder fractions."""
    shape = _check_shape(shape)
    if n_phases not in (2, 3):
        raise InputError(f"n_phases must be 2 (pore, active) or 3 (pore, active, binder), got {n_phases!r}")
    vf = _check_fraction("volume_fraction", volume_fraction)
    bf = _check_fraction("binder_fraction", binder_fraction, closed_low=True) if n_phases == 3 else 0.0
    if vf + bf >= 1:
        raise InputError(
            f"volume_fraction + binder_fraction must be < 1 (some pore must remain), got {vf:g} + {bf:g}"
        )
    if not (isinstance(radius, numbers.Real) and 1 <= radius <= max(shape)):
        raise InputError(f"radius must be a number of voxels between 1 and {max(shape)}, got {radius!r}")
    if not (isinstance(polydispersity, numbers.Real) and 0 <= polydispersity <= 2):
        raise InputError(f"polydispersity (std/mean of radii) must be in [0, 2], got {polydispersity!r}")
    return shape, vf, bf


def _boolean_model(shape, radius, polydispersity, vf, rng):
    """Random spheres (discs in 2D) whose union covers about ``vf`` of a box padded around ``shape``.

    Returns the centres ``(n, ndim)``, the log-normal radii ``(n,)`` and the margin (voxels) around each
    surface within which distances are tracked.
    """
    ndim = len(shape)
    # log-normal radii with the requested mean and coefficient of variation, clipped to stay renderable
    s2 = math.log1p(float(polydispersity) ** 2)
    mu = math.log(float(radius)) - s2 / 2
    r_max = float(radius) * math.exp(3 * math.sqrt(s2)) if s2 > 0 else float(radius)
    r_max = min(r_max, max(shape) / 2)
    # Boolean-model intensity giving ~vf; the exact fraction comes from the quantile threshold below
    if ndim == 3:
        mean_size = 4 / 3 * math.pi * math.exp(3 * mu + 4.5 * s2)
    else:
        mean_size = math.pi * math.exp(2 * mu + 2 * s2)
    margin = max(3.0, 0.6 * float(radius))
    pad = r_max + margin
    ext = np.array(shape, dtype=float) + 2 * pad
    n = max(1, rng.poisson(-math.log(1 - vf) * float(np.prod(ext)) / mean_size))
    radii = np.clip(rng.lognormal(mu, math.sqrt(s2), n) if s2 > 0 else np.full(n, float(radius)), 0.5, r_max)
    centres = rng.uniform(-pad, np.array(shape) + pad, size=(n, ndim))
    log.debug("particle_electrode: %d particles, mean radius %.2f", n, radii.mean())
    return centres, radii, margin


def _surface_distances(shape, centres, radii, margin, *, second):
    """Per voxel, the distance to the nearest (``d1``, < 0 inside) and second-nearest (``d2``) sphere surface.

    Both are exact within ``margin`` of a surface and ``_BIG`` beyond; ``d2`` is None unless ``second``.
    """
    ndim = len(shape)
    d1 = np.full(shape, _BIG, dtype=np.float32)  # distance to the nearest sphere surface (<0 inside)
    d2 = np.full(shape, _BIG, dtype=np.float32) if second else None  # second nearest
    for c, r in zip(centres, radii, strict=True):
        reach = r + margin
        lo = np.maximum(np.floor(c - reach).astype(int), 0)
        hi = np.minimum(np.ceil(c + reach).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        sq = None
        for ax in range(ndim):
            g = (np.arange(lo[ax], hi[ax], dtype=np.float32) - np.float32(c[ax])) ** 2
            g = g.reshape([-1 if k == ax else 1 for k in range(ndim)])
            sq = g if sq is None else sq + g
        dist = np.sqrt(sq) - np.float32(r)
        dist[dist > margin] = _BIG  # keep the fields exact only near surfaces (what the thresholds use)
        old = d1[sl]
        if d2 is not None:
            d2[sl] = np.minimum(d2[sl], np.maximum(old, dist))
        d1[sl] = np.minimum(old, dist)
    return d1, d2


def particle_electrode(
    shape,
    *,
    n_phases: int = 3,
    volume_fraction: float = 0.5,
    radius: float = 8.0,
    polydispersity: float = 0.3,
    binder_fraction: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Overlapping polydisperse spheres (active material) with a binder phase at the particle contacts.

    Sphere centres are uniform (a Boolean model, including centres just outside the box so that the faces
    are not depleted) and radii log-normal with mean ``radius`` and coefficient of variation
    ``polydispersity``. For every voxel the distances to the nearest and second-nearest sphere surfaces,
    ``d1`` and ``d2``, are tracked. Active material is the ``volume_fraction`` of voxels with the smallest
    ``d1`` (the spheres, uniformly grown or shrunk by a fraction of a voxel to hit the fraction exactly).
    Binder is the ``binder_fraction`` of pore voxels with the smallest ``d2``: pore close to *two*
    particles, i.e. necks and bridges at contacts, growing into a thin coating as the fraction rises.

    Parameters
    ----------
    shape : tuple of int
        ``(Z, Y, X)`` or ``(Y, X)`` (discs instead of spheres).
    n_phases : {2, 3}, default 3
        2: pore (0) and active (1); 3: pore (0), active (1), binder (2).
    volume_fraction : float, default 0.5
        Fraction of all voxels that are active material, in (0, 1).
    radius : float, default 8.0
        Mean particle radius in voxels (>= 1).
    polydispersity : float, default 0.3
        Coefficient of variation (std / mean) of the radii; 0 gives monodisperse spheres.
    binder_fraction : float, default 0.1
        Fraction of all voxels that are binder (3 phases only); ``volume_fraction + binder_fraction < 1``.
    seed : int, default 0
        Seed of the random generator; the same seed gives the same image.

    Returns
    -------
    ndarray of uint8
        Labels with the given ``shape``.

    Raises
    ------
    InputError
        Bad shape, fractions, radius, polydispersity or ``n_phases``.

    Examples
    --------
    >>> img = particle_electrode((64, 64, 64), volume_fraction=0.45, binder_fraction=0.1, radius=6, seed=1)
    >>> [round(float((img == p).mean()), 3) for p in (0, 1, 2)]
    [0.45, 0.45, 0.1]
    """
    shape, vf, bf = _check_electrode_args(
        shape, n_phases, volume_fraction, binder_fraction, radius, polydispersity
    )
    rng = np.random.default_rng(check_seed(seed))
    centres, radii, margin = _boolean_model(shape, radius, polydispersity, vf, rng)
    d1, d2 = _surface_distances(shape, centres, radii, margin, second=n_phases == 3)

    total = int(np.prod(shape))
    active = _threshold_count(d1, round(vf * total))
    labels = active.astype(np.uint8)
    if n_phases == 3 and bf > 0:
        # binder: pore voxels nearest to a second particle (contacts, necks); beyond the tracked margin the
        # order falls back to the distance to the nearest particle (a coating)
        score = np.where(d2 < _BIG, d2, _BIG + np.minimum(d1, _BIG))
        score[active] = np.inf
        labels[_threshold_count(score, round(bf * total))] = 2
    return labels


def two_phase(
    shape,
    *,
    volume_fraction: float = 0.5,
    size=8.0,
    seed: int = 0,
) -> np.ndarray:
    """Two-phase "blobs": white noise smoothed by a Gaussian and thresholded at its quantile.

    Parameters
    ----------
    shape : tuple of int
        ``(Z, Y, X)`` or ``(Y, X)``.
    volume_fraction : float, default 0.5
        Fraction of voxels labelled 1, in (0, 1).
    size : float or sequence of float, default 8.0
        Standard deviation of the Gaussian in voxels (per axis for anisotropic blobs): the feature size.
    seed : int, default 0

    Returns
    -------
    ndarray of uint8
        0/1 labels; the field is periodic (wrap-around smoothing), so the image tiles seamlessly.

    Examples
    --------
    >>> img = two_phase((32, 32, 32), volume_fraction=0.3, size=3, seed=0)
    >>> round(float(img.mean()), 3)
    0.3
    """
    from scipy import fft as sfft

    shape = _check_shape(shape)
    vf = _check_fraction("volume_fraction", volume_fraction)
    try:
        sizes = np.broadcast_to(np.asarray(size, dtype=float), (len(shape),))
    except (TypeError, ValueError):
        sizes = None
    if sizes is None or not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
        raise InputError(f"size must be a positive number of voxels (or one per axis), got {size!r}")
    rng = np.random.default_rng(check_seed(seed))
    field = rng.standard_normal(shape, dtype=np.float32)
    # periodic Gaussian smoothing in Fourier space: the same as a wrap-around convolution, and much faster
    # than spatial filtering for feature sizes of several voxels
    spec = sfft.rfftn(field)
    for ax, (n, sig) in enumerate(zip(shape, sizes, strict=True)):
        f = sfft.rfftfreq(n) if ax == len(shape) - 1 else sfft.fftfreq(n)
        g = np.exp(-2 * (np.pi * sig * f) ** 2).astype(np.float32)
        spec *= g.reshape([-1 if k == ax else 1 for k in range(len(shape))])
    field = sfft.irfftn(spec, s=shape)
    # the phase-1 voxels are the largest values of the field
    return _threshold_count(-field, round(vf * field.size)).astype(np.uint8)

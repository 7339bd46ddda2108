"""Synthetic grayscale images and volumes: textured particles, or a label image rendered with grey levels.

Fast and seeded, for demos and tests of methods that take grayscale input (restore, segment) and of the image
quality metrics.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .._errors import InputError
from .checks import check_seed, check_shape

__all__ = ["grayscale_from_labels", "synthetic_grayscale"]


def synthetic_grayscale(
    shape,
    *,
    n_particles=None,
    radius=(0.04, 0.12),
    levels=(0.15, 0.75, 0.45),
    texture=0.06,
    blur=0.8,
    noise=0.01,
    seed=0,
):
    """A textured grayscale particle image/volume (background, particles of two kinds), fast and seeded.

    Parameters
    ----------
    shape : tuple of int
        (Y, X) or (Z, Y, X).
    n_particles : int, optional
        Number of particles; default fills roughly 40 % of the space.
    radius : (float, float)
        Particle radius range as a fraction of the smallest in-plane size.
    levels : (float, float, float)
        Grey levels of background, particle kind 1 and kind 2.
    texture : float
        Amplitude of smooth intra-phase texture.
    blur : float
        Gaussian blur (pixels) of the phase edges (the imaging PSF).
    noise : float
        Additive Gaussian noise sd.
    seed : int

    Returns
    -------
    ndarray of float32
        Values roughly in [0, 1].
    """
    shape = check_shape(shape, min_size=4)
    rng = np.random.default_rng(check_seed(seed))
    nd = len(shape)
    side = min(shape[-2:])
    rmin, rmax = (float(r) * side for r in radius)
    vol = float(np.prod(shape))
    mean_ball = (4 / 3 * np.pi if nd == 3 else np.pi) * ((rmin + rmax) / 2) ** nd
    n = int(n_particles) if n_particles is not None else max(3, int(0.5 * vol / mean_ball))
    centres = rng.uniform(0, 1, (n, nd)) * np.asarray(shape)
    radii = rng.uniform(rmin, rmax, n)
    kind = rng.integers(1, 3, n)
    # particle counts are small (tens to hundreds): paint each ball in its bounding box; later ones overwrite
    img = np.full(shape, levels[0], dtype=np.float32)
    for c, r, k in zip(centres, radii, kind, strict=False):
        lo = [max(0, int(ci - r - 1)) for ci in c]
        hi = [min(s, int(ci + r + 2)) for ci, s in zip(c, shape, strict=False)]
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))
        d2 = 0
        for i in range(nd):
            ax = np.arange(lo[i], hi[i], dtype=np.float32) - c[i]
            sh = [1] * nd
            sh[i] = -1
            d2 = d2 + (ax.reshape(sh)) ** 2
        img[sl][d2 <= r * r] = levels[k]
    if texture:
        tex = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), side / 40)
        tex /= tex.std() or 1.0
        img += texture * tex
    if blur:
        img = ndimage.gaussian_filter(img, blur)
    if noise:
        img += rng.normal(0, noise, shape).astype(np.float32)
    return img.astype(np.float32)


def grayscale_from_labels(labels, *, levels=None, texture=0.06, blur=0.8, noise=0.01, seed=0):
    """Render a label image or volume (e.g. from :mod:`matsight.data.microstructures`) as grayscale.

    Each phase gets a grey level (``levels[label]``; default evenly spaced in [0.15, 0.85] in label order),
    plus smooth intra-phase texture, a Gaussian blur of ``blur`` pixels (the imaging PSF) and additive noise.
    Returns float32, roughly in [0, 1].
    """
    from ..io import validate_labels

    lab = validate_labels(labels, name="labels")
    rng = np.random.default_rng(check_seed(seed))
    n = int(lab.max()) + 1
    lv = np.linspace(0.15, 0.85, n) if levels is None else np.asarray(levels, dtype=np.float32)
    if lv.size < n:
        raise InputError(
            f"levels has {lv.size} values but the labels go up to {n - 1}; give one level per phase"
        )
    img = lv[lab].astype(np.float32)
    side = min(lab.shape[-2:])
    if texture:
        tex = ndimage.gaussian_filter(rng.standard_normal(lab.shape).astype(np.float32), max(1.0, side / 40))
        tex /= tex.std() or 1.0
        img += texture * tex
    if blur:
        img = ndimage.gaussian_filter(img, blur)
    if noise:
        img += rng.normal(0, noise, lab.shape).astype(np.float32)
    return img.astype(np.float32)

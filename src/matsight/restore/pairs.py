"""LQ/HQ pairs for restore: simulated coarser, noisier CT scans of an HQ volume.

:func:`simulate_lq` follows how a real low-quality tomogram differs from a high-quality one of the same sample
(``papers/indi_4d_nanotomography.txt``: 2× voxel size, fewer projections / lower dose, small misalignment from
re-positioning): a small rigid misalignment of the sample, area-averaging onto the coarser voxel grid, and per
axial slice a parallel-beam acquisition (Radon transform over fewer angles, Poisson photon noise at a given
dose) reconstructed by filtered back projection (:func:`skimage.transform.iradon`).

HQ volumes to scan come from anywhere, e.g. :func:`matsight.data.grayscale.synthetic_grayscale`.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .._errors import InputError
from ..data.checks import check_seed
from .register import apply_rigid, as_image

log = logging.getLogger(__name__)

__all__ = ["downsample", "simulate_lq"]


def downsample(image, scale):
    """Area-average ``image`` onto a grid ``scale`` times coarser in every axis (integer or fractional).

    Integer factors average blocks exactly (the shape is cropped to a multiple); fractional factors use
    :func:`skimage.transform.rescale` with anti-aliasing.
    """
    image = np.asarray(image, dtype=np.float32)
    try:
        s = float(scale)
    except (TypeError, ValueError):
        s = float("nan")
    if not (math.isfinite(s) and s > 0):
        raise InputError(f"scale must be a positive number, e.g. 2 or 2.5, got {scale!r}")
    if s == 1:
        return image.copy()
    if abs(s - round(s)) < 1e-9:
        k = int(round(s))
        crop = tuple(slice(0, (n // k) * k) for n in image.shape)
        a = image[crop]
        if min(a.shape) == 0:
            raise InputError(f"image {image.shape} is smaller than the scale {k}; give a larger image")
        new = []
        for n in a.shape:
            new += [n // k, k]
        return a.reshape(new).mean(axis=tuple(range(1, 2 * a.ndim, 2))).astype(np.float32)
    from skimage.transform import rescale

    return rescale(image, 1 / s, order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def _scan_slice(sl, theta, dose, rng, attenuation):
    from skimage.transform import iradon, radon

    # the image is an attenuation map; ``attenuation`` scales it so line integrals stay in a realistic range
    sino = radon(sl, theta=theta, circle=False)
    if dose is not None:
        trans = np.exp(-sino * attenuation)
        counts = rng.poisson(dose * trans)
        sino = -np.log(np.maximum(counts, 0.5) / dose) / attenuation
    rec = iradon(sino, theta=theta, circle=False, output_size=sl.shape[0], filter_name="ramp")
    return rec.astype(np.float32)


def simulate_lq(
    hq,
    *,
    scale=2,
    n_projections=None,
    dose=5e3,
    shift=(0.6, -1.3),
    rotation_deg=0.4,
    max_transmission_loss=0.85,
    seed=0,
):
    """Simulate a low-quality scan of the sample imaged in ``hq`` (2D slice or ZYX volume).

    Parameters
    ----------
    hq : ndarray
        High-quality image/volume (any intensity range; treated as an attenuation map after min-max scaling).
    scale : int or float
        LQ voxel size / HQ voxel size (paper: 2).
    n_projections : int, optional
        Projection angles over 180°; default ``ceil(width_lq / 2)``, about a third of the ~π/2·width that
        full sampling needs, which leaves streaks like a fast scan.
    dose : float or None
        Incident photons per detector pixel and angle (Poisson noise); None for noise-free projections. The
        default, 5e3, leaves the LQ/HQ contrast-to-noise ratio of the Li-ion cell CT's core near the paper's
        0.9 / 2.4 (``benchmarks/restore_pairs.py``).
    shift : sequence of float
        Rigid misalignment in HQ pixels: (dy, dx) or (dz, dy, dx) for volumes.
    rotation_deg : float
        Misalignment rotation in the YX plane (about Z), degrees.
    max_transmission_loss : float
        Fraction of the beam absorbed along the most attenuating ray (sets the contrast/noise balance).
    seed : int
        Seed for the photon noise.

    Returns
    -------
    ndarray of float32
        The LQ image on the coarse grid (shape ``hq.shape // scale``), in the intensity units of ``hq``.
    """
    hq = as_image(hq, "hq")
    rng = np.random.default_rng(check_seed(seed))
    if n_projections is not None and int(n_projections) < 2:
        raise InputError(f"n_projections must be at least 2, got {n_projections}")
    if dose is not None and dose <= 0:
        raise InputError(f"dose must be positive photons per pixel (or None for no noise), got {dose}")
    lo, hi = float(hq.min()), float(hq.max())
    if hi <= lo:
        raise InputError("hq is constant; there is nothing to scan")
    mu = (hq.astype(np.float32) - lo) / (hi - lo)

    sh = np.zeros(hq.ndim)
    s_in = np.atleast_1d(np.asarray(shift, dtype=float))
    if s_in.size not in (2, hq.ndim):
        raise InputError(f"shift needs (dy, dx) or one value per axis, got {tuple(s_in)}")
    sh[-s_in.size :] = s_in
    moved = apply_rigid(mu, rotation_deg=rotation_deg, shift=sh, order=3, mode="reflect")
    coarse = np.clip(downsample(moved, scale), 0, None)

    slices = coarse[None] if coarse.ndim == 2 else coarse
    ny, nx = slices.shape[1:]
    if ny != nx:
        # radon needs square slices: pad with air, crop back after the reconstruction
        n = max(ny, nx)
        pad = ((0, 0), ((n - ny) // 2, n - ny - (n - ny) // 2), ((n - nx) // 2, n - nx - (n - nx) // 2))
        slices = np.pad(slices, pad)
    n_ang = int(n_projections) if n_projections is not None else int(np.ceil(max(ny, nx) / 2))
    theta = np.linspace(0.0, 180.0, n_ang, endpoint=False)
    # attenuation per unit line integral so that the strongest ray loses ``max_transmission_loss`` of the beam
    from skimage.transform import radon

    ref = slices[int(np.argmax(slices.reshape(len(slices), -1).sum(1)))]
    pmax = float(radon(ref, theta=theta[:: max(1, n_ang // 8)], circle=False).max()) or 1.0
    attenuation = -np.log(1 - max_transmission_loss) / pmax
    out = np.stack([_scan_slice(s, theta, dose, rng, attenuation) for s in slices])
    if ny != nx:
        out = out[:, pad[1][0] : pad[1][0] + ny, pad[2][0] : pad[2][0] + nx]
    out = out[0] if coarse.ndim == 2 else out
    log.info("simulated LQ %s from HQ %s: %d projections, dose %s", out.shape, hq.shape, n_ang, dose)
    return (out * (hi - lo) + lo).astype(np.float32)

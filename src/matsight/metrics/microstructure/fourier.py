"""Fourier-space texture: the radially averaged FFT magnitude and the diagonal-over-axis power ratio."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..._errors import InputError
from ._common import _axis, _spacing

__all__ = ["FFTProfile", "fft_orientation_ratio", "radial_fft_profile"]


@dataclass
class FFTProfile:
    """Radially averaged FFT magnitude.

    Attributes
    ----------
    frequency : ndarray
        Spatial frequency (bin centre) in cycles per voxel (per ``spacing`` unit if given), up to Nyquist.
    magnitude : ndarray
        Mean ``|FFT(image - mean)| / sqrt(N)`` over the frequencies in each bin (``N`` = pixels per
        transform): size-independent, equal to the standard deviation for white noise.
    axis : int or None
        For a stack of 2D transforms: the axis normal to the slices; None for one nD transform.
    """

    frequency: np.ndarray
    magnitude: np.ndarray
    axis: int | None = None

    def to_dict(self):
        """JSON-able form."""
        return {
            "axis": self.axis,
            "frequency": [float(v) for v in self.frequency],
            "magnitude": [float(v) for v in self.magnitude],
        }


def radial_fft_profile(image, *, slice_axis=None, n_bins=None, spacing=None) -> FFTProfile:
    """Radially averaged magnitude of the Fourier transform of an image or volume.

    Parameters
    ----------
    image : array_like, 2D or 3D
        Grayscale or labels (pass ``labels == p`` for one phase of a label image).
    slice_axis : int, optional
        3D only: average the 2D transforms of the slices normal to this axis (to compare a volume with 2D
        micrographs, as the SuperRes paper does). Default: one transform of the whole array.
    n_bins : int, optional
        Number of frequency bins from 0 to Nyquist (default: half the smallest transformed size).
    spacing : float or sequence of float, optional
        Pixel/voxel size per axis; frequencies are then in cycles per unit length.

    Returns
    -------
    FFTProfile
    """
    from scipy import fft as sfft

    img = np.asarray(image)
    if img.ndim not in (2, 3) or img.size == 0 or img.dtype.kind not in "biuf":
        raise InputError(
            f"image must be a non-empty 2D or 3D numeric array, got shape {img.shape} {img.dtype}"
        )
    sp = _spacing(spacing, img.ndim)
    x = img.astype(np.float32)
    if slice_axis is not None:
        if img.ndim != 3:
            raise InputError("slice_axis needs a 3D image; leave it out for 2D images")
        slice_axis = _axis(slice_axis, 3)
        x = np.moveaxis(x, slice_axis, 0)
        sp_t = tuple(s for k, s in enumerate(sp) if k != slice_axis)
        axes = (1, 2)
        x = x - x.mean(axis=axes, keepdims=True)
    else:
        sp_t = sp
        axes = tuple(range(img.ndim))
        x = x - x.mean()
    shape_t = [x.shape[k] for k in axes]
    mag = np.abs(sfft.rfftn(x, axes=axes)) / np.sqrt(np.prod(shape_t))
    if slice_axis is not None:
        mag = mag.mean(axis=0)
    # frequency magnitude on the half spectrum; bins of the other half are mirror images
    freqs = [np.fft.fftfreq(n, d=s) for n, s in zip(shape_t[:-1], sp_t[:-1], strict=True)]
    freqs.append(np.fft.rfftfreq(shape_t[-1], d=sp_t[-1]))
    grids = np.meshgrid(*freqs, indexing="ij", sparse=True)
    fr = np.sqrt(sum(g**2 for g in grids))
    # weight: every rfft column except 0 (and Nyquist for even n) stands for two full-spectrum frequencies
    w_last = np.full(freqs[-1].size, 2.0)
    w_last[0] = 1.0
    if shape_t[-1] % 2 == 0:
        w_last[-1] = 1.0
    w = np.broadcast_to(w_last, fr.shape)
    nyq = min(0.5 / s for s in sp_t)
    if n_bins is None:
        n_bins = max(2, min(shape_t) // 2)
    edges = np.linspace(0, nyq, int(n_bins) + 1)
    which = np.clip(np.searchsorted(edges, fr.ravel(), side="right") - 1, 0, None)
    ok = which < n_bins
    sums = np.bincount(which[ok], weights=(mag.ravel() * w.ravel())[ok], minlength=n_bins)
    cnt = np.bincount(which[ok], weights=w.ravel()[ok], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        prof = np.where(cnt > 0, sums / np.maximum(cnt, 1e-300), np.nan)
    return FFTProfile((edges[1:] + edges[:-1]) / 2, prof, slice_axis)


def fft_orientation_ratio(image, *, slice_axis=None, band=(0.1, 0.35), half_width=15.0):
    """Power of a 2D image's Fourier transform along the diagonals over that along the axes.

    Generators built from strided or transposed convolutions can leave textures aligned with the voxel
    grid (streaks along the diagonals, checkerboards); an isotropic texture gives ≈ 1, as does the HR image
    of an isotropic material. Compare the SR's ratio with the HR image's rather than with 1.

    Parameters
    ----------
    image : array_like
        2D image, or 3D stack of 2D slices normal to ``slice_axis`` (pass ``labels == p`` for one phase).
    slice_axis : int, optional
        For a 3D array: the axis normal to the slices (default 0).
    band : (float, float)
        Spatial frequencies compared, in cycles per pixel (default 0.1–0.35: textures 3–10 px across).
    half_width : float
        Half-width in degrees of the wedges around 45°/135° (diagonals) and 0°/90° (axes).

    Returns
    -------
    float
        Mean power in the diagonal wedges / mean power in the axis wedges; nan if the image is uniform or
        too small for the band to reach both.
    """
    from scipy import fft as sfft

    x = np.asarray(image)
    if x.ndim not in (2, 3) or x.size == 0 or x.dtype.kind not in "biuf":
        raise InputError(f"image must be a non-empty 2D image or 3D stack, got shape {x.shape} {x.dtype}")
    if not 0 <= band[0] < band[1] <= 0.5 * np.sqrt(2) or not 0 < half_width <= 22.5:
        raise InputError(
            f"band must be 0 ≤ low < high ≤ 0.71 and half_width in (0, 22.5], got {band}, {half_width}"
        )
    x = x.astype(np.float32)
    x = x[None] if x.ndim == 2 else np.moveaxis(x, _axis(slice_axis or 0, 3), 0)
    x = x - x.mean(axis=(1, 2), keepdims=True)
    power = (np.abs(sfft.fft2(x, axes=(1, 2))) ** 2).mean(axis=0)
    ky = np.fft.fftfreq(x.shape[1])[:, None]
    kx = np.fft.fftfreq(x.shape[2])[None, :]
    radius = np.hypot(ky, kx)
    angle = np.degrees(np.arctan2(ky, kx)) % 180.0
    ring = (radius >= band[0]) & (radius <= band[1])
    diagonal = ring & ((np.abs(angle - 45) < half_width) | (np.abs(angle - 135) < half_width))
    axes = ring & ((angle < half_width) | (angle > 180 - half_width) | (np.abs(angle - 90) < half_width))
    axis_power = power[axes].mean() if axes.any() else 0.0
    if axis_power <= 0 or not diagonal.any():  # uniform, or too small to have both wedges in the band
        return float("nan")
    return float(power[diagonal].mean() / axis_power)

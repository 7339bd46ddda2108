"""Image-quality metrics used to judge restoration (``papers/indi_4d_nanotomography.txt``, Methods).

- :func:`psnr`, :func:`ssim` — scikit-image's, with the data range made explicit (the reference's range by
  default, never a dtype guess).
- :func:`sift_congruent_keypoints` — SIFT keypoints matched between two images by descriptor distance and kept
  when their positions agree ("congruent points"; more is better and, unlike PSNR/SSIM, it tolerates small
  misregistration).
- :func:`cnr`, :func:`snr`, :func:`otsu_masks` — contrast- and signal-to-noise ratios from masks (Otsu
  foreground/background by default).

Spatial resolution (FWHM of edges and lines) is in :mod:`matsight.metrics.resolution`.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from matsight._errors import InputError

from ._checks import as_image as _image
from .resolution import edge_fwhm

__all__ = [
    "cnr",
    "otsu_masks",
    "psnr",
    "quality_summary",
    "sift_congruent_keypoints",
    "snr",
    "ssim",
]


# ------------------------------------------------------------------------------------------------- validation
def _pair(reference, image):
    reference = _image(reference, "reference")
    image = _image(image, "image")
    if reference.shape != image.shape:
        raise InputError(
            f"reference {reference.shape} and image {image.shape} differ in shape; "
            "put them on one grid first (e.g. matsight.restore.register.prepare_pair)"
        )
    return reference, image


def _data_range(reference, data_range):
    if data_range is None:
        data_range = float(reference.max()) - float(reference.min())
    data_range = float(data_range)
    if not data_range > 0:
        raise InputError(
            "data_range must be positive; the reference is constant — pass data_range= explicitly "
            "(e.g. 2 for images in [-1, 1])"
        )
    return data_range


# -------------------------------------------------------------------------------------------------- PSNR/SSIM
def _mask_for(mask, shape):
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        try:
            m = np.broadcast_to(m, shape)
        except ValueError:
            raise InputError(f"mask of shape {np.shape(mask)} does not fit images of shape {shape}") from None
    m = m.astype(bool)
    if not m.any():
        raise InputError("the mask selects no pixels; give a mask that covers the region to score")
    return m


def psnr(reference, image, *, data_range=None, mask=None):
    """Peak signal-to-noise ratio in dB (:func:`skimage.metrics.peak_signal_noise_ratio`).

    Parameters
    ----------
    reference, image : ndarray
        Same shape; ``reference`` is the ground truth (e.g. the HQ scan).
    data_range : float, optional
        Peak-to-peak range of the signal; default ``reference.max() - reference.min()`` (inside ``mask``).
        Give it explicitly when comparing several images against one reference on a fixed scale (e.g. 2 for
        [-1, 1]).
    mask : ndarray of bool, optional
        Score only these pixels (e.g. the field of view): ``10 log10(data_range² / MSE inside the mask)``.
    """
    from skimage.metrics import peak_signal_noise_ratio

    reference, image = _pair(reference, image)
    m = _mask_for(mask, reference.shape)
    if m is None:
        dr = _data_range(reference, data_range)
        return float(peak_signal_noise_ratio(reference, image, data_range=dr))
    r, x = reference[m].astype(np.float64), image[m].astype(np.float64)
    dr = _data_range(r, data_range)
    mse = float(np.mean((r - x) ** 2))
    return math.inf if mse == 0 else float(10 * math.log10(dr * dr / mse))


def ssim(reference, image, *, data_range=None, mask=None, **kwargs):
    """Structural similarity (:func:`skimage.metrics.structural_similarity`), 2D or 3D.

    ``data_range`` as in :func:`psnr`; with ``mask`` the SSIM map is averaged over the masked pixels only.
    Other keyword arguments (``win_size``, ``gaussian_weights``, ...) are passed to scikit-image.
    """
    from skimage.metrics import structural_similarity

    reference, image = _pair(reference, image)
    m = _mask_for(mask, reference.shape)
    dr = _data_range(reference if m is None else reference[m], data_range)
    if min(reference.shape) < kwargs.get("win_size", 7):
        raise InputError(
            f"images of shape {reference.shape} are smaller than the SSIM window "
            f"({kwargs.get('win_size', 7)}); "
            "use larger images or pass win_size= (odd, >= 3)"
        )
    if reference.dtype.kind != "f" or image.dtype.kind != "f":
        reference, image = reference.astype(np.float64), image.astype(np.float64)
    if m is None:
        return float(structural_similarity(reference, image, data_range=dr, **kwargs))
    _, smap = structural_similarity(reference, image, data_range=dr, full=True, **kwargs)
    return float(smap[m].mean())


# ------------------------------------------------------------------------------------------------------- SIFT
def _unit(img):
    img = img.astype(np.float64)
    lo, hi = np.percentile(img, [0.5, 99.5])
    if hi <= lo:
        return np.zeros_like(img)
    return np.clip((img - lo) / (hi - lo), 0, 1)


def _sift(img, **kw):
    from skimage.feature import SIFT

    det = SIFT(**kw)
    try:
        det.detect_and_extract(img)
    except RuntimeError:  # scikit-image raises when no keypoint survives
        return np.empty((0, 2)), np.empty((0, 128), dtype=np.uint8)
    return det.keypoints.astype(np.float64), det.descriptors


def sift_congruent_keypoints(
    a, b, *, max_distance=3.0, max_ratio=0.8, return_details=False, max_slices=8, **sift_kwargs
):
    """Number of SIFT keypoints that match between ``a`` and ``b`` and sit at the same place.

    Keypoints and descriptors are computed on both images (:class:`skimage.feature.SIFT`, intensities rescaled
    to [0, 1] by 0.5/99.5 percentiles), matched by Euclidean descriptor distance with a cross check and Lowe's
    ratio test (``max_ratio``), and a match is *congruent* when the two keypoints lie within ``max_distance``
    pixels of each other (the images are on one grid, so a true match is at the same place).

    Parameters
    ----------
    a, b : ndarray
        2D images of equal shape (typically enhanced and HQ). 3D volumes are scored on up to ``max_slices``
        evenly spaced Z slices and the counts summed.
    max_distance : float
        Position tolerance in pixels.
    max_ratio : float
        Lowe's ratio test threshold (1 disables it).
    return_details : bool
        Return a dict (``congruent``, ``matches``, ``keypoints_a``, ``keypoints_b``) instead of the count.
    **sift_kwargs
        Passed to :class:`skimage.feature.SIFT`.

    Returns
    -------
    int or dict
    """
    from skimage.feature import match_descriptors

    a, b = _pair(a, b)
    if min(a.shape[-2:]) < 16:
        raise InputError(f"images of shape {a.shape} are too small for SIFT; use at least 16 x 16 pixels")
    if a.ndim == 3:
        idx = np.unique(np.linspace(0, a.shape[0] - 1, min(max_slices, a.shape[0])).round().astype(int))
        parts = [
            sift_congruent_keypoints(
                a[i], b[i], max_distance=max_distance, max_ratio=max_ratio, return_details=True, **sift_kwargs
            )
            for i in idx
        ]
        total = {k: sum(p[k] for p in parts) for k in parts[0]}
        return total if return_details else total["congruent"]
    ka, da = _sift(_unit(a), **sift_kwargs)
    kb, db = _sift(_unit(b), **sift_kwargs)
    n_match = n_cong = 0
    if len(ka) and len(kb):
        m = match_descriptors(da, db, cross_check=True, max_ratio=max_ratio)
        n_match = len(m)
        if n_match:
            d = np.linalg.norm(ka[m[:, 0]] - kb[m[:, 1]], axis=1)
            n_cong = int(np.sum(d <= max_distance))
    out = {"congruent": n_cong, "matches": int(n_match), "keypoints_a": len(ka), "keypoints_b": len(kb)}
    return out if return_details else n_cong


# --------------------------------------------------------------------------------------------------- CNR/SNR
def otsu_masks(image, *, erode=2, smooth=1.0):
    """Foreground (above Otsu's threshold) and background masks, each eroded by ``erode`` pixels.

    The threshold is applied to the image smoothed by a Gaussian of ``smooth`` pixels, so single noisy pixels
    are not classified as the other phase; erosion keeps the blurred transition zone out of both masks, so
    CNR/SNR measure the interiors (as a segmentation of particles vs background would).
    """
    from skimage.filters import threshold_otsu

    image = _image(image, "image")
    if float(image.max()) == float(image.min()):
        raise InputError("image is constant; Otsu's threshold needs two intensity populations")
    sm = ndimage.gaussian_filter(image.astype(np.float64), smooth) if smooth else image
    t = threshold_otsu(sm)
    fg = sm > t
    bg = ~fg
    if erode:
        st = ndimage.generate_binary_structure(image.ndim, 1)
        fg = ndimage.binary_erosion(fg, st, iterations=int(erode), border_value=1)
        bg = ndimage.binary_erosion(bg, st, iterations=int(erode), border_value=1)
    if fg.sum() < 2 or bg.sum() < 2:
        raise InputError(
            "Otsu masks are (nearly) empty after erosion; "
            "pass foreground/background masks or a smaller erode="
        )
    return fg, bg


def _masks(image, fg, bg):
    image = _image(image, "image")
    if fg is None and bg is None:
        fg, bg = otsu_masks(image)
    elif fg is None or bg is None:
        raise InputError("give both foreground_mask and background_mask, or neither (Otsu masks)")
    out = []
    for name, m in (("foreground_mask", fg), ("background_mask", bg)):
        m = np.asarray(m)
        if m.shape != image.shape:
            raise InputError(
                f"{name} has shape {m.shape} but the image is {image.shape}; give a mask per pixel"
            )
        m = m.astype(bool)
        if m.sum() < 2:
            raise InputError(f"{name} selects fewer than 2 pixels; give a larger region")
        out.append(m)
    return image.astype(np.float64), out[0], out[1]


def cnr(image, foreground_mask=None, background_mask=None, *, noise="both"):
    """Contrast-to-noise ratio between a foreground and a background region.

    ``CNR = |mean_fg - mean_bg| / noise`` with ``noise`` one of:
    ``"both"`` (default): ``sqrt(std_fg**2 + std_bg**2)``; ``"background"``: ``std_bg``;
    ``"mean"``: ``sqrt((std_fg**2 + std_bg**2) / 2)``. Standard deviations are population (ddof = 0).
    Without masks, :func:`otsu_masks` is used.
    """
    img, fg, bg = _masks(image, foreground_mask, background_mask)
    mf, mb = img[fg].mean(), img[bg].mean()
    sf, sb = img[fg].std(), img[bg].std()
    if noise == "both":
        s = math.sqrt(sf**2 + sb**2)
    elif noise == "background":
        s = sb
    elif noise == "mean":
        s = math.sqrt((sf**2 + sb**2) / 2)
    else:
        raise InputError(f"unknown noise definition {noise!r}; use 'both', 'background' or 'mean'")
    return float(abs(mf - mb) / s) if s > 0 else math.inf


def snr(image, foreground_mask=None, background_mask=None):
    """Signal-to-noise ratio: mean of the foreground over the noise sd.

    With a background mask the noise is the background's sd (``mean_fg / std_bg``), otherwise the foreground's
    own sd (``mean_fg / std_fg``, for a region of uniform material). Without any mask, Otsu's foreground and
    background (:func:`otsu_masks`).
    """
    image = _image(image, "image")
    if foreground_mask is None and background_mask is None:
        foreground_mask, background_mask = otsu_masks(image)
    if foreground_mask is None:
        raise InputError("snr needs a foreground_mask when a background_mask is given")
    if background_mask is None:
        img, fg, _ = _masks(image, foreground_mask, np.ones(image.shape, bool))
        s = img[fg].std()
    else:
        img, fg, bg = _masks(image, foreground_mask, background_mask)
        s = img[bg].std()
    m = img[fg].mean()
    return float(m / s) if s > 0 else math.inf


# ---------------------------------------------------------------------------------------------------- summary
def quality_summary(
    reference, image, *, mask=None, data_range=None, spacing=1.0, masks=None, sift=True, **edge_kw
):
    """All image-quality figures of ``image`` against ``reference`` in one dict (for reports and JSON).

    Keys: ``psnr``, ``ssim`` (within ``mask``), ``sift_congruent`` (and ``sift_matches``), ``fwhm_median`` /
    ``fwhm_std`` / ``fwhm_n`` (:func:`edge_fwhm` of ``image`` within ``mask``, units of ``spacing``), ``cnr``
    and ``snr``. CNR/SNR use ``masks = (foreground, background)`` if given, else Otsu masks of the
    *reference*, so that every image compared against one reference is scored on the same regions.
    ``edge_kw`` is passed to :func:`edge_fwhm`.
    """
    reference, image = _pair(reference, image)
    m = _mask_for(mask, reference.shape)
    out = {
        "psnr": psnr(reference, image, data_range=data_range, mask=m),
        "ssim": ssim(reference, image, data_range=data_range, mask=m),
    }
    if sift:
        d = sift_congruent_keypoints(reference, image, return_details=True)
        out["sift_congruent"], out["sift_matches"] = d["congruent"], d["matches"]
    e = edge_fwhm(image, spacing=spacing, mask=m, **edge_kw)
    out["fwhm_median"], out["fwhm_std"], out["fwhm_n"] = e.median, e.std, int(e.widths.size)
    if masks is None:
        fg, bg = otsu_masks(reference)
        if m is not None:
            fg, bg = fg & m, bg & m
    else:
        fg, bg = masks
    out["cnr"] = cnr(image, fg, bg)
    out["snr"] = snr(image, fg, bg)
    return out

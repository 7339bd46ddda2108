"""Multi-scale filter features for pixel classification, 2D and 3D (the ilastik / Weka feature families).

Per pixel: the intensity, and at every scale σ the Gaussian-smoothed intensity, the Gaussian gradient
magnitude, the Laplacian of Gaussian, a difference of Gaussians (G(0.66σ) − G(σ), ilastik's ratio), the
eigenvalues of the Hessian of Gaussian (edges, ridges, blobs) and of the structure tensor (inner scale σ/2,
outer σ: texture orientation/coherence). scikit-image's :func:`skimage.feature.multiscale_basic_features`
offers the intensity / edge / Hessian subset; here every filter is an exact Gaussian (derivative) convolution
from :mod:`scipy.ndimage` with a known kernel radius, because tiled inference needs that radius: a tile with a
halo of :func:`feature_radius` pixels gives bit-identical features in its core to the whole image.

Features are float32 and channels-last, ``(*spatial, n_features)``.
"""

import logging

import numpy as np
from scipy import ndimage as ndi

from .._errors import InputError
from .config import FEATURE_KINDS, FeatureConfig

log = logging.getLogger(__name__)

__all__ = ["compute_features", "feature_names", "feature_radius", "intensity_range", "normalize"]

DOG_RATIO = 0.66


def _radius(sigma, truncate):
    # scipy.ndimage's Gaussian kernels span int(truncate * sigma + 0.5) pixels each side
    return int(truncate * float(sigma) + 0.5)


def _as_config(config):
    if config is None:
        return FeatureConfig()
    if isinstance(config, FeatureConfig):
        return config
    return FeatureConfig(**dict(config))


def feature_radius(config=None):
    """Pixels of context a feature needs on each side (the halo for exact tiled computation)."""
    cfg = _as_config(config)
    r = 0
    for s in cfg.sigmas:
        if any(k in cfg.kinds for k in ("gaussian", "gradient", "log", "dog", "hessian")):
            r = max(r, _radius(s, cfg.truncate))
        if "structure" in cfg.kinds:
            r = max(r, _radius(0.5 * s, cfg.truncate) + _radius(s, cfg.truncate))
    return r


def feature_names(config=None, ndim=2):
    """Names of the feature channels, in the order :func:`compute_features` returns them."""
    cfg = _as_config(config)
    names = ["intensity"] if "intensity" in cfg.kinds else []
    for s in cfg.sigmas:
        for kind in FEATURE_KINDS[1:]:
            if kind not in cfg.kinds:
                continue
            if kind in ("hessian", "structure"):
                names += [f"{kind}_eig{i}_s{s:g}" for i in range(ndim)]
            else:
                names.append(f"{kind}_s{s:g}")
    return names


def intensity_range(image, *, percentiles=(0.5, 99.5), max_samples=2_000_000):
    """Robust grey-value range ``(lo, hi)`` from percentiles of (a strided sample of) ``image``."""
    flat = np.asarray(image).ravel()
    if flat.size > max_samples:
        flat = flat[:: int(np.ceil(flat.size / max_samples))]
    if flat.dtype.kind == "b":  # a mask used as an image: numpy has no percentiles of booleans
        flat = flat.astype(np.uint8)
    flat = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if flat.size == 0:
        raise InputError("the image has no finite values; check the file")
    lo, hi = (float(v) for v in np.percentile(flat, percentiles))
    if hi <= lo:  # near-constant image: fall back to the full range, then to unit width
        lo, hi = float(flat.min()), float(flat.max())
        if hi <= lo:
            hi = lo + 1.0
    return lo, hi


def normalize(image, lo, hi):
    """Map grey values linearly so that ``lo → 0`` and ``hi → 1`` (float32; not clipped).

    Non-finite pixels (NaN, ±inf, e.g. outside a reconstruction's field of view) would spread through every
    filter into a neighbourhood as wide as the largest kernel; they become 0 (NaN, −inf) or 1 (+inf), with a
    warning.
    """
    a = np.asarray(image)
    out = (a.astype(np.float32) - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    if out.dtype.kind == "f":
        bad = ~np.isfinite(out)
        if bad.any():
            n = int(np.count_nonzero(bad))
            log.warning(
                "the image has %d non-finite pixels (NaN/inf); they are segmented as grey value %g "
                "(NaN, -inf) or %g (+inf)",
                n,
                lo,
                hi,
            )
            pos = np.isposinf(out)
            out[bad] = 0.0
            out[pos] = 1.0
    return out


def _sym_eigvals(components, ndim):
    """Eigenvalues (descending) of symmetric matrices given by their upper-triangle component images."""
    if ndim == 2:
        a, b, c = components  # [[a, b], [b, c]]
        mean = 0.5 * (a + c)
        root = np.sqrt(0.25 * (a - c) ** 2 + b * b)
        return [mean + root, mean - root]
    shape = components[0].shape
    m = np.empty((*shape, 3, 3), dtype=np.float32)
    idx = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    for comp, (i, j) in zip(components, idx, strict=True):
        m[..., i, j] = comp
        m[..., j, i] = comp
    ev = np.linalg.eigvalsh(m)[..., ::-1]  # eigvalsh sorts ascending
    return [np.ascontiguousarray(ev[..., k]) for k in range(3)]


def compute_features(image, config=None):
    """Multi-scale features of a normalised 2D or 3D image.

    Parameters
    ----------
    image : ndarray
        2D (YX) or 3D (ZYX) float image, ideally scaled to about [0, 1] by :func:`normalize`.
    config : FeatureConfig or dict, optional
        Scales and filter kinds (default: all kinds at σ = 1, 2, 4, 8).

    Returns
    -------
    ndarray
        float32 ``(*image.shape, n_features)``; channel ``i`` is ``feature_names(config, image.ndim)[i]``.

    Notes
    -----
    Borders are handled by mirror reflection (scipy's ``"reflect"``). Derivative features are not
    scale-normalised: the random forest is invariant to per-feature monotone scaling.
    """
    cfg = _as_config(config)
    img = np.asarray(image, dtype=np.float32)
    if img.ndim not in (2, 3):
        raise InputError(f"features need a 2D or 3D image, got shape {img.shape}")
    nd = img.ndim
    tr = cfg.truncate
    kinds = set(cfg.kinds)
    n = len(feature_names(cfg, nd))
    out = np.empty((*img.shape, n), dtype=np.float32)
    k = 0

    def put(arr):
        nonlocal k
        out[..., k] = arr
        k += 1

    def gauss(s, order=0):
        return ndi.gaussian_filter(img, s, order=order, mode="reflect", truncate=tr, output=np.float32)

    if "intensity" in kinds:
        put(img)
    for s in cfg.sigmas:
        g = gauss(s) if kinds & {"gaussian", "dog"} else None
        if "gaussian" in kinds:
            put(g)
        if "gradient" in kinds:
            put(ndi.gaussian_gradient_magnitude(img, s, mode="reflect", truncate=tr, output=np.float32))
        if "log" in kinds:
            put(ndi.gaussian_laplace(img, s, mode="reflect", truncate=tr, output=np.float32))
        if "dog" in kinds:
            put(gauss(DOG_RATIO * s) - g)
        if "hessian" in kinds:
            comps = []
            for i in range(nd):
                for j in range(i, nd):
                    order = [0] * nd
                    order[i] += 1
                    order[j] += 1
                    comps.append(gauss(s, order))
            for ev in _sym_eigvals(comps, nd):
                put(ev)
        if "structure" in kinds:
            si = 0.5 * s
            grads = []
            for i in range(nd):
                order = [0] * nd
                order[i] = 1
                grads.append(gauss(si, order))
            comps = []
            for i in range(nd):
                for j in range(i, nd):
                    comps.append(
                        ndi.gaussian_filter(
                            grads[i] * grads[j], s, mode="reflect", truncate=tr, output=np.float32
                        )
                    )
            for ev in _sym_eigvals(comps, nd):
                put(ev)
    assert k == n
    return out

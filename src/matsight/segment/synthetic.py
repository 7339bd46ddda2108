"""Synthetic grayscale images with known phases and hand-like strokes (for tests, the demo and benchmarks)."""

import numpy as np
from scipy import ndimage as ndi

__all__ = ["phase_image", "grayscale_from_labels", "draw_strokes"]


def phase_image(shape, *, n_phases=3, correlation=4.0, seed=0):
    """Random ``n_phases`` labels (uint8, about equal fractions): smoothed noise thresholded at quantiles.

    Parameters
    ----------
    shape : tuple of int
        2D or 3D.
    correlation : float
        Gaussian smoothing of the noise in pixels: the typical feature size.
    """
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.standard_normal(shape), correlation, mode="wrap")
    cuts = np.quantile(field, np.arange(1, n_phases) / n_phases)
    return np.digitize(field, cuts).astype(np.uint8)


def grayscale_from_labels(labels, *, levels=None, blur=1.0, noise=0.1, seed=0):
    """Grey values of a label image: a level per phase, Gaussian blur (point spread) and Gaussian noise.

    Returns float32; with the default levels (evenly spaced in [0.2, 0.8]) ``noise`` is in those units.
    """
    labels = np.asarray(labels)
    n = int(labels.max()) + 1
    lv = np.linspace(0.2, 0.8, n) if levels is None else np.asarray(levels, dtype=np.float64)
    img = lv[labels]
    if blur:
        img = ndi.gaussian_filter(img, blur)
    rng = np.random.default_rng(seed)
    return (img + noise * rng.standard_normal(labels.shape)).astype(np.float32)


def draw_strokes(labels, *, strokes_per_phase=3, length=25, margin=2, slices=None, seed=0):
    """Sparse labels imitating hand strokes: short straight lines inside each phase, value = phase + 1.

    Each stroke is drawn from a random interior point in a random direction and kept only where it stays at
    least ``margin`` pixels inside its phase (a careful annotator). For 3D labels strokes are drawn on the z
    ``slices`` given (default: the middle slice).

    Returns
    -------
    ndarray
        uint8, 0 = unlabelled.
    """
    from skimage.draw import line

    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    if labels.ndim == 3:
        out = np.zeros(labels.shape, dtype=np.uint8)
        for i, z in enumerate(slices if slices is not None else [labels.shape[0] // 2]):
            out[z] = draw_strokes(
                labels[z],
                strokes_per_phase=strokes_per_phase,
                length=length,
                margin=margin,
                seed=seed + 7919 * i,
            )
        return out
    out = np.zeros(labels.shape, dtype=np.uint8)
    h, w = labels.shape
    for p in np.unique(labels):
        inside = ndi.binary_erosion(labels == p, iterations=margin) if margin else labels == p
        pts = np.argwhere(inside)
        if len(pts) == 0:
            continue
        for _ in range(strokes_per_phase):
            y0, x0 = pts[rng.integers(len(pts))]
            ang = rng.uniform(0, np.pi)
            y1 = int(np.clip(y0 + length * np.sin(ang), 0, h - 1))
            x1 = int(np.clip(x0 + length * np.cos(ang), 0, w - 1))
            rr, cc = line(int(y0), int(x0), y1, x1)
            keep = inside[rr, cc]
            out[rr[keep], cc[keep]] = p + 1
    return out

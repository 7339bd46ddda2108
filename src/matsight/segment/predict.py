"""Segment a 2D image or a 3D volume with a trained model, in tiles, with optional clean-up.

Forest models compute features block by block: each block is read with a halo of
:func:`~matsight.segment.features.feature_radius` pixels and only its core is classified, so the result is
identical to classifying the whole volume at once while peak memory depends on the block size only.
2D models run slice by slice on volumes; 3D models on 3D blocks. U-Net models run slice by slice through
:func:`matsight.nn.tiling.sliding_window_inference` (overlapped tiles, Gaussian blending).
"""

import itertools
import logging
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi

from .._errors import InputError
from ..nn.device import resolve_device
from ..nn.tiling import sliding_window_inference
from ..progress import report
from .features import compute_features, feature_names, feature_radius, intensity_range, normalize
from .model import SegmentModel, class_to_phase_lut, load

log = logging.getLogger(__name__)

__all__ = ["predict", "predict_proba", "clean_labels", "iter_blocks", "unet_predict_proba"]

# forest blocks: the features of one block (core + halo) stay under this many bytes
FEATURE_BYTES = 512 * 2**20
MAX_TILE_2D = 1024
MIN_TILE = 16


def default_tile(features, ndim):
    """Block core edge for ``ndim``-D ``features`` (a FeatureConfig): as large as fits :data:`FEATURE_BYTES`
    with the halo.
    """
    n_feat = len(feature_names(features, ndim))
    edge = int((FEATURE_BYTES / (4 * n_feat)) ** (1.0 / ndim))
    core = edge - 2 * feature_radius(features)
    return int(min(MAX_TILE_2D, max(MIN_TILE, core)))


def iter_blocks(shape, core, halo):
    """Yield ``(core_slices, extended_slices, core_within_extended)`` covering ``shape`` without overlap.

    Parameters
    ----------
    shape : tuple of int
    core : int or tuple of int
        Core block size per axis (the last block of an axis may be smaller).
    halo : int
        Context added on each side, clipped at the array border.
    """
    core = (core,) * len(shape) if np.isscalar(core) else tuple(core)
    ranges = [range(0, s, max(1, int(c))) for s, c in zip(shape, core, strict=True)]
    for starts in itertools.product(*ranges):
        cs, es, inner = [], [], []
        for st, c, s in zip(starts, core, shape, strict=True):
            stop = min(st + int(c), s)
            lo, hi = max(0, st - halo), min(s, stop + halo)
            cs.append(slice(st, stop))
            es.append(slice(lo, hi))
            inner.append(slice(st - lo, stop - lo))
        yield tuple(cs), tuple(es), tuple(inner)


def _as_model(model):
    if isinstance(model, SegmentModel):
        return model
    if isinstance(model, str | Path):
        return load(model)
    raise InputError(f"expected a SegmentModel or a model folder, got {type(model).__name__}")


def _check_volume(model, volume):
    v = np.asarray(volume)
    if v.dtype.kind not in "biuf":
        raise InputError(f"cannot segment an array of type {v.dtype}; give a grayscale image or volume")
    if v.ndim == 3 and v.shape[0] == 1 and model.ndim == 2:
        v = v[0]
    if v.ndim not in (2, 3):
        raise InputError(f"expected a 2D image or 3D volume (ZYX), got shape {v.shape}")
    if model.ndim == 3 and v.ndim == 2:
        raise InputError(
            "this model uses 3D features and cannot segment a 2D image; "
            "train with --dims 2 for slice-wise models"
        )
    return v


def _forest_blocks(model, norm, tile, callback, sink):
    """Classify ``norm`` by blocks; ``sink(core_slices, proba_block)`` receives ``(*core, C)`` arrays."""
    feats = model.config.model.forest.features
    halo = feature_radius(feats)
    if model.ndim == 2 and norm.ndim == 3:
        core = (1, tile, tile)
        halo_axes = (0, halo, halo)
    else:
        core = (tile,) * norm.ndim
        halo_axes = (halo,) * norm.ndim
    blocks = list(iter_blocks(norm.shape, core, max(halo_axes)))
    for k, (cs, es, inner) in enumerate(blocks):
        if model.ndim == 2 and norm.ndim == 3:  # no halo along z: slice-wise features
            es = (cs[0], *es[1:])
            inner = (slice(0, 1), *inner[1:])
            f = compute_features(norm[es][0], feats)[None][inner]
        else:
            f = compute_features(norm[es], feats)[inner]
        p = model.estimator.predict_proba(f.reshape(-1, f.shape[-1]))
        sink(cs, p.reshape(*f.shape[:-1], -1))
        report(callback, step=k + 1, total=len(blocks), message="segmenting")


def unet_predict_proba(net, image, *, tile=512, device="cpu"):
    """Class probabilities ``(Y, X, C)`` of one normalised 2D slice, by overlapped tiles of ``tile`` px."""
    dev = torch.device(device)
    net = net.to(dev)

    def predictor(tiles):
        return torch.softmax(net(tiles), dim=1)

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(dev)
    with torch.no_grad():
        p = sliding_window_inference(x, tile, predictor, sw_batch_size=2, overlap=0.25)
    return np.moveaxis(p[0].cpu().numpy(), 0, -1)


def _unet_slices(model, norm, tile, callback, sink, device):
    device = resolve_device(device or "auto")  # not the training device: models move between machines
    slices = norm[None] if norm.ndim == 2 else norm
    for z, sl in enumerate(slices):
        p = unet_predict_proba(model.estimator, sl, tile=tile, device=device)
        cs = (slice(None), slice(None)) if norm.ndim == 2 else (slice(z, z + 1), slice(None), slice(None))
        sink(cs, p if norm.ndim == 2 else p[None])
        report(callback, step=z + 1, total=len(slices), message="segmenting")


def _check_tile(tile):
    if tile is None:
        return None
    ok = isinstance(tile, int | float | np.integer | np.floating) and not isinstance(tile, bool)
    if not ok or not float(tile).is_integer() or tile < 1:
        raise InputError(f"tile must be a whole number of pixels >= 1 (or None for automatic), got {tile!r}")
    return int(tile)


def _warn_range(model, v):
    """Warn when the image's grey values do not look like the training image's (other dtype or scaling)."""
    lo, hi = model.intensity
    ilo, ihi = intensity_range(v)
    width = (ihi - ilo) / (hi - lo)
    centre = (0.5 * (ilo + ihi) - lo) / (hi - lo)
    if not (0.2 <= width <= 5.0) or not (-0.5 <= centre <= 1.5):
        log.warning(
            "the grey values of this image (%.4g..%.4g) do not match the training image's (%.4g..%.4g) "
            "(another data type, scaling or scan?); the labels may be wrong: normalise with this image's own "
            "range (--normalize image, normalize_with='image') or convert it to the training scale",
            ilo,
            ihi,
            lo,
            hi,
        )


def _run(model, volume, *, tile, callback, normalize_with, want_proba, device=None):
    model = _as_model(model)
    tile = _check_tile(tile)
    if normalize_with not in (None, "train", "image"):
        raise InputError(f"normalize_with must be 'train' or 'image', got {normalize_with!r}")
    v = _check_volume(model, volume)
    mode = normalize_with or model.config.inference.normalize
    if mode == "train":
        lo, hi = model.intensity
        _warn_range(model, v)
    else:
        lo, hi = intensity_range(v)
    norm = normalize(v, lo, hi)
    lut = class_to_phase_lut(model)
    labels = np.empty(v.shape, dtype=lut.dtype)
    proba = np.empty((*v.shape, model.n_classes), dtype=np.float32) if want_proba else None

    def sink(cs, p):
        labels[cs] = lut[np.argmax(p, axis=-1)]
        if proba is not None:
            proba[cs] = p

    if model.method == "forest":
        t = int(tile) if tile else default_tile(model.config.model.forest.features, model.ndim)
        _forest_blocks(model, norm, t, callback, sink)
    else:
        _unet_slices(model, norm, int(tile) if tile else 512, callback, sink, device)
    return model, labels, proba


def predict_proba(model, volume, *, tile=None, callback=None, normalize_with=None, device=None):
    """Class probabilities ``(*volume.shape, n_classes)`` float32 (channels last; class ``i`` = phase
    ``model.phases[i]``); the options are :func:`predict`'s.
    """
    kw = dict(tile=tile, callback=callback, normalize_with=normalize_with, device=device)
    return _run(model, volume, want_proba=True, **kw)[2]


def predict(
    model,
    volume,
    *,
    tile=None,
    probabilities=False,
    clean=0,
    majority=0,
    callback=None,
    normalize_with=None,
    device=None,
):
    """Segment a 2D image or 3D volume (ZYX) with a trained model.

    Parameters
    ----------
    model : SegmentModel or path
        A trained model or its folder.
    volume : ndarray
        Grayscale 2D (YX) or 3D (ZYX) array. 2D models run slice-wise on volumes.
    tile : int, optional
        Block core size in pixels per axis (forest; default: the largest whose features fit in 512 MB, at
        most 1024) or U-Net tile size (default 512); a whole number >= 1. The result does not depend on it
        for forests.
    probabilities : bool
        Also return the class probabilities ``(*volume.shape, n_classes)``; channel ``i`` is phase
        ``model.phases[i]``.
    clean : int
        Remove connected regions (face-connected) smaller than ``clean`` pixels/voxels of every phase by
        giving them the label of the nearest remaining pixel (0: off).
    majority : int
        Radius of a majority (mode) filter applied before ``clean`` (0: off).
    callback : callable, optional
        A :data:`matsight.progress.Callback`, called after every block (forest) or slice (U-Net).
    normalize_with : {"train", "image"}, optional
        Override the model's intensity scaling: the training image's grey-value range (a warning when this
        image's range looks nothing like it) or this image's own. NaN / -inf pixels are read as the low end
        of the range, +inf as the high end.
    device : str, optional
        Torch device for U-Net models (default ``"auto"``); forests run on the CPU.

    Returns
    -------
    labels : ndarray
        Phase labels (stroke value − 1: 0, 1, 2, ...), uint8 for fewer than 256 phases.
    probabilities : ndarray
        Only when ``probabilities=True``.

    Examples
    --------
    >>> from matsight.segment import train
    >>> from matsight.segment.synthetic import draw_strokes, grayscale_from_labels, phase_image
    >>> truth = phase_image((64, 64), seed=0)
    >>> image = grayscale_from_labels(truth, seed=0)
    >>> model = train((image, draw_strokes(truth, seed=0)), None, config={"n_estimators": 10})
    >>> labels = predict(model, image, clean=4)
    >>> labels.dtype, labels.shape
    (dtype('uint8'), (64, 64))
    """
    kw = dict(tile=tile, callback=callback, normalize_with=normalize_with, device=device)
    model, labels, proba = _run(model, volume, want_proba=probabilities, **kw)
    if clean or majority:
        labels = clean_labels(labels, min_size=clean, majority=majority)
    return (labels, proba) if probabilities else labels


apply = predict  # the earlier name


def clean_labels(labels, *, min_size=0, majority=0):
    """Majority filter and/or small-region removal on a label image.

    Parameters
    ----------
    labels : ndarray
        2D or 3D integer labels.
    min_size : int
        Face-connected regions of any phase with fewer pixels than this are relabelled with the label of the
        nearest pixel outside all such regions (Euclidean distance).
    majority : int
        Radius ``r`` of a (2r+1)-wide cubic window: every pixel takes the most frequent label in its window
        (ties go to the lower label), applied first.

    Returns
    -------
    ndarray
        Same shape and dtype.
    """
    lab = np.asarray(labels)
    if lab.dtype.kind not in "iu":
        raise InputError(f"clean_labels needs integer labels, got {lab.dtype}")
    if min_size < 0 or majority < 0:
        raise InputError("clean and majority sizes must be >= 0")
    out = lab.copy()
    phases = np.unique(out)
    if majority and len(phases) > 1:
        best = np.zeros(out.shape, dtype=np.float32) - 1
        res = out.copy()
        for p in phases:
            frac = ndi.uniform_filter((out == p).astype(np.float32), size=2 * majority + 1, mode="nearest")
            better = frac > best + 1e-6
            res[better] = p
            best = np.maximum(best, frac)
        out = res
    if min_size > 1:
        small = np.zeros(out.shape, dtype=bool)
        for p in np.unique(out):
            comp, n = ndi.label(out == p)
            if n == 0:
                continue
            sizes = np.bincount(comp.ravel())
            sizes[0] = np.iinfo(sizes.dtype).max
            small |= sizes[comp] < min_size
        if small.any() and not small.all():
            idx = ndi.distance_transform_edt(small, return_distances=False, return_indices=True)
            out = out[tuple(idx)]
    return out

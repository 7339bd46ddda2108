"""Segmentation metrics between a reference label image and a predicted one, per class and averaged.

Every function takes two integer label images of equal shape (2D YX or 3D ZYX) and returns a dict: one entry
per class label (``int``) and ``"mean"``, the unweighted mean over the classes (NaN entries skipped). The
classes are those present in either image unless ``labels=`` is given; a class absent from both images has
an undefined score (NaN). Pixels whose *reference* label equals ``ignore_label`` are left out everywhere.

Definitions per class c (TP, FP, FN, TN counted one-vs-rest):

- Dice = 2 TP / (2 TP + FP + FN), IoU (Jaccard) = TP / (TP + FP + FN)
- precision = TP / (TP + FP) (NaN when c is never predicted), recall = TP / (TP + FN) (NaN when c is absent
  from the reference) — as :func:`sklearn.metrics.precision_score` with ``zero_division=nan``
- pixel accuracy = (TP + TN) / N per class; ``"overall"`` = fraction of all pixels labelled correctly
- Hausdorff distance = the largest distance from a pixel of class c in one image to the nearest pixel of
  class c in the other (both directions), in units of ``spacing`` (pixels by default); ``percentile=95``
  gives HD95.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from matsight._errors import InputError

__all__ = [
    "confusion_matrix",
    "dice",
    "hausdorff_distance",
    "iou",
    "pixel_accuracy",
    "precision",
    "recall",
    "segmentation_summary",
]


def _validate(reference, prediction, ignore_label):
    from matsight.io import validate_labels

    t = validate_labels(reference, name="reference labels", allow_negative=True)
    p = validate_labels(prediction, name="predicted labels", allow_negative=True)
    if t.shape != p.shape:
        raise InputError(
            f"reference labels {t.shape} and predicted labels {p.shape} differ in shape; "
            "compare label images of the same region and grid"
        )
    valid = None if ignore_label is None else (t != ignore_label)
    return t, p, valid


def _classes(t, p, valid, labels, ignore_label):
    if labels is not None:
        cls = np.asarray(sorted({int(v) for v in np.atleast_1d(labels)}), dtype=np.int64)
        if cls.size == 0:
            raise InputError("labels= is empty; give the class labels to score or leave it out")
        return cls
    tv = t if valid is None else t[valid]
    pv = p if valid is None else p[valid]
    cls = np.union1d(np.unique(tv), np.unique(pv)).astype(np.int64)
    if ignore_label is not None:
        cls = cls[cls != ignore_label]
    return cls


def confusion_matrix(reference, prediction, *, labels=None, ignore_label=None):
    """Confusion matrix ``C[i, j]`` = pixels of reference class ``labels[i]`` predicted as ``labels[j]``.

    Returns ``(C, labels)``. Pixels whose labels are not in ``labels`` are not counted.
    """
    t, p, valid = _validate(reference, prediction, ignore_label)
    cls = _classes(t, p, valid, labels, ignore_label)
    return _confusion(t, p, valid, cls).cm, cls


def _confusion(t, p, valid, cls):
    tv = (t if valid is None else t[valid]).ravel().astype(np.int64)
    pv = (p if valid is None else p[valid]).ravel().astype(np.int64)
    k = cls.size
    ti = np.searchsorted(cls, tv)
    pi = np.searchsorted(cls, pv)
    ti_ok = (ti < k) & (cls[np.minimum(ti, k - 1)] == tv)
    pi_ok = (pi < k) & (cls[np.minimum(pi, k - 1)] == pv)
    ok = ti_ok & pi_ok
    cm = np.bincount(ti[ok] * k + pi[ok], minlength=k * k).reshape(k, k)
    # pixels whose true (or predicted) label is outside ``cls`` still count as FN (or FP) for listed classes
    extra_fn = np.bincount(ti[ti_ok & ~pi_ok], minlength=k)
    extra_fp = np.bincount(pi[pi_ok & ~ti_ok], minlength=k)
    return _Counts(cm, extra_fn, extra_fp, tv.size)


class _Counts:
    def __init__(self, cm, extra_fn, extra_fp, n):
        self.cm = cm
        self.tp = np.diag(cm).astype(np.float64)
        self.fn = cm.sum(axis=1) - self.tp + extra_fn
        self.fp = cm.sum(axis=0) - self.tp + extra_fp
        self.n = n
        self.tn = n - self.tp - self.fn - self.fp


def _ratio(num, den):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _result(cls, values):
    out = {int(c): float(v) for c, v in zip(cls, values, strict=True)}
    finite = [v for v in out.values() if not math.isnan(v)]
    out["mean"] = float(np.mean(finite)) if finite else math.nan
    return out


def _scores(reference, prediction, labels, ignore_label):
    t, p, valid = _validate(reference, prediction, ignore_label)
    cls = _classes(t, p, valid, labels, ignore_label)
    return cls, _confusion(t, p, valid, cls)


def dice(reference, prediction, *, labels=None, ignore_label=None):
    """Dice coefficient (F1) per class and ``"mean"``; see the module docstring."""
    cls, c = _scores(reference, prediction, labels, ignore_label)
    return _result(cls, _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn))


def iou(reference, prediction, *, labels=None, ignore_label=None):
    """Intersection over union (Jaccard index) per class and ``"mean"`` (mIoU)."""
    cls, c = _scores(reference, prediction, labels, ignore_label)
    return _result(cls, _ratio(c.tp, c.tp + c.fp + c.fn))


def precision(reference, prediction, *, labels=None, ignore_label=None):
    """Precision TP / (TP + FP) per class and ``"mean"`` (macro average)."""
    cls, c = _scores(reference, prediction, labels, ignore_label)
    return _result(cls, _ratio(c.tp, c.tp + c.fp))


def recall(reference, prediction, *, labels=None, ignore_label=None):
    """Recall (sensitivity) TP / (TP + FN) per class and ``"mean"`` (macro average)."""
    cls, c = _scores(reference, prediction, labels, ignore_label)
    return _result(cls, _ratio(c.tp, c.tp + c.fn))


def pixel_accuracy(reference, prediction, *, labels=None, ignore_label=None):
    """Pixel accuracy: one-vs-rest (TP + TN) / N per class, their ``"mean"``, and ``"overall"``.

    ``"overall"`` is the fraction of (non-ignored) pixels whose predicted label equals the reference label
    (:func:`sklearn.metrics.accuracy_score`).
    """
    t, p, valid = _validate(reference, prediction, ignore_label)
    cls = _classes(t, p, valid, labels, ignore_label)
    c = _confusion(t, p, valid, cls)
    out = _result(cls, _ratio(c.tp + c.tn, np.full(cls.size, float(c.n))))
    tv = t if valid is None else t[valid]
    pv = p if valid is None else p[valid]
    out["overall"] = float(np.mean(tv == pv)) if tv.size else math.nan
    return out


def _directed(a, b, sampling):
    """Distances from every pixel of ``a`` to the nearest pixel of ``b`` (exact Euclidean, via the EDT)."""
    dist = ndimage.distance_transform_edt(~b, sampling=sampling)
    return dist[a]


def hausdorff_distance(
    reference, prediction, *, labels=None, ignore_label=None, spacing=None, percentile=None
):
    """Hausdorff distance per class and ``"mean"``.

    Computed exactly with Euclidean distance transforms (the same value as
    :func:`skimage.metrics.hausdorff_distance` on the class masks, in O(N)). A class present in only one image
    has an infinite distance; a class absent from both, NaN.

    Parameters
    ----------
    spacing : float or sequence of float, optional
        Pixel/voxel size per axis; distances are in its units.
    percentile : float, optional
        Instead of the maximum, this percentile of all pixel-to-set distances in both directions (e.g. 95 for
        the HD95 that is robust to a few outliers).
    """
    t, p, valid = _validate(reference, prediction, ignore_label)
    cls = _classes(t, p, valid, labels, ignore_label)
    if spacing is not None:
        sp = np.atleast_1d(np.asarray(spacing, dtype=float))
        if sp.size == 1:
            sp = np.repeat(sp, t.ndim)
        if sp.size != t.ndim or np.any(sp <= 0):
            raise InputError(f"spacing needs {t.ndim} positive values (one per axis), got {tuple(sp)}")
        spacing = tuple(sp)
    if percentile is not None and not 0 < float(percentile) <= 100:
        raise InputError(f"percentile must be in (0, 100], got {percentile}")
    values = []
    for c in cls:
        a = t == c
        b = p == c
        if valid is not None:
            a &= valid
            b &= valid
        na, nb = bool(a.any()), bool(b.any())
        if not na and not nb:
            values.append(math.nan)
            continue
        if not (na and nb):
            values.append(math.inf)
            continue
        d = np.concatenate([_directed(a, b, spacing), _directed(b, a, spacing)])
        values.append(float(d.max() if percentile is None else np.percentile(d, float(percentile))))
    out = {int(c): v for c, v in zip(cls, values, strict=True)}
    finite = [v for v in values if not math.isnan(v)]
    out["mean"] = float(np.mean(finite)) if finite else math.nan
    return out


def segmentation_summary(
    reference, prediction, *, labels=None, ignore_label=None, spacing=None, hausdorff=True
):
    """Every score of this module at once (one confusion matrix): ``{"dice": {...}, "iou": {...}, ...}``.

    Keys ``dice``, ``iou``, ``precision``, ``recall``, ``pixel_accuracy`` and (unless ``hausdorff=False``, the
    slowest part) ``hausdorff``; each value is the per-class dict with ``"mean"`` described above.
    """
    t, p, valid = _validate(reference, prediction, ignore_label)
    cls = _classes(t, p, valid, labels, ignore_label)
    c = _confusion(t, p, valid, cls)
    acc = _result(cls, _ratio(c.tp + c.tn, np.full(cls.size, float(c.n))))
    tv = t if valid is None else t[valid]
    pv = p if valid is None else p[valid]
    acc["overall"] = float(np.mean(tv == pv)) if tv.size else math.nan
    out = {
        "dice": _result(cls, _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)),
        "iou": _result(cls, _ratio(c.tp, c.tp + c.fp + c.fn)),
        "precision": _result(cls, _ratio(c.tp, c.tp + c.fp)),
        "recall": _result(cls, _ratio(c.tp, c.tp + c.fn)),
        "pixel_accuracy": acc,
    }
    if hausdorff:
        out["hausdorff"] = hausdorff_distance(
            t, p, labels=cls.tolist(), ignore_label=ignore_label, spacing=spacing
        )
    return out

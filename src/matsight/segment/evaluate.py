"""Score a segmentation against reference labels: pixel accuracy and Dice, IoU, precision, recall per phase.

The definitions are :mod:`matsight.metrics.segmentation`'s; :func:`label_scores` takes arrays of any shape
(held-out stroke pixels come as 1D arrays) and :func:`evaluate` whole label images, optionally inside a mask.
"""

import numpy as np

from .._errors import InputError
from ..metrics import segmentation as ms

__all__ = ["evaluate", "label_scores"]


def label_scores(truth, pred, phases):
    """Pixel accuracy and per-phase Dice, IoU, precision, recall of ``pred`` against ``truth``.

    A thin layer over :mod:`matsight.metrics.segmentation` (same definitions) that takes any-shaped arrays
    (held-out pixels come as 1D arrays) and returns one dict per phase with its reference pixel count ``n``.
    ``mean_dice`` averages the phases present in ``truth``; phases absent from both are NaN.
    """
    t = np.asarray(truth).reshape(1, -1)
    p = np.asarray(pred).reshape(1, -1)
    phases = [int(c) for c in phases]
    if t.size == 0:
        nan = float("nan")
        per = {c: {"dice": nan, "iou": nan, "precision": nan, "recall": nan, "n": 0} for c in phases}
        return {"pixel_accuracy": nan, "mean_dice": nan, "per_phase": per}
    kw = {"labels": phases}
    d, j = ms.dice(t, p, **kw), ms.iou(t, p, **kw)
    pr, rc = ms.precision(t, p, **kw), ms.recall(t, p, **kw)
    counts = {c: int(np.count_nonzero(t == c)) for c in phases}
    per = {
        c: {"dice": d[c], "iou": j[c], "precision": pr[c], "recall": rc[c], "n": counts[c]} for c in phases
    }
    dices = [per[c]["dice"] for c in phases if counts[c] > 0]
    return {
        "pixel_accuracy": ms.pixel_accuracy(t, p, **kw)["overall"],
        "mean_dice": float(np.mean(dices)) if dices else float("nan"),
        "per_phase": per,
    }


def evaluate(prediction, reference, *, phases=None, mask=None):
    """Pixel accuracy and per-phase Dice, IoU, precision and recall of ``prediction`` against ``reference``.

    Parameters
    ----------
    prediction, reference : ndarray
        Integer phase labels of the same shape (2D or 3D; 0, 1, 2, ... as :func:`~matsight.segment.predict`
        writes them).
    phases : sequence of int, optional
        Phases to score (default: every label present in either image).
    mask : ndarray of bool, optional
        Score only these pixels (a field of view, the unlabelled part of an image, ...).

    Returns
    -------
    dict
        ``pixel_accuracy``, ``mean_dice`` (over the phases present in ``reference``) and ``per_phase``:
        ``{phase: {dice, iou, precision, recall, n}}`` with ``n`` the reference pixel count.

    Examples
    --------
    >>> s = evaluate(np.array([[0, 1], [1, 1]]), np.array([[0, 1], [0, 1]]))
    >>> s["pixel_accuracy"], s["per_phase"][1]["iou"]
    (0.75, 0.6666666666666666)
    """
    pred, ref = np.asarray(prediction), np.asarray(reference)
    if pred.shape != ref.shape:
        raise InputError(
            f"the prediction has shape {pred.shape} but the reference {ref.shape}; they must match"
        )
    if pred.dtype.kind not in "biu" or ref.dtype.kind not in "biu":
        raise InputError(f"labels must be integers, got {pred.dtype} and {ref.dtype}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != ref.shape:
            raise InputError(f"the mask has shape {mask.shape} but the labels {ref.shape}; they must match")
        pred, ref = pred[mask], ref[mask]
    if phases is None:
        phases = np.union1d(np.unique(pred), np.unique(ref)).tolist()
    return label_scores(ref, pred, phases)

"""Sparse labels ("strokes"): validation against their image, and the held-out split used to score a model.

Labels: 0 = unlabelled, value ``k >= 1`` marks phase ``k - 1``. The held-out split takes whole strokes
(connected components of one label value) when every phase has at least two strokes, otherwise 16-pixel
spatial blocks of the strokes (neighbouring pixels of one stroke are nearly copies of each other, so a random
pixel split would grade the model on its own training data).
"""

import numpy as np
from scipy import ndimage as ndi

from .._errors import InputError
from ..io import validate_labels

__all__ = ["check_labels", "split_holdout"]

MAX_LABEL_VALUES = 64
BLOCK = 16


def check_labels(image, labels, *, slice_index=None, name="labels"):
    """Validate an image / sparse-label pair and return them as arrays of equal shape.

    Parameters
    ----------
    image : array_like
        2D (YX) or 3D (ZYX) grayscale.
    labels : array_like
        Integer labels, 0 = unlabelled, ``k >= 1`` marks phase ``k - 1``. Same shape as ``image``, or one 2D
        slice of a 3D image together with ``slice_index``.
    slice_index : int, optional
        Which z slice a 2D label image marks.

    Returns
    -------
    (ndarray, ndarray, list of int)
        Image, labels (same shape) and the label values present (the classes).
    """
    img = np.asarray(image)
    if img.dtype.kind not in "biuf":
        raise InputError(f"the image has data type {img.dtype}; give a grayscale image (integers or floats)")
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim not in (2, 3):
        raise InputError(f"the image must be 2D (Y, X) or 3D (Z, Y, X), got shape {img.shape}")
    lab = validate_labels(labels, name=name, max_labels=MAX_LABEL_VALUES)
    if lab.ndim == 3 and lab.shape[0] == 1 and img.ndim == 2:
        lab = lab[0]
    if slice_index is not None:
        if img.ndim != 3 or lab.ndim != 2:
            raise InputError(
                "--slice is for a 2D label image drawn on one slice of a 3D volume; drop it here"
            )
        z = int(slice_index)
        if not 0 <= z < img.shape[0]:
            raise InputError(
                f"{name} are outside the image: slice {z} asked for, "
                f"but the volume has slices 0..{img.shape[0] - 1}"
            )
        if lab.shape != img.shape[1:]:
            raise InputError(
                f"{name} have shape {lab.shape} but the volume's slices are {img.shape[1:]}; "
                "draw them on one slice"
            )
        full = np.zeros(img.shape, dtype=lab.dtype)
        full[z] = lab
        lab = full
    if lab.shape != img.shape:
        if lab.ndim == 2 and img.ndim == 3 and lab.shape == img.shape[1:]:
            raise InputError(
                f"{name} are one 2D slice {lab.shape} but the image is a volume of {img.shape[0]} slices; "
                "say which slice they mark (--slice Z)"
            )
        if lab.ndim == img.ndim and any(a > b for a, b in zip(lab.shape, img.shape, strict=True)):
            raise InputError(
                f"{name} extend outside the image: {name} shape {lab.shape}, image shape {img.shape}; "
                "draw the labels on the image itself (same size)"
            )
        raise InputError(
            f"{name} have shape {lab.shape} but the image has shape {img.shape}; "
            "they must match pixel for pixel"
        )
    counts = np.bincount(lab.ravel())
    classes = [int(v) for v in np.flatnonzero(counts) if v > 0]
    if not classes:
        raise InputError(
            f"{name} contain no strokes (every pixel is 0 = unlabelled); "
            "mark each phase with values 1, 2, ..."
        )
    if len(classes) == 1:
        raise InputError(
            f"{name} mark only one phase (value {classes[0]}); draw strokes for at least two phases "
            "(values 1, 2, ... = phases 0, 1, ...)"
        )
    return img, lab, classes


def split_holdout(labels, fraction, *, seed=0):
    """Split labelled pixels into training and held-out masks by strokes (or 16-px blocks of strokes).

    Returns
    -------
    (ndarray of bool, ndarray of bool, str)
        Training mask, held-out mask, and the unit used (``"strokes"``, ``"blocks"`` or ``"none"``).
    """
    lab = np.asarray(labels)
    labelled = lab > 0
    if fraction <= 0:
        return labelled, np.zeros_like(labelled), "none"
    rng = np.random.default_rng(seed)
    classes = [int(c) for c in np.unique(lab[labelled])]
    comps = {}
    for c in classes:
        comp, n = ndi.label(lab == c, structure=np.ones((3,) * lab.ndim))
        comps[c] = (comp, n)
    unit = "strokes" if all(n >= 2 for _, n in comps.values()) else "blocks"
    test = np.zeros(lab.shape, dtype=bool)
    for c in classes:
        if unit == "strokes":
            ids = comps[c][0]
        else:
            # unit id = index of the 16-px block, restricted to this class's pixels
            grid = np.indices(lab.shape, sparse=True)
            ids = np.zeros(lab.shape, dtype=np.int64)
            mult = 1
            for g, s in zip(reversed(grid), reversed(lab.shape), strict=True):
                ids = ids + (g // BLOCK) * mult
                mult *= -(-s // BLOCK)
            ids = np.where(lab == c, ids + 1, 0)
        uid, size = np.unique(ids[ids > 0], return_counts=True)
        if len(uid) < 2:
            continue  # cannot hold out without losing the phase from training
        order = rng.permutation(len(uid))
        target = fraction * size.sum()
        chosen, total = [], 0
        for k in order[:-1]:  # at least one unit stays for training
            if total >= target:
                break
            chosen.append(uid[k])
            total += size[k]
        test |= np.isin(ids, chosen) & (lab == c)
    return labelled & ~test, test, unit

"""Input checks and voxel-face helpers shared by the microstructure metrics."""

from __future__ import annotations

import numbers

import numpy as np

from ..._errors import InputError


def _labels(labels, name="labels"):
    from ...io.volumes import validate_labels

    return validate_labels(labels, name=name)


def _spacing(spacing, ndim):
    if spacing is None:
        return (1.0,) * ndim
    try:
        sp = np.broadcast_to(np.asarray(spacing, dtype=float), (ndim,))
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"spacing must be one positive number or one per axis ({ndim}), got {spacing!r}"
        ) from exc
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise InputError(f"spacing must be positive and finite, got {spacing!r}")
    return tuple(float(s) for s in sp)


def _axis(axis, ndim):
    if not isinstance(axis, numbers.Integral) or not -ndim <= axis < ndim:
        raise InputError(f"axis must be an integer in [0, {ndim - 1}] for a {ndim}D image, got {axis!r}")
    return int(axis) % ndim


def _phases(arr):
    return [int(p) for p in np.flatnonzero(np.bincount(arr.ravel()))]


def _face_area(sp, axis):
    """Area of a voxel face normal to ``axis``."""
    return float(np.prod([s for k, s in enumerate(sp) if k != axis]))


def _neighbour_pairs(arr):
    """``(axis, a, b)`` for the two sides of every internal face normal to each axis."""
    for ax in range(arr.ndim):
        lo = [slice(None)] * arr.ndim
        hi = [slice(None)] * arr.ndim
        lo[ax] = slice(None, -1)
        hi[ax] = slice(1, None)
        yield ax, arr[tuple(lo)], arr[tuple(hi)]

"""How much of each phase: volume fractions."""

from __future__ import annotations

import numpy as np

from ._common import _labels

__all__ = ["volume_fraction"]


def volume_fraction(labels, *, phases=None) -> dict[int, float]:
    """Fraction of voxels in each phase.

    Parameters
    ----------
    labels : array_like of int, 2D or 3D
    phases : sequence of int, optional
        Phases to report (absent ones give 0.0). Default: every label present.

    Returns
    -------
    dict of int to float
        ``{phase: fraction}``; the fractions of all present phases sum to 1.

    Examples
    --------
    >>> volume_fraction(np.array([[0, 0, 1, 2]]))
    {0: 0.5, 1: 0.25, 2: 0.25}
    """
    arr = _labels(labels)
    counts = np.bincount(arr.ravel())
    if phases is None:
        phases = np.flatnonzero(counts)
    return {int(p): float(counts[p] / arr.size) if p < counts.size else 0.0 for p in phases}

"""Where phases meet, counted on voxel faces and edges inside the image.

Specific surface area, interfacial area per phase pair, triple phase boundary density.
"""

from __future__ import annotations

import numpy as np

from ..._errors import InputError
from ._common import _face_area, _labels, _neighbour_pairs, _phases, _spacing

__all__ = ["interfacial_area", "specific_surface_area", "triple_phase_boundary"]


def specific_surface_area(labels, *, phase=None, spacing=None):
    """Specific surface area by face counting.

    ``SSA(p) = (area of the voxel faces between p and any other phase) / (total volume)``: a face is counted
    once for each of its two phases; faces on the outer boundary of the image do not count. With unit
    voxels this is *faces per voxel* (1/voxel); with ``spacing`` it is area / volume in 1/length units
    (face areas are the products of the two other spacings). This is ``taufactor.metrics.
    specific_surface_area(method="face_counting")`` exactly. A flat interface across an N-voxel-thick
    cube gives ``1/N`` for both phases.

    Parameters
    ----------
    labels : array_like of int, 2D or 3D
    phase : int, optional
        Return only this phase's value (a float).
    spacing : float or sequence of float, optional
        Voxel size per axis.

    Returns
    -------
    dict of int to float, or float
        ``{phase: SSA}`` for every present phase, or one value if ``phase`` is given.
    """
    arr = _labels(labels)
    sp = _spacing(spacing, arr.ndim)
    n_lab = int(arr.max()) + 1
    area = np.zeros(n_lab, dtype=np.float64)
    for ax, a, b in _neighbour_pairs(arr):
        diff = a != b
        w = _face_area(sp, ax)
        area += w * np.bincount(a[diff], minlength=n_lab)
        area += w * np.bincount(b[diff], minlength=n_lab)
    volume = arr.size * float(np.prod(sp))
    if phase is not None:
        return float(area[phase] / volume) if 0 <= phase < n_lab else 0.0
    return {p: float(area[p] / volume) for p in _phases(arr)}


def _total_internal_area(shape, sp):
    total = 0.0
    for ax in range(len(shape)):
        n_faces = (shape[ax] - 1) * int(np.prod([s for k, s in enumerate(shape) if k != ax]))
        total += n_faces * _face_area(sp, ax)
    return total


def interfacial_area(labels, *, spacing=None, normalize="volume") -> dict[tuple[int, int], float]:
    """Area of the interface between every pair of phases that touch, by face counting.

    Parameters
    ----------
    labels : array_like of int, 2D or 3D
    spacing : float or sequence of float, optional
        Voxel size per axis.
    normalize : {"volume", "faces", "none"}, default "volume"
        ``"volume"``: area per total volume (1/voxel; ``taufactor.metrics.interfacial_areas``);
        ``"faces"``: fraction of all internal faces (the SuperRes paper's "interphase surface area");
        ``"none"``: the area itself (faces, or area units with ``spacing``).

    Returns
    -------
    dict of (int, int) to float
        ``{(a, b): value}`` with ``a < b`` for every pair sharing at least one face.
    """
    arr = _labels(labels)
    sp = _spacing(spacing, arr.ndim)
    if normalize not in ("volume", "faces", "none", None):
        raise InputError(f"normalize must be 'volume', 'faces' or 'none', got {normalize!r}")
    n_lab = int(arr.max()) + 1
    codes, weights = [], []
    for ax, a, b in _neighbour_pairs(arr):
        diff = a != b
        lo = np.minimum(a[diff], b[diff]).astype(np.int64)
        hi = np.maximum(a[diff], b[diff]).astype(np.int64)
        codes.append(lo * n_lab + hi)
        weights.append(np.full(lo.size, _face_area(sp, ax)))
    codes = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    weights = np.concatenate(weights) if weights else np.zeros(0)
    uniq, inv = np.unique(codes, return_inverse=True)
    area = np.bincount(inv.ravel(), weights=weights, minlength=uniq.size) if uniq.size else np.zeros(0)
    if normalize == "volume":
        area = area / (arr.size * float(np.prod(sp)))
    elif normalize == "faces":
        area = area / _total_internal_area(arr.shape, sp)
    return {(int(c // n_lab), int(c % n_lab)): float(v) for c, v in zip(uniq, area, strict=True)}


def triple_phase_boundary(labels, *, phases=None, normalize="edges", spacing=None) -> float:
    """Triple phase boundary density, TauFactor's definition.

    A TPB is a voxel *edge* (in 2D: a voxel corner) inside the image whose four surrounding voxels hold at
    least three different phases (with ``phases=(a, b, c)``: hold all of ``a``, ``b`` and ``c``). Edges on
    the outer boundary of the image are not counted. The density is the number of such edges divided by the
    number of internal edges, ``X(Y-1)(Z-1) + Y(X-1)(Z-1) + Z(X-1)(Y-1)`` in 3D, ``(Y-1)(X-1)`` in 2D:
    ``taufactor.metrics.triple_phase_boundary`` for three-phase images. Unlike TauFactor, images with
    fewer than three phases give 0 (handy for small sub-volumes) and more than three phases are allowed.

    Parameters
    ----------
    labels : array_like of int, 2D or 3D
    phases : (int, int, int), optional
        Count only edges where these three phases meet. Default: any three phases.
    normalize : {"edges", "volume"}, default "edges"
        ``"edges"``: fraction of internal edges (TauFactor); ``"volume"``: TPB length per volume
        (1/voxel² or 1/length² with ``spacing``; 2D: TPB points per area).
    spacing : float or sequence of float, optional
        Voxel size per axis (only used by ``normalize="volume"``).

    Returns
    -------
    float

    Examples
    --------
    >>> img = np.zeros((3, 3), dtype=np.uint8); img[0] = 1; img[:, 0] = 2
    >>> triple_phase_boundary(img)  # one of the four corners touches all three phases
    0.25
    """
    arr = _labels(labels)
    sp = _spacing(spacing, arr.ndim)
    if normalize not in ("edges", "volume"):
        raise InputError(f"normalize must be 'edges' or 'volume', got {normalize!r}")
    if phases is not None:
        phases = tuple(int(p) for p in phases)
        if len(set(phases)) != 3:
            raise InputError(f"phases must be three different labels, e.g. (0, 1, 2), got {phases!r}")
    if any(s < 2 for s in arr.shape):
        return 0.0
    # an edge along axis d is surrounded by a 2x2 block in the plane of the two other axes
    directions = range(arr.ndim) if arr.ndim == 3 else [None]
    count, length, total = 0, 0.0, 0
    for d in directions:
        t = np.moveaxis(arr, d, 0) if d is not None else arr[None]
        v00, v01 = t[:, :-1, :-1], t[:, :-1, 1:]
        v10, v11 = t[:, 1:, :-1], t[:, 1:, 1:]
        if phases is None:
            n = (v01 != v00).astype(np.uint8)
            n += (v10 != v00) & (v10 != v01)
            n += (v11 != v00) & (v11 != v01) & (v11 != v10)
            hit = n >= 2  # at least three distinct values among the four
        else:
            hit = None
            for p in phases:
                has = (v00 == p) | (v01 == p) | (v10 == p) | (v11 == p)
                hit = has if hit is None else hit & has
        c = int(np.count_nonzero(hit))
        count += c
        total += hit.size
        length += c * (sp[d] if d is not None else 1.0)
    if normalize == "edges":
        return count / total if total else 0.0
    return length / (arr.size * float(np.prod(sp)))

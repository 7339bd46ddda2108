"""The SuperRes paper's simulation of a low-res scan from a high-res 3D label volume.

Paper (case 1 and Supplementary Fig. 12): merge the phases the low-res technique cannot tell apart (XCT does
not see the binder: pore and binder become one phase), blur each remaining phase with a Gaussian (odd kernel
``k = ceil(sf)`` or ``ceil(sf) - 1``, ``σ = 0.3·((k - 1)·0.5 - 1) + 0.8``, PyTorch's default for ``k``),
downsample by ``sf`` and threshold back to labels (0.5 for two phases; the largest blurred share for more).
Under-*sampled* data (SEM with a coarse raster step, paper case 3) is simulated without blur by taking every
``sf``-th voxel.

The interpolation is the one the voxel-wise training loss uses (trilinear, ``align_corners=False``; see
:func:`matsight.fuse.degrade.downsample`), so degrading the ground truth and degrading a perfect
super-resolution give the same low-res volume. Plain numpy/scipy: no torch needed.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
from scipy import ndimage

from .._errors import InputError

__all__ = ["blur_kernel", "merge_phases", "degrade", "lr_shape"]


def blur_kernel(scale):
    """Kernel size ``k`` (odd) and standard deviation ``σ`` of the paper's blur for scale factor ``scale``.

    ``k = ceil(sf)`` if odd, else ``ceil(sf) - 1``; ``σ = 0.3·((k - 1)·0.5 - 1) + 0.8``. ``k == 1`` (sf ≤ 2)
    means no blur.

    Examples
    --------
    >>> blur_kernel(4)
    (3, 0.8)
    >>> blur_kernel(8)
    (7, 1.4)
    """
    k = math.ceil(float(scale) - 1e-9)
    k = k if k % 2 == 1 else k - 1
    k = max(k, 1)
    return k, round(0.3 * ((k - 1) * 0.5 - 1) + 0.8, 12)


def lr_shape(shape, scale):
    """Low-res shape of a volume of ``shape`` at scale factor ``scale`` (rounded per axis)."""
    return tuple(max(1, round(n / float(scale))) for n in shape)


def merge_phases(labels, merge=None):
    """Merge groups of phases into one and renumber consecutively.

    Parameters
    ----------
    labels : ndarray of int
        Label volume, phases ``0..n-1``.
    merge : sequence of sequence of int, optional
        Groups of phases that become one phase, e.g. ``[(0, 2)]`` (pore and binder). Every other phase
        stays on its own. New labels follow the smallest member of each group: the group holding 0 stays 0.

    Returns
    -------
    merged : ndarray of uint8 (a wider unsigned type beyond 256 phases)
        The renumbered labels.
    groups : list of list of int
        ``groups[i]``: the original phases now labelled ``i``.
    """
    labels = np.asarray(labels)
    n = int(labels.max()) + 1 if labels.size else 0
    merge = list(merge or [])
    if any(isinstance(g, numbers.Integral) or isinstance(g, str) for g in merge):
        raise InputError(
            f"merge must be a list of phase groups, e.g. [(0, 2)] to merge phases 0 and 2, got {merge!r}"
        )
    groups = [sorted({int(p) for p in g}) for g in merge]
    flat = [p for g in groups for p in g]
    if len(flat) != len(set(flat)):
        raise InputError(f"a phase appears in two merge groups ({merge}); give each phase once")
    bad = [p for p in flat if not 0 <= p < n]
    if bad:
        raise InputError(f"merge names phase(s) {bad} but the volume has phases 0..{n - 1}")
    rest = [[p] for p in range(n) if p not in flat]
    groups = sorted([g for g in groups if g] + rest, key=min)
    lut = np.zeros(max(n, 1), dtype=np.min_scalar_type(max(len(groups) - 1, 0)))
    for i, g in enumerate(groups):
        lut[g] = i
    return lut[labels], groups


def _gaussian_1d(scale):
    k, sigma = blur_kernel(scale)
    t = np.arange(k) - k // 2
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return w / w.sum()


def _linear_axis(x, axis, n_out):
    # torch's linear interpolation with align_corners=False: output i samples input (i + 0.5)·n/n_out - 0.5
    n_in = x.shape[axis]
    src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    w = (src - i0).astype(x.dtype)
    shape = [1] * x.ndim
    shape[axis] = n_out
    w = w.reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - w) + np.take(x, i1, axis=axis) * w


def degrade(labels, scale, *, merge=None, mode="resolve"):
    """Simulate a low-res label volume from a high-res one, as the SuperRes paper did.

    Parameters
    ----------
    labels : ndarray of int
        High-res 3D label volume (ZYX), phases ``0..n-1``.
    scale : float
        Scale factor ``sf`` (the low-res voxel is ``sf`` high-res voxels wide); any value > 1, e.g. 4 or
        64/24.
    merge : sequence of sequence of int, optional
        Phase groups the low-res technique cannot tell apart, e.g. ``[(0, 2)]`` for pore + binder in XCT.
    mode : {"resolve", "sample"}
        ``"resolve"`` (under-resolved, XCT-like): per-phase Gaussian blur with the paper's kernel rule,
        trilinear downsample, each voxel takes the phase with the largest share (the paper's 0.5 threshold for
        two phases). ``"sample"`` (under-sampled, SEM-like): every ``sf``-th voxel, no blur.

    Returns
    -------
    lr : ndarray of uint8 (a wider unsigned type beyond 256 phases)
        Low-res labels, shape ``round(n / sf)`` per axis.
    groups : list of list of int
        ``groups[i]``: the high-res phases low-res phase ``i`` stands for.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise InputError(f"degrade needs a 3D label volume (ZYX), got shape {labels.shape}")
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"degrade needs integer labels, got {labels.dtype}; segment the volume first")
    if labels.size and labels.min() < 0:
        raise InputError(
            f"degrade needs labels 0, 1, 2, ... but the volume has {labels.min()}; relabel it first"
        )
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"scale must be a number > 1, e.g. 4 or 64/24, got {scale!r}") from None
    if not math.isfinite(scale) or scale <= 1:
        raise InputError(f"scale must be > 1 (the low-res voxel is sf high-res voxels wide), got {scale:g}")
    if mode not in ("resolve", "sample"):
        raise InputError(f"mode must be 'resolve' or 'sample', got {mode!r}")
    out_shape = lr_shape(labels.shape, scale)
    if min(labels.shape) < scale:
        raise InputError(f"a {labels.shape} volume is smaller than one low-res voxel at scale {scale:g}")
    merged, groups = merge_phases(labels, merge)
    if mode == "sample":
        idx = [
            np.minimum((np.arange(m) * scale + 1e-9).astype(np.intp), n - 1)
            for m, n in zip(out_shape, merged.shape, strict=True)
        ]
        return merged[np.ix_(*idx)], groups
    w = _gaussian_1d(scale)
    best = np.zeros(out_shape, dtype=np.float32)
    lr = np.zeros(out_shape, dtype=merged.dtype)
    present = np.flatnonzero(np.bincount(merged.ravel(), minlength=len(groups)))
    for p in present:  # one phase at a time keeps memory at two float copies of the volume
        x = (merged == p).astype(np.float32)
        for axis in range(3):  # blur and shrink axis by axis: separable, and each step works on less data
            if w.size > 1:
                x = ndimage.correlate1d(x, w, axis=axis, mode="nearest")
            x = _linear_axis(x, axis, out_shape[axis])
        take = x > best
        lr[take] = p
        best[take] = x[take]
    return lr, groups

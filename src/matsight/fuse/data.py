"""Training batches for SuperRes: random HR 2D crops (with dihedral augmentation) and random LR 3D crops.

HR images are label images (``0`` = pore, ``1..n-1`` other phases) given as one 2D image or a stack of 2D
images. Isotropic materials use one stack for all three slicing axes and draw every crop in one of the 8
dihedral orientations (4 rotations × mirror, paper "Preprocessing"); anisotropic materials have one stack per
axis, and only the stacks isotropic within their plane are augmented (the reference code: the separator's x
plane). LR crops are never augmented (paper: the 3D volume offers enough variety).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._errors import InputError

__all__ = [
    "as_labels",
    "as_hr_stack",
    "dihedral",
    "HRSampler",
    "LRSampler",
    "one_hot",
    "phase_count",
    "plane_signature",
    "stack_order_warnings",
]

MAX_PHASES = 16


def as_labels(array, *, name="image"):
    """Validate a label image and return it as ``uint8``.

    Raises
    ------
    InputError
        Float images with non-integer values (a grayscale image), negative labels, more than 16 phases.
    """
    a = np.asarray(array)
    if a.dtype == bool:
        return a.astype(np.uint8)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.array_equal(a, np.round(a)):
            n = np.unique(a[: 10**6]).size if a.size else 0
            raise InputError(
                f"{name} must be a label image (integers 0..n-1), got {a.dtype} with {n}+ distinct values; "
                "segment it first (matsight segment) or pass a label image"
            )
    elif a.dtype.kind not in "iu":
        raise InputError(f"{name} must be an integer label image, got dtype {a.dtype}")
    if a.size == 0:
        raise InputError(f"{name} is empty")
    lo, hi = a.min(), a.max()
    if lo < 0 or hi >= MAX_PHASES:
        raise InputError(
            f"{name} has labels {lo}..{hi}; phases must be labelled 0..n-1 (0 = pore) with n ≤ {MAX_PHASES} "
            "(relabel it, e.g. with numpy.unique(..., return_inverse=True))"
        )
    return a.astype(np.uint8)


def phase_count(arrays, *, name="image"):
    """Number of phases ``n`` of label arrays that together hold every label ``0..n-1``.

    Raises
    ------
    InputError
        A label between 0 and the largest is missing (labels like {0, 2, 5}): the phase numbers are the
        network's channels, so a gap would train or compare a phase that no image shows.
    """
    present = np.zeros(MAX_PHASES, dtype=bool)
    for a in arrays:
        present[np.unique(np.asarray(a))] = True
    n = int(np.flatnonzero(present)[-1]) + 1
    if not present[:n].all():
        labels = ", ".join(map(str, np.flatnonzero(present)))
        missing = ", ".join(map(str, np.flatnonzero(~present[:n])))
        raise InputError(
            f"{name}: labels {{{labels}}} skip phase(s) {missing}; number the phases 0..n-1 without gaps "
            "(relabel, e.g. with numpy.unique(..., return_inverse=True))"
        )
    return n


def as_hr_stack(array, *, name="HR image"):
    """HR 2D image or stack of 2D images → ``(N, H, W)`` uint8 labels."""
    a = as_labels(array, name=name)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise InputError(f"{name} must be a 2D image or a stack of 2D images, got shape {a.shape}")
    return a


def plane_signature(masks):
    """Log mean run length of ``True`` along the rows and along the columns of a stack of 2D masks.

    A scale-free fingerprint of how a material looks in one slicing plane: lamellae cut across give one long
    and one short run, cut along their planes two similar ones.
    """
    m = np.asarray(masks, bool)
    out = []
    for axis in (1, 2):
        rows = np.moveaxis(m, axis, -1).reshape(-1, m.shape[axis])
        starts = np.count_nonzero(rows[:, 0]) + np.count_nonzero(rows[:, 1:] & ~rows[:, :-1])
        out.append(np.log(max(rows.sum(), 1) / max(starts, 1)))
    return np.array(out)


def stack_order_warnings(lr, stacks, *, scale, pore_phases=(0,), tolerance=0.5):
    """Check that each anisotropic HR stack looks like the LR volume's slices of its own plane.

    Each HR stack ``stacks[a]`` (slices normal to axis ``a`` of the ZYX volume) is brought to the LR grid
    (HR ``pore_phases`` against the rest, area-averaged over ``scale`` pixels, cut at 0.5) and its
    :func:`plane_signature` compared with those of the LR slices normal to each axis. A stack that matches
    another plane better by more than ``tolerance`` (log run length) gets a one-line message: the usual cause
    is a swapped ``--hr``/``--hr-y``/``--hr-z``.
    """
    from scipy import ndimage as ndi

    names = "zyx"
    lr_sig = [plane_signature(np.moveaxis(np.asarray(lr) != 0, a, 0)) for a in range(3)]
    messages = []
    for a, stack in enumerate(stacks):
        solid = (~np.isin(stack, pore_phases)).astype(np.float32)
        k = max(1, round(scale))
        low = ndi.zoom(ndi.uniform_filter(solid, size=(1, k, k)), (1, 1 / scale, 1 / scale), order=1)
        dist = [float(np.abs(plane_signature(low > 0.5) - sig).sum()) for sig in lr_sig]
        best = int(np.argmin(dist))
        if best != a and dist[a] - dist[best] > tolerance:
            flag = "--hr" if a == 2 else f"--hr-{names[a]}"
            messages.append(
                f"the HR images given for slices normal to {names[a]} ({flag}) look like the LR volume's "
                f"slices normal to {names[best]}, not {names[a]}; check the order of --hr (x), --hr-y, --hr-z"
            )
    return messages


def dihedral(image, k):
    """The ``k``-th (0..7) of the 8 rotations/mirrors of a 2D array (k ≥ 4 mirrors first)."""
    if k >= 4:
        image = image[:, ::-1]
    return np.rot90(image, k % 4)


def one_hot(labels, n_phases, dtype=torch.float32):
    """``(B, *spatial)`` integer tensor/array → ``(B, n_phases, *spatial)`` one-hot float tensor."""
    t = torch.as_tensor(np.ascontiguousarray(labels)).long()
    oh = F.one_hot(t, n_phases).to(dtype)
    return oh.movedim(-1, 1).contiguous()


class HRSampler:
    """Random ``size²`` crops of the HR stack for each slicing axis, one-hot encoded.

    Parameters
    ----------
    stacks : sequence of ndarray
        One ``(N, H, W)`` label stack (isotropic: used for all axes) or three (slices normal to z, y, x).
    size : int
        Crop edge (the critic's slice size).
    n_phases : int
        Number of HR phases (one-hot channels).
    augment : bool or sequence of 3 bool
        Draw each crop in a random dihedral orientation: for every axis, or per slicing axis (z, y, x), e.g.
        ``(False, False, True)`` for an anisotropic material whose x-plane images are isotropic in-plane.
    rng : numpy.random.Generator
    """

    def __init__(self, stacks, *, size, n_phases, augment, rng):
        self.stacks = [as_hr_stack(s) for s in stacks]
        self.size, self.n_phases, self.rng = size, n_phases, rng
        self.augment = (bool(augment),) * 3 if np.ndim(augment) == 0 else tuple(map(bool, augment))
        if len(self.augment) != 3:
            raise ValueError(f"augment needs one flag per slicing axis (3), got {augment!r}")
        for i, s in enumerate(self.stacks):
            if min(s.shape[1:]) < size:
                raise InputError(
                    f"HR image {i} is {s.shape[1]}×{s.shape[2]} pixels, "
                    f"smaller than the {size}² crops the critic "
                    f"needs; give HR images of at least {size}×{size} pixels"
                )

    def sample(self, batch, axis=0):
        """``(batch, n_phases, size, size)`` float tensor of crops for slicing ``axis``."""
        stack = self.stacks[axis if len(self.stacks) > 1 else 0]
        n, h, w = stack.shape
        s = self.size
        idx = self.rng.integers(0, n, batch)
        ys = self.rng.integers(0, h - s + 1, batch)
        xs = self.rng.integers(0, w - s + 1, batch)
        ks = self.rng.integers(0, 8, batch) if self.augment[axis] else np.zeros(batch, int)
        crops = np.stack(
            [dihedral(stack[i, y : y + s, x : x + s], k) for i, y, x, k in zip(idx, ys, xs, ks, strict=True)]
        )
        return one_hot(crops, self.n_phases)


class LRSampler:
    """Random ``crop³`` LR sub-volumes, one-hot encoded (``B, n_lr_phases, crop, crop, crop``)."""

    def __init__(self, lr, *, crop, n_phases, rng):
        self.lr = as_labels(lr, name="LR volume")
        if self.lr.ndim != 3:
            raise InputError(f"LR volume must be 3D (ZYX), got shape {self.lr.shape}")
        if min(self.lr.shape) < crop:
            raise InputError(
                f"LR volume {self.lr.shape} is smaller than the {crop}³ training crop; "
                "give a larger LR volume"
            )
        self.crop, self.n_phases, self.rng = crop, n_phases, rng

    def sample_labels(self, batch):
        """``(batch, crop, crop, crop)`` uint8 label crops."""
        c = self.crop
        starts = [self.rng.integers(0, n - c + 1, batch) for n in self.lr.shape]
        return np.stack([self.lr[z : z + c, y : y + c, x : x + c] for z, y, x in zip(*starts, strict=True)])

    def sample(self, batch):
        """One-hot float tensor of ``batch`` random crops."""
        return one_hot(self.sample_labels(batch), self.n_phases)

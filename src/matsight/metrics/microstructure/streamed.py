"""Whole-volume figures of label volumes larger than memory: one pass over slabs of Z rows.

A *lazy volume* is anything with ``shape`` whose ``volume[z0:z1]`` gives those rows as an array: a numpy
memory map, a zarr array, :class:`matsight.io.volumes.LazyTif`, or a numpy array. :func:`scan` reads it slab
by slab (one extra row below each slab, for the faces and edges between slabs) and hands every slab to a
list of *accumulators*, which keep counts, never the volume:

- :class:`Counts`: voxels per phase, faces between phases per axis, triple-phase edges and (optionally) the
  bit-quad counts of the Euler density. Its methods give :func:`~.phases.volume_fraction`,
  :func:`~.surfaces.specific_surface_area`, :func:`~.surfaces.interfacial_area`,
  :func:`~.surfaces.triple_phase_boundary` and :func:`~.topology.euler_density` of the whole volume, the
  same numbers as those functions give for the volume in memory (integer counts; no approximation).
- :class:`Slices`: whole 2D slices normal to each axis at given indices (``numpy.take`` of the volume).
- :class:`Chords`: chord-length histograms along every axis (chords along Z cross slabs: the run of each
  line is carried from one slab to the next), as :func:`~.chords.chord_length_distribution` gives them.

Memory is a slab (``rows`` × Y × X voxels, about :data:`SLAB_BYTES` by default) and what the accumulators
keep. Figures that need long-range or global context (two-point correlations, FFT profiles, tortuosity) are
not streamed: :func:`streamed_summary` computes them on the central box and says so in its result.
"""

from __future__ import annotations

import math

import numpy as np

from ...progress import report
from ._common import _face_area, _spacing
from .chords import chord_lengths

__all__ = ["SLAB_BYTES", "Chords", "Counts", "Slices", "scan", "slab_rows", "streamed_summary"]

SLAB_BYTES = 64 << 20
"""Default slab size: about 64 MiB of uint8 labels (up to about ten times that while a slab is measured)."""


def slab_rows(shape, *, rows=None, budget=SLAB_BYTES):
    """Rows (Z layers) per slab: ``rows`` if given, else as many as fit ``budget`` voxels (at least 1)."""
    if rows is not None:
        return max(1, int(rows))
    return max(1, int(budget) // max(1, math.prod(shape[1:])))


def scan(volume, accumulators, *, rows=None, check=None, callback=None, message="reading"):
    """Read ``volume`` slab by slab and give every slab to each accumulator.

    Parameters
    ----------
    volume : lazy volume
        3D, indexed along Z (see the module docstring).
    accumulators : sequence
        Objects with ``add(z0, z1, block)``: rows ``z0..z1-1`` are the slab's own, ``block`` holds them and,
        except for the last slab, row ``z1`` too.
    rows : int, optional
        Rows per slab (default: :func:`slab_rows`).
    check : callable, optional
        Applied to each block as read (label validation); its result is what the accumulators see.
    callback : callable, optional
        :mod:`matsight.progress` callback, called after each slab.
    message : str
        What the progress reports say is being done.
    """
    n = volume.shape[0]
    step = slab_rows(volume.shape, rows=rows)
    for z0 in range(0, n, step):
        z1 = min(z0 + step, n)
        block = np.asarray(volume[z0 : min(z1 + 1, n)])
        if check is not None:
            block = check(block)
        for acc in accumulators:
            acc.add(z0, z1, block)
        report(callback, step=z1, total=n, message=message)


def _bincount(x, minlength, chunk=1 << 20):
    """``numpy.bincount`` of ``x`` a million values at a time (it converts its input to int64 first)."""
    x = x.ravel()
    out = np.zeros(minlength, np.int64)
    for i in range(0, x.size, chunk):
        c = np.bincount(x[i : i + chunk], minlength=minlength)
        out[: c.size] += c[:minlength]
    return out


def _grow(a, n, axes):
    """``a`` zero-padded to length ``n`` on ``axes``."""
    pad = [(0, n - a.shape[k]) if k in axes else (0, 0) for k in range(a.ndim)]
    return np.pad(a, pad)


def _pairs_along(block, own, ax):
    """Both sides of the internal faces normal to ``ax`` owned by the slab (Z faces reach one row down)."""
    if ax == 0:
        return block[:-1], block[1:]
    lo = [slice(None)] * 3
    hi = [slice(None)] * 3
    lo[ax], hi[ax] = slice(None, -1), slice(1, None)
    return own[tuple(lo)], own[tuple(hi)]


def _tpb_hits(t):
    """Edges whose 2×2 surrounding (axes 1, 2 of ``t``) holds at least three phases:
    :func:`~.surfaces.triple_phase_boundary`'s test.
    """
    v00, v01 = t[:, :-1, :-1], t[:, :-1, 1:]
    v10, v11 = t[:, 1:, :-1], t[:, 1:, 1:]
    n = (v01 != v00).astype(np.uint8)
    n += (v10 != v00) & (v10 != v01)
    n += (v11 != v00) & (v11 != v01) & (v11 != v10)
    return int(np.count_nonzero(n >= 2)), int(n.size)


def _bit_quads(m):
    """``(Q1, Q3, QD)`` of the 2×2 blocks in axes 1, 2 of the mask stack ``m`` (Gray's estimator)."""
    a, b, c, d = m[:, :-1, :-1], m[:, :-1, 1:], m[:, 1:, :-1], m[:, 1:, 1:]
    s = a.astype(np.uint8) + b + c + d
    return np.array(
        [np.count_nonzero(s == 1), np.count_nonzero(s == 3), np.count_nonzero((s == 2) & (a == d))], np.int64
    )


class Counts:
    """Voxel, face, edge (and bit-quad) counts of a label volume, slab by slab (see :func:`scan`).

    Parameters
    ----------
    euler : bool
        Also count the 2×2 bit quads of every phase in the slices normal to each axis (for
        :meth:`euler_density`; three more passes over each slab per phase).
    """

    def __init__(self, *, euler=False):
        self._yx = None
        self.n = 1  # labels 0..n-1 seen so far
        self.voxels = np.zeros(1, np.int64)
        self.faces = np.zeros((3, 1, 1), np.int64)  # [axis, lower voxel's phase, upper voxel's phase]
        self.tpb = np.zeros((3, 2), np.int64)  # [edge direction, (edges with 3+ phases, all edges)]
        self.euler = {} if euler else None  # {phase: [slice axis, (Q1, Q3, QD)]}
        self.blocks = np.zeros(3, np.int64)  # 2×2 blocks per slice axis
        self._rows = 0

    def add(self, z0, z1, block):
        """Count the rows ``z0..z1-1`` of the volume (``block`` may hold row ``z1`` too)."""
        own = block[: z1 - z0]
        top = int(block.max()) + 1
        if top > self.n:
            self.voxels = _grow(self.voxels, top, (0,))
            self.faces = _grow(self.faces, top, (1, 2))
            self.n = top
        self._yx = own.shape[1:]
        self._rows += own.shape[0]
        self.voxels += _bincount(own, self.n)
        code_type = np.uint16 if self.n <= 256 else np.int64  # pair codes a·n + b, two bytes where they fit
        for ax in range(3):
            a, b = _pairs_along(block, own, ax)
            diff = a != b
            codes = a[diff].astype(code_type) * code_type(self.n) + b[diff]
            self.faces[ax] += _bincount(codes, self.n * self.n).reshape(self.n, self.n)
        # edges along Z lie in the slab's own rows; edges along Y and X reach one row down
        for d, t in enumerate((own, np.moveaxis(block, 1, 0), np.moveaxis(block, 2, 0))):
            self.tpb[d] += _tpb_hits(t)
        if self.euler is not None:
            self._add_euler(own, block)

    def _add_euler(self, own, block):
        stacks = (own, np.moveaxis(block, 1, 0), np.moveaxis(block, 2, 0))
        self.blocks += [max(0, t.shape[1] - 1) * max(0, t.shape[2] - 1) * t.shape[0] for t in stacks]
        for p in np.flatnonzero(_bincount(block, self.n)):
            q = self.euler.setdefault(int(p), np.zeros((3, 3), np.int64))
            for ax, t in enumerate(stacks):
                q[ax] += _bit_quads(t == p)

    @property
    def size(self):
        """Voxels counted."""
        return int(self._rows * math.prod(self._yx)) if self._yx else 0

    @property
    def volume_shape(self):
        """Shape of the volume counted."""
        return (self._rows, *(self._yx or (0, 0)))

    def phases(self):
        """Labels present, ascending."""
        return [int(p) for p in np.flatnonzero(self.voxels)]

    def volume_fraction(self, *, phases=None):
        """:func:`~.phases.volume_fraction` of the volume."""
        phases = self.phases() if phases is None else phases
        return {int(p): float(self.voxels[p] / self.size) if p < self.n else 0.0 for p in phases}

    def specific_surface_area(self, *, spacing=None):
        """:func:`~.surfaces.specific_surface_area` of the volume (``{phase: SSA}``)."""
        sp = _spacing(spacing, 3)
        area = np.zeros(self.n)
        for ax in range(3):
            w = _face_area(sp, ax)
            area += w * self.faces[ax].sum(axis=1)  # the phase on the lower side of each face
            area += w * self.faces[ax].sum(axis=0)  # and on the upper side
        volume = self.size * float(np.prod(sp))
        return {p: float(area[p] / volume) for p in self.phases()}

    def interfacial_area(self, *, spacing=None, normalize="volume"):
        """:func:`~.surfaces.interfacial_area` of the volume (``{(a, b): value}``, ``a < b``)."""
        from .surfaces import _total_internal_area

        sp = _spacing(spacing, 3)
        out = {}
        for a in range(self.n):
            for b in range(a + 1, self.n):
                per_axis = self.faces[:, a, b] + self.faces[:, b, a]
                if per_axis.sum():
                    out[(a, b)] = float(sum(_face_area(sp, ax) * int(c) for ax, c in enumerate(per_axis)))
        if normalize == "volume":
            return {k: v / (self.size * float(np.prod(sp))) for k, v in out.items()}
        if normalize == "faces":
            total = _total_internal_area(self.volume_shape, sp)
            return {k: v / total for k, v in out.items()}
        return out

    def triple_phase_boundary(self):
        """:func:`~.surfaces.triple_phase_boundary` of the volume (TauFactor's, share of internal edges)."""
        if any(s < 2 for s in self.volume_shape):
            return 0.0
        hits, total = self.tpb.sum(axis=0)
        return hits / total if total else 0.0

    def euler_density(self, phase, *, slice_axis, spacing=None):
        """:func:`~.topology.euler_density` of the slices normal to ``slice_axis`` (edge-connected)."""
        if self.euler is None:
            raise ValueError("Counts(euler=True) is needed for euler_density")
        sp = [s for k, s in enumerate(_spacing(spacing, 3)) if k != slice_axis]
        q1, q3, qd = self.euler.get(int(phase), np.zeros((3, 3), np.int64))[slice_axis]
        if not self.blocks[slice_axis]:
            return 0.0
        return float((q1 - q3 + 2 * qd) / 4 / (self.blocks[slice_axis] * sp[0] * sp[1]))


class Slices:
    """Whole slices normal to each axis, gathered slab by slab: ``result[ax]`` is
    ``numpy.take(volume, picks[ax], axis=ax)``.

    Parameters
    ----------
    shape : tuple of int
        The volume's shape.
    picks : dict
        ``{axis: indices}``.
    """

    def __init__(self, shape, picks, dtype=np.uint8):
        self.picks = {int(ax): np.asarray(idx, dtype=np.int64) for ax, idx in picks.items()}
        self.result = {}
        for ax, idx in self.picks.items():
            s = list(shape)
            s[ax] = idx.size
            self.result[ax] = np.zeros(s, dtype)

    def add(self, z0, z1, block):
        """Copy the picked slices' parts that lie in rows ``z0..z1-1``."""
        own = block[: z1 - z0]
        for ax, idx in self.picks.items():
            if ax == 0:
                sel = (idx >= z0) & (idx < z1)
                self.result[0][sel] = own[idx[sel] - z0]
            else:
                self.result[ax][z0:z1] = np.take(own, idx, axis=ax)


class Chords:
    """Chord-length histograms of every phase along each axis, slab by slab.

    Chords touching either end face along their axis are dropped (``trim_edges=True`` of
    :func:`~.chords.chord_length_distribution`). Along Z each line's current run is carried across slabs.

    Parameters
    ----------
    axes : sequence of int
        Axes to measure along.
    """

    def __init__(self, axes=(0, 1, 2)):
        self.axes = sorted({int(a) for a in axes})
        self.hist = {}  # {(phase, axis): counts by length}
        self._run = {}  # {phase: current run length of each Z line}
        self._cut = {}  # {phase: True where the current run started at the first row}
        self._n = 0

    def _count(self, p, ax, lengths):
        if lengths.size:
            h = np.bincount(lengths)
            old = self.hist.get((p, ax), np.zeros(0, np.int64))
            n = max(h.size, old.size)
            self.hist[(p, ax)] = np.pad(old, (0, n - old.size)) + np.pad(h, (0, n - h.size))

    def add(self, z0, z1, block):
        """Count the chords ending in rows ``z0..z1-1`` (and, along Y and X, all chords of those rows)."""
        own = block[: z1 - z0]
        present = [int(p) for p in np.flatnonzero(_bincount(own, int(own.max()) + 1))]
        for p in {*present, *self._run}:
            for ax in (a for a in self.axes if a != 0):
                self._count(p, ax, chord_lengths(own, p, axis=ax))
            if 0 in self.axes:
                self._add_z(p, z0, own)
        self._n = z1

    def _add_z(self, p, z0, own):
        run = self._run.setdefault(p, np.zeros(own.shape[1:], np.int64))
        cut = self._cut.setdefault(p, np.zeros(own.shape[1:], bool))
        for k, row in enumerate(own):
            is_p = row == p
            ended = (run > 0) & ~is_p
            self._count(p, 0, run[ended & ~cut])
            if z0 + k == 0:
                cut[:] = is_p
            else:
                cut &= is_p  # a run that goes on keeps its flag; a new one starts inside
            run[:] = np.where(is_p, run + 1, 0)

    def distribution(self, phase, axis, *, spacing=None):
        """:meth:`~.chords.ChordLengths.to_dict` of the phase's chords along ``axis``."""
        sp = _spacing(spacing, 3)[axis]
        count = self.hist.get((int(phase), int(axis)), np.zeros(0, np.int64))[1:]
        count = np.pad(count, (0, max(0, 1 - count.size)))
        total = int(count.sum())
        lengths = np.arange(1, count.size + 1)
        w = count * lengths
        return {
            "phase": int(phase),
            "axis": int(axis),
            "n_chords": total,
            "mean": float(w.sum() / total * sp) if total else None,
            "length": [float(v) for v in lengths * sp],
            "count": [int(v) for v in count],
            "pdf": [float(v) for v in (count / total if total else count.astype(float))],
            "length_weighted_pdf": [float(v) for v in (w / w.sum() if w.sum() else w.astype(float))],
        }


def streamed_summary(
    volume, *, spacing=None, axes=None, tortuosity=True, region=256, rows=None, check=None, callback=None
):
    """:func:`~.summaries.summary` of a volume larger than memory, read slab by slab.

    Volume fractions, surface and interfacial areas, TPB, Euler densities and chord lengths are the whole
    volume's, exactly (:class:`Counts`, :class:`Chords`). Two-point correlations, the FFT profile and the
    tortuosity need the whole volume at once (FFTs, a diffusion solve with percolation): they are those of
    the central ``region``³ box, which ``result["region"]`` names.

    Parameters
    ----------
    volume : lazy volume
        3D labels (see the module docstring).
    spacing, axes, tortuosity
        As for :func:`~.summaries.summary`.
    region : int
        Edge of the central box for the figures that are not streamed.
    rows, check, callback
        As for :func:`scan`.

    Returns
    -------
    dict
        The keys of :func:`~.summaries.summary`, and ``region`` ``{"corner", "shape", "figures"}``.
    """
    from ._common import _axis
    from .summaries import _pair_key, summary

    sp = _spacing(spacing, 3)
    axes = sorted({_axis(a, 3) for a in (range(3) if axes is None else axes)})
    counts, chords = Counts(euler=True), Chords(axes)
    scan(volume, [counts, chords], rows=rows, check=check, callback=callback, message="measuring")
    phases = counts.phases()
    corner = [max(0, (n - region) // 2) for n in volume.shape]
    box = tuple(slice(c, c + min(n, region)) for c, n in zip(corner, volume.shape, strict=True))
    central = np.asarray(volume[box])
    central = check(central) if check is not None else central
    tau = axes if tortuosity is True else ([] if not tortuosity else tortuosity)
    part = summary(central, spacing=spacing, axes=axes, tortuosity=tau)
    out = {
        "shape": list(volume.shape),
        "spacing": list(sp) if spacing is not None else None,
        "phases": phases,
        "volume_fraction": {str(p): v for p, v in counts.volume_fraction().items()},
        "specific_surface_area": {str(p): v for p, v in counts.specific_surface_area(spacing=sp).items()},
        "interfacial_area": {_pair_key(*k): v for k, v in counts.interfacial_area(spacing=sp).items()},
        "interface_face_fraction": {
            _pair_key(*k): v for k, v in counts.interfacial_area(spacing=sp, normalize="faces").items()
        },
        "triple_phase_boundary": counts.triple_phase_boundary() if len(phases) >= 3 else None,
        "euler_density": {
            str(p): {str(a): counts.euler_density(p, slice_axis=a, spacing=sp) for a in axes} for p in phases
        },
        "chord_length": {
            str(p): {str(a): chords.distribution(p, a, spacing=sp) for a in axes} for p in phases
        },
        **{k: part[k] for k in ("tortuosity", "two_point_correlation", "fft_profile") if k in part},
    }
    out["region"] = {
        "corner": corner,
        "shape": list(central.shape),
        "figures": [k for k in ("tortuosity", "two_point_correlation", "fft_profile") if k in part],
    }
    return out

"""Chord lengths of a phase along an axis: every chord, and its number- and length-weighted distributions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import _axis, _labels, _spacing

__all__ = ["ChordLengths", "chord_length_distribution", "chord_lengths"]


@dataclass
class ChordLengths:
    """Chord lengths of one phase along one axis.

    Attributes
    ----------
    chords : ndarray of int
        Length (voxels) of every chord: a maximal run of the phase along a line parallel to ``axis``.
    length : ndarray
        ``1..max`` voxels (times the spacing along ``axis``).
    count : ndarray of int
        Number of chords of each length.
    pdf : ndarray
        ``count / count.sum()``: the number-weighted distribution, the share of chords of each length
        (porespy's ``pdf`` with unit bins). Kept for backwards compatibility; the SuperRes paper's Fig. 10
        plots :attr:`length_weighted_pdf`.
    phase, axis : int
    spacing : float
        Voxel size along ``axis``.
    """

    chords: np.ndarray
    length: np.ndarray
    count: np.ndarray
    pdf: np.ndarray
    phase: int
    axis: int
    spacing: float = 1.0

    @property
    def length_weighted_pdf(self):
        """``d·N(d) / Σ d·N(d)``: the probability that a voxel of the phase (in a kept chord) lies in a chord
        of length ``d``, as the SuperRes paper's Fig. 10 plots it (porespy's ``normalization="length"``
        with unit bins). All zeros when there is no chord.
        """
        w = self.count * np.arange(1, self.count.size + 1)  # voxels; the spacing cancels in the ratio
        total = w.sum()
        return w / total if total else w.astype(float)

    @property
    def mean(self):
        """Number-weighted mean chord length (nan when there is no chord)."""
        return float(self.chords.mean() * self.spacing) if self.chords.size else float("nan")

    def to_dict(self):
        """JSON-able form (histogram, both distributions and the mean, not the individual chords)."""
        return {
            "phase": self.phase,
            "axis": self.axis,
            "n_chords": int(self.chords.size),
            "mean": self.mean if self.chords.size else None,
            "length": [float(v) for v in self.length],
            "count": [int(v) for v in self.count],
            "pdf": [float(v) for v in self.pdf],
            "length_weighted_pdf": [float(v) for v in self.length_weighted_pdf],
        }


def chord_lengths(labels, phase, *, axis=0, trim_edges=True):
    """Length in voxels of every chord of ``phase`` along ``axis`` (line by line, in C order).

    See :func:`chord_length_distribution`.
    """
    arr = _labels(labels)
    axis = _axis(axis, arr.ndim)
    t = np.moveaxis(arr == int(phase), axis, -1)
    n = t.shape[-1]
    lines = t.reshape(-1, n)
    padded = np.zeros((lines.shape[0], n + 2), dtype=np.int8)
    padded[:, 1:-1] = lines
    step = np.diff(padded, axis=1)
    starts = np.flatnonzero(step == 1)  # flat index: row * (n + 1) + column
    ends = np.flatnonzero(step == -1)
    s_col = starts % (n + 1)
    e_col = ends % (n + 1)
    lengths = e_col - s_col
    if trim_edges:
        keep = (s_col > 0) & (e_col < n)
        lengths = lengths[keep]
    return lengths.astype(np.int64)


def chord_length_distribution(labels, phase, *, axis=0, trim_edges=True, spacing=None) -> ChordLengths:
    """Chord length distribution of one phase along one axis.

    Every line of voxels parallel to ``axis`` is cut into chords (maximal runs of ``phase``). With
    ``trim_edges`` chords that touch either end face along ``axis`` are dropped: the image cuts them short.
    (``porespy.filters.apply_chords`` also drops chords on the outermost *lateral* lines and samples every
    other line; the distributions agree on the lines both keep.)

    Two distributions come back: ``pdf``, number-weighted (``N(d) / Σ N``, the share of chords of length
    ``d``), and ``length_weighted_pdf`` (``d·N(d) / Σ d·N(d)``, the probability that a voxel of the phase
    lies in a chord of length ``d``: the SuperRes paper's Fig. 10). Chords of 2 and 6 voxels give 1/2, 1/2
    and 0.25, 0.75.

    Parameters
    ----------
    labels : array_like of int, 2D or 3D
    phase : int
    axis : int, default 0
    trim_edges : bool, default True
    spacing : float or sequence of float, optional
        Voxel size per axis; lengths are then physical.

    Returns
    -------
    ChordLengths
    """
    arr = _labels(labels)
    axis = _axis(axis, arr.ndim)
    sp = _spacing(spacing, arr.ndim)[axis]
    chords = chord_lengths(arr, phase, axis=axis, trim_edges=trim_edges)
    count = np.bincount(chords, minlength=2)[1:]
    total = count.sum()
    pdf = count / total if total else count.astype(float)
    length = np.arange(1, count.size + 1) * sp
    return ChordLengths(chords, length, count, pdf, int(phase), axis, sp)

"""Many metrics at once: statistics over random sub-volumes (the paper's violins) and the JSON summary."""

from __future__ import annotations

import logging
import numbers
import warnings

import numpy as np

from ..._errors import InputError
from ...progress import report
from ._common import _axis, _labels, _phases, _spacing
from .chords import chord_length_distribution
from .correlations import _axis_correlations
from .fourier import radial_fft_profile
from .phases import volume_fraction
from .surfaces import interfacial_area, specific_surface_area, triple_phase_boundary
from .topology import euler_density

log = logging.getLogger(__name__)

__all__ = ["subvolume_statistics", "summary"]


def subvolume_statistics(
    labels,
    *,
    size=64,
    n=256,
    seed=0,
    spacing=None,
    transport=False,
    axis=0,
    progress=False,
    phases=None,
    callback=None,
) -> dict:
    """Metrics of ``n`` random sub-cubes (sub-squares in 2D) of edge ``size``: the paper's violin plots.

    Parameters
    ----------
    labels : array_like of int, 2D or 3D, or a lazy volume
        A lazy volume (memory map, zarr array, :class:`matsight.io.volumes.LazyTif`: anything with
        ``shape`` that slicing reads) is never loaded whole: each sub-cube is read and checked alone, in
        order of its first index. Give ``phases`` with it.
    size : int, default 64
        Edge of each sub-volume in voxels (at most the smallest image size).
    n : int, default 256
        Number of sub-volumes (positions drawn uniformly, with replacement).
    seed : int, default 0
    spacing : float or sequence of float, optional
        Voxel size per axis (for SSA and TPB in physical units).
    transport : bool, default False
        Also the transport efficiency (VF/τ) of every phase along ``axis`` (a diffusion solve per phase
        and sub-volume: ~1 s per 64³ solve on one core).
    axis : int, default 0
        Flux axis for ``transport``.
    progress : bool, default False
        Show a progress bar (rich) on stderr.
    phases : sequence of int, optional
        Phases reported (default: those present in ``labels``; required for a lazy volume).
    callback : callable, optional
        :mod:`matsight.progress` callback, called after each sub-volume.

    Returns
    -------
    dict
        ``{"volume_fraction": {phase: array}, "specific_surface_area": {phase: array},
        "triple_phase_boundary": array (3+ phases only), "transport_efficiency": {phase: array}
        (if ``transport``), "corners": (n, ndim) int array, "size": size}``; every array has ``n`` values.
    """
    lazy = not isinstance(labels, np.ndarray) and hasattr(labels, "shape") and hasattr(labels, "__getitem__")
    if lazy and phases is None:
        raise InputError("subvolume_statistics of a lazy volume needs phases=[...] (the phases it holds)")
    arr = labels if lazy else _labels(labels)
    axis = _axis(axis, arr.ndim)
    if not (isinstance(size, numbers.Integral) and 2 <= size <= min(arr.shape)):
        raise InputError(
            f"size must be an integer in [2, {min(arr.shape)}] for an image of shape {arr.shape}"
        )
    if not (isinstance(n, numbers.Integral) and n >= 1):
        raise InputError(f"n must be a positive integer, got {n!r}")
    sp = _spacing(spacing, arr.ndim) if spacing is not None else None
    rng = np.random.default_rng(seed)
    phases = _phases(arr) if phases is None else [int(p) for p in phases]
    corners = np.stack([rng.integers(0, s - size + 1, size=n) for s in arr.shape], axis=1)
    out = {
        "volume_fraction": {p: np.zeros(n) for p in phases},
        "specific_surface_area": {p: np.zeros(n) for p in phases},
    }
    if len(phases) >= 3:
        out["triple_phase_boundary"] = np.zeros(n)
    if transport:
        out["transport_efficiency"] = {p: np.zeros(n) for p in phases}
    with _progress_bar(progress, n, "sub-volumes") as advance:
        # in order of the first index: a lazy reader then decodes each of its slices about once
        for done, i in enumerate(np.argsort(corners[:, 0], kind="stable"), start=1):
            sub = arr[tuple(slice(int(k), int(k) + size) for k in corners[i])]
            _measure_subvolume(out, i, _labels(np.asarray(sub)) if lazy else sub, phases, sp, axis)
            advance()
            report(callback, step=done, total=n, message="transport" if transport else "sub-volumes")
    out["corners"] = corners
    out["size"] = int(size)
    return out


def _measure_subvolume(out, i, sub, phases, sp, axis):
    """Fill entry ``i`` of every array in ``out`` with the metrics of the sub-volume ``sub``."""
    vf = volume_fraction(sub, phases=phases)
    ssa = specific_surface_area(sub, spacing=sp)
    for p in phases:
        out["volume_fraction"][p][i] = vf[p]
        out["specific_surface_area"][p][i] = ssa.get(p, 0.0)
    if "triple_phase_boundary" in out:
        out["triple_phase_boundary"][i] = triple_phase_boundary(sub)
    if "transport_efficiency" in out:
        from ..tortuosity import tortuosity

        for p in phases:
            if vf[p] == 0:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = tortuosity(sub, phase=p, axis=axis, spacing=sp, tol=1e-4)
            out["transport_efficiency"][p][i] = res.transport_efficiency


class _progress_bar:
    def __init__(self, enabled, total, what):
        self.enabled, self.total, self.what = enabled, total, what
        self._p = None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.progress import Progress

        self._p = Progress(transient=True)
        self._p.start()
        task = self._p.add_task(self.what, total=self.total)
        return lambda: self._p.advance(task)

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.stop()


def _pair_key(a, b):
    return f"{a}-{b}"


def summary(
    labels,
    *,
    spacing=None,
    axes=None,
    tortuosity=True,
    max_distance=None,
    progress=False,
) -> dict:
    """Every microstructure metric of a label image as a JSON-able dict (string keys, lists, no inf/nan).

    Parameters
    ----------
    labels : array_like of int, 2D or 3D
    spacing : float or sequence of float, optional
        Voxel size per axis; areas, lengths and densities are then physical.
    axes : sequence of int, optional
        Axes for the directional metrics (τ, chords, 2-pt correlation). Default: all.
    tortuosity : bool or sequence of int, default True
        Solve for τ of every phase along every axis in ``axes`` (the slow part: seconds per solve at 128³),
        or along the axes given here.
    max_distance : int, optional
        Largest lag of the two-point correlations, in voxels (default ``min(80, min(shape) // 2)``).
    progress : bool, default False
        Status lines from the tortuosity solver.

    Returns
    -------
    dict
        ``shape``, ``spacing``, ``phases``, ``volume_fraction`` ``{phase: VF}``, ``specific_surface_area``
        ``{phase: SSA}``, ``interfacial_area`` ``{"a-b": area/volume}``, ``interface_face_fraction``
        ``{"a-b": faces/all internal faces}``, ``triple_phase_boundary`` (TauFactor's, 3+ phases, else
        None), ``euler_density`` (2D: ``{phase: grains − holes per area}``; 3D: ``{phase: {slice_axis:
        the mean over slices normal to it}}``), ``tortuosity`` ``{phase: {axis: {"tau",
        "transport_efficiency", "percolating", "percolating_fraction"}}}`` (``tau`` is None when the phase
        does not percolate),
        ``chord_length`` ``{phase: {axis: {"mean", "n_chords", "length", "count", "pdf",
        "length_weighted_pdf"}}}``,
        ``two_point_correlation`` ``{"a-b": {"distance": [...], axis: [...]}}`` (intra and inter phase,
        along each axis), ``fft_profile`` ``{phase: {"frequency", "magnitude"}}``.
    """
    arr = _labels(labels)
    sp = _spacing(spacing, arr.ndim)
    if axes is None:
        axes = list(range(arr.ndim))
    axes = sorted({_axis(a, arr.ndim) for a in axes})
    phases = _phases(arr)
    out = {
        "shape": list(arr.shape),
        "spacing": list(sp) if spacing is not None else None,
        "phases": phases,
        **_whole_image_values(arr, phases, sp, axes),
    }
    if tortuosity is True:
        tau_axes = axes
    elif tortuosity is False or tortuosity is None:
        tau_axes = []
    else:
        tau_axes = sorted({_axis(a, arr.ndim) for a in tortuosity})
    if tau_axes:
        out["tortuosity"] = _tortuosities(
            arr, phases, tau_axes, sp if spacing is not None else None, progress=progress
        )
    out["chord_length"] = {
        str(p): {str(ax): chord_length_distribution(arr, p, axis=ax, spacing=sp).to_dict() for ax in axes}
        for p in phases
    }
    out["two_point_correlation"] = _axis_correlation_curves(arr, phases, axes, max_distance)
    out["fft_profile"] = {}
    if len(phases) > 1:
        for p in phases:
            prof = radial_fft_profile(arr == p)
            out["fft_profile"][str(p)] = {
                "frequency": [float(v) for v in prof.frequency],
                "magnitude": [float(v) if np.isfinite(v) else None for v in prof.magnitude],
            }
    return out


def _whole_image_values(arr, phases, sp, axes):
    """Volume fractions, surface and interfacial areas, TPB and Euler densities of the whole image."""
    return {
        "volume_fraction": {str(p): v for p, v in volume_fraction(arr).items()},
        "specific_surface_area": {str(p): v for p, v in specific_surface_area(arr, spacing=sp).items()},
        "interfacial_area": {_pair_key(*k): v for k, v in interfacial_area(arr, spacing=sp).items()},
        "interface_face_fraction": {
            _pair_key(*k): v for k, v in interfacial_area(arr, spacing=sp, normalize="faces").items()
        },
        "triple_phase_boundary": triple_phase_boundary(arr) if len(phases) >= 3 else None,
        "euler_density": {
            str(p): euler_density(arr, p, spacing=sp)
            if arr.ndim == 2
            else {str(a): euler_density(arr, p, slice_axis=a, spacing=sp) for a in axes}
            for p in phases
        },
    }


def _tortuosities(arr, phases, axes, spacing, *, progress):
    """``{phase: {axis: {"tau", "transport_efficiency", "percolating", "percolating_fraction"}}}``."""
    from ..tortuosity import tortuosity

    taus = {}
    for p in phases:
        taus[str(p)] = {}
        for ax in axes:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = tortuosity(arr, phase=p, axis=ax, spacing=spacing, progress=progress)
            perc = bool(np.isfinite(res.tau))
            if not perc:
                log.info("phase %d does not percolate along axis %d: tau = inf", p, ax)
            taus[str(p)][str(ax)] = {
                "tau": float(res.tau) if perc else None,
                "transport_efficiency": float(res.transport_efficiency),
                "percolating": perc,
                "percolating_fraction": float(res.percolating_fraction),
            }
    return taus


def _axis_correlation_curves(arr, phases, axes, max_distance):
    """``{"a-b": {"distance": [...], axis: [...]}}`` for every pair of phases, along each axis."""
    corr = {}
    pairs = [(a, b) for i, a in enumerate(phases) for b in phases[i:]]
    for ax in axes:
        r = min(80, arr.shape[ax] // 2) if max_distance is None else min(int(max_distance), arr.shape[ax] - 1)
        res = _axis_correlations(arr, pairs, ax, r)
        for pr, s in res.items():
            entry = corr.setdefault(_pair_key(*pr), {"distance": None})
            entry[str(ax)] = [float(v) for v in s]
            if entry["distance"] is None or len(entry["distance"]) < len(s):
                entry["distance"] = [float(v) for v in np.arange(len(s))]
    return corr

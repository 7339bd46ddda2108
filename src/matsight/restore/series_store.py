"""The arrays a series run writes: its output (OME-Zarr store or folder) and each time step's scratch.

A step's scratch (``OUT/.scratch.zarr/<name>``) holds pass 1's normalised slabs (LQ slices, HQ grid in xy),
the degraded outputs of pass 2 on the LQ grid and, for a folder output, the step's HQ volumes until they are
written as tifs; it is removed when the step is recorded as finished, and made afresh when a step is redone.
"""

import shutil
import threading
from pathlib import Path

from .._atomic import atomic_path
from .series_io import ome_attrs

__all__ = ["create_store", "prepare_scratch", "step_arrays", "hq_shape", "lq_shape"]

OUTPUTS = ("enhanced", "bicubic", "onestep", "consistency")
_OPENED = {}
_LOCK = threading.Lock()


def hq_shape(shape, s):
    """The enhanced volume's shape for an LQ ``shape`` and scale ``s`` (as :func:`~.register.upscale`)."""
    return tuple(max(1, int(round(n * k))) for n, k in zip(shape, s, strict=True))


def lq_shape(shape, s, upscaled):
    """The consistency map's shape: the HQ shape area-averaged back by whole factors ``s``."""
    if upscaled:
        return tuple(shape)
    hq = hq_shape(shape, s)
    return tuple(n // int(round(k)) for n, k in zip(hq, s, strict=True))


def _chunks(shape, z):
    return (min(shape[0], z), min(shape[1], 512), min(shape[2], 512))


def _wanted_outputs(plan):
    out = ["enhanced", "bicubic"] + (["onestep"] if len(plan.wanted) > 1 else [])
    return out + (["consistency"] if plan.consistency else [])


def create_store(plan, record):
    """Create the OME-Zarr output of a new run atomically (arrays with ``(T,) Z, Y, X``; ``record`` in the
    root's attributes), or nothing for a folder output (its steps are written when they finish).
    """
    import zarr

    out = Path(plan.out)
    if not plan.zarr:
        return
    shape = plan.source.shapes[0]
    series = plan.source.series
    lead = (len(plan.source.names),) if series else ()
    with atomic_path(out, directory=True) as tmp:
        root = zarr.open_group(str(tmp), mode="w", attributes={"matsight": record})
        for key in _wanted_outputs(plan):
            lq = key == "consistency"
            sh = lq_shape(shape, plan.s, plan.upscaled) if lq else hq_shape(shape, plan.s)
            sp = plan.info.get("spacing_lq_nm") if lq else plan.spacing_hq
            g = root.create_group(key, attributes=ome_attrs(key, sp, series=series))
            ch = _chunks(sh, plan.slab if lq else plan.chunk)
            g.create_array("0", shape=lead + sh, chunks=(1,) * len(lead) + ch, dtype="float32")
        (tmp / "steps").mkdir()


def prepare_scratch(plan, t):
    """A fresh scratch group for time step ``t`` (what a cut-short run left there is removed first)."""
    import zarr

    name = plan.source.names[t]
    path = Path(plan.out) / ".scratch.zarr" / name
    shutil.rmtree(path, ignore_errors=True)
    shape = plan.source.shapes[t]
    hq = hq_shape(shape, plan.s)
    g = zarr.open_group(str(path), mode="w")
    plane = (shape[0],) + hq[1:]
    for key in ["y"] + [f"r{n}" for n in plan.wanted]:
        g.create_array(key, shape=plane, chunks=(1,) + hq[1:], dtype="float32", compressors=None)
    if plan.consistency:
        lq = lq_shape(shape, plan.s, plan.upscaled)
        for kind in ("enh", "bic") + (("one",) if len(plan.wanted) > 1 else ()):
            g.create_array(f"d_{kind}", shape=lq, chunks=(1,) + lq[1:], dtype="float32", compressors=None)
    if not plan.zarr:
        for key in _wanted_outputs(plan):
            sh = lq_shape(shape, plan.s, plan.upscaled) if key == "consistency" else hq
            z = plan.slab if key == "consistency" else plan.chunk
            g.create_array(key, shape=sh, chunks=(min(sh[0], z),) + sh[1:], dtype="float32", compressors=None)
    with _LOCK:
        _OPENED.pop((plan.out, name), None)


class _AtStep:
    """Time step ``t`` of a ``(T, Z, Y, X)`` zarr array, indexed like the 3D volume."""

    def __init__(self, arr, t):
        self.arr, self.t = arr, t
        self.shape = tuple(arr.shape[1:])

    def __getitem__(self, key):
        return self.arr[(self.t,) + (key if isinstance(key, tuple) else (key,))]

    def __setitem__(self, key, value):
        self.arr[(self.t,) + (key if isinstance(key, tuple) else (key,))] = value


def step_arrays(plan, t):
    """``{name: array}`` of time step ``t``: scratch (y, rN, r1, d_*) and outputs (enhanced, ...)."""
    import zarr

    name = plan.source.names[t]
    key = (plan.out, name)
    with _LOCK:
        if key in _OPENED:
            return _OPENED[key]
    g = zarr.open_group(str(Path(plan.out) / ".scratch.zarr" / name), mode="r+")
    arrays = {k: g[k] for k in g.array_keys()}
    if plan.zarr:
        root = zarr.open_group(plan.out, mode="r+")
        for k in _wanted_outputs(plan):
            arr = root[k]["0"]
            arrays[k] = _AtStep(arr, t) if plan.source.series else arr
    with _LOCK:
        _OPENED[key] = arrays
    return arrays

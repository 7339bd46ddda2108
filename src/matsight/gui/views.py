"""What the slice viewer and the run panel read from files; runs in a :mod:`~matsight.gui.pool` worker.

The volume cache is per worker process: the pool sends a volume's calls to the worker that read it last.
"""

import json
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .._errors import InputError
from . import render
from .paths import DataRoot

__all__ = [
    "volume_info",
    "volume_slice",
    "run_listing",
    "read_history",
    "read_status",
    "VOLUME_SUFFIXES",
    "COLORMAPS",
]

VOLUME_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr")
COLORMAPS = ("labels", "gray", "viridis", "magma", "inferno")


def _spacing(path):
    """The file's voxel size in nm per axis (``None`` per unknown axis), or None without a calibration."""
    from ..io import read_spacing

    try:
        sp = read_spacing(path)
    except (InputError, OSError, ValueError):
        return None
    return None if sp is None else [None if v is None else float(v) for v in sp]


class _VolumeCache:
    """The last few volumes opened for slicing (the slider asks for many slices of one volume)."""

    def __init__(self, size=4):  # the viewer's linked panels: LR, SR, HR, uncertainty
        self.size, self._d, self._lock = size, OrderedDict(), threading.Lock()

    def get(self, path):
        from ..io import read_volume

        p = Path(path)
        key = (str(p), p.stat().st_mtime_ns)
        with self._lock:
            if key in self._d:
                self._d.move_to_end(key)
                return self._d[key]
        vol = read_volume(p, lazy=True)
        if vol.ndim not in (2, 3):
            raise InputError(f"{p.name} has {vol.ndim} dimensions; the viewer shows 2D images and 3D volumes")
        sample = np.asarray(vol[:: max(1, vol.shape[0] // 16)]) if vol.ndim == 3 else np.asarray(vol)
        labels = render.is_labels(sample)
        entry = {
            "volume": vol,
            "info": {
                "shape": [int(s) for s in vol.shape],
                "dtype": str(vol.dtype),
                "labels": bool(labels),
                "window": list(render.window(sample)),
                "min": float(np.nanmin(sample)) if sample.size else None,
                "max": float(np.nanmax(sample)) if sample.size else None,
                # the label colours' key (the values seen in the sampled slices)
                "legend": render.label_legend(np.unique(sample)) if labels else [],
                # voxel size in nm per axis (None where unknown): the viewer's scale bars and slice linking
                "spacing": _spacing(p),
            },
        }
        with self._lock:
            self._d[key] = entry
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return entry


_CACHE = _VolumeCache()


def volume_info(path):
    """Shape, dtype, label-ness and display window of a volume (cached)."""
    return _CACHE.get(path)["info"]


def volume_slice(path, axis=0, index=None, cmap=None):
    """PNG bytes of slice ``index`` (default: the middle) along ``axis`` of a cached volume."""
    entry = _CACHE.get(path)
    info, vol = entry["info"], entry["volume"]
    shape = info["shape"]
    if axis > 2 or (len(shape) == 2 and axis != 0):
        raise InputError(f"axis must be 0 (z), 1 (y) or 2 (x) for a 3D volume, got {axis}")
    n = shape[axis] if len(shape) == 3 else 1
    index = n // 2 if index is None else index
    if index >= n:
        raise InputError(f"slice {index} is out of range: the volume has {n} slices along axis {axis}")
    cmap = cmap or ("labels" if info["labels"] else "gray")
    if cmap not in COLORMAPS:
        raise InputError(f"unknown colour map {cmap!r}; use one of {', '.join(COLORMAPS)}")
    return render.volume_slice(vol, axis, index, cmap=cmap, window_=tuple(info["window"]))


def read_history(run):
    """A run's metric records: the newest of ``metrics.json`` / ``history.json`` / a checkpoint's metadata.

    fuse writes ``metrics.json`` at every checkpoint; restore keeps its history inside ``state.safetensors``
    while training and writes ``history.json`` at the end — the newest file is the current one.
    """
    run = Path(run)
    cands = [run / n for n in ("metrics.json", "history.json", "last.safetensors", "state.safetensors")]
    for f in sorted((f for f in cands if f.is_file()), key=lambda f: f.stat().st_mtime, reverse=True):
        try:
            if f.suffix == ".json":
                hist = json.loads(f.read_text(encoding="utf-8"))
            else:
                from safetensors import safe_open

                with safe_open(str(f), framework="numpy") as h:  # header only, no tensors loaded
                    hist = json.loads((h.metadata() or {}).get("matsight", "{}")).get("history")
        except (OSError, ValueError, RecursionError):
            continue  # being replaced right now (atomic rename): the next poll gets it
        if isinstance(hist, list) and hist:
            return hist
    return []


def run_listing(root, run):
    """A run folder's history, and the volumes and HTML reports inside it (data-folder-relative)."""
    root = DataRoot(root)
    run = Path(run)
    vols, reports = [], []
    for p in sorted(run.rglob("*")):
        if any(part.startswith(".") for part in p.relative_to(run).parts):
            continue
        if not p.resolve().is_relative_to(root.root):  # a symlink out of the data folder: not offered
            continue
        if p.suffix.lower() in VOLUME_SUFFIXES and (p.is_file() or p.suffix.lower() == ".zarr"):
            vols.append(root.relative(p))
        elif p.name.endswith(".html") and p.is_file():
            reports.append(root.relative(p))
    return {
        "run": root.relative(run),
        "history": read_history(run),
        "status": read_status(run),
        "volumes": vols,
        "reports": reports,
    }


def read_status(run):
    """A fuse run's ``status.json`` (where the training stands: verdict, gaps to the HR images, the LR/HR
    fraction check), or None when the folder has none (yet) or it is being replaced right now.
    """
    f = Path(run) / "status.json"
    try:
        st = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
    except (OSError, ValueError, RecursionError):
        return None
    return st if isinstance(st, dict) else None

"""Any matsight output folder as napari layers, each with its calibration as the layer's ``scale``.

Recognised by the files each command writes: a fuse run (``last.safetensors`` / ``best.safetensors``,
``status.json``), a restore model (``model.safetensors`` + ``history.json``), pair (``pair.json``) or apply
output (``enhance.json``), a segment model (``model.json``), a tem analysis (``spots.json``), a metrics JSON
(``volume_fraction`` per phase) — and any folder of ``.tif``/``.npy``/``.zarr`` volumes (a segment or fuse
generate output). Every volume becomes a layer: integer images with few values as Labels (coloured by
phase), others as Image. The scale is the file's own calibration (:func:`matsight.io.read_spacing`, nm),
else what the folder's JSON records (a tem analysis' pixel size), else 1 with a note saying so.

This module returns napari's *layer data tuples* ``(data, kwargs, layer_type)`` and imports neither Qt nor
napari, so the npe2 reader and the open widget share it and it is tested without a display.
"""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError

log = logging.getLogger(__name__)

__all__ = ["FolderLayers", "folder_kind", "read_folder", "phase_colormap", "VOLUME_SUFFIXES"]

VOLUME_SUFFIXES = (".tif", ".tiff", ".npy", ".zarr")
MAX_LABELS = 64  # an integer image with more distinct values than this is shown as an image

#: marker file → what kind of folder holds it (the first match wins)
MARKERS = (
    ("spots.json", "tem analysis"),
    ("enhance.json", "restore output"),
    ("pair.json", "restore pair"),
    ("status.json", "fuse run"),
    ("last.safetensors", "fuse run"),
    ("best.safetensors", "fuse run"),
    ("history.json", "restore model"),
    ("model.json", "segment model"),
)


@dataclass
class FolderLayers:
    """What :func:`read_folder` found: the folder's kind, its layers and notes for the user."""

    kind: str
    layers: list = field(default_factory=list)  # napari layer data tuples
    notes: list = field(default_factory=list)


def phase_colormap(n=None, *, offset=0):
    """A napari ``DirectLabelColormap`` dict: label ``k`` in phase ``k - offset``'s colour (the reports').

    ``offset=1`` colours strokes (label k marks phase k − 1) like the phases they mark; label 0 is then
    transparent (unlabelled).
    """
    from ..report.style import phase_colour

    n = MAX_LABELS if n is None else int(n)
    colors = {k: phase_colour(k - offset) for k in range(offset, n + offset)}
    colors[None] = "transparent"
    if offset:
        colors[0] = "transparent"
    return colors


def _metrics_json(folder):
    """The first JSON in ``folder`` that holds microstructure metrics (``volume_fraction`` per phase)."""
    for f in sorted(folder.glob("*.json")):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(data, dict) and isinstance(data.get("volume_fraction"), dict):
            return f, data
    return None, None


def folder_kind(path):
    """The kind of matsight output ``path`` is (see :data:`MARKERS`; ``"metrics"``), or None.

    Examples
    --------
    >>> folder_kind("/nonexistent") is None
    True
    """
    p = Path(path)
    if not p.is_dir():
        return None
    for name, kind in MARKERS:
        if (p / name).is_file():
            return kind
    if _metrics_json(p)[0] is not None:
        return "metrics"
    return None


def _volumes(folder):
    """Volume files directly in ``folder`` and one level down (a fuse run's generated volumes, a pair)."""
    found = []
    for depth in ("*", "*/*"):
        for p in sorted(folder.glob(depth)):
            if any(part.startswith(".") for part in p.relative_to(folder).parts):
                continue
            if p.suffix.lower() in VOLUME_SUFFIXES and (p.is_file() or p.suffix.lower() == ".zarr"):
                found.append(p)
    return found


def _json(path):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _recorded_pixel_size(folder):
    """``(py, px)`` nm that the folder's JSON records (a tem analysis' calibration), or None."""
    spots = _json(folder / "spots.json")
    cal = (spots or {}).get("calibration", {}).get("pixel_size_nm")
    if isinstance(cal, dict) and {"y", "x"} <= set(cal):
        return float(cal["y"]), float(cal["x"])
    return None


def _scale(path, ndim, folder):
    """``(scale per axis, source)`` in nm: the file's calibration, the folder's record, or ones."""
    from ..io import read_spacing

    try:
        sp = read_spacing(path)
    except InputError:
        sp = None
    if sp is not None and len(sp) == ndim and all(s is not None and s > 0 for s in sp):
        return tuple(float(s) for s in sp), "file"
    rec = _recorded_pixel_size(folder)
    if rec is not None:
        return (1.0,) * (ndim - 2) + rec, "spots.json"
    return (1.0,) * ndim, None


def is_labels(array):
    """Whether ``array`` looks like labels: integers or bools with at most :data:`MAX_LABELS` values."""
    if array.dtype.kind not in "biu":
        return False
    sample = np.asarray(array[:: max(1, array.shape[0] // 8)]) if array.ndim == 3 else np.asarray(array)
    return len(np.unique(sample)) <= MAX_LABELS


def volume_layer(path, folder, *, name=None):
    """One volume file as a layer data tuple, scaled by its calibration; the note when none was found."""
    from ..io import read_volume

    data = read_volume(path, lazy=True)
    if data.ndim not in (2, 3):
        raise InputError(f"{path.name} has {data.ndim} dimensions; napari layers here are 2D or 3D")
    scale, source = _scale(path, data.ndim, folder)
    kwargs = {"name": name or path.stem, "scale": scale, "metadata": {"path": str(path), "spacing_nm": scale}}
    if source is not None:
        kwargs["units"] = "nm"
    note = None if source is not None else f"{path.name}: no calibration recorded; scale 1 (pixels)"
    if is_labels(data):
        arr = np.asarray(data)
        kwargs.update(colormap=phase_colormap(int(arr.max()) + 1))
        return (arr, kwargs, "labels"), note
    return (data, kwargs, "image"), note


def _tem_spots(folder):
    """A tem analysis' spots (and Friedel mates) as points at their ``g`` (1/nm), coloured by phase."""
    from ..tem.report import phase_colors

    data = _json(folder / "spots.json") or {}
    rows = data.get("spots") or []
    if not rows:
        return None
    g = np.array([[r["gy_per_nm"], r["gx_per_nm"]] for r in rows], float)
    phase = [str(r.get("phase", "")) for r in rows] * 2
    label = [f"{r.get('phase', '')} {r.get('hkl', '')} {r['d_angstrom']:.3g} Å".strip() for r in rows] * 2
    colors = phase_colors([str(p.get("name")) for p in data.get("phases") or [] if isinstance(p, dict)])
    kwargs = {
        "name": "spots (g, 1/nm)",
        "features": {"phase": phase, "label": label},
        "face_color": [colors.get(p, "#999999") for p in phase],
        "size": float(np.abs(g).max() / 40 or 1),
        "units": "1/nm",
        "text": {"string": "{label}", "size": 8, "color": "white", "translation": [-1, 0]},
    }
    return np.concatenate([g, -g]), kwargs, "points"


def _summary(kind, folder):
    """One line about the folder (its verdict, scores or metrics), or None."""
    if kind == "fuse run":
        st = _json(folder / "status.json") or {}
        verdict = st.get("verdict") or st.get("status")
        return f"fuse run: {verdict}" if verdict else None
    if kind == "tem analysis":
        s = (_json(folder / "spots.json") or {}).get("summary", {})
        return f"tem: phases found {s.get('phases found', '?')}; {s.get('identification', '')}".strip()
    if kind == "metrics":
        _, data = _metrics_json(folder)
        vf = ", ".join(f"{k}: {float(v):.3f}" for k, v in data["volume_fraction"].items())
        return f"volume fractions {vf}"
    if kind == "segment model":
        sc = (_json(folder / "model.json") or {}).get("scores", {})
        acc = sc.get("pixel_accuracy")
        return None if acc is None else f"segment model: held-out pixel accuracy {acc:.3f}"
    return None


def read_folder(path):
    """The layers of a matsight output folder (or any folder of volumes), with scale from calibration.

    Parameters
    ----------
    path : str or Path
        The folder.

    Returns
    -------
    FolderLayers
        ``kind`` (``"folder"`` when no matsight marker was found), ``layers`` (napari layer data tuples) and
        ``notes`` (a summary line; volumes without calibration).

    Raises
    ------
    InputError
        Not a folder, or a folder with nothing to show.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise InputError(
            f"{folder} is not a folder; choose a matsight output folder (a run, an apply output)"
        )
    kind = folder_kind(folder) or "folder"
    out = FolderLayers(kind)
    for vol in _volumes(folder):
        name = str(vol.relative_to(folder).with_suffix(""))
        try:
            layer, note = volume_layer(vol, folder, name=name)
        except InputError as exc:
            out.notes.append(f"{vol.name} skipped: {exc}")
            continue
        out.layers.append(layer)
        if note:
            out.notes.append(note)
    if kind == "tem analysis":
        spots = _tem_spots(folder)
        if spots is not None:
            out.layers.append(spots)
    line = _summary(kind, folder)
    if line:
        out.notes.insert(0, line)
    if not out.layers:
        hint = (
            " (a fuse run holds checkpoints: generate a volume from it first)" if kind == "fuse run" else ""
        )
        raise InputError(f"{folder.name} ({kind}) holds no .tif/.npy/.zarr volume to show{hint}")
    return out

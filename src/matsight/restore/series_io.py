"""Where a series comes from and goes to, read and written a slab at a time.

A *source* is a folder of volumes (one per time step, sorted by name, each named by its file's stem), a 4D
``(T, Z, Y, X)`` tif/npy/zarr (OME-Zarr with axes t, z, y, x included), or one 3D volume. Nothing is read
until a worker asks for slices ``[lo, hi)`` of a time step (zarr chunks, memory-mapped npy, tif pages).

The output is either a folder (one sub-folder of tifs per time step, as ``restore apply`` writes for one
volume) or an OME-Zarr store: ``enhanced``, ``bicubic``, ``onestep`` and ``consistency`` images, each
``(T,) Z, Y, X`` float32 with ``multiscales`` metadata giving the voxel size (HQ grid; LQ grid for
``consistency``), and ``steps/<name>.json`` per finished time step.
"""

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError
from ..io import read_spacing
from ..io._limits import check_claim
from ..io._quiet import capture
from ..io._readers import _npy_header, _one_line, _open_zarr, _tif_calibration, _uncompressed
from ..io.units import parse_length_unit, valid_scale

__all__ = ["Source", "folder_volumes", "open_source", "read_rows", "ome_attrs", "write_tif_stream"]

EXTS = (".tif", ".tiff", ".npy", ".zarr")
_OPEN = {}  # per process: opened arrays by path (a worker reads many slabs of one file)
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Source:
    """A time series (or one volume), unread: what workers need to read any slab of any time step.

    Attributes
    ----------
    names : list of str
        Time steps (file stems of a folder, ``t000``, ``t001``, ... of a 4D array).
    files : list of str
        The file of every time step (the same 4D file for all of them).
    index : list of int or None
        The time index of every step in its file (None: the file is one 3D volume).
    shapes : list of tuple
        ``(Z, Y, X)`` of every time step.
    spacing : tuple or None
        Voxel size in nm ``(dz, dy, dx)`` when the (first) file records it.
    series : bool
        A series (folder or 4D), not one volume: outputs get a T axis or a sub-folder per step.
    """

    path: str
    names: list
    files: list
    index: list
    shapes: list
    spacing: tuple | None = None
    series: bool = True
    arrays: dict = field(default_factory=dict, compare=False)  # in-memory inputs (library use)


def _tif_zarr(path):
    import tifffile
    import zarr

    with tifffile.TiffFile(path) as tif:
        axes = tif.series[0].axes
        cal = _tif_calibration(tif)
    return zarr.open(tifffile.imread(path, aszarr=True), mode="r"), axes, cal


def _check_claim(p, ext):
    """What the header claims against the file's size (the readers' check; series steps may be 4D)."""
    if ext == ".npy":
        shape, dtype, offset = _npy_header(p)
        check_claim(p, shape, dtype, stored=p.stat().st_size - offset)
    elif ext in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(p) as tif:
            if not tif.series:
                raise InputError(f"{p.name} holds no image data; check the file")
            series = tif.series[0]
            stored = p.stat().st_size if _uncompressed([series]) else None
            check_claim(p, tuple(series.shape), series.dtype, stored=stored)


def _open_unchecked(p, ext):
    if ext == ".zarr":
        return _open_zarr(p)[:2]
    if ext == ".npy":
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
        return arr, {3: "ZYX", 4: "TZYX"}.get(arr.ndim, "Q" * arr.ndim)
    arr, axes, _ = _tif_zarr(p)
    return arr, (axes.replace("I", "Z").replace("Q", "Z") if len(axes) == 3 else axes)


def _open(path):
    """``(array, axes)`` of a file, unread; axes ZYX or TZYX (length-one other axes dropped by index)."""
    with _LOCK:
        if path in _OPEN:
            return _OPEN[path]
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in (".zarr", ".npy", ".tif", ".tiff"):
        raise InputError(f"{p.name}: a series step must be .tif, .npy or .zarr")
    try:
        with capture() as noise:  # tifffile's warnings on a damaged file: one line, not a log dump
            _check_claim(p, ext)
            noise.raise_if_damaged(p.name)
            arr, axes = _open_unchecked(p, ext)
            noise.raise_if_damaged(p.name)
    except InputError:
        raise
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise InputError(f"{p.name} is not readable: empty, truncated or corrupt? ({_one_line(e)})") from None
    axes = str(axes).upper()
    keep = [i for i, a in enumerate(axes) if a in "TZYX" or arr.shape[i] != 1]
    if len(axes) != arr.ndim or "".join(axes[i] for i in keep) not in ("ZYX", "TZYX"):
        raise InputError(
            f"{p.name} has axes {axes or '?'} of shape {tuple(arr.shape)}; a series needs Z, Y, X "
            "(one volume per file) or T, Z, Y, X"
        )
    out = (arr, axes, tuple(slice(None) if i in keep else 0 for i in range(arr.ndim)))
    with _LOCK:
        _OPEN[path] = out
    return out


def _spacing(path):
    """Voxel size (nm) of a file's Z, Y, X, or None."""
    try:
        p = Path(path)
        if p.suffix.lower() == ".zarr":
            cal = _open_zarr(p)[2]
        elif p.suffix.lower() in (".tif", ".tiff"):
            cal = _tif_zarr(p)[2]
        else:
            return read_spacing(p)
    except InputError:
        return None
    out = []
    for a in "ZYX":
        s, unit = cal.get(a, (None, None))
        u = parse_length_unit(unit)
        out.append(s * u[1] if (u and not u[2] and valid_scale(s)) else None)
    return tuple(out) if all(v is not None for v in out) else None


def folder_volumes(folder):
    """The volumes of a series folder, one per time step, sorted by name; hidden files (temporaries) left out.

    Each step is named (and saved) by its file's stem, so two files of one stem are refused.
    """
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in EXTS and not p.name.startswith("."))
    if not files:
        raise InputError(f"{folder} holds no .tif/.npy/.zarr volumes; put one volume per time step there")
    by_stem = {}
    for p in files:
        if p.stem in by_stem:
            raise InputError(
                f"{folder} holds two time steps named {p.stem}: {by_stem[p.stem].name} and {p.name}; "
                "keep one of them or rename the other"
            )
        by_stem[p.stem] = p
    return files


def open_source(source):
    """A :class:`Source` for a folder of volumes, a 3D/4D file, or a 3D/4D numpy array."""
    if isinstance(source, np.ndarray):
        if source.ndim not in (3, 4):
            raise InputError(f"a series must be a 3D (Z, Y, X) or 4D (T, Z, Y, X) array, got {source.shape}")
        frames = source if source.ndim == 4 else source[None]
        names = [f"t{i:03d}" for i in range(len(frames))] if source.ndim == 4 else ["volume"]
        arrays = {f"<array>#{i}": f for i, f in enumerate(frames)}
        shapes = [f.shape for f in frames]
        index = [None] * len(names)
        return Source("<array>", names, list(arrays), index, shapes, series=source.ndim == 4, arrays=arrays)
    p = Path(source)
    if not p.exists():
        raise InputError(f"input not found: {p}")
    if p.is_dir() and p.suffix.lower() != ".zarr":
        files = folder_volumes(p)
        shapes = []
        for f in files:
            arr, axes, sel = _open(str(f))
            if "T" in axes:
                raise InputError(f"{f.name} is 4D ({axes}); a folder holds one 3D volume per time step")
            shapes.append(_shape(arr, sel))
        names, paths = [f.stem for f in files], [str(f) for f in files]
        return Source(str(p), names, paths, [None] * len(files), shapes, _spacing(files[0]))
    arr, axes, sel = _open(str(p))
    shape = _shape(arr, sel)
    if "T" not in axes:
        name = p.stem.removesuffix(".ome")
        return Source(str(p), [name], [str(p)], [None], [shape], _spacing(p), series=False)
    n = shape[0]
    names = [f"t{i:03d}" for i in range(n)]
    return Source(str(p), names, [str(p)] * n, list(range(n)), [shape[1:]] * n, _spacing(p))


def _shape(arr, sel):
    return tuple(n for n, s in zip(arr.shape, sel, strict=True) if isinstance(s, slice))


def read_rows(source, t, lo, hi):
    """Slices ``[lo, hi)`` of time step ``t`` of ``source`` as a numpy array (only those are read)."""
    f = source.files[t]
    if f in source.arrays:
        return np.asarray(source.arrays[f][lo:hi])
    arr, axes, sel = _open(f)
    sel = list(sel)
    spatial = [i for i, s in enumerate(sel) if isinstance(s, slice)]
    if source.index[t] is not None:
        sel[spatial[0]] = source.index[t]
        spatial = spatial[1:]
    sel[spatial[0]] = slice(lo, hi)
    return np.asarray(arr[tuple(sel)])


# ------------------------------------------------------------------------------------------------ writing
def ome_attrs(name, spacing, *, series):
    """OME-Zarr 0.5 ``multiscales`` attributes of a one-level image (voxel size in nm when known)."""
    axes = [{"name": a, "type": "space"} for a in "zyx"]
    if spacing is not None:
        for a in axes:
            a["unit"] = "nanometer"
    scale = [float(v) for v in spacing] if spacing is not None else [1.0, 1.0, 1.0]
    if series:
        axes = [{"name": "t", "type": "time"}] + axes
        scale = [1.0] + scale
    ms = {
        "name": name,
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
    }
    return {"ome": {"version": "0.5", "multiscales": [ms]}}


def write_tif_stream(path, arr, spacing):
    """Write the 3D array ``arr`` (zarr) to a tif page by page (memory: one slice), with its voxel size."""
    import tifffile

    shape = tuple(arr.shape)
    big = int(np.prod(shape)) * 4 > 2**31 - 2**25
    kw = {"compression": "zlib", "bigtiff": big}
    md = {"axes": "ZYX"}
    if spacing is not None:
        kw["resolution"] = (1.0 / spacing[2], 1.0 / spacing[1])
        md.update(unit="nm", spacing=spacing[0])
    if big:  # ImageJ tifs stop at 4 GiB: tifffile's own metadata keeps the axes and voxel size
        md = {"axes": "ZYX", **({"unit": "nm", "spacing": list(spacing)} if spacing else {})}
        kw.update(photometric="minisblack", resolutionunit=1)
    else:
        kw["imagej"] = True
    pages = (np.asarray(arr[i], dtype=np.float32) for i in range(shape[0]))
    tifffile.imwrite(path, data=pages, shape=shape, dtype="float32", metadata=md, **kw)


def stored_ndim(path):
    """Dimensions of a file's data (4: T, Z, Y, X; 2: an image), or of a folder's first volume."""
    from ..io import read_volume

    p = Path(path)
    if p.is_dir() and p.suffix.lower() != ".zarr":
        p = folder_volumes(p)[0]
    try:
        arr, axes, sel = _open(str(p))
    except InputError:
        return np.ndim(read_volume(p, lazy=True))
    return len(_shape(arr, sel))

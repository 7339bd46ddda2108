"""Volumes and label images: tif (ImageJ/OME axes), npy, zarr, png; atomic writers.

Every reader returns arrays in ZYX order (2D images as YX). Axes that ImageJ or OME add (time, channel,
samples) are dropped when they have length one; when they carry data the reader says so instead of guessing
which slice the user meant.
"""

import logging
import math
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from .._errors import InputError
from ._quiet import capture
from ._readers import PLAIN_IMAGE_EXTS, TIF_EXTS, _existing, _ext, read_array
from .microscope import MICROSCOPE_EXTS, read_microscope
from .units import parse_length_unit, valid_scale

log = logging.getLogger(__name__)

__all__ = [
    "LazyTif",
    "open_volume",
    "read_volume",
    "read_image",
    "read_labels",
    "validate_labels",
    "write_volume",
    "read_spacing",
]

VOLUME_EXTS = TIF_EXTS + (".npy", ".zarr") + PLAIN_IMAGE_EXTS
WRITE_EXTS = TIF_EXTS + (".npy", ".zarr")
# float images with at most this many distinct non-integer values are probably mis-saved labels, not grayscale
_FEW_VALUES = 16


# ---------------------------------------------------------------------------------------------------- readers
def _read_any(path, *, lazy=False, rgb="error"):
    """Read a volume/image file → (array, axes, calibration {axis: (scale, unit)})."""
    path = _existing(path)
    if _ext(path) in MICROSCOPE_EXTS and path.is_file():
        mi = read_microscope(path, pixel_size=1.0, allow_reciprocal=True, lazy=lazy, _quiet=True)
        axes = "ZYX" if mi.data.ndim == 3 else "YX"
        return mi.data, axes, {}
    return read_array(path, lazy=lazy, rgb=rgb)


def read_volume(path, *, lazy=False):
    """Read a 2D image or 3D volume in ZYX order.

    Parameters
    ----------
    path : str or Path
        .tif/.tiff (ImageJ hyperstacks and OME-TIFF: singleton time/channel axes are dropped; a stack saved
        page by page is read whole), .npy, .zarr
        (v2 or v3; a group with one array or an OME-Zarr image), .png/.jpg, or a microscope file (data only).
    lazy : bool, optional
        Don't load: a zarr array for .zarr (a dask array when length-one T/C axes must be dropped), a memory
        map for .npy and uncompressed tifs (others are loaded).

    Returns
    -------
    ndarray or zarr.Array
        ``(Z, Y, X)`` for volumes and stacks (frames first), ``(Y, X)`` for single images.

    Raises
    ------
    InputError
        Missing file, unknown format, or a tif whose channels/time points cannot be reduced to one volume.
    """
    return _read_any(path, lazy=lazy)[0]


class LazyTif:
    """A tif stack of 2D pages read page by page when indexed: ``stack[z0:z1]`` decodes only those pages.

    For compressed stacks, which cannot be memory-mapped. The pages decoded last are kept, up to
    :attr:`cache_bytes` (and at least the pages of the latest read), so slabs read in order, and sub-cubes
    taken in Z order, decode each page about once.
    """

    cache_bytes = 64 << 20

    def __init__(self, path, shape, dtype):
        self.path, self.shape, self.dtype = Path(path), tuple(shape), np.dtype(dtype)
        self.ndim = 3
        self._cache = {}
        self._tif = None  # opened on the first read, kept open (its page index is parsed once)

    def __len__(self):
        return self.shape[0]

    def _pages(self, index):
        import tifffile

        missing = [i for i in index if i not in self._cache]
        if missing:
            if self._tif is None:
                self._tif = tifffile.TiffFile(self.path)
            pages = self._tif.series[0].pages
            for i in missing:
                self._cache[i] = pages[i].asarray().reshape(self.shape[1:])
        out = np.empty((len(index), *self.shape[1:]), self.dtype)
        for k, i in enumerate(index):
            out[k] = self._cache[i]
        # forget the oldest pages only now: pages of this read that were cached before are the oldest
        keep = self.cache_bytes // max(1, math.prod(self.shape[1:]) * self.dtype.itemsize)
        while len(self._cache) > keep:
            self._cache.pop(next(iter(self._cache)))
        return out

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        first, rest = key[0], key[1:]
        if isinstance(first, slice):
            block = self._pages(range(*first.indices(self.shape[0])))
        elif np.ndim(first) == 0:
            return self._pages([int(first) % self.shape[0]])[0][rest]
        else:
            block = self._pages([int(i) % self.shape[0] for i in np.asarray(first).ravel()])
        return block[(slice(None), *rest)]

    def close(self):
        """Close the file (a later read opens it again)."""
        if self._tif is not None:
            self._tif.close()
            self._tif = None

    def __del__(self):
        self.close()

    def __array__(self, dtype=None, copy=None):
        return self[:].astype(dtype) if dtype is not None else self[:]


def _paged_tif(path):
    """:class:`LazyTif` of a compressed tif whose pages are the Z slices of its only series, else None."""
    import tifffile

    try:
        # a damaged file's tifffile warnings are dropped here: read_volume, which reads what this refuses,
        # turns them into one error line
        with capture(), tifffile.TiffFile(path) as tif:
            if len(tif.series) != 1:
                return None
            series = tif.series[0]
            shape = tuple(s for s in series.shape if s != 1)
            page = series.keyframe
            if (
                len(shape) != 3
                or len(series.pages) != shape[0]
                or tuple(page.shape) != shape[1:]
                or int(getattr(page, "compression", 1)) == 1
            ):
                return None
            return LazyTif(path, shape, series.dtype)
    except (tifffile.TiffFileError, OSError, ValueError):
        return None


def open_volume(path):
    """A 3D volume without loading it: a zarr array, a memory map, or a :class:`LazyTif`.

    Slabs of Z rows (``v[z0:z1]``) and sub-cubes are read on demand, so volumes larger than memory can be
    measured slab by slab (:mod:`matsight.metrics.microstructure.streamed`). Files that can be read no
    other way (compressed tifs with other layouts, images) are loaded, as :func:`read_volume` does.
    """
    path = _existing(path)
    if _ext(path) in TIF_EXTS and path.is_file():
        lazy = _paged_tif(path)
        if lazy is not None:
            return lazy
    return read_volume(path, lazy=True)


def read_spacing(path):
    """Voxel size in nm per axis of :func:`read_volume`'s result (``None`` for unknown axes), or ``None``.

    Read from ImageJ/OME/FEI tif tags, zarr attributes (written by :func:`write_volume`, or OME-Zarr) and
    microscope calibrations.
    """
    path = _existing(path)
    if _ext(path) in MICROSCOPE_EXTS:
        try:
            mi = read_microscope(path, lazy=True, _quiet=True)
        except InputError:
            return None
        ps = tuple(mi.pixel_size_nm)
        return ((None,) * (mi.data.ndim - len(ps))) + ps
    data, axes, cal = _read_any(path, lazy=True)
    out = []
    for a in axes:
        s, unit = cal.get(a, (None, None))
        p = parse_length_unit(unit)
        out.append(s * p[1] if (p and not p[2] and valid_scale(s)) else None)
    return tuple(out) if any(v is not None for v in out) else None


def read_image(path):
    """Read one 2D grayscale image (tif, png, jpg, npy, microscope file); RGB is converted to luminance.

    A stack with more than one frame is an error; use :func:`matsight.io.iter_frames` for those.
    """
    path = _existing(path)
    data, axes, _ = _read_any(path, rgb="gray")
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 2:
        raise InputError(
            f"{path.name} holds a {data.ndim}D array of shape {data.shape}, not a single 2D image; "
            "pick one frame or use iter_frames"
        )
    return data


# ---------------------------------------------------------------------------------------------------- labels
def _smallest_int_dtype(lo, hi):
    for dt in (np.uint8, np.uint16, np.uint32) if lo >= 0 else (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return dt
    return np.int64


def _distinct(a, limit=50_000_000):
    """Number of distinct values (exact up to ``limit`` elements, else on a strided sample) and whether
    exact.
    """
    flat = a.ravel()
    if flat.size > limit:
        flat = flat[:: int(math.ceil(flat.size / limit))]
        return np.unique(flat), False
    return np.unique(flat), True


def validate_labels(array, *, name="labels", max_labels=None, allow_negative=False):
    """Check that ``array`` is a 2D/3D integer label image and return it as one.

    Bool → uint8; floats whose values are all integers are cast to the smallest integer type that holds them.

    Parameters
    ----------
    array : array_like
    name : str
        How to call the array in error messages (a file name, "--labels", ...).
    max_labels : int, optional
        Reject arrays with more distinct values than this (grayscale images stored as integers).
    allow_negative : bool
        Accept negative labels (off by default: phases are 0, 1, 2, ...).

    Returns
    -------
    ndarray
        Integer array, 2D (YX) or 3D (ZYX).

    Raises
    ------
    InputError
        Wrong dimensionality, non-integer floats (a grayscale image, not labels), NaN, negative or too many
        labels.
    """
    a = np.asarray(array)
    if a.ndim > 3 and sum(s != 1 for s in a.shape) in (2, 3):
        a = a.reshape([s for s in a.shape if s != 1])
    if a.ndim < 2:
        raise InputError(
            f"{name} is a {a.ndim}D array of shape {a.shape}; "
            "labels must be a 2D or 3D image (Y, X) or (Z, Y, X)"
        )
    if a.ndim > 3:
        raise InputError(f"{name} is a {a.ndim}D array of shape {a.shape}; labels must be a 2D or 3D image")
    if a.size == 0:
        raise InputError(f"{name} is empty (shape {a.shape}); give a non-empty label image")
    kind = a.dtype.kind
    if kind == "b":
        return a.astype(np.uint8)
    if kind == "f":
        if not np.all(np.isfinite(a)):
            raise InputError(f"{name} contains NaN or infinite values; labels must be integers 0, 1, 2, ...")
        if np.any(a != np.rint(a)):
            values, exact = _distinct(a)
            n = f"{len(values)}" if exact else f"at least {len(values)}"
            if len(values) > _FEW_VALUES:
                raise InputError(
                    f"{name} has {n} distinct float values — it looks like a grayscale image, not labels; "
                    "segment it first (matsight segment) or pass an integer label image"
                )
            shown = ", ".join(f"{v:g}" for v in values)
            raise InputError(
                f"{name} has non-integer values ({shown}); labels must be integers — map each value to "
                f"0..{len(values) - 1} first (e.g. numpy.unique(a, return_inverse=True))"
            )
        a = a.astype(_smallest_int_dtype(a.min(), a.max()))
    elif kind not in "iu":
        raise InputError(f"{name} has data type {a.dtype}; labels must be integers 0, 1, 2, ...")
    lo = a.min()
    if lo < 0 and not allow_negative:
        raise InputError(
            f"{name} has negative labels (min {lo}); labels must be 0, 1, 2, ... (0 usually pore)"
        )
    if max_labels is not None:
        n = (
            len(np.unique(a))
            if lo < 0 or a.max() > 1_000_000
            else int(np.count_nonzero(np.bincount(a.ravel())))
        )
        if n > max_labels:
            raise InputError(
                f"{name} has {n} distinct values (at most {max_labels} phases expected) — "
                "it looks like a grayscale image, not labels; segment it first (matsight segment)"
            )
    return a


def read_labels(path, *, max_labels=None):
    """Read an integer label volume (ZYX) or image (YX); see :func:`validate_labels` for the checks."""
    path = _existing(path)
    return validate_labels(read_volume(path), name=path.name, max_labels=max_labels)


# ---------------------------------------------------------------------------------------------------- writers
def _check_axes(axes, ndim):
    if axes is None:
        if ndim > 3:
            raise InputError(f"a {ndim}D array needs explicit axes, e.g. axes='TZYX'")
        axes = "ZYX"[-ndim:]
    axes = str(axes).upper()
    if ndim < 2 and len(axes) == 3:  # default "ZYX" for 1D: say what is wrong instead
        raise InputError(f"write_volume needs a 2D or 3D array, got shape of {ndim} dimension(s)")
    if len(axes) == 3 and ndim == 2 and axes == "ZYX":
        axes = "YX"
    if len(axes) != ndim or set(axes) - set("TZCYX") or len(set(axes)) != ndim or not axes.endswith("YX"):
        raise InputError(f"axes {axes!r} do not fit a {ndim}D array; use letters from TZCYX ending in YX")
    return axes


def _check_spacing(spacing, axes):
    if spacing is None:
        return None
    spatial = [a for a in axes if a in "ZYX"]
    try:
        sp = np.atleast_1d(np.asarray(spacing, dtype=float)).ravel().tolist()
    except (TypeError, ValueError):
        sp = []
    if len(sp) == 1:
        sp = sp * len(spatial)
    if len(sp) != len(spatial) or not all(valid_scale(s) for s in sp):
        raise InputError(
            f"spacing {spacing!r} must be one positive number or one per spatial axis ({''.join(spatial)})"
        )
    return dict(zip(spatial, sp, strict=True))


def _default_chunks(shape):
    target = {1: 4096, 2: 512, 3: 64}.get(len(shape), 64)
    return tuple(min(s, target) if i >= len(shape) - 3 else 1 for i, s in enumerate(shape))


_IJ_UNITS = {"µm": "micron", "Å": "A"}


def write_volume(path, array, *, spacing=None, axes=None, unit="nm", chunks=None):
    """Write an image or volume atomically (nothing is left behind if writing fails).

    Parameters
    ----------
    path : str or Path
        .tif/.tiff (ImageJ-compatible where ImageJ supports the data type, zlib-compressed, spacing in the
        resolution tags and ImageJ metadata), .npy (no metadata), or .zarr (chunked; spacing/axes/unit as
        attributes).
    array : array_like
        Numpy, dask or zarr array. Bool is stored as uint8.
    spacing : float or sequence of float, optional
        Voxel size in ``unit`` (one value for isotropic, or one per spatial axis).
    axes : str, optional
        Letters from TZCYX ending in YX; default "ZYX" for 3D and "YX" for 2D.
    unit : str
        Unit of ``spacing`` ("nm" by default; "µm" is written as ImageJ's "micron").
    chunks : tuple of int, optional
        zarr chunk shape (default ~64³ for volumes).

    Returns
    -------
    Path
    """
    path = Path(path)
    ext = _ext(path)
    if ext not in WRITE_EXTS:
        raise InputError(f"write_volume writes .tif/.tiff, .npy or .zarr; got {path.name!r}")
    lazy = hasattr(array, "dask") or type(array).__module__.startswith("zarr")
    arr = array if lazy else np.asarray(array)
    if arr.dtype.kind not in "biuf":
        raise InputError(f"cannot write an array of type {arr.dtype}; give integers, floats or bools")
    if arr.ndim < 2:
        raise InputError(f"write_volume needs a 2D or 3D array, got shape {tuple(arr.shape)}")
    axes = _check_axes(axes, arr.ndim)
    sp = _check_spacing(spacing, axes)
    if sp is not None and parse_length_unit(unit) is None:
        raise InputError(f"unknown length unit {unit!r}; use pm, Å, nm, µm, mm or m")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if ext == ".zarr":
        return _write_zarr(path, arr, axes=axes, sp=sp, unit=unit, chunks=chunks)
    arr = np.asarray(arr)
    if ext == ".npy":
        if sp is not None:
            log.warning("%s: .npy stores no spacing; use .tif or .zarr to keep it", path.name)
        with atomic_path(path) as tmp:
            np.save(tmp, arr)
        return path
    _write_tif(path, arr, axes=axes, sp=sp, unit=unit)
    return path


def _write_tif(path, arr, *, axes, sp, unit):
    import tifffile

    kw = {"compression": "zlib", "bigtiff": arr.nbytes > 2**31 - 2**25}
    unit_name = parse_length_unit(unit)[0] if sp is not None else None
    if sp is not None:
        kw["resolution"] = (1.0 / sp["X"], 1.0 / sp["Y"])
    imagej = arr.dtype in (np.uint8, np.uint16, np.int16, np.float32) and not kw["bigtiff"]
    if imagej:
        md = {"axes": axes}
        if sp is not None:
            md["unit"] = _IJ_UNITS.get(unit_name, unit_name)
            if "Z" in sp:
                md["spacing"] = sp["Z"]
        kw.update(imagej=True, metadata=md)
    else:  # tifffile's JSON "shaped" description keeps shape, axes and per-axis spacing
        md = {"axes": axes}
        if sp is not None:
            md.update(unit=unit_name, spacing=[sp.get(a, 1.0) for a in axes])
        kw.update(photometric="minisblack", metadata=md, resolutionunit=1)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, arr, **kw)


def _write_zarr(path, arr, *, axes, sp, unit, chunks):
    import zarr

    attrs = {"axes": axes}
    if sp is not None:
        attrs.update(spacing=[sp.get(a, 1.0) for a in axes], unit=parse_length_unit(unit)[0])
    given = chunks
    try:
        chunks = tuple(int(c) for c in chunks) if chunks is not None else _default_chunks(arr.shape)
    except (TypeError, ValueError):
        chunks = ()
    if len(chunks) != arr.ndim or min(chunks, default=0) < 1:
        raise InputError(
            f"chunks {given!r} must be one positive whole number per axis of the {arr.ndim}D array, "
            f"e.g. {_default_chunks(arr.shape)}"
        )
    with atomic_path(path, directory=True) as tmp:
        z = zarr.create_array(
            store=str(tmp), shape=arr.shape, dtype=arr.dtype, chunks=chunks, attributes=attrs, overwrite=True
        )
        if hasattr(arr, "dask"):
            import dask.array as da

            da.store(arr, z, lock=False)
        else:
            # slab by slab along the first axis: a lazy source (zarr) is never loaded whole
            step = chunks[0]
            for i in range(0, arr.shape[0], step):
                z[i : i + step] = np.asarray(arr[i : i + step])
    return path

"""Volumes and label images: tif (ImageJ/OME axes), npy, zarr, png; atomic writers.

Every reader returns arrays in ZYX order (2D images as YX). Axes that ImageJ or OME add (time, channel,
samples) are dropped when they have length one; when they carry data the reader says so instead of guessing
which slice the user meant.
"""

import logging
import math
import re
import zlib
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from .._errors import InputError
from .units import parse_length_unit, valid_scale

log = logging.getLogger(__name__)

__all__ = ["read_volume", "read_image", "read_labels", "validate_labels", "write_volume", "read_spacing"]

TIF_EXTS = (".tif", ".tiff")
PLAIN_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
VOLUME_EXTS = TIF_EXTS + (".npy", ".zarr") + PLAIN_IMAGE_EXTS
WRITE_EXTS = TIF_EXTS + (".npy", ".zarr")
# float images with at most this many distinct non-integer values are probably mis-saved labels, not grayscale
_FEW_VALUES = 16


# ---------------------------------------------------------------------------------------------------- helpers
def _existing(path):
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; check the path")
    return path


def _ext(path):
    name = Path(path).name.lower()
    for ext in (".ome.tiff", ".ome.tif"):
        if name.endswith(ext):
            return ".tif"
    return Path(name.rstrip("/")).suffix


def _one_line(exc):
    """The first line of an exception's message (the user sees one line, never a traceback)."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _natural_key(name):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(name))]


def _luminance(rgb):
    # ITU-R BT.709 weights, the ones scikit-image's rgb2gray uses
    w = np.array([0.2125, 0.7154, 0.0721])
    return np.asarray(rgb[..., :3], dtype=np.float64) @ w


def _normalise_axes(data, axes, name, *, rgb):
    """Squeeze/validate ImageJ-OME style axes → (array in [T|Z]YX order, axes string).

    ``rgb`` is "error" (volumes, labels) or "gray" (microscope images: colour → luminance).
    """
    axes = axes.upper()
    if len(axes) != data.ndim:  # unknown layout: trust the page dims
        axes = "Q" * (data.ndim - 2) + "YX"
    desc = f"axes {axes}, shape {tuple(data.shape)}"
    for letter, what in (("S", "samples per pixel"), ("C", "channels")):
        while letter in axes:
            i = axes.index(letter)
            n = data.shape[i]
            if n == 1:
                data = data[(slice(None),) * i + (0,)]
                axes = axes.replace(letter, "", 1)
                continue
            ch = np.moveaxis(np.asarray(data), i, -1)
            if letter == "S" and n in (2, 4):  # grey + alpha or RGB + alpha
                if np.ptp(ch[..., -1]) != 0:  # a constant alpha carries nothing
                    if rgb != "gray":
                        raise InputError(
                            f"{name} has a transparency (alpha) channel that varies ({desc}); save it "
                            "without transparency (e.g. Fiji: Image › Type › 8-bit) and read that"
                        )
                    log.warning("%s has a transparency (alpha) channel; ignoring it", name)
                ch, n = ch[..., :-1], n - 1
                if n == 1:
                    data = ch[..., 0]
                    axes = axes.replace(letter, "", 1)
                    continue
            if all(np.array_equal(ch[..., 0], ch[..., k]) for k in range(1, n)):
                data = ch[..., 0]
            elif rgb == "gray" and letter == "S" and n == 3:
                log.warning("%s is an RGB colour image; converting it to grayscale (luminance)", name)
                data = _luminance(ch)
            else:
                kind = "an RGB colour image" if letter == "S" else f"a {n}-channel image"
                raise InputError(
                    f"{name} is {kind} ({desc}) with {n} different {what}; save the single channel you need "
                    "(e.g. Fiji: Image › Color › Split Channels) and read that"
                )
            axes = axes.replace(letter, "", 1)
    if "Y" not in axes or "X" not in axes or axes.index("Y") != len(axes) - 2 or axes[-1] != "X":
        axes = axes.replace("Y", "Q").replace("X", "Q")
        axes = axes[:-2] + "YX"
    extra = [(a, n) for a, n in zip(axes[:-2], data.shape[:-2], strict=True) if n != 1]
    keep = tuple(slice(None) if (a in "YX" or n != 1) else 0 for a, n in zip(axes, data.shape, strict=True))
    data = data[keep]
    if len(extra) > 1:
        what = ", ".join(f"{a}={n}" for a, n in extra)
        raise InputError(
            f"{name} has more than one stack dimension ({what}; {desc}); a volume is one 3D ZYX block — "
            "save a single time point/channel (e.g. Fiji: Image › Duplicate…) and read that"
        )
    if not extra:
        return data, "YX"
    a = extra[0][0]
    if a == "T":
        log.info("%s: treating its %d time points as frames (first axis)", name, extra[0][1])
        return data, "TYX"
    return data, "ZYX"


# ---------------------------------------------------------------------------------------------------- tif
def _ome_calibration(xml):
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return {}
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Pixels":
            out = {}
            for ax in "XYZ":
                v = el.get(f"PhysicalSize{ax}")
                if v is not None:
                    out[ax] = (float(v), el.get(f"PhysicalSize{ax}Unit", "µm"))
            return out
    return {}


def _tif_calibration(tif):
    """Return {"X": (scale, unit), "Y": ..., "Z": ...} from whatever calibration the tif carries."""
    cal = {}
    page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
    tags = page.tags

    def resolution(tagname):
        t = tags.get(tagname)
        if t is None:
            return None
        v = t.value
        r = v[0] / v[1] if isinstance(v, tuple) and v[1] else float(v if not isinstance(v, tuple) else 0)
        return 1.0 / r if r > 0 else None

    shaped = (tif.shaped_metadata or ({},))[0] if tif.is_shaped else {}
    ij = tif.imagej_metadata or {}
    ru = tags.get("ResolutionUnit")
    ru = int(ru.value) if ru is not None else 2
    if ij.get("unit") or shaped.get("unit"):
        unit = ij.get("unit") or shaped.get("unit")
        sx, sy = resolution("XResolution"), resolution("YResolution")
        if sx:
            cal["X"] = (sx, unit)
        if sy:
            cal["Y"] = (sy, unit)
        sp = ij.get("spacing", shaped.get("spacing"))
        if isinstance(sp, list | tuple):  # our plain-tif writer stores one spacing per axis
            axes = shaped.get("axes", "")
            if "Z" in axes and len(sp) == len(axes):
                cal["Z"] = (float(sp[axes.index("Z")]), unit)
        elif sp is not None:
            cal["Z"] = (float(sp), unit)
    elif tif.is_ome and tif.ome_metadata:
        cal.update(_ome_calibration(tif.ome_metadata))
    elif getattr(tif, "is_fei", False) and tif.fei_metadata:
        scan = tif.fei_metadata.get("Scan", {})
        for ax, key in (("X", "PixelWidth"), ("Y", "PixelHeight")):
            if key in scan:
                cal[ax] = (float(scan[key]), "m")
    elif ru == 3:  # centimetre: an explicit physical unit (inch resolutions are screen dpi, not calibration)
        sx, sy = resolution("XResolution"), resolution("YResolution")
        if sx and sy:
            cal["X"], cal["Y"] = (sx, "cm"), (sy, "cm")
    return cal


def _same_shape_pages(tif):
    """The series of a tif written page by page (one 2D series each, same shape and type), or None."""
    series = tif.series
    first = series[0]
    if len(series) < 2 or len(first.shape) != 2:
        return None
    if all(tuple(s.shape) == tuple(first.shape) and s.dtype == first.dtype for s in series):
        return series
    return None


def _read_tif(path, *, lazy, rgb):
    import tifffile

    if path.is_dir():
        raise InputError(f"{path.name} is a folder, not a tif file; give the path of the .tif inside it")
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                raise InputError(f"{path.name} holds no image data; check the file")
            pages = _same_shape_pages(tif)
            if pages is not None:
                # a stack saved one page at a time (each its own series): the pages are the Z slices
                log.info("%s: reading its %d single-page series as a stack of slices", path.name, len(pages))
                cal = _tif_calibration(tif)
                data = np.stack([s.asarray() for s in pages])
                shape, axes = data.shape, "ZYX"
            else:
                if len(tif.series) > 1:
                    log.warning(
                        "%s has %d image series of different shapes; reading the first, %s",
                        path.name,
                        len(tif.series),
                        tuple(tif.series[0].shape),
                    )
                series = tif.series[0]
                shape, axes = tuple(series.shape), series.axes
                cal = _tif_calibration(tif)
                data = None
                if lazy:
                    try:
                        data = tifffile.memmap(path, series=0, mode="r")
                    except (ValueError, OSError):
                        log.info(
                            "%s is compressed or fragmented and cannot be memory-mapped; loading it",
                            path.name,
                        )
                if data is None:
                    data = series.asarray()
    except InputError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError, EOFError, zlib.error) as e:
        raise InputError(
            f"{path.name} is not a readable tif — truncated or corrupt? ({type(e).__name__}: {_one_line(e)})"
        ) from None
    data = data.reshape(shape) if data.shape != shape else data
    data, axes = _normalise_axes(data, axes, path.name, rgb=rgb)
    return data, axes, cal


# ---------------------------------------------------------------------------------------------------- zarr
def _open_zarr(path):
    import zarr

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as e:  # zarr raises many types for a store that is not one
        raise InputError(
            f"{path.name} is not a readable zarr store ({type(e).__name__}: {_one_line(e)})"
        ) from None
    cal = {}
    if isinstance(node, zarr.Group):
        attrs = dict(node.attrs)
        ms = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if ms:  # OME-Zarr: full-resolution level and its scale
            ds = ms[0]["datasets"][0]
            arr = node[ds["path"]]
            axes = ms[0].get("axes", [])
            scale = next(
                (t["scale"] for t in ds.get("coordinateTransformations", []) if t.get("type") == "scale"),
                None,
            )
            if scale and len(axes) == len(scale):
                for a, s in zip(axes, scale, strict=True):
                    name = (a.get("name") if isinstance(a, dict) else str(a)).upper()
                    if name in "ZYX" and isinstance(a, dict) and a.get("unit"):
                        cal[name] = (float(s), a["unit"])
            axes_str = "".join(
                (a.get("name") if isinstance(a, dict) else str(a)).upper()[:1] for a in axes
            ) or ("ZYX"[-arr.ndim :] if arr.ndim <= 3 else "Q" * arr.ndim)
            return arr, axes_str, cal
        keys = sorted(node.array_keys())
        if len(keys) != 1:
            raise InputError(
                f"{path.name} is a zarr group with {len(keys)} arrays ({', '.join(keys) or 'none'}); "
                f"give the array's path, e.g. {path}/{keys[0] if keys else 'NAME'}"
            )
        node = node[keys[0]]
    attrs = dict(node.attrs)
    axes_str = attrs.get("axes") or ("ZYX"[-node.ndim :] if node.ndim <= 3 else "Q" * node.ndim)
    sp, unit = attrs.get("spacing"), attrs.get("unit")
    if sp is not None and unit:
        sp = list(sp) if isinstance(sp, list | tuple) else [sp] * len(axes_str)
        for a, s in zip(axes_str, sp, strict=False):
            if a in "ZYX":
                cal[a] = (float(s), unit)
    return node, axes_str, cal


# ---------------------------------------------------------------------------------------------------- readers
def _squeeze_extra_axes(data, axes, name, *, lazy, rgb):
    """npy/zarr: drop length-one axes other than Z/Y/X (OME-Zarr's T and C, a leading 1 of a 4D array).

    Arrays that are already 2D/3D with only spatial axes are returned untouched (lazy ones stay lazy).
    """
    if data.ndim < 2:
        raise InputError(
            f"{name} holds a {data.ndim}D array of shape {tuple(data.shape)}; an image must be 2D (Y, X) "
            "and a volume 3D (Z, Y, X)"
        )
    if len(axes) != data.ndim:
        axes = "ZYX"[-data.ndim :] if data.ndim <= 3 else "Q" * data.ndim
    if data.ndim <= 3 and set(axes) <= set("ZYX"):
        return data, axes
    if not isinstance(data, np.ndarray):  # zarr: index lazily through dask where we can
        try:
            import dask.array as da

            data = da.from_zarr(data) if lazy else np.asarray(data[...])
        except ImportError:
            data = np.asarray(data[...])
    return _normalise_axes(data, axes, name, rgb=rgb)


def _read_any(path, *, lazy=False, rgb="error"):
    """Read a volume/image file → (array, axes, calibration {axis: (scale, unit)})."""
    path = _existing(path)
    ext = _ext(path)
    zarr_store = path.is_dir() and any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))
    if path.is_dir() and ext != ".zarr" and not zarr_store:
        raise InputError(f"{path.name} is a folder, not a file; give the path of an image or volume file")
    if ext in TIF_EXTS and not zarr_store:
        return _read_tif(path, lazy=lazy, rgb=rgb)
    if ext == ".npy" and not zarr_store:
        try:
            data = np.load(path, mmap_mode="r" if lazy else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise InputError(
                f"{path.name} is not a readable .npy array — empty or truncated? ({_one_line(e)})"
            ) from None
        axes = "ZYX"[-data.ndim :] if 2 <= data.ndim <= 3 else "Q" * data.ndim
        data, axes = _squeeze_extra_axes(data, axes, path.name, lazy=lazy, rgb=rgb)
        return data, axes, {}
    if ext == ".zarr" or zarr_store:
        arr, axes, cal = _open_zarr(path)
        data, axes = _squeeze_extra_axes(arr, axes, path.name, lazy=lazy, rgb=rgb)
        return (data if lazy else np.asarray(data[...])), axes, cal
    if ext in PLAIN_IMAGE_EXTS:
        import imageio.v3 as iio

        try:
            data = iio.imread(path)
        except Exception as e:  # imageio raises plugin-specific types
            raise InputError(f"{path.name} is not a readable image ({_one_line(e)})") from None
        axes = (
            "YX"
            if data.ndim == 2
            else ("YXS" if data.ndim == 3 and data.shape[-1] in (2, 3, 4) else "Q" * data.ndim)
        )
        data, axes = _normalise_axes(data, axes, path.name, rgb=rgb)
        return data, axes, {}
    from .microscope import MICROSCOPE_EXTS, read_microscope

    if ext in MICROSCOPE_EXTS:
        mi = read_microscope(path, pixel_size=1.0, allow_reciprocal=True, lazy=lazy, _quiet=True)
        axes = "ZYX" if mi.data.ndim == 3 else "YX"
        return mi.data, axes, {}
    raise InputError(
        f"{path.name}: unsupported file type {ext or '(none)'!r}; use .tif/.tiff, .npy, .zarr, .png, "
        "or a microscope file (.dm3/.dm4/.mrc/.ser/.emi/.emd)"
    )


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


def read_spacing(path):
    """Voxel size in nm per axis of :func:`read_volume`'s result (``None`` for unknown axes), or ``None``.

    Read from ImageJ/OME/FEI tif tags, zarr attributes (written by :func:`write_volume`, or OME-Zarr) and
    microscope calibrations.
    """
    path = _existing(path)
    from .microscope import MICROSCOPE_EXTS, read_microscope

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

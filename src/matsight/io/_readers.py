"""Pixel readers for tif (ImageJ/OME axes), npy, zarr and plain images, shared by volumes and microscope.

Every reader returns ``(array, axes, calibration)``. What a header claims is checked (:mod:`._limits`) before
any pixel is read, and third-party noise is captured while reading (:mod:`._quiet`).
"""

import logging
import re
import zlib
from pathlib import Path

import numpy as np

from .._errors import InputError
from ._limits import check_claim
from ._quiet import capture

log = logging.getLogger(__name__)

TIF_EXTS = (".tif", ".tiff")
PLAIN_IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


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


def _sem_pixel_size(sem, width):
    """Zeiss ``CZ_SEM`` pixel size → (value, unit), else None.

    SmartSEM states the pixel size of a 1024-pixel-wide frame (the unnamed structure's 4th value, in m, or
    the rounded ``ap_pixel_size``/``ap_image_pixel_size``); a frame stored ``width`` pixels wide has pixels
    1024/width times that (as rosettasciio/hyperspy read it).
    """
    factor = 1024.0 / width
    raw = sem.get("")
    if isinstance(raw, list | tuple) and len(raw) > 3 and isinstance(raw[3], int | float) and raw[3] > 0:
        return float(raw[3]) * factor, "m"
    for key in ("ap_pixel_size", "ap_image_pixel_size"):
        v = sem.get(key)
        if isinstance(v, list | tuple):  # tifffile: ("Pixel Size", 2.5, "nm")
            nums = [x for x in v if isinstance(x, int | float) and not isinstance(x, bool)]
            units = [x for x in v[1:] if isinstance(x, str)]
            if nums:
                return float(nums[0]) * factor, (units[-1] if units else "nm")
        elif isinstance(v, str):  # "Pixel Size = 2.5 nm"
            parts = v.split("=")[-1].split()
            try:
                return float(parts[0]) * factor, (parts[1] if len(parts) > 1 else "nm")
            except (IndexError, ValueError):
                continue
    return None


def _tif_calibration(tif):
    """Return {"X": (scale, unit), "Y": ..., "Z": ..., "source": "<tags read>"} from the tif's calibration.

    In order: ImageJ (XResolution/YResolution + ``unit``, ``spacing``), OME (PhysicalSizeX/Y/Z + units),
    FEI/Thermo (``FEI_HELIOS``/``FEI_SFEG`` Scan/PixelWidth, PixelHeight in m), Zeiss (``CZ_SEM``, see
    :func:`_sem_pixel_size`), DigitalMicrograph tif export (tags 65003–65010), then a resolution in pixels per
    centimetre.
    """
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
        cal["source"] = "ImageJ XResolution/YResolution, unit"
    elif tif.is_ome and tif.ome_metadata:
        cal.update(_ome_calibration(tif.ome_metadata))
        cal["source"] = "OME Pixels PhysicalSizeX/PhysicalSizeY, units"
    elif getattr(tif, "is_fei", False) and tif.fei_metadata:
        scan = tif.fei_metadata.get("Scan", {})
        tag = "FEI_HELIOS" if "FEI_HELIOS" in tags else "FEI_SFEG"
        for ax, key in (("X", "PixelWidth"), ("Y", "PixelHeight")):
            if key in scan:
                cal[ax] = (float(scan[key]), "m")
        if "X" in cal and "Y" not in cal:  # square pixels: only the width written
            cal["Y"] = cal["X"]
        cal["source"] = f"{tag} Scan/PixelWidth, PixelHeight (m)"
    elif (
        getattr(tif, "is_sem", False)
        and tif.sem_metadata
        and _sem_pixel_size(tif.sem_metadata, page.shape[-1])
    ):
        cal["X"] = cal["Y"] = _sem_pixel_size(tif.sem_metadata, page.shape[-1])
        cal["source"] = "CZ_SEM pixel size (of a 1024-px frame, × 1024/width)"
    elif 65009 in tags and 65003 in tags:  # DigitalMicrograph's private tags: x/y units, x/y scales
        cal["X"] = (float(tags[65009].value), str(tags[65003].value))
        if 65010 in tags:
            cal["Y"] = (float(tags[65010].value), str(tags.get(65004, tags[65003]).value))
        cal["source"] = "DigitalMicrograph tags 65009/65010 (scale), 65003/65004 (units)"
    elif ru == 3:  # centimetre: an explicit physical unit (inch resolutions are screen dpi, not calibration)
        sx, sy = resolution("XResolution"), resolution("YResolution")
        if sx and sy:
            cal["X"], cal["Y"] = (sx, "cm"), (sy, "cm")
            cal["source"] = "TIFF XResolution/YResolution (ResolutionUnit cm)"
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


def _uncompressed(series):
    # an uncompressed tif stores every pixel: the data cannot be larger than the file
    return all(int(getattr(s.keyframe, "compression", 1)) == 1 for s in series)


def _read_tif(path, *, lazy, rgb):
    import tifffile

    if path.is_dir():
        raise InputError(f"{path.name} is a folder, not a tif file; give the path of the .tif inside it")
    stored = path.stat().st_size
    try:
        with capture() as noise, tifffile.TiffFile(path) as tif:
            if not tif.series:
                noise.raise_if_damaged(path.name)
                raise InputError(f"{path.name} holds no image data; check the file")
            pages = _same_shape_pages(tif)
            if pages is not None:
                # a stack saved one page at a time (each its own series): the pages are the Z slices
                log.info("%s: reading its %d single-page series as a stack of slices", path.name, len(pages))
                shape, dtype = (len(pages), *pages[0].shape), pages[0].dtype
                check_claim(path, shape, dtype, stored=stored if _uncompressed(pages) else None)
                noise.raise_if_damaged(path.name)
                check_claim(path, shape, dtype, eager=True)
                cal = _tif_calibration(tif)
                data = np.stack([s.asarray() for s in pages])
                shape, axes = data.shape, "ZYX"
            else:
                series = tif.series[0]
                shape, axes = tuple(series.shape), series.axes
                check_claim(path, shape, series.dtype, stored=stored if _uncompressed([series]) else None)
                noise.raise_if_damaged(path.name)
                if len(tif.series) > 1:
                    log.warning(
                        "%s has %d image series of different shapes; reading the first, %s",
                        path.name,
                        len(tif.series),
                        tuple(tif.series[0].shape),
                    )
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
                    check_claim(path, shape, series.dtype, eager=True)
                    data = series.asarray()
            noise.raise_if_damaged(path.name)
    except InputError:
        raise
    except (tifffile.TiffFileError, OSError, ValueError, EOFError, zlib.error) as e:
        raise InputError(
            f"{path.name} is not a readable tif — truncated or corrupt? ({type(e).__name__}: {_one_line(e)})"
        ) from None
    data = data.reshape(shape) if data.shape != shape else data
    data, axes = _normalise_axes(data, axes, path.name, rgb=rgb)
    return data, axes, cal


# ---------------------------------------------------------------------------------------------------- npy
def _npy_header(path):
    """(shape, dtype, offset of the data) from a .npy header, without reading the data."""
    fmt = np.lib.format
    with open(path, "rb") as f:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:  # 3.0 (utf-8 field names) has no public reader
            shape, _, dtype = fmt._read_array_header(f, version)
        return shape, np.dtype(dtype), f.tell()


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
                        cal["source"] = "OME-Zarr multiscales coordinateTransformations scale, axes unit"
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
                cal["source"] = "zarr attributes spacing, unit"
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


def read_array(path, *, lazy=False, rgb="error"):
    """Read a tif, npy, zarr or plain image → (array, axes, calibration {axis: (scale, unit)}).

    ``rgb`` as in :func:`_normalise_axes`; microscope files are read by :mod:`.microscope`. What the header
    claims is checked first (:func:`._limits.check_claim`); third-party messages are captured meanwhile.
    """
    with capture() as noise:
        data, axes, cal = _read_array(path, lazy=lazy, rgb=rgb)
        noise.raise_if_damaged(Path(path).name)
    return data, axes, cal


def _read_array(path, *, lazy, rgb):
    path = _existing(path)
    ext = _ext(path)
    zarr_store = path.is_dir() and any((path / f).exists() for f in ("zarr.json", ".zarray", ".zgroup"))
    if path.is_dir() and ext != ".zarr" and not zarr_store:
        raise InputError(f"{path.name} is a folder, not a file; give the path of an image or volume file")
    if ext in TIF_EXTS and not zarr_store:
        return _read_tif(path, lazy=lazy, rgb=rgb)
    if ext == ".npy" and not zarr_store:
        try:
            shape, dtype, offset = _npy_header(path)
            if not dtype.hasobject:  # object arrays are refused below (allow_pickle=False)
                check_claim(path, shape, dtype, stored=path.stat().st_size - offset, eager=not lazy)
            data = np.load(path, mmap_mode="r" if lazy else None, allow_pickle=False)
        except InputError:
            raise
        except (ValueError, OSError, EOFError, SyntaxError) as e:
            raise InputError(
                f"{path.name} is not a readable .npy array — empty or truncated? ({_one_line(e)})"
            ) from None
        axes = "ZYX"[-data.ndim :] if 2 <= data.ndim <= 3 else "Q" * data.ndim
        data, axes = _squeeze_extra_axes(data, axes, path.name, lazy=lazy, rgb=rgb)
        return data, axes, {}
    if ext == ".zarr" or zarr_store:
        arr, axes, cal = _open_zarr(path)
        # compressed chunks, and missing ones read as the fill value: only memory bounds an eager read
        check_claim(path, arr.shape, arr.dtype, eager=not lazy)
        data, axes = _squeeze_extra_axes(arr, axes, path.name, lazy=lazy, rgb=rgb)
        return (data if lazy else np.asarray(data[...])), axes, cal
    if ext in PLAIN_IMAGE_EXTS:
        import imageio.v3 as iio

        try:
            props = iio.improps(path)
        except Exception:  # imread below says what is wrong
            props = None
        if props is not None and props.dtype is not None:
            check_claim(path, props.shape, props.dtype, eager=True)
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
    raise InputError(
        f"{path.name}: unsupported file type {ext or '(none)'!r}; use .tif/.tiff, .npy, .zarr, .png, "
        "or a microscope file (.dm3/.dm4/.mrc/.ser/.emi/.emd)"
    )

"""Microscope images with their calibration: dm3/dm4, mrc, ser/emi, emd (via rosettasciio), tif/png.

A calibration is either read correctly (converted to nm per axis, each axis on its own: DigitalMicrograph
files can have Å on one axis and nm on the other) or reported: a scale of −1 nm, a missing unit, or "1 pixel"
is never used as a pixel size. Diffraction patterns (axes in 1/nm) are refused where a real-space image is
needed.
"""

import dataclasses
import importlib
import logging
import math
from pathlib import Path

import numpy as np

from .._errors import InputError
from ._limits import check_claim
from ._quiet import capture
from ._readers import PLAIN_IMAGE_EXTS, TIF_EXTS, _existing, _ext, _natural_key, _one_line, read_array
from .units import length_calibration, to_seconds, valid_scale

log = logging.getLogger(__name__)

__all__ = ["MicroscopeImage", "read_microscope", "iter_frames", "MICROSCOPE_EXTS"]

MICROSCOPE_EXTS = {
    ".dm3": "digitalmicrograph",
    ".dm4": "digitalmicrograph",
    ".mrc": "mrc",
    ".mrcs": "mrc",
    ".ser": "tia",
    ".emi": "tia",
    ".emd": "emd",
    ".hspy": "hspy",  # HyperSpy's HDF5 (atomap and hyperspy example data)
}
_FRAME_EXTS = tuple(MICROSCOPE_EXTS) + TIF_EXTS + PLAIN_IMAGE_EXTS + (".npy",)


@dataclasses.dataclass
class MicroscopeImage:
    """An image (or a stack of frames, frames first) with its calibration.

    Attributes
    ----------
    data : ndarray
        ``(Y, X)`` image or ``(T, Y, X)`` stack (a dask array when read with ``lazy=True`` from rosettasciio).
    pixel_size_nm : tuple of float
        Pixel size in nm for each spatial axis: ``(py, px)``, or ``(pz, py, px)`` when the stack axis is
        itself calibrated in length units. ``pixel_size_nm[-2:]`` is always the in-plane size. For a
        reciprocal-space image read with ``allow_reciprocal=True`` the values are in nm⁻¹ per pixel.
    units : tuple of str
        The file's original unit strings, one per axis of ``data`` ("" where none).
    metadata : dict
        ``source``, ``format``, ``signal_index``, ``n_signals``, ``title``, ``axes`` (the file's axis scales),
        ``pixel_size_source`` ("file", "user" or "calibration"), ``calibration_source`` (where the pixel size
        came from, in words: "file: <tag path>", "--pixel-size", "calibration file <path>"), plus the
        reader's ``metadata`` and ``original_metadata``.
    axes : tuple of str
        Axis names, one per axis of ``data`` (e.g. ``("t", "y", "x")``).
    frame_times : ndarray or None
        Time of each frame in seconds, when the file says.
    reciprocal : bool
        True for diffraction/FFT-space data (only with ``allow_reciprocal=True``).

    Unpacks as ``data, pixel_size_nm, metadata = image`` and converts with ``numpy.asarray(image)``.
    """

    data: object
    pixel_size_nm: tuple
    units: tuple = ()
    metadata: dict = dataclasses.field(default_factory=dict)
    axes: tuple = ()
    frame_times: object = None
    reciprocal: bool = False

    @property
    def calibration_source(self):
        """Where the pixel size came from: "file: <tag path>", "--pixel-size" or "calibration file <path>"."""
        return self.metadata.get("calibration_source", "")

    @property
    def is_stack(self):
        """True when ``data`` is a stack of 2D frames (frames first)."""
        return self.data.ndim == 3

    @property
    def n_frames(self):
        """Number of 2D frames (1 for a single image)."""
        return self.data.shape[0] if self.data.ndim == 3 else 1

    def __iter__(self):
        yield self.data
        yield self.pixel_size_nm
        yield self.metadata

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.data, dtype=dtype)

    def __repr__(self):
        ps = ", ".join(f"{p:.4g}" for p in self.pixel_size_nm)
        unit = "nm⁻¹" if self.reciprocal else "nm"
        src = Path(self.metadata.get("source", "?")).name
        return f"MicroscopeImage({src}, shape={tuple(self.data.shape)}, pixel_size=({ps}) {unit})"


# ---------------------------------------------------------------------------------------------------- readers
def _import_rsciio(fmt, ext):
    try:
        return importlib.import_module(f"rsciio.{fmt}")
    except ImportError as e:
        raise InputError(
            f"reading {ext} files needs rosettasciio ({e.name or e} is missing); pip install 'matsight[tem]'"
        ) from None


def _mrcfile_signal(path, lazy):
    """The mrc header's calibration in rosettasciio's signal-dict layout (fallback reader)."""
    try:
        import mrcfile
    except ImportError:
        raise InputError(
            "reading .mrc files needs mrcfile or rosettasciio; pip install 'matsight[tem]'"
        ) from None
    import warnings

    with warnings.catch_warnings():
        # mrcfile warns on the many files with a sloppy header
        warnings.simplefilter("ignore", RuntimeWarning)
        m = (
            mrcfile.mmap(path, mode="r", permissive=True)
            if lazy
            else mrcfile.open(path, mode="r", permissive=True)
        )
    if m.data is None:
        m.close()
        raise InputError(f"{path.name} holds no image data; check the file")
    data = m.data if lazy else np.array(m.data)
    vs = m.voxel_size  # Å
    names = ("z", "y", "x")[-data.ndim :]
    scales = {"x": float(vs.x) / 10, "y": float(vs.y) / 10, "z": float(vs.z) / 10}
    axes = [
        {
            "name": n,
            "size": s,
            "scale": scales[n] if n != "z" else 1.0,
            "offset": 0.0,
            "units": "nm" if n != "z" else None,
            "navigate": n == "z",
        }  # fmt: skip
        for n, s in zip(names, data.shape, strict=True)
    ]
    header = {k: m.header[k].tolist() for k in m.header.dtype.names if k not in ("label", "map")}
    if not lazy:
        m.close()
    return [{"data": data, "axes": axes, "metadata": {}, "original_metadata": {"header": header}}]


# MRC data modes: (type named in messages, bytes per voxel)
_MRC_MODES = {
    0: ("uint8", 1),
    1: ("int16", 2),
    2: ("float32", 4),
    3: ("complex int16", 4),
    4: ("complex64", 8),
    6: ("uint16", 2),
    12: ("float16", 2),
    101: ("uint4", 0.5),
}


def _check_mrc_header(path, *, eager):
    """Check the 1024-byte MRC header's claim (nx, ny, nz, mode, nsymbt) before a reader trusts it.

    Returns the byte order, "<" or ">".
    """
    import struct

    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(1024)
    if len(head) < 1024:
        raise InputError(
            f"{path.name} holds {size} bytes, less than the 1024-byte MRC header; "
            "the file is damaged or truncated, or not an MRC file"
        )
    # machine stamp: 0x11 big-endian, 0x44 little; old files leave it empty, so a sane mode decides
    orders = (">", "<") if head[212] == 0x11 else ("<", ">")
    for order in orders:
        nx, ny, nz, mode = struct.unpack(order + "4i", head[:16])
        if mode in _MRC_MODES and min(nx, ny, nz) > 0:
            break
    else:
        raise InputError(
            f"{path.name} has an impossible MRC header (size {nx}×{ny}×{nz}, data mode {mode}); "
            "the file is damaged or not an MRC file"
        )
    (nsymbt,) = struct.unpack(order + "i", head[92:96])
    name, per_voxel = _MRC_MODES[mode]
    shape = (nz, ny, nx) if nz > 1 else (ny, nx)
    nbytes = math.ceil(nx * per_voxel) * ny * nz
    header = 1024 + max(nsymbt, 0)
    check_claim(path, shape, name, stored=size - header, eager=eager, nbytes=nbytes, header=header)
    return order


def _check_signals(path, fmt, sigs):
    """Refuse signals that claim more pixels than the file holds (formats that store them uncompressed)."""
    if fmt not in ("digitalmicrograph", "tia", "mrc") or path.suffix.lower() == ".emi":
        return  # emd (HDF5) may compress; .emi's pixels live in its .ser files
    stored = path.stat().st_size
    for sig in sigs:
        data = sig.get("data")
        if hasattr(data, "shape") and hasattr(data, "dtype"):
            check_claim(path, data.shape, data.dtype, stored=stored)


def _file_signals(path, fmt, *, lazy):
    """List of rosettasciio-style signal dicts for a microscope file.

    The pixels stay unread (dask arrays, memory maps) so that what the file claims can be checked first;
    :func:`_signal_to_image` loads the one signal chosen.
    """
    ext = path.suffix.lower()
    if fmt == "mrc":
        # rosettasciio would chunk whatever size the header claims (minutes for a lying one): check it first
        big_endian = _check_mrc_header(path, eager=not lazy) == ">"
        try:
            # rosettasciio reads big-endian pixels in native order: mrcfile reads them right
            reader = None if big_endian else importlib.import_module("rsciio.mrc")
        except ImportError:
            reader = None
        if reader is None:
            return _mrcfile_signal(path, lazy)
    else:
        reader = _import_rsciio(fmt, ext)
    try:
        sigs = reader.file_reader(str(path), lazy=True)
    except InputError:
        raise
    except Exception as e:  # corrupt or foreign files make the readers fail in many ways
        if fmt == "mrc":
            log.info("rosettasciio could not read %s (%s); trying mrcfile", path.name, e)
            try:
                return _mrcfile_signal(path, lazy)
            except Exception:
                pass
        raise InputError(
            f"{path.name} could not be read as a {ext} file — damaged or truncated? "
            f"({type(e).__name__}: {_one_line(e)})"
        ) from None
    _check_signals(path, fmt, sigs)
    return sigs


def _image_signal(path, lazy):
    """tif/png/npy as a signal dict, with calibration from tif tags / zarr attributes when present."""
    data, axes, cal = read_array(path, lazy=lazy, rgb="gray")
    out = []
    for a, n in zip(axes, data.shape, strict=True):
        scale, unit = cal.get(a, (1.0, ""))
        out.append(
            {
                "name": a.lower(),
                "size": n,
                "scale": scale,
                "offset": 0.0,
                "units": unit,
                "navigate": a not in "YX",
            }
        )
    tag = cal.get("source")
    return [{"data": data, "axes": out, "metadata": {}, "original_metadata": {}, "calibration_tag": tag}]


def _axes_of(sig):
    axes = list(sig.get("axes", []))
    if axes and all(a.get("index_in_array") is not None for a in axes):
        axes.sort(key=lambda a: a["index_in_array"])
    return axes


def _n_signal_dims(sig):
    return sum(not a.get("navigate", False) for a in _axes_of(sig))


def _title(sig):
    return str(sig.get("metadata", {}).get("General", {}).get("title", "") or "")


def _describe(sigs):
    return ", ".join(
        f"{i}: {_title(s) or 'untitled'} {'×'.join(str(n) for n in s['data'].shape)} "
        f"({_n_signal_dims(s)}D signal)"
        for i, s in enumerate(sigs)
    )


def _choose_signal(sigs, name, signal, quiet):
    if not sigs:
        raise InputError(f"{name} holds no data; check the file")
    if signal is not None:
        if not -len(sigs) <= int(signal) < len(sigs):
            raise InputError(
                f"{name} has {len(sigs)} signal(s) ({_describe(sigs)}); signal={signal} is out of range"
            )
        idx = int(signal) % len(sigs)
    else:
        images = [i for i, s in enumerate(sigs) if _n_signal_dims(s) == 2]
        if not images:
            raise InputError(f"{name} holds no 2D image (signals: {_describe(sigs)}); give an image file")
        idx = images[0]
    if len(sigs) > 1 and not quiet:
        log.info(
            "%s has %d signals (%s); using signal %d (pass signal=N to choose)",
            name,
            len(sigs),
            _describe(sigs),
            idx,
        )
    return idx


def _pixel_size_arg(pixel_size):
    ps = np.atleast_1d(np.asarray(pixel_size, dtype=float)).ravel().tolist()
    if len(ps) == 1:
        ps = ps * 2
    if len(ps) != 2 or not all(valid_scale(p) for p in ps):
        raise InputError(f"pixel size {pixel_size!r} must be one positive number in nm (or two: y, x)")
    return tuple(float(p) for p in ps)


def _calibration(ax):
    """(nm or nm⁻¹ per pixel, reciprocal) for a valid length calibration, else None."""
    return length_calibration(ax.get("scale"), ax.get("units"))


def _velox_pixel_size(sig):
    """A Velox .emd's own pixel size (BinaryResult/PixelSize, PixelUnitX/Y) as [y, x] axis dicts, or None."""
    br = (sig.get("original_metadata") or {}).get("BinaryResult") or {}
    size = br.get("PixelSize") or {}
    try:
        y = {"scale": float(size["height"]), "units": br.get("PixelUnitY", "m")}
        x = {"scale": float(size["width"]), "units": br.get("PixelUnitX", "m")}
    except (KeyError, TypeError, ValueError):
        return None
    return [y, x]


def _tag_path(fmt, path, sig):
    """Where a reader found the pixel size, in the file's own terms ("file: <tag path>")."""
    om = sig.get("original_metadata") or {}
    ext = path.suffix.lower()
    if fmt == "digitalmicrograph":
        tag = "ImageList/ImageData/Calibrations/Dimension/{0,1}/Scale,Units"
    elif fmt == "mrc":
        tag = (
            "FEI extended header pixel_size (m)"
            if "fei_header" in om
            else "MRC header Xlen/MX, Ylen/MY (Å)"
            if "std_header" in om
            else "MRC header voxel_size (Å)"
        )
    elif fmt == "tia":
        tag = "TIA .ser header CalibrationDeltaX/CalibrationDeltaY"
    elif fmt == "emd":
        tag = (
            "Velox BinaryResult/PixelSize, PixelUnitX/PixelUnitY"
            if "BinaryResult" in om
            else "EMD dim1/dim2 datasets (units attributes)"
        )
    else:
        tag = sig.get("calibration_tag") or "tif tags"
    return f"file: {tag} ({path.name})" if ext else f"file: {tag}"


def _image_axes(sig, data, name, idx, n):
    """``(data, axes)`` with the two image axes last, or an InputError when the signal is not one 2D image."""
    axes = _axes_of(sig)
    if len(axes) != data.ndim:
        axes = [{"name": f"dim{i}", "size": s, "scale": 1.0, "units": "", "navigate": i < data.ndim - 2}
                for i, s in enumerate(data.shape)]  # fmt: skip
    sig_pos = [i for i, a in enumerate(axes) if not a.get("navigate", False)]
    if len(sig_pos) == 0 and data.ndim >= 2:
        sig_pos = [data.ndim - 2, data.ndim - 1]
    if len(sig_pos) != 2:
        what = f"a {len(sig_pos)}D signal" if len(sig_pos) else "no image"
        raise InputError(
            f"signal {idx} of {name} ({_title(sig) or 'untitled'}, shape {tuple(data.shape)}) is {what}, "
            "not a 2D image; "
            f"choose an image with signal=N ({_describe([sig]) if n == 1 else 'see the file'})"
        )
    if sig_pos != [data.ndim - 2, data.ndim - 1]:  # image axes last
        order = [i for i in range(data.ndim) if i not in sig_pos] + sig_pos
        data = data.transpose(order)
        axes = [axes[i] for i in order]
    return data, axes


def _image_calibration(sig, fmt, img, name, allow_reciprocal):
    """``(per-axis (nm, reciprocal) or None, reciprocal)`` of the image axes; Velox's own tag as fallback."""
    cal = [_calibration(a) for a in img]
    velox = _velox_pixel_size(sig) if fmt == "emd" and None in cal else None
    if velox is not None:  # the axes lost the calibration the file has in its own tag
        cal = [c if c is not None else _calibration(v) for c, v in zip(cal, velox, strict=True)]
    recips = [a.get("units") for a, c in zip(img, cal, strict=True) if c and c[1]]
    if recips and not allow_reciprocal:
        raise InputError(
            f"{name} is a diffraction pattern (axes in {recips[0]}), not a real-space image; "
            "give an HRTEM image"
        )
    return cal, bool(recips)


def _chosen_pixel_size(
    cal, img, name, fmt, path, sig, *, pixel_size, pixel_size_source, calibration_file, quiet
):
    """``(pixel size (y, x) nm, source kind, source text, the file's own or None)``: the argument wins."""
    file_ps = tuple(c[0] for c in cal) if all(c is not None for c in cal) else None
    if pixel_size is None:
        if file_ps is None:
            bad = next(a for a, c in zip(img, cal, strict=True) if c is None)
            raise InputError(
                f"{name} has no valid pixel size "
                f"(scale {bad.get('scale')} {bad.get('units') or 'without unit'}); "
                "pass --pixel-size VALUE_IN_NM or --calibration cal.json (pixel_size= in Python)"
            )
        return file_ps, "file", _tag_path(fmt, path, sig), file_ps
    ps, source = _pixel_size_arg(pixel_size), ("calibration" if calibration_file else "user")
    described = f"calibration file {calibration_file}" if calibration_file else pixel_size_source
    if file_ps is not None and not quiet and not np.allclose(ps, file_ps, rtol=1e-3):
        log.warning(
            "%s: using the given pixel size %s nm instead of the file's calibration %s nm", name,
            tuple(round(p, 6) for p in ps), tuple(round(p, 6) for p in file_ps),
        )  # fmt: skip
    return ps, source, described, file_ps


def _stack_axis(data, nav, name, reciprocal):
    """``(data, nav, z spacing nm or None, frame times s or None)`` of the axes before the image's."""
    frame_times = None
    z_nm = None
    if len(nav) > 1:  # e.g. a scan of frames: flatten all navigation axes into one frame axis
        log.info("%s: flattening navigation axes %s into frames", name, tuple(a.get("name") for a in nav))
        data = data.reshape((-1,) + tuple(data.shape[-2:]))
    elif len(nav) == 1:
        a = nav[0]
        c = _calibration(a)
        if c is not None and not c[1] and not reciprocal:
            z_nm = c[0]  # a calibrated spatial stack axis (e.g. a 3D DM image)
        elif valid_scale(a.get("scale")):
            t = to_seconds(
                float(a.get("offset") or 0.0) + float(a["scale"]) * np.arange(data.shape[0]), a.get("units")
            )
            frame_times = None if t is None else np.asarray(t)
    if data.ndim == 3 and data.shape[0] == 1 and z_nm is None:
        data = data[0]
        nav = []
    return data, nav, z_nm, frame_times


def _load_pixels(data, path, name):
    """The pixels in memory (checked against the memory available first); a damaged file is an InputError."""
    if not isinstance(data, np.ndarray) or isinstance(data, np.memmap):
        check_claim(path, data.shape, data.dtype, eager=True)  # a dask array or memory map: loaded now
    try:
        return np.array(data) if isinstance(data, np.memmap) else np.asarray(data)
    except (MemoryError, InputError):
        raise
    except Exception as e:  # the pixels are read only now: a damaged file fails here
        raise InputError(
            f"{name} could not be read — damaged or truncated? ({type(e).__name__}: {_one_line(e)})"
        ) from None


def _axis_names_units(data, nav, img, z_nm, frame_times):
    names = ()
    if data.ndim == 3:  # a stack axis keeps its file name only when it is calibrated (space or time)
        keep = len(nav) == 1 and (z_nm is not None or frame_times is not None)
        names = (str(nav[0].get("name") or "frame"),) if keep else ("frame",)
    axes_names = names + tuple(str(a.get("name") or d) for a, d in zip(img, "yx", strict=True))
    units = tuple(str(a.get("units") or "") for a in nav if data.ndim == 3 and len(nav) == 1)
    if data.ndim == 3 and not units:
        units = ("",)
    units += tuple(str(a.get("units") or "") for a in img)
    return axes_names, units


def _signal_to_image(
    sig, path, fmt, idx, n, *, pixel_size, allow_reciprocal, lazy, quiet,
    pixel_size_source="pixel_size=", calibration_file=None,
):  # fmt: skip
    name = path.name
    data, axes = _image_axes(sig, sig["data"], name, idx, n)
    nav, img = axes[:-2], axes[-2:]
    cal, reciprocal = _image_calibration(sig, fmt, img, name, allow_reciprocal)
    ps, source, described, file_ps = _chosen_pixel_size(
        cal, img, name, fmt, path, sig, pixel_size=pixel_size, pixel_size_source=pixel_size_source,
        calibration_file=calibration_file, quiet=quiet,
    )  # fmt: skip
    data, nav, z_nm, frame_times = _stack_axis(data, nav, name, reciprocal)
    if not lazy:
        data = _load_pixels(data, path, name)
    axes_names, units = _axis_names_units(data, nav, img, z_nm, frame_times)
    meta = {
        "source": str(path),
        "format": fmt,
        "signal_index": idx,
        "n_signals": n,
        "title": _title(sig),
        "pixel_size_source": source,
        "calibration_source": described,
        "axes": [
            {k: (v.item() if isinstance(v, np.generic) else v) for k, v in a.items() if k != "index_in_array"}
            for a in axes
        ],
        "metadata": sig.get("metadata", {}),
        "original_metadata": sig.get("original_metadata", {}),
    }
    if source == "user" and file_ps is not None:
        meta["file_pixel_size_nm"] = file_ps
    ps_all = ((z_nm,) if z_nm is not None else ()) + tuple(float(p) for p in ps)
    return MicroscopeImage(data, ps_all, units, meta, axes_names, frame_times, reciprocal)


def read_microscope(
    path, *, pixel_size=None, signal=None, allow_reciprocal=False, lazy=False, calibration=None,
    pixel_size_source="pixel_size=", _quiet=False,
):  # fmt: skip
    """Read a microscope image or stack with its pixel size in nm.

    Parameters
    ----------
    path : str or Path
        .dm3/.dm4, .mrc, .ser or .emi (TIA), .emd (Velox/Berkeley), or .tif/.png/.npy (calibration from
        ImageJ, OME or FEI tif tags when present).
    pixel_size : float or (float, float), optional
        Pixel size in nm (y, x); overrides the file's calibration (a warning is logged when they differ).
        Required when the file has no valid calibration.
    signal : int, optional
        Which signal of a multi-signal file (default: the first 2D image; the choice is logged).
    allow_reciprocal : bool
        Accept diffraction patterns / FFTs (axes in 1/length); ``pixel_size_nm`` is then in nm⁻¹.
    lazy : bool
        Don't load the pixel data (dask array or memory map).
    calibration : str, Path or Calibration, optional
        A calibration file (:mod:`matsight.io.calibration`) whose pixel size overrides the file's; not
        together with ``pixel_size``.
    pixel_size_source : str
        How ``pixel_size`` is named in ``metadata["calibration_source"]`` (the CLI passes "--pixel-size").

    Returns
    -------
    MicroscopeImage
        Single images are ``(Y, X)``; stacks and movies are ``(T, Y, X)``, frames first.

    Raises
    ------
    InputError
        Missing file, unknown format, reader not installed (``pip install 'matsight[tem]'``), a diffraction
        pattern, no 2D image in the file, or no valid calibration and no ``pixel_size``.
    """
    path = _existing(path)
    cal_file, cal_meta = None, None
    if calibration is not None:
        from .calibration import Calibration, read_calibration

        if pixel_size is not None:
            raise InputError("give either a pixel size or a calibration file, not both; drop one of them")
        cal = read_calibration(calibration)
        cal_file = "(in memory)" if isinstance(calibration, Calibration) else str(calibration)
        pixel_size, cal_meta = cal.pixel_size_nm, dict(cal.model_dump(), file=cal_file)
        if cal.shear and not _quiet:
            log.warning("%s: the calibration's shear %g is recorded but not corrected", path.name, cal.shear)
    with capture() as noise:
        ext = _ext(path)
        if ext in MICROSCOPE_EXTS:
            fmt = MICROSCOPE_EXTS[ext]
            sigs = _file_signals(path, fmt, lazy=lazy)
        elif ext in TIF_EXTS + PLAIN_IMAGE_EXTS + (".npy", ".zarr") or path.is_dir():
            fmt = ext.lstrip(".") or "zarr"
            sigs = _image_signal(path, lazy)
        else:
            raise InputError(
                f"{path.name}: unsupported file type {ext or '(none)'!r}; use .dm3/.dm4/.mrc/.ser/.emi/.emd, "
                ".tif/.tiff or .png"
            )
        idx = _choose_signal(sigs, path.name, signal, _quiet)
        image = _signal_to_image(
            sigs[idx], path, fmt, idx, len(sigs),
            pixel_size=pixel_size, allow_reciprocal=allow_reciprocal, lazy=lazy, quiet=_quiet,
            pixel_size_source=pixel_size_source, calibration_file=cal_file,
        )  # fmt: skip
        noise.raise_if_damaged(path.name)
    if cal_meta is not None:
        image.metadata["calibration"] = cal_meta
    return image


# ---------------------------------------------------------------------------------------------------- frames
def _frame_files(folder):
    files = [
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and _ext(p) in _FRAME_EXTS
    ]
    emis = {p.stem for p in files if _ext(p) == ".emi"}
    # a TIA .emi reads its _N.ser files itself: don't yield their frames twice
    files = [p for p in files if not (_ext(p) == ".ser" and p.stem.rsplit("_", 1)[0] in emis)]
    return sorted(files, key=lambda p: _natural_key(p.name))


def iter_frames(
    source, *, pixel_size=None, signal=None, allow_reciprocal=False, calibration=None,
    pixel_size_source="pixel_size=",
):  # fmt: skip
    """Yield the 2D frames of a stack file, a movie, a tif stack or a folder of images
    (natural sort order).

    Frames are read one at a time where the format allows (memory-mapped mrc/npy/uncompressed tif, lazy
    readers).

    Parameters
    ----------
    source : str or Path
        A file (single image or stack) or a folder of image files.
    pixel_size, signal, allow_reciprocal, calibration, pixel_size_source
        As in :func:`read_microscope`, applied to every file.

    Yields
    ------
    MicroscopeImage
        One 2D frame each (unpack as ``frame, pixel_size_nm, metadata``); ``metadata`` adds ``frame_index``
        (within its file), ``file`` and ``time_s`` when known.
    """
    source = _existing(source)
    if source.is_dir() and _ext(source) != ".zarr":
        files = _frame_files(source)
        if not files:
            raise InputError(f"{source} holds no image files ({', '.join(_FRAME_EXTS)}); check the folder")
    else:
        files = [source]
    for f in files:
        mi = read_microscope(
            f, pixel_size=pixel_size, signal=signal, allow_reciprocal=allow_reciprocal, lazy=True,
            calibration=calibration, pixel_size_source=pixel_size_source,
        )  # fmt: skip
        ps = tuple(mi.pixel_size_nm[-2:])
        units, axes = tuple(mi.units[-2:]), tuple(mi.axes[-2:])
        if mi.data.ndim == 2:
            meta = dict(mi.metadata, frame_index=0, file=str(f))
            yield MicroscopeImage(np.asarray(mi.data), ps, units, meta, axes, None, mi.reciprocal)
            continue
        for i in range(mi.data.shape[0]):
            meta = dict(mi.metadata, frame_index=i, file=str(f))
            if mi.frame_times is not None:
                meta["time_s"] = float(mi.frame_times[i])
            yield MicroscopeImage(np.array(mi.data[i]), ps, units, meta, axes, None, mi.reciprocal)

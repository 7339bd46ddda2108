"""Reading HRTEM frames and movies from microscope files (through :func:`matsight.io.read_microscope`).

:func:`read_frame` reads one 2D frame and its pixel size (nm); :func:`read_series` reads a movie, a stack or a
folder of frames (with the frames' times when the file has them). Both refuse, with one
:class:`~matsight.InputError` naming the fix, what is not an HRTEM image: unsupported suffixes, 1D signals,
colour images, stacks without a frame, frames of different pixel sizes.
"""

from pathlib import Path

import numpy as np

from .. import io as _io
from .._errors import InputError
from ..io.microscope import MICROSCOPE_EXTS
from ..io.volumes import PLAIN_IMAGE_EXTS, TIF_EXTS, _ext
from . import fft as _fft

__all__ = ["SUFFIXES", "calibration_line", "check_suffix", "frame_suffixes", "read_frame", "read_series"]


def frame_suffixes():
    """File suffixes that hold HRTEM frames: what :func:`matsight.io.read_microscope` reads.

    Built from the reader's own lists, so the tem commands and their messages never disagree with it.
    """
    return (*MICROSCOPE_EXTS, *TIF_EXTS, ".npy", *PLAIN_IMAGE_EXTS)


def check_suffix(path):
    """Refuse a file whose suffix no frame reader handles, listing those that are read."""
    path = Path(path)
    if path.is_file() and _ext(path) not in frame_suffixes():
        raise InputError(
            f"{path.name}: unsupported file type {_ext(path) or '(none)'!r}; HRTEM frames are read from "
            + ", ".join(frame_suffixes())
        )


SUFFIXES = frame_suffixes()  # the same files `tem analyze` reads (single-frame PNG/JPEG included)


def calibration_line(pixel_size_nm, source):
    """One line for people: "calibration: 0.01225 nm/px (x), 0.01225 (y) from file tag …".

    ``pixel_size_nm`` is ``(py, px)``; ``source`` as :attr:`matsight.io.MicroscopeImage.calibration_source`
    ("file: <tag path>", "--pixel-size", "calibration file <path>").
    """
    py, px = (float(p) for p in tuple(pixel_size_nm)[-2:])
    src = str(source or "unknown")
    words = "file tag " + src[len("file: ") :] if src.startswith("file: ") else src
    return f"calibration: {px:.5g} nm/px (x), {py:.5g} (y) from {words}"


def read_frame(
    path,
    *,
    pixel_size=None,
    frame=None,
    calibration=None,
    pixel_size_source="pixel_size=",
    return_source=False,
):
    """Read one 2D frame and its pixel size (nm) through :func:`matsight.io.read_microscope`.

    ``calibration`` is a calibration file (:mod:`matsight.io.calibration`) used instead of the file's pixel
    size; ``pixel_size_source`` names ``pixel_size`` in the recorded source (the CLI: "--pixel-size"). With
    ``return_source``, a third value says where the pixel size came from ("file: <tag path>", ...).

    Raises :class:`InputError` for unsupported files, diffraction patterns, 1D signals, missing calibration
    (``pixel_size``), stacks without ``frame`` and a ``frame`` the file does not have.
    """
    check_suffix(path)
    mi = _io.read_microscope(
        path, pixel_size=pixel_size, calibration=calibration, pixel_size_source=pixel_size_source
    )
    data = np.asarray(mi.data)
    name = Path(path).name
    if data.ndim == 1:
        raise InputError(
            f"{path} holds a 1D signal of {data.size} samples, not an image; pass an HRTEM image"
        )
    if data.ndim == 3 and data.shape[-1] in (3, 4) and min(data.shape[:2]) > 4:
        # (y, x, 3|4) from an .npy is a colour image, not thousands of 3-pixel-wide frames
        raise InputError(
            f"{name} has shape {data.shape}, a colour image (channels last); save it as one grey (y, x) "
            "image (e.g. the mean over the last axis), or a stack as (frames, y, x)"
        )
    if data.ndim == 3:
        n = data.shape[0]
        if frame is None:
            if n != 1:
                raise InputError(
                    f"{name} is a stack of {n} frames; pick one with --frame N (0 to {n - 1}) "
                    "or analyse all with `matsight tem series`"
                )
            frame = 0
        if not -n <= frame < n:
            raise InputError(f"--frame {frame} is out of range: {name} has {n} frames (0 to {n - 1})")
        data = data[frame]
    elif frame is not None and frame not in (0, -1):
        raise InputError(
            f"--frame {frame} is out of range: {name} is a single image (one frame); drop --frame"
        )
    ps = _fft.check_pixel_size(tuple(mi.pixel_size_nm)[-2:])
    if return_source:
        return data, ps, mi.calibration_source
    return data, ps


def read_series(
    path, *, pixel_size=None, return_times=False, calibration=None, pixel_size_source="pixel_size=",
    return_source=False,
):  # fmt: skip
    """Frames, pixel size (nm) and frame labels from a movie/stack file or a folder of images.

    A folder is read in sorted name order; every file must share one pixel size. With ``return_times``, a
    fourth value is the frames' times in seconds when the file says (a single stack or movie file with a time
    axis, as :func:`matsight.io.read_microscope` reads it), else None. ``calibration``, ``pixel_size_source``
    as in :func:`read_frame`; with ``return_source`` a last value says where the pixel size came from (the
    first file's source, "(and N more files)" added for a folder).
    """
    path = Path(path)
    check_suffix(path)
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
        )
        # an .emi header and its .ser data are one dataset: keep the .emi when both are there
        emis = {p.stem for p in files if p.suffix.lower() == ".emi"}
        files = [p for p in files if not (p.suffix.lower() == ".ser" and p.stem.rsplit("_", 1)[0] in emis)]
        if not files:
            raise InputError(f"no microscope images in {path} (looked for {', '.join(SUFFIXES)})")
    elif path.exists():
        files = [path]
    else:
        raise FileNotFoundError(2, "No such file or directory", str(path))
    frames, labels, ps0, times, source = [], [], None, None, ""
    for f in files:
        mi = _io.read_microscope(
            f, pixel_size=pixel_size, calibration=calibration, pixel_size_source=pixel_size_source
        )
        data = np.asarray(mi.data)
        if data.ndim == 1:
            raise InputError(f"{f} holds a 1D signal, not an image; remove it from the series")
        ps = tuple(float(p) for p in tuple(mi.pixel_size_nm)[-2:])
        if ps0 is None:
            ps0, source = ps, mi.calibration_source
        elif not np.allclose(ps, ps0, rtol=1e-3):
            raise InputError(
                f"{f} has pixel size {ps} nm but earlier frames {ps0} nm; analyse them separately"
            )
        stack = data if data.ndim == 3 else data[None]
        # frame times: only one file's own time axis is a time axis of the whole series
        ft = getattr(mi, "frame_times", None)
        if len(files) == 1 and ft is not None and np.size(ft) == len(stack):
            times = np.asarray(ft, float).ravel()
        for i, fr in enumerate(stack):
            frames.append(fr)
            labels.append(f"{f.name}:{i}" if len(files) > 1 else i)
    if len(files) > 1 and source.startswith("file: "):
        source += f" (and {len(files) - 1} more files)"
    out = (frames, ps0, labels) + ((times,) if return_times else ()) + ((source,) if return_source else ())
    return out

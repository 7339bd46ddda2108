"""What a file's header claims, checked before any pixel is read: against the file's size and free memory.

A header is a promise the reader libraries trust: a 1 KB .mrc that claims 100000³ voxels sends rosettasciio
into minutes of chunking, a .npy that claims 909 TiB ends in a MemoryError. Every reader calls
:func:`check_claim` with the shape and type the header gives, so all refuse the same way, in one line.
"""

import math
from pathlib import Path

import numpy as np

from .._errors import InputError

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def format_bytes(n):
    """``1.0 KiB``, ``23.6 KiB``, ``909 TiB``: a byte count for a message (three digits: 23.6 ≠ 24.0)."""
    n = float(n)
    for unit in _UNITS:
        if n < 1024 or unit == _UNITS[-1]:
            break
        n /= 1024
    if unit == "B":
        return f"{int(n)} B"
    return f"{n:.1f} {unit}" if n < 100 else f"{n:.0f} {unit}"


def _cgroup_available():
    """Bytes a cgroup v2 memory limit leaves this process (containers), or None without a limit."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(int(limit) - int((base / "memory.current").read_text().strip()), 0)
    except (OSError, ValueError):
        return None


def available_memory():
    """Bytes of memory available now (psutil, else /proc/meminfo's MemAvailable), or None when unknown.

    A container's cgroup limit, when lower, wins: the kernel kills a process that passes it.
    """
    avail = None
    try:
        import psutil

        avail = int(psutil.virtual_memory().available)
    except Exception:  # psutil is optional; any failure falls back to /proc
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        avail = int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            pass
    cg = _cgroup_available()
    if cg is not None:
        avail = cg if avail is None else min(avail, cg)
    return avail


def describe(shape, dtype, nbytes=None):
    """``100000×100000×100000 uint8 (909 TiB)``: what a header claims, for a message."""
    nbytes = claimed_bytes(shape, dtype) if nbytes is None else int(nbytes)
    dims = "×".join(str(int(s)) for s in shape)
    return f"{dims} {np.dtype(dtype).name} ({format_bytes(nbytes)})"


def claimed_bytes(shape, dtype):
    """Bytes of an array of this shape and type (Python integers: no overflow for absurd shapes)."""
    return math.prod(int(s) for s in shape) * np.dtype(dtype).itemsize


def check_claim(path, shape, dtype, *, stored=None, eager=False, nbytes=None, header=0):
    """Refuse to read an array that the file cannot hold or that memory cannot take.

    Parameters
    ----------
    path : Path
        The file (named in the message).
    shape, dtype
        What its header claims.
    stored : int, optional
        The most bytes of pixel data the file can hold (its size less the header), for formats that store
        pixels uncompressed; a larger claim means a damaged or truncated file.
    eager : bool
        The pixels will be loaded into memory: the claim must fit in the memory available now.
        (Memory maps and dask arrays are not checked: they read out of core.)
    nbytes : int, optional
        The claimed size when it is not ``shape × itemsize`` (packed 4-bit data).
    header : int
        Bytes of header before the pixels, named in the message when large (MRC extended headers).

    Raises
    ------
    InputError
        The claim exceeds the file (damaged or truncated) or, when ``eager``, the memory available.
    """
    path = Path(path)
    need = claimed_bytes(shape, dtype) if nbytes is None else int(nbytes)
    if stored is not None and need > stored:
        try:
            size = format_bytes(path.stat().st_size)
        except OSError:
            size = "less"
        after = f" after a {format_bytes(header)} header" if header > 4096 else ""
        raise InputError(
            f"{path.name} claims {describe(shape, dtype, need)}{after} but holds {size}; "
            "the file is damaged or truncated — copy or export it again"
        )
    if eager:
        avail = available_memory()
        if avail is not None and need > avail:
            raise InputError(
                f"{path.name} holds {describe(shape, dtype, need)}, more than the {format_bytes(avail)} "
                "of memory available; crop or bin it first (e.g. Fiji: Image › Crop, Image › Scale) "
                "or free memory"
            )

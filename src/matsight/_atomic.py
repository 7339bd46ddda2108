"""Atomic output: write to a temporary sibling, then rename over the target.

A crash (or Ctrl-C) never leaves a half-written file that looks whole: either the old file (or nothing)
is there, or the complete new one.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from ._errors import InputError


def _file_in_the_way(paths):
    """The nearest existing one of ``paths`` (a path and its parents, nearest first) if it is not a folder."""
    for p in paths:
        if p.exists():
            return None if p.is_dir() else p
    return None


def holds_cwd(path):
    """Whether the absolute ``path`` is the current folder or one above it (replacing it loses the cwd)."""
    cwd = Path.cwd()
    return path == cwd or path in cwd.parents


def make_folder(path):
    """Create the folder ``path`` (and its parents) and return it as an absolute Path.

    A file in the way gives an :class:`InputError` naming it, instead of ``FileExistsError``.
    """
    path = Path(os.path.abspath(path))
    blocker = _file_in_the_way((path, *path.parents))
    if blocker is not None:
        raise InputError(f"cannot make the folder {path}: {blocker} is a file; choose another output path")
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_output(path, *, kind, name, inputs=(), replaced=False, shown=None):
    """Refuse, before any work, an output that would replace an input or cannot be written.

    Parameters
    ----------
    path : str or Path
        The output; a ``.zarr`` store counts as a file.
    kind : {"file", "folder"}
        What the output is.
    name : str
        How messages name it, e.g. ``"--out run/"`` or ``"the run folder run/"``.
    inputs : sequence of path
        The inputs of the command or job (``None`` entries are skipped).
    replaced : bool
        A folder output that is replaced as a whole: it may not hold an input either.
    shown : callable, optional
        Path → text for other paths in messages (default: the path as given).

    Returns
    -------
    Path
        ``path``, absolute.

    Raises
    ------
    InputError
        Naming the output, the problem and the fix.
    """
    shown = shown or str
    full = Path(os.path.abspath(path))
    real = Path(os.path.realpath(full))
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(os.path.realpath(inp))
        if real == inp:
            raise InputError(f"{name} is also an input; write to another path")
        if replaced and inp.is_relative_to(real):
            raise InputError(f"{name} holds the input {shown(inp)} and would be replaced; name a new folder")
    zarr_store = full.suffix.lower() == ".zarr"
    if kind == "file" and full.is_dir() and not zarr_store:
        raise InputError(f"{name} is a folder; give a file name, e.g. {shown(full / 'out.tif')}")
    if (kind == "folder" or zarr_store) and full.exists() and not full.is_dir():
        raise InputError(f"{name} is a file; give a folder name")
    blocker = _file_in_the_way(full.parents)
    if blocker is not None:
        raise InputError(f"{name} cannot be written: {shown(blocker)} is a file, not a folder")
    return full


def _read_umask():
    mask = os.umask(0)  # the only portable way to read it; done once, before any writer threads exist
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_path(path, *, directory=False, keep_other=False):
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds.

    Parameters
    ----------
    path : str or Path
        Final destination.
    directory : bool, optional
        If True the temporary path is a fresh directory (e.g. for zarr stores); otherwise a file name
        that does not exist yet.
    keep_other : bool, optional
        For a directory that already exists: entries of the old one that the new content does not hold
        (a user's own files, a job's lock and log) are moved into the new one instead of being deleted.
        Leave False for stores whose stale entries would corrupt the new content (zarr chunks).

    Yields
    ------
    Path
        Where to write. It keeps the suffix of ``path`` so that format sniffing by extension works.
    """
    path = Path(os.path.abspath(path))  # "." has no name to build a sibling from
    if directory:
        if path.exists() and not path.is_dir():
            raise InputError(f"{path} exists and is not a folder; choose another output path")
        if holds_cwd(path):
            raise InputError(f"{path} is the current folder (or holds it); name a new folder for the output")
    elif path.is_dir():
        raise InputError(f"{path} is a folder; give a file name for the output")
    make_folder(path.parent)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; the output is an ordinary folder
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.unlink()  # writers create it themselves; some refuse to overwrite
    try:
        yield tmp
        if directory and path.exists():
            # os.replace cannot replace a non-empty directory: swap via a trash name, then delete
            trash = path.with_name(f".{path.name}.old-{os.getpid()}")
            if keep_other and path.is_dir():
                for entry in os.listdir(path):
                    if not (tmp / entry).exists():
                        os.replace(path / entry, tmp / entry)  # a rename: open handles stay valid
            os.replace(path, trash)
            os.replace(tmp, path)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            if tmp.is_file():
                os.chmod(tmp, 0o666 & ~_UMASK)  # some writers (safetensors) make private files
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def write_text(path, text):
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path, obj):
    """Write ``obj`` as indented JSON to ``path`` atomically.

    numpy scalars and arrays are converted; NaN and infinities become ``null`` (strict JSON, which
    browsers and other languages' parsers require).
    """
    import json
    import math

    import numpy as np

    def plain(o):
        if isinstance(o, dict):
            return {(k.item() if isinstance(k, np.generic) else k): plain(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [plain(v) for v in o]
        if isinstance(o, np.ndarray):
            return plain(o.tolist())
        if isinstance(o, np.generic):
            o = o.item()
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, Path):
            return str(o)
        return o

    return write_text(path, json.dumps(plain(obj), indent=2, allow_nan=False) + "\n")

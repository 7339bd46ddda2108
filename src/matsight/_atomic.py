"""Atomic output: write to a temporary sibling, then rename over the target.

A crash (or Ctrl-C) never leaves a half-written file that looks whole: either the old file (or nothing)
is there, or the complete new one.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
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
    """Write ``obj`` as indented JSON to ``path`` atomically; numpy scalars and arrays are converted."""
    import json

    import numpy as np

    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(f"not JSON serialisable: {type(o).__name__}")

    return write_text(path, json.dumps(obj, indent=2, default=default, allow_nan=True) + "\n")

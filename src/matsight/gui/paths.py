"""The GUI's one data folder: every path the browser names is resolved inside it, or refused.

The browser only ever sends paths *relative to the data folder*. They are joined to the root, resolved
(``..``, symlinks and all) and must still lie inside the resolved root — so ``../../etc/passwd``, an absolute
path elsewhere, or a symlink pointing out of the folder are all refused with an :class:`InputError`.
"""

import os
from pathlib import Path

from .._errors import InputError

__all__ = ["DataRoot", "RUNS_DIR"]

RUNS_DIR = "matsight-runs"  # default home of GUI run folders, inside the data folder


class DataRoot:
    """A folder the GUI may read from and write run folders into.

    Parameters
    ----------
    root : str or Path
        An existing folder.
    """

    def __init__(self, root):
        root = Path(root).expanduser()
        if not root.is_dir():
            raise InputError(
                f"data folder {root} does not exist or is not a folder; pass an existing folder (--data)"
            )
        self.root = root.resolve()

    def __repr__(self):
        return f"DataRoot({str(self.root)!r})"

    def resolve(self, rel, *, must_exist=True, kind=None):
        """Absolute path of ``rel`` (relative to the root), refusing anything that leaves the root.

        Parameters
        ----------
        rel : str or Path
            Path relative to the data folder ("" or "." is the folder itself). An absolute path is accepted
            only if it lies inside the folder.
        must_exist : bool
            Raise unless the path exists.
        kind : {None, "file", "dir"}
            Also require a file or a folder.

        Raises
        ------
        InputError
            Outside the data folder, missing, or of the wrong kind.
        """
        text = "" if rel is None else str(rel)
        if "\x00" in text:
            raise InputError("path contains a NUL character; pick the file from the list")
        p = Path(text.strip()) if text.strip() else Path(".")
        full = (p if p.is_absolute() else self.root / p).resolve()  # follows symlinks and '..'
        if not full.is_relative_to(self.root):
            raise InputError(
                f"{text!r} is outside the data folder {self.root}; choose a file inside it "
                "(or restart the GUI with --data pointing higher up)"
            )
        if must_exist and not full.exists():
            raise InputError(
                f"{text!r} does not exist in the data folder {self.root}; pick a file from the list"
            )
        if kind == "file" and full.exists() and not full.is_file():
            raise InputError(f"{text!r} is a folder; pick a file")
        if kind == "dir" and full.exists() and not full.is_dir():
            raise InputError(f"{text!r} is a file; pick a folder")
        return full

    def relative(self, path):
        """``path`` as a POSIX string relative to the root (``"."`` for the root itself)."""
        full = Path(path).resolve()
        if not full.is_relative_to(self.root):
            raise InputError(f"{path} is outside the data folder {self.root}")
        rel = full.relative_to(self.root).as_posix()
        return rel or "."

    def run_dir(self, name, *, default_prefix="run"):
        """A run folder in the data folder: ``name`` if given (relative), else a fresh one in ``RUNS_DIR``.

        Run folders are not created here (the job lock does that).
        """
        if name and str(name).strip():
            full = self.resolve(name, must_exist=False, kind="dir")
            if full == self.root:
                raise InputError("the run folder cannot be the data folder itself; give a sub-folder name")
            return full
        import time

        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = self.root / RUNS_DIR / f"{default_prefix}-{stamp}"
        full, k = base, 1
        while full.exists():
            k += 1
            full = base.with_name(f"{base.name}-{k}")
        return full

    def listdir(self, rel="."):
        """Entries of a folder inside the root: dicts ``name, path, dir, size, suffix`` (hidden ones skipped).

        Zarr stores (folders ending in ``.zarr``) are listed as files, since they are one volume each.
        """
        folder = self.resolve(rel, kind="dir")
        out = []
        here = self.relative(folder)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: (not e.is_dir(), e.name.lower()))
        except PermissionError as exc:
            raise InputError(f"cannot read folder {rel!r}: permission denied") from exc
        for e in entries:
            if e.name.startswith("."):
                continue
            try:
                full = Path(e.path).resolve()
            except OSError:
                continue
            if not full.is_relative_to(self.root):  # a symlink out of the data folder: not offered
                continue
            is_dir = full.is_dir()
            suffix = full.suffix.lower()
            as_file = not is_dir or suffix == ".zarr"
            out.append(
                {
                    "name": e.name,
                    "path": e.name if here == "." else f"{here}/{e.name}",
                    "dir": not as_file,
                    "size": full.stat().st_size if not is_dir else None,
                    "suffix": suffix,
                }
            )
        return out

"""The GUI's one data folder: every path the browser names is resolved inside it, or refused.

The browser only ever sends paths *relative to the data folder*. They are joined to the root, resolved
(``..``, symlinks and all) and must still lie inside the resolved root — so ``../../etc/passwd``, an absolute
path elsewhere, or a symlink pointing out of the folder are all refused with an :class:`InputError`.
"""

import os
from pathlib import Path

from .._errors import InputError

__all__ = ["DataRoot", "RUNS_DIR", "check_output"]

RUNS_DIR = "matsight-runs"  # default home of GUI run folders, inside the data folder


def _short(value, n=80):
    """``repr(value)`` cut to ``n`` characters, so a message about a huge value stays one short line."""
    text = repr(value)
    return text if len(text) <= n else text[: n - 1] + "…"


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
        if rel is not None and not isinstance(rel, str | os.PathLike):
            raise InputError(
                f"a path must be text relative to the data folder, got {_short(rel)}; pick it from the list"
            )
        text = "" if rel is None else str(rel)
        if "\x00" in text:
            raise InputError("path contains a NUL character; pick the file from the list")
        if not text.strip() and kind == "file":
            raise InputError("no file chosen; pick a file from the list")
        p = Path(text.strip()) if text.strip() else Path(".")
        try:
            full = (p if p.is_absolute() else self.root / p).resolve()  # follows symlinks and '..'
            if not full.is_relative_to(self.root):
                raise InputError(
                    f"{_short(text)} is outside the data folder {self.root}; choose a file inside it "
                    "(or restart the GUI with --data pointing higher up)"
                )
            exists = full.exists()
        except OSError as exc:  # a name too long for the file system, a symlink loop, ...
            raise InputError(
                f"{_short(text)} is not a usable path ({exc.strerror or exc}); pick a file from the list"
            ) from None
        if must_exist and not exists:
            raise InputError(
                f"{_short(text)} does not exist in the data folder {self.root}; pick a file from the list"
            )
        if kind == "file" and exists and not full.is_file():
            raise InputError(f"{_short(text)} is a folder; pick a file")
        if kind == "dir" and exists and not full.is_dir():
            raise InputError(f"{_short(text)} is a file; pick a folder")
        return full

    def relative(self, path):
        """``path`` as a POSIX string relative to the root (``"."`` for the root itself)."""
        full = Path(path).resolve()
        if not full.is_relative_to(self.root):
            raise InputError(f"{path} is outside the data folder {self.root}")
        rel = full.relative_to(self.root).as_posix()
        return rel or "."

    def run_dir(self, name, *, default_prefix="run", inputs=(), replaced=False):
        """A run folder in the data folder: ``name`` if given (relative), else a fresh one in ``RUNS_DIR``.

        Run folders are not created here (the job lock does that). ``inputs`` and ``replaced`` are checked as
        in :meth:`output`.
        """
        if name is not None and str(name).strip():
            return self.output(name, kind="dir", inputs=inputs, what="run folder", replaced=replaced)
        import time

        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = self.root / RUNS_DIR / f"{default_prefix}-{stamp}"
        full, k = base, 1
        while full.exists():
            k += 1
            full = base.with_name(f"{base.name}-{k}")
        return check_output(full, kind="dir", inputs=inputs, what="run folder", root=self.root)

    def output(self, rel, *, kind, inputs=(), what="output", suffixes=None, replaced=False):
        """Absolute path of an output ``rel`` inside the root, refused (nothing written) if it cannot be one.

        Parameters
        ----------
        rel : str
            Output path relative to the data folder.
        kind : {"file", "dir"}
            An output file (a ``.zarr`` store counts as a file) or folder.
        inputs : sequence of Path
            The job's inputs: the output may not be one of them.
        what : str
            Name of the output in messages ("run folder", "output file").
        suffixes : sequence of str, optional
            Allowed suffixes of an output file.
        replaced : bool
            The job replaces the whole folder (atomically): it may not hold an input either.

        Raises
        ------
        InputError
            Outside the data folder, the data folder itself, an input, the wrong kind or suffix, below a
            file.
        """
        full = self.resolve(rel, must_exist=False)
        if suffixes and full.suffix.lower() not in suffixes:
            raise InputError(
                f"the {what} {_short(str(rel))} must end in {', '.join(suffixes)}; change its name"
            )
        return check_output(full, kind=kind, inputs=inputs, what=what, root=self.root, replaced=replaced)

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


def check_output(full, *, kind, inputs=(), what="output", root=None, replaced=False):
    """Refuse an output path that would replace an input, has the wrong kind, or lies below a file.

    The CLI's rules (:func:`matsight._atomic.check_output`), with paths shown relative to the data folder
    and the data folder itself refused. Returns ``full``.
    """
    from .._atomic import check_output as _check

    full = Path(full)

    def shown(p):  # data-folder-relative in messages
        p = Path(p)
        return p.relative_to(root).as_posix() if root is not None and p.is_relative_to(root) else p.name

    if root is not None and full == Path(root):
        raise InputError(f"the {what} cannot be the data folder itself; give a sub-folder name")
    _check(
        full,
        kind="folder" if kind == "dir" else kind,
        name=f"the {what} {shown(full)}",
        inputs=inputs,
        replaced=replaced,
        shown=shown,
    )
    return full

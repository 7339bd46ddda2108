"""Shared CLI plumbing: turn user mistakes into one line on stderr and exit code 2."""

import functools
import os
import sys
from pathlib import Path

import typer

from .._errors import InputError

USER_ERRORS = (
    InputError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


def user_errors(fn):
    """Decorate a CLI command: :data:`USER_ERRORS` → ``error: <message>`` on stderr, exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            msg = (
                str(exc)
                if not isinstance(exc, OSError) or not exc.filename
                else (f"{exc.strerror or exc}: {exc.filename}")
            )
            typer.echo(f"error: {msg}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def check_outputs(*, files=(), folders=(), inputs=()):
    """Refuse, before any work, output paths that cannot be written or would replace an input.

    Parameters
    ----------
    files, folders : sequence of (str, path)
        ``(option, path)`` of each output file (a ``.zarr`` store counts as a file) and output folder;
        ``None`` paths are skipped.
    inputs : sequence of path
        The command's input files and folders: no output may be one of them.

    Raises
    ------
    InputError
        Naming the option, the problem and the fix.
    """
    seen = {}
    ins = {os.path.realpath(p) for p in inputs if p is not None}
    cwd = Path.cwd()
    for kind, items in (("file", files), ("folder", folders)):
        for option, path in items:
            if path is None:
                continue
            p = Path(os.path.abspath(path))
            real = os.path.realpath(p)
            if real in ins:
                raise InputError(f"{option} {path} is also an input of this command; write to another path")
            if real in seen:
                raise InputError(f"{option} and {seen[real]} are the same path ({path}); give each its own")
            seen[real] = option
            zarr_store = p.suffix.lower() == ".zarr"
            if kind == "file" and p.is_dir() and not zarr_store:
                example = Path(path) / "out.tif"
                raise InputError(f"{option} {path} is a folder; give a file name, e.g. {example}")
            if (kind == "folder" or zarr_store) and p.exists() and not p.is_dir():
                raise InputError(f"{option} {path} is an existing file; give a folder name")
            if kind == "folder" and (p == cwd or p in cwd.parents):
                raise InputError(f"{option} {path} is the current folder (or holds it); name a new folder")
            for parent in p.parents:
                if parent.exists():
                    if not parent.is_dir():
                        raise InputError(f"{option} {path}: {parent} is a file, not a folder")
                    break


def echo(msg=""):
    """Print to stdout (kept in one place so it can be silenced or redirected)."""
    typer.echo(msg)


def progress_enabled():
    """Show progress bars when stderr is a terminal or when explicitly forced by MATSIGHT_PROGRESS=1."""
    import os

    if os.environ.get("MATSIGHT_PROGRESS") in ("0", "1"):
        return os.environ["MATSIGHT_PROGRESS"] == "1"
    return sys.stderr.isatty()

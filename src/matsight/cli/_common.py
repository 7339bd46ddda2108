"""Shared CLI plumbing: turn user mistakes into one line on stderr and exit code 2."""

import functools
import os
import sys

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
        Naming the option, the problem and the fix (see :func:`matsight._atomic.check_output`).
    """
    from .._atomic import check_output, holds_cwd

    seen = {}
    for kind, items in (("file", files), ("folder", folders)):
        for option, path in items:
            if path is None:
                continue
            full = check_output(path, kind=kind, name=f"{option} {path}", inputs=inputs)
            real = os.path.realpath(full)
            if real in seen:
                raise InputError(f"{option} and {seen[real]} are the same path ({path}); give each its own")
            seen[real] = option
            if kind == "folder" and holds_cwd(full):
                raise InputError(f"{option} {path} is the current folder (or holds it); name a new folder")


def echo(msg=""):
    """Print to stdout (kept in one place so it can be silenced or redirected)."""
    typer.echo(msg)


def progress_enabled():
    """Show progress bars when stderr is a terminal or when explicitly forced by MATSIGHT_PROGRESS=1."""
    import os

    if os.environ.get("MATSIGHT_PROGRESS") in ("0", "1"):
        return os.environ["MATSIGHT_PROGRESS"] == "1"
    return sys.stderr.isatty()

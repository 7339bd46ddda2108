"""Shared CLI plumbing: turn user mistakes into one line on stderr and exit code 2."""

import functools
import sys

import typer

from .._errors import InputError

USER_ERRORS = (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


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


def echo(msg=""):
    """Print to stdout (kept in one place so it can be silenced or redirected)."""
    typer.echo(msg)


def progress_enabled():
    """Show progress bars when stderr is a terminal or when explicitly forced by MATSIGHT_PROGRESS=1."""
    import os

    if os.environ.get("MATSIGHT_PROGRESS") in ("0", "1"):
        return os.environ["MATSIGHT_PROGRESS"] == "1"
    return sys.stderr.isatty()

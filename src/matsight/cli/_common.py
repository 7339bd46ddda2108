"""Shared CLI plumbing: turn user mistakes into one line on stderr and exit code 2.

A command declares its outputs with :func:`check_outputs` before any work; if it then fails, what it created
under them is removed (:class:`matsight._atomic.Created`), so a failed call leaves nothing behind.
"""

import contextlib
import functools
import math
import os
import sys
import time
from pathlib import Path

import typer

from .._atomic import Created, disk_error, printable
from .._errors import InputError

USER_ERRORS = (
    InputError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
)


# the outputs the running command declared (check_outputs), for the clean-up of a failed call
_created = []


def user_errors(fn):
    """Decorate a CLI command: user mistakes → ``error: <message>`` on stderr, exit code 2.

    User mistakes are :data:`USER_ERRORS` and any :class:`OSError` of the disk (full, read-only, no
    permission: :data:`matsight._atomic.DISK_ERRNOS`), also when a library raised its own error from it.
    Whatever else fails is a bug and keeps its traceback. On any failure (not Ctrl-C, which a run resumes
    from) what the call created under its declared outputs is removed.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        created = Created()
        _created.append(created)
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as exc:
            created.undo()
            msg = _user_message(exc, created.outputs)
            if msg is None:
                raise
            typer.echo(printable(f"error: {msg}"), err=True)
            raise typer.Exit(2) from None
        finally:
            _created.remove(created)

    return wrapper


def _user_message(exc, outputs):
    """The one line for a user mistake, or None for a bug."""
    line = disk_error(exc, outputs)
    if line is not None:
        return line
    if not isinstance(exc, USER_ERRORS):
        return None
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc)


def check_outputs(*, files=(), folders=(), inputs=(), resumed=()):
    """Refuse, before any work, output paths that cannot be written or would replace an input.

    Every output is also recorded, so that a failed call removes what it created (:func:`user_errors`).

    Parameters
    ----------
    files, folders : sequence of (str, path)
        ``(option, path)`` of each output file (a ``.zarr`` store counts as a file) and output folder;
        ``None`` paths are skipped. A folder (or ``.zarr`` store) may not hold an input: its outputs could
        replace it.
    inputs : sequence of path
        The command's input files and folders: no output may be one of them.
    resumed : sequence of (str, path, str)
        ``(option, path, checkpoint)`` of a run folder that the command resumes from: it may hold inputs
        (its own earlier outputs, the user's files), and after a failure it is kept once it holds
        ``checkpoint``.

    Raises
    ------
    InputError
        Naming the option, the problem and the fix (see :func:`matsight._atomic.check_output`).
    """
    from .._atomic import check_output, holds_cwd

    seen = {}
    checked = []
    items = [("file", o, p, None) for o, p in files] + [("folder", o, p, None) for o, p in folders]
    items += [("folder", o, p, keep) for o, p, keep in resumed]
    for kind, option, path, keep in items:
        if path is None:
            continue
        if kind == "folder" and holds_cwd(Path(os.path.abspath(path))):
            raise InputError(f"{option} {path} is the current folder (or holds it); name a new folder")
        full = check_output(path, kind=kind, name=f"{option} {path}", inputs=inputs, replaced=keep is None)
        real = os.path.realpath(full)
        if real in seen:
            raise InputError(f"{option} and {seen[real]} are the same path ({path}); give each its own")
        seen[real] = option
        checked.append((full, keep, option))
    if _created:  # recorded only once all are accepted: nothing is created before
        for full, keep, option in checked:
            _created[-1].add(full, keep_if=keep, option=option)


def echo(msg=""):
    """Print to stdout (kept in one place so it can be silenced or redirected); any file name prints."""
    typer.echo(printable(msg))


def progress_enabled():
    """Show progress bars when stderr is a terminal or when explicitly forced by MATSIGHT_PROGRESS=1."""
    if os.environ.get("MATSIGHT_PROGRESS") in ("0", "1"):
        return os.environ["MATSIGHT_PROGRESS"] == "1"
    return sys.stderr.isatty()


def _metrics_text(p):
    return " · ".join(f"{k} {v:.4g}" for k, v in list(p.metrics.items())[:3] if isinstance(v, int | float))


def _progress_line(p, started):
    """``step 120/1000 · 2.31 steps/s · loss 0.0123 · ETA 6m21s`` for a log that is not a terminal."""
    from .._duration import format_duration

    parts = [f"{p.message} " if p.message else ""]
    parts[0] += f"step {p.step}" + (f"/{p.total}" if p.total else "")
    elapsed = time.monotonic() - started
    if elapsed > 0 and p.step:
        parts.append(f"{p.step / elapsed:.3g} steps/s")
    parts.append(_metrics_text(p))
    frac = p.fraction
    if frac and frac < 1 and elapsed > 0:
        parts.append(f"ETA {format_duration(elapsed * (1 - frac) / frac)}")
    return " · ".join(x for x in parts if x)


@contextlib.contextmanager
def progress_bar(description, *, line_every=30.0):
    """A :data:`matsight.progress.Callback` that shows where a run stands, for the time of the block.

    On a terminal (or with ``MATSIGHT_PROGRESS=1``) a rich bar with the latest metrics and an ETA; when
    stderr is not a terminal (a log file, a batch job) one plain line at most every ``line_every`` seconds
    and at the end, so a long run is never silent; nothing with ``MATSIGHT_PROGRESS=0``.
    """
    if os.environ.get("MATSIGHT_PROGRESS") == "0":
        yield None
        return
    started = time.monotonic()
    if progress_enabled():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as bar:
            task = bar.add_task(description, total=None, info="")

            def draw(p):
                info = " ".join(
                    f"{k} {v:.4g}" for k, v in list(p.metrics.items())[:3] if isinstance(v, int | float)
                )
                frac = p.fraction
                bar.update(
                    task, completed=(frac or 0) * 1000, total=1000 if frac is not None else None, info=info
                )

            yield draw
        return
    last, latest = -math.inf, [None]

    def log(p):
        nonlocal last
        latest[0] = p
        if time.monotonic() - last >= line_every:
            last = time.monotonic()
            typer.echo(printable(f"{description}: {_progress_line(p, started)}"), err=True)

    yield log
    if latest[0] is not None and time.monotonic() - last > 0:
        typer.echo(printable(f"{description}: {_progress_line(latest[0], started)}"), err=True)

"""Atomic output: write to a temporary sibling, then rename over the target.

A crash (or Ctrl-C) never leaves a half-written file that looks whole: either the old file (or nothing)
is there, or the complete new one.
"""

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from ._errors import InputError


def printable(text):
    r"""``text`` safe for any UTF-8 output: undecodable file-name bytes (lone surrogates) shown as ``\xff``.

    Linux file names are bytes; Python decodes a byte that is not UTF-8 to a lone surrogate, which a UTF-8
    file or terminal cannot take. Text without such characters is returned unchanged.
    """
    text = str(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")  # the file name's own bytes back
    except UnicodeEncodeError:  # a surrogate that no file name decodes to
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


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


def check_output(path, *, kind, name, inputs=(), replaced=True, shown=None):
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
        The output is replaced as a whole or written into, so it may not hold an input either (the
        default). False only for a run folder that a command resumes from, whose files are its own.
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
    shown = shown or printable
    full = Path(os.path.abspath(path))
    real = Path(os.path.realpath(full))
    zarr_store = full.suffix.lower() == ".zarr"
    holds = replaced and (kind == "folder" or zarr_store)  # a file output holds nothing
    for inp in inputs:
        if inp is None:
            continue
        inp = Path(os.path.realpath(inp))
        if real == inp:
            raise InputError(f"{name} is also an input; write to another path")
        if holds and inp.is_relative_to(real):
            raise InputError(f"{name} holds the input {shown(inp)} and would be replaced; name a new folder")
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

# errors of the disk or its permissions, not of the program: the user can fix them ({out}: the option)
DISK_ERRNOS = {
    errno.ENOSPC: ("disk full", "free space or choose another {out}"),
    errno.EDQUOT: ("quota", "free space or choose another {out}"),
    errno.EFBIG: ("file system limit", "choose another {out} on another disk"),
    errno.EROFS: (None, "choose another {out} on a writable disk"),
    errno.EACCES: (None, "check the permissions or choose another path"),
    errno.EPERM: (None, "check the permissions or choose another path"),
    errno.ENAMETOOLONG: (None, "choose a shorter name"),
    errno.ELOOP: ("a symbolic link loop", "choose another path"),
    errno.EMLINK: (None, "choose another {out}"),
    errno.EIO: ("hardware or network disk", "check the disk or choose another one"),
}


def _disk_errno(exc):
    """The errno of a disk error behind ``exc`` (its chain, or a library's message "os error 28"), or None."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            return exc
        # safetensors (Rust) reports I/O errors in its own type: "... (os error 28)"
        found = re.search(r"os error (\d+)", str(exc))
        if found and int(found.group(1)) in DISK_ERRNOS:
            code = int(found.group(1))
            return OSError(code, os.strerror(code))
        exc = exc.__cause__ or exc.__context__
    return None


def disk_error(exc, outputs=()):
    """One line for an :class:`OSError` of the disk (:data:`DISK_ERRNOS`), else None (a bug).

    Parameters
    ----------
    exc : BaseException
        The error; one raised from a disk error (``raise ... from``, or during its handling) counts too.
    outputs : sequence of path or (path, option)
        The call's outputs: an error on one of them (or inside one) is "cannot write", else "cannot read";
        an error naming no path is taken to be on the first output. The option names it in the fix.

    Returns
    -------
    str or None
        E.g. ``"cannot write out/a.tif: No space left on device (disk full); free space or choose another
        --out"``.
    """
    exc = _disk_errno(exc)
    if exc is None:
        return None
    outs = []
    for o in outputs:
        path, option = o if isinstance(o, tuple) else (o, None)
        if path is not None:
            outs.append((Path(os.path.abspath(path)), option))
    where = exc.filename if exc.filename is not None else (outs[0][0] if outs else None)
    verb, option = "cannot read", None
    if where is not None:
        full = Path(os.path.abspath(os.fsdecode(where)))
        for o, opt in outs:
            # the output, a file in it, or a sibling of its name (NAME_entropy.tif, .NAME.xxxx.tmp)
            if full.is_relative_to(o) or (
                full.parent == o.parent and full.name.startswith((o.stem, f".{o.stem}"))
            ):
                verb, option = "cannot write", opt
                break
        else:
            verb = "cannot write" if exc.filename is None else verb
    cause = exc.strerror or os.strerror(exc.errno)
    target = f" {printable(where)}" if where is not None else ""
    gloss, fix = DISK_ERRNOS[exc.errno]
    gloss = f" ({gloss})" if gloss else ""
    return f"{verb}{target}: {cause}{gloss}; {fix.format(out=option or 'output path')}"


def _temp_prefix(name):
    # the writer's PID in the name tells a later writer whether the temporary is an orphan
    return f".{name}.{os.getpid()}-"


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def _sweep_stale_temps(path):
    """Remove temporaries of ``path`` left by writers that died (SIGKILL, power loss) before their rename.

    Only names of the form this module makes (``.NAME.<pid>-*.tmp*``, ``.NAME.old-<pid>``) whose process is
    gone; a live writer's temporary is never touched.
    """
    names = f"(?:{re.escape(path.stem)}|{re.escape(path.name)})"
    pattern = re.compile(rf"^\.{names}\.(?:(\d+)-.*\.tmp(?:{re.escape(path.suffix)})?|old-(\d+))$")
    try:
        names = os.listdir(path.parent)
    except OSError:
        return
    for name in names:
        found = pattern.match(name)
        if found and not _pid_alive(int(found.group(1) or found.group(2))):
            _remove(path.parent / name)


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
    try:
        if directory:
            tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path.name), suffix=".tmp", dir=path.parent))
            os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp makes it private; the output is an ordinary folder
        else:
            prefix, suffix = _temp_prefix(path.stem), ".tmp" + path.suffix
            fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
            os.close(fd)
            tmp = Path(name)
            tmp.unlink()  # writers create it themselves; some refuse to overwrite
    except OSError as exc:  # the temporary name means nothing to the user: name the output
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
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
        _sweep_stale_temps(path)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            # the temporary name means nothing to the user: name the output instead
            if exc.filename is None or str(tmp) in os.fsdecode(exc.filename):
                raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
        raise


def write_text(path, text):
    r"""Write ``text`` to ``path`` atomically (UTF-8; file names that are not UTF-8 as ``\xff``)."""
    with atomic_path(path) as tmp:
        tmp.write_text(printable(text), encoding="utf-8")
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


def read_json(path, *, what, fix, model=None, kind=dict):
    """Read back a JSON file this tool wrote; any damage is one :class:`InputError` naming file and fix.

    Parameters
    ----------
    path : str or Path
        The file.
    what : str
        What it is, for messages: ``"pair description"``.
    fix : str
        What the user should do, e.g. ``"rerun `matsight restore register` to recreate it"``.
    model : pydantic model class, optional
        Validate the content with it and return the model instance.
    kind : type
        The expected top-level JSON type when no ``model`` is given (default: an object).

    Returns
    -------
    dict, list or model instance
    """
    import json

    path = Path(path)
    name = printable(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{name} is missing ({what}); {fix}") from None
    except UnicodeDecodeError:
        raise InputError(f"{name} is not text ({what}, damaged); {fix}") from None
    if not text.strip():
        raise InputError(f"{name} is empty ({what}, damaged); {fix}")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError(f"{name} is not valid JSON ({what}, damaged: {exc}); {fix}") from None
    if model is not None:
        from ._errors import settings_message

        if not isinstance(data, dict):
            raise InputError(f"{name} holds a {type(data).__name__}, not a {what}; {fix}")
        try:
            return model(**data)
        except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            raise InputError(f"{name}: {settings_message(exc, what)}; {fix}") from None
    if not isinstance(data, kind):
        raise InputError(f"{name} holds a {type(data).__name__}, not a {what}; {fix}")
    return data


def require(data, fields, *, path, what, fix):
    """Check that the dict ``data`` read from ``path`` has each ``fields`` entry (``name: type``).

    Nested fields are dotted (``"files.lq"``). Raises one :class:`InputError` naming the first field that is
    missing or of the wrong type, and ``fix``.
    """
    for dotted, typ in fields.items():
        node = data
        for key in dotted.split("."):
            if not isinstance(node, dict) or key not in node:
                raise InputError(f"{printable(path)} has no field {dotted!r} ({what}, damaged); {fix}")
            node = node[key]
        if not isinstance(node, typ) or isinstance(node, bool) and typ is not bool:
            names = " or ".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))
            raise InputError(
                f"{printable(path)}: field {dotted!r} is a {type(node).__name__}, not a {names} ({what}, "
                f"damaged); {fix}"
            )
    return data


class Created:
    """What one call creates under its outputs, so that a failed call can remove it again.

    :meth:`add` each output before any work; if the call fails, :meth:`undo` removes what is new: a folder
    or file that did not exist (with any parent folders made for it), new entries of an existing folder,
    and new siblings of a file output that share its name (``NAME_entropy.tif``, ``.NAME.*.tmp``).
    Pre-existing files are never touched (outputs are replaced atomically, so they are old or complete).
    """

    def __init__(self):
        self._marks = []

    @property
    def outputs(self):
        """``(path, option)`` of the outputs added, paths absolute, in order (for :func:`disk_error`)."""
        return [(m[0], m[6]) for m in self._marks]

    def add(self, path, *, keep_if=None, option=None):
        """Record ``path`` (a file or folder output) as it is now.

        ``keep_if`` names a file (e.g. a checkpoint) whose presence in the folder after a failure keeps
        everything: a run that got that far can be resumed. ``option`` is how messages name the output.
        """
        full = Path(os.path.abspath(path))
        top = full
        while not top.parent.exists() and top.parent != top:
            top = top.parent  # the outermost folder this call would create
        before = None
        if full.is_dir():
            before = {
                os.path.relpath(os.path.join(d, n), full) for d, ds, fs in os.walk(full) for n in ds + fs
            }
        siblings = set(os.listdir(full.parent)) if full.parent.is_dir() else set()
        self._marks.append((full, top, full.exists() or top.exists(), before, siblings, keep_if, option))

    def undo(self):
        """Remove what was created since :meth:`add` (best effort: never raises)."""
        for full, top, existed, before, siblings, keep_if, _ in reversed(self._marks):
            try:
                if keep_if is not None and (full / keep_if).is_file():
                    continue
                if not existed:
                    _remove(top)
                    if top != full:
                        continue  # a new parent folder, with everything in it
                elif before is not None and full.is_dir():
                    for d, ds, fs in os.walk(full):
                        for n in ds + fs:
                            rel = os.path.relpath(os.path.join(d, n), full)
                            if rel not in before and os.path.lexists(os.path.join(d, n)):
                                _remove(Path(d) / n)
                        ds[:] = [n for n in ds if (Path(d) / n).is_dir()]
                if full.parent.is_dir():
                    prefixes = (full.stem, f".{full.stem}", f".{full.name}")
                    for n in set(os.listdir(full.parent)) - siblings:
                        if n.startswith(prefixes):
                            _remove(full.parent / n)
            except OSError:
                pass


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            path.unlink()

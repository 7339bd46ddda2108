"""Third-party warnings and log lines, captured while a file is read.

tifffile, rosettasciio, h5py, ... report a damaged file by logging or warning, before raising or instead of
it: printed, that is a second line beside the one ``error:`` line, and a page silently dropped from a
truncated tif is worse. While matsight reads a file the messages are collected, per thread (the GUI reads
in worker threads): one that says the file is damaged becomes the :class:`InputError`; the rest go to
matsight's debug log. Threads that are not reading keep the usual output.
"""

import contextlib
import logging
import re
import threading
import warnings

from .._errors import InputError

log = logging.getLogger(__name__)

_LOGGERS = (
    "tifffile",
    "rsciio",
    "hyperspy",
    "mrcfile",
    "h5py",
    "zarr",
    "numcodecs",
    "imageio",
    "PIL",
    "dask",
)
# what tifffile, rosettasciio and h5py say about a file that ends early or whose structure is broken
_DAMAGE = re.compile(
    r"truncat|corrupt|invalid page offset|invalid next page|failed to read \d+ bytes|is missing \d+"
    r"|incompletely written|data are zeroed|expected \d+ segments|failed to reshape"
    r"|does not match page shape|incorrect (strip|tile)",
    re.IGNORECASE,
)

_lock = threading.Lock()
_sinks = {}  # thread id -> messages, for the threads inside capture()
_saved = {}  # what capture() replaced while any thread is inside it


class _Handler(logging.Handler):
    def emit(self, record):
        sink = _sinks.get(record.thread)
        if sink is not None:
            sink.append(record.getMessage())
            return
        # a thread that is not reading: deliver the record as if no capture were installed
        root = logging.getLogger()
        if root.handlers:
            for h in root.handlers:
                if record.levelno >= h.level:
                    h.handle(record)
        elif logging.lastResort is not None and record.levelno >= logging.lastResort.level:
            logging.lastResort.handle(record)


def _showwarning(message, category, filename, lineno, file=None, line=None):
    sink = _sinks.get(threading.get_ident())
    if sink is not None:
        sink.append(f"{category.__name__}: {message}")
        return
    _saved["showwarning"](message, category, filename, lineno, file, line)


def _install():
    handler = _Handler()
    loggers = [logging.getLogger(n) for n in _LOGGERS]
    _saved.update(
        handler=handler,
        loggers=[(lg, lg.propagate) for lg in loggers],
        showwarning=warnings.showwarning,
    )
    for lg in loggers:
        lg.addHandler(handler)
        lg.propagate = False
    warnings.showwarning = _showwarning


def _uninstall():
    for lg, propagate in _saved["loggers"]:
        lg.removeHandler(_saved["handler"])
        lg.propagate = propagate
    if warnings.showwarning is _showwarning:  # else someone replaced it since: leave theirs
        warnings.showwarning = _saved["showwarning"]
    _saved.clear()


def _clean(message):
    # tifffile prefixes its messages with the object's repr: "<tifffile.TiffPages @8> invalid page offset 9"
    text = re.sub(r"<[^<>]*>\s*", "", str(message)).strip()
    return text.splitlines()[0].strip() if text else str(message)


class Captured:
    """The messages third-party readers gave while this :func:`capture` block ran."""

    def __init__(self, sink, start):
        self._sink, self._start = sink, start

    @property
    def messages(self):
        """Every message, cleaned to one line each."""
        return [_clean(m) for m in self._sink[self._start :]]

    def damage(self):
        """The first message saying the file is damaged or truncated, or None."""
        return next((m for m in self.messages if _DAMAGE.search(m)), None)

    def raise_if_damaged(self, name):
        """Raise the :class:`InputError` for a file a reader called damaged, though it returned data."""
        msg = self.damage()
        if msg is not None:
            raise InputError(f"{name} is damaged or truncated ({msg}); copy or export it again")


@contextlib.contextmanager
def capture():
    """Collect third-party warnings and log records of this thread while reading; yields :class:`Captured`.

    Nested blocks share the outer block's messages; the outermost logs them at debug level when it ends.
    """
    tid = threading.get_ident()
    with _lock:
        outer = tid in _sinks
        if not outer:
            if not _sinks:
                _install()
            _sinks[tid] = []
        sink = _sinks[tid]
    try:
        yield Captured(sink, len(sink))
    finally:
        if not outer:
            with _lock:
                del _sinks[tid]
                if not _sinks:
                    _uninstall()
            for m in sink:
                log.debug("while reading: %s", _clean(m))

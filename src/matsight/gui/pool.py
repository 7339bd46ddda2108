"""Library calls off the server's event loop: a few long-lived worker processes, each call with a time limit.

Anything that opens a user's file (reading, FFTs, analyses, volume slices, run folders) runs here, never on
the event loop, so one crafted file cannot freeze the server. Processes, not threads: a reader can stay
for minutes inside C code or a library's loop, and only a process can be stopped — a call over its limit
(or a stopped job) kills its worker and a fresh one is started for the next call. The workers live between
calls, so numpy and the readers are imported once and the slice viewer's volume cache survives; a call
costs a pickle round trip, not a process start.

Async endpoints use :meth:`CallPool.call`; job threads use :meth:`CallPool.run`. Both raise
:class:`Busy` (no free worker within the limit, HTTP 503), :class:`TimedOut` (504), :class:`InputError`
(the library's own user error, 400), :class:`MemoryError` (507) or :class:`CallFailed` (a bug or a crash).
"""

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection

from .._errors import InputError
from .messages import USER_ERRORS, user_message

log = logging.getLogger(__name__)

__all__ = ["CALLS", "CallPool", "Busy", "TimedOut", "CallFailed", "Stopped"]

# Only names listed here run in a worker; each is ``module:function`` (``emit`` first where it reports).
CALLS = {
    "tem.open": "matsight.gui.tasks:tem_open",
    "tem.analyze": "matsight.gui.tasks:tem_analyze_file",
    "tem.series": "matsight.gui.tasks:tem_series_compute",
    "tem.phases": "matsight.gui.tasks:tem_phases",
    "volume.info": "matsight.gui.views:volume_info",
    "volume.slice": "matsight.gui.views:volume_slice",
    "run.listing": "matsight.gui.views:run_listing",
}


class Busy(Exception):
    """Every worker stayed busy for the whole time limit."""

    http_status = 503


class TimedOut(Exception):
    """The call ran past its time limit; its worker was killed."""

    http_status = 504


class CallFailed(Exception):
    """A bug in the called code, or its worker died (the message says which)."""

    http_status = 500


class Stopped(Exception):
    """The job asked to stop; its worker was killed."""


def _die_with_parent():
    # a worker left behind by a killed server would keep reading a hostile file: Linux ends it with the
    # server (strictly: with the server thread that started it; the pool's threads live as long as the pool)
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _main(fd, parent_pid):
    """A worker's loop, until the server closes the connection.

    The server's ``sys.path`` comes first, then ``(target, args, kwargs, events)`` in, ``(kind, value)`` out.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the server, which ends us
    _die_with_parent()
    if os.getppid() != parent_pid:
        return
    conn = Connection(fd)
    sys.path[:] = conn.recv()

    def emit(**event):
        conn.send(("event", event))

    while True:
        try:
            target, args, kwargs, events = conn.recv()
        except (EOFError, OSError):
            return
        try:
            module, _, name = target.partition(":")
            fn = getattr(importlib.import_module(module), name)
            out = ("ok", fn(emit, *args, **kwargs) if events else fn(*args, **kwargs))
        except USER_ERRORS as exc:
            out = ("user", user_message(exc))
        except MemoryError as exc:
            out = ("memory", str(exc))
        except RecursionError:
            out = ("user", "the input is nested too deeply to read; give a flatter file")
        except Exception as exc:  # noqa: BLE001 - one line for the page, the traceback for the server log
            traceback.print_exc()
            out = ("bug", user_message(exc))
        try:
            conn.send(out)
        except Exception as exc:  # noqa: BLE001 - an unpicklable result is a bug of the called code
            conn.send(("bug", f"the result could not be returned ({type(exc).__name__})"))


class _Worker:
    # a plain subprocess, not multiprocessing: its spawn would import the server's __main__ script again
    def __init__(self):
        ours, theirs = socket.socketpair()
        code = "import sys; from matsight.gui.pool import _main; _main(int(sys.argv[1]), int(sys.argv[2]))"
        fd = theirs.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(fd), str(os.getpid())], pass_fds=(fd,), stdin=subprocess.DEVNULL
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send(list(sys.path))  # a PYTHONPATH or a test's helper module: seen as the server sees it
        self.keys = []  # what it has cached (volume paths), newest last

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        with contextlib.suppress(Exception):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.proc.wait(2)

    def died(self):
        try:
            code = self.proc.wait(1)
        except subprocess.TimeoutExpired:
            code = None
        if code == -signal.SIGKILL:  # not us (we raise TimedOut/Stopped first): the kernel's OOM killer
            return MemoryError("the worker process was killed, most likely out of memory")
        return CallFailed(f"the worker process crashed (exit code {code}); the file may be damaged")


def _result(kind, value):
    if kind == "ok":
        return value
    if kind == "user":
        raise InputError(value)
    if kind == "memory":
        raise MemoryError(value or "not enough memory")
    raise CallFailed(value)


class CallPool:
    """Up to ``size`` worker processes for the calls in :data:`CALLS`.

    Parameters
    ----------
    size : int
        Concurrent calls; further ones wait for a free worker (within their time limit).
    timeout : float or None
        Default time limit of a call in seconds, waiting included (``None``: no limit).
    """

    def __init__(self, size=2, *, timeout=60.0):
        self.size, self.timeout = int(size), timeout
        self._idle, self._busy = [], set()
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------------------------------ workers
    def _take(self, key):
        with self._lock:
            if self._closed:
                raise Busy("the server is shutting down")
            if self._idle:
                # the worker that last read this volume still has it cached
                w = next((w for w in self._idle if key is not None and key in w.keys), self._idle[-1])
                self._idle.remove(w)
            elif len(self._busy) < self.size:
                w = _Worker()
            else:
                return None
            self._busy.add(w)
            return w

    def _give(self, w, healthy, key):
        with self._lock:
            self._busy.discard(w)
            if healthy and not self._closed and w.alive():
                if key is not None:
                    w.keys = [k for k in w.keys if k != key][-7:] + [key]
                self._idle.append(w)
                return
        w.kill()

    def _limit(self, timeout):
        limit = self.timeout if timeout is None else timeout
        return None if limit is None else time.monotonic() + limit

    @staticmethod
    def _busy_error(name):
        return Busy(f"the server is busy with other files ({name} could not start); try again in a moment")

    @staticmethod
    def _timeout_error(name, timeout):
        return TimedOut(
            f"{name} took longer than {timeout:g} s and was stopped; the file may be too large or damaged"
        )

    # ------------------------------------------------------------------------------------------ calls
    async def call(self, name, *args, key=None, timeout=None, **kwargs):
        """Run ``CALLS[name](*args, **kwargs)`` in a worker and return its result (async)."""
        target = CALLS[name]
        limit = self.timeout if timeout is None else timeout
        deadline = self._limit(timeout)
        while (w := self._take(key)) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise self._busy_error(name)
            await asyncio.sleep(0.02)
        healthy = False
        loop = asyncio.get_running_loop()
        try:
            w.conn.send((target, args, kwargs, False))
            while True:
                ready = loop.create_future()
                loop.add_reader(w.conn.fileno(), lambda f=ready: f.done() or f.set_result(None))
                try:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    await asyncio.wait_for(ready, left)
                except TimeoutError:
                    raise self._timeout_error(name, limit) from None
                finally:
                    loop.remove_reader(w.conn.fileno())
                try:
                    kind, value = w.conn.recv()
                except (EOFError, OSError):
                    raise w.died() from None
                if kind != "event":
                    healthy = True
                    return _result(kind, value)
        finally:
            self._give(w, healthy, key)

    def run(self, name, *args, should_stop=None, on_event=None, timeout=None, key=None, **kwargs):
        """Run ``CALLS[name]`` in a worker from a thread (a job); ``should_stop()`` true kills it.

        A call whose function takes ``emit`` first reports through ``on_event(**event)``.
        """
        target = CALLS[name]
        limit = self.timeout if timeout is None else timeout
        deadline = self._limit(timeout)
        while (w := self._take(key)) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise self._busy_error(name)
            if should_stop is not None and should_stop():
                raise Stopped("stopped before it started")
            time.sleep(0.05)
        healthy = False
        try:
            w.conn.send((target, args, kwargs, on_event is not None))
            while True:
                if should_stop is not None and should_stop():
                    raise Stopped("stopped")
                if deadline is not None and time.monotonic() > deadline:
                    raise self._timeout_error(name, limit)
                try:
                    if not w.conn.poll(0.1):
                        continue
                    kind, value = w.conn.recv()
                except (EOFError, OSError):
                    if self._closed:
                        raise Stopped("the server is shutting down") from None
                    raise w.died() from None
                if kind == "event":
                    on_event(**value)
                    continue
                healthy = True
                return _result(kind, value)
        finally:
            self._give(w, healthy, key)

    def close(self):
        """Kill every worker (calls in progress end with :class:`Stopped` or :class:`Busy`)."""
        with self._lock:
            self._closed = True
            workers = self._idle + list(self._busy)
            self._idle = []
        for w in workers:
            w.kill()

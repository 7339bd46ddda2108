"""Long library calls as generators of :class:`~matsight.progress.Progress`, for napari's thread workers.

napari's ``thread_worker`` shows progress from a *generator* (every ``yield`` reaches the UI thread),
while the library reports progress through a callback deep inside its loops. :func:`progress_steps`
joins the two: the call runs in a helper thread, its callback puts each report on a queue, and the
generator yields them (the latest one only, when several wait). Cancelling sets an event; the next
callback then raises :class:`KeyboardInterrupt`, the library's way to stop early (trainings save their
state first, so a cancelled run resumes), and the generator ends with :class:`Cancelled`. Nothing here
imports Qt or napari.
"""

import queue
import threading

from ..progress import Progress

__all__ = ["Cancelled", "progress_steps", "run_steps"]

_DONE = object()


class Cancelled(Exception):  # noqa: N818 (what the user did, not a fault)
    """The user cancelled the job; a training saved its state and resumes from it next time."""


def progress_steps(fn, *, cancel=None, poll=0.2):
    """Run ``fn(callback)`` in a thread and yield the :class:`Progress` reports it makes.

    Parameters
    ----------
    fn : callable
        Takes one argument, a :data:`matsight.progress.Callback`, and returns the job's result.
    cancel : threading.Event, optional
        Set it to stop the job at its next progress report.
    poll : float
        Seconds between looks at ``cancel`` while the job is silent (a ``Progress`` with ``step=-1`` is
        yielded then, so a thread worker can react to being quit).

    Yields
    ------
    Progress
        The newest report (older ones waiting in the queue are skipped: the UI shows the latest).

    Returns
    -------
    object
        What ``fn`` returned (the ``StopIteration`` value, which napari's worker emits as ``returned``).

    Raises
    ------
    Cancelled
        ``cancel`` was set and the job stopped.

    Examples
    --------
    >>> def job(callback):
    ...     for k in range(3):
    ...         callback(Progress(step=k + 1, total=3))
    ...     return "done"
    >>> steps = list(run_steps(job))
    >>> steps[-1]
    'done'
    """
    reports = queue.Queue()
    outcome = {}

    def callback(p):
        if cancel is not None and cancel.is_set():
            raise KeyboardInterrupt("cancelled from napari")
        reports.put(p)

    def target():
        try:
            outcome["value"] = fn(callback)
        except BaseException as exc:  # noqa: BLE001 (handed over to the generator's thread)
            outcome["error"] = exc
        finally:
            reports.put(_DONE)

    thread = threading.Thread(target=target, name="matsight-job", daemon=True)
    thread.start()
    done = False
    while not done:
        latest, done = _newest(reports, poll)
        if latest is not None:
            yield latest
    thread.join()
    error = outcome.get("error")
    if isinstance(error, KeyboardInterrupt) or (error is not None and cancel is not None and cancel.is_set()):
        raise Cancelled("cancelled; a training resumes from its saved state when started again") from None
    if error is not None:
        raise error
    return outcome.get("value")


def _newest(reports, poll):
    """``(newest report or None, job done)``: waits ``poll`` s for one, then skips to the newest waiting.

    A silent job gives a heartbeat ``Progress(step=-1)``, so a thread worker can react to being quit.
    """
    try:
        item = reports.get(timeout=poll)
    except queue.Empty:
        return Progress(step=-1), False
    latest = None
    while item is not _DONE:
        latest = item
        try:
            item = reports.get_nowait()
        except queue.Empty:
            return latest, False
    return latest, True


def run_steps(fn, *, cancel=None):
    """Run :func:`progress_steps` to the end in this thread: the reports, then the result, as one list."""
    gen = progress_steps(fn, cancel=cancel)
    out = []
    while True:
        try:
            p = next(gen)
        except StopIteration as stop:
            out.append(stop.value)
            return out
        if p.step >= 0:
            out.append(p)

"""Background jobs for the GUI: short analyses on threads, trainings in worker processes.

A job belongs to the server, not to a browser tab: closing the tab leaves it running, and any page can poll
its state (``queued → running → done | failed | stopped``), progress and message. A job that writes into a
run folder holds that folder's lock (:class:`RunLock`, a file created with ``O_EXCL``), so two jobs — even
from two GUI servers on the same data — never write into the same folder at once.

Errors never reach the page as a traceback: an :class:`~matsight._errors.InputError` (or a missing file)
becomes its one-line message; anything else becomes ``unexpected error (Type): message`` and the traceback
goes to the server log / the run folder's ``gui-job.log``.
"""

import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .._errors import InputError
from .messages import EVENT_PREFIX, USER_ERRORS, user_message

log = logging.getLogger(__name__)

__all__ = ["Job", "JobRunner", "RunLock", "user_message", "EVENT_PREFIX"]

FINAL = ("done", "failed", "stopped")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """Exclusive claim on a run folder (``RUN/.matsight-gui.lock``), dead holders' locks reclaimed."""

    NAME = ".matsight-gui.lock"

    def __init__(self, run_dir, *, owner=""):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / self.NAME
        self.owner = owner
        self.held = False

    def holder(self):
        """The lock file's content (dict) or None."""
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def acquire(self):
        """Create the lock or raise :class:`InputError` naming who holds it."""
        from .._atomic import make_folder

        make_folder(self.run_dir)  # a file in the way: an InputError naming it, not FileExistsError
        info = {"pid": os.getpid(), "host": socket.gethostname(), "owner": self.owner, "time": time.time()}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                cur = self.holder()
                stale = (
                    cur is not None
                    and cur.get("host") == info["host"]
                    and isinstance(cur.get("pid"), int)
                    and not _pid_alive(cur["pid"])
                )
                if stale:
                    log.info("removing stale lock %s of dead process %s", self.path, cur.get("pid"))
                    try:
                        self.path.unlink()
                    except FileNotFoundError:
                        pass
                    continue
                who = (cur or {}).get("owner") or "another job"
                raise InputError(
                    f"run folder {self.run_dir.name} is in use by {who}; wait for it to finish, stop it, "
                    "or choose another run folder"
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(info, f)
            self.held = True
            return self
        raise InputError(f"cannot lock run folder {self.run_dir}; remove {self.path} if no job uses it")

    def release(self):
        """Remove the lock if this object holds it."""
        if self.held:
            self.held = False
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


@dataclass
class Job:
    """One background job; :meth:`to_dict` is what the page polls."""

    id: str
    kind: str
    title: str
    run_dir: Path | None = None
    params: dict = field(default_factory=dict)
    state: str = "queued"
    progress: float | None = None
    message: str = ""
    error: str | None = None
    result: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    payload: object = field(default=None, repr=False)  # in-memory results (arrays) for the page
    kind_stoppable: bool = False
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _proc: object = field(default=None, repr=False)

    def update(self, progress=None, message=None):
        """Report progress in [0, 1] and/or a short message (thread jobs call this)."""
        if progress is not None:
            self.progress = float(min(max(progress, 0.0), 1.0))
        if message is not None:
            self.message = str(message)

    def should_stop(self):
        """True once a stop was requested (thread jobs check it between steps)."""
        return self._stop.is_set()

    @property
    def done(self):
        """Finished one way or another."""
        return self.state in FINAL

    def to_dict(self, relative=None):
        """JSON-able state; ``relative`` maps the run folder to a data-folder-relative string."""
        end = self.finished or time.time()
        run = None
        if self.run_dir is not None:
            run = relative(self.run_dir) if relative else str(self.run_dir)
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "run_dir": run,
            "state": self.state,
            "progress": self.progress,
            "message": self.message,
            "error": self.error,
            "result": self.result,
            "params": self.params,
            "elapsed_s": round(end - self.started, 2) if self.started else 0.0,
            "stoppable": self.kind_stoppable and not self.done,
        }


class JobRunner:
    """Runs :class:`Job` s on a small thread pool or as worker processes.

    Parameters
    ----------
    threads : int
        Concurrent thread jobs (analyses); further ones queue.
    max_processes : int
        Concurrent worker processes (trainings); starting one more is refused with a message.
    """

    def __init__(self, *, threads=2, max_processes=2):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="matsight-gui-job")
        self._jobs = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.max_processes = max_processes

    # ------------------------------------------------------------------------------------------ lookup
    def get(self, job_id):
        """The job with this id, or :class:`InputError`."""
        job = self._jobs.get(str(job_id))
        if job is None:
            raise InputError(f"no job {job_id!r}; it may belong to a server that was restarted")
        return job

    def list(self):
        """All jobs, newest first."""
        return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def _new(self, kind, title, run_dir, params, stoppable):
        with self._lock:
            job = Job(
                id=f"{next(self._ids)}", kind=kind, title=title, run_dir=run_dir, params=dict(params or {})
            )
            job.kind_stoppable = stoppable
            self._jobs[job.id] = job
        return job

    def _claim(self, job):
        if job.run_dir is None:
            return None
        return RunLock(job.run_dir, owner=f"job {job.id} ({job.title})").acquire()

    # ------------------------------------------------------------------------------------------ threads
    def submit(self, kind, fn, *, title="", run_dir=None, params=None, stoppable=False):
        """Run ``fn(job) -> dict`` on a thread; its return value becomes ``job.result``.

        A ``run_dir`` is locked first (an :class:`InputError` if it is in use, raised here, before queuing).
        """
        job = self._new(kind, title or kind, run_dir, params, stoppable)
        try:
            lock = self._claim(job)
        except Exception:
            del self._jobs[job.id]
            raise

        def body():
            job.state, job.started = "running", time.time()
            try:
                if job.should_stop():  # stopped while it waited in the queue: never started
                    job.state, job.message = "stopped", "stopped before it started"
                    return
                res = fn(job)
                job.result = res or {}
                job.state = "stopped" if job.should_stop() else "done"
                if job.state == "done":
                    job.progress = 1.0
            except BaseException as exc:  # noqa: BLE001 - reported in the page, logged here
                if job.should_stop():  # a stopped call ends in an exception: not an error of the job
                    job.state, job.message = "stopped", "stopped"
                    return
                job.error, job.state = user_message(exc), "failed"
                if not isinstance(exc, USER_ERRORS):
                    log.exception("job %s (%s) failed", job.id, job.title)
            finally:
                job.finished = time.time()
                if lock is not None:
                    lock.release()

        self._pool.submit(body)
        return job

    # ------------------------------------------------------------------------------------------ processes
    def submit_process(self, kind, task, kwargs, *, title="", run_dir, params=None):
        """Run the worker task ``task`` (a name in :data:`matsight.gui.worker.TASKS`) in a new process.

        The worker reads ``{"task", "kwargs"}`` as JSON on stdin and reports events on stdout; its stderr
        (logs, tracebacks) goes to ``RUN/gui-job.log``. The run folder stays locked until it exits.
        """
        from .worker import TASKS

        if task not in TASKS:
            raise InputError(f"unknown task {task!r}")
        running = sum(1 for j in self._jobs.values() if j._proc is not None and not j.done)
        if running >= self.max_processes:
            raise InputError(
                f"{running} trainings are already running on this machine; wait for one or stop it first"
            )
        job = self._new(kind, title or task, Path(run_dir), params, True)
        try:
            lock = self._claim(job)
        except Exception:
            del self._jobs[job.id]
            raise
        logf = open(Path(run_dir) / "gui-job.log", "ab")  # noqa: SIM115 - closed by the monitor thread
        env = dict(os.environ, MATSIGHT_PROGRESS="0", PYTHONUNBUFFERED="1")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "matsight.gui.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=logf,
                env=env,
                start_new_session=True,  # Ctrl-C in the server's terminal is handled by the server
            )
            proc.stdin.write(json.dumps({"task": task, "kwargs": kwargs}).encode())
            proc.stdin.close()
        except Exception:
            logf.close()
            lock.release()
            del self._jobs[job.id]
            raise
        job._proc = proc
        job.state, job.started = "running", time.time()
        threading.Thread(target=self._monitor, args=(job, proc, lock, logf), daemon=True).start()
        return job

    def _monitor(self, job, proc, lock, logf):
        got_result = False
        try:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if not line.startswith(EVENT_PREFIX):
                    continue
                try:
                    ev = json.loads(line[len(EVENT_PREFIX) :])
                except ValueError:
                    continue
                if "progress" in ev or "message" in ev:
                    job.update(ev.get("progress"), ev.get("message"))
                if "result" in ev:
                    job.result = ev["result"] or {}
                    got_result = True
                if "error" in ev:
                    job.error = str(ev["error"])
            rc = proc.wait()
        finally:
            logf.close()
            lock.release()
        if job._stop.is_set():
            job.state = "stopped"
            job.message = job.message or "stopped"
        elif rc == 0 and got_result:
            job.state, job.progress = "done", 1.0
        else:
            job.state = "failed"
            if not job.error:
                job.error = f"the worker exited with code {rc}; see gui-job.log in the run folder"
        job.finished = time.time()

    # ------------------------------------------------------------------------------------------ control
    def stop(self, job_id, *, grace=10.0):
        """Stop a job: a process gets SIGTERM (SIGKILL after ``grace`` s); a thread job sees its flag."""
        job = self.get(job_id)
        if job.done:
            return job
        if not job.kind_stoppable:
            raise InputError(f"job {job.id} ({job.title}) cannot be stopped; it finishes on its own shortly")
        job._stop.set()
        job.message = "stopping…"
        proc = job._proc
        if proc is not None and proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                return job

            def reaper():
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    proc.kill()

            threading.Thread(target=reaper, daemon=True).start()
        return job

    def wait(self, job_id, timeout=None):
        """Block until the job is finished (tests, CLI); returns it."""
        job = self.get(job_id)
        t0 = time.monotonic()
        while not job.done:
            if timeout is not None and time.monotonic() - t0 > timeout:
                raise TimeoutError(f"job {job_id} still {job.state} after {timeout} s")
            time.sleep(0.05)
        return job

    def shutdown(self):
        """Stop worker processes (they resume from their last checkpoint) and the thread pool."""
        for job in self._jobs.values():
            proc = job._proc
            if proc is not None and proc.poll() is None:
                job._stop.set()
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self._pool.shutdown(wait=False, cancel_futures=True)

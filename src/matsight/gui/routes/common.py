"""What every endpoint shares: the app's :class:`Context`, the error wrapper, JSON bodies and job starts."""

import asyncio
import functools
import logging
from dataclasses import dataclass

from starlette.responses import JSONResponse, Response

from ..._errors import InputError
from .. import guard
from ..jobs import JobRunner
from ..messages import USER_ERRORS, jsonable, user_message
from ..paths import DataRoot
from ..pool import CallPool, TimedOut
from . import fields

log = logging.getLogger("matsight.gui.server")

ANALYZE_TIMEOUT = 600.0  # s: one frame's analysis job (a series has none: the page can stop it)


@dataclass
class Context:
    """What the endpoints work with: the data folder, the job runner and the worker pools."""

    root: DataRoot
    runner: JobRunner
    calls: CallPool  # requests' library calls (open, slice, listing), each with ``call_timeout``
    job_calls: CallPool  # tem analysis jobs
    call_timeout: float

    def analyze_call(self, *args, **kwargs):
        """One frame's analysis in a job worker, with its time limit."""
        return self.job_calls.run(*args, timeout=ANALYZE_TIMEOUT, **kwargs)

    async def in_thread(self, fn, *args):
        """``fn(*args)`` on a thread: work on data already in memory (rendering a result), bounded in time so
        that a request does not wait without end on a busy machine.
        """
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), self.call_timeout)
        except TimeoutError:
            raise TimedOut(f"the server took longer than {self.call_timeout:g} s; try again") from None

    def job_dict(self, job):
        """What the page sees of ``job`` (paths relative to the data folder)."""
        return job.to_dict(relative=self.root.relative)

    def finished_job(self, request, kind):
        """The job of the URL's ``{job}``: of ``kind`` and done with results, else a user error."""
        job = self.runner.get(request.path_params["job"])
        if not job.kind.startswith(kind):
            raise InputError(f"job {job.id} is a {job.kind} job, not {kind}")
        if job.state != "done" or job.payload is None:
            raise InputError(
                f"job {job.id} has no results ({job.state}{': ' + job.error if job.error else ''})"
            )
        return job

    def start(self, kw, task, name, *, run_dir, params):
        """Start worker task ``task`` (kind = task, title "<task> <name>") on the locked ``run_dir``."""
        title = f"{task.replace('.', ' ')} {name}"
        job = self.runner.submit_process(task, task, kw, title=title, run_dir=run_dir, params=params)
        return ok(self.job_dict(job))

    def file_arg(self, b, key, *, required=True):
        """The data-folder path in field ``key`` of the body, as text; None when optional and absent."""
        v = b.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            if required:
                raise InputError(f"choose the {key.replace('_', ' ')} file")
            return None
        return str(self.root.resolve(v, kind=None))

    def folder_arg(self, b, key, what):
        """The existing data-folder folder in field ``key``; ``what`` names it when absent."""
        if not fields.text(b.get(key), key.replace("_", " ")):
            raise InputError(f"choose the {what}")
        return self.root.resolve(b.get(key), kind="dir")


def ok(obj, status=200):
    """A JSON response of ``obj`` (numpy values and paths made JSON-able)."""
    return JSONResponse(jsonable(obj), status_code=status)


def fail(msg, status=400):
    """The one-line error answer ``{"error": msg}``."""
    return JSONResponse({"error": msg}, status_code=status)


def png(data):
    """PNG bytes as a response the browser does not cache."""
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


async def body(request):
    """The request's JSON body, which must be an object (size and nesting limited by the guard)."""
    val = await guard.read_json(request)
    if not isinstance(val, dict):
        raise InputError("the request body must be a JSON object")
    return val


def endpoint(fn):
    """``fn(request, ctx)`` as a Starlette endpoint, with every failure as one line ``{"error": ...}``.

    User errors → 400, too large → 413, out of time → 503/504, out of memory → 507; bugs → 500 with one line,
    the traceback only in the server log. A POST without the ``X-Matsight`` header is 403.
    """

    @functools.wraps(fn)
    async def wrapped(request):
        if request.method == "POST" and request.headers.get("x-matsight") != "1":
            return fail("missing X-Matsight header; use the matsight pages", 403)
        try:
            return await fn(request, request.app.state.ctx)
        except USER_ERRORS as exc:
            return fail(user_message(exc))
        except RecursionError:
            return fail("the request is nested too deeply; send flat settings")
        except MemoryError as exc:
            msg = str(exc) or "a library call ran out of memory"
            return fail(f"not enough memory: {msg}; pick a smaller file or free memory", 507)
        except Exception as exc:  # noqa: BLE001
            status = getattr(exc, "http_status", 500)
            if status == 500:
                log.exception("request %s failed", request.url.path)
            return fail(str(exc) if status != 500 else user_message(exc), status)

    return wrapped

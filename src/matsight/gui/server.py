"""The GUI's web server: a small Starlette app over the library (uvicorn serves it).

Pages are static HTML/JS under ``static/``; everything else is a JSON/PNG API, one module per workflow in
:mod:`matsight.gui.routes`:

- :mod:`~.routes.files`: ``/api/info``, ``/api/ls`` (folders of the data folder), ``/files/...`` (its files);
- :mod:`~.routes.jobs`: ``/api/jobs`` (state, progress, message, error; ``POST /api/jobs/{id}/stop``);
- :mod:`~.routes.tem`: ``/api/tem/...``: open, analyse (a frame), series (a movie), images, CSV, a report;
- :mod:`~.routes.fuse`, :mod:`~.routes.restore`: ``/api/fuse/...``, ``/api/restore/...``: trainings,
  generation, enhancement and evaluations as worker processes, settings checked by the methods' configs;
- :mod:`~.routes.volume`: ``/api/run`` (a run folder's metrics history and files), ``/api/volume/...``
  (orthogonal slices of any volume).

This module assembles them (pages, middleware, the pools' lifespan) and serves the app.

Only the loopback interface by default; requests must name a loopback ``Host`` (DNS rebinding), carry the
launch's access token (:mod:`~matsight.gui.guard`), and every POST must carry the ``X-Matsight`` header and
no foreign ``Origin``, so neither other local users nor other web pages can read files or start jobs.
Library calls never run on the event loop: file reading and analyses go to worker processes with a time
limit (:mod:`~matsight.gui.pool`), rendering of results already in memory to threads.
"""

import contextlib
import logging
import threading
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from . import guard
from .jobs import JobRunner
from .paths import DataRoot
from .pool import CallPool
from .routes import files, fuse, jobs, restore, tem, volume
from .routes.common import Context

log = logging.getLogger(__name__)

__all__ = ["create_app", "serve", "LOOPBACK"]

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
PAGES = ("tem", "fuse", "restore")
CALL_TIMEOUT = 60.0  # s: a request's library call (open, slice, listing, rendering); over it: 504
STATIC = Path(str(resources.files("matsight.gui") / "static"))
WORKFLOWS = (files, jobs, tem, fuse, restore, volume)


async def _index(request):
    return FileResponse(STATIC / "index.html")


async def _page(request):
    name = request.path_params["name"]
    if name not in PAGES:
        return PlainTextResponse("no such page", 404)
    return FileResponse(STATIC / f"{name}.html")


def _routes():
    pages = [
        Route("/", _index),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/{name:str}", _page),
    ]
    api = [route for module in WORKFLOWS for route in module.ROUTES]
    return [*pages, *api, Mount("/static", app=StaticFiles(directory=STATIC), name="static")]


def _middleware(allowed_hosts, token):
    middleware = []
    if allowed_hosts is not None:
        hosts = [h.strip("[]") for h in allowed_hosts] + list(allowed_hosts)
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=sorted(set(hosts))))
    middleware.append(Middleware(guard.Guard, token=token))
    return middleware


def create_app(
    data,
    *,
    token=None,
    allowed_hosts=LOOPBACK,
    runner=None,
    call_timeout=CALL_TIMEOUT,
    calls=None,
    job_calls=None,
):
    """The Starlette application serving the data folder ``data``.

    Parameters
    ----------
    data : str, Path or DataRoot
        The data folder.
    token : str, optional
        The access token (:mod:`~matsight.gui.guard`); a random one if not given (``app.state.token``).
    allowed_hosts : sequence of str or None
        ``Host`` names accepted (DNS rebinding); ``None`` accepts any.
    runner : JobRunner, optional
        The background-job runner.
    call_timeout : float
        Time limit in seconds of a request's library call; over it the request answers 504.
    calls, job_calls : CallPool, optional
        Worker processes for the requests' calls and for the tem analysis jobs.
    """
    ctx = Context(
        root=data if isinstance(data, DataRoot) else DataRoot(data),
        runner=runner or JobRunner(),
        calls=calls or CallPool(2, timeout=call_timeout),
        job_calls=job_calls or CallPool(2, timeout=None),
        call_timeout=call_timeout,
    )
    token = token or guard.new_token()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            ctx.calls.close()  # a call still reading a hostile file ends here, not at its time limit
            ctx.job_calls.close()
            ctx.runner.shutdown()  # worker processes stop; their runs resume from the last checkpoint

    app = Starlette(routes=_routes(), middleware=_middleware(allowed_hosts, token), lifespan=lifespan)
    app.state.ctx, app.state.token = ctx, token
    app.state.root, app.state.runner = ctx.root, ctx.runner
    app.state.calls, app.state.job_calls = ctx.calls, ctx.job_calls
    return app


def serve(data=".", *, host="127.0.0.1", port=8765, open_browser=True, ready=None):
    """Run the GUI until interrupted (Ctrl-C).

    Parameters
    ----------
    data : str or Path
        The data folder: every file the GUI reads or writes lies inside it.
    host : str
        Interface to listen on; anything but loopback lets other machines start jobs (a warning is logged).
    port : int
        Port; 0 picks a free one. If the given port is busy, a free one is used instead.
    open_browser : bool
        Open the page in the default browser.
    ready : callable, optional
        Called with the URL (holding this launch's access token) once the server listens.

    Returns
    -------
    str
        The URL, with its access token.
    """
    import socket
    import webbrowser

    import uvicorn

    root = DataRoot(data)
    loopback = host in LOOPBACK
    if not loopback:
        log.warning(
            "serving on %s over plain HTTP: anyone on the network who sees the address (its token) can "
            "read files in %s and start jobs",
            host,
            root.root,
        )
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(fam, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), int(port)))
    except OSError:
        if not port:
            raise
        log.warning("port %s is busy; using a free one", port)
        sock.bind((host.strip("[]"), 0))
    sock.listen(64)
    bound = sock.getsockname()[1]
    show = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    token = guard.new_token()
    url = f"http://{show if ':' not in show else f'[{show}]'}:{bound}/?token={token}"
    app = create_app(root, token=token, allowed_hosts=LOOPBACK if loopback else None)
    # on Ctrl-C/SIGTERM, requests still waiting on a library call get 2 s, then their workers are killed
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)

    def announce():
        if ready is not None:
            ready(url)
        if open_browser:
            webbrowser.open(url)

    threading.Timer(0.5, announce).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return url

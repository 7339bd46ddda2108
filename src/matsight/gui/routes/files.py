"""The data folder: the app's facts (``/api/info``), folder listings (``/api/ls``), files (``/files/...``)."""

import functools

from starlette.responses import FileResponse
from starlette.routing import Route

from ... import __version__
from .common import endpoint, ok


@functools.cache
def _phase_names():
    from ...tem.crystals import builtin_phase_names

    return builtin_phase_names()


@endpoint
async def info(request, ctx):
    """``GET /api/info``: the data folder, matsight's version and the shipped phases."""
    phases = await ctx.in_thread(_phase_names)
    return ok({"root": str(ctx.root.root), "version": __version__, "phases": phases})


@endpoint
async def ls(request, ctx):
    """``GET /api/ls?path=``: the entries of a folder of the data folder."""
    rel = request.query_params.get("path", ".")
    entries = await ctx.in_thread(ctx.root.listdir, rel)
    return ok({"path": ctx.root.relative(ctx.root.resolve(rel, kind="dir")), "entries": entries})


@endpoint
async def files(request, ctx):
    """``GET /files/PATH``: a file of the data folder (reports and their figures)."""
    return FileResponse(ctx.root.resolve(request.path_params["path"], kind="file"))


ROUTES = [
    Route("/api/info", info),
    Route("/api/ls", ls),
    Route("/files/{path:path}", files),
]

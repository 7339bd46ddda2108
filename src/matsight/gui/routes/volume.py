"""A run folder's metrics history and files (``/api/run``); orthogonal slices of any volume (the viewer)."""

from starlette.routing import Route

from ..._errors import InputError
from . import fields
from .common import endpoint, ok, png


@endpoint
async def run(request, ctx):
    """``GET /api/run?run=``: a run folder's metrics history, reports and volumes."""
    folder = ctx.root.resolve(request.query_params.get("run"), kind="dir")
    return ok(await ctx.calls.call("run.listing", str(ctx.root.root), str(folder)))


def _volume_path(ctx, q):
    path = ctx.root.resolve(q.get("path"))
    if path.is_dir() and path.suffix.lower() != ".zarr":
        raise InputError(
            f"{ctx.root.relative(path)} is a folder; pick a volume file (.tif, .npy) or a .zarr store"
        )
    return path


@endpoint
async def info(request, ctx):
    """``GET /api/volume/info?path=``: a volume's shape, type and value range."""
    path = _volume_path(ctx, request.query_params)
    shown = await ctx.calls.call("volume.info", str(path), key=str(path))
    return ok({"path": ctx.root.relative(path), **shown})


@endpoint
async def slice_png(request, ctx):
    """``GET /api/volume/slice?path=&axis=&index=&cmap=``: one orthogonal slice as PNG."""
    q = request.query_params
    path = _volume_path(ctx, q)
    axis = fields.whole(q.get("axis"), "axis", default=0, lo=0)
    index = fields.whole(q.get("index"), "slice", default=None, lo=0)
    cmap = fields.text(q.get("cmap"), "colour map")
    return png(await ctx.calls.call("volume.slice", str(path), axis, index, cmap, key=str(path)))


ROUTES = [
    Route("/api/run", run),
    Route("/api/volume/info", info),
    Route("/api/volume/slice", slice_png),
]

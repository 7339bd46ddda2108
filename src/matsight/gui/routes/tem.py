"""HRTEM phase identification: open a file, analyse a frame or a movie, the result's images, CSV and report.

The analysis settings are checked by the method's own config (:func:`matsight.tem.make_config`, the one
``matsight tem analyze`` builds from its options): the same names, defaults and one-line messages.
"""

import functools

import numpy as np
import yaml
from starlette.responses import Response
from starlette.routing import Route

from ..._errors import InputError
from .. import render, tasks
from . import fields
from .common import body, endpoint, fail, ok, png

IMAGES = ("image.png", "fft.png", "fft_figure.png", "map_figure.png")
# the page's settings that are fields of TemConfig (flat names, as the CLI's options)
SETTINGS = ("tolerance", "angle_tolerance", "detector", "min_intensity", "d_min", "d_max")
SERIES_SETTINGS = (*SETTINGS, "frame_time")


YAML_SOURCE = tasks.YAML_BOX  # the source recorded for the page's YAML phases without one


def _yaml_phases(b):
    """The phases of the page's YAML box (a mapping or a list of them), each with its source."""
    entry = fields.text(b.get("phase_yaml"), "phase entry (YAML)", default="")
    if not entry:
        return []
    try:
        spec = yaml.safe_load(entry)
    except yaml.YAMLError as exc:
        raise InputError(f"the phase entry is not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        msg = "the phase entry (YAML) is nested too deeply; write it like the examples"
        raise InputError(msg) from None
    specs = spec if isinstance(spec, list) else [spec]
    return [{**s, "source": s.get("source") or YAML_SOURCE} if isinstance(s, dict) else s for s in specs]


def _phase_files(ctx, b):
    """The structure files of the data folder the page added (absolute paths)."""
    return [
        str(ctx.root.resolve(rel, kind="file"))
        for rel in fields.names(b.get("phase_files"), "phase files")
        if rel.strip()
    ]


def _calibration(ctx, b):
    """The calibration file of the data folder the page picked (None: the file's or the typed pixel size)."""
    rel = fields.text(b.get("calibration"), "calibration file")
    if rel is None:
        return None
    if b.get("pixel_size") not in (None, ""):
        raise InputError("give either a pixel size or a calibration file, not both; clear one of them")
    return str(ctx.root.resolve(rel, kind="file"))


def settings(ctx, b, names=SETTINGS):
    """The analysis keywords of a request, validated by :func:`matsight.tem.make_config` (its defaults where
    the page sends nothing), so that nothing is queued on a mistake; ``record``: what a saved folder
    records of them (the page's phase choice, files relative to the data folder).
    """
    from ...tem.config import (
        FLAT,
        make_config,
    )  # the method imports torch: on the first request, not at start

    given = {k: b[k] for k in names if b.get(k) not in (None, "")}
    config = make_config(**given)
    kw = {k: getattr(getattr(config, FLAT[k]), k) for k in names}
    ticked, files = list(fields.names(b.get("phases"), "phases")), _phase_files(ctx, b)
    off = list(fields.names(b.get("phases_off"), "unticked phases"))
    cal = _calibration(ctx, b)
    kw.update(
        pixel_size=fields.pixel_size(b.get("pixel_size")),
        calibration=cal,
        phases=(ticked + files + _yaml_phases(b)) or None,  # none: the shipped ones, as the CLI
        phases_off=off,
    )
    record = {k: kw[k] for k in names}
    record.update(
        pixel_size=kw["pixel_size"],
        calibration_file=None if cal is None else ctx.root.relative(cal),
        phases_ticked=ticked,
        phases_off=off,
        phase_files=[ctx.root.relative(f) for f in files],
        phase_yaml=fields.text(b.get("phase_yaml"), "phase entry (YAML)", default=""),
    )
    kw["record"] = record
    kw["files"] = dict(zip(files, record["phase_files"], strict=True))
    return kw


def _png(what, res, img, view):
    """PNG bytes of one of :data:`IMAGES` of an analysis result (``view``: what the page was sent)."""
    from ...tem.report import fft_figure, phase_map_figure

    if what == "image.png":
        return render.png(render.gray(img))
    if what == "fft.png":
        b = view["fft_box"]
        box = res.fft_display[b["y0"] : b["y0"] + b["height"], b["x0"] : b["x0"] + b["width"]]
        return render.png((np.clip(box, 0, 1) * 255).astype(np.uint8))
    if what == "fft_figure.png":
        return render.figure_png(fft_figure(res))
    return render.figure_png(phase_map_figure(img, res))


@endpoint
async def open_file(request, ctx):
    """``GET /api/tem/open?path=&pixel_size=``: shape, frames and calibration of a file."""
    q = request.query_params
    path = ctx.root.resolve(q.get("path"), kind="file")
    pixel_size = fields.pixel_size(q.get("pixel_size"))
    cal = _calibration(ctx, q)
    shown = await ctx.calls.call("tem.open", path, pixel_size=pixel_size, calibration=cal)
    return ok({"path": ctx.root.relative(path), **shown})


@endpoint
async def phase_list(request, ctx):
    """``POST /api/tem/phases``: the page's phase list — the shipped phases, and those its phase files and
    YAML box add (read in a worker, as every file), each with its source.
    """
    b = await body(request)
    files = _phase_files(ctx, b)
    added = await ctx.calls.call("tem.phases", files + _yaml_phases(b))
    for p in added:
        p["file"] = ctx.root.relative(p["file"]) if p["file"] in files else p["file"]
    builtin = await ctx.calls.call("tem.phases", None)
    return ok({"builtin": builtin, "added": added})


@endpoint
async def analyze(request, ctx):
    """``POST /api/tem/analyze``: analyse one frame (a job; the page polls it)."""
    b = await body(request)
    path = ctx.root.resolve(b.get("path"), kind="file")
    kw = settings(ctx, b)
    kw["frame"] = fields.whole(b.get("frame"), "frame", lo=0)
    job = ctx.runner.submit(
        "tem.analyze",
        lambda job: tasks.tem_analyze(job, call=ctx.analyze_call, path=path, **kw),
        title=f"tem analyse {path.name}" + (f" frame {kw['frame']}" if kw["frame"] is not None else ""),
        params={"path": ctx.root.relative(path), "frame": kw["frame"]},
        stoppable=True,
    )
    return ok(ctx.job_dict(job))


@endpoint
async def series(request, ctx):
    """``POST /api/tem/series``: analyse every frame of a movie (a job that can be stopped)."""
    b = await body(request)
    path = ctx.root.resolve(b.get("path"), kind="file")
    kw = settings(ctx, b, SERIES_SETTINGS)
    job = ctx.runner.submit(
        "tem.series",
        lambda job: tasks.tem_series(job, call=ctx.job_calls.run, path=path, **kw),
        title=f"tem series {path.name}",
        params={"path": ctx.root.relative(path)},
        stoppable=True,
    )
    return ok(ctx.job_dict(job))


@endpoint
async def image(request, ctx):
    """``GET /api/tem/{job}/{what}``: one of :data:`IMAGES` of a finished analysis."""
    job = ctx.finished_job(request, "tem")
    what = request.path_params["what"]
    pl = job.payload
    if "series" in pl:
        raise InputError("a series job has no images; use its CSV or the frame slider")
    if what not in IMAGES:
        return fail(f"unknown image {what!r}; one of {', '.join(IMAGES)}", 404)
    return png(await ctx.in_thread(_png, what, pl["result"], pl["image"], job.result))


@endpoint
async def phase_map(request, ctx):
    """``GET /api/tem/{job}/map/{phase}``: a phase's map as a coloured transparent PNG."""
    job = ctx.finished_job(request, "tem.analyze")
    res = job.payload["result"]
    name = request.path_params["phase"]
    if res.maps is None or name not in res.maps.masks:
        raise InputError(f"no map for phase {name!r} in job {job.id}")
    color = next((p["color"] for p in job.result["phases"] if p["name"] == name), "#ff0000")
    mask = functools.partial(np.equal, res.maps.labels, res.maps.phase_names.index(name) + 1)
    return png(await ctx.in_thread(lambda: render.png(render.mask_rgba(mask(), color))))


@endpoint
async def csv(request, ctx):
    """``GET /api/tem/{job}/csv``: the spot table (or the series' table) as CSV."""
    from ...tem.report import records_to_csv

    job = ctx.finished_job(request, "tem")
    pl = job.payload
    if "series" in pl:
        text, name = await ctx.in_thread(lambda: records_to_csv(pl["series"].to_records())), "series.csv"
    else:
        text = await ctx.in_thread(lambda: records_to_csv(pl["result"].table()))
        text, name = text or "row,col,d_angstrom,phase\n", "spots.csv"
    return Response(
        text, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@endpoint
async def save(request, ctx):
    """``POST /api/tem/{job}/save``: write the CLI's outputs of a finished job into a run folder."""
    b = await body(request)
    src = ctx.finished_job(request, "tem")
    out = ctx.root.run_dir(b.get("run"), default_prefix=src.kind.replace(".", "-"))
    job = ctx.runner.submit(
        "tem.save",
        lambda job: tasks.tem_save(job, payload=src.payload, out_dir=out, source=src.payload["path"]),
        title=f"save {src.title}",
        run_dir=out,
    )
    return ok(ctx.job_dict(job))


ROUTES = [
    Route("/api/tem/open", open_file),
    Route("/api/tem/phases", phase_list, methods=["POST"]),
    Route("/api/tem/analyze", analyze, methods=["POST"]),
    Route("/api/tem/series", series, methods=["POST"]),
    Route("/api/tem/{job}/csv", csv),
    Route("/api/tem/{job}/map/{phase}", phase_map),
    Route("/api/tem/{job}/save", save, methods=["POST"]),
    Route("/api/tem/{job}/{what}", image),
]

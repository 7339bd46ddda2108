"""The GUI's web server: a small Starlette app over the library (uvicorn serves it).

Pages are static HTML/JS under ``static/``; everything else is a JSON/PNG API:

- ``/api/ls``: folders of the data folder; ``/files/...``: its files (HTML reports and their figures);
- ``/api/jobs``: background jobs (state, progress, message, error; ``POST /api/jobs/{id}/stop``);
- ``/api/tem/...``: open, analyse (a frame), series (a movie), images, CSV/PNG exports, save a report;
- ``/api/fuse/...``, ``/api/restore/...``: start training / generation / evaluation as worker processes;
- ``/api/run``: a run folder's metrics history and files; ``/api/volume``: orthogonal slices of any volume.

Only the loopback interface by default; requests must name a loopback ``Host`` (DNS rebinding), carry the
launch's access token (:mod:`~matsight.gui.guard`), and every POST must carry the ``X-Matsight`` header and
no foreign ``Origin``, so neither other local users nor other web pages can read files or start jobs.
Library calls never run on the event loop: file reading and analyses go to worker processes with a time
limit (:mod:`~matsight.gui.pool`), rendering of results already in memory to threads.
"""

import asyncio
import contextlib
import functools
import logging
import re
import threading
from importlib import resources
from pathlib import Path

import numpy as np

from .._errors import InputError
from . import guard, render, tasks
from .jobs import JobRunner
from .messages import USER_ERRORS, jsonable, user_message
from .paths import DataRoot, _short
from .pool import CallPool, TimedOut
from .views import VOLUME_SUFFIXES

log = logging.getLogger(__name__)

__all__ = ["create_app", "serve", "LOOPBACK"]

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
PAGES = ("tem", "fuse", "restore")
TEM_SUFFIXES = (".dm3", ".dm4", ".mrc", ".mrcs", ".ser", ".emi", ".emd", ".tif", ".tiff", ".npy", ".png")
CALL_TIMEOUT = 60.0  # s: a request's library call (open, slice, listing, rendering); over it: 504
ANALYZE_TIMEOUT = 600.0  # s: one frame's analysis job (a series has none: the page can stop it)


TEM_IMAGES = ("image.png", "fft.png", "fft_figure.png", "map_figure.png")


@functools.cache
def _phase_names():
    from ..tem.crystals import builtin_phase_names

    return builtin_phase_names()


def _tem_png(what, res, img, view):
    """PNG bytes of one of :data:`TEM_IMAGES` of an analysis result (``view``: what the page was sent)."""
    if what == "image.png":
        return render.png(render.gray(img))
    if what == "fft.png":
        b = view["fft_box"]
        box = res.fft_display[b["y0"] : b["y0"] + b["height"], b["x0"] : b["x0"] + b["width"]]
        return render.png((np.clip(box, 0, 1) * 255).astype(np.uint8))
    if what == "fft_figure.png":
        from ..tem.report import fft_figure

        return render.figure_png(fft_figure(res))
    from ..tem.report import phase_map_figure

    return render.figure_png(phase_map_figure(img, res))


def _range_text(lo, hi, gt=False):
    if lo is not None and hi is not None:
        return f" between {lo:g} and {hi:g}"
    if lo is not None:
        return f" {'>' if gt else '≥'} {lo:g}"
    if hi is not None:
        return f" ≤ {hi:g}"
    return ""


def _float(v, name, *, default=None, lo=None, hi=None, gt=False):
    """A finite number in [lo, hi] (``gt``: strictly above ``lo``) from a JSON value or text."""
    if v is None or v == "":
        return default
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise InputError(f"{name} must be a number, got {_short(v)}")
    try:
        x = float(v)
    except ValueError:
        raise InputError(f"{name} must be a number, got {_short(v)}") from None
    bad_lo = lo is not None and (x <= lo if gt else x < lo)
    if not np.isfinite(x) or bad_lo or (hi is not None and x > hi):
        raise InputError(f"{name} must be a finite number{_range_text(lo, hi, gt)}, got {_short(v)}")
    return x


INT_MAX = 2**63 - 1  # what numpy, torch and the file formats can hold


def _int(v, name, *, default=None, lo=None, hi=INT_MAX):
    """A whole number in [lo, hi] from a JSON value or text (``1.0`` is fine; ``1.5``, ``true`` are not)."""
    if v is None or v == "":
        return default
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise InputError(f"{name} must be a whole number, got {_short(v)}")
    try:
        x = int(v) if not isinstance(v, float) else None
    except ValueError:
        x = None
    if x is None:  # a float, or text like "1e3" / "2.0"
        try:
            f = float(v)
        except ValueError:
            raise InputError(f"{name} must be a whole number, got {_short(v)}") from None
        if not np.isfinite(f) or f != int(f):
            raise InputError(f"{name} must be a whole number, got {_short(v)}")
        x = int(f)
    if x > INT_MAX:
        raise InputError(f"{name} is too large, got {_short(v)}; give a smaller number")
    shown_hi = None if hi == INT_MAX else hi
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise InputError(f"{name} must be a whole number{_range_text(lo, shown_hi)}, got {_short(v)}")
    return x


def _str(v, name, *, default=None):
    """Text (stripped) or ``default`` when absent/empty; anything else is refused."""
    if v is None:
        return default
    if not isinstance(v, str):
        raise InputError(f"{name} must be text, got {_short(v)}")
    return v.strip() or default


def _bool(v, name, *, default=False):
    """A checkbox value: JSON true/false (or "true"/"false", 1/0); anything else is refused."""
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return v.strip().lower() in ("true", "1", "yes", "on")
    raise InputError(f"{name} must be true or false, got {_short(v)}")


def _str_list(v, name):
    """A list of texts (one text is a list of one); anything else is refused."""
    if v in (None, ""):
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InputError(f"{name} must be a list of names, got {_short(v)}")
    return v


DEVICES = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")


def _device(v):
    dev = _str(v, "device", default="cpu")
    if not DEVICES.fullmatch(dev.lower()):
        raise InputError(f"unknown device {_short(dev)}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def _pixel_size(v):
    if v in (None, ""):
        return None
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise InputError(f"pixel size must be one number in nm or 'PY,PX', got {_short(v)}")
    vals = [p for p in str(v).replace(";", ",").split(",") if p.strip()]
    if len(vals) not in (1, 2):
        raise InputError(f"pixel size must be one number in nm or 'PY,PX', got {_short(v)}")
    out = [_float(p, "pixel size (nm)", lo=0, gt=True) for p in vals]
    return out[0] if len(out) == 1 else tuple(out)


def _overrides(text):
    if text in (None, "", {}):
        return None
    if isinstance(text, dict):
        return text
    example = 'advanced settings must be a JSON object like {"output_size": 32}'
    if not isinstance(text, str):
        raise InputError(f"{example}, got {_short(text)}")
    try:
        val = guard.loads(text, "advanced settings")
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"{example}: {exc}") from None
    if not isinstance(val, dict):
        raise InputError(example)
    return val


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
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    root = data if isinstance(data, DataRoot) else DataRoot(data)
    runner = runner or JobRunner()
    token = token or guard.new_token()
    calls = calls or CallPool(2, timeout=call_timeout)
    job_calls = job_calls or CallPool(2, timeout=None)
    analyze_call = functools.partial(job_calls.run, timeout=ANALYZE_TIMEOUT)
    static_dir = Path(str(resources.files("matsight.gui") / "static"))

    def ok(obj, status=200):
        return JSONResponse(jsonable(obj), status_code=status)

    def fail(msg, status=400):
        return JSONResponse({"error": msg}, status_code=status)

    def endpoint(fn):
        # user errors → 400 {"error": message}, too large → 413, out of time → 503/504, out of memory → 507;
        # bugs → 500 with one line, the traceback only in the server log
        async def wrapped(request: Request):
            if request.method == "POST" and request.headers.get("x-matsight") != "1":
                return fail("missing X-Matsight header; use the matsight pages", 403)
            try:
                return await fn(request)
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

    async def in_thread(fn, *args):
        # work on data already in memory (rendering a result): bounded, so a thread; the limit keeps the
        # request from waiting without end on a busy machine
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), call_timeout)
        except TimeoutError:
            raise TimedOut(f"the server took longer than {call_timeout:g} s; try again") from None

    async def body(request):
        val = await guard.read_json(request)
        if not isinstance(val, dict):
            raise InputError("the request body must be a JSON object")
        return val

    def job_dict(job):
        return job.to_dict(relative=root.relative)

    def finished_job(request, kind):
        job = runner.get(request.path_params["job"])
        if not job.kind.startswith(kind):
            raise InputError(f"job {job.id} is a {job.kind} job, not {kind}")
        if job.state != "done" or job.payload is None:
            raise InputError(
                f"job {job.id} has no results ({job.state}{': ' + job.error if job.error else ''})"
            )
        return job

    # ------------------------------------------------------------------------------------------ pages
    async def index(request):
        return FileResponse(static_dir / "index.html")

    async def page(request):
        name = request.path_params["name"]
        if name not in PAGES:
            return PlainTextResponse("no such page", 404)
        return FileResponse(static_dir / f"{name}.html")

    # ------------------------------------------------------------------------------------------ general
    @endpoint
    async def api_info(request):
        from .. import __version__

        return ok({"root": str(root.root), "version": __version__, "phases": await in_thread(_phase_names)})

    @endpoint
    async def api_ls(request):
        rel = request.query_params.get("path", ".")
        entries = await in_thread(root.listdir, rel)
        return ok({"path": root.relative(root.resolve(rel, kind="dir")), "entries": entries})

    @endpoint
    async def files(request):
        full = root.resolve(request.path_params["path"], kind="file")
        return FileResponse(full)

    @endpoint
    async def api_jobs(request):
        return ok({"jobs": [job_dict(j) for j in runner.list()]})

    @endpoint
    async def api_job(request):
        return ok(job_dict(runner.get(request.path_params["job"])))

    @endpoint
    async def api_job_stop(request):
        return ok(job_dict(runner.stop(request.path_params["job"])))

    # ------------------------------------------------------------------------------------------ tem
    def tem_settings(b):
        phases = list(_str_list(b.get("phases"), "phases"))
        for rel in _str_list(b.get("phase_files"), "phase files"):
            if rel.strip():
                phases.append(str(root.resolve(rel, kind="file")))
        text = _str(b.get("phase_yaml"), "phase entry (YAML)", default="")
        if text:
            import yaml

            try:
                spec = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise InputError(f"the phase entry is not valid YAML: {str(exc).splitlines()[0]}") from None
            except RecursionError:
                msg = "the phase entry (YAML) is nested too deeply; write it like the examples"
                raise InputError(msg) from None
            phases.extend(spec if isinstance(spec, list) else [spec])
        detector = _str(b.get("detector"), "detector", default="classical")
        kw = {
            "pixel_size": _pixel_size(b.get("pixel_size")),
            "phases": phases or None,
            "tolerance": _float(b.get("tolerance"), "tolerance", default=0.02, lo=1e-4, hi=0.5),
            "angle_tolerance": _float(
                b.get("angle_tolerance"), "angle tolerance", default=2.0, lo=0.01, hi=45
            ),
            "detector": detector,
            "min_intensity": _float(b.get("min_intensity"), "minimum intensity", default=0.01, lo=0, hi=0.99),
            "d_min": _float(b.get("d_min"), "d min (Å)", default=1.0, lo=0.1, hi=100),
            "d_max": _float(b.get("d_max"), "d max (Å)", default=15.0, lo=0.2, hi=1000),
        }
        from ..tem import make_config

        # the library's own checks (detector name, d range), here so that nothing is queued on a mistake
        make_config(**{k: v for k, v in kw.items() if k not in ("pixel_size", "phases")})
        return kw

    @endpoint
    async def tem_open(request):
        path = root.resolve(request.query_params.get("path"), kind="file")
        pixel_size = _pixel_size(request.query_params.get("pixel_size"))
        info = await calls.call("tem.open", path, pixel_size=pixel_size)
        return ok({"path": root.relative(path), **info})

    @endpoint
    async def tem_analyze(request):
        b = await body(request)
        path = root.resolve(b.get("path"), kind="file")
        kw = tem_settings(b)
        kw["frame"] = _int(b.get("frame"), "frame", lo=0)
        job = runner.submit(
            "tem.analyze",
            lambda job: tasks.tem_analyze(job, call=analyze_call, path=path, **kw),
            title=f"tem analyse {path.name}" + (f" frame {kw['frame']}" if kw["frame"] is not None else ""),
            params={"path": root.relative(path), "frame": kw["frame"]},
            stoppable=True,
        )
        return ok(job_dict(job))

    @endpoint
    async def tem_series(request):
        b = await body(request)
        path = root.resolve(b.get("path"), kind="file")
        kw = tem_settings(b)
        kw["frame_time"] = _float(b.get("frame_time"), "frame time (s)", lo=0, gt=True)
        job = runner.submit(
            "tem.series",
            lambda job: tasks.tem_series(job, call=job_calls.run, path=path, **kw),
            title=f"tem series {path.name}",
            params={"path": root.relative(path)},
            stoppable=True,
        )
        return ok(job_dict(job))

    @endpoint
    async def tem_image(request):
        job = finished_job(request, "tem")
        what = request.path_params["what"]
        pl = job.payload
        if "series" in pl:
            raise InputError("a series job has no images; use its CSV or the frame slider")
        if what not in TEM_IMAGES:
            return fail(f"unknown image {what!r}; one of {', '.join(TEM_IMAGES)}", 404)
        data = await in_thread(_tem_png, what, pl["result"], pl["image"], job.result)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @endpoint
    async def tem_map(request):
        job = finished_job(request, "tem.analyze")
        res = job.payload["result"]
        name = request.path_params["phase"]
        if res.maps is None or name not in res.maps.masks:
            raise InputError(f"no map for phase {name!r} in job {job.id}")
        color = next((p["color"] for p in job.result["phases"] if p["name"] == name), "#ff0000")
        mask = functools.partial(np.equal, res.maps.labels, res.maps.phase_names.index(name) + 1)
        data = await in_thread(lambda: render.png(render.mask_rgba(mask(), color)))
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    @endpoint
    async def tem_csv(request):
        from ..tem.report import records_to_csv

        job = finished_job(request, "tem")
        pl = job.payload
        if "series" in pl:
            text, name = await in_thread(lambda: records_to_csv(pl["series"].to_records())), "series.csv"
        else:
            text = await in_thread(lambda: records_to_csv(pl["result"].table()))
            text, name = text or "row,col,d_angstrom,phase\n", "spots.csv"
        return Response(
            text, media_type="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    @endpoint
    async def tem_save(request):
        b = await body(request)
        src = finished_job(request, "tem")
        out = root.run_dir(b.get("run"), default_prefix=src.kind.replace(".", "-"))
        job = runner.submit(
            "tem.save",
            lambda job: tasks.tem_save(job, payload=src.payload, out_dir=out, source=src.payload["path"]),
            title=f"save {src.title}",
            run_dir=out,
        )
        return ok(job_dict(job))

    # ---------------------------------------------------------------------------------- fuse / restore
    def start(kw, task, name, *, run_dir, params):
        """Start worker task ``task`` (kind = task, title "<task> <name>") on the locked ``run_dir``."""
        title = f"{task.replace('.', ' ')} {name}"
        job = runner.submit_process(task, task, kw, title=title, run_dir=run_dir, params=params)
        return ok(job_dict(job))

    def file_arg(b, key, *, required=True):
        v = b.get(key)
        if v is None or (isinstance(v, str) and not v.strip()):
            if required:
                raise InputError(f"choose the {key.replace('_', ' ')} file")
            return None
        return str(root.resolve(v, kind=None))

    def iterations_budget(b):
        iters = _int(b.get("iterations"), "iterations", lo=1)
        budget = _str(b.get("budget"), "time budget")
        if budget is not None:
            from .._duration import parse_duration

            parse_duration(budget)  # a bad duration is refused before a process starts
        if iters is None and budget is None:
            raise InputError("give a time budget (e.g. 20m) or a number of iterations")
        return iters, budget

    @endpoint
    async def fuse_train(request):
        b = await body(request)
        iters, budget = iterations_budget(b)
        kw = {
            "lr": file_arg(b, "lr"),
            "hr": file_arg(b, "hr"),
            "hr_y": file_arg(b, "hr_y", required=False),
            "hr_z": file_arg(b, "hr_z", required=False),
            "preset": _str(b.get("preset"), "preset", default="cpu"),
            "scale": _float(b.get("scale"), "scale", default=4.0, lo=1, hi=8),
            "mode": _str(b.get("mode"), "mode", default="resolve"),
            "anisotropic": _bool(b.get("anisotropic"), "anisotropic"),
            "iterations": iters,
            "budget": budget,
            "seed": _int(b.get("seed"), "seed", default=0, lo=0),
            "metrics_every": _int(b.get("metrics_every"), "metrics every", default=None, lo=1),
            "overrides": _overrides(b.get("overrides")),
            "device": _device(b.get("device")),
            "resume": _bool(b.get("resume"), "resume", default=True),
        }
        from ..fuse.config import make_config

        # validate the settings here so the page gets the message at once, not from the worker
        make_config(kw["preset"], scale=kw["scale"], mode=kw["mode"], settings=kw["overrides"])
        inputs = [kw[k] for k in ("lr", "hr", "hr_y", "hr_z")]
        run = root.run_dir(b.get("run"), default_prefix="fuse", inputs=inputs)
        kw["out_dir"] = str(run)
        return start(kw, "fuse.train", run.name, run_dir=run, params={"run": root.relative(run)})

    @endpoint
    async def fuse_generate(request):
        b = await body(request)
        if not _str(b.get("run"), "run folder"):
            raise InputError("choose the run folder of a fuse training")
        run = root.resolve(b.get("run"), kind="dir")
        lr = file_arg(b, "lr")
        out = root.output(
            _str(b.get("out"), "output") or f"{root.relative(run)}/sr.tif",
            kind="file",
            inputs=[run, lr],
            what="output",
            suffixes=VOLUME_SUFFIXES,
        )
        kw = {
            "run": str(run),
            "lr": lr,
            "out": str(out),
            "seed": _int(b.get("seed"), "seed", default=0, lo=0),
            "samples": _int(b.get("samples"), "samples", default=1, lo=1),
            "device": _device(b.get("device")),
        }
        return start(kw, "fuse.generate", out.name, run_dir=out.parent, params={"out": root.relative(out)})

    @endpoint
    async def fuse_evaluate(request):
        b = await body(request)
        kw = {
            "sr": file_arg(b, "sr"),
            "hr": file_arg(b, "hr"),
            "hr_y": file_arg(b, "hr_y", required=False),
            "hr_z": file_arg(b, "hr_z", required=False),
            "lr": file_arg(b, "lr", required=False),
            "truth": file_arg(b, "truth", required=False),
        }
        out = root.run_dir(b.get("run"), default_prefix="fuse-eval", inputs=list(kw.values()))
        kw["out_dir"] = str(out)
        return start(kw, "fuse.evaluate", out.name, run_dir=out, params={"run": root.relative(out)})

    @endpoint
    async def restore_register(request):
        b = await body(request)
        from ..restore.register import parse_scale

        scale = b.get("scale")
        if scale is None or scale == "":
            scale = "2"
        if isinstance(scale, bool) or not isinstance(scale, str | int | float):
            raise InputError(
                f"scale must be a number (LQ voxel / HQ voxel, e.g. 2) or 'SZ,SY,SX', got {_short(scale)}"
            )
        kw = {
            "lq": file_arg(b, "lq"),
            "hq": file_arg(b, "hq"),
            "scale": parse_scale(scale),
            "mask": _bool(b.get("mask"), "mask", default=True),
            "deformable": _bool(b.get("deformable"), "deformable"),
        }
        # the pair folder is written atomically (replaced as a whole): it may not hold the scans
        out = root.run_dir(
            b.get("run"), default_prefix="restore-pair", inputs=[kw["lq"], kw["hq"]], replaced=True
        )
        kw["out_dir"] = str(out)
        return start(kw, "restore.register", out.name, run_dir=out, params={"run": root.relative(out)})

    @endpoint
    async def restore_train(request):
        b = await body(request)
        iters, budget = iterations_budget(b)
        kw = {
            "pair": file_arg(b, "pair"),
            "preset": _str(b.get("preset"), "preset", default="cpu"),
            "iterations": iters,
            "budget": budget,
            "device": _device(b.get("device")),
            "resume": _bool(b.get("resume"), "resume", default=True),
            "overrides": _overrides(b.get("overrides")),
        }
        # validate the settings here so the page gets the message at once, not from the worker
        tasks.restore_train_config(kw["preset"], iters, budget, kw["overrides"])
        run = root.run_dir(b.get("run"), default_prefix="restore", inputs=[kw["pair"]])
        kw["out_dir"] = str(run)
        return start(kw, "restore.train", run.name, run_dir=run, params={"run": root.relative(run)})

    @endpoint
    async def restore_apply(request):
        b = await body(request)
        if not _str(b.get("model"), "model folder"):
            raise InputError("choose the model folder of a restore training")
        model = root.resolve(b.get("model"), kind="dir")
        volume = file_arg(b, "volume")
        # the output folder is written atomically (replaced as a whole): it may not hold the inputs
        out = root.output(
            _str(b.get("out"), "output folder") or f"{root.relative(model)}/enhanced",
            kind="dir",
            inputs=[model, volume],
            what="output folder",
            replaced=True,
        )
        steps = b.get("steps")
        if not (isinstance(steps, str) and steps.strip().lower() == "auto"):
            steps = _int(steps, "steps N (or 'auto')", default=8, lo=1, hi=10_000)
        kw = {
            "model": str(model),
            "volume": volume,
            "out": str(out),
            "steps": "auto" if isinstance(steps, str) else steps,
            "device": _device(b.get("device")),
        }
        return start(kw, "restore.apply", out.name, run_dir=out.parent, params={"out": root.relative(out)})

    @endpoint
    async def restore_evaluate(request):
        b = await body(request)
        if not _str(b.get("out"), "enhanced output folder"):
            raise InputError("choose the enhanced output folder (step 3)")
        out = root.resolve(b.get("out"), kind="dir")
        hq, lq = file_arg(b, "hq"), file_arg(b, "lq", required=False)
        report = root.output(
            _str(b.get("report"), "report folder") or f"{root.relative(out)}/report",
            kind="dir",
            inputs=[out, hq, lq],
            what="report folder",
        )
        kw = {
            "out": str(out),
            "hq": hq,
            "lq": lq,
            "report_dir": str(report),
            "spacing": _float(b.get("spacing"), "pixel size", default=1.0, lo=0, gt=True),
            "sift": _bool(b.get("sift"), "sift", default=True),
        }
        return start(
            kw, "restore.evaluate", out.name, run_dir=report, params={"report": root.relative(report)}
        )

    @endpoint
    async def api_run(request):
        run = root.resolve(request.query_params.get("run"), kind="dir")
        listing = await calls.call("run.listing", str(root.root), str(run))
        return ok(listing)

    # ------------------------------------------------------------------------------------------ volumes
    def volume_path(q):
        path = root.resolve(q.get("path"))
        if path.is_dir() and path.suffix.lower() != ".zarr":
            raise InputError(
                f"{root.relative(path)} is a folder; pick a volume file (.tif, .npy) or a .zarr store"
            )
        return path

    @endpoint
    async def volume_info(request):
        path = volume_path(request.query_params)
        info = await calls.call("volume.info", str(path), key=str(path))
        return ok({"path": root.relative(path), **info})

    @endpoint
    async def volume_slice(request):
        q = request.query_params
        path = volume_path(q)
        axis = _int(q.get("axis"), "axis", default=0, lo=0)
        index = _int(q.get("index"), "slice", default=None, lo=0)
        cmap = _str(q.get("cmap"), "colour map")
        data = await calls.call("volume.slice", str(path), axis, index, cmap, key=str(path))
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    routes = [
        Route("/", index),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
        Route("/{name:str}", page),
        Route("/api/info", api_info),
        Route("/api/ls", api_ls),
        Route("/files/{path:path}", files),
        Route("/api/jobs", api_jobs),
        Route("/api/jobs/{job}", api_job),
        Route("/api/jobs/{job}/stop", api_job_stop, methods=["POST"]),
        Route("/api/tem/open", tem_open),
        Route("/api/tem/analyze", tem_analyze, methods=["POST"]),
        Route("/api/tem/series", tem_series, methods=["POST"]),
        Route("/api/tem/{job}/csv", tem_csv),
        Route("/api/tem/{job}/map/{phase}", tem_map),
        Route("/api/tem/{job}/save", tem_save, methods=["POST"]),
        Route("/api/tem/{job}/{what}", tem_image),
        Route("/api/fuse/train", fuse_train, methods=["POST"]),
        Route("/api/fuse/generate", fuse_generate, methods=["POST"]),
        Route("/api/fuse/evaluate", fuse_evaluate, methods=["POST"]),
        Route("/api/restore/register", restore_register, methods=["POST"]),
        Route("/api/restore/train", restore_train, methods=["POST"]),
        Route("/api/restore/apply", restore_apply, methods=["POST"]),
        Route("/api/restore/evaluate", restore_evaluate, methods=["POST"]),
        Route("/api/run", api_run),
        Route("/api/volume/info", volume_info),
        Route("/api/volume/slice", volume_slice),
        Mount("/static", app=StaticFiles(directory=static_dir), name="static"),
    ]
    middleware = []
    if allowed_hosts is not None:
        hosts = [h.strip("[]") for h in allowed_hosts] + list(allowed_hosts)
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=sorted(set(hosts))))
    middleware.append(Middleware(guard.Guard, token=token))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            calls.close()  # a call still reading a hostile file ends here, not at its time limit
            job_calls.close()
            runner.shutdown()  # worker processes stop; their runs resume from the last checkpoint

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.root, app.state.runner, app.state.token = root, runner, token
    app.state.calls, app.state.job_calls = calls, job_calls
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

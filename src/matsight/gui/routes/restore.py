"""InDI restoration: register an LQ/HQ pair, train, enhance (apply) and evaluate, each a worker process.

Settings are checked as ``matsight restore`` checks them: the training's by
:func:`matsight.restore.config.make_config` (with the CLI's budget rule), the sampling steps by the config's
``inference.indi_steps`` or ``"auto"``, the scale by :func:`matsight.restore.register.parse_scale`. The
defaults are the CLI's (:data:`DEFAULTS`).
"""

from starlette.routing import Route

from ..._errors import InputError
from .. import tasks
from ..paths import _short
from . import fields
from .common import body, endpoint

# the CLI's defaults (`matsight restore register/train/apply/evaluate`) for what the page may leave out
DEFAULTS = {
    "register": {"scale": "2", "mask": True, "deformable": False},
    "train": {"preset": "cpu", "budget": None, "iterations": None, "resume": True, "device": fields.DEVICE},
    "apply": {"steps": "auto", "device": fields.DEVICE},
    "evaluate": {"spacing": 1.0, "sift": True},
}


def indi_steps(v):
    """The InDI sampling steps N: ``"auto"`` (the N chosen on the training pair's validation slices, the
    CLI's default) or a count the config's ``inference.indi_steps`` accepts.
    """
    if v is None or v == "":
        return DEFAULTS["apply"]["steps"]
    if isinstance(v, str) and v.strip().lower() == "auto":
        return "auto"
    if isinstance(v, bool):
        raise InputError(f"steps N must be a whole number or 'auto', got {_short(v)}")
    from ...restore.config import make_config  # the method imports torch: on the first request, not at start

    return make_config(indi_steps=v).inference.indi_steps


def _scale(v):
    from ...restore.register import parse_scale

    if v is None or v == "":
        v = DEFAULTS["register"]["scale"]
    if isinstance(v, bool) or not isinstance(v, str | int | float):
        raise InputError(
            f"scale must be a number (LQ voxel / HQ voxel, e.g. 2) or 'SZ,SY,SX', got {_short(v)}"
        )
    return parse_scale(v)


@endpoint
async def register(request, ctx):
    """``POST /api/restore/register``: register an LQ/HQ pair → a pair folder."""
    b = await body(request)
    d = DEFAULTS["register"]
    kw = {
        "lq": ctx.file_arg(b, "lq"),
        "hq": ctx.file_arg(b, "hq"),
        "scale": _scale(b.get("scale")),
        "mask": fields.switch(b.get("mask"), "mask", default=d["mask"]),
        "deformable": fields.switch(b.get("deformable"), "deformable", default=d["deformable"]),
    }
    # the pair folder is written atomically (replaced as a whole): it may not hold the scans
    inputs = [kw["lq"], kw["hq"]]
    out = ctx.root.run_dir(b.get("run"), default_prefix="restore-pair", inputs=inputs, replaced=True)
    kw["out_dir"] = str(out)
    return ctx.start(kw, "restore.register", out.name, run_dir=out, params={"run": ctx.root.relative(out)})


@endpoint
async def train(request, ctx):
    """``POST /api/restore/train``: train (or resume) an InDI model on a pair folder."""
    b = await body(request)
    d = DEFAULTS["train"]
    steps, budget = fields.steps_budget(b)
    kw = {
        "pair": ctx.file_arg(b, "pair"),
        "preset": fields.text(b.get("preset"), "preset", default=d["preset"]),
        "iterations": steps,
        "budget": budget,
        "device": fields.device(b.get("device")),
        "resume": fields.switch(b.get("resume"), "resume", default=d["resume"]),
        "overrides": fields.overrides(b.get("overrides")),
    }
    # the config the worker builds, built here first so that the page gets a mistake at once
    tasks.restore_train_config(kw["preset"], steps, budget, kw["overrides"])
    run = ctx.root.run_dir(b.get("run"), default_prefix="restore", inputs=[kw["pair"]])
    kw["out_dir"] = str(run)
    return ctx.start(kw, "restore.train", run.name, run_dir=run, params={"run": ctx.root.relative(run)})


@endpoint
async def apply(request, ctx):
    """``POST /api/restore/apply``: enhance a volume (or a folder of time steps)."""
    b = await body(request)
    model = ctx.folder_arg(b, "model", "model folder of a restore training")
    volume = ctx.file_arg(b, "volume")
    # the output folder is written atomically (replaced as a whole): it may not hold the inputs
    out = ctx.root.output(
        fields.text(b.get("out"), "output folder") or f"{ctx.root.relative(model)}/enhanced",
        kind="dir",
        inputs=[model, volume],
        what="output folder",
        replaced=True,
    )
    kw = {
        "model": str(model),
        "volume": volume,
        "out": str(out),
        "steps": indi_steps(b.get("steps")),
        "device": fields.device(b.get("device")),
    }
    params = {"out": ctx.root.relative(out)}
    return ctx.start(kw, "restore.apply", out.name, run_dir=out.parent, params=params)


@endpoint
async def evaluate(request, ctx):
    """``POST /api/restore/evaluate``: score an enhanced output against the HQ → report."""
    b = await body(request)
    d = DEFAULTS["evaluate"]
    out = ctx.folder_arg(b, "out", "enhanced output folder (step 3)")
    hq, lq = ctx.file_arg(b, "hq"), ctx.file_arg(b, "lq", required=False)
    report = ctx.root.output(
        fields.text(b.get("report"), "report folder") or f"{ctx.root.relative(out)}/report",
        kind="dir",
        inputs=[out, hq, lq],
        what="report folder",
    )
    kw = {
        "out": str(out),
        "hq": hq,
        "lq": lq,
        "report_dir": str(report),
        "spacing": fields.number(b.get("spacing"), "pixel size", default=d["spacing"], lo=0, gt=True),
        "sift": fields.switch(b.get("sift"), "sift", default=d["sift"]),
    }
    params = {"report": ctx.root.relative(report)}
    return ctx.start(kw, "restore.evaluate", out.name, run_dir=report, params=params)


ROUTES = [
    Route("/api/restore/register", register, methods=["POST"]),
    Route("/api/restore/train", train, methods=["POST"]),
    Route("/api/restore/apply", apply, methods=["POST"]),
    Route("/api/restore/evaluate", evaluate, methods=["POST"]),
]

"""SuperRes 2D/3D fusion: train, generate a super-resolved volume and evaluate it, each a worker process.

The training's settings are checked by the method's config, built as ``matsight fuse train`` builds it
(:func:`matsight.gui.tasks.fuse_train_config` → :func:`matsight.fuse.config.make_config`); the defaults are
the CLI's (:data:`DEFAULTS`).
"""

from starlette.routing import Route

from .. import tasks
from ..views import VOLUME_SUFFIXES
from . import fields
from .common import body, endpoint

# the CLI's defaults (`matsight fuse train/generate`) for what the page may leave out; None: the preset's
DEFAULTS = {
    "train": {
        "preset": None,
        "scale": None,
        "mode": None,
        "anisotropic": False,
        "budget": None,
        "iterations": None,
        "seed": None,
        "metrics_every": None,
        "resume": True,
        "device": fields.DEVICE,
    },
    "generate": {"seed": 0, "samples": 1, "device": fields.DEVICE},
}
CONFIG_FIELDS = ("scale", "mode", "anisotropic", "seed", "metrics_every")  # passed to the config as sent


@endpoint
async def train(request, ctx):
    """``POST /api/fuse/train``: train (or resume) a SuperRes run as a worker process."""
    b = await body(request)
    d = DEFAULTS["train"]
    steps, budget = fields.steps_budget(b)
    settings = {k: b.get(k) if b.get(k) not in (None, "") else d[k] for k in CONFIG_FIELDS}
    preset = fields.text(b.get("preset"), "preset", default=d["preset"])
    overrides = fields.overrides(b.get("overrides"))
    # the config the worker builds, built here first so that the page gets a mistake at once
    tasks.fuse_train_config(preset, iterations=steps, budget=budget, overrides=overrides, **settings)
    kw = {
        "lr": ctx.file_arg(b, "lr"),
        "hr": ctx.file_arg(b, "hr"),
        "hr_y": ctx.file_arg(b, "hr_y", required=False),
        "hr_z": ctx.file_arg(b, "hr_z", required=False),
        **settings,
        "preset": preset,
        "iterations": steps,
        "budget": budget,
        "overrides": overrides,
        "device": fields.device(b.get("device")),
        "resume": fields.switch(b.get("resume"), "resume", default=d["resume"]),
    }
    inputs = [kw[k] for k in ("lr", "hr", "hr_y", "hr_z")]
    run = ctx.root.run_dir(b.get("run"), default_prefix="fuse", inputs=inputs)
    kw["out_dir"] = str(run)
    return ctx.start(kw, "fuse.train", run.name, run_dir=run, params={"run": ctx.root.relative(run)})


@endpoint
async def generate(request, ctx):
    """``POST /api/fuse/generate``: super-resolve an LR volume with a run's generator."""
    b = await body(request)
    d = DEFAULTS["generate"]
    run = ctx.folder_arg(b, "run", "run folder of a fuse training")
    lr = ctx.file_arg(b, "lr")
    out = ctx.root.output(
        fields.text(b.get("out"), "output") or f"{ctx.root.relative(run)}/sr.tif",
        kind="file",
        inputs=[run, lr],
        what="output",
        suffixes=VOLUME_SUFFIXES,
    )
    kw = {
        "run": str(run),
        "lr": lr,
        "out": str(out),
        "seed": fields.whole(b.get("seed"), "seed", default=d["seed"], lo=0),
        "samples": fields.whole(b.get("samples"), "samples", default=d["samples"], lo=1),
        "device": fields.device(b.get("device")),
    }
    # what the viewer opens side by side when it is done: LR, SR and (K > 1) the entropy map
    params = {"out": ctx.root.relative(out), "lr": ctx.root.relative(lr), "samples": kw["samples"]}
    return ctx.start(kw, "fuse.generate", out.name, run_dir=out.parent, params=params)


@endpoint
async def evaluate(request, ctx):
    """``POST /api/fuse/evaluate``: compare an SR volume with the HR image(s) → HTML report."""
    b = await body(request)
    kw = {
        "sr": ctx.file_arg(b, "sr"),
        "hr": ctx.file_arg(b, "hr"),
        "hr_y": ctx.file_arg(b, "hr_y", required=False),
        "hr_z": ctx.file_arg(b, "hr_z", required=False),
        "lr": ctx.file_arg(b, "lr", required=False),
        "truth": ctx.file_arg(b, "truth", required=False),
    }
    out = ctx.root.run_dir(b.get("run"), default_prefix="fuse-eval", inputs=list(kw.values()))
    kw["out_dir"] = str(out)
    return ctx.start(kw, "fuse.evaluate", out.name, run_dir=out, params={"run": ctx.root.relative(out)})


ROUTES = [
    Route("/api/fuse/train", train, methods=["POST"]),
    Route("/api/fuse/generate", generate, methods=["POST"]),
    Route("/api/fuse/evaluate", evaluate, methods=["POST"]),
]

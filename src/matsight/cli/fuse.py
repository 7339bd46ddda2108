"""``matsight fuse``: SuperRes 2D/3D fusion — train, generate volumes of any size, evaluate, degrade."""

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from ._common import check_outputs, echo, printable, progress_bar, user_errors

app = typer.Typer(
    help="SuperRes (2D/3D fusion GAN): LR 3D labels + HR 2D labels → super-resolved n-phase volumes.",
    no_args_is_help=True,
)


def _phase_list(text, what):
    from .._errors import InputError

    try:
        return [int(p) for p in str(text).replace(" ", "").split(",") if p != ""]
    except ValueError:
        raise InputError(f"{what} must be comma-separated phase numbers like 0,2, got {text!r}") from None


def _compare_phases(values):
    # repeated (--compare-phases 1 --compare-phases 2) or comma-separated (--compare-phases 1,2)
    phases = [p for v in values or [] for p in _phase_list(v, "--compare-phases")]
    return phases or None


def _augment_axes(text):
    # "x" -> [False, False, True]: the slicing axes (z, y, x) whose HR crops are rotated/mirrored
    from .._errors import InputError

    if text is None:
        return None
    letters = str(text).strip().lower().replace(",", "").replace(" ", "")
    letters = "" if letters == "none" else letters
    if any(c not in "zyx" for c in letters):
        raise InputError(f"--augment-axes takes axis letters like x or zyx, or none; got {text!r}")
    return [a in letters for a in "zyx"]


# anisotropic runs: HR images per plane (train and evaluate)
HrY = Annotated[Path | None, typer.Option("--hr-y", help="Anisotropic: HR images of slices normal to y.")]
HrZ = Annotated[Path | None, typer.Option("--hr-z", help="Anisotropic: HR images of slices normal to z.")]


# `fuse train`'s options
_Scale = Annotated[
    float | None, typer.Option(help="Scale factor 64/d, d in 8..64 (e.g. 4, 8, 2.6667); default 4.")
]
_Mode = Annotated[
    str | None,
    typer.Option(help="resolve (under-resolved LR, e.g. XCT: blur; default) or sample (under-sampled, SEM)."),
]
_ComparePhases = Annotated[
    list[str] | None,
    typer.Option(
        "--compare-phases",
        help="HR phase of each LR phase after pore, in order, e.g. 1,2 (default 1, 2, …); other HR "
        "phases are in-painted (e.g. NMC binder).",
    ),
]
_Unseen = Annotated[
    str | None,
    typer.Option(
        "--unseen",
        help="In-painted HR phases in the voxel-wise loss: pore (counted with the LR pore, as the LR was "
        "taken; default) or drop (left out, as the reference code).",
    ),
]
_Upsampling = Annotated[
    str | None,
    typer.Option(
        help="The generator's ×2 stages: auto (the measured choice per scale: resize above 4, else "
        "transpose; the cpu preset's default), transpose (the paper's transposed convolution), resize "
        "(trilinear + conv) or shuffle (sub-pixel conv, ICNR start); docs/methods/superres.md.",
    ),
]
_Anisotropic = Annotated[
    bool, typer.Option("--anisotropic", help="A critic and HR stack per axis (needs --hr-y, --hr-z).")
]
_MaterialOnly = Annotated[
    bool,
    typer.Option("--material-only", help="Voxel-wise loss on material only (paper's separator case)."),
]
_CriticSteps = Annotated[
    str | None,
    typer.Option(
        help="A shared critic's steps per iteration: per_axis (one per slicing axis, the reference; "
        "preset paper) or joint (one on all three axes: a third of the cost; preset cpu).",
    ),
]
_AugmentAxes = Annotated[
    str | None,
    typer.Option(
        help="Slicing axes whose HR crops are rotated/mirrored (8 ways), as letters: zyx, x, none "
        "(default: all for isotropic data, x for --anisotropic, as the reference).",
    ),
]
_PerAxisCritics = Annotated[
    bool,
    typer.Option(
        "--per-axis-critics", help="Isotropic data: one critic per slicing axis instead of one shared."
    ),
]
_MetricsEvery = Annotated[
    int | None,
    typer.Option(help="Log the cheap metrics (and pick the best checkpoint) every K iterations."),
]
_Preset = Annotated[str | None, typer.Option(help="cpu (default, minutes on a laptop) or paper (GPU).")]
_Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Any setting as NAME=VALUE, repeatable: training.ema=0.5, model.gen_width=32 (the flat "
        "names of earlier versions, e.g. ema=0.5, work too).",
    ),
]
_Budget = Annotated[str | None, typer.Option(help="Wall-clock budget of this call, e.g. 20m, 1h30m, 90s.")]
_Steps = Annotated[
    int | None,
    typer.Option("--steps", min=0, help="Stop at this iteration count (default 1000 without --budget)."),
]
_Iterations = Annotated[int | None, typer.Option("--iterations", min=0, hidden=True)]
_Seed = Annotated[int | None, typer.Option(help="Random seed ≥ 0 (saved in the run's config; default 0).")]
_Resume = Annotated[
    bool,
    typer.Option(
        "--resume/--no-resume",
        help="Continue the run in --out from last.safetensors, with its own settings (options given "
        "must match them).",
    ),
]
_Device = Annotated[str, typer.Option(help="auto (cuda when available), cpu or cuda.")]


# ---- train / degrade -------------------------------------------------------------------------------------
@app.command()
@user_errors
def train(
    lr: Annotated[Path, typer.Option("--lr", help="Low-res 3D label volume (tif, npy, zarr); 0 = pore.")],
    hr: Annotated[
        Path,
        typer.Option("--hr", help="High-res 2D label image or stack (anisotropic: slices normal to x)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (resumed if it holds a run).")],
    scale: _Scale = None,
    hr_y: HrY = None,
    hr_z: HrZ = None,
    mode: _Mode = None,
    compare_phases: _ComparePhases = None,
    unseen: _Unseen = None,
    upsampling: _Upsampling = None,
    anisotropic: _Anisotropic = False,
    material_only: _MaterialOnly = False,
    critic_steps: _CriticSteps = None,
    augment_axes: _AugmentAxes = None,
    per_axis_critics: _PerAxisCritics = False,
    metrics_every: _MetricsEvery = None,
    preset: _Preset = None,
    settings: _Settings = None,
    budget: _Budget = None,
    steps: _Steps = None,
    iterations: _Iterations = None,
    seed: _Seed = None,
    resume: _Resume = True,
    device: _Device = "auto",
):
    """Train a SuperRes generator (WGAN-GP + voxel-wise LR loss) on an LR volume and HR 2D image(s)."""
    from ..fuse import train as _train
    from ..fuse.config import run_config

    # the run folder is resumed from: it may hold the inputs (its files are not replaced)
    check_outputs(resumed=[("--out", out, "last.safetensors")], inputs=[lr, hr, hr_y, hr_z])
    if iterations is not None:
        typer.echo("note: --iterations is now --steps", err=True)
        steps = iterations if steps is None else steps
    # only the options given (flags: when set), so that a resumed run keeps the settings left out
    given = {
        "scale": scale,
        "mode": mode,
        "anisotropic": anisotropic or None,
        "compare_phases": _compare_phases(compare_phases),
        "vw_unseen": unseen,
        "upsampling": upsampling,
        "material_only_loss": material_only or None,
        "shared_critic": False if per_axis_critics else None,
        "critic_steps": critic_steps,
        "augment_axes": _augment_axes(augment_axes),
        "metrics_every": metrics_every,
        "seed": seed,
    }
    given = {k: v for k, v in given.items() if v is not None}
    extra = _set_options(settings)
    if not {"steps", "training.steps"} & set(extra):
        # as before the setting existed: 1000 steps, or as many as the budget allows
        given["training.steps"] = steps if steps is not None else (None if budget else 1000)
    cfg = run_config(out, preset=preset, settings={**given, **extra}, resume=resume)
    with _echo_warnings("matsight.fuse"), progress_bar("fuse train") as callback:
        res = _train(
            (_labels_file(lr, "LR volume"), _hr_files(hr, hr_y, hr_z)),
            out,
            config=cfg,
            budget=budget,
            callback=callback,
            device=device,
            resume=resume,
        )
    _echo_result(res, out)


def _echo_result(res, out):
    """The last lines of `fuse train`: iterations, files, then where the run stands, the verdict last."""
    from ..fuse.convergence import status_lines

    best = (
        ""
        if res.best_iteration is None
        else f"; best at iteration {res.best_iteration} (score {res.best_score:.4f})"
    )
    echo(f"{res.iterations} iterations, {res.seconds:.0f} s in this call{best}")
    names = ("best.safetensors", "last.safetensors", "training_curves.png", "metrics.csv", "status.json")
    echo(f"wrote {Path(out).resolve()} ({', '.join(n for n in names if (Path(out) / n).is_file())})")
    # still falling or flat, LR consistency, gaps to the HR images, converged or not
    for line in status_lines(res.status) if res.status else []:
        echo(line)


@contextlib.contextmanager
def _echo_warnings(name):
    """Show the warnings the library logs (e.g. LR/HR fractions that differ) as ``warning: …`` lines."""
    import logging

    class _Echo(logging.Handler):
        def emit(self, record):
            typer.echo(printable(f"warning: {record.getMessage()}"), err=True)

    handler = _Echo(logging.WARNING)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _hr_files(hr, hr_y, hr_z):
    """The HR image(s): one stack, or ``{"x", "y", "z"}`` by the axis the slices are normal to."""
    hr_a = _labels_file(hr, "HR image")
    if hr_y is None and hr_z is None:
        return hr_a
    by_axis = {"x": hr_a}
    for key, path in (("y", hr_y), ("z", hr_z)):
        if path is not None:
            by_axis[key] = _labels_file(path, f"--hr-{key} image")
    return by_axis


def _set_options(values):
    """``--set NAME=VALUE`` options as settings; VALUE is read as JSON (numbers, true, lists) or text."""
    import json

    from .._errors import InputError

    out = {}
    for item in values or []:
        name, sep, text = str(item).partition("=")
        if not sep or not name.strip():
            raise InputError(f"--set takes NAME=VALUE, e.g. training.ema=0.5; got {item!r}")
        try:
            out[name.strip()] = json.loads(text)
        except ValueError:
            out[name.strip()] = text
    return out


@app.command()
@user_errors
def degrade(
    volume: Annotated[Path, typer.Argument(help="High-res 3D label volume (the ground truth).")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Low-res label volume to write (.tif, .npy, .zarr).")
    ],
    scale: Annotated[float, typer.Option(help="Scale factor sf: one LR voxel is sf HR voxels wide.")] = 4.0,
    merge: Annotated[
        list[str] | None,
        typer.Option(help="Phases the LR technique cannot tell apart, e.g. 0,2 (pore + binder); repeatable."),
    ] = None,
    mode: Annotated[
        str, typer.Option(help="resolve (blur + trilinear, XCT) or sample (every sf-th voxel).")
    ] = "resolve",
):
    """Simulate a low-res scan as the paper did: merge phases, blur (k, σ from sf), downsample, threshold."""
    from .._errors import InputError
    from ..data.degrade import degrade as _degrade
    from ..fuse.config import validate_scale
    from ..fuse.data import as_labels, phase_count
    from ..io import read_spacing, write_volume

    check_outputs(files=[("--out", out)], inputs=[volume])
    _check_suffix(out)
    # the LR volume is for `fuse train`, which takes scale factors 64/d only
    scale, _ = validate_scale(scale)
    groups = [_phase_list(m, "--merge") for m in (merge or [])]
    for g in groups:
        if len(set(g)) < 2:
            raise InputError(f"--merge {','.join(map(str, g))} names one phase; give two or more, e.g. 0,2")
    lab = _labels_file(volume, "volume")
    n = phase_count([as_labels(lab, name="the volume")], name="the volume")
    flat = [p for g in groups for p in set(g)]
    valid = len(flat) == len(set(flat)) and all(0 <= p < n for p in flat)  # else degrade says what is wrong
    if valid and n - sum(len(set(g)) - 1 for g in groups) < 2:
        raise InputError(
            f"--merge leaves the low-res volume a single phase (the volume has {n}); merge fewer phases"
        )
    lr, phases = _degrade(lab, scale, merge=groups, mode=mode)
    sp = read_spacing(volume)
    spacing = [float(s) * scale for s in sp] if sp is not None and all(v is not None for v in sp) else None
    write_volume(out, lr, spacing=spacing)
    echo(f"{tuple(lab.shape)} → {tuple(lr.shape)} at scale {scale:g} ({mode})")
    for i, g in enumerate(phases):
        echo(f"LR phase {i} = HR phase(s) {', '.join(map(str, g))}")
    echo(f"wrote {out}")


# ---- generate / evaluate ------------------------------------------------------------------------------
def _check_suffix(out):
    from .._errors import InputError

    if Path(out).suffix.lower() not in (".tif", ".tiff", ".npy", ".zarr"):
        raise InputError(f"--out must end in .tif, .tiff, .npy or .zarr, got {Path(out).name!r}")


def _labels_file(path, what):
    from .._errors import InputError
    from ..io import read_labels

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    return read_labels(path)


def _volume_file(path, what):
    """A label volume read on demand (zarr, npy, tif page by page): evaluated slab by slab."""
    from .._errors import InputError
    from ..io.volumes import open_volume

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    return open_volume(path)


@app.command()
@user_errors
def generate(
    run: Annotated[
        Path, typer.Argument(help="Run folder of `matsight fuse train` (or a .safetensors checkpoint).")
    ],
    lr: Annotated[Path, typer.Option("--lr", help="LR label volume to super-resolve (tif, npy, zarr).")],
    out: Annotated[
        Path, typer.Option("--out", help="Output .tif/.npy, or .zarr to stream volumes larger than memory.")
    ],
    seed: Annotated[int, typer.Option(help="Seed ≥ 0 of the noise field (same seed, same volume).")] = 0,
    samples: Annotated[
        int,
        typer.Option("--samples", help="Stochastic samples K; K > 1 also writes NAME_entropy (uncertainty)."),
    ] = 1,
    keep_border: Annotated[
        bool,
        typer.Option("--keep-border", help="Keep the outer LR voxel (default: cropped, as in the paper)."),
    ] = False,
    tile: Annotated[
        int | None, typer.Option("--tile", help="Tile core edge in LR voxels (memory ~ (tile·scale)³).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto (cuda when available), cpu or cuda.")] = "auto",
    dask: Annotated[
        str | None,
        typer.Option("--dask", help="Run tiles in parallel with dask: threads, processes or synchronous."),
    ] = None,
):
    """Super-resolve an LR volume of any size with a trained generator (tiled, seamless)."""
    from ..fuse import predict
    from ..io import read_spacing

    if not Path(run).exists():
        from .._errors import InputError

        raise InputError(f"run folder not found: {run}")
    check_outputs(files=[("--out", out)], inputs=[run, lr])
    _check_suffix(out)
    lab = _labels_file(lr, "LR volume")
    sp = read_spacing(lr)
    spacing = sp if sp is not None and all(v is not None for v in sp) else None
    with progress_bar("fuse generate") as callback:
        res = predict(
            run,
            lab,
            seed=seed,
            samples=samples,
            tile=tile,
            crop=not keep_border,
            out=out,
            spacing=spacing,
            device=device,
            scheduler=dask,
            callback=callback,
        )
    echo(
        f"{tuple(res.labels.shape)} voxels × {samples} sample(s) at scale {res.scale:.4g} "
        f"in {res.seconds:.1f} s "
        f"({res.voxels_per_second / 1e6:.2f} M voxels/s)"
    )
    for p in res.paths["samples"]:
        echo(f"wrote {p}")
    if res.paths.get("entropy"):
        echo(f"wrote {res.paths['entropy']} (phase entropy across samples, 0..1)")


@app.command()
@user_errors
def evaluate(
    sr: Annotated[Path, typer.Argument(help="Super-resolved label volume (tif, npy, zarr).")],
    out: Annotated[Path, typer.Option("--out", help="Report folder (index.html, figures, metrics.json).")],
    hr: Annotated[
        Path | None,
        typer.Option(
            "--hr", help="HR 2D label image(s) used for training (anisotropic: slices normal to x)."
        ),
    ] = None,
    hr_y: HrY = None,
    hr_z: HrZ = None,
    lr: Annotated[Path | None, typer.Option("--lr", help="LR label volume the SR volume came from.")] = None,
    truth: Annotated[Path | None, typer.Option("--truth", help="3D ground truth on the SR grid.")] = None,
    run: Annotated[
        Path | None,
        typer.Option("--run", help="Training run: takes scale, mode and compared phases from it."),
    ] = None,
    scale: Annotated[float | None, typer.Option(help="Scale factor 64/d (default: from the shapes).")] = None,
    mode: Annotated[str | None, typer.Option(help="LR degradation: resolve (blur) or sample.")] = None,
    compare_phases: Annotated[
        list[str] | None,
        typer.Option("--compare-phases", help="HR phase of each LR phase after pore, in order, e.g. 1,2."),
    ] = None,
    subvolumes: Annotated[int, typer.Option(help="Random sub-cubes for the violin plots.")] = 256,
    subvolume_size: Annotated[
        int, typer.Option(help="Sub-cube edge (voxels; reduced to fit the volume and HR images).")
    ] = 64,
    transport: Annotated[
        int,
        typer.Option(help="Sub-cubes per axis for transport efficiency (a diffusion solve each; 0: none)."),
    ] = 16,
    seed: Annotated[int, typer.Option(help="Seed for the sub-cube positions.")] = 0,
):
    """The paper's comparisons of an SR volume with its HR image(s), LR volume and optional truth."""
    from ..fuse import evaluate as _evaluate
    from ..fuse.config import read_run_config

    check_outputs(folders=[("--out", out)], inputs=[sr, hr, hr_y, hr_z, lr, truth, run])
    kw = {}
    if run is not None:
        cfg = read_run_config(
            run, fix="give another --run, or the options --scale, --mode and --compare-phases instead"
        )
        kw = {
            "scale": cfg.scale,
            "mode": cfg.mode,
            "compare_phases": cfg.compare_phases,
            "status": _run_status(run),
        }
    if scale is not None:
        kw["scale"] = scale
    if mode is not None:
        kw["mode"] = mode
    if compare_phases:
        kw["compare_phases"] = _compare_phases(compare_phases)
    kw.setdefault("mode", "resolve")
    # the SR volume and the truth are read slab by slab (bounded memory); images and the LR are loaded
    with progress_bar("fuse evaluate") as callback:
        res = _evaluate(
            _volume_file(sr, "SR volume"),
            hr=_labels_file(hr, "HR image") if hr is not None else None,
            hr_y=_labels_file(hr_y, "--hr-y image") if hr_y is not None else None,
            hr_z=_labels_file(hr_z, "--hr-z image") if hr_z is not None else None,
            lr=_labels_file(lr, "LR volume") if lr is not None else None,
            truth=_volume_file(truth, "truth volume") if truth is not None else None,
            out_dir=out,
            n_subvolumes=subvolumes,
            subvolume_size=subvolume_size,
            n_transport=transport,
            seed=seed,
            callback=callback,  # one bar for every pass (a second rich bar cannot show beside it)
            spacing=_full_spacing(sr),
            **kw,
        )
    _echo_evaluation(res, out)


def _full_spacing(path):
    """The file's voxel size in nm on every axis (for the report's scale bars), or None."""
    from ..io import read_spacing

    sp = read_spacing(path)
    return sp if sp is not None and all(v is not None for v in sp) else None


def _echo_evaluation(res, out):
    """The evaluation's headline figures, then its verdict as the last lines."""
    if "lr_consistency" in res:
        c = res["lr_consistency"]
        # the scale and border may have been inferred from the shapes: show what was used
        echo(
            f"LR consistency: {100 * c['consistency']:.2f}% "
            f"(scale {c['scale']:.4g}, border {c['border']} voxels, {c['mode']})"
        )
    for name, w in res["whole"].items():
        vf = ", ".join(f"{p}: {v:.4f}" for p, v in w["volume_fraction"].items())
        echo(f"{name} volume fractions: {vf}")
    if "versus_truth" in res:
        vt = res["versus_truth"]
        echo("vs truth: max |ΔVF| = {:.4f}".format(max(vt["abs_delta_vf"].values())))
    echo(f"wrote {Path(out) / 'index.html'}")
    _echo_verdict(res["verdict"])


def _run_status(run):
    """The run's ``status.json`` (None if it has none or it cannot be read)."""
    import json

    path = Path(run) / "status.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        echo(f"note: {path} could not be read; the verdict leaves the run out")
        return None


def _echo_verdict(findings):
    """The evaluation's verdict, as the command's last lines."""
    if not findings:
        echo("verdict: no problems found")
        return
    echo(f"verdict: {len(findings)} problem(s) found")
    for f in findings:
        echo(f"  [{f['severity']}] {f['message']}")

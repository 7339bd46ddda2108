"""``matsight restore``: InDI restoration of grayscale tomography (register, train, apply, evaluate)."""

from pathlib import Path
from typing import Annotated

import typer

from .._errors import InputError
from ._common import check_outputs, echo, progress_bar, user_errors

app = typer.Typer(
    help="Learned restoration (InDI): train on one registered LQ/HQ pair, enhance any LQ volume or series.",
    no_args_is_help=True,
)

Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]


def _read(path, what):
    from ..io import read_volume

    path = Path(path)
    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    return read_volume(path)


@app.command()
@user_errors
def register(
    lq: Annotated[Path, typer.Argument(help="Low-quality scan (tif/npy/zarr), slice or volume.")],
    hq: Annotated[Path, typer.Argument(help="High-quality scan of the same region.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Pair folder to write.")],
    scale: Annotated[
        str, typer.Option(help="LQ voxel size / HQ voxel size (e.g. 2, 1.5 or 'SZ,SY,SX').")
    ] = "2",
    mask: Annotated[bool, typer.Option("--mask/--no-mask", help="Circular field-of-view mask.")] = True,
    deformable: Annotated[
        bool, typer.Option(help="Optical-flow refinement after the rigid registration.")
    ] = False,
):
    """Upscale LQ onto the HQ grid, register (sub-pixel rigid [+ deformable]), crop, normalise → PAIR/."""
    from ..restore.pair_io import save_pair
    from ..restore.register import LOW_NCC, parse_scale, prepare_pair

    check_outputs(folders=[("--out", out)], inputs=[lq, hq])
    pair = prepare_pair(
        _read(lq, "LQ scan"), _read(hq, "HQ scan"), scale=parse_scale(scale), mask=mask, deformable=deformable
    )
    save_pair(pair, out)
    t = pair.transform
    echo(
        f"pair {pair.hq.shape}: rotation {t['rotation_deg']:.3f} deg, "
        f"shift {[round(v, 2) for v in t['shift']]} px, "
        f"NCC {t['ncc_before']:.3f} -> {t['ncc_after']:.3f}"
    )
    skipped = [k for k, ok in (t.get("accepted") or {}).items() if not ok]
    if skipped:
        echo(f"  not applied (no NCC gain beyond noise): {', '.join(skipped)} part of the rigid transform")
    if t["ncc_after"] < LOW_NCC:
        typer.echo(
            f"warning: the registered scans correlate poorly (NCC {t['ncc_after']:.2f} < {LOW_NCC}); "
            "they may not show the same region: check the inputs, --scale and overlay.png in the pair "
            "folder",
            err=True,
        )
    echo(f"wrote {out}")


@app.command()
@user_errors
def train(
    pair: Annotated[Path, typer.Argument(help="Pair folder from `matsight restore register`.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Model folder (resumed if it holds an unfinished run).")
    ],
    budget: Annotated[str | None, typer.Option(help="Wall-clock budget, e.g. 20m, 1h30m, 90s.")] = None,
    preset: Annotated[str, typer.Option(help="cpu (small, fast) or paper (64 base filters; GPU).")] = "cpu",
    steps: Annotated[
        int | None, typer.Option(help="Optimiser steps (default: the preset's, or unlimited with --budget).")
    ] = None,
    max_steps: Annotated[int | None, typer.Option(hidden=True, help="Deprecated: use --steps.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    context: Annotated[
        int | None,
        typer.Option(
            help="LQ slices on each side given to the network with the slice (2.5D; default 0: the slice "
            "alone, as the paper)."
        ),
    ] = None,
    val_slices: Annotated[
        str | None,
        typer.Option(
            help="Validation z slices START:STOP of the pair; their PSNR is logged (history.json, "
            "curves.png) and they choose --indi-steps auto; the model kept is the last one (default: the "
            "last 10 %). Pick them so that every kind of structure keeps training slices."
        ),
    ] = None,
    objective: Annotated[
        str,
        typer.Option(
            help="indi (the InDI objective, sampled in N steps) or onestep (the same network trained for "
            "direct regression LQ -> HQ, applied in one pass: the paper's one-step baseline)."
        ),
    ] = "indi",
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Continue an unfinished run in --out.")
    ] = True,
    device: Device = "auto",
):
    """Train an InDI model on PAIR/ (one-cycle cosine LR, random crops/flips/rotations, held-out slices)."""
    from .. import restore
    from ..restore.config import make_config, parse_slices

    if max_steps is not None:
        steps = steps if steps is not None else max_steps
    # the model folder is resumed from: it may hold the pair (its files are not replaced)
    check_outputs(resumed=[("--out", out, "state.safetensors")], inputs=[pair])
    val = None if val_slices is None else parse_slices(val_slices, "--val-slices")
    settings = {"training.steps": steps, "training.seed": seed, "model.context": context}
    settings["training.objective"] = objective
    config = make_config(preset, budget=budget, **settings)
    if not pair.is_dir():
        raise InputError(
            f"{pair} is not a pair folder; create one with `matsight restore register LQ HQ --out PAIR`"
        )
    with progress_bar("restore train") as callback:
        res = restore.train(
            pair, out, config=config, callback=callback, resume=resume, device=device, val_slices=val
        )
    echo(_train_summary(res, out))
    if res.resumed_at != res.steps:
        echo(f"wrote {out}")
    if max_steps is not None:  # after the work, so that a failed call stays one error line
        echo("note: --max-steps is now --steps (the old name still works for now)")


def _train_summary(res, out):
    """What a training did, in one line."""
    auto = ""
    if res.validation:
        auto = "; validation " + ", ".join(f"{k} {v:.2f} dB" for k, v in res.validation.items())
    if res.steps_auto:
        n = res.steps_auto["best"]
        auto += f"; --indi-steps auto: N = {n} (best validation PSNR)"
        if res.steps_auto.get("at_edge"):
            auto += " — the largest N tried, the edge of the search: choose with --indi-steps"
    if res.resumed_at == res.steps:
        return (
            f"{out} already holds a finished run ({res.steps} steps in {res.elapsed_s:.0f} s{auto}); nothing "
            "to train. Raise --steps or --budget to train on, or use --no-resume to start afresh"
        )
    if res.resumed_at:
        return (
            f"trained {res.steps - res.resumed_at} more steps (resumed at step {res.resumed_at}; "
            f"{res.steps} in {res.elapsed_s:.0f} s){auto}"
        )
    return f"trained {res.steps} steps in {res.elapsed_s:.0f} s{auto}"


@app.command()
@user_errors
def apply(
    model: Annotated[Path, typer.Argument(help="Model folder from `matsight restore train`.")],
    input: Annotated[Path, typer.Argument(help="LQ slice/volume file, or a folder of time steps.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    indi_steps: Annotated[
        str, typer.Option("--indi-steps", help="InDI sampling steps N (1 = one-step regression) or 'auto'.")
    ] = "auto",
    steps: Annotated[str | None, typer.Option(hidden=True, help="Deprecated: use --indi-steps.")] = None,
    slice_axis: Annotated[
        str, typer.Option("--slice-axis", help="Slices of a volume: z (xy planes), y or x.")
    ] = "z",
    z_mode: Annotated[str, typer.Option("--z-mode", help="cubic (paper) or triplanar.")] = "cubic",
    upscaled: Annotated[bool, typer.Option(help="The input is already on the HQ grid.")] = False,
    onestep: Annotated[
        bool, typer.Option("--onestep/--no-onestep", help="Also write the N=1 result.")
    ] = True,
    ensemble: Annotated[
        bool, typer.Option(help="Average every step over the 8 flips/rotations of a slice (8x the time).")
    ] = False,
    device: Device = "auto",
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Spread slabs and time steps over dask (scale extra): threads, processes, distributed "
            "(local cluster) or a scheduler address tcp://host:port (other machines)."
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Number of dask workers (≥ 1).")] = None,
    memory: Annotated[
        float, typer.Option(help="MiB of slab arrays per worker (series, zarr): sets the slab size.")
    ] = 512,
    slab: Annotated[int | None, typer.Option(help="LQ slices per slab (overrides --memory).")] = None,
):
    """Enhance an LQ volume or a series → OUT/ enhanced.tif, consistency.tif, ... (or OUT.zarr).

    A series (a folder of volumes, a 4D T,Z,Y,X tif/npy/zarr), a zarr input or output, --scheduler or
    --slab: processed in z-slabs with bounded memory, resumable (finished time steps are skipped on a rerun).
    """
    if steps is not None:
        indi_steps = steps
    axes = {"z": 0, "y": 1, "x": 2, "0": 0, "1": 1, "2": 2}
    if slice_axis.lower() not in axes:
        raise InputError(f"--slice-axis must be z, y or x, got {slice_axis!r}")
    kw = dict(indi_steps=indi_steps, upscaled=upscaled, onestep=onestep, ensemble=ensemble, device=device)
    if _slab_wise(input, out, scheduler, slab):
        run = dict(scheduler=scheduler, workers=workers, memory_mib=memory, slab=slab)
        _apply_series(model, input, out, kw, run, cubic_z=z_mode == "cubic" and axes[slice_axis.lower()] == 0)
        if steps is not None:
            echo("note: --steps is now --indi-steps (the old name still works for now)")
        return
    from ..restore.predict import predict_path

    check_outputs(folders=[("--out", out)], inputs=[model, input])
    kw["z_mode"] = z_mode
    device = kw.pop("device")
    with progress_bar("restore apply") as callback:
        results = predict_path(
            model, input, out, slice_axis=axes[slice_axis.lower()], device=device, callback=callback, **kw
        )
    for name, res in results:
        extra = res.info.get("seconds_onestep")
        how = f"with N={res.steps}"
        if res.info.get("objective") == "onestep":
            how = "in one network pass (one-step model: direct regression LQ -> HQ)"
        echo(
            f"{name + ': ' if name else ''}enhanced to {res.image.shape} {how} "
            f"in {res.info['seconds']:.1f} s" + (f" (+{extra:.1f} s for the N=1 comparison)" if extra else "")
        )
        echo(
            "  data consistency (RMS of LQ minus the output degraded back onto the LQ grid, normalised "
            f"grey levels; lower = closer to the measurement): {res.info['consistency_rms']:.4f}, bicubic "
            f"input {res.info['consistency_rms_bicubic']:.4f} (the floor); map in consistency.tif"
        )
    echo(f"wrote {out}" + (f" ({len(results)} time steps)" if results and results[0][0] else ""))
    if steps is not None:  # after the work, so that a failed call stays one error line
        echo("note: --steps is now --indi-steps (the old name still works for now)")


def _slab_wise(input, out, scheduler, slab):
    """Whether ``apply`` takes the slab-wise series path (see :mod:`matsight.restore.series`)."""
    from ..restore.series_io import stored_ndim

    if not Path(input).exists():
        raise InputError(f"input not found: {input}")
    if scheduler is not None or slab is not None:
        return True
    if Path(out).suffix.lower() == ".zarr" or Path(input).suffix.lower() == ".zarr":
        return True
    return stored_ndim(input) == 4 or (Path(input).is_dir() and stored_ndim(input) == 3)


def _apply_series(model, input, out, kw, run, *, cubic_z):
    """``restore apply`` on a series (or a volume slab by slab): run, then one line per time step."""
    from ..restore.series import enhance_series

    if not cubic_z:
        raise InputError(
            "a series or zarr volume is enhanced slab by slab in xy slices with --z-mode cubic; "
            "drop --z-mode/--slice-axis (or enhance one volume file into a folder)"
        )

    zarr = Path(out).suffix.lower() == ".zarr"
    if Path(input).resolve().is_relative_to(Path(out).resolve()):
        raise InputError(f"--out {out} holds the input {input}; name a new output")
    # a run cut short keeps its output once the run is recorded there: a rerun resumes it
    check_outputs(resumed=[("--out", out, "zarr.json" if zarr else "series.json")], inputs=[model, input])
    with progress_bar("restore apply") as callback:
        res = enhance_series(str(model), input, out, callback=callback, **kw, **run)
    for name, info in res.steps:
        if info.get("skipped"):
            echo(f"{name}: finished by an earlier run, skipped")
            continue
        cons = info.get("consistency_rms")
        extra = (
            f", data consistency {cons:.4f} (bicubic {info['consistency_rms_bicubic']:.4f})" if cons else ""
        )
        echo(f"{name}: enhanced with N={info['steps']} in {info['seconds']:.1f} s of compute{extra}")
    rate = res.voxels / res.seconds if res.seconds else 0.0
    who = f"{res.workers} worker(s), {res.scheduler}" if res.scheduler else "here, serially"
    done = len(res.steps) - len(res.skipped)
    echo(
        f"{done} time step(s) in {res.seconds:.1f} s ({rate / 1e6:.2f} M LQ voxels/s; {who}; slabs of "
        f"{res.slab} LQ slices); data consistency: RMS of LQ minus the output degraded back "
        "onto the LQ grid (normalised grey levels; lower = closer to the measurement)"
    )
    echo(f"wrote {out}")


@app.command()
@user_errors
def evaluate(
    out: Annotated[Path, typer.Argument(help="Output folder of `matsight restore apply`.")],
    hq: Annotated[Path, typer.Option("--hq", help="HQ reference on the same grid.")],
    report: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")],
    lq: Annotated[Path | None, typer.Option("--lq", help="Raw LQ scan for the bicubic baseline.")] = None,
    spacing: Annotated[float, typer.Option(help="Pixel size for the FWHM (e.g. nm).")] = 1.0,
    sift: Annotated[
        bool, typer.Option("--sift/--no-sift", help="Count SIFT matched and congruent points.")
    ] = True,
    fov_radius: Annotated[
        float | None,
        typer.Option(
            "--fov-radius",
            help="Score inside a centred circle of this radius (HQ px) instead of the training pair's field "
            "of view.",
        ),
    ] = None,
    no_fov: Annotated[
        bool, typer.Option("--no-fov", help="Score the whole image, not the training pair's field of view.")
    ] = False,
    onestep_model: Annotated[
        Path | None,
        typer.Option(
            "--onestep-model",
            help="A model of `restore train --objective onestep` (direct regression), applied to the same LQ "
            "(--lq, else the input recorded by apply) and scored as the one-step row.",
        ),
    ] = None,
):
    """PSNR, SSIM, SIFT matched/congruent points, FWHM edge width, CNR → HTML report (in the field of view
    of the training pair, if it had one). Rows: LQ bicubic; classical NLM and Gaussian denoising of it (tuned
    on the training slices at training time); one-step (--onestep-model); InDI N=1; InDI at the chosen N.
    """
    from .. import restore

    check_outputs(folders=[("--out", report)], inputs=[out, hq, lq, onestep_model])
    if not out.is_dir():
        raise InputError(f"{out} is not an output folder of `matsight restore apply`")
    if no_fov and fov_radius is not None:
        raise InputError("give either --fov-radius or --no-fov, not both")
    if fov_radius is not None and not fov_radius > 0:
        raise InputError(f"--fov-radius must be a positive number of HQ pixels, got {fov_radius:g}")
    metrics, page = restore.evaluate(
        out,
        _read(hq, "HQ reference (--hq)"),
        lq=None if lq is None else _read(lq, "LQ scan (--lq)"),
        report_dir=report,
        fov=None if no_fov else ("auto" if fov_radius is None else fov_radius),
        spacing=spacing,
        sift=sift,
        onestep_model=onestep_model,
    )
    for name, row in metrics.items():
        # counts (SIFT congruent points, edges, lines) are ints; bools are not metrics
        parts = [
            f"{k} {v}" if isinstance(v, int) else f"{k} {v:.3g}"
            for k, v in row.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        ]
        echo(f"{name:<18} " + ", ".join(parts))
    for name, row in metrics.items():
        if "how" in row:
            echo(f"{name}: {row['how']}")
    echo(f"report: {page}")

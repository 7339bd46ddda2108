"""``matsight segment``: grayscale → phase labels from a few hand-drawn strokes (train, apply)."""

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from .._errors import InputError
from ..io import read_spacing, read_volume, write_volume
from ._common import check_outputs, echo, progress_bar, user_errors

app = typer.Typer(
    help="Segment grayscale images/volumes into phases from sparse hand-drawn labels (forest or U-Net).",
    no_args_is_help=True,
)

_WRITE_EXTS = (".tif", ".tiff", ".npy", ".zarr")


def _check_out(path, option):
    if path.suffix.lower() not in _WRITE_EXTS:
        raise InputError(f"{option} {path.name!r} must end in .tif, .tiff, .npy or .zarr")


def _floats(text, option):
    try:
        vals = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise InputError(f"{option} must be comma-separated numbers like 1,2,4,8; got {text!r}") from None
    if not vals:
        raise InputError(f"{option} must list at least one number, e.g. 1,2,4,8")
    return vals


def _scores_lines(scores):
    if not scores.get("n_test"):
        why = (
            "--holdout 0"
            if scores.get("holdout_unit", "none") == "none"
            else "too few strokes to hold any out; draw at least two strokes per phase"
        )
        return [f"no held-out scores ({why})"]
    lines = [
        f"held-out {scores['holdout_unit']}: {scores['n_test']} px (trained on {scores['n_train']} px); "
        f"pixel accuracy {scores['pixel_accuracy']:.3f}, mean Dice {scores['mean_dice']:.3f}",
        f"{'phase':>6} {'n':>8} {'Dice':>7} {'IoU':>7} {'prec.':>7} {'recall':>7}",
    ]
    for p, v in scores["per_phase"].items():
        lines.append(
            f"{p:>6} {v['n']:>8} {v['dice']:>7.3f} {v['iou']:>7.3f} "
            f"{v['precision']:>7.3f} {v['recall']:>7.3f}"
        )
    return lines


@app.command()
@user_errors
def train(
    image: Annotated[Path, typer.Argument(help="Grayscale image or volume (tif, npy, zarr, png).")],
    labels: Annotated[
        Path, typer.Argument(help="Sparse labels, same shape: 0 = unlabelled, 1, 2, ... = phase 0, 1, ...")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Model folder to write.")] = Path("segment-model"),
    method: Annotated[str, typer.Option(help="forest (seconds) or unet (minutes; more labels).")] = "forest",
    slice_index: Annotated[
        int | None, typer.Option("--slice", help="z slice of a 3D IMAGE that a 2D LABELS image marks.")
    ] = None,
    dims: Annotated[str, typer.Option(help="Features: auto, 2 (slice-wise) or 3 (volumetric).")] = "auto",
    sigmas: Annotated[str | None, typer.Option(help="Forest feature scales in pixels, e.g. 1,2,4,8.")] = None,
    trees: Annotated[int | None, typer.Option(help="Number of trees (forest; default 100).")] = None,
    steps: Annotated[int | None, typer.Option(help="Optimiser steps (unet; default 300).")] = None,
    iterations: Annotated[int | None, typer.Option(hidden=True, help="Deprecated: use --steps.")] = None,
    budget: Annotated[
        float | None, typer.Option(help="Wall-clock seconds for the U-Net's steps (unet; default: none).")
    ] = None,
    holdout: Annotated[float, typer.Option(help="Fraction of labelled strokes held out for scoring.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[str, typer.Option(help="unet device: auto, cpu, cuda.")] = "auto",
):
    """Train a segmenter on IMAGE + sparse LABELS; prints held-out accuracy, Dice and IoU per phase."""
    from .. import segment
    from ..segment.config import make_config
    from ..segment.strokes import check_labels

    if iterations is not None:
        echo("note: --iterations is now --steps (the old name still works for now)")
        steps = steps if steps is not None else iterations
    if dims not in ("auto", "2", "3"):
        raise InputError(f"--dims must be auto, 2 or 3, got {dims!r}")
    if method not in ("forest", "unet"):
        raise InputError(f"--method must be forest or unet, got {method!r}")
    config = make_config(
        method=method,
        holdout=holdout,
        seed=seed,
        dims=dims if dims == "auto" else int(dims),
        sigmas=_floats(sigmas, "--sigmas") if sigmas else None,
        n_estimators=trees,
        steps=steps,
        device=device,
    )
    check_outputs(folders=[("--out", out)], inputs=[image, labels])
    img, lab, _ = check_labels(
        read_volume(image), read_volume(labels), slice_index=slice_index, name=labels.name
    )
    with progress_bar(f"training ({method})") as callback:
        model = segment.train((img, lab), out, config=config, budget=budget, callback=callback)
    for line in _scores_lines(model.scores):
        echo(line)
    echo(f"model: {out}  ({model.method}, {model.ndim}D, phases {model.phases})")


@app.command()
@user_errors
def apply(
    model: Annotated[Path, typer.Argument(help="Model folder from `matsight segment train`.")],
    volume: Annotated[Path, typer.Argument(help="Grayscale image or volume to segment.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Label image to write (.tif/.npy/.zarr).")] = Path(
        "labels.tif"
    ),
    probabilities: Annotated[
        Path | None, typer.Option(help="Also write class probabilities (float32, channel axis C) here.")
    ] = None,
    clean: Annotated[int, typer.Option(help="Remove regions smaller than N pixels/voxels (0: off).")] = 0,
    majority: Annotated[int, typer.Option(help="Majority filter radius in pixels (0: off).")] = 0,
    tile: Annotated[int | None, typer.Option(help="Block/tile size in pixels (memory vs speed).")] = None,
    normalize: Annotated[
        str | None,
        typer.Option(help="Intensity scaling: train (the training image's) or image (this one's)."),
    ] = None,
    device: Annotated[str, typer.Option(help="unet device: auto, cpu, cuda.")] = "auto",
):
    """Segment VOLUME with MODEL (slice-wise for 2D models, tiled), optionally cleaned, with probabilities."""
    from .. import segment
    from ..segment.predict import predict

    _check_out(out, "--out")
    if probabilities is not None:
        _check_out(probabilities, "--probabilities")
    check_outputs(files=[("--out", out), ("--probabilities", probabilities)], inputs=[model, volume])
    if normalize not in (None, "train", "image"):
        raise InputError(f"--normalize must be train or image, got {normalize!r}")
    if clean < 0 or majority < 0 or (tile is not None and tile < 8):
        raise InputError("--clean and --majority must be >= 0 and --tile >= 8")
    m = segment.load(model)
    vol = read_volume(volume)
    sp = read_spacing(volume)
    spacing = sp if sp and all(v is not None for v in sp) else None
    with progress_bar("segmenting") as callback:
        res = predict(
            m,
            vol,
            tile=tile,
            probabilities=probabilities is not None,
            clean=clean,
            majority=majority,
            callback=callback,
            normalize_with=normalize,
            device=device,
        )
    labels, proba = res if probabilities is not None else (res, None)
    if spacing is not None:
        spacing = spacing[-labels.ndim :]  # a 1-slice stack is segmented as a 2D image
    write_volume(out, labels, spacing=spacing)
    counts = np.bincount(labels.ravel(), minlength=max(m.phases) + 1)
    fractions = ", ".join(f"{p}: {counts[p] / labels.size:.3f}" for p in m.phases)
    echo(f"labels: {out}  shape {labels.shape}, phase fractions {fractions}")
    if proba is not None:
        if proba.ndim == 3:  # (Y, X, C) → (C, Y, X)
            arr, axes = np.moveaxis(proba, -1, 0), "CYX"
        else:  # (Z, Y, X, C) → (Z, C, Y, X), ImageJ's order
            arr, axes = np.moveaxis(proba, -1, 1), "ZCYX"
        write_volume(probabilities, np.ascontiguousarray(arr), axes=axes, spacing=spacing)
        echo(f"probabilities: {probabilities}  (channel i = phase {m.phases})")

"""``matsight metrics VOLUME``: every microstructure metric of a label image, as a table, JSON and plots."""

import math
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from ._common import check_outputs, echo, progress_bar, progress_enabled, user_errors

STREAM_VOXELS = 256**3
"""Volumes with more voxels are measured slab by slab (bounded memory); smaller ones in memory."""
REGION = 128
"""Edge of the central box on which a streamed volume's τ, 2-point correlations and FFT profile are
computed (they need the whole box at once; τ of a 256³ box alone takes about 5 GiB)."""


def _parse_spacing(text):
    from .._errors import InputError

    if text is None:
        return None
    try:
        vals = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(
            f"--spacing must be numbers like '0.5' or '1,0.5,0.5' (Z,Y,X), got {text!r}"
        ) from exc
    if not vals or any(not (v > 0 and math.isfinite(v)) for v in vals):
        raise InputError(
            f"--spacing must be positive numbers like '0.5' or '1,0.5,0.5' (Z,Y,X), got {text!r}"
        )
    return vals[0] if len(vals) == 1 else tuple(vals)


def _fmt(v, nd=4):
    if v is None:
        return "inf"
    return f"{v:.{nd}g}" if isinstance(v, float) else str(v)


def _labels_and_spacing(volume, labels, spacing):
    """The labels (one slice as 2D), voxel size and unit: from ``--spacing``, the calibration, or voxels."""
    from .._errors import InputError
    from ..io import read_spacing

    sp = _parse_spacing(spacing)
    squeezed = labels.ndim == 3 and labels.shape[0] == 1
    if squeezed:  # one slice: a 2D image (as the tif reader gives it), not a volume one voxel thick
        labels = labels[0]
        if sp is not None and not isinstance(sp, float) and len(sp) == 3:
            sp = sp[1:]
    unit = "voxel"
    if sp is None:
        file_sp = read_spacing(volume)
        if squeezed and file_sp is not None:
            file_sp = file_sp[-2:]
        if file_sp is not None and all(s is not None for s in file_sp) and len(file_sp) == labels.ndim:
            sp, unit = tuple(float(s) for s in file_sp), "nm"
    elif not isinstance(sp, float) and len(sp) != labels.ndim:
        raise InputError(
            f"--spacing has {len(sp)} values but {volume.name} is {labels.ndim}D; give 1 or {labels.ndim}"
        )
    else:
        unit = "spacing units"
    return labels, sp, unit


def _check_options(labels, axis, subvolumes, subvolume_size):
    """Check ``--axis`` and the sub-volume options against the image."""
    from .._errors import InputError

    if axis:
        bad = [a for a in axis if not 0 <= a < labels.ndim]
        if bad:
            raise InputError(f"--axis must be in 0..{labels.ndim - 1} for a {labels.ndim}D image, got {bad}")
    if subvolumes < 0:
        raise InputError(f"--subvolumes must be >= 0, got {subvolumes}")
    if subvolumes and not 2 <= subvolume_size <= min(labels.shape):
        raise InputError(
            f"--subvolume-size must be in [2, {min(labels.shape)}] for an image of shape {labels.shape}, "
            f"got {subvolume_size}"
        )


def _subvolumes(labels, sp, axis, subvolumes, subvolume_size, subvolume_tau, seed, phases=None):
    """Metrics of random sub-volumes: the statistics and their JSON form."""
    from ..metrics.microstructure import subvolume_statistics

    stats = subvolume_statistics(
        labels,
        phases=phases,
        size=subvolume_size,
        n=subvolumes,
        seed=seed,
        spacing=sp,
        transport=subvolume_tau,
        axis=axis[0] if axis else 0,
        progress=progress_enabled(),
    )
    as_json = {
        "size": stats["size"],
        "n": subvolumes,
        "seed": seed,
        **{
            key: ({str(p): v.tolist() for p, v in val.items()} if isinstance(val, dict) else val.tolist())
            for key, val in stats.items()
            if key not in ("size",)
        },
    }
    return stats, as_json


def _echo_summary(volume, labels, result, unit):
    """Print one line per phase (VF, SSA, τ per axis, Euler density) and the TPB density."""
    echo(f"{volume.name}: shape {tuple(labels.shape)}, phases {result['phases']}, units: {unit}")
    for p in result["phases"]:
        k = str(p)
        vf, ssa = result["volume_fraction"][k], result["specific_surface_area"][k]
        line = f"  phase {p}: VF {_fmt(vf)}  SSA {_fmt(ssa)}"
        for ax, r in result.get("tortuosity", {}).get(k, {}).items():
            line += f"  τ[{ax}] {_fmt(r['tau'])}"
        eu = result["euler_density"][k]
        eu = sum(eu.values()) / len(eu) if isinstance(eu, dict) else eu  # 3D: mean over slicing planes
        line += f"  Euler/area {_fmt(float(eu))}"
        echo(line)
    if result["triple_phase_boundary"] is not None:
        echo(f"  TPB density: {_fmt(result['triple_phase_boundary'])}")


def _open_labels(volume):
    """The label volume: loaded and checked, or left on disk (a lazy volume, checked slab by slab as it is
    read) when it has more than :data:`STREAM_VOXELS` voxels.
    """
    from ..io import validate_labels
    from ..io.volumes import open_volume

    lazy = open_volume(volume)
    big = len(lazy.shape) == 3 and math.prod(lazy.shape) > STREAM_VOXELS
    if big and (isinstance(lazy, np.memmap) or not isinstance(lazy, np.ndarray)):
        return lazy
    return validate_labels(np.asarray(lazy), name=volume.name, max_labels=64)


def _measure(labels, sp, axis, tortuosity):
    """Every metric: :func:`summary` in memory, or :func:`streamed_summary` slab by slab for a lazy volume."""
    from ..metrics.microstructure import summary

    if isinstance(labels, np.ndarray) and not isinstance(labels, np.memmap):
        return summary(labels, spacing=sp, axes=axis, tortuosity=tortuosity, progress=progress_enabled())
    from ..io import validate_labels
    from ..metrics.microstructure.streamed import streamed_summary

    with progress_bar("metrics") as callback:
        result = streamed_summary(
            labels,
            spacing=sp,
            axes=axis,
            tortuosity=tortuosity,
            region=REGION,
            check=lambda b: validate_labels(b, name="the volume", max_labels=64),
            callback=callback,
        )
    r = result["region"]
    echo(
        f"{math.prod(labels.shape)} voxels, measured slab by slab: whole-volume VF, SSA, interfaces, TPB, "
        f"Euler densities and chords; {', '.join(r['figures']) or 'nothing else'} on the central "
        f"{'×'.join(map(str, r['shape']))} box at {tuple(r['corner'])}"
    )
    return result


@user_errors
def metrics(
    volume: Annotated[
        Path, typer.Argument(help="Label volume or image (tif, npy, zarr): one integer per phase.")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write every metric to this JSON file.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Write figures and an HTML report (index.html) into this folder."),
    ] = None,
    axis: Annotated[
        list[int] | None,
        typer.Option("--axis", help="Axis for τ, chords and 2-pt correlation (repeatable; default: all)."),
    ] = None,
    spacing: Annotated[
        str | None,
        typer.Option(
            "--spacing",
            help="Voxel size, one number or Z,Y,X (default: the file's calibration in nm, else voxel units).",
        ),
    ] = None,
    tortuosity: Annotated[
        bool, typer.Option("--tortuosity/--no-tortuosity", help="Solve for τ of every phase (slowest part).")
    ] = True,
    subvolumes: Annotated[
        int, typer.Option("--subvolumes", help="Number of random sub-volumes for the violin plots (0: none).")
    ] = 0,
    subvolume_size: Annotated[
        int, typer.Option("--subvolume-size", help="Edge of each sub-volume (voxels).")
    ] = 64,
    subvolume_tau: Annotated[
        bool,
        typer.Option(
            "--subvolume-tau/--no-subvolume-tau",
            help="Also VF/τ of every phase in each sub-volume (along the first --axis; ~1 s per 64³ solve).",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for the sub-volume positions.")] = 0,
):
    """Volume fractions, surface areas, TPB, τ, chords, 2-pt correlation and FFT profile of a label image."""
    check_outputs(files=[("--json", json_out)], folders=[("--plot", plot)], inputs=[volume])
    labels, sp, unit = _labels_and_spacing(volume, _open_labels(volume), spacing)
    _check_options(labels, axis, subvolumes, subvolume_size)
    result = _measure(labels, sp, axis, tortuosity)
    result["file"] = str(volume)
    result["unit"] = unit
    stats = None
    if subvolumes:
        phases = result["phases"] if not isinstance(labels, np.ndarray) else None
        stats, result["subvolumes"] = _subvolumes(
            labels, sp, axis, subvolumes, subvolume_size, subvolume_tau, seed, phases
        )
    _echo_summary(volume, labels, result, unit)

    if json_out is not None:
        from .._atomic import write_json

        write_json(json_out, result)
        echo(f"json: {json_out}")
    if plot is not None:
        from ..report import Report
        from ..report.microstructure import summary_report

        rep = Report(plot, f"Microstructure metrics: {volume.name}")
        rep.text(f"{volume} — shape {tuple(labels.shape)}, units: {unit}")
        summary_report(rep, {volume.stem: result}, subvolumes={volume.stem: stats} if stats else None)
        echo(f"report: {rep.write().resolve()}")

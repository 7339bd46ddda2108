"""``matsight tem``: HRTEM phase identification from FFT spots (analyze, series, calibrate, train-detector).

The commands import :mod:`matsight.tem` when they run, so that ``matsight --help`` stays quick and torch-free.
"""

from pathlib import Path
from typing import Annotated

import typer

from .._atomic import write_json
from .._errors import InputError
from ._common import check_outputs, echo, progress_bar, user_errors

app = typer.Typer(
    help="HRTEM phase identification: FFT spots → phases and (hkl) → real-space phase maps; movies.",
    no_args_is_help=True,
)

PixelSize = Annotated[
    str | None,
    typer.Option(
        "--pixel-size", help="Pixel size in nm (overrides the file; 'PY,PX' for anisotropic pixels)."
    ),
]
CalibrationFile = Annotated[
    Path | None,
    typer.Option(
        "--calibration",
        help="Calibration file (JSON: kind matsight.calibration, pixel_size_nm [y, x]) instead of the file's "
        "pixel size; not with --pixel-size.",
    ),
]
Phases = Annotated[
    str | None,
    typer.Option(
        "--phases",
        help="Comma-separated phases to search: shipped ones and names from --phase-file "
        "(default: the shipped Li,LiF,Li2O,Li2CO3 plus every --phase-file).",
    ),
]
PhaseFiles = Annotated[
    list[Path] | None,
    typer.Option(
        "--phase-file",
        help="A phase from a YAML or CIF file (repeatable); always searched, selectable by name in --phases. "
        "A file with a shipped phase's name (e.g. LiF) replaces the shipped one.",
    ),
]
Tolerance = Annotated[float, typer.Option(help="Relative d tolerance for matching (0.02 = 2 %).")]
AngleTol = Annotated[float, typer.Option("--angle-tolerance", help="Inter-plane angle tolerance (degrees).")]
Detector = Annotated[str, typer.Option(help="Spot detector: classical or unet.")]
Weights = Annotated[
    Path | None,
    typer.Option(help="U-Net weights from `matsight tem train-detector` (default: the shipped ones)."),
]


def _pixel_size(text):
    if text is None:
        return None
    try:
        vals = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"--pixel-size must be a number in nm (or 'PY,PX'), got {text!r}") from exc
    if len(vals) not in (1, 2) or any(not v > 0 for v in vals):
        raise InputError(f"--pixel-size must be one or two positive numbers in nm, got {text!r}")
    return vals[0] if len(vals) == 1 else tuple(vals)


def _calibration_file(pixel_size, calibration):
    """The checked calibration file (refused with --pixel-size, or when invalid) before anything is read."""
    if calibration is None:
        return None
    if pixel_size is not None:
        raise InputError("give either --pixel-size or --calibration, not both; drop one of them")
    from ..io.calibration import read_calibration

    read_calibration(calibration)  # one-line error now, not after the file is read
    return calibration


def _phase_list(phases, phase_files):
    from ..tem.crystals import select_phases

    return select_phases(phases, phase_files or ())


@app.command()
@user_errors
def analyze(
    file: Annotated[Path, typer.Argument(help="HRTEM image (dm3/dm4/mrc/ser/emi/emd, tif, npy, png/jpg).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("tem-analysis"),
    pixel_size: PixelSize = None,
    phases: Phases = None,
    phase_file: PhaseFiles = None,
    tolerance: Tolerance = 0.02,
    angle_tolerance: AngleTol = 2.0,
    detector: Detector = "classical",
    weights: Weights = None,
    frame: Annotated[int | None, typer.Option(help="Frame of a stack to analyse (0 = first).")] = None,
    calibration: CalibrationFile = None,
    d_min: Annotated[float, typer.Option("--d-min", help="Smallest spacing analysed (Å).")] = 1.0,
    d_max: Annotated[float, typer.Option("--d-max", help="Largest spacing analysed (Å).")] = 15.0,
    min_intensity: Annotated[
        float,
        typer.Option("--min-intensity", help="Ignore reference reflections weaker than this (rel. |F|²)."),
    ] = 0.01,
    maps: Annotated[bool, typer.Option("--maps/--no-maps", help="Compute real-space phase maps.")] = True,
):
    """One image: spots, d/(hkl)/phase table (CSV/JSON), labelled FFT, phase maps, HTML report."""
    from ..tem import analyze_file, make_config
    from ..tem.frames import calibration_line
    from ..tem.report import write_analysis

    # every option is checked before the (possibly long) reading and analysis
    check_outputs(folders=[("--out", out)], inputs=[file, *([calibration] if calibration else [])])
    cal = _calibration_file(pixel_size, calibration)
    config = make_config(
        tolerance=tolerance,
        angle_tolerance=angle_tolerance,
        d_min=d_min,
        d_max=d_max,
        min_intensity=min_intensity,
        detector=detector,
        weights=weights,
        maps=maps,
    )
    ps, plist = _pixel_size(pixel_size), _phase_list(phases, phase_file)
    res, img = analyze_file(
        file, pixel_size=ps, frame=frame, phases=plist, config=config, calibration=cal,
        pixel_size_source="--pixel-size",
    )  # fmt: skip
    echo(calibration_line(res.pixel_size_nm, res.calibration_source))
    report = write_analysis(res, img, out, source=file)
    for k, v in res.summary().items():
        echo(f"{k:<24} {v}")
    echo(f"report: {report.resolve()}")


@app.command()
@user_errors
def series(
    source: Annotated[
        Path, typer.Argument(help="A movie/stack file or a folder of frames (any file `tem analyze` reads).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("tem-series"),
    pixel_size: PixelSize = None,
    phases: Phases = None,
    phase_file: PhaseFiles = None,
    tolerance: Tolerance = 0.02,
    angle_tolerance: AngleTol = 2.0,
    detector: Detector = "classical",
    weights: Weights = None,
    frame_time: Annotated[
        float | None,
        typer.Option(
            "--frame-time",
            help="Seconds per frame (time axis of the plot/CSV); default: the file's frame times, if any.",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Run frames through dask (scale extra): threads, processes, distributed (local cluster) "
            "or a scheduler address tcp://host:port (other machines)."
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Number of dask workers (≥ 1).")] = None,
    calibration: CalibrationFile = None,
):
    """Every frame: intensity per phase vs frame/time (CSV, JSON, PNG, HTML) — e.g. beam damage."""
    from ..tem import make_config
    from ..tem.frames import calibration_line
    from ..tem.predict import analyze_series_file
    from ..tem.series import TIME_SOURCES, write_series

    check_outputs(folders=[("--out", out)], inputs=[source, *([calibration] if calibration else [])])
    cal = _calibration_file(pixel_size, calibration)
    config = make_config(
        tolerance=tolerance,
        angle_tolerance=angle_tolerance,
        detector=detector,
        weights=weights,
        frame_time=frame_time,
        scheduler=scheduler,
        workers=workers,
    )
    ps, plist = _pixel_size(pixel_size), _phase_list(phases, phase_file)
    with progress_bar("frames") as callback:
        res = analyze_series_file(
            source, pixel_size=ps, phases=plist, config=config, callback=callback, calibration=cal,
            pixel_size_source="--pixel-size",
        )  # fmt: skip
    echo(calibration_line(res.pixel_size_nm, res.calibration_source))
    report = write_series(res, out, source=source, x="frame" if res.time_source == "index" else "time")
    echo(f"frames {len(res.frames)}  seconds {res.seconds:.1f}")
    echo(f"time axis: {TIME_SOURCES[res.time_source]}")
    for p, f in res.first_seen().items():
        if f is not None:
            echo(f"{p:<10} first seen in frame {f}")
    echo(f"report: {report.resolve()}")


@app.command()
@user_errors
def calibrate(
    file: Annotated[Path, typer.Argument(help="A frame of a known crystal (any file `tem analyze` reads).")],
    phase: Annotated[
        str, typer.Option("--phase", help="The crystal in the frame: shipped name or YAML/CIF file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Calibration file to write (JSON).")] = Path(
        "calibration.json"
    ),
    pixel_size: PixelSize = None,
    frame: Annotated[int | None, typer.Option(help="Frame of a stack to use (0 = first).")] = None,
    tolerance: Tolerance = 0.02,
    angle_tolerance: AngleTol = 2.0,
    detector: Detector = "classical",
    note: Annotated[str, typer.Option(help="Free text stored in the calibration file.")] = "",
):
    """Fit the pixel size (scale, x/y anisotropy, shear) on a known crystal; write a calibration file."""
    from ..io.calibration import write_calibration
    from ..tem import make_config
    from ..tem.calibrate import calibrate_file

    check_outputs(files=[("--out", out)], inputs=[file])
    config = make_config(tolerance=tolerance, angle_tolerance=angle_tolerance, detector=detector)
    fit, src = calibrate_file(file, phase, pixel_size=_pixel_size(pixel_size), frame=frame, config=config)
    s = fit.summary()
    source = f"{Path(file).name}: {fit.phase} {s['zone']}, {fit.spots} spots (matsight tem calibrate)"
    write_calibration(out, fit.to_calibration(source=source, note=note))
    gy, gx = fit.given_nm
    echo(f"given pixel size   {gx:.6g} nm (x), {gy:.6g} nm (y) from {src}")
    echo(f"fitted pixel size  {fit.pixel_size_nm[1]:.6g} nm (x), {fit.pixel_size_nm[0]:.6g} nm (y)")
    echo(f"scale {fit.scale:.4f}  anisotropy x/y {s['anisotropy_percent']:+.2f} %  shear {fit.shear:+.4f}")
    echo(f"fit on {fit.phase} {s['zone']}: {fit.spots} spots, residual {fit.residual_percent:.2f} %")
    echo(f"calibration: {out.resolve()}  (use: matsight tem analyze FILE --calibration {out})")


def _training(steps, epochs, seed, threads, device):
    """``config.training`` from the options; ``--epochs`` is the deprecated way to say how long."""
    if steps is not None and epochs is not None:
        raise InputError("--epochs is a deprecated alias of --steps; give only --steps")
    if epochs is not None:
        typer.echo("warning: --epochs is deprecated; use --steps (optimiser steps)", err=True)
    how_long = {"steps": steps} if steps is not None else {"epochs": 10 if epochs is None else epochs}
    return {**how_long, "seed": seed, "threads": threads, "device": device}


def _print_scores(scores):
    keys = ("dice", "iou", "precision", "recall", "hausdorff_px_mean", "spot_precision", "spot_recall")
    echo("held-out        " + " ".join(f"{k[:12]:>12}" for k in keys))
    for det, sc in scores.items():
        echo(f"{det:<15} " + " ".join(f"{sc[k]:>12.3f}" for k in keys))


@app.command("train-detector")
@user_errors
def train_detector(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Weights file (.safetensors), or a folder to hold one.")
    ] = Path("spot_unet.safetensors"),
    n_train: Annotated[int, typer.Option("--n-train", help="Synthetic training frames.")] = 600,
    n_val: Annotated[
        int, typer.Option("--n-val", help="Validation frames (epoch and threshold choice).")
    ] = 60,
    size: Annotated[int, typer.Option(help="Typical frame side of the synthetic images (px).")] = 256,
    steps: Annotated[
        int | None,
        typer.Option(
            help="Optimiser steps (default: 10 passes over the training patches, 750 at the default "
            "--n-train); the weights are validated after every pass and at the end."
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(hidden=True, help="Deprecated: passes over the training patches; use --steps."),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(help="Stop training after this long: seconds or e.g. 20m, 2h (keeps the best epoch)."),
    ] = None,
    evaluate: Annotated[
        int, typer.Option(help="Held-out frames to score both detectors on afterwards (0: skip).")
    ] = 40,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads for torch.")] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
):
    """Train the U-Net spot detector on synthetic lattice FFTs (labels known by construction).

    Writes safetensors weights (config, threshold and metrics in the metadata) and a JSON next to them; pass
    the file to `matsight tem analyze --detector unet --weights FILE`, or copy it over the shipped weights.
    """
    from ..tem import evaluate as evaluate_detectors
    from ..tem import make_config, train
    from ..tem.train import make_data, weights_path

    weights = weights_path(out)
    files = [("--out", weights), ("--out (its settings JSON)", weights.with_suffix(".json"))]
    if evaluate > 0:
        files.append(("--out (its evaluation JSON)", weights.with_suffix(".eval.json")))
    check_outputs(files=files)
    data = make_data(n_train=n_train, n_val=n_val, size=size)
    config = make_config(training=_training(steps, epochs, seed, threads, device))
    with progress_bar("training") as callback:
        metrics = train(data, weights, config=config, budget=budget, callback=callback)
    for k, v in metrics.items():
        echo(f"{k:<22} {v}")
    if evaluate > 0:
        with progress_bar("held-out FFTs") as callback:
            scores = evaluate_detectors(weights, n=evaluate, size=size, callback=callback)
        write_json(weights.with_suffix(".eval.json"), scores)
        _print_scores(scores)
    echo(f"weights: {weights.resolve()}")

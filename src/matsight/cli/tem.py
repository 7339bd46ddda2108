"""``matsight tem``: HRTEM phase identification from FFT spots (analyze, series, train-detector)."""

from pathlib import Path
from typing import Annotated

import typer

from ._common import check_outputs, echo, progress_enabled, user_errors

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
    from .._errors import InputError

    try:
        vals = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError as exc:
        raise InputError(f"--pixel-size must be a number in nm (or 'PY,PX'), got {text!r}") from exc
    if len(vals) not in (1, 2) or any(not v > 0 for v in vals):
        raise InputError(f"--pixel-size must be one or two positive numbers in nm, got {text!r}")
    return vals[0] if len(vals) == 1 else tuple(vals)


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
    d_min: Annotated[float, typer.Option("--d-min", help="Smallest spacing analysed (Å).")] = 1.0,
    d_max: Annotated[float, typer.Option("--d-max", help="Largest spacing analysed (Å).")] = 15.0,
    min_intensity: Annotated[
        float,
        typer.Option("--min-intensity", help="Ignore reference reflections weaker than this (rel. |F|²)."),
    ] = 0.01,
    maps: Annotated[bool, typer.Option("--maps/--no-maps", help="Compute real-space phase maps.")] = True,
):
    """One image: spots, d/(hkl)/phase table (CSV/JSON), labelled FFT, phase maps, HTML report."""
    from ..tem.pipeline import analyze_file, check_settings
    from ..tem.report import write_analysis

    # every option is checked before the (possibly long) reading and analysis
    check_outputs(folders=[("--out", out)], inputs=[file])
    check_settings(
        tolerance=tolerance,
        angle_tolerance=angle_tolerance,
        d_min=d_min,
        d_max=d_max,
        min_intensity=min_intensity,
        detector=detector,
        weights=weights,
    )
    ps = _pixel_size(pixel_size)
    plist = _phase_list(phases, phase_file)
    res, img = analyze_file(
        file,
        pixel_size=ps,
        frame=frame,
        phases=plist,
        tolerance=tolerance,
        angle_tolerance=angle_tolerance,
        detector=detector,
        weights=weights,
        d_min=d_min,
        d_max=d_max,
        min_intensity=min_intensity,
        maps=maps,
    )
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
):
    """Every frame: intensity per phase vs frame/time (CSV, JSON, PNG, HTML) — e.g. beam damage."""
    from ..tem.pipeline import check_settings
    from ..tem.series import TIME_SOURCES, analyze_series, check_series_settings, read_series, write_series

    check_outputs(folders=[("--out", out)], inputs=[source])
    check_settings(tolerance=tolerance, angle_tolerance=angle_tolerance, detector=detector, weights=weights)
    check_series_settings(frame_time=frame_time, scheduler=scheduler, workers=workers)
    ps_user = _pixel_size(pixel_size)
    plist = _phase_list(phases, phase_file)
    frames, ps, labels, times = read_series(source, pixel_size=ps_user, return_times=True)
    res = analyze_series(
        frames,
        ps,
        plist,
        frame_time=frame_time,
        times=times,
        labels=labels,
        scheduler=scheduler,
        workers=workers,
        progress=progress_enabled(),
        tolerance=tolerance,
        angle_tolerance=angle_tolerance,
        detector=detector,
        weights=weights,
    )
    report = write_series(res, out, source=source, x="frame" if res.time_source == "index" else "time")
    echo(f"frames {len(res.frames)}  seconds {res.seconds:.1f}")
    echo(f"time axis: {TIME_SOURCES[res.time_source]}")
    for p, f in res.first_seen().items():
        if f is not None:
            echo(f"{p:<10} first seen in frame {f}")
    echo(f"report: {report.resolve()}")


@app.command("train-detector")
@user_errors
def train_detector(
    out: Annotated[Path, typer.Option("--out", "-o", help="Weights file (.safetensors).")] = Path(
        "spot_unet.safetensors"
    ),
    n_train: Annotated[int, typer.Option("--n-train", help="Synthetic training frames.")] = 600,
    n_val: Annotated[
        int, typer.Option("--n-val", help="Validation frames (epoch and threshold choice).")
    ] = 60,
    size: Annotated[int, typer.Option(help="Typical frame side of the synthetic images (px).")] = 256,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = 10,
    budget: Annotated[
        float | None, typer.Option(help="Stop training after this many seconds (keeps the best epoch).")
    ] = None,
    evaluate: Annotated[
        int, typer.Option(help="Held-out frames to score both detectors on afterwards (0: skip).")
    ] = 40,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    threads: Annotated[int, typer.Option(help="CPU threads for torch.")] = 2,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "cpu",
):
    """Train the U-Net spot detector on synthetic lattice FFTs (labels known by construction).

    Writes safetensors weights (config, threshold and metrics in the metadata) and a JSON next to them; pass
    the file to `matsight tem analyze --detector unet --weights FILE`, or copy it over the shipped weights.
    """
    from .._atomic import write_json
    from ..tem.train_detector import evaluate_detectors, make_config, train

    out = Path(out)
    files = [("--out", out)]
    if out.suffix == ".safetensors":  # else train() names the suffix problem
        files.append(("--out (its settings JSON)", out.with_suffix(".json")))
        if evaluate > 0:
            files.append(("--out (its evaluation JSON)", out.with_suffix(".eval.json")))
    check_outputs(files=files)
    cfg = make_config(
        n_train=n_train,
        n_val=n_val,
        size=size,
        epochs=epochs,
        seed=seed,
        threads=threads,
        device=device,
        budget_s=budget,
    )
    metrics = train(cfg, out, progress=progress_enabled())
    for k, v in metrics.items():
        echo(f"{k:<22} {v}")
    if evaluate > 0:
        scores = evaluate_detectors(n=evaluate, size=size, weights=out, progress=progress_enabled())
        write_json(Path(out).with_suffix(".eval.json"), scores)
        keys = ("dice", "iou", "precision", "recall", "hausdorff_px_mean", "spot_precision", "spot_recall")
        echo("held-out        " + " ".join(f"{k[:12]:>12}" for k in keys))
        for det, sc in scores.items():
            echo(f"{det:<15} " + " ".join(f"{sc[k]:>12.3f}" for k in keys))
    echo(f"weights: {Path(out).resolve()}")

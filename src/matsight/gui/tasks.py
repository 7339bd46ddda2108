"""What the GUI's jobs call: thin adapters from page settings to library functions (no method logic here).

Two kinds:

- thread tasks ``fn(job, **settings) -> dict`` (tem analyses): the reading and analysing run in a
  :mod:`~matsight.gui.pool` worker (``call``); results stay in memory (``job.payload``) for the page's
  images, and a JSON-able summary is returned;
- worker-process tasks ``fn(emit, **settings) -> dict`` (trainings, generation): run by
  :mod:`matsight.gui.worker`; ``emit(progress=, message=)`` reports to the page.
"""

import logging
import threading
import time
from pathlib import Path

import numpy as np

from .._errors import InputError

log = logging.getLogger(__name__)


# ========================================================================================== tem (threads)
PIXEL_SIZE_FIELD = "the pixel size field"  # how the page's typed pixel size is named in a calibration source
YAML_BOX = "phase entry (YAML box)"  # where the page's YAML phases come from


def tem_open(path, *, pixel_size=None, calibration=None):
    """Shape, frame count and calibration of a microscope file (what the page shows before analysing)."""
    from ..io import read_microscope
    from ..tem.frames import calibration_line

    mi = read_microscope(
        path, pixel_size=pixel_size, lazy=True, calibration=calibration, pixel_size_source=PIXEL_SIZE_FIELD
    )
    shape = tuple(int(s) for s in mi.data.shape)
    if len(shape) == 1:
        raise InputError(
            f"{path.name} holds a 1D signal of {shape[0]} samples, not an image; pick an HRTEM image"
        )
    return {
        "shape": shape,
        "n_frames": int(mi.n_frames),
        "pixel_size_nm": [float(p) for p in tuple(mi.pixel_size_nm)[-2:]],
        "units": list(mi.units),
        "pixel_size_source": mi.metadata.get("pixel_size_source", "file"),
        "calibration_source": mi.calibration_source,
        "calibration_line": calibration_line(mi.pixel_size_nm, mi.calibration_source),
    }


def tem_phases(specs):
    """The phases that names, files and YAML entries load (None: the shipped ones), as
    :func:`phase_record` with the ``file`` each came from (runs in a pool worker).
    """
    if specs is not None and not specs:
        return []
    return selected_phases(specs)[1]


def _spec_file(spec):
    """Where a phase spec comes from: its file (path text), the YAML box (a mapping) or "shipped" (a name)."""
    if isinstance(spec, dict):
        return YAML_BOX
    return str(spec) if Path(str(spec)).is_file() else "shipped"


def selected_phases(phases=None, phases_off=()):
    """The phases searched: ``phases`` loaded (None: the shipped ones), less the added phases the page
    unticked (``phases_off``, names); and each one's :func:`phase_record` with its ``file``.
    """
    from ..tem.crystals import load_phases

    off = set(phases_off or ())
    plist = load_phases(phases)
    files = [_spec_file(s) for s in phases] if phases is not None else ["shipped"] * len(plist)
    kept = [(p, f) for p, f in zip(plist, files, strict=True) if p.name not in off]
    if not kept:
        raise InputError("no phase is ticked; tick at least one phase in the list")
    return [p for p, _ in kept], [{**phase_record(p), "file": f} for p, f in kept]


def _fft_crop(shape, pixel_size_nm, d_min):
    """Half-size (rows, cols) of the FFT region holding every spacing ≥ ``d_min`` Å."""
    g_max = 10.0 / float(d_min)  # 1/nm
    return tuple(
        int(min(n // 2, np.ceil(g_max * n * float(ps)) + 4))
        for n, ps in zip(shape, pixel_size_nm, strict=True)
    )


def tem_view(res, d_min=1.0):
    """What the page shows of a :class:`~matsight.tem.predict.TemResult` (table, spot overlay, colours)."""
    from ..tem.frames import calibration_line
    from ..tem.match import UNKNOWN
    from ..tem.report import phase_colors

    names = [p.name for p in res.phases]
    colors = phase_colors(names)
    sp = res.spots
    ny, nx = res.shape
    hy, hx = _fft_crop(res.shape, res.pixel_size_nm, d_min)
    y0, x0 = ny // 2 - hy, nx // 2 - hx
    spots = []
    for k, m in enumerate(res.match.matches):
        spots.append(
            {
                "row": float(sp.row[k]) - y0,
                "col": float(sp.col[k]) - x0,
                "mate_row": float(sp.mate_row[k]) - y0,
                "mate_col": float(sp.mate_col[k]) - x0,
                "radius": float(max(sp.size[k] / 2, 3)),
                "phase": m.phase,
                "label": m.label if m.phase != UNKNOWN else f"? {sp.d[k]:.3g} Å",
                "color": colors.get(m.phase, "#999999"),
                "intensity": float(sp.intensity[k]),  # the stronger spots' labels get the free places
            }
        )
    maps = res.maps
    merit_rows = res.match.merit_table()
    merit = {r["phase"]: r for r in merit_rows}
    phases = []
    for n in names:
        phases.append(
            {
                "name": n,
                "color": colors[n],
                "found": n in res.phases_found,
                "merit": merit[n]["merit"],
                "merit_zone": merit[n]["zone"],
                "has_map": maps is not None and n in maps.phase_names,
                "area_fraction": None if maps is None else maps.area_fraction.get(n),
            }
        )
    return {
        "summary": {k: str(v) for k, v in res.summary().items()},
        "table": res.table(),
        "spots": spots,
        "fft_box": {"y0": y0, "x0": x0, "height": 2 * hy, "width": 2 * hx},
        "shape": list(res.shape),
        "phases": phases,
        "phase_intensity": res.phase_intensity(),
        "calibration": res.calibration(),
        "calibration_line": calibration_line(res.pixel_size_nm, res.calibration_source),
        "verdict": res.match.verdict(res.pixel_size_nm),
        "found_any": bool(res.phases_found),
        "merit": merit_rows,
    }


def tem_analyze_file(
    path, *, frame=None, pixel_size=None, calibration=None, phases=None, phases_off=(), d_min=1.0, **settings
):
    """Read and analyse one frame (runs in a pool worker): ``(TemResult, image)``."""
    from ..tem import analyze_file

    plist, searched = selected_phases(phases, phases_off)
    res, img = analyze_file(
        path,
        pixel_size=pixel_size,
        calibration=calibration,
        pixel_size_source=PIXEL_SIZE_FIELD,
        frame=frame,
        phases=plist,
        d_min=d_min,
        **settings,
    )
    return res, np.asarray(img), searched


def _with_phases(record, searched, files):
    """``record`` with the phases searched, each with its file (``files``: path → its data-folder name)."""
    return {**(record or {}), "phases": [{**p, "file": files.get(p["file"], p["file"])} for p in searched]}


def tem_analyze(job, *, call, path, frame=None, d_min=1.0, record=None, files=None, **settings):
    """Analyse one frame (thread job; ``call`` runs it in a worker): payload ``{"result", "image", "path",
    "settings"}`` (``record``: the page's settings as the saved folder records them; ``files``: the phase
    files' paths → their names in the data folder).
    """
    job.update(0.1, f"reading and analysing {path.name}")
    res, img, searched = call(
        "tem.analyze", path, frame=frame, d_min=d_min, should_stop=job.should_stop, **settings
    )
    record = _with_phases(record, searched, files or {})
    job.payload = {"result": res, "image": img, "path": path, "settings": record}
    job.update(0.95, "rendering")
    view = tem_view(res, d_min=d_min)
    view["frame"] = frame
    return view


def tem_series_compute(
    emit, path, *, pixel_size=None, calibration=None, phases=None, phases_off=(), **settings
):
    """Intensity per phase per frame; the page hears of the frames done (runs in a pool worker)."""
    from ..progress import throttled
    from ..tem.predict import analyze_series_file

    callback = throttled(lambda p: emit(progress=p.fraction, message=p.message), interval=0.25)
    plist, searched = selected_phases(phases, phases_off)
    res = analyze_series_file(
        path,
        pixel_size=pixel_size,
        calibration=calibration,
        pixel_size_source=PIXEL_SIZE_FIELD,
        phases=plist,
        callback=callback,
        **settings,
    )
    return res, searched


def phase_record(p):
    """A searched phase as a saved folder records it: name, formula, space group and source file."""
    return {"name": p.name, "formula": p.formula, "space_group": p.space_group, "source": p.source}


def tem_series(job, *, call, path, record=None, files=None, **settings):
    """:func:`tem_series_compute` as a thread job; a stop ends its worker at once."""
    from ..tem.frames import calibration_line
    from ..tem.report import phase_colors

    job.update(0.0, f"reading {path.name}")
    res, searched = call(
        "tem.series",
        path,
        should_stop=job.should_stop,
        on_event=lambda progress=None, message=None: job.update(progress, message),
        **settings,
    )
    job.payload = {"series": res, "path": path, "settings": _with_phases(record, searched, files or {})}
    names = res.phases
    colors = phase_colors([p for p in names if p != "unknown"])
    return {
        "phases": names,
        "colors": {p: colors.get(p, "#999999") for p in names},
        "frames": [str(f) for f in res.frames],
        "time_s": res.time_s.tolist(),
        "intensity": {k: v.tolist() for k, v in res.intensity.items()},
        "n_spots": {k: v.tolist() for k, v in res.n_spots.items()},
        "first_seen": {k: (None if v is None else str(v)) for k, v in res.first_seen().items()},
        "n_frames": len(res.frames),
        "complete": True,
        "calibration_line": calibration_line(res.pixel_size_nm, res.calibration_source),
    }


def series_settings(res, record=None):
    """What a series' folder records of its settings (``settings.json``): the page's settings, the phases
    searched with their source files, and the calibration used with its source.
    """
    py, px = (float(p) for p in res.pixel_size_nm)
    out = {**(record or {})}
    out.setdefault("phases", [{"name": n} for n in res.phases if n != "unknown"])
    out["calibration"] = {"pixel_size_nm": {"y": py, "x": px}, "source": res.calibration_source}
    return out


def tem_save(job, *, payload, out_dir, source):
    """Write the CLI's outputs (CSV, JSON, PNG, HTML) of an analysis or series into ``out_dir``, with the
    settings used (``spots.json``'s ``settings``; a series' ``settings.json``).
    """
    record = payload.get("settings")
    if "series" in payload:
        from .._atomic import write_json
        from ..tem.series import write_series

        report = write_series(payload["series"], out_dir, source=source)
        write_json(Path(out_dir) / "settings.json", series_settings(payload["series"], record))
    else:
        from ..tem.report import write_analysis

        report = write_analysis(payload["result"], payload["image"], out_dir, source=source, settings=record)
    return {"report": str(report)}


# ========================================================================================== worker tasks
def selftest(emit, *, steps=5, delay=0.1, fail=None, out_dir=None):
    """A task that only reports progress (checks the worker machinery; ``fail="input"|"bug"`` raises)."""
    for i in range(int(steps)):
        time.sleep(float(delay))
        emit(progress=(i + 1) / steps, message=f"step {i + 1} of {steps}")
    if fail == "input":
        raise InputError("selftest asked to fail; this is the user-error path")
    if fail == "bug":
        raise RuntimeError("selftest asked to crash")
    return {"steps": int(steps)}


class _TrainWatcher(logging.Handler):
    """Turns a training's evaluation log lines (and optional callback) into progress events.

    Progress is iterations / ``iterations`` or elapsed / ``budget``; a heartbeat thread keeps the budget bar
    moving between evaluations.
    """

    def __init__(self, emit, iterations, budget_s):
        super().__init__(logging.INFO)
        self.emit_event, self.iterations, self.budget_s = emit, iterations, budget_s
        self.t0 = time.monotonic()
        self.it = None
        self.msg = "starting"
        self._last = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def fraction(self):
        fr = []
        if self.iterations and self.it is not None:
            fr.append(self.it / self.iterations)
        if self.budget_s:
            fr.append((time.monotonic() - self.t0) / self.budget_s)
        return min(max(fr), 0.999) if fr else None

    def emit(self, record):  # logging.Handler API
        msg = record.getMessage()
        if msg.startswith("it ") and isinstance(record.args, tuple) and record.args:
            self.it = int(record.args[0])
            self.msg = msg.replace("it ", "iteration ", 1)
            self.emit_event(progress=self.fraction(), message=self.msg)
        elif msg.startswith("resuming"):
            self.emit_event(message=msg)

    def callback(self, p):
        """``restore.train``'s :mod:`matsight.progress` callback; throttled to a few events per second."""
        self.it = int(p.step)
        loss = p.metrics.get("loss")
        self.msg = f"iteration {self.it}" + ("" if loss is None else f", loss {float(loss):.4g}")
        now = time.monotonic()
        if now - self._last >= 0.25:
            self._last = now
            self.emit_event(progress=self.fraction(), message=self.msg)

    def _beat(self):
        while not self._done.wait(1.0):
            if self.budget_s:
                self.emit_event(progress=self.fraction(), message=self.msg)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()


def _watch_logger(name, watcher):
    lg = logging.getLogger(name)
    lg.addHandler(watcher)
    if lg.getEffectiveLevel() > logging.INFO:
        lg.setLevel(logging.INFO)
    return lg


def _fuse_progress(watcher):
    """``fuse.train``'s callback → the page: the iteration, and the latest evaluation's score."""

    def callback(p):
        watcher.it = int(p.step)
        m = p.metrics
        watcher.msg = f"iteration {p.step}" + (
            f" score {m['score']:.4f} lr-agree {m['lr_agreement']:.3f}" if "score" in m else ""
        )
        now = time.monotonic()
        if now - watcher._last >= 0.25 or p.step == p.total:
            watcher._last = now
            watcher.emit_event(progress=watcher.fraction(), message=watcher.msg)

    return callback


def fuse_train_config(
    preset=None,
    *,
    scale=None,
    mode=None,
    anisotropic=None,
    seed=None,
    iterations=None,
    budget=None,
    metrics_every=None,
    overrides=None,
):
    """The page's ``fuse.train`` settings as a :class:`~matsight.fuse.config.FuseConfig`.

    Built as ``matsight fuse train`` builds them, by :func:`matsight.fuse.config.make_config` (settings left
    out keep the preset's values; without steps the preset's, or with a budget the budget alone ends the
    run). Unlike the CLI, the run checkpoints at every evaluation, so that a stop loses little.
    """
    from ..fuse.config import make_config

    given = {"scale": scale, "mode": mode, "anisotropic": anisotropic, "seed": seed}
    given["metrics_every"] = metrics_every
    extra = dict(overrides or {})
    if iterations is not None or budget not in (None, ""):
        extra.setdefault("training.steps", iterations)
    preset = preset or "cpu"  # as the CLI: a new run's (the GUI's training resumes with the settings given)
    cfg = make_config(preset, settings=extra, **given)
    if not {"checkpoint_every", "training.checkpoint_every"} & set(extra):
        cfg = make_config(preset, settings={**extra, "checkpoint_every": cfg.training.metrics_every}, **given)
    return cfg


def fuse_train(
    emit,
    *,
    lr,
    hr,
    out_dir,
    hr_y=None,
    hr_z=None,
    preset=None,
    iterations=None,
    budget=None,
    device="auto",
    resume=True,
    **settings,
):
    """Read the label images and run :func:`matsight.fuse.train` (worker task); ``settings``: those of
    :func:`fuse_train_config`.
    """
    from .._duration import parse_duration
    from ..fuse import train
    from ..io import read_labels

    cfg = fuse_train_config(preset, iterations=iterations, budget=budget, **settings)
    budget_s = parse_duration(budget) if budget not in (None, "") else None
    emit(progress=0.0, message="reading inputs")
    hr_a = read_labels(hr)
    if hr_y or hr_z:
        hr_a = {"x": hr_a, **{k: read_labels(f) for k, f in (("y", hr_y), ("z", hr_z)) if f}}
    data = (read_labels(lr), hr_a)
    watcher = _TrainWatcher(emit, cfg.training.steps, budget_s)
    emit(message="training")
    with watcher:
        res = train(
            data,
            out_dir,
            config=cfg,
            budget=budget_s,
            callback=_fuse_progress(watcher),
            device=device,
            resume=resume,
        )
    return {
        "iterations": res.iterations,
        "seconds": res.seconds,
        "best_iteration": res.best_iteration,
        "best_score": res.best_score,
        "seconds_per_iteration": res.seconds_per_iteration,
    }


def fuse_generate(emit, *, run, lr, out, seed=0, samples=1, device="auto", **options):
    """:func:`matsight.fuse.predict` from a run folder (worker task)."""
    from ..fuse import predict
    from ..io import read_labels

    emit(progress=0.0, message="reading LR volume")
    lr_a = read_labels(lr)
    emit(progress=0.05, message="generating")
    res = predict(run, lr_a, out=out, seed=seed, samples=samples, device=device, **options)
    return {
        "out": str(out),
        "shape": list(res.labels.shape),
        "scale": res.scale,
        "seconds": res.seconds,
        "voxels_per_second": res.voxels_per_second,
        "paths": {
            k: [str(p) for p in v] if isinstance(v, list) else str(v) for k, v in res.paths.items() if v
        },
    }


def fuse_evaluate(emit, *, sr, hr, hr_y=None, hr_z=None, lr=None, truth=None, out_dir, **options):
    """:func:`matsight.fuse.evaluate` on label files → HTML report (worker task)."""
    from ..fuse import evaluate
    from ..io import read_labels

    emit(progress=0.0, message="reading volumes")
    files = {"hr": hr, "hr_y": hr_y, "hr_z": hr_z, "lr": lr, "truth": truth}
    inputs = {k: read_labels(v) if v else None for k, v in files.items()}
    emit(progress=0.1, message="evaluating")
    res = evaluate(read_labels(sr), out_dir=out_dir, **inputs, **options)
    out = {"report": str(Path(out_dir) / "index.html")}
    out["volume_fraction"] = {name: w["volume_fraction"] for name, w in res["whole"].items()}
    if "lr_consistency" in res:
        out["lr_consistency"] = res["lr_consistency"]["consistency"]
    return out


def restore_register(emit, *, lq, hq, out_dir, scale=2.0, mask=True, deformable=False):
    """:func:`matsight.restore.register.prepare_pair` on two scans → a pair folder (worker task)."""
    from ..io import read_volume
    from ..restore.pair_io import save_pair
    from ..restore.register import prepare_pair

    emit(progress=0.0, message="reading scans")
    lq_a, hq_a = read_volume(lq), read_volume(hq)
    emit(progress=0.1, message="upscaling and registering")
    pair = prepare_pair(lq_a, hq_a, scale=scale, mask=mask, deformable=deformable)
    emit(progress=0.9, message="writing the pair folder")
    save_pair(pair, out_dir)
    t = pair.transform
    return {
        "pair": str(out_dir),
        "shape": list(pair.hq.shape),
        "rotation_deg": t["rotation_deg"],
        "shift": list(t["shift"]),
        "ncc_before": t["ncc_before"],
        "ncc_after": t["ncc_after"],
        "overlay": str(Path(out_dir) / "overlay.png"),
    }


RESTORE_RUN_OPTIONS = ("slices", "val_slices")  # overrides that are run options of train, not settings


def restore_train_config(preset="cpu", iterations=None, budget=None, overrides=None):
    """The page's ``restore.train`` settings as a :class:`~matsight.restore.config.RestoreConfig`.

    Built as the CLI builds them, by :func:`matsight.restore.config.make_config` (a time budget without an
    iteration count trains until the budget ends).
    """
    from ..restore.config import make_config

    settings = {k: v for k, v in (overrides or {}).items() if k not in RESTORE_RUN_OPTIONS}
    if iterations is not None:
        settings["training.steps"] = int(iterations)
    return make_config(preset, budget=budget if budget not in (None, "") else None, **settings)


def restore_train(
    emit,
    *,
    pair,
    out_dir,
    preset="cpu",
    iterations=None,
    budget=None,
    device="auto",
    resume=True,
    overrides=None,
):
    """:func:`matsight.restore.train` on a registered pair folder (worker task)."""
    from .. import restore

    config = restore_train_config(preset, iterations, budget, overrides)
    run_options = {k: v for k, v in (overrides or {}).items() if k in RESTORE_RUN_OPTIONS}
    watcher = _TrainWatcher(emit, config.training.steps, config.training.budget_s)
    lg = _watch_logger("matsight.restore.train", watcher)
    emit(message="training")
    try:
        with watcher:
            res = restore.train(
                pair,
                out_dir,
                config=config,
                device=device,
                resume=resume,
                callback=watcher.callback,
                **run_options,
            )
    finally:
        lg.removeHandler(watcher)
    if resume and getattr(res, "resumed_at", None) == res.steps:
        raise InputError(
            f"{Path(out_dir).name} already holds a finished run ({res.steps} steps); nothing to train. Raise "
            "the iterations or the budget to train on, or choose a new run folder"
        )
    # the page reads the curves from the run folder, not from the result
    return {
        "model_dir": str(res.model_dir),
        "steps": res.steps,
        "elapsed_s": res.elapsed_s,
        "validation": res.validation,
    }


def restore_apply(emit, *, model, volume, out, steps="auto", device="auto", slice_axis=0, **options):
    """:func:`matsight.restore.predict.predict_path` on a file or a folder of time steps (worker task)."""
    from ..restore.predict import predict_path

    emit(progress=0.0, message="enhancing")
    results = predict_path(
        model, volume, out, indi_steps=steps, device=device, slice_axis=slice_axis, **options
    )
    return {
        "out": str(out),
        "time_steps": [name for name, _ in results if name],
        "steps": results[0][1].steps,
        "consistency_rms": [float(r.info["consistency_rms"]) for _, r in results],
    }


def restore_evaluate(emit, *, out, hq, report_dir, lq=None, spacing=1.0, sift=True):
    """:func:`matsight.restore.evaluate.evaluate` of an ``apply`` output folder → report (worker task)."""
    from ..io import read_volume
    from ..restore.evaluate import evaluate

    emit(progress=0.0, message="reading the HQ reference")
    hq_a = read_volume(hq)
    emit(progress=0.1, message="PSNR, SSIM, SIFT, FWHM, CNR")
    metrics, page = evaluate(out, hq_a, lq=lq, report_dir=report_dir, spacing=spacing, sift=sift)
    return {"report": str(page), "metrics": metrics}

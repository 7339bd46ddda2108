"""Movies and folders: intensity of every phase in every frame (the paper's beam-damage analysis).

Each frame is analysed on its own (spots → matching; no maps), and a phase's intensity in that frame is the
sum over its matched spots of the excess FFT amplitude inside the spot regions ("masked FFT amplitude").
Phases that appear later (e.g. Li growing out of LiF under the beam) are picked up when their spots do. The
same sum is also kept per reflection family of each phase (``"LiF {200}"``, ``"Li {110}"``), as the paper
follows planes, e.g. LiF (002) against LiF (111).

:func:`matsight.tem.predict.analyze_series` (also :func:`matsight.tem.predict.predict` on a movie) runs the
frames; this module holds what a series is made of: :func:`run_frames` (frames serially, or through dask,
with a :mod:`matsight.progress` callback per finished frame), :func:`time_axis`, :func:`collect` into a
:class:`SeriesResult`, and the report (:func:`write_series`).

Frames run serially, or through dask (``scale`` extra): on local threads or processes
(``scheduler="threads" | "processes"``; the FFT and the spot detector are numpy/scipy work that mostly
releases the GIL), on a local ``dask.distributed`` cluster (``"distributed"``), or on the machines of an
existing cluster (``scheduler="tcp://host:8786"``) — frames are independent, so the speed-up is the number of
workers.
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np

from .._atomic import make_folder, write_json, write_text
from .._errors import InputError
from ..progress import report
from ..report import Report
from .config import LOCAL_SCHEDULERS
from .match import UNKNOWN
from .report import phase_colors, records_to_csv

log = logging.getLogger(__name__)

__all__ = [
    "TIME_SOURCES",
    "SeriesResult",
    "collect",
    "run_frames",
    "series_figure",
    "time_axis",
    "write_series",
]

TIME_SOURCES = {
    "frame_time": "the given seconds per frame (--frame-time)",
    "file": "the file's frame times",
    "index": "none (time = frame index)",
}
CONNECT_TIMEOUT_S = 10  # a scheduler address that does not answer fails after this, not dask's 30 s


@dataclass
class SeriesResult:
    """Per-frame results: ``intensity[phase][frame]``, per plane family, spot counts and the frames' times.

    Attributes
    ----------
    families : dict
        ``"LiF {200}"`` → ndarray of the intensity of that phase's reflection family per frame (0 where it is
        not seen), in phase order then by decreasing d; empty when not computed.
    time_source : str
        Where ``time_s`` comes from: ``"frame_time"`` (seconds per frame given), ``"file"`` (the file's frame
        times) or ``"index"`` (none: time = frame index).
    """

    phases: list  # names, database order, plus "unknown"
    frames: list  # labels (index or "file:index")
    time_s: np.ndarray
    intensity: dict  # phase -> ndarray
    n_spots: dict  # phase -> ndarray of int
    seconds: float = 0.0
    per_frame_seconds: list = field(default_factory=list)
    families: dict = field(default_factory=dict)
    time_source: str = "index"
    pixel_size_nm: tuple = ()  # (py, px) used, when known (analyze_series_file)
    calibration_source: str = (
        ""  # where it came from: "file: <tag path>", "--pixel-size", "calibration file …"
    )

    def to_records(self):
        """Wide table, one row per frame: intensity and spot count per phase, then intensity per family."""
        out = []
        for i, fr in enumerate(self.frames):
            rec = {"frame": fr, "time_s": float(self.time_s[i])}
            for p in self.phases:
                rec[f"{p}_intensity"] = float(self.intensity[p][i])
            for p in self.phases:
                rec[f"{p}_spots"] = int(self.n_spots[p][i])
            for f, v in self.families.items():
                rec[f"{f}_intensity"] = float(v[i])
            out.append(rec)
        return out

    def first_seen(self):
        """Frame label where each phase is first detected (None if never)."""
        out = {}
        for p in self.phases:
            idx = np.flatnonzero(self.n_spots[p] > 0)
            out[p] = self.frames[idx[0]] if idx.size else None
        return out


def _report_frame(callback, done, n, t0):
    report(callback, step=done, total=n, message=f"frame {done} of {n}", seconds=time.perf_counter() - t0)


def run_frames(fn, frames, args, *, scheduler=None, workers=None, callback=None):
    """``[fn(frames[i], *args) for i]``: serially here, or through dask; ``callback`` hears of every frame.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled for process and cluster workers).
    frames : sequence of 2D arrays
    args : tuple
        Further arguments of ``fn`` (the same for every frame).
    scheduler : {None, "sync", "threads", "processes", "distributed"} or str
        None runs serially here; see :func:`matsight.tem.predict.analyze_series`.
    workers : int, optional
    callback : :data:`matsight.progress.Callback`, optional
        Called with ``step`` = frames done, ``total`` = frames.
    """
    if scheduler is None:
        outs, t0, n = [], time.perf_counter(), len(frames)
        for i in range(n):
            outs.append(fn(np.asarray(frames[i]), *args))
            _report_frame(callback, i + 1, n, t0)
        return outs
    try:
        import dask
    except ImportError as exc:
        raise InputError("dask is not installed; pip install 'matsight[scale]' or drop --scheduler") from exc
    if scheduler in LOCAL_SCHEDULERS:
        return _run_local(dask, fn, frames, args, scheduler, workers, callback)
    return _run_cluster(fn, frames, args, scheduler, workers, callback)


def _run_local(dask, fn, frames, args, scheduler, workers, callback):
    """Frames through one of dask's local schedulers; the callback runs in this process as frames finish."""
    from dask.callbacks import Callback

    n, t0 = len(frames), time.perf_counter()
    tasks = [dask.delayed(fn)(np.asarray(frames[i]), *args) for i in range(n)]
    keys, done = {t.key for t in tasks}, [0]

    def posttask(key, result, dsk, state, worker_id):
        if key in keys:
            done[0] += 1
            _report_frame(callback, done[0], n, t0)

    kw = {"scheduler": scheduler}
    if workers:
        kw["num_workers"] = int(workers)
    with Callback(posttask=posttask):
        return list(dask.compute(*tasks, **kw))


def _connect(address):
    """A dask client on the scheduler at ``address``; an unreachable one is a user error, not a traceback."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        log.debug("dask connect to %s failed: %s", address, exc)
        raise InputError(f"cannot reach the dask scheduler {address}; check the address") from None


def _run_cluster(fn, frames, args, scheduler, workers, callback):
    """Frames through a local ``dask.distributed`` cluster or the scheduler at an address."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise InputError("dask.distributed is not installed; pip install 'matsight[scale]'") from exc
    cluster = None
    if "://" in scheduler:
        client = _connect(scheduler)
    else:
        # one thread per worker process: the numpy work of a frame is already vectorised
        cluster = LocalCluster(
            n_workers=int(workers or 2), threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    n, t0 = len(frames), time.perf_counter()
    try:
        futures = [client.submit(fn, np.asarray(frames[i]), *args, pure=False) for i in range(n)]
        index = {f.key: i for i, f in enumerate(futures)}
        outs = [None] * n
        for done, fut in enumerate(as_completed(futures), 1):
            outs[index[fut.key]] = fut.result()
            _report_frame(callback, done, n, t0)
        return outs
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def collect(outs, names, *, labels, time_s, source, seconds):
    """A :class:`SeriesResult` from per-frame ``(phase intensity, spot counts, seconds, family intensity)``.

    ``names`` are the phases searched plus ``unknown``; families seen in any frame come in phase order, then
    by decreasing d (the order of the phase's reflections).
    """
    n = len(outs)
    inten = {p: np.array([o[0].get(p, 0.0) for o in outs]) for p in names}
    counts = {p: np.array([o[1].get(p, 0) for o in outs], int) for p in names}
    d_of = {key: d for o in outs for key, (_, d) in o[3].items()}
    keys = sorted(d_of, key=lambda key: (names.index(key[0]), -d_of[key], key[1]))
    fams = {f"{ph} {fam}": np.array([o[3].get((ph, fam), (0.0, 0.0))[0] for o in outs]) for ph, fam in keys}
    return SeriesResult(
        phases=names,
        frames=list(labels) if labels is not None else list(range(n)),
        time_s=time_s,
        intensity=inten,
        n_spots=counts,
        seconds=seconds,
        per_frame_seconds=[o[2] for o in outs],
        families=fams,
        time_source=source,
    )


def time_axis(n, frame_time, times):
    """``(time_s, source)``: ``frame_time`` if given, else the file's ``times``, else the frame index."""
    if frame_time is not None:
        return np.arange(n) * float(frame_time), "frame_time"
    if times is not None:
        t = np.asarray(times, float).ravel()
        if t.size != n or not np.all(np.isfinite(t)):
            raise InputError(
                f"frame times must be {n} finite numbers of seconds, got {t.size} values; pass --frame-time"
            )
        return t, "file"
    return np.arange(n, dtype=float), "index"


def _y_scale(ax):
    """Symmetric log where the curves span more than two decades (a phase appearing from nothing), linear from
    the smallest value up otherwise (a log axis over a small range only prints odd tick labels).
    """
    ys = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()] or [np.zeros(1)])
    pos = ys[ys > 0]
    if pos.size and pos.max() > 100 * pos.min():
        ax.set_yscale("symlog", linthresh=float(pos.min()))


def series_figure(result, *, x="frame", max_families=10):
    """Intensity per phase vs frame (or time); below, per plane family (the ``max_families`` strongest)."""
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..report.style import legend_outside

    colors = phase_colors([p for p in result.phases if p != UNKNOWN])
    fams = {f: v for f, v in result.families.items() if np.any(v > 0)}
    if len(fams) > max_families:
        top = sorted(fams, key=lambda f: -float(np.max(fams[f])))[:max_families]
        fams = {f: fams[f] for f in fams if f in top}  # keep phase / d order
    nrow = 2 if fams else 1
    fig, axes = plt.subplots(nrow, 1, figsize=(8, 4.5 * nrow), sharex=True, squeeze=False)
    xs = result.time_s if x == "time" else np.arange(len(result.frames))
    ax = axes[0, 0]
    for p in result.phases:
        if np.any(result.intensity[p] > 0):
            ax.plot(xs, result.intensity[p], "-o", ms=3, color=colors.get(p), label=p)
    ax.set_ylabel("intensity (sum of masked FFT amplitude, a.u.)")
    if fams:
        ax.set_title("per phase", fontsize=9)
        ax2 = axes[1, 0]
        styles = ["-o", "--s", ":^", "-.v", "-D"]
        seen = {}
        for f, v in fams.items():
            ph = f.split(" ", 1)[0]
            k = seen[ph] = seen.get(ph, -1) + 1  # one colour per phase, one line style per family
            ax2.plot(xs, v, styles[k % len(styles)], ms=3, color=colors.get(ph), label=f)
        ax2.set_title("per plane family", fontsize=9)
        ax2.set_ylabel("intensity (a.u.)")
    for a in axes[:, 0]:
        _y_scale(a)
        legend_outside(a)  # none when no phase is in any frame
        a.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)" if x == "time" else "frame")
    if x != "time":
        from matplotlib.ticker import MaxNLocator

        axes[-1, 0].xaxis.set_major_locator(MaxNLocator(integer=True))  # frames are whole numbers
    fig.tight_layout()
    return fig


def _calibration(result):
    ps = tuple(getattr(result, "pixel_size_nm", ()) or ())
    if len(ps) != 2:
        return None
    return {"pixel_size_nm": {"y": float(ps[0]), "x": float(ps[1])}, "source": result.calibration_source}


def _calibration_rows(result):
    cal = _calibration(result)
    if cal is None:
        return {}
    ps = cal["pixel_size_nm"]
    return {"pixel size (nm)": f"{ps['y']:.5g}, {ps['x']:.5g}", "pixel size source": cal["source"]}


def write_series(result, out_dir, *, source=None, x="frame"):
    """``series.csv``, ``series.json``, ``intensity.png`` and ``index.html`` into ``out_dir``."""
    out = Path(out_dir)
    out = make_folder(out)
    recs = result.to_records()
    write_text(out / "series.csv", records_to_csv(recs))
    write_json(
        out / "series.json",
        {
            "source": str(source) if source else None,
            "phases": result.phases,
            "families": list(result.families),
            "time_source": result.time_source,
            "calibration": _calibration(result),
            "first_seen": result.first_seen(),
            "seconds": result.seconds,
            "frames": recs,
        },
    )
    rep = Report(out, "HRTEM series: intensity per phase per frame")
    if source:
        rep.text(f"Input: {source}")
    rep.table(
        {
            "frames": len(result.frames),
            "time axis": TIME_SOURCES.get(result.time_source, result.time_source),
            **_calibration_rows(result),
            "seconds (total)": round(result.seconds, 2),
            "seconds per frame": round(float(np.mean(result.per_frame_seconds)), 3)
            if result.per_frame_seconds
            else 0,
            **{f"first seen: {p}": str(v) for p, v in result.first_seen().items() if v is not None},
        }
    )
    rep.figure(
        series_figure(result, x=x),
        "intensity",
        caption=f"Sum of masked FFT amplitude per phase (and per plane family) in each of the "
        f"{len(result.frames)} frames.",
    )
    return rep.write()

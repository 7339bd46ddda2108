"""Movies and folders: intensity of every phase in every frame (the paper's beam-damage analysis).

Each frame is analysed on its own (spots → matching; no maps), and a phase's intensity in that frame is the
sum over its matched spots of the excess FFT amplitude inside the spot regions ("masked FFT amplitude").
Phases that appear later (e.g. Li growing out of LiF under the beam) are picked up when their spots do. The
same sum is also kept per reflection family of each phase (``"LiF {200}"``, ``"Li {110}"``), as the paper
follows planes, e.g. LiF (002) against LiF (111).

Frames run serially with a progress bar, or through dask (``scale`` extra): on local threads or processes
(``scheduler="threads" | "processes"``; the FFT and the spot detector are numpy/scipy work that mostly
releases the GIL), on a local ``dask.distributed`` cluster (``"distributed"``), or on the machines of an
existing cluster (``scheduler="tcp://host:8786"``) — frames are independent, so the speed-up is the number of
workers.
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError
from .crystals import load_phases
from .match import UNKNOWN
from .pipeline import check_suffix, frame_suffixes

log = logging.getLogger(__name__)

__all__ = [
    "SeriesResult",
    "analyze_series",
    "check_series_settings",
    "read_series",
    "write_series",
    "SUFFIXES",
]

TIME_SOURCES = {
    "frame_time": "the given seconds per frame (--frame-time)",
    "file": "the file's frame times",
    "index": "none (time = frame index)",
}
SUFFIXES = frame_suffixes()  # the same files `tem analyze` reads (single-frame PNG/JPEG included)
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


def _one_frame(frame, pixel_size_nm, phases, kw):
    from .pipeline import analyze

    t = time.perf_counter()
    res = analyze(frame, pixel_size_nm, phases, maps=False, **kw)
    counts = {}
    for m in res.match.matches:
        counts[m.phase] = counts.get(m.phase, 0) + 1
    return res.phase_intensity(), counts, time.perf_counter() - t, res.family_intensity()


_LOCAL = ("sync", "threads", "processes")


def check_series_settings(*, frame_time=None, scheduler=None, workers=None):
    """Refuse bad series settings before any work (one :class:`InputError` naming the option)."""
    if frame_time is not None and not 0 < frame_time < np.inf:  # also refuses NaN
        raise InputError(f"--frame-time must be a positive number of seconds per frame, got {frame_time}")
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise InputError(f"--workers must be a whole number ≥ 1, got {workers}")
    remote = isinstance(scheduler, str) and "://" in scheduler
    if scheduler is not None and scheduler not in (*_LOCAL, "distributed") and not remote:
        raise InputError(
            f"unknown scheduler {scheduler!r}; "
            "use sync, threads, processes, distributed or a tcp://host:port address"
        )


def _connect(address):
    """A dask client on the scheduler at ``address``; an unreachable one is a user error, not a traceback."""
    from distributed import Client

    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        log.debug("dask connect to %s failed: %s", address, exc)
        raise InputError(f"cannot reach the dask scheduler {address}; check the address") from None


def _run_dask(frames, pixel_size_nm, plist, analyze_kw, scheduler, workers, progress):
    """Frames through dask: local schedulers, a local distributed cluster, or a remote scheduler address."""
    local = _LOCAL
    remote = isinstance(scheduler, str) and "://" in scheduler
    check_series_settings(scheduler=scheduler, workers=workers)
    try:
        import dask
    except ImportError as exc:
        raise InputError("dask is not installed; pip install 'matsight[scale]' or drop --scheduler") from exc
    n = len(frames)
    if scheduler in local:
        tasks = [
            dask.delayed(_one_frame)(np.asarray(frames[i]), pixel_size_nm, plist, analyze_kw)
            for i in range(n)
        ]
        kw = {"scheduler": scheduler}
        if workers:
            kw["num_workers"] = int(workers)
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                return list(dask.compute(*tasks, **kw))
        return list(dask.compute(*tasks, **kw))
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise InputError("dask.distributed is not installed; pip install 'matsight[scale]'") from exc
    cluster = None
    if remote:
        client = _connect(scheduler)
    else:
        # one thread per worker process: the numpy work of a frame is already vectorised
        cluster = LocalCluster(
            n_workers=int(workers or 2), threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        futures = [
            client.submit(_one_frame, np.asarray(frames[i]), pixel_size_nm, plist, analyze_kw, pure=False)
            for i in range(n)
        ]
        index = {f.key: i for i, f in enumerate(futures)}
        outs = [None] * n
        done = as_completed(futures)
        if progress:
            from rich.progress import track

            done = track(done, description="frames", total=n)
        for fut in done:
            outs[index[fut.key]] = fut.result()
        return outs
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


_CHECKED = ("tolerance", "angle_tolerance", "d_min", "d_max", "min_intensity", "detector", "weights")


def analyze_series(
    frames,
    pixel_size_nm,
    phases=None,
    *,
    frame_time=None,
    times=None,
    labels=None,
    scheduler=None,
    workers=None,
    progress=False,
    **analyze_kw,
):
    """Intensity per phase per frame.

    Parameters
    ----------
    frames : ndarray (n, y, x) or sequence of 2D arrays
    pixel_size_nm : float or (float, float)
    phases : list, optional
        Phase names / files / :class:`~matsight.tem.crystals.Phase`; default: the shipped ones.
    frame_time : float, optional
        Seconds per frame (for the time axis); it wins over ``times``.
    times : array_like, optional
        Time of every frame in seconds (e.g. the file's, from :func:`read_series`), used when ``frame_time``
        is not given. Without either, time = frame index.
    labels : list of str, optional
        Frame labels (default: index).
    scheduler : {None, "sync", "threads", "processes", "distributed"} or str
        None runs serially here; ``sync/threads/processes`` use dask's local schedulers; ``"distributed"``
        starts a local ``dask.distributed`` cluster of ``workers`` processes; a scheduler address
        (``"tcp://host:8786"``) sends the frames to an existing cluster, i.e. other machines (``scale``
        extra).
    workers : int, optional
        Number of dask workers (local schedulers and the local cluster).
    progress : bool
        Show a progress bar.
    **analyze_kw
        Passed to :func:`matsight.tem.pipeline.analyze` (tolerance, detector, threshold, ...).

    Returns
    -------
    SeriesResult
    """
    check_series_settings(frame_time=frame_time, scheduler=scheduler, workers=workers)
    from .pipeline import check_settings

    # refuse bad analysis settings once, before the first frame (not once per frame on a worker)
    check_settings(**{k: v for k, v in analyze_kw.items() if k in _CHECKED})
    plist = load_phases(phases)  # validate once; Phase objects pickle for process workers
    n = len(frames)
    if n == 0:
        raise InputError("no frames to analyse; check the file or folder")
    time_s, source = _time_axis(n, frame_time, times)  # refuse bad frame times before the first frame
    t0 = time.perf_counter()
    if scheduler is None:
        outs = []
        it = range(n)
        if progress:
            from rich.progress import track

            it = track(it, description="frames", total=n)
        for i in it:
            outs.append(_one_frame(np.asarray(frames[i]), pixel_size_nm, plist, analyze_kw))
    else:
        outs = _run_dask(frames, pixel_size_nm, plist, analyze_kw, scheduler, workers, progress)
    names = [p.name for p in plist] + [UNKNOWN]
    inten = {p: np.array([o[0].get(p, 0.0) for o in outs]) for p in names}
    counts = {p: np.array([o[1].get(p, 0) for o in outs], int) for p in names}
    # families seen in any frame: phase order, then decreasing d (the order of the phase's reflections)
    d_of = {key: d for o in outs for key, (_, d) in o[3].items()}
    keys = sorted(d_of, key=lambda key: (names.index(key[0]), -d_of[key], key[1]))
    fams = {f"{ph} {fam}": np.array([o[3].get((ph, fam), (0.0, 0.0))[0] for o in outs]) for ph, fam in keys}
    return SeriesResult(
        phases=names,
        frames=list(labels) if labels is not None else list(range(n)),
        time_s=time_s,
        intensity=inten,
        n_spots=counts,
        seconds=time.perf_counter() - t0,
        per_frame_seconds=[o[2] for o in outs],
        families=fams,
        time_source=source,
    )


def _time_axis(n, frame_time, times):
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


def read_series(path, *, pixel_size=None, return_times=False):
    """Frames, pixel size (nm) and frame labels from a movie/stack file or a folder of images.

    A folder is read in sorted name order; every file must share one pixel size. With ``return_times``, a
    fourth value is the frames' times in seconds when the file says (a single stack or movie file with a time
    axis, as :func:`matsight.io.read_microscope` reads it), else None.
    """
    from .. import io as _io

    path = Path(path)
    check_suffix(path)
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
        )
        # an .emi header and its .ser data are one dataset: keep the .emi when both are there
        emis = {p.stem for p in files if p.suffix.lower() == ".emi"}
        files = [p for p in files if not (p.suffix.lower() == ".ser" and p.stem.rsplit("_", 1)[0] in emis)]
        if not files:
            raise InputError(f"no microscope images in {path} (looked for {', '.join(SUFFIXES)})")
    elif path.exists():
        files = [path]
    else:
        raise FileNotFoundError(2, "No such file or directory", str(path))
    frames, labels, ps0, times = [], [], None, None
    for f in files:
        mi = _io.read_microscope(f, pixel_size=pixel_size)
        data = np.asarray(mi.data)
        if data.ndim == 1:
            raise InputError(f"{f} holds a 1D signal, not an image; remove it from the series")
        ps = tuple(float(p) for p in tuple(mi.pixel_size_nm)[-2:])
        if ps0 is None:
            ps0 = ps
        elif not np.allclose(ps, ps0, rtol=1e-3):
            raise InputError(
                f"{f} has pixel size {ps} nm but earlier frames {ps0} nm; analyse them separately"
            )
        stack = data if data.ndim == 3 else data[None]
        # frame times: only one file's own time axis is a time axis of the whole series
        ft = getattr(mi, "frame_times", None)
        if len(files) == 1 and ft is not None and np.size(ft) == len(stack):
            times = np.asarray(ft, float).ravel()
        for i, fr in enumerate(stack):
            frames.append(fr)
            labels.append(f"{f.name}:{i}" if len(files) > 1 else i)
    if return_times:
        return frames, ps0, labels, times
    return frames, ps0, labels


def series_figure(result, *, x="frame", max_families=10):
    """Intensity per phase vs frame (or time); below, per plane family (the ``max_families`` strongest)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .report import phase_colors

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
    ax.set_ylabel("intensity (sum of masked FFT amplitude)")
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
        ax2.set_ylabel("intensity")
    for a in axes[:, 0]:
        a.set_yscale("symlog")
        if a.get_legend_handles_labels()[0]:  # no phase in any frame: no legend (and no matplotlib warning)
            a.legend(fontsize=8)
        a.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("time (s)" if x == "time" else "frame")
    fig.tight_layout()
    return fig


def write_series(result, out_dir, *, source=None, x="frame"):
    """``series.csv``, ``series.json``, ``intensity.png`` and ``index.html`` into ``out_dir``."""
    from .._atomic import make_folder, write_json, write_text
    from ..report import Report
    from .report import records_to_csv

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
        caption="Sum of masked FFT amplitude per phase (and per plane family) per frame.",
    )
    return rep.write()

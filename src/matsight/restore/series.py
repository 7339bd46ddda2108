"""Enhance a 4D series (or one large volume) slab by slab, on dask, resumably.

Every time step goes through the three passes of :mod:`matsight.restore.slabs` (InDI on LQ z-slabs, cubic
interpolation along z, data consistency); memory per worker is set by ``memory_mib`` (the slab size), not by
the volume. Slabs and time steps are dask tasks: on local threads or processes
(``scheduler="threads" | "processes"``), a local ``dask.distributed`` cluster (``"distributed"``) or an
existing cluster (``"tcp://host:8786"``); each worker loads the model once, on its GPU when it has one
(``device="auto"``). Without a scheduler the same tasks run here, one after the other.

Finished time steps are recorded when all their files are written (``steps/<name>.json`` in a zarr output,
the step's folder, written atomically, in a folder output); a rerun with the same model, input and output
skips them and redoes a step that was cut short. The result equals :func:`~matsight.restore.predict.predict`
on the whole volume (``z_mode="cubic"``) to float precision.
"""

import copy
import logging
import math
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, read_json, write_json
from .._errors import InputError
from ..progress import report
from .predict import _denorm, _norm, baseline_description, is_onestep, setup_job
from .register import apply_grey_map
from .series_io import open_source, read_rows, write_tif_stream
from .series_store import create_store, prepare_scratch, step_arrays
from .slabs import enhance_slab, grey_line, line_sums, plan_slabs, residual_slab, zoom_slab

log = logging.getLogger(__name__)

__all__ = ["SCHEDULERS", "SeriesResult", "enhance_series", "slab_size"]

SCHEDULERS = ("threads", "processes", "distributed")
CONNECT_TIMEOUT_S = 10
KINDS = ("enh", "bic", "one")  # the enhanced result, the bicubic baseline, the N = 1 comparison
_JOBS = {}
_LOCK = threading.Lock()


@dataclass
class SeriesResult:
    """What :func:`enhance_series` did: ``steps`` = ``[(name, info)]`` of every time step (``info`` as
    ``enhance.json``; ``info["skipped"]`` for steps finished by an earlier run), the wall time and workers.
    """

    out: Path
    steps: list
    seconds: float
    workers: int | None
    scheduler: str | None
    slab: int = 0
    voxels: int = 0  # LQ voxels enhanced in this run
    skipped: list = field(default_factory=list)


@dataclass
class _Plan:
    """Everything a worker needs for any task (pickled to process and cluster workers)."""

    model: object
    source: object
    out: str
    zarr: bool
    n_indi: int
    wanted: list
    upscaled: bool
    scale: object
    s: tuple
    tiling: tuple
    ensemble: bool
    device: str
    threads: int | None
    slab: int
    chunk: int
    consistency: bool
    spacing_hq: tuple | None
    info: dict

    def n_out(self, t):
        return max(1, int(round(self.source.shapes[t][0] * self.s[0])))

    def lq_slabs(self, t):
        return plan_slabs(self.source.shapes[t][0], self.slab)

    def hq_slabs(self, t):
        return plan_slabs(self.n_out(t), self.chunk)


def slab_size(shape, s, memory_mib):
    """LQ slices per slab so that a pass-1 slab's arrays stay near ``memory_mib`` MiB.

    About four float32 copies of the slab on the HQ grid in xy are alive at once (bicubic input, the ``N``
    and ``N = 1`` results, the network's batch), plus the model.
    """
    hq_xy = round(shape[1] * s[1]) * round(shape[2] * s[2])
    return max(1, int(memory_mib * 2**20 // (16 * hq_xy)))


# --------------------------------------------------------------------------------------------- worker tasks
def _worker_job(plan):
    """The model and grid of this run, loaded once per worker process (on its GPU with device="auto")."""
    key = (id(plan.model) if not isinstance(plan.model, str) else plan.model, plan.device, plan.n_indi)
    with _LOCK:
        job = _JOBS.get(key)
        if job is None:
            if plan.threads:
                import torch

                torch.set_num_threads(plan.threads)
            job = setup_job(
                plan.model,
                3,
                plan.n_indi,
                0,
                plan.scale,
                plan.upscaled,
                plan.tiling,
                plan.ensemble,
                plan.device,
            )
            _JOBS[key] = job
    job = copy.copy(job)  # per task: its own timings
    job.seconds, job.callback = {}, None
    return job


def _rows(arr, prefix):
    return lambda lo, hi: np.asarray(arr[prefix + (slice(lo, hi),)])


def _task_enhance(plan, t, k):
    """Pass 1 on LQ slab ``k`` of time step ``t``; writes the normalised slabs into the step's scratch."""
    job = _worker_job(plan)
    z0, z1 = plan.lq_slabs(t)[k]
    src, name = plan.source, plan.source.names[t]
    where = f"time step {name}" if src.series else src.names[0]
    y, res = enhance_slab(
        job,
        lambda lo, hi: read_rows(src, t, lo, hi),
        z0,
        z1,
        src.shapes[t][0],
        plan.wanted,
        upscaled=plan.upscaled,
        where=where,
    )
    arrays = step_arrays(plan, t)
    arrays["y"][z0:z1] = y
    for n, r in res.items():
        arrays[f"r{n}"][z0:z1] = r
    return dict(job.seconds)


def _task_zoom(plan, t, k, _after=None):
    """Pass 2 on HQ slab ``k``: z interpolation, outputs in HQ units, degraded slabs and line sums."""
    job = _worker_job(plan)
    j0, j1 = plan.hq_slabs(t)[k]
    n_in, n_out = plan.source.shapes[t][0], plan.n_out(t)
    arrays = step_arrays(plan, t)
    names = {"enh": f"r{plan.n_indi}", "bic": "y"} | ({"one": "r1"} if len(plan.wanted) > 1 else {})
    grey = job.meta.get("grey_map")
    ds = np.ones(3) if plan.upscaled else np.asarray(plan.s)
    lq_n = None
    if plan.consistency:
        f = int(round(ds[0]))
        lq_n = _norm(read_rows(plan.source, t, j0 // f, j1 // f), job.lq_stats)
    sums = {}
    for kind, scratch in names.items():
        z = zoom_slab(lambda lo, hi, a=arrays[scratch]: np.asarray(a[lo:hi]), j0, j1, n_in, n_out)
        target = {"enh": "enhanced", "bic": "bicubic", "one": "onestep"}[kind]
        v = apply_grey_map(z, grey) if kind == "bic" else z
        arrays[target][j0:j1] = _denorm(v, job.hq_stats)
        if lq_n is not None:
            sums[kind], d = line_sums(z, lq_n, ds)
            arrays[f"d_{kind}"][j0 // f : j0 // f + len(d)] = d
    return sums


def _task_finish(plan, t, sums, seconds):
    """Pass 3 and the step's record: consistency map and RMS, tifs (folder output), the done-marker."""
    job = _worker_job(plan)
    arrays, name = step_arrays(plan, t), plan.source.names[t]
    info = dict(plan.info)
    secs = {n: sum(s.get(n, 0.0) for s in seconds) for n in plan.wanted}
    info.update(seconds=secs[plan.n_indi], seconds_onestep=secs.get(1) if len(plan.wanted) > 1 else None)
    one_file = (
        plan.source.index[t] is None and not plan.source.arrays
    )  # a folder's volume (evaluate --lq reads it back) or one volume
    info["input"] = plan.source.files[t] if one_file else f"{plan.source.path} (time step {name})"
    if plan.consistency:
        info.update(_consistency(plan, t, job, arrays, sums))
    _store_step(plan, t, arrays, info)
    return name, info


def _consistency(plan, t, job, arrays, sums):
    d = arrays["d_enh"]
    n, shape = d.shape[0], d.shape[1:]
    crop = (slice(0, shape[0]), slice(0, shape[1]))

    def read_lq(lo, hi):
        return _norm(read_rows(plan.source, t, lo, hi), job.lq_stats)[(slice(None), *crop)]

    rms = {}
    for kind in KINDS:
        if f"d_{kind}" not in arrays:
            continue
        line = grey_line([s[kind] for s in sums])
        total = 0.0
        for z0, z1 in plan.lq_slabs(t):
            res, ss = residual_slab(read_lq, _rows(arrays[f"d_{kind}"], ()), z0, z1, n, line)
            total += ss
            if kind == "enh":
                arrays["consistency"][z0:z1] = res
        rms[kind] = math.sqrt(total / (n * shape[0] * shape[1]))
    out = {"consistency_rms": rms["enh"], "consistency_rms_bicubic": rms["bic"]}
    if "one" in rms:
        out["consistency_rms_onestep"] = rms["one"]
    return out


def _store_step(plan, t, arrays, info):
    """Make time step ``t`` final: tifs in its folder (folder output) or its marker (zarr), then clean up."""
    name, out = plan.source.names[t], Path(plan.out)
    if plan.zarr:
        write_json(out / "steps" / f"{name}.json", info)
    else:
        folder = out / name if plan.source.series else out
        with atomic_path(folder, directory=True, keep_other=not plan.source.series) as tmp:
            for key in ("enhanced", "bicubic", "onestep", "consistency"):
                if key in arrays:
                    lq = key == "consistency"
                    sp = plan.info.get("spacing_lq_nm") if lq else plan.spacing_hq
                    write_tif_stream(tmp / f"{key}.tif", arrays[key], sp)
            write_json(tmp / "enhance.json", info)
    scratch = out / ".scratch.zarr" / name
    shutil.rmtree(scratch, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ scheduling
def _serial(plan, todo, advance):
    out = []
    for t in todo:
        secs = []
        for k in range(len(plan.lq_slabs(t))):
            secs.append(_task_enhance(plan, t, k))
            advance()
        sums = [_task_zoom(plan, t, k) for k in range(len(plan.hq_slabs(t)))]
        out.append(_task_finish(plan, t, sums, secs))
    return out


def _graph(plan, todo):
    """dask.delayed tasks: ``(pass-1 tasks, the finishing task of every step)``."""
    import dask

    first, finish = [], []
    for t in todo:
        secs = [dask.delayed(_task_enhance, pure=False)(plan, t, k) for k in range(len(plan.lq_slabs(t)))]
        sums = [dask.delayed(_task_zoom, pure=False)(plan, t, k, secs) for k in range(len(plan.hq_slabs(t)))]
        first += secs
        finish.append(dask.delayed(_task_finish, pure=False)(plan, t, sums, secs))
    return first, finish


def _local(plan, todo, advance, scheduler, workers):
    import dask
    from dask.callbacks import Callback

    first, finish = _graph(plan, todo)
    keys = {d.key for d in first}

    def posttask(key, result, dsk, state, worker_id):
        if key in keys:
            advance()

    kw = {"scheduler": scheduler} | ({"num_workers": int(workers)} if workers else {})
    if (
        scheduler == "processes"
    ):  # dask batches 6 tasks per process by default: a few big slabs would share one
        kw["chunksize"] = 1
    with Callback(posttask=posttask):
        return list(dask.compute(*finish, **kw))


def _connect(address):
    """A client of the scheduler at ``address``; one that does not answer is a one-line error."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise InputError("dask.distributed is not installed; pip install 'matsight[scale]'") from exc

    try:
        return Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError, ValueError) as exc:
        log.debug("dask connect to %s failed: %s", address, exc)
        raise InputError(
            f"cannot reach the dask scheduler {address}; check the address (tcp://host:port) and that "
            "`dask scheduler` runs there, or use --scheduler processes"
        ) from None


def _cluster(plan, todo, advance, scheduler, workers, client=None):
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if client is None:  # one thread per worker process: torch inside is given the cores instead
        cluster = LocalCluster(
            n_workers=int(workers or 2), threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
    try:
        first, finish = [], []
        for t in todo:
            secs = [
                client.submit(_task_enhance, plan, t, k, pure=False) for k in range(len(plan.lq_slabs(t)))
            ]
            hq = range(len(plan.hq_slabs(t)))
            sums = [client.submit(_task_zoom, plan, t, k, secs, pure=False) for k in hq]
            first += secs
            finish.append(client.submit(_task_finish, plan, t, sums, secs, pure=False))
        done = set()
        for fut in as_completed(first + finish):
            fut.result()  # a task's error (a bad slab) surfaces here, as itself
            if fut.key not in done and fut in first:
                advance()
            done.add(fut.key)
        return [f.result() for f in finish]
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _n_workers(scheduler, workers):
    if scheduler is None:
        return 1
    if workers:
        return int(workers)
    if scheduler == "distributed":
        return 2
    return None if "://" in scheduler else (os.cpu_count() or 1)


def _run(plan, todo, scheduler, workers, callback, client=None):
    total = sum(len(plan.lq_slabs(t)) for t in todo)
    done, t0 = [0], time.perf_counter()

    def advance():
        done[0] += 1
        msg = f"slab {done[0]} of {total} ({len(todo)} time steps)"
        report(callback, step=done[0], total=total, message=msg, seconds=time.perf_counter() - t0)

    if scheduler is None:
        return _serial(plan, todo, advance)
    try:
        import dask  # noqa: F401
    except ImportError as exc:
        raise InputError("dask is not installed; pip install 'matsight[scale]' or drop --scheduler") from exc
    if scheduler in ("sync", "threads", "processes"):
        return _local(plan, todo, advance, scheduler, workers)
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise InputError("dask.distributed is not installed; pip install 'matsight[scale]'") from exc
    return _cluster(plan, todo, advance, scheduler, workers, client)


# -------------------------------------------------------------------------------------------------- the run
def _check_scheduler(scheduler, workers):
    if scheduler is not None and scheduler not in ("sync", *SCHEDULERS) and "://" not in str(scheduler):
        raise InputError(
            f"unknown scheduler {scheduler!r}; "
            "use threads, processes, distributed or a tcp://host:port address"
        )
    if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
        raise InputError(f"workers must be a whole number ≥ 1, got {workers!r}")


def _check_slabs(memory_mib, slab):
    if not (isinstance(memory_mib, int | float) and 0 < memory_mib < math.inf):
        raise InputError(f"--memory must be a positive number of MiB, got {memory_mib!r}; e.g. --memory 512")
    if slab is not None and (isinstance(slab, bool) or int(slab) != slab or slab < 1):
        raise InputError(f"--slab must be a whole number of slices ≥ 1, got {slab!r}")


def _record(model, src, n_indi, wanted, s, upscaled):
    """What makes two runs the same run: a rerun with another record is refused, not mixed in."""
    return {
        "format": "matsight-restore-series",
        "model": str(Path(model).resolve()) if isinstance(model, str | Path) else "<in memory>",
        "input": str(Path(src.path).resolve()) if src.path != "<array>" else "<array>",
        "names": list(src.names),
        "shapes": [list(map(int, sh)) for sh in src.shapes],
        "indi_steps": int(n_indi),
        "onestep": len(wanted) > 1,
        "scale": [float(v) for v in s],
        "upscaled": bool(upscaled),
        "z_mode": "cubic",
    }


def _resume(out, zarr, record):
    """The names of finished steps of an earlier run of ``record`` in ``out`` (empty for a new output)."""
    rec_path = out / "zarr.json" if zarr else out / "series.json"
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return None
    if not rec_path.is_file():
        raise InputError(
            f"{out} exists and is not an output of `restore apply` on a series; "
            "choose a new --out or delete it"
        )
    fix = "choose a new --out, or delete it to start again"
    old = read_json(rec_path, what="series record", fix=fix)
    old = old.get("attributes", {}).get("matsight", {}) if zarr else old
    diff = [k for k in record if old.get(k) != record[k]]
    if diff:
        raise InputError(f"{out} holds a run with another {', '.join(diff)}; {fix}")
    if zarr:
        return {p.stem for p in (out / "steps").glob("*.json")}
    if len(record["names"]) == 1 and not record.get("series", True):
        return {record["names"][0]} if (out / "enhance.json").is_file() else set()
    return {n for n in record["names"] if (out / n / "enhance.json").is_file()}


def _info(job, n_indi, s, src, spacing_hq, ensemble):
    grey_map = job.meta.get("grey_map")
    sp = src.spacing
    return {
        "steps": n_indi,
        "scale": [float(v) for v in s],
        "z_mode": "cubic",
        "objective": "onestep" if is_onestep(job.meta) else "indi",
        "ensemble": bool(ensemble),
        "stats": {"lq": job.lq_stats, "hq": job.hq_stats},
        "fov_radius": (job.meta.get("transform") or {}).get("fov_radius"),
        "baseline": baseline_description(grey_map),
        "classical": job.meta.get("classical"),
        "grey_map": grey_map,
        "spacing_nm": list(spacing_hq) if spacing_hq else None,
        "spacing_lq_nm": list(sp) if sp else None,
    }


def enhance_series(
    model,
    source,
    out,
    *,
    indi_steps=None,
    onestep=True,
    upscaled=False,
    scale=None,
    ensemble=False,
    tile=None,
    overlap=None,
    batch=4,
    device="auto",
    scheduler=None,
    workers=None,
    memory_mib=512,
    slab=None,
    callback=None,
):
    """Enhance every time step of a series (or one volume) slab by slab and write the results.

    Parameters
    ----------
    model : path or (net, meta)
        Model folder of :func:`~matsight.restore.train.train` (a path for process and cluster workers).
    source : path or ndarray
        A folder of volumes, a 3D or 4D (T, Z, Y, X) tif/npy/zarr, or a 3D/4D array
        (:func:`~matsight.restore.series_io.open_source`).
    out : path
        ``*.zarr``: an OME-Zarr store; otherwise a folder (one sub-folder per time step of a series, the
        files of :func:`~matsight.restore.predict.save_enhancement` for one volume). An output of an earlier
        run of the same model and input is resumed: finished time steps are skipped.
    indi_steps, onestep, upscaled, scale, ensemble, tile, overlap, batch, device
        As :func:`~matsight.restore.predict.predict` (``z_mode="cubic"``, xy slices).
    scheduler : {None, "threads", "processes", "distributed"} or str
        None runs here, slab after slab; others as ``tem series``: dask's local threads or processes, a
        local ``dask.distributed`` cluster, or the address of a running one (``"tcp://host:8786"``).
    workers : int, optional
        dask workers (local schedulers; default: the cores, 2 for ``"distributed"``).
    memory_mib : float
        Target size of a slab's arrays (:func:`slab_size`); peak memory per worker is about 3× this plus
        the model.
    slab : int, optional
        LQ slices per slab (overrides ``memory_mib``).
    callback : callable, optional
        A :mod:`matsight.progress` callback, called as every slab of every step finishes.

    Returns
    -------
    SeriesResult
    """
    t_start = time.perf_counter()
    _check_scheduler(scheduler, workers)
    _check_slabs(memory_mib, slab)
    src = open_source(source)
    opts = dict(indi_steps=indi_steps, onestep=onestep, upscaled=upscaled, scale=scale, ensemble=ensemble)
    opts.update(tiling=(tile, overlap, batch), device=device, memory_mib=memory_mib, slab=slab)
    plan, record = _make_plan(model, src, Path(out), _n_workers(scheduler, workers), **opts)
    # a scheduler address that does not answer is refused before anything is written
    client = _connect(scheduler) if scheduler and "://" in scheduler else None
    try:
        return _start(plan, record, scheduler, workers, callback, t_start, client)
    finally:
        if client is not None:
            client.close()


def _make_plan(model, src, out, n_workers, *, indi_steps, onestep, upscaled, scale, ensemble, tiling, device,
               memory_mib, slab):  # fmt: skip
    """The :class:`_Plan` of a run and its record (the model is loaded here once to fix N and the grid)."""
    zarr = out.suffix.lower() == ".zarr"
    job = setup_job(model, 3, indi_steps, 0, scale, upscaled, tiling, ensemble, device)
    n_indi = job.n_steps
    wanted = [n_indi] + ([1] if onestep and n_indi != 1 else [])
    s = tuple(float(v) for v in job.s)
    if zarr and len(set(src.shapes)) > 1:
        raise InputError(
            f"the time steps differ in shape ({', '.join(sorted({str(x) for x in src.shapes}))}); one zarr "
            "array holds one shape: give a folder --out, or crop the volumes alike"
        )
    whole = all(math.isclose(v, round(v)) and round(v) >= 1 for v in s)
    if not whole:
        log.warning("scale %s is not whole: no consistency map in the slab-wise path", s)
    slab = int(slab) if slab else slab_size(src.shapes[0], s, memory_mib)
    f0 = int(round(s[0])) if whole else 1
    chunk = max(f0, (int(round(slab * s[0])) // f0) * f0)  # whole LQ slices per output slab
    spacing_hq = tuple(v / k for v, k in zip(src.spacing, s, strict=True)) if src.spacing else None
    threads = None
    if n_workers and n_workers > 1 and not os.environ.get("MATSIGHT_THREADS"):
        threads = max(1, (os.cpu_count() or 1) // n_workers)  # the workers share the cores
    plan = _Plan(
        model=str(model) if isinstance(model, str | Path) else model,
        source=src,
        out=str(out.resolve()),
        zarr=zarr,
        n_indi=n_indi,
        wanted=wanted,
        upscaled=upscaled,
        scale=scale,
        s=s,
        tiling=tiling,
        ensemble=ensemble,
        device=device,
        threads=threads,
        slab=slab,
        chunk=chunk,
        consistency=whole,
        spacing_hq=spacing_hq,
        info={**_info(job, n_indi, s, src, spacing_hq, ensemble), "model": str(model)},
    )
    return plan, _record(model, src, n_indi, wanted, s, upscaled)


def _start(plan, record, scheduler, workers, callback, t_start, client=None):
    """Skip finished steps, create the output and the scratch of the others, run them, collect."""
    out, src = Path(plan.out), plan.source
    record["series"] = src.series
    finished = _resume(out, plan.zarr, record)
    if finished is None:
        if plan.zarr:
            create_store(plan, record)
        else:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "series.json", record)
        finished = set()
    todo = [t for t, name in enumerate(src.names) if name not in finished]
    for t in todo:
        prepare_scratch(plan, t)
    ran = dict(_run(plan, todo, scheduler, workers, callback, client)) if todo else {}
    steps = []
    for name in src.names:
        if name in ran:
            steps.append((name, ran[name]))
        else:
            steps.append((name, {**_finished_info(out, plan, name), "skipped": True}))
    shutil.rmtree(out / ".scratch.zarr", ignore_errors=True)
    voxels = sum(int(np.prod(src.shapes[t])) for t in todo)
    return SeriesResult(
        out=out,
        steps=steps,
        seconds=time.perf_counter() - t_start,
        workers=_n_workers(scheduler, workers),
        scheduler=scheduler,
        slab=plan.slab,
        voxels=voxels,
        skipped=sorted(finished),
    )


def _finished_info(out, plan, name):
    if plan.zarr:
        path = out / "steps" / f"{name}.json"
    else:
        path = (out / name if plan.source.series else out) / "enhance.json"
    return read_json(path, what="time step record", fix="delete it to redo the step")

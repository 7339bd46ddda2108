"""Slab-wise InDI enhancement of 4D series: throughput per worker, peak memory per worker, 2 workers vs 1.

What runs: ``matsight.restore.series.enhance_series`` (what ``matsight restore apply`` does for a series or a
zarr), on dask's ``processes`` scheduler with 1 or 2 local workers, each with one torch thread
(``MATSIGHT_THREADS=1``), reading a zarr input and writing an OME-Zarr output.

Data:

- **Synthetic series** ``T × n³`` (float32, zarr chunks ``(1, 64, n, n)``, in a temporary folder): two smooth
  random fields (white noise, Gaussian filter σ = 6 voxels) make a three-phase structure whose boundaries move
  with time (phase thresholds applied to ``a + 0.1·t·b``), grey levels 0.2 / 0.5 / 0.8 plus Gaussian noise
  (σ = 0.05). It is already on the model's HQ grid (``upscaled=True``): the enhanced volume is n³ too.
- **Real cell CT** ``shared/data/xct/cell_vol.tif`` (100×728×728 uint8, skipped if absent): its 2× area
  average (50×364×364) is the LQ volume, enhanced onto the 100×728×728 grid (bicubic in xy, InDI, cubic z).

The model: the ``cpu`` preset (the default of ``restore train``), trained for ``--train-steps`` optimiser
steps on a 2× area-averaged crop of the cell volume (a synthetic pair without it). Speed depends on the
network's size, not on how long it was trained; cached in ``~/.cache/matsight/restore_series``.

Measured per run, each in a fresh Python process: wall time, LQ voxels per second (all workers, and per
worker), the peak resident memory of the largest worker process (``getrusage(RUSAGE_CHILDREN)``: dask's
worker processes are children of the run), and the machine's load average before and after. The
development machine has 2 cores shared with other jobs: the 2-worker speed-up is bounded by what the other
jobs leave; read it with the recorded load.

Usage::

    python benchmarks/restore_series.py --quick                 # smoke test, ~2 min
    python benchmarks/restore_series.py                         # memory at 256³/512³, speed-up, cell CT
    python benchmarks/restore_series.py --big                   # also the 10 × 512³ series, 2 workers
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xct" / "cell_vol.tif"
CACHE = Path(os.environ.get("MATSIGHT_CACHE", Path.home() / ".cache" / "matsight")) / "restore_series"
RESULTS = Path(__file__).resolve().parent / "results" / "restore_series.json"
INDI_STEPS = 2


def _area2(v):
    z, y, x = (n // 2 * 2 for n in v.shape)
    return v[:z, :y, :x].reshape(z // 2, 2, y // 2, 2, x // 2, 2).mean((1, 3, 5)).astype(np.float32)


def train_model(steps):
    """The ``cpu``-preset model of this benchmark (cached)."""
    from matsight.restore.register import prepare_pair
    from matsight.restore.train import train

    out = CACHE / f"model_cpu_{steps}"
    if (out / "model.safetensors").is_file():
        return out
    if DATA.is_file():
        from matsight.io import read_volume

        hq = np.asarray(read_volume(DATA))[:16, 200:456, 200:456].astype(np.float32)
    else:
        hq = synthetic_step(np.random.default_rng(7), 16, 256, 0)
    pair = prepare_pair(_area2(hq), hq, scale=2, mask=False)
    train(pair, out, device="cpu", preset="cpu", max_steps=steps, val_every=10**9, steps=INDI_STEPS)
    return out


def synthetic_fields(rng, n):
    from scipy import ndimage

    a = ndimage.gaussian_filter(rng.standard_normal((n, n, n), dtype=np.float32), 6)
    b = ndimage.gaussian_filter(rng.standard_normal((n, n, n), dtype=np.float32), 6)
    return a / a.std(), b / b.std()


def synthetic_step(rng, n_z, n, t, fields=None):
    """Time step ``t`` of the synthetic series (see the module docstring)."""
    a, b = fields if fields is not None else synthetic_fields(rng, n)
    f = a[:n_z] + 0.1 * t * b[:n_z]
    grey = np.choose(np.digitize(f, [-0.4, 0.4]), np.array([0.2, 0.5, 0.8], np.float32))
    grey += 0.05 * rng.standard_normal(grey.shape, dtype=np.float32)
    return grey


def make_series(path, steps, n, seed=0):
    """Write the synthetic ``steps × n³`` series to the zarr ``path`` (cached by its name)."""
    import zarr

    if (path / "zarr.json").is_file():
        return path
    rng = np.random.default_rng(seed)
    fields = synthetic_fields(rng, n)
    tmp = path.with_name(path.name + ".partial")
    arr = zarr.create_array(
        store=str(tmp), shape=(steps, n, n, n), chunks=(1, 64, n, n), dtype="float32", overwrite=True,
        attributes={"axes": "TZYX"}, compressors=None,  # noisy floats hardly compress; zstd only costs time
    )  # fmt: skip
    for t in range(steps):
        arr[t] = synthetic_step(rng, n, n, t, fields)
    tmp.rename(path)
    return path


def make_cell(path, n_z):
    """The cell CT's 2× area average, its first ``n_z`` slices (LQ; enhanced onto 2·n_z × 728 × 728)."""
    from matsight.io import read_volume, write_volume

    if not (path / "zarr.json").is_file():
        lq = _area2(np.asarray(read_volume(DATA), dtype=np.float32))[:n_z]
        write_volume(path, lq, chunks=(8, 364, 364))
    return path


# ---------------------------------------------------------------------------------------------- one run
def run_one(spec):
    """One measured run in this (fresh) process: ``spec`` = model, source, workers, upscaled, memory_mib."""
    from matsight.restore.series import enhance_series

    out = Path(spec["out"])
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    log = CACHE / f"progress_{spec['name']}.log"  # slabs done over time: a long run cut short still tells

    def progress(p):
        with open(log, "a") as f:
            f.write(f"{time.perf_counter() - t0:.1f} s: {p.message}\n")

    log.unlink(missing_ok=True)

    def time_up(watch):  # the --big-minutes limit: report what was done, stop the workers, leave
        print(json.dumps(_row(spec, None, out, time.perf_counter() - t0, watch, load0)), flush=True)

    watch = _Watch(spec.get("minutes"), time_up)
    res = _enhance(enhance_series, spec, out, progress, watch)
    wall = time.perf_counter() - t0
    watch.stop()
    return _row(spec, res, out, wall, watch, load0)


def _enhance(enhance_series, spec, out, progress, watch):
    def callback(p):
        progress(p)
        watch.slabs = (p.step, p.total)

    return enhance_series(
        spec["model"], spec["source"], out, indi_steps=INDI_STEPS, onestep=False, upscaled=spec["upscaled"],
        device="cpu", scheduler="processes", workers=spec["workers"], memory_mib=spec["memory_mib"],
        callback=callback,
    )  # fmt: skip


class _Watch:
    """Samples the resident memory of this process's children (dask's workers) every second; a time limit."""

    def __init__(self, minutes, time_up):
        import threading

        self.limit = minutes * 60 if minutes else None
        self.slabs = (0, 1)  # pass-1 slabs done, of all
        self.t0 = time.perf_counter()
        self.peak, self.time_up = {}, time_up
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        import psutil

        me = psutil.Process()
        while not self.done.wait(1.0):
            for c in me.children(recursive=True):
                try:
                    self.peak[c.pid] = max(self.peak.get(c.pid, 0), c.memory_info().rss)
                except psutil.Error:
                    pass
            if self.limit and time.perf_counter() - self.t0 > self.limit:
                self.time_up(self)
                for c in me.children(recursive=True):
                    c.kill()
                os._exit(0)

    def stop(self):
        self.done.set()
        self.thread.join()


def _row(spec, res, out, wall, watch, load0):
    # the largest finished child: dask's workers (each also counts the driver's peak when it was started)
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB → GiB
    driver = _vm_hwm() / 2**20  # not ru_maxrss: after exec that counts the benchmark parent's peak too
    if (
        res is None
    ):  # cut at --minutes: the slabs enhanced by then (pass 1, the network: the bulk of the work)
        done, total = watch.slabs
        steps = len(list((out / "steps").glob("*.json")))
        voxels, slab, cons = int(np.prod(_shape(spec["source"])) * done / total), None, []
    else:
        steps, voxels, slab = len(res.steps), res.voxels, res.slab
        cons = [round(i["consistency_rms"], 5) for _, i in res.steps if "consistency_rms" in i]
    rate = voxels / wall
    return {
        **{k: spec[k] for k in ("name", "workers", "memory_mib", "upscaled")},
        "steps": steps,
        "cut_at_minutes": spec.get("minutes") if res is None else None,
        "lq_shape": list(_shape(spec["source"])),
        "slab_lq_slices": slab,
        "wall_s": round(wall, 1),
        "lq_voxels": voxels,
        "voxels_per_s": round(rate),
        "voxels_per_s_per_worker": round(rate / spec["workers"]),
        "peak_rss_worker_gib": round(worker, 3),
        "peak_rss_worker_sampled_gib": round(max(watch.peak.values(), default=0) / 2**30, 3),
        "peak_rss_driver_gib": round(driver, 3),
        "consistency_rms": cons,
        "loadavg_before": [round(v, 2) for v in load0],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
    }


def _vm_hwm():
    """This process's peak resident memory in KiB (Linux ``VmHWM``)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))


def _shape(source):
    import zarr

    return zarr.open_array(str(source), mode="r").shape


def measure(spec):
    """Run ``spec`` in a fresh process (so that the memory peaks are this run's alone)."""
    import shutil

    shutil.rmtree(spec["out"], ignore_errors=True)
    env = {**os.environ, "MATSIGHT_THREADS": "1", "MATSIGHT_PROGRESS": "0"}
    cmd = [sys.executable, __file__, "--run", json.dumps(spec)]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if p.returncode:
        sys.exit(f"run {spec['name']} failed:\n{p.stderr[-3000:]}")
    row = json.loads(p.stdout.strip().splitlines()[-1])
    shutil.rmtree(spec["out"], ignore_errors=True)
    print(json.dumps(row), flush=True)
    return row


def plan_runs(args, model, tmp):
    """The runs: memory at two sizes, 1 vs 2 workers, the cell CT, and (``--big``) the 10 × 512³ series."""
    small, large = (48, 96) if args.quick else (256, 512)
    t_speed, n_speed = (2, 48) if args.quick else (4, 128)
    runs = []

    def spec(name, source, workers, upscaled=True, memory=512):
        out = str(tmp / f"out_{name}.zarr")
        return dict(name=name, model=str(model), source=str(source), out=out, workers=workers,
                    upscaled=upscaled, memory_mib=memory)  # fmt: skip

    one_small = make_series(CACHE / f"series_1x{small}.zarr", 1, small)
    one_large = make_series(CACHE / f"series_1x{large}.zarr", 1, large)
    runs.append(spec(f"memory_{small}^3", one_small, 1))
    runs.append(spec(f"memory_{large}^3", one_large, 1))
    speed = make_series(CACHE / f"series_{t_speed}x{n_speed}.zarr", t_speed, n_speed, seed=1)
    runs += [spec(f"speed_{t_speed}x{n_speed}^3_{w}w", speed, w) for w in (1, 2)]
    if DATA.is_file() and not args.quick:
        # 24 of its 50 LQ slices: the whole one takes ~20 min per run on the loaded machine
        cell = make_cell(CACHE / "cell_lq_24x364x364.zarr", 24)
        runs.append(spec("cell_ct_24x364^2_1w", cell, 1, upscaled=False, memory=128))
    if args.big and _chosen("series_10x512^3_2w", args.only):
        big = make_series(CACHE / "series_10x512.zarr", 10, 512, seed=2)  # 5 GiB: delete after
        runs.append({**spec("series_10x512^3_2w", big, 2), "minutes": args.big_minutes})
    return runs


def _chosen(name, only):
    """Whether ``--only`` (comma-separated name prefixes) selects the run ``name``."""
    return not only or any(name.startswith(p) for p in only.split(","))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--big", action="store_true", help="also the 10 × 512³ series with 2 workers")
    ap.add_argument(
        "--big-minutes", type=float, help="stop the 10 × 512³ run after this long (finished steps count)"
    )
    ap.add_argument("--train-steps", type=int, default=50)
    ap.add_argument(
        "--only",
        help="comma-separated name prefixes: run only those runs (the others' rows are kept from the JSON)",
    )
    ap.add_argument("--out", type=Path, help=f"results JSON (default {RESULTS.name}; --quick: a temp file)")
    ap.add_argument("--rows-from", type=Path, help="keep the rows an interrupted run printed (its output)")
    ap.add_argument("--run", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        print(json.dumps(run_one(json.loads(args.run))))
        return
    import torch

    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "restore_series_quick.json" if args.quick else RESULTS
    CACHE.mkdir(parents=True, exist_ok=True)
    model = train_model(args.train_steps)
    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "loadavg_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        runs = [s for s in plan_runs(args, model, Path(tmp)) if _chosen(s["name"], args.only)]
        rows = [measure(s) for s in runs]
    machine["loadavg_end"] = os.getloadavg()
    earlier = json.loads(args.out.read_text()).get("runs", []) if args.out.exists() and not args.quick else []
    if args.rows_from:
        lines = args.rows_from.read_text().splitlines()
        earlier += [json.loads(line) for line in lines if line.startswith('{"name"')]
    have = {r["name"] for r in rows}  # rows of earlier runs that this one did not repeat are kept
    for r in earlier:
        if r["name"] not in have:
            rows.append(r)
            have.add(r["name"])
    speed = {r["workers"]: r["wall_s"] for r in rows if r["name"].startswith("speed_")}
    result = {
        "benchmark": "restore_series",
        "command": " ".join(["python", "benchmarks/restore_series.py", *sys.argv[1:]]),
        "machine": machine,
        "model": {
            "preset": "cpu",
            "train_steps": args.train_steps,
            "indi_steps": INDI_STEPS,
            "onestep": False,
        },
        "scheduler": "processes (dask), 1 torch thread per worker",
        "runs": rows,
        "speedup_2_workers": round(speed[1] / speed[2], 2) if len(speed) == 2 else None,
        "note": "2 cores shared with other jobs: see loadavg_before/after of each run. "
        "peak_rss_driver_gib of rows without peak_rss_worker_sampled_gib was ru_maxrss, which after exec "
        "also counts the benchmark parent's peak (3.8 GiB while it generated the series); later rows read "
        "the driver's own VmHWM",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Peak memory of ``matsight fuse evaluate`` and ``matsight metrics`` on a large SR volume, as users run them.

Writes a 3-phase SR volume of ``--size``³ voxels (default 1008³, 1 GiB of uint8 labels), the LR volume it
comes from at scale 8 (``--size/8``³; the SR is the uncropped output, as ``fuse generate --keep-border``
writes it) and an HR image to a folder, as files (``--format``: a zlib-compressed tif, as ``write_volume``
writes it, a zarr store or an npy file), slab by slab so that this script never holds the volume either.
Then it runs both commands in subprocesses and polls the resident memory of the command's process tree
(``psutil``, every 0.1 s; ``ru_maxrss`` of the children as a cross-check) and the wall time.

The structure: a smooth random field on the LR grid (Gaussian-filtered noise), interpolated trilinearly
onto the SR grid and cut at its 40 % and 70 % quantiles (phases 0, 1, 2); the LR volume is the same field
cut at the LR voxel centres, so the LR consistency is high but not perfect.

    python benchmarks/fuse_evaluate_memory.py                       # 1008³ tif: the issue's case
    python benchmarks/fuse_evaluate_memory.py --size 256 --format zarr --out /tmp/m.json

Results: ``benchmarks/results/fuse_evaluate_memory.json`` (one entry per command; machine info). The
target: peak RSS < 3 GiB for 1008³.
"""

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

RESULTS = Path(__file__).parent / "results"
SCALE = 8
GIB = 2**30


def _interp_matrix(n_lr, scale):
    """``(n_lr·scale, n_lr)`` weights of linear interpolation from LR voxel centres to SR voxel centres."""
    t = (np.arange(n_lr * scale) + 0.5) / scale - 0.5
    i0 = np.clip(np.floor(t).astype(int), 0, n_lr - 1)
    i1 = np.minimum(i0 + 1, n_lr - 1)
    w = np.clip(t - i0, 0, 1)
    m = np.zeros((t.size, n_lr), np.float32)
    m[np.arange(t.size), i0] += 1 - w
    m[np.arange(t.size), i1] += w
    return m


def _field(n_lr, seed):
    from scipy import ndimage

    g = ndimage.gaussian_filter(np.random.default_rng(seed).random((n_lr,) * 3, np.float32), 1.2)
    cuts = np.quantile(g, [0.4, 0.7])
    return g, cuts


def _sr_slabs(g, cuts, scale, rows=16):
    """The SR labels, ``rows`` layers at a time (trilinear field, cut into three phases)."""
    m = _interp_matrix(g.shape[0], scale)
    for z0 in range(0, m.shape[0], rows):
        planes = np.einsum("zk,kyx->zyx", m[z0 : z0 + rows], g)  # along Z
        planes = np.einsum("yk,zkx,xl->zyl", m, planes, m.T, optimize=True)  # then Y and X
        yield np.digitize(planes, cuts).astype(np.uint8)


def write_inputs(folder, size, fmt, seed=0):
    """Write ``sr.<fmt>``, ``lr.tif``, ``hr.tif``; return their paths."""
    import tifffile

    from matsight.io.volumes import write_volume

    n_lr = size // SCALE
    g, cuts = _field(n_lr, seed)
    folder.mkdir(parents=True, exist_ok=True)
    lr = write_volume(folder / "lr.tif", np.digitize(g, cuts).astype(np.uint8))
    hr_field, hr_cuts = _field(n_lr, seed + 1)
    hr = write_volume(folder / "hr.tif", next(_sr_slabs(hr_field, hr_cuts, SCALE, rows=1))[0])
    sr = folder / f"sr.{fmt}"
    shape = (n_lr * SCALE,) * 3
    if fmt == "tif":
        pages = (page for slab in _sr_slabs(g, cuts, SCALE) for page in slab)
        tifffile.imwrite(
            sr, pages, shape=shape, dtype=np.uint8, compression="zlib", imagej=True, metadata={"axes": "ZYX"}
        )
    elif fmt == "npy":
        out = np.lib.format.open_memmap(sr, mode="w+", dtype=np.uint8, shape=shape)
        for i, slab in enumerate(_sr_slabs(g, cuts, SCALE, rows=64)):
            out[i * 64 : i * 64 + slab.shape[0]] = slab
        out.flush()
        del out
    else:
        import zarr

        z = zarr.create_array(store=str(sr), shape=shape, dtype=np.uint8, chunks=(64, 64, 64), overwrite=True)
        z.attrs["axes"] = "ZYX"
        for i, slab in enumerate(_sr_slabs(g, cuts, SCALE, rows=64)):
            z[i * 64 : i * 64 + slab.shape[0]] = slab
    return sr, lr, hr


def measure(cmd, env):
    """Run ``cmd``; ``{"seconds", "peak_rss_gib" (psutil, process tree), "ru_maxrss_gib", "rc", "tail"}``."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, out = 0, []
    parent = psutil.Process(proc.pid)
    import threading

    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        try:
            tree = [parent, *parent.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.1)
    reader.join()
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "command": " ".join(str(c) for c in cmd),
        "rc": proc.returncode,
        "seconds": round(seconds, 1),
        "peak_rss_gib": round(peak / GIB, 3),
        "ru_maxrss_gib": round(max(before, after) * 1024 / GIB, 3),
        "tail": "".join(out[-12:]),
    }


def _machine():
    import psutil

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
        "load_average_at_start": os.getloadavg(),
        "MATSIGHT_THREADS": os.environ.get("MATSIGHT_THREADS"),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1008, help="SR edge (a multiple of 8)")
    ap.add_argument("--format", choices=["tif", "zarr", "npy"], default="tif")
    ap.add_argument("--folder", type=Path, help="where the inputs go (default: a temporary folder)")
    ap.add_argument("--transport", type=int, default=2, help="fuse evaluate --transport (sub-cubes per axis)")
    ap.add_argument("--out", type=Path, default=RESULTS / "fuse_evaluate_memory.json")
    ap.add_argument("--commands", default="evaluate,metrics", help="which to run (comma-separated)")
    ap.add_argument("--reuse", action="store_true", help="keep the inputs already in --folder")
    a = ap.parse_args(argv)
    env = {
        **os.environ,
        "MATSIGHT_PROGRESS": "0",
        "MATSIGHT_THREADS": os.environ.get("MATSIGHT_THREADS", "1"),
    }
    with tempfile.TemporaryDirectory(prefix="matsight_mem_") as tmp:
        folder = a.folder or Path(tmp)
        t0 = time.perf_counter()
        have = [folder / f"sr.{a.format}", folder / "lr.tif", folder / "hr.tif"]
        if a.reuse and all(p.exists() for p in have):
            sr, lr, hr = have
        else:
            sr, lr, hr = write_inputs(folder, a.size, a.format)
        written = time.perf_counter() - t0
        runs = {}
        report = folder / "report"
        cli = [sys.executable, "-m", "matsight"]
        commands = a.commands.split(",")
        if "evaluate" in commands:
            args = ["--out", report, "--lr", lr, "--hr", hr, "--transport", str(a.transport)]
            runs["fuse evaluate"] = measure([*cli, "fuse", "evaluate", sr, *args], env)
        if "metrics" in commands:
            runs["metrics"] = measure([*cli, "metrics", sr, "--json", folder / "metrics.json"], env)
        for name, r in runs.items():
            print(f"{name}: rc {r['rc']}, {r['seconds']} s, peak RSS {r['peak_rss_gib']} GiB")
        result = {
            "size": a.size,
            "format": a.format,
            "sr_bytes": a.size**3,
            "sr_file_bytes": sum(f.stat().st_size for f in ([sr] if sr.is_file() else sr.rglob("*"))),
            "inputs_written_seconds": round(written, 1),
            "target_peak_rss_gib": 3.0,
            "runs": runs,
            "machine": _machine(),
        }
        if "evaluate" in commands and (folder / "report" / "metrics.json").is_file():
            m = json.loads((folder / "report" / "metrics.json").read_text())
            result["evaluate_figures"] = {
                "lr_consistency": m.get("lr_consistency", {}).get("consistency"),
                "volume_fraction": m["whole"]["SR"]["volume_fraction"],
                "interface_face_fraction": m["whole"]["SR"]["interface_face_fraction"],
                "verdict": [f["message"] for f in m.get("verdict", [])],
            }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

"""SuperRes speed: training iteration time (CPU vs paper preset) and generation throughput / peak memory.

Everything runs in one invocation; each measurement runs in its own subprocess so its peak RSS is its own
(``ru_maxrss`` of the child, imports included). Medians are reported.

- Training: the same synthetic data (a 3-phase particle electrode, LR = active phase every 4th voxel,
  HR = one 2D slice), scale 4, for the ``cpu`` and ``paper`` presets. Iteration times are the intervals
  between consecutive critic updates (one per iteration with the shared critic), taken from a global
  optimiser-step hook, so evaluation/checkpoint work outside the loop body is not counted. Iterations
  with a generator update (every 5th) are reported separately.
- Generation: the CPU-preset generator (random weights: speed does not depend on them) on a 128³ LR
  volume → 504³ (512³ minus the one-LR-voxel border), in memory; and once streamed to a .zarr store.

    python benchmarks/fuse_speed.py                       # -> benchmarks/results/fuse_speed.json
    python benchmarks/fuse_speed.py --cpu-iterations 30 --paper-iterations 6 --repeats 3

The development machine has 2 cores shared by ~8 engineers: figures measured there are under contention
(the load average is recorded with them).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "fuse_speed.json"


def _peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


# ------------------------------------------------------------------------------------------ children
def child_train(preset, iterations, threads):
    import torch

    torch.set_num_threads(threads)
    from torch.optim.optimizer import register_optimizer_step_post_hook

    from matsight.data.microstructures import particle_electrode
    from matsight.fuse.config import make_config
    from matsight.fuse.train import train

    gt = particle_electrode((128, 128, 128), seed=0)
    lr = (gt[1::4, 1::4, 1::4] == 1).astype(np.uint8)
    hr = gt[64]
    cfg = make_config(preset, scale=4, metrics_every=10**6, checkpoint_every=10**6, checkpoint_minutes=1e6)
    stamps = []

    def hook(opt, args, kwargs):
        stamps.append((time.perf_counter(), id(opt)))

    handle = register_optimizer_step_post_hook(hook)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            train((lr, hr), tmp, config=cfg.updated({"steps": iterations}), resume=False, device="cpu")
    finally:
        handle.remove()
    critic_id = stamps[0][1]  # iteration 0 updates the critic first, then the generator
    # a shared critic with critic_steps="per_axis" (the paper preset) steps once per slicing axis: an
    # iteration ends with its last critic step
    per_axis = cfg.model.shared_critic and not cfg.anisotropic and cfg.training.critic_steps == "per_axis"
    steps = 3 if per_axis else 1
    t_critic = [t for t, i in stamps if i == critic_id][steps - 1 :: steps]
    g_times = [t for t, i in stamps if i != critic_id]
    dts = np.diff(t_critic)  # interval k: iteration k+1's critic step end - iteration k's
    # an interval contains a generator update if a G step happened inside it
    has_g = np.array(
        [any(a < g <= b for g in g_times) for a, b in zip(t_critic[:-1], t_critic[1:], strict=True)]
    )
    return {
        "preset": preset,
        "iterations": iterations,
        "iteration_s": [float(v) for v in dts],
        "median_iteration_s": float(np.median(dts)),
        "median_critic_only_iteration_s": float(np.median(dts[~has_g])) if (~has_g).any() else None,
        "median_generator_iteration_s": float(np.median(dts[has_g])) if has_g.any() else None,
        "mean_iteration_s": float(np.mean(dts)),
        "peak_rss_gib": _peak_rss_gib(),
        "output_size": cfg.training.output_size,
        "fake_batch": cfg.training.fake_batch,
        "trunk_width": cfg.trunk_width,
        "critic_steps_per_iteration": steps,
    }


def child_generate(lr_size, repeats, threads, zarr_out):
    import torch

    torch.set_num_threads(threads)
    from matsight.fuse.config import make_config
    from matsight.fuse.networks import build_generator
    from matsight.fuse.predict import predict as generate

    torch.manual_seed(0)
    cfg = make_config("cpu", scale=4, n_hr_phases=3, n_lr_phases=2)
    gen = build_generator(cfg).eval()
    lr = (np.random.default_rng(0).random((lr_size,) * 3) < 0.5).astype(np.uint8)
    walls, shape = [], None
    for _ in range(repeats):
        if zarr_out:
            with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
                res = generate(gen, lr, out=Path(tmp) / "sr.zarr", device="cpu")
                shape = res.labels.shape
        else:
            res = generate(gen, lr, device="cpu")
            shape = res.labels.shape
        walls.append(res.seconds)
        del res
    n = int(np.prod(shape))
    return {
        "lr_shape": [lr_size] * 3,
        "output_shape": list(shape),
        "zarr": zarr_out,
        "wall_s": walls,
        "median_wall_s": statistics.median(walls),
        "median_voxels_per_s": n / statistics.median(walls),
        "peak_rss_gib": _peak_rss_gib(),
    }


# ------------------------------------------------------------------------------------------ parent
def _run_child(args):
    cmd = [sys.executable, __file__, "--child", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-iterations", type=int, default=30)
    ap.add_argument("--paper-iterations", type=int, default=6)
    ap.add_argument("--lr-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-paper", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        kind, *rest = a.child
        if kind == "train":
            res = child_train(rest[0], int(rest[1]), a.threads)
        else:
            res = child_generate(int(rest[0]), int(rest[1]), a.threads, rest[2] == "zarr")
        print(json.dumps(res))
        return

    import torch

    results = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "threads": a.threads,
            "loadavg_start": os.getloadavg(),
            "note": "2 cores shared by ~8 engineers: figures measured under contention",
        }
    }
    t0 = time.perf_counter()
    if not a.skip_train:
        results["train"] = {"cpu": _run_child(["train", "cpu", str(a.cpu_iterations)])}
        print(
            "train cpu:", {k: v for k, v in results["train"]["cpu"].items() if k != "iteration_s"}, flush=True
        )
        if not a.skip_paper:
            results["train"]["paper"] = _run_child(["train", "paper", str(a.paper_iterations)])
            print("train paper:", {k: v for k, v in results["train"]["paper"].items() if k != "iteration_s"})
            c, p = results["train"]["cpu"], results["train"]["paper"]
            results["train"]["paper_over_cpu_median_iteration"] = (
                p["median_iteration_s"] / c["median_iteration_s"]
            )
    results["generate"] = _run_child(["generate", str(a.lr_size), str(a.repeats), "memory"])
    print("generate:", results["generate"], flush=True)
    results["generate_zarr"] = _run_child(["generate", str(a.lr_size), "1", "zarr"])
    print("generate (zarr):", results["generate_zarr"], flush=True)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["total_s"] = time.perf_counter() - t0
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

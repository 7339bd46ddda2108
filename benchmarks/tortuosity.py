"""Tortuosity factor of a random two-phase volume: matsight vs TauFactor, in the same run.

The volume is TauFactor's benchmark case: i.i.d. random voxels, 50% conductive (τ ≈ 4.73 at 256³).
Both solvers run on the CPU in this process; TauFactor (torch) gets every core this process may use.

    python benchmarks/tortuosity.py     # 256³, 1 repeat -> benchmarks/results/tortuosity.json
    python benchmarks/tortuosity.py --size 128 --repeats 3 --tol-sweep
"""

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "tortuosity.json"


def build_volume(size, fraction, seed):
    rng = np.random.default_rng(seed)
    return (rng.random((size, size, size)) < fraction).astype(np.uint8)


def run_matsight(vol, tol):
    from matsight.metrics.tortuosity import tortuosity

    t0 = time.perf_counter()
    res = tortuosity(vol, phase=1, axis=0, tol=tol)
    wall = time.perf_counter() - t0
    return wall, res


def run_taufactor(vol):
    import taufactor
    import torch

    t0 = time.perf_counter()
    solver = taufactor.Solver(vol, device=torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        solver.solve(verbose=False)
    wall = time.perf_counter() - t0
    return wall, float(np.ravel(solver.tau)[0]), int(solver.iter)


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions():
    import importlib.metadata as md

    out = {}
    for name in ("numpy", "scipy", "pyamg", "taufactor", "torch"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="edge length of the cubic volume (default 256)")
    ap.add_argument("--fraction", type=float, default=0.5, help="conductive volume fraction (default 0.5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=1, help="runs per solver; medians are reported")
    ap.add_argument("--tol", type=float, default=1e-6, help="matsight tolerance on τ (default 1e-6)")
    ap.add_argument("--no-taufactor", action="store_true", help="skip TauFactor (matsight timings only)")
    ap.add_argument("--tol-sweep", action="store_true", help="also report τ versus tol for matsight")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"JSON output (default {RESULTS})")
    args = ap.parse_args(argv)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    if not args.no_taufactor:
        import torch

        torch.set_num_threads(cores)
    vol = build_volume(args.size, args.fraction, args.seed)
    load_text = f", load average {load[0]:.2f} at start" if load else ""
    print(
        f"tortuosity benchmark: {args.size}^3 random two-phase volume, VF {vol.mean():.4f}, "
        f"seed {args.seed}; "
        f"{cores} cores ({cpu_model()}){load_text}"
    )

    # warm-up on a small volume so imports and first-call setup are not timed
    small = build_volume(24, args.fraction, args.seed)
    run_matsight(small, args.tol)
    if not args.no_taufactor:
        run_taufactor(small)

    ours, theirs = [], []
    for rep in range(args.repeats):
        wall, res = run_matsight(vol, args.tol)
        ours.append(
            {
                "wall_s": wall,
                "tau": res.tau,
                "iterations": res.iterations,
                "stages_s": res.timings,
                "tau_error": res.tau_error,
                "residual": res.residual,
            }
        )
        print(
            f"  [{rep + 1}/{args.repeats}] matsight  {wall:8.2f} s  tau {res.tau:.5f}  "
            f"({res.iterations} CG iterations; "
            + ", ".join(f"{k} {v:.2f}" for k, v in res.timings.items())
            + ")",
            flush=True,
        )
        if not args.no_taufactor:
            wall_tf, tau_tf, it_tf = run_taufactor(vol)
            theirs.append({"wall_s": wall_tf, "tau": tau_tf, "iterations": it_tf})
            print(
                f"  [{rep + 1}/{args.repeats}] TauFactor {wall_tf:8.2f} s  tau {tau_tf:.5f}  "
                f"({it_tf} iterations)",
                flush=True,
            )

    med = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    summary = {"matsight": {"wall_s": med(ours, "wall_s"), "tau": med(ours, "tau")}}
    rows = [("matsight (AMG-CG)", summary["matsight"]["wall_s"], summary["matsight"]["tau"])]
    if theirs:
        summary["taufactor"] = {"wall_s": med(theirs, "wall_s"), "tau": med(theirs, "tau")}
        summary["speedup"] = summary["taufactor"]["wall_s"] / summary["matsight"]["wall_s"]
        summary["tau_rel_diff"] = summary["matsight"]["tau"] / summary["taufactor"]["tau"] - 1
        rows.append(
            ("TauFactor (SOR, torch cpu)", summary["taufactor"]["wall_s"], summary["taufactor"]["tau"])
        )

    stat = f"median of {args.repeats}" if args.repeats > 1 else "1 run"
    print(f"\n{'solver':28s} {'time (s)':>10s} {'tau':>10s}   ({stat}, {cores} cores)")
    for name, wall, tau in rows:
        print(f"{name:28s} {wall:10.2f} {tau:10.5f}")
    if theirs:
        print(
            f"speed ratio TauFactor/matsight: {summary['speedup']:.1f}x; "
            f"tau relative difference {summary['tau_rel_diff']:+.2e}"
        )

    sweep = None
    if args.tol_sweep:
        print("\nmatsight tau versus tol:")
        sweep = []
        for tol in (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-8, 1e-10):
            wall, res = run_matsight(vol, tol)
            sweep.append(
                {
                    "tol": tol,
                    "tau": res.tau,
                    "iterations": res.iterations,
                    "wall_s": wall,
                    "tau_error_estimate": res.tau_error,
                }
            )
        ref = sweep[-1]["tau"]
        for s in sweep:
            s["tau_rel_change_vs_tightest"] = s["tau"] / ref - 1
            print(
                f"  tol {s['tol']:.0e}: tau {s['tau']:.7f} ({s['tau_rel_change_vs_tightest']:+.1e}), "
                f"{s['iterations']} iterations, {s['wall_s']:.2f} s"
            )

    record = {
        "benchmark": "tortuosity",
        "command": "python benchmarks/tortuosity.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "volume": {
            "size": args.size,
            "fraction": args.fraction,
            "seed": args.seed,
            "vf": float(vol.mean()),
            "kind": "iid random voxels",
        },
        "machine": {
            "cores": cores,
            "cpu": cpu_model(),
            "load_average_at_start": load,
            "python": platform.python_version(),
        },
        "versions": versions(),
        "tol": args.tol,
        "repeats": args.repeats,
        "summary": summary,
        "runs": {"matsight": ours, "taufactor": theirs},
        "tol_sweep": sweep,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    from matsight._atomic import write_json

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, record)
    print(f"\nwrote {args.out}")
    return record


if __name__ == "__main__":
    main()

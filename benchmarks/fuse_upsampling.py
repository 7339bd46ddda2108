"""SuperRes generator upsampling: the paper's transposed convolution vs trilinear resize + conv, on NMC.

The NMC case (real LR XCT volume without binder + one SEM image with binder, sf 4) is where the in-painted
binder grows diagonal streaks after minutes of CPU training (`docs/fuse.md`). This trains the ``cpu`` preset
once with ``upsampling="transpose"`` (the paper's ConvTranspose3d) and once with ``"resize"`` for the same
wall-clock budget, generates the whole SR volume from each, and reports in one JSON: iterations and seconds
per iteration, LR consistency, phase fractions and interface face fractions vs the SEM image, and
:func:`matsight.metrics.microstructure.fft_orientation_ratio` per phase and slicing plane (diagonal / axis
FFT power at 0.1–0.35 cycles per voxel; the SEM image's is the yardstick, streaks push it up).

    python benchmarks/fuse_upsampling.py --budget 8m     # -> benchmarks/results/fuse_upsampling.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from fuse_fidelity import DATA, HERE, REAL, _machine, _train_generate


def _figures(ev, name, planes):
    """Phase and interface fractions of ``name`` and its orientation ratios from an evaluation."""
    return {
        "volume_fraction": ev["whole"][name]["volume_fraction"],
        "interface_face_fraction": ev["whole"][name]["interface_face_fraction"],
        "fft_orientation_ratio": {p: ev["fft_orientation_ratio"][k] for p, k in planes.items()},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget", default="8m", help="training budget of each variant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "fuse_upsampling.json")
    args = ap.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: the real SuperRes inputs live in ../shared/data/superres/")

    from matsight.fuse.evaluate import evaluate
    from matsight.io import read_labels

    spec = REAL["nmc"]
    lr, hr = read_labels(DATA / spec["lr"]), read_labels(DATA / spec["hr"])
    record = {
        "benchmark": "fuse_upsampling",
        "command": f"python benchmarks/fuse_upsampling.py --budget {args.budget} --seed {args.seed}",
        "case": "nmc",
        "budget": args.budget,
        "machine": _machine(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("transpose", "resize"):
            run = Path(tmp) / mode
            t0 = time.perf_counter()
            res, train_s, gen = _train_generate(
                lr,
                hr,
                run,
                budget=args.budget,
                seed=args.seed,
                scale=spec["scale"],
                mode=spec["mode"],
                compare_phases=spec["compare_phases"],
                upsampling=mode,
            )
            # the evaluation report's figures (32 slices per plane), without the diffusion solves
            ev = evaluate(
                gen.labels,
                hr=hr,
                lr=lr,
                scale=spec["scale"],
                mode=spec["mode"],
                compare_phases=spec["compare_phases"],
                n_subvolumes=16,
                n_transport=0,
                seed=args.seed,
            )
            record.setdefault("hr", _figures(ev, "HR", {"Z": "HR"}))
            record[mode] = {
                "iterations": res.iterations,
                "seconds_per_iteration": res.seconds_per_iteration,
                "best_iteration": res.best_iteration,
                "train_seconds": train_s,
                "sr_shape": list(gen.labels.shape),
                "lr_consistency": float(ev["lr_consistency"]["consistency"]),
                **_figures(ev, "SR", {a: f"SR ⟂ {a}" for a in "ZYX"}),
                "wall_s": time.perf_counter() - t0,
            }
            shutil.rmtree(run, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1))
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()

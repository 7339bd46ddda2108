"""Speed and agreement of the microstructure metrics and generator: matsight vs TauFactor / PoreSpy, same run.

    python benchmarks/microstructure.py              # 256³ generator + metrics, 128³ PoreSpy comparisons
    python benchmarks/microstructure.py --size 128   # smaller

Writes ``benchmarks/results/microstructure.json``. τ is benchmarked separately (``benchmarks/tortuosity.py``).
"""

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "microstructure.json"


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="edge of the generated volume")
    ap.add_argument("--cross-size", type=int, default=128, help="edge of the PoreSpy/TauFactor comparisons")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")

    from matsight.data.microstructures import particle_electrode, two_phase
    from matsight.metrics import microstructure as ms

    res = {
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
    }
    n = args.size
    t, vol = timed(particle_electrode, (n,) * 3, seed=args.seed)
    res[f"particle_electrode_{n}"] = t
    res[f"two_phase_{n}"] = timed(two_phase, (n,) * 3, seed=args.seed)[0]
    for name, fn in [
        ("volume_fraction", ms.volume_fraction),
        ("specific_surface_area", ms.specific_surface_area),
        ("interfacial_area", ms.interfacial_area),
        ("triple_phase_boundary", ms.triple_phase_boundary),
    ]:
        res[f"{name}_{n}"] = timed(fn, vol)[0]
    res[f"two_point_axis0_{n}"] = timed(ms.two_point_correlation, vol, 1, axis=0)[0]
    res[f"two_point_radial_{n}"] = timed(ms.two_point_correlation, vol, 1)[0]
    res[f"chords_axis0_{n}"] = timed(ms.chord_length_distribution, vol, 1, axis=0)[0]
    res[f"summary_without_tau_{n}"] = timed(ms.summary, vol, tortuosity=False)[0]
    res[f"subvolumes_256x64_{n}"] = timed(ms.subvolume_statistics, vol, size=min(64, n), n=256)[0]

    c = args.cross_size
    small = vol[:c, :c, :c]
    try:
        import taufactor.metrics as tm

        big = small.astype(np.int64)
        t_tf, ref = timed(tm.triple_phase_boundary, big)
        t_ms, ours = timed(ms.triple_phase_boundary, small)
        res["tpb_vs_taufactor"] = {
            "size": c,
            "ours": ours,
            "taufactor": float(ref),
            "t_ours": t_ms,
            "t_tf": t_tf,
        }
        t_tf, ref = timed(tm.specific_surface_area, big, method="face_counting", device="cpu")
        t_ms, ours = timed(ms.specific_surface_area, small)
        res["ssa_vs_taufactor"] = {
            "max_abs_diff": max(abs(ours[int(k)] - v) for k, v in ref.items()),
            "t_ours": t_ms,
            "t_tf": t_tf,
        }
    except ImportError:
        pass
    try:
        import porespy as ps

        t_ps, ref = timed(ps.metrics.two_point_correlation, small == 1)
        t_ms, ours = timed(ms.two_point_correlation, small, 1, bins=ref.bin_edges)
        res["two_point_vs_porespy"] = {
            "size": c,
            "max_abs_diff": float(np.max(np.abs(ours.probability - ref.probability_scaled))),
            "t_ours": t_ms,
            "t_porespy": t_ps,
        }
        t_ps, chords = timed(ps.filters.apply_chords, small == 1, spacing=1, axis=0, trim_edges=True)
        t_ps2, ref = timed(ps.metrics.chord_counts, chords)
        sub = small[:, ::2, ::2][:, 1:-1, 1:-1]
        t_ms, ours = timed(ms.chord_length_distribution, sub, 1, axis=0)
        res["chords_vs_porespy"] = {
            "identical": bool(np.array_equal(np.sort(ref), np.sort(ours.chords))),
            "t_ours_full_volume": timed(ms.chord_length_distribution, small, 1, axis=0)[0],
            "t_porespy_every_other_line": t_ps + t_ps2,
        }
    except ImportError:
        pass

    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()

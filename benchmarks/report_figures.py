"""What the SVG beside each report figure's PNG costs: seconds to write PNG alone and PNG + SVG, and the
files' sizes, for the largest figures the demo writes (the tem FFT and phase map of a 512² frame, the
metrics report's slices of three 64³ volumes and its line plots). Median of ``--repeat`` runs per figure.

    MATSIGHT_THREADS=1 python benchmarks/report_figures.py --out benchmarks/results/report_figures.json
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path


def _figures():
    """``{name: () -> Figure}``: each call draws the figure anew; only the saving is timed."""
    from matsight.data.microstructures import particle_electrode
    from matsight.metrics.microstructure import summary
    from matsight.report import microstructure as rm
    from matsight.tem import analyze, lattice
    from matsight.tem.report import fft_figure, phase_map_figure

    li = lattice.two_phase_image((512, 512), 0.02, phases=("LiF", "Li2O"), seed=1, dose=800)
    res = analyze(li.image, 0.02, maps=True)
    vols = {n: particle_electrode((64,) * 3, radius=6, seed=s) for s, n in enumerate(["LR↑", "SR", "HR"])}
    sums = {k: summary(v, tortuosity=False, max_distance=16) for k, v in vols.items()}
    names = {0: "pore", 1: "active", 2: "binder"}
    return {
        "tem FFT (512² frame)": lambda: fft_figure(res),
        "tem phase map (512² frame)": lambda: phase_map_figure(li.image, res),
        "metrics slices (3 × 64³)": lambda: rm.compare_slices(vols, phase_names=names, spacing=20.0),
        "metrics two-point correlation": lambda: rm.compare_two_point_correlation(sums, phase_names=names),
        "metrics chord lengths": lambda: rm.compare_chord_lengths(sums, phase_names=names),
    }


def _time(make, folder, vector):
    from matsight.report.style import save_figure

    fig = make()
    t = time.perf_counter()
    png = save_figure(fig, folder / "f.png", vector=vector)
    dt = time.perf_counter() - t
    svg = png.with_suffix(".svg")
    return dt, png.stat().st_size, svg.stat().st_size if vector else 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/report_figures.json"))
    args = ap.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in _figures().items():
            png_only = [_time(make, Path(tmp), False) for _ in range(args.repeat)]
            both = [_time(make, Path(tmp), True) for _ in range(args.repeat)]
            rows[name] = {
                "png_s": round(statistics.median(r[0] for r in png_only), 3),
                "png_svg_s": round(statistics.median(r[0] for r in both), 3),
                "png_kib": round(both[0][1] / 1024),
                "svg_kib": round(both[0][2] / 1024),
            }
            rows[name]["svg_extra_s"] = round(rows[name]["png_svg_s"] - rows[name]["png_s"], 3)
            print(name, rows[name], flush=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    out = {
        "what": "seconds to write a report figure: PNG at 200 dpi alone, and PNG + SVG (median of runs)",
        "repeat": args.repeat,
        "machine": f"{platform.processor() or platform.machine()}, {cores} cores, load {load:.1f} at the end",
        "python": platform.python_version(),
        "figures": rows,
        "total_svg_extra_s": round(sum(r["svg_extra_s"] for r in rows.values()), 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

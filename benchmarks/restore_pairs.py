"""Simulated LQ scans and pair registration on the real Li-ion cell CT (``shared/data/xct/cell_vol.tif``).

Measures, on a block of ``--slices`` z slices:

1. :func:`matsight.restore.pairs.simulate_lq` per dose: seconds, and how much the LQ loses against the HQ
   area-averaged to the LQ grid — PSNR and the CNR ratio LQ/HQ inside the cell's core (Otsu masks of the HQ).
   The paper's LQ/HQ CNR ratio is 0.9 / 2.4 = 0.375 (``shared/REFERENCE.md``); the default dose is chosen
   near it.
2. :func:`matsight.restore.register.prepare_pair` on an LQ with a known misalignment: the recovered rotation
   and shift against the exact inverse, NCC before/after, and seconds.

    python benchmarks/restore_pairs.py                     # -> benchmarks/results/restore_pairs.json
    python benchmarks/restore_pairs.py --slices 8 --doses 1e4

Timings taken on a shared machine are inflated by contention; the JSON records the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xct" / "cell_vol.tif"
RESULTS = Path(__file__).resolve().parent / "results" / "restore_pairs.json"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--slices", type=int, default=16)
    ap.add_argument("--z0", type=int, default=40)
    ap.add_argument("--doses", type=float, nargs="+", default=[2e3, 5e3, 1e4, 5e4])
    ap.add_argument("--rotation", type=float, default=0.8)
    ap.add_argument("--shift", type=float, nargs=3, default=[0.5, 1.7, -2.3])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    from matsight.io import read_volume
    from matsight.metrics.image_quality import cnr, otsu_masks, psnr
    from matsight.restore.pairs import downsample, simulate_lq
    from matsight.restore.register import prepare_pair

    vol = read_volume(os.environ.get("MATSIGHT_XCT", DATA), lazy=True)
    hq = np.asarray(vol[args.z0 : args.z0 + args.slices])
    hq = hq.astype(np.float32)
    ref = downsample(hq, 2)
    core = (slice(None), slice(125, 240), slice(125, 240))  # the jelly roll's core on the LQ grid
    fg, bg = otsu_masks(ref[core])
    cnr_hq = cnr(ref[core], fg, bg)
    out = {"data": str(DATA.name), "hq_shape": list(hq.shape), "load_avg": os.getloadavg(), "doses": []}
    print(f"HQ {hq.shape}; HQ (area-averaged to the LQ grid) core CNR {cnr_hq:.2f}")
    for dose in args.doses:
        t0 = time.perf_counter()
        lq = simulate_lq(hq, scale=2, dose=dose, shift=(0, 0), rotation_deg=0, seed=0)
        dt = time.perf_counter() - t0
        c = cnr(lq[core], fg, bg)
        p = psnr(ref[core], lq[core], data_range=float(np.ptp(hq)))
        row = {"dose": dose, "seconds": dt, "seconds_per_hq_slice": dt / hq.shape[0], "cnr_lq": c,
               "cnr_hq": cnr_hq, "cnr_ratio": c / cnr_hq, "psnr_core_db": p}  # fmt: skip
        out["doses"].append(row)
        print(f"dose {dose:g}: {dt:.1f} s, core CNR {c:.2f} (ratio {c / cnr_hq:.2f}), PSNR {p:.1f} dB")

    rot, shift = args.rotation, np.asarray(args.shift)
    lq = simulate_lq(hq, scale=2, shift=shift, rotation_deg=rot, seed=1)
    t0 = time.perf_counter()
    pair = prepare_pair(lq, hq, scale=2)
    dt = time.perf_counter() - t0
    tr = pair.transform
    a = np.deg2rad(-rot)
    r_inv = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    expect = np.r_[-shift[0], -r_inv @ shift[1:]]
    err = np.asarray(tr["shift"]) - expect
    out["registration"] = {
        "misalignment": {"rotation_deg": rot, "shift_hq_px": shift.tolist()},
        "recovered": {"rotation_deg": tr["rotation_deg"], "shift": tr["shift"]},
        "expected": {"rotation_deg": -rot, "shift": expect.tolist()},
        "rotation_error_deg": tr["rotation_deg"] + rot,
        "shift_error_px": err.tolist(),
        "ncc_before": tr["ncc_before"],
        "ncc_after": tr["ncc_after"],
        "seconds": dt,
    }
    print(
        f"registration: rotation {tr['rotation_deg']:.3f}° (true {-rot:.3f}), shift error "
        f"{np.round(err, 3).tolist()} px, NCC {tr['ncc_before']:.3f} -> {tr['ncc_after']:.3f}, {dt:.1f} s"
    )
    from matsight._atomic import write_json

    write_json(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""InDI restoration on a real Li-ion cell X-ray CT volume with a simulated low-quality scan.

HQ: ``shared/data/xct/cell_vol.tif`` (100×728×728 uint8). LQ: :func:`matsight.restore.pairs.simulate_lq` — 2×
voxel size (area averaging), a parallel-beam scan with fewer projections and Poisson photon noise
reconstructed by FBP, and a small rigid misalignment (sub-pixel shift + 0.4° rotation). The pair is registered
(:func:`matsight.restore.register.prepare_pair`), an InDI model (``cpu`` preset) and a one-step regression
model (same network and budget, all training times at t = 1: the paper's CNN baseline) are trained on the z
slices outside a held-out block, and the held-out slices are compared: LQ bicubic vs one-step vs InDI (N = 1,
4, 8, 16 and the auto-selected N) by PSNR, SSIM, SIFT congruent points, FWHM edge width and CNR (Otsu masks of
the HQ).
Also measured: seconds per 1024² slice for one pass and for 10 steps on ``--threads`` CPU threads.

Usage::

    python benchmarks/restore_xct.py --budget 30m --out /tmp/restore_xct_roll      # full run (~95 min)
    python benchmarks/restore_xct.py --budget 60s --quick --out /tmp/restore_quick  # smoke test

Targets (issue 4): InDI PSNR ≥ bicubic + 3 dB and ≥ one-step; FWHM ≤ HQ's; CNR ≥ HQ's. The FWHM is the
edge width where both images have at least ``MIN_EDGES`` measurable step edges, else the width of the
thin bright windings measured at the HQ's line positions (:func:`matsight.metrics.resolution.line_fwhm`).
Timings taken on a shared machine are inflated by contention; the JSON records the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

GAP = 4  # slices between the training and the test slices
MIN_EDGES = 10  # step edges needed for the edge FWHM to decide the FWHM target
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xct" / "cell_vol.tif"


def simulate_pair(hq, cache, tag, *, seed=0, dose=2e4, mask=True, lq_path=None):
    """The paper's LQ acquisition of ``hq`` (2× voxels, fewer projections, Poisson noise, FBP, a small rigid
    misalignment: :func:`matsight.restore.pairs.simulate_lq`), registered onto the HQ grid; cached under
    ``cache / tag``. Shared with ``restore_public.py``.
    """
    from matsight.restore.pair_io import load_pair, save_pair
    from matsight.restore.pairs import simulate_lq
    from matsight.restore.register import prepare_pair

    if (cache / tag / "pair.json").is_file():
        return load_pair(cache / tag)
    t0 = time.perf_counter()
    if lq_path is not None:
        lq = np.load(lq_path).astype(np.float32)
    else:
        lq = simulate_lq(hq, scale=2, shift=(0.6, -1.3), rotation_deg=0.4, dose=dose, seed=seed)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / f"lq_{tag}.npy", lq)
        print(f"simulated LQ {lq.shape} in {time.perf_counter() - t0:.0f} s", flush=True)
    pair = prepare_pair(lq, hq, scale=2, mask=mask)
    save_pair(pair, cache / tag)
    print(
        f"registered: {pair.transform['rotation_deg']:.3f} deg, "
        f"shift {np.round(pair.transform['shift'], 2)}, "
        f"NCC {pair.transform['ncc_before']:.3f} -> {pair.transform['ncc_after']:.3f}",
        flush=True,
    )
    return pair


def _pair(cache, quick, seed, dose, lq_path=None):
    from matsight.io import read_volume

    hq = np.asarray(read_volume(os.environ.get("MATSIGHT_XCT", DATA)), dtype=np.float32)
    if quick:
        hq = hq[:, 182:546, 182:546]  # central 364² (the core of the jelly roll)
    tag = f"pair_{'quick' if quick else 'full'}_{seed}_{dose:g}"
    return simulate_pair(hq, cache, tag, seed=seed, dose=dose, mask=not quick, lq_path=lq_path), hq


def _time_1024(net, threads, steps=10):
    import torch

    from matsight.restore.indi import sample_image

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        rng = np.random.default_rng(0)
        y = rng.uniform(-1, 1, (1024, 1024)).astype(np.float32)
        c = rng.uniform(-1, 1, (2 * net.context, 1024, 1024)).astype(np.float32) if net.context else None
        sample_image(net, y[:256, :256], steps=1, context=None if c is None else c[:, :256, :256])
        t0 = time.perf_counter()
        sample_image(net, y, steps=1, context=c)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        sample_image(net, y, steps=steps, context=c)
        many = time.perf_counter() - t0
        t0 = time.perf_counter()
        sample_image(net, y, steps=steps, ensemble=True, context=c)
        ens = time.perf_counter() - t0
    finally:
        torch.set_num_threads(old)
    return {"threads": threads, "one_pass_s": one, f"{steps}_steps_s": many, f"{steps}_steps_ensemble_s": ens}


def _slice_contrast(pair, radius, train_idx, test, val):
    """Per z slice of the HQ: the windings' (Otsu foreground) and the background's mean and their CNR.

    Shows whether the held-out slices look like any training slice: a model cannot be expected to produce a
    contrast it never saw.
    """
    from matsight.metrics.image_quality import cnr
    from matsight.restore.evaluate import _otsu_in
    from matsight.restore.register import denormalise, fov_mask

    rows = []
    for z in range(pair.hq.shape[0]):
        hq = denormalise(pair.hq[z : z + 1], pair.stats["hq"])
        mask = fov_mask(hq.shape, radius=radius)
        if pair.mask is not None:
            mask &= pair.mask[z : z + 1]
        fg, bg = _otsu_in(hq, mask, erode=1)
        role = "test" if z in test else "validation" if z in val else "train" if z in train_idx else "gap"
        rows.append(
            {
                "z": z,
                "role": role,
                "fg_mean": float(hq[fg].mean()),
                "bg_mean": float(hq[bg].mean()),
                "cnr": float(cnr(hq, fg, bg)),
            }
        )
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/restore_xct"))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/restore_xct_cache"))
    ap.add_argument("--budget", default="15m", help="training budget per model (InDI and one-step each)")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="central 364² crop, short budget: smoke test")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--lq", type=Path, default=None, help="precomputed LQ volume (.npy) instead of simulating"
    )
    ap.add_argument("--dose", type=float, default=2e4, help="photons per detector pixel and angle (LQ scan)")
    ap.add_argument(
        "--eval-radius",
        type=float,
        default=None,
        help="evaluate inside this radius (HQ px) around the centre: the jelly roll (default 250)",
    )
    ap.add_argument(
        "--ensemble-steps",
        type=lambda v: [int(n) for n in v.split(",") if n],
        default=[1, 4],
        help="also evaluate these N with the 8-fold flip/rotation self-ensemble (comma list; '' = none)",
    )
    ap.add_argument(
        "--test-block",
        default="82:92",
        help="held-out z slices START:STOP of the pair (default: inside the jelly roll; '59:69' is the "
        "cap-to-roll transition, whose bright windings on a dark background no training slice shows)",
    )
    ap.add_argument(
        "--val-block",
        default="45:54",
        help="validation z slices START:STOP among the training slices (they choose --indi-steps auto; "
        "default: the end of the cap, so that the jelly roll's few training slices stay in training)",
    )
    ap.add_argument("--skip-onestep", action="store_true", help="no separately trained one-step model")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="evaluate the models already trained in --out (same pair and split) instead of training again",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset setting (JSON value), e.g. --set space_to_depth=2 --set features=[24,48]",
    )
    args = ap.parse_args(argv)
    overrides = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.set)}

    import torch

    from matsight.restore import load as load_model
    from matsight.restore import train
    from matsight.restore.config import parse_duration, parse_slices
    from matsight.restore.evaluate import compare, write_report
    from matsight.restore.predict import predict as enhance
    from matsight.restore.register import denormalise, fov_mask

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    pair, _ = _pair(args.cache, args.quick, args.seed, args.dose, args.lq)
    nz = pair.hq.shape[0]
    # held-out block with GAP-slice gaps against leakage; its neighbours are enhanced with it, so keep them
    test = np.asarray(parse_slices(args.test_block, "--test-block"))
    if test[0] < GAP or test[-1] + GAP >= nz:
        raise SystemExit(f"--test-block {args.test_block}: need {GAP} <= START < STOP <= {nz - GAP}")
    train_idx = np.r_[0 : test[0] - GAP, test[-1] + GAP + 1 : nz]
    val = np.asarray(parse_slices(args.val_block, "--val-block"))
    if not np.isin(val, train_idx).all():
        raise SystemExit(
            f"--val-block {args.val_block}: must lie in the training slices, away from the test block"
        )
    fit_idx = np.setdiff1d(train_idx, val)  # the slices the models learn from
    budget = parse_duration(args.budget)
    common = dict(
        preset=args.preset,
        budget=budget,  # without a step count: the budget ends the run
        device=args.device,
        seed=args.seed,
        **overrides,
    )
    runs = {}
    previous = args.out / "results.json"
    if args.reuse and (args.out / "indi" / "model.safetensors").is_file():
        runs = json.loads(previous.read_text())["runs"] if previous.is_file() else {}
        print(f"reusing the models in {args.out}", flush=True)
    else:
        res = train(pair, args.out / "indi", slices=train_idx, val_slices=val, **common)
        runs["indi"] = {"steps": res.steps, "seconds": res.elapsed_s, "validation": res.validation}
        print(f"InDI: {res.steps} steps in {res.elapsed_s:.0f} s; validation {res.validation}", flush=True)
        if not args.skip_onestep:
            res1 = train(
                pair,
                args.out / "onestep",
                slices=train_idx,
                val_slices=val,
                t_mass_at_one=1e9,
                auto_steps=[],
                **common,
            )
            runs["onestep"] = {"steps": res1.steps, "seconds": res1.elapsed_s, "validation": res1.validation}
            print(f"one-step: {res1.steps} steps in {res1.elapsed_s:.0f} s", flush=True)

    model = load_model(args.out / "indi", device=args.device)
    n_auto = int(model[1]["steps_auto"]["best"]) if model[1].get("steps_auto") else 8
    # the test block is enhanced with GAP LQ slices on each side (never trained on), so that a 2.5D
    # network sees the same neighbours at the block's ends as inside; only the test slices are compared
    lq_raw = denormalise(pair.lq_up[test[0] - GAP : test[-1] + GAP + 1], pair.stats["lq"])
    hq_raw = denormalise(pair.hq[test], pair.stats["hq"])
    # evaluation region: the jelly roll (windings), inside the can wall
    radius = args.eval_radius or (170.0 if args.quick else 250.0)
    mask = fov_mask(hq_raw.shape, radius=radius)
    if pair.mask is not None:
        mask &= pair.mask[test]
    images, cons, timing = {}, {}, {}
    inner = slice(GAP, -GAP)

    def rms(e):  # data consistency on the test slices only
        return float(np.sqrt(np.mean(np.square(e.consistency[inner], dtype=np.float64))))

    if not args.skip_onestep:
        e1 = enhance(
            load_model(args.out / "onestep", device=args.device),
            lq_raw,
            indi_steps=1,
            slice_axis=0,
            upscaled=True,
            onestep=False,
            device=args.device,
        )
        images["LQ bicubic"] = e1.bicubic[inner]
        images["one-step model"] = e1.image[inner]
        cons["one-step model"] = rms(e1)
    for n in sorted({1, 4, 8, 16, n_auto}):
        t0 = time.perf_counter()
        e = enhance(
            model, lq_raw, indi_steps=n, slice_axis=0, upscaled=True, onestep=False, device=args.device
        )
        timing[n] = (time.perf_counter() - t0) / len(lq_raw)
        images.setdefault("LQ bicubic", e.bicubic[inner])
        if "LQ mean of 3 slices" not in images:
            # yardstick for a 2.5D network: the mean of the LQ slice and its two LQ neighbours
            k, b = int(model[1].get("context_step", 2)), e.bicubic
            images["LQ mean of 3 slices"] = (
                b[GAP - k : -GAP - k] + b[inner] + b[GAP + k : len(b) - GAP + k]
            ) / 3
        images[f"InDI N={n}"] = e.image[inner]
        cons[f"InDI N={n}"] = rms(e)
        cons.setdefault("LQ bicubic", e.info["consistency_rms_bicubic"])  # 0 on its own grid
        if n == n_auto:
            cons_map = e.consistency[inner]
    for n in args.ensemble_steps:
        # geometric self-ensemble: every step averaged over the 8 flips/rotations of the slice
        e = enhance(
            model,
            lq_raw,
            indi_steps=n,
            slice_axis=0,
            upscaled=True,
            onestep=False,
            device=args.device,
            ensemble=True,
        )
        images[f"InDI N={n} ×8"] = e.image[inner]
        cons[f"InDI N={n} ×8"] = rms(e)
    # how much the held-out slices resemble the training ones: the HQ of the nearest training slice, as if
    # copied (a yardstick, not a method: nothing sees the HQ at test time)
    nearest = fit_idx[np.abs(fit_idx[None] - test[:, None]).argmin(1)]
    images["nearest training HQ slice"] = denormalise(pair.hq[nearest], pair.stats["hq"])
    hq_range = float(np.subtract(*np.percentile(hq_raw[mask] if mask is not None else hq_raw, [99.5, 0.5])))
    # windings are ~8 px apart: short profiles so that each crosses one edge
    metrics = compare(hq_raw, images, mask=mask, n_edges=80, cnr_erode=1, edge_sigma=1.0, profile_length=9)
    for name, row in metrics.items():
        if name in cons:
            row["consistency_rms"] = cons[name]
    speed = _time_1024(model[0].cpu(), args.threads)

    best = f"InDI N={n_auto}"
    psnr_b = metrics["LQ bicubic"]["psnr"]
    one_name = "one-step model" if "one-step model" in metrics else "InDI N=1"
    targets = {
        "psnr_gain_over_bicubic_dB": metrics[best]["psnr"] - psnr_b,
        "psnr_minus_one_step_dB": metrics[best]["psnr"] - metrics[one_name]["psnr"],
        "fwhm_indi_over_hq": metrics[best]["fwhm_median"] / metrics["HQ"]["fwhm_median"],
        # the windings are thin bright lines: their width at the HQ's line positions (the HQ has few steps)
        "line_fwhm_indi_over_hq": metrics[best]["line_fwhm_median"] / metrics["HQ"]["line_fwhm_median"],
        "cnr_indi_over_hq": metrics[best]["cnr"] / metrics["HQ"]["cnr"],
        "cnr_over_hq": {
            k: v["cnr"] / metrics["HQ"]["cnr"] for k, v in metrics.items() if k.startswith("InDI")
        },
    }
    targets["met"] = {
        "psnr >= bicubic + 3 dB": bool(targets["psnr_gain_over_bicubic_dB"] >= 3),
        "psnr >= one-step": bool(targets["psnr_minus_one_step_dB"] >= 0),
        # step edges only where both images have enough of them for a median, else the windings' width
        "FWHM <= HQ": bool(
            targets["fwhm_indi_over_hq"] <= 1
            if min(metrics[best]["n_edges"], metrics["HQ"]["n_edges"]) >= MIN_EDGES
            else targets["line_fwhm_indi_over_hq"] <= 1
        ),
        "CNR >= HQ": bool(targets["cnr_indi_over_hq"] >= 1),
    }
    result = {
        "command": "python benchmarks/restore_xct.py " + " ".join(sys.argv[1:]),
        "data": str(DATA),
        "dose": args.dose,
        "eval_radius_px": radius,
        "quick": args.quick,
        "pair_shape": list(pair.hq.shape),
        "registration": {k: pair.transform[k] for k in ("rotation_deg", "shift", "ncc_before", "ncc_after")},
        "train_slices": int(fit_idx.size),
        "validation_slices": [int(val[0]), int(val[-1])],
        "test_slices": [int(test[0]), int(test[-1])],
        "hq_contrast_by_slice": _slice_contrast(pair, radius, train_idx, test, val),
        "budget_s_per_model": budget,
        "preset": args.preset,
        "overrides": overrides,
        "runs": runs,
        "auto_steps": model[1].get("steps_auto"),
        "metrics": metrics,
        "seconds_per_test_slice": {str(k): v for k, v in timing.items()},
        "slice_1024": speed,
        "hq_data_range": hq_range,
        "targets": targets,
        "reused_models": bool(args.reuse),
        "load_average": os.getloadavg(),
        "cpu_count": os.cpu_count(),
        "device": args.device,
        "torch_threads": args.threads,
        "total_s": time.perf_counter() - t_all,
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=1, default=float))
    write_report(
        args.out / "report",
        metrics,
        images,
        hq_raw,
        title="restore benchmark: Li-ion cell XCT, simulated LQ scan",
        consistency=cons_map,
        mask=mask,
        notes=[
            f"Pair {tuple(pair.hq.shape)} (HQ grid); trained on {fit_idx.size} z slices, evaluated on "
            "held-out "
            f"slices {test[0]}..{test[-1]}; budget {budget:.0f} s per model on {args.device} "
            f"({args.threads} threads; load average {os.getloadavg()[0]:.1f} — timings inflated by "
            "contention).",
            f"1024² slice: one pass {speed['one_pass_s']:.2f} s, 10 steps {speed['10_steps_s']:.2f} s.",
        ],
        extra_tables={"targets": {k: {"value": v} for k, v in targets["met"].items()}},
    )
    print(json.dumps({"metrics": metrics, "targets": targets, "slice_1024": speed}, indent=1, default=float))
    return result


if __name__ == "__main__":
    main()

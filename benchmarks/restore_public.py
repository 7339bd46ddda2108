"""InDI restoration on real CT of two public materials that are not in the repository's sample data.

Material A (training, default): X-ray µCT of FiberForm, a carbon-fibre preform, ``100_fiberform.tif`` (100³,
1.3 µm voxels); material B (unseen): X-ray µCT of a woven fabric, a 96×144×144 crop of ``small_weave.tif``
(``--train-on weave --unseen fiberform`` swaps them). Both are example files of NASA's PuMA
(github.com/nasa/puma, NASA Open Source Agreement 1.3), kept in ``benchmarks/data/`` (READMEs there). Each is
the HQ; its LQ is the paper's acquisition simulated as in ``restore_xct.py``
(:func:`restore_xct.simulate_pair`: 2× voxels, a parallel-beam scan with fewer projections and Poisson
noise, FBP, a small rigid misalignment), registered back onto the HQ grid.

An InDI model and a one-step regression model (the same network trained for direct regression) are trained
for the same fixed number of optimiser steps on the first 60 % of A's z slices (``cpu`` preset; the last
``VAL`` of them validate and choose ``--indi-steps auto``); NLM and Gaussian denoisers are tuned at training
time on crops of the training slices (the time it takes is ``classical.seconds``). Scored: the held-out rest
of A (after a ``GAP``-slice gap, down to the volume's last slice) and all of B. Rows: plain bicubic (the LQ
upscaled, grey levels mapped by the line fitted on the training pair — the same mapping InDI's input gets),
tuned NLM, tuned Gaussian, one-step, InDI N = 1, InDI at the auto N; PSNR/SSIM over the block and per slice
(the first and last held-out slices included).

Usage::

    MATSIGHT_THREADS=1 python benchmarks/restore_public.py --results benchmarks/results/restore_public.json
    MATSIGHT_THREADS=1 python benchmarks/restore_public.py --steps 40 --out /tmp/rp_smoke   # smoke test

It took 28 min on one thread of a shared 2-core machine (load average ~12; 2000 steps per model).

Done-when (issue "restore: honest baselines"): on A's held-out slices InDI ≥ bicubic + 3 dB and ≥ the tuned
classical denoisers, InDI N = 1 ≥ one-step − 0.3 dB, no held-out slice below bicubic; on B InDI ≥ bicubic.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restore_xct import simulate_pair  # noqa: E402  (the shared LQ simulation)

DATA = Path(__file__).resolve().parent / "data"
MATERIALS = {
    "weave": DATA / "puma_weave" / "small_weave_crop.tif",
    "fiberform": DATA / "puma_fiberform" / "100_fiberform.tif",
}
TRAIN_FRACTION = 0.6
GAP = 4  # slices between the training and the held-out slices
VAL = 8  # the last training slices validate (auto N)


def _threads(default):
    return int(os.environ.get("MATSIGHT_THREADS", default))


def _load(name, cache, seed, dose):
    from matsight.io import read_volume
    from matsight.restore.register import denormalise

    hq = np.asarray(read_volume(MATERIALS[name]), dtype=np.float32)
    pair = simulate_pair(hq, cache, f"{name}_{seed}_{dose:g}", seed=seed, dose=dose, mask=False)
    return pair, denormalise(pair.lq_up, pair.stats["lq"]), denormalise(pair.hq, pair.stats["hq"])


def _train(pair, out, split, args, **extra):
    from matsight.restore import train

    train_idx, val = split
    t0 = time.perf_counter()
    res = train(
        pair,
        out,
        slices=train_idx,
        val_slices=val,
        preset="cpu",
        device="cpu",
        seed=args.seed,
        max_steps=args.steps,
        crop=args.crop,
        val_every=max(1, args.steps // 4),
        **extra,
    )
    return {"steps": res.steps, "seconds": time.perf_counter() - t0, "validation": res.validation}


def _rows(indi, onestep, lq_raw, n_auto):
    """Every row's image (HQ units) of the LQ block ``lq_raw`` (already on the HQ grid)."""
    from matsight.restore.classical import apply_classical
    from matsight.restore.predict import predict
    from matsight.restore.register import denormalise, normalise

    kw = dict(slice_axis=0, upscaled=True, onestep=False, device="cpu")
    images, seconds = {}, {}
    for n in sorted({1, n_auto}):
        t0 = time.perf_counter()
        e = predict(indi, lq_raw, indi_steps=n, **kw)
        seconds[f"InDI N={n}"] = time.perf_counter() - t0
        images.setdefault("plain bicubic", e.bicubic)
        images[f"InDI N={n}"] = e.image
    images["one-step"] = predict(onestep, lq_raw, indi_steps=1, **kw).image
    params, hq_stats = indi[1]["classical"], indi[1]["stats"]["hq"]
    b = normalise(images["plain bicubic"], stats=hq_stats)[0]
    for method, name in (("nlm", "tuned NLM"), ("gaussian", "tuned Gaussian")):
        t0 = time.perf_counter()
        images[name] = denormalise(apply_classical(b, method, params[method]), hq_stats)
        seconds[name] = time.perf_counter() - t0
    order = ["plain bicubic", "tuned NLM", "tuned Gaussian", "one-step", "InDI N=1", f"InDI N={n_auto}"]
    return {k: images[k] for k in order if k in images}, seconds


def _per_slice(hq, images, data_range):
    """PSNR and SSIM of every z slice, and the worst slice's margin over plain bicubic."""
    from skimage.metrics import structural_similarity

    out = {}
    for name, img in images.items():
        psnr, ssim = [], []
        for a, b in zip(img, hq, strict=True):
            mse = float(np.mean((a.astype(np.float64) - b) ** 2))
            psnr.append(10 * np.log10(data_range**2 / max(mse, 1e-12)))
            ssim.append(float(structural_similarity(b, a, data_range=data_range)))
        out[name] = {"psnr": psnr, "ssim": ssim}
    base = np.asarray(out["plain bicubic"]["psnr"])
    for row in out.values():
        d = np.asarray(row["psnr"]) - base
        row.update(
            psnr_min=float(np.min(row["psnr"])),
            psnr_first=row["psnr"][0],
            psnr_last=row["psnr"][-1],
            margin_over_bicubic_min_dB=float(d.min()),
            margin_over_bicubic_first_dB=float(d[0]),
            margin_over_bicubic_last_dB=float(d[-1]),
            slices_below_bicubic=int(np.sum(d < 0)),
        )
    return out


def _score(hq, images):
    from matsight.restore.evaluate import compare

    data_range = float(np.subtract(*np.percentile(hq, [99.5, 0.5])))
    metrics = compare(hq, images, data_range=data_range, sift=False, cnr_erode=1, n_edges=40)
    keep = ("psnr", "ssim", "fwhm_median", "cnr")
    table = {k: {m: v.get(m) for m in keep} for k, v in metrics.items()}
    return table, _per_slice(hq, images, data_range), data_range


def _targets(a, a_slices, b, n_auto):
    indi = f"InDI N={n_auto}"
    classical = max(a["tuned NLM"]["psnr"], a["tuned Gaussian"]["psnr"])
    return {
        "A: InDI - plain bicubic (dB)": a[indi]["psnr"] - a["plain bicubic"]["psnr"],
        "A: InDI - best tuned classical (dB)": a[indi]["psnr"] - classical,
        "A: InDI N=1 - one-step (dB)": a["InDI N=1"]["psnr"] - a["one-step"]["psnr"],
        "A: worst held-out slice, InDI - bicubic (dB)": a_slices[indi]["margin_over_bicubic_min_dB"],
        "B: InDI - plain bicubic (dB)": b[indi]["psnr"] - b["plain bicubic"]["psnr"],
        "B: InDI - one-step (dB)": b[indi]["psnr"] - b["one-step"]["psnr"],
    }


def _met(t):
    v = list(t.values())
    return {
        "A: InDI >= bicubic + 3 dB": bool(v[0] >= 3),
        "A: InDI >= tuned classical": bool(v[1] >= 0),
        "A: InDI N=1 >= one-step - 0.3 dB": bool(v[2] >= -0.3),
        "A: no held-out slice below bicubic": bool(v[3] >= 0),
        "B: InDI >= bicubic": bool(v[4] >= 0),
    }


def _machine(threads):
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def _split(nz):
    n_train = int(round(TRAIN_FRACTION * nz))
    train_idx = np.arange(n_train)
    return train_idx, train_idx[-VAL:], np.arange(n_train + GAP, nz)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/restore_public"))
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "matsight" / "restore_public")
    ap.add_argument("--train-on", default="fiberform", choices=sorted(MATERIALS))
    ap.add_argument("--unseen", default="weave", choices=sorted(MATERIALS))
    ap.add_argument("--steps", type=int, default=2000, help="optimiser steps per model (InDI and one-step)")
    ap.add_argument("--crop", type=int, default=96, help="training crop edge (the slices are 98-142 px)")
    ap.add_argument("--dose", type=float, default=2e4, help="photons per detector pixel and angle")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--results", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)

    import torch

    from matsight.restore import load as load_model

    threads = _threads(1)
    torch.set_num_threads(threads)
    t_all = time.perf_counter()
    pair_a, lq_a, hq_a = _load(args.train_on, args.cache, args.seed, args.dose)
    pair_b, lq_b, hq_b = _load(args.unseen, args.cache, args.seed, args.dose)
    train_idx, val, test = _split(pair_a.hq.shape[0])
    runs = {
        "indi": _train(pair_a, args.out / "indi", (train_idx, val), args),
        "onestep": _train(pair_a, args.out / "onestep", (train_idx, val), args, objective="onestep"),
    }
    print(json.dumps(runs, default=float), flush=True)
    indi = load_model(args.out / "indi", device="cpu")
    onestep = load_model(args.out / "onestep", device="cpu")
    n_auto = int(indi[1]["steps_auto"]["best"])
    # the held-out block is enhanced with its GAP preceding LQ slices, down to the volume's last slice
    img_a, sec_a = _rows(indi, onestep, lq_a[test[0] - GAP :], n_auto)
    img_a = {k: v[GAP:] for k, v in img_a.items()}
    img_b, sec_b = _rows(indi, onestep, lq_b, n_auto)
    table_a, slices_a, range_a = _score(hq_a[test], img_a)
    table_b, slices_b, range_b = _score(hq_b, img_b)
    targets = _targets(table_a, slices_a, table_b, n_auto)
    result = {
        "command": "python benchmarks/restore_public.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "materials": {
            "A (training)": {"name": args.train_on, "file": str(MATERIALS[args.train_on].relative_to(DATA))},
            "B (unseen)": {"name": args.unseen, "file": str(MATERIALS[args.unseen].relative_to(DATA))},
        },
        "pair_shapes": {"A": list(pair_a.hq.shape), "B": list(pair_b.hq.shape)},
        "registration": {
            k: {m: p.transform[m] for m in ("rotation_deg", "shift", "ncc_before", "ncc_after")}
            for k, p in (("A", pair_a), ("B", pair_b))
        },
        "split_A": {
            "train": [int(train_idx[0]), int(train_idx[-1])],
            "validation": [int(val[0]), int(val[-1])],
            "held_out": [int(test[0]), int(test[-1])],
        },
        "dose": args.dose,
        "steps_per_model": args.steps,
        "crop": args.crop,
        "runs": runs,
        "auto_steps": indi[1].get("steps_auto"),
        "classical": indi[1].get("classical"),
        "data_range": {"A": range_a, "B": range_b},
        "A_held_out": table_a,
        "A_held_out_per_slice": slices_a,
        "B_unseen": table_b,
        "B_per_slice_summary": {
            k: {m: v for m, v in row.items() if m not in ("psnr", "ssim")} for k, row in slices_b.items()
        },
        "apply_seconds": {"A": sec_a, "B": sec_b},
        "targets": targets,
        "met": _met(targets),
        "machine": _machine(threads),
        "total_s": time.perf_counter() - t_all,
    }
    text = json.dumps(result, indent=1, default=float)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(text)
    if args.results:
        args.results.write_text(text)
    summary = {
        k: {m: round(v["psnr"], 2) for m, v in t.items() if v["psnr"] is not None}
        for k, t in (("A", table_a), ("B", table_b))
    }
    print(json.dumps({"psnr": summary, "targets": targets, "met": result["met"]}, indent=1, default=float))
    return result


if __name__ == "__main__":
    main()

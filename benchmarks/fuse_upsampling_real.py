"""SuperRes generator upsampling on public real 3D microstructures: transposed conv vs resize vs sub-pixel.

For each real segmented volume from outside this project (``benchmarks/data/*/README.md``: origin, licence):

- the volume is split along z: its first slices are the 3D truth, one slice beyond them (never seen by the
  LR volume) is the HR image, as an SEM image of the same material would be;
- the truth is degraded the paper's way (:func:`matsight.data.degrade.degrade`: per-phase Gaussian blur,
  trilinear downsampling, argmax) at scale 2, 4 and 8;
- each upsampling of the generator (``transpose``: the paper's ConvTranspose3d; ``resize``: trilinear ×2 +
  conv; ``shuffle``: sub-pixel convolution with ICNR initialisation) trains the ``cpu`` preset for the same
  number of iterations on (LR, HR image) and generates the whole SR volume from its best checkpoint. At scale
  2 the paper's chain has no transposed convolution, so ``transpose`` and ``resize`` are one network there
  and it is trained once;
- reported per variant and scale: the FFT orientation ratio (diagonal / axis power at 0.1–0.35 cycles per
  voxel, :func:`matsight.metrics.microstructure.fft_orientation_ratio`; a grid-aligned checkerboard or
  streaks move it away from the material's) of the SR's slices normal to z, y and x vs the HR image's and
  the truth's, LR consistency, interface face fraction vs the HR image's and the truth's, solid volume
  fraction, iterations and seconds per iteration; and the issue's test at ×8 (orientation ratio within 25 %
  of the HR image's in every plane, LR consistency ≥ 95 %, interfaces within 25 % of the HR image's and the
  truth's).

Volumes: ``nmc`` — NREL's calendered NMC cathode, X-ray CT, NMC vs pore+carbon-binder (2 phases);
``fiberform`` — NASA PuMA's FiberForm µCT, grayscale, segmented here by Otsu's threshold (carbon fibres vs
void). One process per volume (they are independent), then ``--collect`` writes the JSON and the figure:

    MATSIGHT_THREADS=1 python benchmarks/fuse_upsampling_real.py --volume nmc --steps 300
    MATSIGHT_THREADS=1 python benchmarks/fuse_upsampling_real.py --volume fiberform --steps 300
    python benchmarks/fuse_upsampling_real.py --collect   # prints the docs' table
    # -> benchmarks/results/fuse_upsampling_real.json, docs/images/fuse_upsampling_real_x8.png

Each run saves its record to ``~/.cache/matsight/fuse_upsampling_real/`` as it ends; ``--scales`` and
``--variants`` run a part (the runs of the same ``--steps`` measured before are kept), e.g.
``--scales 4 --variants shuffle``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from fuse_fidelity import _machine

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "matsight" / "fuse_upsampling_real"
RESULT = HERE / "results" / "fuse_upsampling_real.json"
FIGURE = HERE.parent / "docs" / "images" / "fuse_upsampling_real_x8.png"
SCALES = (8, 4, 2)
VARIANTS = ("transpose", "resize", "shuffle")
PLANES = "ZYX"
# truth: z slices [0, z_truth), y and x [0, yx) (multiples of 8: a whole number of LR voxels at every scale);
# the HR image: slice z_hr, beyond the truth, whole
VOLUMES = {
    "nmc": {
        "path": HERE / "data" / "nrel_nmc" / "nmc-1-cal_am.tif",
        "z_truth": 160,
        "yx": 240,
        "z_hr": 220,
        "phases": {"0": "pore + carbon-binder", "1": "NMC"},
    },
    "fiberform": {
        "path": HERE / "data" / "puma_fiberform" / "100_fiberform.tif",
        "z_truth": 80,
        "yx": 96,
        "z_hr": 92,
        "otsu": True,
        "phases": {"0": "void", "1": "carbon fibre"},
    },
}


def load_volume(name):
    """The volume's labels (uint8, 0/1), its 3D truth and its HR image; and a note on the segmentation."""
    import tifffile

    spec = VOLUMES[name]
    vol = tifffile.imread(spec["path"])
    note = "labels as published"
    if spec.get("otsu"):
        from skimage.filters import threshold_otsu

        t = threshold_otsu(vol)
        vol = vol > t
        note = f"grayscale, segmented by Otsu's threshold ({t} of 0–255) over the whole volume"
    vol = np.asarray(vol, dtype=np.uint8)
    truth = vol[: spec["z_truth"], : spec["yx"], : spec["yx"]]
    return truth, vol[spec["z_hr"]], note


def _figures(labels, *, planes=True):
    """Solid fraction, interface face fraction and orientation ratio (per plane for a volume)."""
    from matsight.metrics.microstructure import fft_orientation_ratio, interfacial_area

    faces = interfacial_area(labels, normalize="faces").get((0, 1), 0.0)
    out = {"solid_fraction": float(labels.mean()), "interface_face_fraction": float(faces)}
    if labels.ndim == 2:
        out["orientation_ratio"] = float(fft_orientation_ratio(labels == 1))
    elif planes:
        out["orientation_ratio"] = {
            p: float(fft_orientation_ratio(labels == 1, slice_axis=a)) for a, p in enumerate(PLANES)
        }
    return out


def _rel(a, b):
    return (a - b) / b


def _judge(sr, hr, truth, consistency):
    """The issue's test: orientation ratio per plane within 25 % of the HR image's, LR consistency ≥ 95 %,
    interfaces within 25 % of the HR image's and the truth's (``met``). ``met_vs_truth`` takes the truth's
    ratio of each plane instead of the HR image's: an anisotropic material (a calendered electrode, a
    fibre felt) has other ratios in the planes that contain its special axis than in the HR image's plane.
    """
    ratio = {p: _rel(v, hr["orientation_ratio"]) for p, v in sr["orientation_ratio"].items()}
    ratio_t = {p: _rel(v, truth["orientation_ratio"][p]) for p, v in sr["orientation_ratio"].items()}
    faces_hr = _rel(sr["interface_face_fraction"], hr["interface_face_fraction"])
    faces_truth = _rel(sr["interface_face_fraction"], truth["interface_face_fraction"])
    rest = consistency >= 0.95 and abs(faces_hr) <= 0.25 and abs(faces_truth) <= 0.25
    return {
        "orientation_ratio_rel_hr": ratio,
        "orientation_ratio_rel_truth": ratio_t,
        "interfaces_rel_hr": faces_hr,
        "interfaces_rel_truth": faces_truth,
        "solid_fraction_minus_truth": sr["solid_fraction"] - truth["solid_fraction"],
        "met": bool(rest and all(abs(v) <= 0.25 for v in ratio.values())),
        "met_vs_truth": bool(rest and all(abs(v) <= 0.25 for v in ratio_t.values())),
    }


def _train_generate(lr, hr, run, *, scale, upsampling, steps, seed):
    from matsight.cli._common import progress_bar
    from matsight.fuse import train
    from matsight.fuse.config import make_config
    from matsight.fuse.predict import predict

    cfg = make_config("cpu", scale=scale, seed=seed, steps=steps, upsampling=upsampling)
    t0 = time.perf_counter()
    with progress_bar(f"train {upsampling} x{scale}") as callback:
        res = train((lr, hr), run, config=cfg, callback=callback, device="cpu")
    train_s = time.perf_counter() - t0
    with progress_bar(f"generate {upsampling} x{scale}") as callback:
        gen = predict(run, lr, seed=seed, callback=callback, device="cpu")  # the best checkpoint
    return res, train_s, gen.labels


def run_case(truth, hr, scale, upsampling, *, steps, seed, tmp):
    """Train one variant at one scale; its figures and the SR's middle z slice."""
    from matsight.data.degrade import degrade
    from matsight.fuse.evaluate import lr_consistency
    from matsight.fuse.predict import border_voxels

    lr, _ = degrade(truth, scale)
    run = Path(tmp) / f"{upsampling}_x{scale}"
    t0 = time.perf_counter()
    res, train_s, sr = _train_generate(
        lr, hr, run, scale=scale, upsampling=upsampling, steps=steps, seed=seed
    )
    shutil.rmtree(run, ignore_errors=True)
    b = border_voxels(scale)
    truth_c = truth[b:-b, b:-b, b:-b]
    assert sr.shape == truth_c.shape, (sr.shape, truth_c.shape)
    consistency = float(lr_consistency(sr, lr, scale=scale)["consistency"])
    figs = _figures(sr)
    record = {
        "iterations": res.iterations,
        "best_iteration": res.best_iteration,
        "seconds_per_iteration": res.seconds_per_iteration,
        "train_seconds": train_s,
        "lr_consistency": consistency,
        **figs,
        "wall_s": time.perf_counter() - t0,
    }
    return record, sr[sr.shape[0] // 2], lr


def _save(name, out, slices, steps, seed):
    # after every run: an interrupted benchmark keeps what it measured
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"{name}.json").write_text(json.dumps({"steps": steps, "seed": seed, **out}, indent=1))
    if len(slices) > 1:
        np.savez_compressed(CACHE / f"{name}_x8_slices.npz", **slices)


def run_volume(name, *, steps, seed, scales=SCALES, variants=VARIANTS):
    """Every scale and variant on one volume; the record and the ×8 slices go to the cache after each run
    (scales measured before with the same steps are kept)."""
    from matsight.data.degrade import degrade
    from matsight.fuse.predict import border_voxels

    truth, hr, note = load_volume(name)
    spec = VOLUMES[name]
    out = {
        "source": str(spec["path"].relative_to(HERE.parent)),
        "segmentation": note,
        "phases": spec["phases"],
        "truth_shape": list(truth.shape),
        "hr_image": {"z": spec["z_hr"], "shape": list(hr.shape), **_figures(hr)},
        "scales": {},
    }
    old = CACHE / f"{name}.json"
    if old.exists() and json.loads(old.read_text()).get("steps") == steps:
        out["scales"] = json.loads(old.read_text())["scales"]
    slices_file = CACHE / f"{name}_x8_slices.npz"
    slices = dict(np.load(slices_file)) if slices_file.exists() and 8 not in scales else {}
    slices["hr"] = hr
    with tempfile.TemporaryDirectory() as tmp:
        for scale in scales:
            b = border_voxels(scale)
            truth_c = truth[b:-b, b:-b, b:-b]
            lr, _ = degrade(truth, scale)
            near = np.repeat(np.repeat(np.repeat(lr, scale, 0), scale, 1), scale, 2)[b:-b, b:-b, b:-b]
            entry = out["scales"].setdefault(str(scale), {})  # variants measured before are kept
            entry.update(lr_shape=list(lr.shape), truth=_figures(truth_c), lr_nearest=_figures(near))
            if scale == 8:
                slices["truth"] = truth_c[truth_c.shape[0] // 2]
                slices["lr_nearest"] = near[near.shape[0] // 2]
            for u in variants:
                if scale <= 2 and u == "resize":
                    entry[u] = {"same_network_as": "transpose"}  # no transposed convolution at sf ≤ 2
                    continue
                rec, mid, _ = run_case(truth, hr, scale, u, steps=steps, seed=seed, tmp=tmp)
                rec["judged"] = _judge(rec, out["hr_image"], entry["truth"], rec["lr_consistency"])
                entry[u] = rec
                if scale == 8:
                    slices[f"sr_{u}"] = mid
                print(name, scale, u, json.dumps(rec["judged"]), flush=True)
                _save(name, out, slices, steps, seed)
    return out


def figure(names, path):
    """One row per volume: HR image, truth, nearest LR and each variant's SR, middle z slice at ×8."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["hr", "truth", "lr_nearest", *(f"sr_{u}" for u in VARIANTS)]
    titles = ["HR image", "3D truth", "LR (nearest)", *(f"SR {u}" for u in VARIANTS)]
    fig, axes = plt.subplots(
        len(names), len(cols), figsize=(2.0 * len(cols), 2.1 * len(names)), squeeze=False
    )
    for row, name in zip(axes, names, strict=True):
        data = np.load(CACHE / f"{name}_x8_slices.npz")
        size = min(data["truth"].shape)
        for ax, key, title in zip(row, cols, titles, strict=True):
            img = data[key][:size, :size] if key in data else np.zeros((size, size))
            ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(title, fontsize=8)
        row[0].set_ylabel(name, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)


def collect(names):
    """The volumes' partial records → one results JSON (with machine info) and the ×8 figure."""
    vols = {n: json.loads((CACHE / f"{n}.json").read_text()) for n in names if (CACHE / f"{n}.json").exists()}
    for v in vols.values():  # re-judged here, so that a change of the test needs no retraining
        for entry in v["scales"].values():
            for rec in entry.values():
                if isinstance(rec, dict) and "lr_consistency" in rec:
                    rec["judged"] = _judge(rec, v["hr_image"], entry["truth"], rec["lr_consistency"])
    steps = {v["steps"] for v in vols.values()}
    record = {
        "benchmark": "fuse_upsampling_real",
        "commands": [
            *(
                f"MATSIGHT_THREADS=1 python benchmarks/fuse_upsampling_real.py --volume {n} --steps {s}"
                for n, s in ((n, v["steps"]) for n, v in vols.items())
            ),
            "python benchmarks/fuse_upsampling_real.py --collect",
        ],
        "steps": sorted(steps),
        "preset": "cpu",
        "machine": _machine(),
        "volumes": vols,
    }
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(record, indent=1))
    figure([n for n in vols if (CACHE / f"{n}_x8_slices.npz").exists()], FIGURE)
    return record


def table(record):
    """The docs' table (markdown): per volume, scale and variant the figures of the issue's test."""
    pct = "{:+.0%}".format
    rows = [
        "| volume | scale | upsampling | orientation ratio Z / Y / X (vs HR image; vs truth) "
        "| LR consistency | interfaces vs HR / truth | solid fraction − truth | s/iteration | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in record["volumes"].items():
        for scale, entry in v["scales"].items():
            for u in VARIANTS:
                rec = entry.get(u)
                if not rec or "judged" not in rec:
                    continue
                j = rec["judged"]
                ratio = " / ".join(f"{rec['orientation_ratio'][p]:.2f}" for p in PLANES)
                vs = " / ".join(pct(j["orientation_ratio_rel_hr"][p]) for p in PLANES)
                vt = " / ".join(pct(j["orientation_ratio_rel_truth"][p]) for p in PLANES)
                met = "yes" if j["met"] else ("vs truth only" if j["met_vs_truth"] else "no")
                rows.append(
                    f"| {name} | ×{scale} | {u} | {ratio} ({vs}; {vt}) | {rec['lr_consistency']:.1%} "
                    f"| {pct(j['interfaces_rel_hr'])} / {pct(j['interfaces_rel_truth'])} "
                    f"| {j['solid_fraction_minus_truth']:+.3f} | {rec['seconds_per_iteration']:.2f} | {met} |"
                )
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--volume", choices=sorted(VOLUMES), help="train and measure on this volume")
    ap.add_argument("--steps", type=int, default=300, help="training iterations of every variant")
    ap.add_argument("--scales", type=int, nargs="+", default=list(SCALES), choices=SCALES)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--collect", action="store_true", help="merge the volumes' records, draw the figure")
    args = ap.parse_args()
    if args.volume:
        run_volume(
            args.volume, steps=args.steps, seed=args.seed, scales=tuple(args.scales), variants=args.variants
        )
    if args.collect:
        print(table(collect(sorted(VOLUMES))))
    if not (args.volume or args.collect):
        ap.error("give --volume NAME and/or --collect")


if __name__ == "__main__":
    main()

"""SuperRes (`matsight fuse`) fidelity on a 3D truth and on the paper's real inputs (CPU preset by default).

``synthetic`` (the issue's yardstick): a 3-phase 3D ground truth from the package's generator (~256³:
particles + binder) → the paper's degradation ×4 with binder merged into pore → train on the LR volume and
ONE HR 2D image (by default a 1024² section of another realisation of the same material, as an SEM
image would be; ``--hr-size 0``: the truth's middle slice), with the CPU preset, for a wall-clock budget
(30 min on 2 cores) → generate the whole SR volume → compare with the truth: |ΔVF|, specific surface area
(face counting), transport efficiency VF/τ per phase and axis (whole volume, steady diffusion solve), TPB
density; plus LR consistency. Targets: |ΔVF| ≤ 0.01, SSA within 5%, transport efficiency within 0.02, TPB
within 10%.

``nmc``, ``sofc``, ``separator``: the real inputs of ``../shared/data/superres/`` (no 3D truth exists): SR
slice statistics vs the HR images and LR consistency (target ≥ 95%), with the fuse evaluation report.

    python benchmarks/fuse_fidelity.py --case synthetic --budget 30m
    python benchmarks/fuse_fidelity.py --case nmc --budget 10m
    python benchmarks/fuse_fidelity.py --case synthetic --preset paper --budget 2h   # on a GPU
    python benchmarks/fuse_fidelity.py --yardsticks-only   # the truth's own figures, no training (3 min)
    python benchmarks/fuse_fidelity.py --case separator --yardsticks-only   # the data's own agreement (2 min)

Results: ``benchmarks/results/fuse_fidelity_<case>.json`` and the report folder
``benchmarks/results/fuse_fidelity_<case>/`` (index.html, figures, training curves). The synthetic case also
records yardsticks that need no training: the active phase of the LR interpolated (nearest, cubic), the truth
with its thin binder films between particles turned into active material, and the truth's own voxel-wise loss.
The separator case records whether the HR images' lamellae agree with the LR's and how far lamellae may move
before the LR material recall drops.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "superres"
TARGETS = {"abs_dvf": 0.01, "rel_ssa": 0.05, "abs_dte": 0.02, "rel_tpb": 0.10, "lr_consistency": 0.95}


def _machine():
    import torch

    return {
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def _structure(labels, *, phases, tortuosity=True):
    from matsight.metrics.microstructure import specific_surface_area, triple_phase_boundary, volume_fraction
    from matsight.metrics.tortuosity import tortuosity as tau

    out = {
        "volume_fraction": {p: float(v) for p, v in volume_fraction(labels, phases=phases).items()},
        "ssa": {p: float(specific_surface_area(labels, phase=p)) for p in phases},
        "tpb": float(triple_phase_boundary(labels)) if len(phases) >= 3 else None,
        "transport_efficiency": {},
    }
    if tortuosity:
        import warnings

        for p in phases:
            for ax in range(3):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a non-percolating phase: τ = inf, TE = 0
                    r = tau(labels, phase=p, axis=ax)
                te = float(r.transport_efficiency) if np.isfinite(r.transport_efficiency) else 0.0
                out["transport_efficiency"][f"{p}/{ax}"] = te
    return out


def _train_generate(
    lr, hr, run, *, budget, seed, preset="cpu", hr_y=None, hr_z=None, settings=None, checkpoint="best", **kw
):
    from matsight.cli._common import progress_bar
    from matsight.fuse import train
    from matsight.fuse.config import make_config
    from matsight.fuse.predict import predict as generate
    from matsight.fuse.run import LAST

    cfg = make_config(preset, seed=seed, settings=settings, **kw)
    t0 = time.perf_counter()
    hr_in = hr if hr_y is None else {"x": hr, "y": hr_y, "z": hr_z}
    with progress_bar("fuse train") as callback:  # the budget alone bounds the run (no step limit)
        res = train(
            (lr, hr_in),
            run,
            config=cfg.updated({"steps": None}),
            budget=budget,
            callback=callback,
            device="cpu",
        )
    train_s = time.perf_counter() - t0
    # the run folder gives the best checkpoint (the paper's stopping rule); "last": what longer training does
    with progress_bar("fuse generate") as callback:
        gen = generate(
            run / LAST if checkpoint == "last" else run, lr, seed=seed, callback=callback, device="cpu"
        )
    return res, train_s, gen


def _fidelity(m_sr, m_truth, phases):
    # the issue's figures of an SR volume against the truth, from two `_structure` records
    return {
        "abs_delta_vf": {p: abs(m_sr["volume_fraction"][p] - m_truth["volume_fraction"][p]) for p in phases},
        "rel_delta_ssa": {p: (m_sr["ssa"][p] - m_truth["ssa"][p]) / m_truth["ssa"][p] for p in phases},
        "delta_transport_efficiency": {
            k: m_sr["transport_efficiency"][k] - v for k, v in m_truth["transport_efficiency"].items()
        },
        "rel_delta_tpb": (m_sr["tpb"] - m_truth["tpb"]) / m_truth["tpb"],
    }


def _slice_vf_sd(truth, phases):
    # how far one HR slice's phase fractions stray from the volume's: sd over the truth's z slices
    from matsight.metrics.microstructure import volume_fraction

    vf = np.array([list(volume_fraction(sl, phases=phases).values()) for sl in truth])
    return {p: float(v) for p, v in zip(phases, vf.std(0), strict=True)}


def _interpolation_baselines(lr, truth_c, b, scale=4):
    # what plain upsampling of the LR volume gives for the phase it shows (active): the yardstick for what
    # the GAN adds beyond the LR's own shapes (nearest = LR blocks; cubic = smooth interpolation at 0.5)
    from matsight.restore.register import upscale

    active = (np.asarray(lr) == 1).astype(np.float32)
    ups = {
        "nearest": upscale(active, scale, order=0) > 0.5,
        "cubic": upscale(active, scale, order=3) > 0.5,
    }
    crop = (slice(b, -b or None),) * 3
    out = {"truth": _structure((truth_c == 1).astype(np.uint8), phases=[1])}
    for name, vol in ups.items():
        out[name] = _structure(vol[crop].astype(np.uint8), phases=[1])
    return out


def _separator_yardsticks(lr, rods, scale=4):
    # (1) do the LR lamellae and the HR images' lamellae agree? The HR rods images with their fibrils (thin
    # horizontal lines) opened away by a vertical line of 9 px, against the LR material (lamellae only).
    # (2) how much lamella displacement the LR material recall tolerates: recall of the LR upsampled
    # smoothly (linear interpolation cut at 0.5), of that thinned by 1 and 2 voxels, and shifted by 2 voxels
    # across the lamellae (axis 2)
    from scipy import ndimage as ndi

    from matsight.fuse.evaluate import lr_consistency
    from matsight.metrics.microstructure import chord_length_distribution
    from matsight.restore.register import upscale

    def mean_chord(mask):  # across the lamellae, chords cut by the image edges included
        chords = chord_length_distribution(mask.astype(np.uint8), 1, axis=2, trim_edges=False).chords
        return float(chords.mean())

    lamellae = np.stack([ndi.binary_opening(im > 0, structure=np.ones((9, 1), bool)) for im in rods])
    b = int(np.ceil(scale))
    up = (upscale((np.asarray(lr) > 0).astype(np.float32), scale, order=1) > 0.5)[b:-b, b:-b, b:-b]
    variants = {
        "smooth_upsampling": up,
        "thinned_1_voxel": ndi.binary_erosion(up, iterations=1),
        "thinned_2_voxels": ndi.binary_erosion(up, iterations=2),
        "shifted_2_voxels_across": np.roll(up, 2, axis=2),
    }
    return {
        "hr_lamellae_volume_fraction": float(lamellae.mean()),
        "lr_material_volume_fraction": float((np.asarray(lr) > 0).mean()),
        "hr_lamella_mean_chord_across_px": mean_chord(lamellae),
        "lr_lamella_mean_chord_across_px": mean_chord(np.asarray(lr) > 0) * scale,
        "lr_material_recall": {
            k: float(lr_consistency(v.astype(np.uint8), lr, scale=scale)["per_phase"][1])
            for k, v in variants.items()
        },
    }


def _binder_seams(labels, *, active=1, binder=2, max_gap=2):
    # binder voxels in runs of 1..max_gap along an axis with active material at both ends: the thin films
    # that keep neighbouring particles apart (invisible in the LR, where binder is merged into pore)
    a, b = labels == active, labels == binder
    seams = np.zeros_like(b)
    for ax in range(3):
        A, B, S = (np.moveaxis(v, ax, 0) for v in (a, b, seams))  # views: writing S writes seams
        n = A.shape[0]
        for g in range(1, max_gap + 1):
            run = A[: n - g - 1] & A[g + 1 :]
            for k in range(1, g + 1):
                run = run & B[k : n - g - 1 + k]
            for k in range(1, g + 1):
                S[k : n - g - 1 + k] |= run
    return seams


def _seam_stats(labels, seams=None):
    seams = _binder_seams(labels) if seams is None else seams
    return {
        "seam_share_of_binder": float(seams.sum() / max((labels == 2).sum(), 1)),
        "seam_volume_fraction": float(seams.mean()),
    }


def _euler_per_kpx(labels, phases=(0, 1, 2)):
    # 2D grains minus holes per 1000 pixels, the mean over slices of the three planes (or of the one image):
    # what a 2D image shows of whether a phase is cut into grains or joined by necks
    from matsight.metrics.microstructure import euler_density

    axes = range(3) if labels.ndim == 3 else [None]
    return {p: 1000 * float(np.mean([euler_density(labels, p, slice_axis=a) for a in axes])) for p in phases}


def _seams_filled(truth_c):
    # the truth with its binder seams turned into active material: how much of the active phase's transport
    # those films alone hold back (compare the SR's active transport efficiency)
    seams = _binder_seams(truth_c)
    filled = np.where(seams, 1, truth_c).astype(np.uint8)
    return {
        **_seam_stats(truth_c, seams),
        "active": _structure((filled == 1).astype(np.uint8), phases=[1]),
        "euler_per_kpx": _euler_per_kpx(filled),
    }


def _truth_voxelwise_loss(truth, lr, *, n_crops=64, seed=0):
    # the paper's voxel-wise loss of the true structure itself, on training-size crops, with the in-painted
    # binder added to pore (how the LR was made) and left out (the reference code): a loss the truth violates
    # pulls the SR away from it
    import torch

    from matsight.fuse.config import make_config
    from matsight.fuse.data import one_hot
    from matsight.fuse.losses import voxelwise_loss

    rng = np.random.default_rng(seed)
    t1h = one_hot(torch.from_numpy(truth.astype(np.int64))[None], 3)
    l1h = one_hot(torch.from_numpy(lr.astype(np.int64))[None], 2)
    out = {}
    for rule in ("pore", "drop"):
        cfg = make_config("cpu", scale=4, n_hr_phases=3, n_lr_phases=2, compare_phases=[1], vw_unseen=rule)
        c, o = cfg.lr_crop, cfg.training.output_size
        losses = []
        for z, y, x in rng.integers(0, lr.shape[0] - c + 1, (n_crops, 3)):
            sr = t1h[:, :, 4 * z : 4 * z + o, 4 * y : 4 * y + o, 4 * x : 4 * x + o]
            lo = l1h[:, :, z : z + c, y : y + c, x : x + c]
            losses.append(float(voxelwise_loss(sr, lo, channels=cfg.lr_channels, d=cfg.d)))
        out[rule] = {
            "median": float(np.median(losses)),
            "share_above_threshold": float(np.mean(np.array(losses) > cfg.training.vw_threshold)),
        }
    return out


def _truth_and_lr(args):
    from matsight.data.degrade import degrade
    from matsight.data.microstructures import particle_electrode

    n = args.size
    truth = particle_electrode((n, n, n), seed=args.seed)
    lr, groups = degrade(truth, 4, merge=[(0, 2)])
    return truth, lr, groups


def _hr_section(hr_size, seed):
    # one HR 2D section of the same material, as an SEM image is: wider than the volume's slices, as a
    # single 256² slice's phase fractions scatter by ±0.035 (sd over the truth's slices) around the
    # volume's, more than the |ΔVF| ≤ 0.01 target; a 1024² section scatters by ~0.009
    from matsight.data.microstructures import particle_electrode

    return particle_electrode((48, hr_size, hr_size), seed=seed + 1)[24]


def _yardsticks(truth, lr, truth_c, b, seed):
    # what the truth and plain interpolation give, independent of any training
    return {
        "active_phase_by_interpolating_lr": _interpolation_baselines(lr, truth_c, b),
        "truth_with_binder_seams_filled": _seams_filled(truth_c),
        "truth_voxelwise_loss": _truth_voxelwise_loss(truth, lr, seed=seed),
    }


def yardsticks(args):
    """The synthetic case's yardsticks alone (no training): a few minutes."""
    truth, lr, _ = _truth_and_lr(args)
    b = 4  # the SR volume's crop: one LR voxel per face
    return _yardsticks(truth, lr, truth[b:-b, b:-b, b:-b], b, args.seed)


def synthetic(args, out):
    from matsight.fuse.evaluate import evaluate, lr_consistency
    from matsight.metrics.microstructure import volume_fraction

    truth, lr, groups = _truth_and_lr(args)
    n = args.size
    if args.hr_size:
        hr = _hr_section(args.hr_size, args.seed)
    else:
        hr = truth[n // 2]  # the middle slice of the truth itself
    res, train_s, gen = _train_generate(
        lr,
        hr,
        out / "run",
        budget=args.budget,
        seed=args.seed,
        preset=args.preset,
        scale=4,
        settings=args.overrides,
        checkpoint=args.checkpoint,
    )
    sr = gen.labels
    b = (truth.shape[0] - sr.shape[0]) // 2
    truth_c = truth[b:-b, b:-b, b:-b] if b else truth
    phases = [0, 1, 2]
    t0 = time.perf_counter()
    m_truth = _structure(truth_c, phases=phases)
    m_sr = _structure(sr, phases=phases)
    metrics_s = time.perf_counter() - t0
    cons = lr_consistency(sr, lr, scale=4, mode="resolve", compare_phases=[1])
    fid = {**_fidelity(m_sr, m_truth, phases), "lr_consistency": float(cons["consistency"])}
    passed = {
        "abs_dvf": max(fid["abs_delta_vf"].values()) <= TARGETS["abs_dvf"],
        "rel_ssa": max(abs(v) for v in fid["rel_delta_ssa"].values()) <= TARGETS["rel_ssa"],
        "abs_dte": max(abs(v) for v in fid["delta_transport_efficiency"].values()) <= TARGETS["abs_dte"],
        "rel_tpb": abs(fid["rel_delta_tpb"]) <= TARGETS["rel_tpb"],
    }
    evaluate(
        sr,
        hr=hr,
        lr=lr,
        truth=truth,
        scale=4,
        compare_phases=[1],
        out_dir=out / "report",
        n_subvolumes=64,
        n_transport=4,
        seed=args.seed,
        phase_names={0: "pore", 1: "active", 2: "binder"},
    )
    return {
        "hr_source": f"independent {args.hr_size}² section" if args.hr_size else "middle slice of the truth",
        "hr_volume_fraction": {p: float(v) for p, v in volume_fraction(hr, phases=phases).items()},
        "truth_slice_vf_sd": _slice_vf_sd(truth, phases),
        "truth_shape": list(truth.shape),
        "lr_shape": list(lr.shape),
        "lr_phases": groups,
        "sr_shape": list(sr.shape),
        "train": {
            "iterations": res.iterations,
            "seconds": train_s,
            "seconds_per_iteration": res.seconds_per_iteration,
            "best_iteration": res.best_iteration,
        },
        "generate": {"seconds": gen.seconds, "voxels_per_second": gen.voxels_per_second},
        "metrics_seconds": metrics_s,
        **_yardsticks(truth, lr, truth_c, b, args.seed),
        "sr_binder_seams": _seam_stats(sr),
        "euler_per_kpx": {
            "HR": _euler_per_kpx(hr),
            "truth": _euler_per_kpx(truth_c),
            "SR": _euler_per_kpx(sr),
        },
        "truth": m_truth,
        "sr": m_sr,
        "fidelity": fid,
        "targets": TARGETS,
        "passed": passed,
    }


REAL = {
    "nmc": dict(lr="nmc_lr.tif", hr="nmc_hr.tif", scale=4, mode="resolve", compare_phases=[1]),
    "sofc": dict(lr="sofc_lr.tif", hr="sofc_hr.tif", scale=4, mode="sample", compare_phases=[1, 2]),
    "separator": dict(
        lr="separator_lr.tif",
        # the LR's slices normal to x cut through the lamellae's planes (speckles); normal to y and z they
        # cut across them (rods) — the paper's `-d_image_path rods rods speckles` is in axis order 0, 1, 2
        hr="separator_hr_speckles.tif",
        hr_y="separator_hr_rods.tif",
        hr_z="separator_hr_rods.tif",
        scale=4,
        mode="resolve",
        anisotropic=True,
        material_only_loss=True,
    ),
}


def real(args, out):
    from matsight.fuse.evaluate import evaluate
    from matsight.io import read_labels

    spec = dict(REAL[args.case])
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: the real SuperRes inputs live in ../shared/data/superres/")
    lr = read_labels(DATA / spec.pop("lr"))
    hr = read_labels(DATA / spec.pop("hr"))
    hr_y = read_labels(DATA / spec.pop("hr_y")) if "hr_y" in spec else None
    hr_z = read_labels(DATA / spec.pop("hr_z")) if "hr_z" in spec else None
    res, train_s, gen = _train_generate(
        lr,
        hr,
        out / "run",
        budget=args.budget,
        seed=args.seed,
        preset=args.preset,
        hr_y=hr_y,
        hr_z=hr_z,
        settings=args.overrides,
        checkpoint=args.checkpoint,
        **spec,
    )
    ev = evaluate(
        gen.labels,
        hr=hr,
        hr_y=hr_y,
        hr_z=hr_z,
        lr=lr,
        scale=spec["scale"],
        mode=spec["mode"],
        compare_phases=spec.get("compare_phases"),
        out_dir=out / "report",
        n_subvolumes=64,
        n_transport=4,
        seed=args.seed,
    )
    cons = float(ev["lr_consistency"]["consistency"])
    recall = {str(k): float(v) for k, v in ev["lr_consistency"]["per_phase"].items()}
    # separator mode (paper): the LR volume holds only the lamellae and the SR adds fibrils in its pore, so
    # only the LR material has to be reproduced; elsewhere every LR voxel counts
    judged = min(v for k, v in recall.items() if k != "0") if spec.get("material_only_loss") else cons
    return {
        "lr_shape": list(lr.shape),
        "sr_shape": list(gen.labels.shape),
        "train": {"iterations": res.iterations, "seconds": train_s, "best_iteration": res.best_iteration},
        "generate": {"seconds": gen.seconds, "voxels_per_second": gen.voxels_per_second},
        "volume_fraction": {k: v["volume_fraction"] for k, v in ev["whole"].items()},
        "interface_face_fraction": {k: v.get("interface_face_fraction") for k, v in ev["whole"].items()},
        "planes": ev["planes"],
        "lr_consistency": cons,
        "lr_recall_per_phase": recall,
        "lr_consistency_judged": "LR material recall" if spec.get("material_only_loss") else "all LR voxels",
        "passed": {"lr_consistency": judged >= TARGETS["lr_consistency"]},
        **({"yardsticks": _separator_yardsticks(lr, hr_z)} if args.case == "separator" else {}),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=["synthetic", *REAL], default="synthetic")
    ap.add_argument("--budget", default="30m", help="training wall-clock budget (e.g. 30m)")
    ap.add_argument("--size", type=int, default=256, help="synthetic truth edge (voxels)")
    ap.add_argument(
        "--hr-size",
        type=int,
        default=1024,
        help="synthetic: edge of the HR 2D section drawn from the same process (0: the truth's middle slice)",
    )
    ap.add_argument(
        "--preset",
        choices=["cpu", "paper"],
        default="cpu",
        help="network sizes: cpu (the default, 2 cores) or paper (the reference widths, for a GPU)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument(
        "--yardsticks-only",
        action="store_true",
        help="only the figures that need no training (fuse_fidelity_<case>_yardsticks.json): synthetic, the "
        "truth's and the interpolations'; separator, the HR lamellae vs the LR and the recall's tolerance",
    )
    ap.add_argument(
        "--checkpoint",
        choices=["best", "last"],
        default="best",
        help="generate from the best checkpoint (the paper's stopping rule) or the last one",
    )
    ap.add_argument(
        "--keep-run", action="store_true", help="keep the run folder (checkpoints) after the benchmark"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset setting (JSON value), e.g. --set lr=0.0003 --set g_every=2",
    )
    args = ap.parse_args()
    args.overrides = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.set)}
    if args.yardsticks_only:
        if args.case not in ("synthetic", "separator"):
            ap.error("--yardsticks-only needs --case synthetic or separator")
        t0 = time.perf_counter()
        if args.case == "synthetic":
            command, result = f" --size {args.size} --seed {args.seed}", yardsticks(args)
        else:
            from matsight.io import read_labels

            lr, rods = (read_labels(DATA / REAL["separator"][k]) for k in ("lr", "hr_z"))
            command, result = " --case separator", _separator_yardsticks(lr, rods)
        record = {
            "benchmark": "fuse_fidelity",
            "case": f"{args.case} yardsticks",
            "command": "python benchmarks/fuse_fidelity.py --yardsticks-only" + command,
            **result,
        }
        record["wall_s"] = time.perf_counter() - t0
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / f"fuse_fidelity_{args.case}_yardsticks.json").write_text(json.dumps(record, indent=1))
        print(json.dumps(record, indent=1))
        return
    out = args.out / f"fuse_fidelity_{args.case}"
    if (out / "run").exists():
        shutil.rmtree(out / "run")  # a benchmark trains from scratch
    out.mkdir(parents=True, exist_ok=True)
    machine = _machine()
    t0 = time.perf_counter()
    result = synthetic(args, out) if args.case == "synthetic" else real(args, out)
    machine["load_average_at_end"] = list(os.getloadavg())
    record = {
        "benchmark": "fuse_fidelity",
        "case": args.case,
        "command": f"python benchmarks/fuse_fidelity.py --case {args.case} --budget {args.budget}"
        + (f" --size {args.size} --hr-size {args.hr_size}" if args.case == "synthetic" else "")
        + (f" --preset {args.preset}" if args.preset != "cpu" else "")
        + (f" --checkpoint {args.checkpoint}" if args.checkpoint != "best" else "")
        + "".join(f" --set {item}" for item in args.set),
        "preset": args.preset,
        "overrides": args.overrides,
        "budget": args.budget,
        "checkpoint": args.checkpoint,
        "machine": machine,
        "wall_s": time.perf_counter() - t0,
        **result,
    }
    (args.out / f"fuse_fidelity_{args.case}.json").write_text(json.dumps(record, indent=1, default=str))
    for name in ("training_curves.png", "metrics.csv", "config.json"):  # keep the run's curves and settings
        if (out / "run" / name).is_file():
            shutil.copy2(out / "run" / name, out / name)
    if not args.keep_run:
        shutil.rmtree(out / "run", ignore_errors=True)  # checkpoints are not results; figures and report stay
    print(json.dumps({k: record[k] for k in ("case", "wall_s", "passed")}, default=str))
    if "fidelity" in record:
        print(json.dumps(record["fidelity"], indent=1, default=str))


if __name__ == "__main__":
    main()

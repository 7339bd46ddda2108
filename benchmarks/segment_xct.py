"""The InDI paper's segmentation experiment on real X-ray CT: segment one LQ slice vs the same slice enhanced.

The nano-tomography paper trains the same segmenter on one LQ slice and on the InDI-enhanced slice and shows
that the enhanced slice segments better (Fig. 3B). Here, on the Li-ion cell XCT slices in
``../shared/data/xct/``:

1. HQ = ``cell_slice_1.tif`` (test) and ``cell_slice_2.tif`` (InDI training). Reference labels of the
   HQ test slice: 3-class multi-Otsu on the lightly smoothed HQ (σ = 1 px), regions under 20 px merged away.
2. LQ = :func:`matsight.restore.pairs.simulate_lq` (2× voxels, sparse angles, photon noise, misalignment),
   put back on the HQ grid and registered by :func:`matsight.restore.register.prepare_pair` (bicubic ×2,
   rigid).
3. InDI: a :mod:`matsight.restore` model trained on the pair of ``cell_slice_2`` (CPU preset, ``--budget``
   seconds), or a given ``--restore-model``; the LQ test slice is enhanced with ``--steps`` sampling steps.
4. The same segmenter (``--method forest`` from strokes, or ``unet``) is trained on LQ, on InDI-enhanced
   and on HQ with the SAME labels — strokes drawn from the HQ reference (``--protocol strokes``), or dense
   reference labels of the top half (``--protocol half``, the paper's one-labelled-slice setting; scored on
   the bottom half) — and Dice / IoU against the HQ reference labels are computed inside the field of view.

    python benchmarks/segment_xct.py          # -> benchmarks/results/segment_xct.json + /tmp/segment_xct/
    python benchmarks/segment_xct.py --budget 1200 --protocol half --method unet
    python benchmarks/segment_xct.py --restore-model runs/indi    # reuse a trained InDI model
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

RESULTS = Path(__file__).resolve().parent / "results" / "segment_xct.json"
DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "xct"
PHASES = {0: "dark (void)", 1: "mid (separator/gap)", 2: "bright (electrode)"}


def reference_labels(hq):
    """3-class multi-Otsu on the HQ slice smoothed by σ = 1 px; regions < 20 px merged into neighbours."""
    from skimage.filters import threshold_multiotsu

    from matsight.segment.predict import clean_labels

    g = ndi.gaussian_filter(hq.astype(np.float32), 1.0)
    lab = np.digitize(g, threshold_multiotsu(g, classes=3)).astype(np.uint8)
    return clean_labels(lab, min_size=20)


def make_pair(hq, seed):
    from matsight.restore.pairs import simulate_lq
    from matsight.restore.register import prepare_pair

    lq = simulate_lq(hq.astype(np.float32), scale=2, seed=seed)
    return lq, prepare_pair(lq, hq.astype(np.float32), scale=2, mask=True)


def crop_of(pair):
    return tuple(slice(a, b) for a, b in pair.transform["crop"])


def get_indi(args, train_hq, log):
    """(net, info): a trained restore model, or (None, reason) when matsight.restore is not usable."""
    try:
        from matsight.restore.train import load_model
        from matsight.restore.train import train as restore_train
    except ImportError as exc:  # restore is written in parallel; the rest of the benchmark still runs
        return None, f"matsight.restore unavailable ({exc})"
    if args.restore_model:
        net, meta = load_model(args.restore_model)
        return net, {"model": str(args.restore_model), "trained_here": False}
    _, pair = make_pair(train_hq, seed=args.seed + 101)
    out = Path(args.out) / "indi_model"
    t0 = time.perf_counter()
    res = restore_train(pair, out, preset="cpu", budget_s=args.budget, seed=args.seed, resume=False)
    log(f"InDI trained: {res.steps} steps in {res.elapsed_s:.0f} s -> {res.model_dir}")
    net, meta = load_model(res.model_dir)
    return net, {
        "model": str(res.model_dir),
        "trained_here": True,
        "steps": int(res.steps),
        "train_seconds": round(time.perf_counter() - t0, 1),
        "validation": res.validation,
    }


def training_labels(ref, fov, protocol, seed):
    """(labels for training (0 = unlabelled, k = phase k-1), evaluation mask)."""
    from matsight.segment.synthetic import draw_strokes

    if protocol == "strokes":
        strokes = draw_strokes(ref, strokes_per_phase=8, length=30, margin=2, seed=seed)
        strokes[~fov] = 0
        return strokes, fov & (strokes == 0)
    top = np.zeros(ref.shape, bool)
    top[: ref.shape[0] // 2] = True
    dense = np.where(top & fov, ref + 1, 0).astype(np.uint8)
    return dense, fov & ~top


def segment_and_score(name, image, labels, ref, evaluate, args):
    from matsight.segment import SegmentConfig, predict, train
    from matsight.segment import evaluate as score

    training = {"seed": args.seed, "holdout": 0.2}
    if args.method == "unet":
        # one fit on all training labels (no held-out strokes and refit): the score that matters is vs HQ
        training.update(steps=args.unet_steps, crop=128, holdout=0.0)
    config = SegmentConfig(model={"method": args.method}, training=training)
    t0 = time.perf_counter()
    model = train((image, labels), None, config=config)
    pred = predict(model, image)
    s = score(pred, ref, phases=[0, 1, 2], mask=evaluate)
    s["train_apply_seconds"] = round(time.perf_counter() - t0, 1)
    s["heldout_stroke_scores"] = {
        k: model.scores.get(k) for k in ("pixel_accuracy", "mean_dice", "holdout_unit")
    }
    return pred, s


def figure(images, preds, ref, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(images)
    fig, ax = plt.subplots(2, len(names) + 1, figsize=(4 * (len(names) + 1), 8))
    h, w = ref.shape
    win = (slice(h // 4, h // 4 + 192), slice(w // 4, w // 4 + 192))  # a zoom: the spiral layers
    for i, n in enumerate(names):
        ax[0, i].imshow(images[n][win], cmap="gray")
        ax[0, i].set_title(n)
        ax[1, i].imshow(preds[n][win], vmin=0, vmax=2, interpolation="nearest")
        ax[1, i].set_title(f"{n}: segmentation")
    ax[0, -1].axis("off")
    ax[1, -1].imshow(ref[win], vmin=0, vmax=2, interpolation="nearest")
    ax[1, -1].set_title("HQ reference labels")
    for a in ax.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=Path("/tmp/segment_xct"))
    p.add_argument("--method", choices=("forest", "unet"), default="forest")
    p.add_argument("--protocol", choices=("strokes", "half"), default="strokes")
    p.add_argument("--budget", type=float, default=600.0, help="InDI training budget in seconds (CPU preset)")
    p.add_argument("--restore-model", type=Path, default=None)
    p.add_argument("--no-indi", action="store_true", help="skip the InDI row (LQ and HQ only)")
    p.add_argument("--steps", type=int, default=8, help="InDI sampling steps")
    p.add_argument("--unet-steps", "--unet-iterations", dest="unet_steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import tifffile
    import torch

    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(f"[segment_xct] {msg}", flush=True)

    hq_test = tifffile.imread(args.data / "cell_slice_1.tif")
    hq_train = tifffile.imread(args.data / "cell_slice_2.tif")
    _, pair = make_pair(hq_test, seed=args.seed)
    c = crop_of(pair)
    hq = pair.hq  # HQ test slice, cropped to the registered region, normalised to [-1, 1]
    lq_up = pair.lq_up
    fov = pair.mask if pair.mask is not None else np.ones(hq.shape, bool)
    ref = reference_labels(hq_test.astype(np.float32))[c]
    log(
        f"test slice {hq.shape}, registration NCC {pair.transform['ncc_before']:.3f} -> "
        f"{pair.transform['ncc_after']:.3f}; "
        f"reference fractions {np.round(np.bincount(ref[fov], minlength=3) / fov.sum(), 3)}"
    )

    images = {"LQ (bicubic ×2, registered)": lq_up}
    net, indi_info = (None, "skipped (--no-indi)") if args.no_indi else get_indi(args, hq_train, log)
    if net is not None:
        from matsight.restore.indi import sample_image

        t0 = time.perf_counter()
        images[f"InDI ({args.steps} steps)"] = sample_image(net, lq_up, steps=args.steps, seed=args.seed)
        indi_info["enhance_seconds"] = round(time.perf_counter() - t0, 1)
    else:
        log(f"InDI skipped: {indi_info}")
    images["HQ"] = hq

    labels, evaluate = training_labels(ref, fov, args.protocol, args.seed)
    log(f"protocol {args.protocol}: {(labels > 0).sum()} labelled px, {evaluate.sum()} px scored")
    preds, scores = {}, {}
    for name, img in images.items():
        preds[name], scores[name] = segment_and_score(name, img, labels, ref, evaluate, args)
        per = ", ".join(
            f"{PHASES[k].split()[0]} {v['dice']:.3f}" for k, v in scores[name]["per_phase"].items()
        )
        log(f"{name:32s} mean Dice {scores[name]['mean_dice']:.3f}  ({per})")

    from matsight.metrics.image_quality import psnr

    # PSNR inside the field of view (the mask form: psnr needs images, not the flattened FOV pixels)
    quality = {n: float(psnr(hq, im, data_range=2.0, mask=fov)) for n, im in images.items() if n != "HQ"}
    figure(images, preds, ref, args.out / "segment_xct.png")
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "method": args.method,
        "protocol": args.protocol,
        "seed": args.seed,
        "indi": indi_info,
        "psnr_vs_hq": quality,
        "scores": scores,
        "machine": f"{platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}",
        "note": "timings measured on a shared 2-core CPU under contention",
        "figure": str(args.out / "segment_xct.png"),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"results -> {args.results}; figure -> {args.out / 'segment_xct.png'}")
    return result


if __name__ == "__main__":
    main()

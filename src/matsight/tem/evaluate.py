"""How well the method works: the spot detectors on held-out synthetic FFTs, phase identification on frames.

- :func:`evaluate` — both spot detectors on *held-out* synthetic frames (seeds never used in training),
  scored with :mod:`matsight.metrics.segmentation` at the pixel level (Dice, IoU, precision, recall,
  Hausdorff) and at the spot level (a detection within 2 px of a reflection).
- :func:`evaluate_phase_id` — phase-level precision / recall / F1 of :func:`~matsight.tem.predict.analyze` on
  frames whose phases are known (per dose and frame kind), the d error of every matched spot and the IoU of
  the phase maps (``benchmarks/tem_phase_id.py``).
"""

import math
import time

import numpy as np

from .._errors import InputError
from ..metrics import segmentation as seg
from ..progress import report
from .config import make_config
from .crystals import load_phases
from .detector import detect_spots_unet, unet_spot_mask
from .predict import analyze
from .spots import detect_spots, radial_background
from .train import TEST_SEED, make_data, synthetic_sample

__all__ = ["evaluate", "evaluate_phase_id", "d_error_stats", "phase_scores"]


def _spot_level(table, li, tol=2.0):
    """Spot-level TP/FP/FN: detections (both Friedel mates) vs visible reflections (one per pair)."""
    vis = li.visible_spots()
    allg = np.array([(s["row"], s["col"]) for s in li.spots]) if li.spots else np.zeros((0, 2))
    det = np.column_stack([table.row, table.col]) if len(table) else np.zeros((0, 2))
    # a detection is a pair; compare it and its mate with every reflection
    det_all = np.concatenate([det, np.column_stack([table.mate_row, table.mate_col])]) if len(table) else det
    fp = 0
    for r, c in det:
        if allg.size == 0 or np.hypot(allg[:, 0] - r, allg[:, 1] - c).min() > tol:
            fp += 1
    tp_vis = 0
    for s in vis:
        if det_all.size and np.hypot(det_all[:, 0] - s["row"], det_all[:, 1] - s["col"]).min() <= tol:
            tp_vis += 1
    tp_det = len(det) - fp
    return tp_det, fp, tp_vis, len(vis) - tp_vis


def _detect(det, S, ps, det_cfg, weights, threshold):
    """``(spot table, pixel mask, valid annulus or None)`` of one detector on spectrum ``S``."""
    d_min, d_max = det_cfg.d_min, det_cfg.d_max
    if det == "classical":
        tab = detect_spots(None, ps, spectrum=S, d_min=d_min, d_max=d_max)
        return tab, tab.regions > 0, None
    if det == "unet":
        # pixel scores: the network's mask; spot scores: the full detector (significance, streaks)
        mask, bg = unet_spot_mask(S, ps, d_min=d_min, d_max=d_max, weights=weights, threshold=threshold)
        tab = detect_spots_unet(
            None, ps, spectrum=S, d_min=d_min, d_max=d_max, weights=weights, threshold=threshold
        )
        return tab, mask, bg.valid
    raise InputError(f"unknown detector {det!r}; use classical or unet")


def _score_frame(res, sample, detectors, det_cfg, weights, threshold):
    """Add one held-out frame's pixel and spot counts of every detector to ``res``."""
    li, S, ps = sample["lattice"], sample["spectrum"], sample["params"]["pixel_size_nm"]
    full_valid = None
    for det in detectors:
        t = time.perf_counter()
        tab, mask, valid = _detect(det, S, ps, det_cfg, weights, threshold)
        full_valid = valid if valid is not None else full_valid
        res[det]["seconds"] += time.perf_counter() - t
        if full_valid is None:
            d_min, d_max = det_cfg.d_min, det_cfg.d_max
            full_valid = radial_background(np.abs(S) ** 2, ps, d_min=d_min, d_max=d_max).valid
        ref = np.where(full_valid, li.spot_labels, 2).astype(np.uint8)
        pred = np.where(full_valid, mask, 0).astype(np.uint8)
        res[det]["ref"].append(ref.ravel())
        res[det]["pred"].append(pred.ravel())
        if ref.max() >= 1 and (ref == 1).any() and pred.any():
            hd = seg.hausdorff_distance(ref, pred, labels=[1], ignore_label=2)[1]
            res[det]["hd"].append(float(hd))
        res[det]["spot"] += np.array(_spot_level(tab, li))


def _summary(r, n):
    """Pooled pixel scores (frames differ in size: one long row of all frames) and spot-level scores."""
    ref = np.concatenate(r["ref"])[None]
    pred = np.concatenate(r["pred"])[None]
    summ = seg.segmentation_summary(ref, pred, labels=[1], ignore_label=2, hausdorff=False)
    tp_det, fp, tp_vis, fn = (int(v) for v in r["spot"])
    sp = tp_det / max(tp_det + fp, 1)
    sr = tp_vis / max(tp_vis + fn, 1)
    return {
        "dice": summ["dice"][1],
        "iou": summ["iou"][1],
        "precision": summ["precision"][1],
        "recall": summ["recall"][1],
        "hausdorff_px_mean": float(np.mean(r["hd"])) if r["hd"] else math.nan,
        "hausdorff_px_median": float(np.median(r["hd"])) if r["hd"] else math.nan,
        "spot_precision": sp,
        "spot_recall": sr,
        "spot_f1": 2 * sp * sr / max(sp + sr, 1e-12),
        "frames": n,
        "seconds_per_frame": r["seconds"] / n,
    }


def evaluate(
    weights=None,
    *,
    n=40,
    seed=TEST_SEED,
    size=256,
    threshold=None,
    detectors=("classical", "unet"),
    config=None,
    callback=None,
):
    """Score spot detectors on held-out synthetic FFTs (seeds ``seed ... seed + n - 1``, never trained on).

    Pixel level (spectrum pixels inside the analysed annulus, frames pooled as one stack) with
    :mod:`matsight.metrics.segmentation`: Dice, IoU, precision, recall; Hausdorff distance (px) per frame
    where both masks are non-empty (mean and median). Spot level: precision = detections within 2 px of a
    reflection, recall = visible reflections found, F1.

    Parameters
    ----------
    weights : path, optional
        U-Net weights (default: the shipped ones).
    n, seed : int
        Held-out frames and the seed of the first.
    size : int
        Typical frame side of the synthetic frames (:class:`~matsight.tem.train.SyntheticFrames`).
    threshold : float, optional
        U-Net probability threshold (default: the one stored with the weights).
    detectors : sequence of {"classical", "unet"}
    config : TemConfig or dict, optional
        ``config.detection.d_min/d_max``: the analysed spacings (Å).
    callback : :data:`matsight.progress.Callback`, optional
        Told of every frame scored.

    Returns
    -------
    dict
        ``{detector: {metric: value}}``.
    """
    det_cfg = make_config(config).detection
    data = make_data(size=size)
    res = {d: {"ref": [], "pred": [], "hd": [], "spot": np.zeros(4, int), "seconds": 0.0} for d in detectors}
    for i in range(n):
        sample = synthetic_sample(seed + i, data, d_min=det_cfg.d_min, d_max=det_cfg.d_max)
        _score_frame(res, sample, detectors, det_cfg, weights, threshold)
        report(callback, step=i + 1, total=n, message="held-out FFTs")
    return {det: _summary(r, n) for det, r in res.items()}


def phase_scores(rows):
    """Phase-level precision, recall and F1 pooled over frame records with ``tp``, ``fp``, ``fn``."""
    tp = sum(r["tp"] for r in rows)
    fp = sum(r["fp"] for r in rows)
    fn = sum(r["fn"] for r in rows)
    p = tp / max(tp + fp, 1)
    rc = tp / max(tp + fn, 1)
    return {"precision": p, "recall": rc, "f1": 2 * p * rc / max(p + rc, 1e-12), "frames": len(rows)}


def d_error_stats(derr, *, with_max=True):
    """Count, median, mean, 95th percentile (and max) of absolute d errors in %; None where there are none."""
    out = {
        "n_spots": len(derr),
        "median": float(np.median(derr)) if derr else None,
        "mean": float(np.mean(derr)) if derr else None,
        "p95": float(np.percentile(derr, 95)) if derr else None,
    }
    if with_max:
        out["max"] = float(np.max(derr)) if derr else None
    return out


def _frame_record(res, fr, derr, ious):
    """Phases found vs placed in one frame; its spots' d errors and maps' IoUs go to ``derr``, ``ious``."""
    found, truth = set(res.phases_found), set(fr["truth"])
    for r in res.table():
        if r["phase"] in truth and r["d_ref_angstrom"]:
            derr.append(abs(r["d_error_percent"]))
    if fr["maps"] and res.maps is not None:
        for name, mask in fr["masks"].items():
            if name in res.maps.phase_names:
                pred = res.maps.labels == res.maps.phase_names.index(name) + 1
                ious.append(float((pred & mask).sum() / max((pred | mask).sum(), 1)))
            else:
                ious.append(0.0)
    return {
        "dose": fr["dose"],
        "kind": fr["kind"],
        "tp": len(found & truth),
        "fp": len(found - truth),
        "fn": len(truth - found),
        "found": sorted(found),
        "truth": sorted(truth),
    }


def evaluate_phase_id(frames, pixel_size_nm, detectors=("classical", "unet"), phases=None, *, callback=None):
    """Phase identification scored against the phases placed in each frame.

    Parameters
    ----------
    frames : list of dict
        ``image``, ``truth`` (phase names placed), ``dose``, ``kind`` (e.g. ``"single"``, ``"mixed"``),
        ``maps`` (bool: make and score phase maps) and, with maps, ``masks`` (``{phase: bool mask}``).
    pixel_size_nm : float
    detectors : sequence of {"classical", "unet"}
    phases : list, optional
        Phases searched; default the shipped four.
    callback : :data:`matsight.progress.Callback`, optional

    Returns
    -------
    dict
        Per detector: ``all`` / ``single`` / ``mixed`` / ``by_dose`` phase scores (:func:`phase_scores`),
        ``d_error_percent`` (:func:`d_error_stats`), ``map_iou_mixed``, ``seconds_per_512_frame`` and the
        first 30 frames with a wrong phase set (``failures``).
    """
    plist = load_phases(phases)
    out = {}
    for det in detectors:
        rows, derr, ious, t_total = [], [], [], 0.0
        for k, fr in enumerate(frames):
            t = time.perf_counter()
            res = analyze(fr["image"], pixel_size_nm, plist, detector=det, maps=fr["maps"])
            t_total += time.perf_counter() - t
            rows.append(_frame_record(res, fr, derr, ious))
            report(callback, step=k + 1, total=len(frames), message=f"frames ({det})")
        doses = sorted({r["dose"] for r in rows})
        out[det] = {
            "all": phase_scores(rows),
            "single": phase_scores([r for r in rows if r["kind"] == "single"]),
            "mixed": phase_scores([r for r in rows if r["kind"] == "mixed"]),
            "by_dose": {str(d): phase_scores([r for r in rows if r["dose"] == d]) for d in doses},
            "d_error_percent": d_error_stats(derr),
            "map_iou_mixed": {"mean": float(np.mean(ious)) if ious else None, "n": len(ious)},
            "seconds_per_512_frame": t_total / max(len(frames), 1),
            "failures": [r for r in rows if r["fp"] or r["fn"]][:30],
        }
    return out

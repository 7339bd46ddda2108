"""Train and evaluate the U-Net FFT spot detector on synthetic lattice images whose spots are known.

Training data (:func:`synthetic_sample`): :func:`matsight.tem.lattice.lattice_image` frames of 1-5 random
grains of Li, LiF, Li2O, Li2CO3 (random zone axis, rotation, strength; amorphous Voronoi cells in between), an
amorphous background with CTF-like Thon rings, an information-limit envelope and Poisson noise at a dose drawn
log-uniformly in 20-5000 e/Å², pixel sizes 0.012-0.04 nm and frame sides 192-384 px; 8 % of the frames are
purely amorphous. The label of a spectrum pixel is 1 when it belongs to a reflection that stands out of the
noise by construction (``LatticeImage.spot_labels``), so no hand labelling is involved.

The network sees patches of the half spectrum (:func:`matsight.tem.detector.half_features`), 70 % of them
centred on a labelled spot; the loss (BCE + soft Dice) is counted inside the analysed annulus only. After
every epoch the whole annulus of the validation frames is predicted; the epoch and the probability threshold
with the best validation Dice are kept. :func:`evaluate_detectors` scores both detectors on *held-out* frames
(seeds never used in training) with :mod:`matsight.metrics.segmentation` (Dice, IoU, precision, recall,
Hausdorff) and at the spot level (a detection within 2 px of a reflection).
"""

import logging
import math
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._errors import InputError, settings_message

log = logging.getLogger(__name__)

__all__ = [
    "TrainConfig",
    "make_config",
    "synthetic_sample",
    "train",
    "evaluate_detectors",
    "VAL_SEED",
    "TEST_SEED",
]

VAL_SEED = 1_000_000  # validation frames: seeds VAL_SEED + i
TEST_SEED = 2_000_000  # held-out evaluation frames: seeds TEST_SEED + i (never seen in training)


class TrainConfig(BaseModel):
    """Training configuration (stored in the checkpoint metadata)."""

    model_config = ConfigDict(extra="forbid")

    n_train: int = Field(600, ge=8, description="synthetic training frames")
    n_val: int = Field(60, ge=4, description="validation frames (threshold and epoch selection)")
    size: int = Field(256, ge=64, le=2048, description="typical frame side; frames use size_factors x this")
    size_factors: tuple[float, ...] = (0.75, 1.0, 1.25, 1.5)
    patch: tuple[int, int] = (128, 64)
    patches_per_frame: int = Field(2, ge=1)
    epochs: int = Field(12, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0)
    features: tuple[int, ...] = (8, 16, 32, 64)
    seed: int = 0
    threads: int = Field(2, ge=1)
    device: str = "cpu"
    budget_s: float | None = Field(None, gt=0, description="stop training after this many seconds")
    dose: tuple[float, float] = (20.0, 5000.0)
    pixel_size_nm: tuple[float, float] = (0.012, 0.04)
    d_min: float = 1.0
    d_max: float = 15.0

    @field_validator("patch")
    @classmethod
    def _patch(cls, v):
        if min(v) < 16 or v[0] % 8 or v[1] % 8:
            raise ValueError("patch sides must be multiples of 8 and at least 16, e.g. (128, 64)")
        return v

    @field_validator("dose", "pixel_size_nm")
    @classmethod
    def _range(cls, v):
        if not 0 < v[0] <= v[1]:
            raise ValueError("ranges must be (low, high) with 0 < low <= high")
        return v


def make_config(**settings):
    """A validated :class:`TrainConfig`; invalid settings raise one :class:`InputError` naming each field."""
    try:
        return TrainConfig(**settings)
    except ValidationError as exc:
        raise InputError(settings_message(exc, "train-detector")) from None


def _frame_params(seed, cfg):
    rng = np.random.default_rng(seed)
    side = int(round(cfg.size * rng.choice(list(cfg.size_factors)) / 8) * 8)
    return dict(
        shape=(side, side),
        pixel_size_nm=float(rng.uniform(*cfg.pixel_size_nm)),
        dose=float(np.exp(rng.uniform(np.log(cfg.dose[0]), np.log(cfg.dose[1])))),
        contrast=float(rng.uniform(0.1, 0.35)),
        amorphous=float(rng.uniform(0.03, 0.3)),
        d_info=float(rng.uniform(1.0, 1.4)),
        crystalline=float(rng.uniform(0.5, 1.0)),
        empty=bool(rng.random() < 0.08),
    )


def synthetic_sample(seed, cfg=None):
    """One synthetic frame → network input and labels on the annulus box of the half spectrum.

    Returns
    -------
    dict
        ``x`` (2, h, w) float32, ``y`` (h, w) bool, ``valid`` (h, w) bool, ``lattice`` (the LatticeImage),
        ``spectrum`` and ``params``.
    """
    from . import fft as _fft
    from .detector import _annulus_box, half_features
    from .lattice import lattice_image, random_grains

    cfg = cfg or TrainConfig()
    p = _frame_params(seed, cfg)
    grains = [] if p["empty"] else random_grains(p["shape"], crystalline=p["crystalline"], seed=seed)
    li = lattice_image(
        p["shape"],
        p["pixel_size_nm"],
        grains=grains,
        dose=p["dose"],
        contrast=p["contrast"],
        amorphous=p["amorphous"],
        d_info=p["d_info"],
        seed=seed,
    )
    S = _fft.spectrum(li.image)
    x, valid, _ = half_features(S, p["pixel_size_nm"], d_min=cfg.d_min, d_max=cfg.d_max)
    y = _fft.to_half(li.spot_labels) & valid
    box = _annulus_box(S.shape, p["pixel_size_nm"], cfg.d_min)
    return {
        "x": x[:, box[0], box[1]],
        "y": y[box],
        "valid": valid[box],
        "lattice": li,
        "spectrum": S,
        "params": p,
    }


def _dataset(seeds, cfg, desc, progress):
    it = seeds
    if progress:
        from rich.progress import track

        it = track(seeds, description=desc)
    out = []
    for s in it:
        d = synthetic_sample(int(s), cfg)
        out.append((d["x"], d["y"], d["valid"]))
    return out


def _patch(sample, ph, pw, rng):
    x, y, v = sample
    h, w = y.shape
    if y.any() and rng.random() < 0.7:
        rr, cc = np.nonzero(y)
        k = rng.integers(rr.size)
        r0 = int(rr[k]) - ph // 2 + int(rng.integers(-ph // 4, ph // 4 + 1))
        c0 = int(cc[k]) - pw // 2 + int(rng.integers(-pw // 4, pw // 4 + 1))
    else:
        r0 = int(rng.integers(0, max(h - ph, 0) + 1))
        c0 = int(rng.integers(0, max(w - pw, 0) + 1))
    r0 = min(max(r0, 0), max(h - ph, 0))
    c0 = min(max(c0, 0), max(w - pw, 0))
    xp = np.zeros((x.shape[0], ph, pw), np.float32)
    yp = np.zeros((ph, pw), np.float32)
    vp = np.zeros((ph, pw), np.float32)
    hh, ww = min(ph, h - r0), min(pw, w - c0)
    xp[:, :hh, :ww] = x[:, r0 : r0 + hh, c0 : c0 + ww]
    yp[:hh, :ww] = y[r0 : r0 + hh, c0 : c0 + ww]
    vp[:hh, :ww] = v[r0 : r0 + hh, c0 : c0 + ww]
    return xp, yp, vp


def _loss(logits, y, v, pos_weight=3.0):
    import torch
    import torch.nn.functional as F

    bce = F.binary_cross_entropy_with_logits(
        logits, y, weight=v, pos_weight=torch.tensor(pos_weight, device=logits.device), reduction="sum"
    ) / v.sum().clamp_min(1.0)
    p = torch.sigmoid(logits) * v
    inter = (p * y).sum()
    dice = 1.0 - (2 * inter + 1.0) / (p.sum() + (y * v).sum() + 1.0)
    return bce + dice


def _predict_all(net, samples, device):
    from .detector import predict_half

    return [predict_half(net, x, v, device=device) for x, _, v in samples]


def _pooled_dice(probs, samples, thresholds):
    out = []
    for t in thresholds:
        tp = fp = fn = 0
        for p, (_, y, v) in zip(probs, samples, strict=True):
            m = (p > t) & v
            tp += int((m & y).sum())
            fp += int((m & ~y).sum())
            fn += int((~m & y & v).sum())
        out.append(2 * tp / max(2 * tp + fp + fn, 1))
    return np.array(out)


def train(cfg, out, *, progress=False):
    """Train the spot U-Net; write ``out`` (safetensors, config + metrics in metadata) and ``out.json``.

    Parameters
    ----------
    cfg : TrainConfig or dict
    out : str or Path
        Destination ``.safetensors`` file.
    progress : bool

    Returns
    -------
    dict
        Validation and held-out metrics, timings.
    """
    import torch

    from .._atomic import write_json
    from ..nn.checkpoint import save_checkpoint
    from ..nn.device import resolve_device, seed_everything
    from .networks import IN_CHANNELS, SpotUNet

    if isinstance(cfg, dict):
        cfg = make_config(**cfg)
    out = Path(out)
    if out.suffix != ".safetensors":
        raise InputError(f"--out must end in .safetensors, got {out.name}; e.g. --out spot_unet.safetensors")
    device = resolve_device(cfg.device)
    torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    t0 = time.perf_counter()
    train_seeds = np.arange(cfg.n_train) + cfg.seed * 100_000
    val_seeds = np.arange(cfg.n_val) + VAL_SEED + cfg.seed * 10_000
    data = _dataset(train_seeds, cfg, "synthetic FFTs (train)", progress)
    val = _dataset(val_seeds, cfg, "synthetic FFTs (val)", progress)
    t_data = time.perf_counter() - t0
    log.info("tem.train_detector: %d train / %d val frames in %.0f s", len(data), len(val), t_data)

    net = SpotUNet(IN_CHANNELS, cfg.features).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    steps_per_epoch = math.ceil(cfg.n_train * cfg.patches_per_frame / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1)
    rng = np.random.default_rng(cfg.seed)
    thresholds = np.round(np.arange(0.2, 0.81, 0.05), 2)
    best = {"dice": -1.0}
    history = []
    t_train = time.perf_counter()
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress()
        task = bar.add_task("training", total=total)
        bar.start()
    stopped_early = False
    try:
        for epoch in range(cfg.epochs):
            net.train()
            losses = []
            for _ in range(steps_per_epoch):
                idx = rng.integers(len(data), size=cfg.batch_size)
                xs, ys, vs = zip(*(_patch(data[i], *cfg.patch, rng) for i in idx), strict=True)
                xb = torch.from_numpy(np.stack(xs)).to(device)
                yb = torch.from_numpy(np.stack(ys))[:, None].to(device)
                vb = torch.from_numpy(np.stack(vs))[:, None].to(device)
                if rng.random() < 0.5:  # gy -> -gy mirror of the half spectrum (a mirrored frame), ~exact
                    xb, yb, vb = xb.flip(-2), yb.flip(-2), vb.flip(-2)
                loss = _loss(net(xb), yb, vb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(float(loss.detach()))
                if bar is not None:
                    bar.advance(task)
            net.eval()
            probs = _predict_all(net, val, device)
            dices = _pooled_dice(probs, val, thresholds)
            k = int(np.argmax(dices))
            rec = {
                "epoch": epoch + 1,
                "loss": float(np.mean(losses)),
                "val_dice": float(dices[k]),
                "threshold": float(thresholds[k]),
                "seconds": time.perf_counter() - t_train,
            }
            history.append(rec)
            log.info("tem.train_detector: %s", rec)
            if rec["val_dice"] > best["dice"]:
                best = {
                    "dice": rec["val_dice"],
                    "threshold": rec["threshold"],
                    "epoch": epoch + 1,
                    "state": {k2: v.detach().cpu().clone() for k2, v in net.state_dict().items()},
                }
            if cfg.budget_s is not None and time.perf_counter() - t0 > cfg.budget_s:
                stopped_early = True
                break
    finally:
        if bar is not None:
            bar.stop()
    t_train = time.perf_counter() - t_train
    meta = {
        "kind": "tem_spot_unet",
        "version": 1,
        "in_channels": IN_CHANNELS,
        "features": list(cfg.features),
        "threshold": best["threshold"],
        "best_epoch": best["epoch"],
        "val_dice": best["dice"],
        "train_config": cfg.model_dump(mode="json"),
        "history": history,
        "stopped_early": stopped_early,
        "seconds": {"data": round(t_data, 1), "train": round(t_train, 1)},
        "input": "half spectrum annulus box; channels: clip(z,-4,16)/4, clip(log P - log mean3x3 P,-4,2)/2",
    }
    save_checkpoint(out, {"detector": best["state"]}, meta)
    summary = {k: v for k, v in meta.items() if k not in ("history", "train_config")}
    write_json(out.with_suffix(".json"), {**meta})
    return summary


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


def evaluate_detectors(
    *,
    n=40,
    seed=TEST_SEED,
    size=256,
    weights=None,
    threshold=None,
    detectors=("classical", "unet"),
    progress=False,
    cfg=None,
):
    """Score detectors on held-out synthetic FFTs (seeds ``seed ... seed + n - 1``, never used in training).

    Pixel level (spectrum pixels inside the analysed annulus, frames pooled as one stack) with
    :mod:`matsight.metrics.segmentation`: Dice, IoU, precision, recall; Hausdorff distance (px) per frame
    where both masks are non-empty (mean and median). Spot level: precision = detections within 2 px of a
    reflection, recall = visible reflections found, F1.

    Returns
    -------
    dict
        ``{detector: {metric: value}}``.
    """
    from ..metrics import segmentation as seg
    from .detector import detect_spots_unet, unet_spot_mask
    from .spots import detect_spots

    cfg = cfg or make_config(size=size)
    res = {d: {"ref": [], "pred": [], "hd": [], "spot": np.zeros(4, int), "seconds": 0.0} for d in detectors}
    it = range(n)
    if progress:
        from rich.progress import track

        it = track(it, description="held-out FFTs")
    for i in it:
        s = synthetic_sample(seed + i, cfg)
        li, S, ps = s["lattice"], s["spectrum"], s["params"]["pixel_size_nm"]
        full_valid = None
        for det in detectors:
            t = time.perf_counter()
            if det == "classical":
                tab = detect_spots(None, ps, spectrum=S, d_min=cfg.d_min, d_max=cfg.d_max)
                mask = tab.regions > 0
            elif det == "unet":
                # pixel scores: the network's mask; spot scores: the full detector (significance, streaks)
                mask, bg = unet_spot_mask(
                    S, ps, d_min=cfg.d_min, d_max=cfg.d_max, weights=weights, threshold=threshold
                )
                tab = detect_spots_unet(
                    None,
                    ps,
                    spectrum=S,
                    d_min=cfg.d_min,
                    d_max=cfg.d_max,
                    weights=weights,
                    threshold=threshold,
                )
                full_valid = bg.valid
            else:
                raise InputError(f"unknown detector {det!r}; use classical or unet")
            res[det]["seconds"] += time.perf_counter() - t
            if full_valid is None:
                from .spots import radial_background

                full_valid = radial_background(np.abs(S) ** 2, ps, d_min=cfg.d_min, d_max=cfg.d_max).valid
            ref = np.where(full_valid, li.spot_labels, 2).astype(np.uint8)
            pred = np.where(full_valid, mask, 0).astype(np.uint8)
            res[det]["ref"].append(ref.ravel())
            res[det]["pred"].append(pred.ravel())
            if ref.max() >= 1 and (ref == 1).any() and pred.any():
                hd = seg.hausdorff_distance(ref, pred, labels=[1], ignore_label=2)[1]
                res[det]["hd"].append(float(hd))
            res[det]["spot"] += np.array(_spot_level(tab, li))
    out = {}
    for det, r in res.items():
        # one long row per frame stacked: pooled pixel scores (frames differ in size, so concatenate)
        ref = np.concatenate(r["ref"])[None]
        pred = np.concatenate(r["pred"])[None]
        summ = seg.segmentation_summary(ref, pred, labels=[1], ignore_label=2, hausdorff=False)
        tp_det, fp, tp_vis, fn = (int(v) for v in r["spot"])
        sp = tp_det / max(tp_det + fp, 1)
        sr = tp_vis / max(tp_vis + fn, 1)
        out[det] = {
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
    return out

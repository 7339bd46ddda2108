"""Train the U-Net FFT spot detector on synthetic lattice images whose spots are known.

Training data (:class:`SyntheticFrames`, :func:`synthetic_sample`): :func:`matsight.tem.lattice.lattice_image`
frames of 1-5 random grains of Li, LiF, Li2O, Li2CO3 (random zone axis, rotation, strength; amorphous Voronoi
cells in between), an amorphous background with CTF-like Thon rings, an information-limit envelope and Poisson
noise at a dose drawn log-uniformly in 20-5000 e/Å², pixel sizes 0.012-0.04 nm and frame sides 192-384 px; 8 %
of the frames are purely amorphous. The label of a spectrum pixel is 1 when it belongs to a reflection that
stands out of the noise by construction (``LatticeImage.spot_labels``), so no hand labelling is involved.

The network sees patches of the half spectrum (:func:`matsight.tem.detector.half_features`), 70 % of them
centred on a labelled spot; the loss (:func:`matsight.tem.losses.detector_loss`, BCE + soft Dice) is counted
inside the analysed annulus only. :func:`step` is one optimiser step; :func:`train` the loop: after every
epoch's worth of steps the whole annulus of the validation frames is predicted, and the weights and the
probability threshold with the best validation Dice are kept. :func:`matsight.tem.evaluate.evaluate` scores
both detectors on held-out frames.
"""

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._atomic import write_json
from .._duration import parse_duration
from .._errors import InputError, settings_message
from ..nn.checkpoint import save_checkpoint
from ..nn.device import resolve_device, seed_everything
from ..progress import report, throttled
from . import fft as _fft
from .config import make_config
from .detector import _annulus_box, half_features, predict_half
from .lattice import lattice_image, random_grains
from .losses import detector_loss
from .networks import IN_CHANNELS, SpotUNet

log = logging.getLogger(__name__)

__all__ = [
    "SyntheticFrames",
    "VAL_SEED",
    "TEST_SEED",
    "make_data",
    "weights_path",
    "steps_per_epoch",
    "synthetic_sample",
    "step",
    "train",
]

VAL_SEED = 1_000_000  # validation frames: seeds VAL_SEED + i
TEST_SEED = 2_000_000  # held-out evaluation frames: seeds TEST_SEED + i (never seen in training)
WEIGHTS_NAME = "spot_unet.safetensors"


class SyntheticFrames(BaseModel):
    """The synthetic frames the detector learns from (the ``data`` of :func:`train`)."""

    model_config = ConfigDict(extra="forbid")

    n_train: int = Field(600, ge=8, description="synthetic training frames")
    n_val: int = Field(60, ge=4, description="validation frames (threshold and epoch selection)")
    size: int = Field(256, ge=64, le=2048, description="typical frame side; frames use size_factors x this")
    size_factors: tuple[float, ...] = (0.75, 1.0, 1.25, 1.5)
    dose: tuple[float, float] = (20.0, 5000.0)
    pixel_size_nm: tuple[float, float] = (0.012, 0.04)

    @field_validator("dose", "pixel_size_nm")
    @classmethod
    def _range(cls, v):
        if not 0 < v[0] <= v[1]:
            raise ValueError("ranges must be (low, high) with 0 < low <= high")
        return v


def make_data(data=None, **settings):
    """A validated :class:`SyntheticFrames` from one, a dict or None, updated by ``settings``."""
    if isinstance(data, SyntheticFrames) and not settings:
        return data
    base = data.model_dump() if isinstance(data, SyntheticFrames) else dict(data or {})
    try:
        return SyntheticFrames(**{**base, **settings})
    except ValidationError as exc:
        raise InputError(settings_message(exc, "train-detector")) from None


def _frame_params(seed, data):
    rng = np.random.default_rng(seed)
    side = int(round(data.size * rng.choice(list(data.size_factors)) / 8) * 8)
    return dict(
        shape=(side, side),
        pixel_size_nm=float(rng.uniform(*data.pixel_size_nm)),
        dose=float(np.exp(rng.uniform(np.log(data.dose[0]), np.log(data.dose[1])))),
        contrast=float(rng.uniform(0.1, 0.35)),
        amorphous=float(rng.uniform(0.03, 0.3)),
        d_info=float(rng.uniform(1.0, 1.4)),
        crystalline=float(rng.uniform(0.5, 1.0)),
        empty=bool(rng.random() < 0.08),
    )


def synthetic_sample(seed, data=None, *, d_min=1.0, d_max=15.0):
    """One synthetic frame → network input and labels on the annulus box of the half spectrum.

    Parameters
    ----------
    seed : int
    data : SyntheticFrames, optional
    d_min, d_max : float
        Analysed spacings (Å).

    Returns
    -------
    dict
        ``x`` (2, h, w) float32, ``y`` (h, w) bool, ``valid`` (h, w) bool, ``lattice`` (the LatticeImage),
        ``spectrum`` and ``params``.
    """
    p = _frame_params(seed, data or SyntheticFrames())
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
    x, valid, _ = half_features(S, p["pixel_size_nm"], d_min=d_min, d_max=d_max)
    y = _fft.to_half(li.spot_labels) & valid
    box = _annulus_box(S.shape, p["pixel_size_nm"], d_min)
    return {
        "x": x[:, box[0], box[1]],
        "y": y[box],
        "valid": valid[box],
        "lattice": li,
        "spectrum": S,
        "params": p,
    }


def _dataset(seeds, data, det, message, callback):
    out = []
    for k, s in enumerate(seeds):
        d = synthetic_sample(int(s), data, d_min=det.d_min, d_max=det.d_max)
        out.append((d["x"], d["y"], d["valid"]))
        report(callback, step=k + 1, total=len(seeds), message=message)
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


def _batch(samples, training, rng, device):
    """A random batch of patches ``(x, y, valid)`` as tensors, mirrored gy -> -gy half of the time."""
    idx = rng.integers(len(samples), size=training.batch_size)
    xs, ys, vs = zip(*(_patch(samples[i], *training.patch, rng) for i in idx), strict=True)
    xb = torch.from_numpy(np.stack(xs)).to(device)
    yb = torch.from_numpy(np.stack(ys))[:, None].to(device)
    vb = torch.from_numpy(np.stack(vs))[:, None].to(device)
    if rng.random() < 0.5:  # gy -> -gy mirror of the half spectrum (a mirrored frame), ~exact
        xb, yb, vb = xb.flip(-2), yb.flip(-2), vb.flip(-2)
    return xb, yb, vb


def step(net, optimizer, batch, scheduler=None):
    """One optimiser step of :func:`~matsight.tem.losses.detector_loss` on ``batch = (x, y, valid)``.

    Returns the loss (float).
    """
    xb, yb, vb = batch
    loss = detector_loss(net(xb), yb, vb)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    return float(loss.detach())


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


def _validate(net, val, device):
    """``(best pooled Dice, its threshold)`` over the whole annulus of the validation frames."""
    net.eval()
    probs = [predict_half(net, x, v, device=device) for x, _, v in val]
    thresholds = np.round(np.arange(0.2, 0.81, 0.05), 2)
    dices = _pooled_dice(probs, val, thresholds)
    k = int(np.argmax(dices))
    net.train()
    return float(dices[k]), float(thresholds[k])


def steps_per_epoch(data, training):
    """Optimiser steps in one pass over the training patches (``n_train × patches_per_frame / batch``)."""
    return math.ceil(data.n_train * training.patches_per_frame / training.batch_size)


def weights_path(out_dir):
    """The weights file: ``out_dir`` if it ends in ``.safetensors``, else ``out_dir / WEIGHTS_NAME``."""
    out = Path(out_dir)
    if out.suffix == ".safetensors":
        return out
    if out.suffix and not out.is_dir():
        raise InputError(
            f"--out must be a folder or end in .safetensors, got {out.name}; e.g. --out spot_unet.safetensors"
        )
    return out / WEIGHTS_NAME


def _loop(run, net, data, val, training, device, callback):
    """The optimisation: validation after each epoch's worth of steps; the best state kept in ``run``."""
    opt = torch.optim.Adam(net.parameters(), lr=training.lr)
    spe = steps_per_epoch(data, training)
    total = training.steps or spe * training.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=training.lr, total_steps=total, pct_start=0.1)
    rng, losses, t_train = np.random.default_rng(training.seed), [], time.perf_counter()
    net.train()
    for k in range(1, total + 1):
        losses.append(step(net, opt, _batch(run["samples"], training, rng, device), sched))
        report(callback, step=k, total=total, metrics={"loss": losses[-1]}, message="training",
               seconds=time.perf_counter() - run["t0"], budget=run["budget"])  # fmt: skip
        if k % spe and k != total:
            continue
        dice, thr = _validate(net, val, device)
        rec = {"epoch": math.ceil(k / spe), "step": k, "loss": float(np.mean(losses)), "val_dice": dice,
               "threshold": thr, "seconds": time.perf_counter() - t_train}  # fmt: skip
        losses = []
        run["history"].append(rec)
        log.info("tem.train: %s", rec)
        if dice > run["best"]["dice"]:
            state = {k2: v.detach().cpu().clone() for k2, v in net.state_dict().items()}
            run["best"] = {"dice": dice, "threshold": thr, "epoch": rec["epoch"], "state": state}
        if run["budget"] is not None and time.perf_counter() - run["t0"] > run["budget"]:
            run["stopped_early"] = True
            break
    run["t_train"] = time.perf_counter() - t_train


def _save(out, run, data, cfg):
    """Write the best weights (config, threshold and metrics in the metadata) and ``out.json``."""
    best = run["best"]
    meta = {
        "kind": "tem_spot_unet",
        "version": 1,
        "in_channels": IN_CHANNELS,
        "features": list(cfg.training.features),
        "threshold": best["threshold"],
        "best_epoch": best["epoch"],
        "val_dice": best["dice"],
        "train_config": {
            "data": data.model_dump(mode="json"),
            "training": cfg.training.model_dump(mode="json"),
            "d_min": cfg.detection.d_min,
            "d_max": cfg.detection.d_max,
        },
        "history": run["history"],
        "stopped_early": run["stopped_early"],
        "seconds": {"data": round(run["t_data"], 1), "train": round(run.get("t_train", 0.0), 1)},
        "input": "half spectrum annulus box; channels: clip(z,-4,16)/4, clip(log P - log mean3x3 P,-4,2)/2",
    }
    save_checkpoint(out, {"detector": best["state"]}, meta)
    write_json(out.with_suffix(".json"), {**meta})
    return {k: v for k, v in meta.items() if k not in ("history", "train_config")}


def train(data, out_dir, *, config=None, budget=None, callback=None):
    """Train the spot U-Net on synthetic frames; write its weights and a JSON of its settings and metrics.

    Parameters
    ----------
    data : SyntheticFrames, dict or None
        The synthetic frames to learn from (how many, their sizes, doses, pixel sizes); None: the defaults.
    out_dir : str or Path
        A folder (gets ``spot_unet.safetensors`` and ``spot_unet.json``), or the weights file itself when it
        ends in ``.safetensors`` (the JSON beside it).
    config : TemConfig or dict, optional
        ``config.training`` (steps or epochs, batch, patch, learning rate, network features, seed, threads,
        device) and ``config.detection.d_min/d_max`` (the analysed annulus).
    budget : float or str, optional
        Stop after this wall-clock time (seconds, or ``"20m"``, ``"1h"``), data generation included; the best
        epoch so far is kept.
    callback : :data:`matsight.progress.Callback`, optional
        Told of the frames made, then of every optimiser step (``loss``). Raising :class:`KeyboardInterrupt`
        stops the run; the best weights so far are written first (a training is not resumed).

    Returns
    -------
    dict
        Threshold, best epoch, validation Dice, timings; ``path`` of the weights.
    """
    cfg, data = make_config(config), make_data(data)
    out = weights_path(out_dir)
    budget = None if budget is None else parse_duration(budget)
    callback = throttled(callback)
    device = resolve_device(cfg.training.device)
    torch.set_num_threads(cfg.training.threads)
    seed_everything(cfg.training.seed)
    run = {"t0": time.perf_counter(), "budget": budget, "history": [], "best": {"dice": -1.0}}
    run["stopped_early"] = False
    seed = cfg.training.seed
    train_seeds = np.arange(data.n_train) + seed * 100_000
    val_seeds = np.arange(data.n_val) + VAL_SEED + seed * 10_000
    run["samples"] = _dataset(train_seeds, data, cfg.detection, "synthetic FFTs (train)", callback)
    val = _dataset(val_seeds, data, cfg.detection, "synthetic FFTs (val)", callback)
    run["t_data"] = time.perf_counter() - run["t0"]
    log.info("tem.train: %d train / %d val frames in %.0f s", len(run["samples"]), len(val), run["t_data"])
    net = SpotUNet(IN_CHANNELS, cfg.training.features).to(device)
    try:
        _loop(run, net, data, val, cfg.training, device, callback)
    except KeyboardInterrupt:
        if "state" in run["best"]:
            run["stopped_early"] = True
            _save(out, run, data, cfg)
        raise
    return {**_save(out, run, data, cfg), "path": str(out)}

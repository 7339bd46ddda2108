"""Training of the InDI restoration network on one registered LQ/HQ pair.

Paper recipe (``papers/indi_4d_nanotomography.txt``, Methods): random crops with flips and rotations, both
images in [−1, 1], one-cycle LR schedule with cosine annealing (maximum 5e-4), reverse-Huber loss, 10 % of
the slices held out for validation. Here the schedule runs on the *progress* of the run,
``max(step / steps, elapsed / budget)``, so a wall-clock budget (``--budget 20m``) still gets the whole
warm-up/anneal cycle. :func:`step` is one optimiser step on the InDI objective (:mod:`~.losses`);
:func:`train` draws the batches, schedules, validates, checkpoints and reports to its ``callback``
(:mod:`matsight.progress`).

A run folder holds

- ``model.safetensors`` — weights + config + normalisation statistics + pair geometry (for ``enhance``);
- ``state.safetensors`` — the same plus optimiser moments and RNG states, so an interrupted run resumes;
- ``history.json`` and ``curves.png`` — training loss, learning rate and validation PSNR per checkpoint.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import torch

from .._atomic import atomic_path, make_folder, write_json
from .._errors import InputError
from ..nn.checkpoint import load_checkpoint, save_checkpoint
from ..nn.device import resolve_device
from ..progress import report
from .classical import tune_classical
from .config import UNLIMITED_STEPS, ModelConfig, RestoreConfig, load_config, make_config, with_overrides
from .indi import sample_image
from .losses import indi_loss
from .networks import MODEL_FILE, STATE_FILE, build_network, context_slices, load_model
from .pair_io import Pair, load_pair
from .register import apply_grey_map, fit_grey_map
from .steps import at_edge, select_steps

log = logging.getLogger(__name__)

__all__ = [
    "train",
    "step",
    "TrainResult",
    "load_model",
    "one_cycle_lr",
    "split_validation",
    "as_training_pair",
    "validate",
]


@dataclass
class TrainResult:
    """What :func:`train` did: where the model is, how far it got and its validation figures."""

    model_dir: Path
    steps: int
    elapsed_s: float
    history: list = field(default_factory=list)
    validation: dict = field(default_factory=dict)
    resumed_at: int = 0  # the step a resumed run started at; equal to ``steps`` when it was already finished
    steps_auto: dict | None = None  # the validated step count (``--indi-steps auto``) and its table


def one_cycle_lr(progress, *, lr_max, pct_start=0.3, div_factor=25.0, final_div_factor=1e4):
    """One-cycle learning rate with cosine warm-up and cosine annealing (as
    ``torch.optim.lr_scheduler.OneCycleLR`` with ``anneal_strategy="cos"``), as a function of the run's
    progress in [0, 1].
    """
    p = min(max(float(progress), 0.0), 1.0)
    lr0 = lr_max / div_factor
    lr_end = lr0 / final_div_factor
    if p < pct_start:
        q = p / pct_start
        return lr0 + (lr_max - lr0) * (1 - math.cos(math.pi * q)) / 2
    q = (p - pct_start) / (1 - pct_start)
    return lr_end + (lr_max - lr_end) * (1 + math.cos(math.pi * q)) / 2


# ------------------------------------------------------------------------------------------------- the pair
@dataclass
class _Data:
    lq: np.ndarray  # (S, Y, X) float32 in [-1, 1]
    hq: np.ndarray
    mask: np.ndarray | None  # (S, Y, X) bool
    stats: dict
    transform: dict

    @property
    def context_step(self):
        """Slices between neighbouring LQ slices on this (HQ) grid: the LQ's z voxel over the HQ's."""
        scale = self.transform.get("scale") or [1.0]
        return max(1, int(round(float(scale[0]) if len(scale) == 3 else 1.0)))

    @property
    def data_range(self):
        """Normalised width of the HQ's percentile range (2 · span): the PSNR data range of validation."""
        return 2.0 * float((self.stats.get("hq") or {}).get("span", 1.0))

    @functools.cached_property
    def fingerprint(self):
        """Shape and content hash of the pair, stored in the run: resuming on another pair is refused."""
        h = hashlib.blake2b(digest_size=16)
        for a in (self.lq, self.hq):
            h.update(np.ascontiguousarray(a).data)
        return {"shape": list(self.lq.shape), "hash": h.hexdigest()}

    def context(self, index, config, window=(slice(None), slice(None))):
        """The LQ neighbours of slice ``index`` (``(2·context, ...)``), inside the ``(rows, cols)`` window."""
        view = self.lq[(slice(None), *window)]  # a view: only the window is copied
        return context_slices(view, index, context=config.model.context, step=self.context_step)


def as_training_pair(pair):
    """Accept a :class:`~matsight.restore.pair_io.Pair`, a pair folder, or ``(lq_up, hq)`` arrays;
    validate.
    """
    if isinstance(pair, str | Path):
        pair = load_pair(pair)
    if isinstance(pair, Pair):
        lq, hq, mask, stats, transform = pair.lq_up, pair.hq, pair.mask, pair.stats, pair.transform
    elif isinstance(pair, tuple | list) and len(pair) == 2:
        lq, hq = pair
        mask, stats, transform = None, {}, {}
    else:
        raise InputError(
            "the training pair must be a Pair, a pair folder (matsight restore register) "
            "or (lq_up, hq) arrays"
        )
    lq = np.asarray(lq, dtype=np.float32)
    hq = np.asarray(hq, dtype=np.float32)
    if lq.shape != hq.shape:
        raise InputError(
            f"LQ {lq.shape} and HQ {hq.shape} differ in shape; register them onto one grid first "
            "(matsight restore register / prepare_pair)"
        )
    if lq.ndim not in (2, 3):
        raise InputError(f"the pair must be 2D slices or 3D volumes (ZYX), got shape {lq.shape}")
    for name, a in (("LQ", lq), ("HQ", hq)):
        if not np.isfinite(a).all():
            raise InputError(f"the {name} image of the pair contains NaN/inf values; fill or crop them first")
        if a.min() < -1.001 or a.max() > 1.001:
            raise InputError(
                f"the {name} image is not normalised to [-1, 1] (range {a.min():.3g}..{a.max():.3g}); "
                "prepare the pair with prepare_pair / matsight restore register"
            )
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), lq.shape)
    if lq.ndim == 2:
        lq, hq = lq[None], hq[None]
        mask = None if mask is None else mask[None]
    return _Data(lq, hq, None if mask is None else np.ascontiguousarray(mask), dict(stats), dict(transform))


def _describe(given, indices):
    """``range(50, 60)`` → ``50:60`` (as ``--val-slices`` takes it); other sequences as a plain list."""
    if isinstance(given, range) and given.step == 1:
        return f"{given.start}:{given.stop}"
    return str(indices)


def split_validation(shape, val_fraction, crop, slices=None, val_slices=None):
    """Training and validation regions as ``(slice_index, row_start, row_stop)`` lists.

    With several slices the last ``ceil(val_fraction · S)`` slices (one contiguous block, so neighbouring
    slices do not leak into validation) are held out; a single slice is split into a top part for training and
    a bottom strip for validation when it is tall enough. ``slices``: use only these slice indices (in this
    order; default all). ``val_slices``: validate on these of them instead (e.g. to keep the kind of
    structure found only at the end of the stack in training).
    """
    s, ny, _ = shape
    idx = list(range(s)) if slices is None else [int(i) for i in slices]
    if not idx or min(idx) < 0 or max(idx) >= s:
        raise InputError(f"the training slices must be indices into the pair's {s} slices, got {slices!r}")
    if val_slices is not None:
        val = [int(i) for i in val_slices]
        shown = _describe(val_slices, val)
        outside = [i for i in val if not 0 <= i < s]
        if outside:
            raise InputError(
                f"the validation slices {shown} {'are' if len(outside) == len(val) else 'reach'} outside the "
                f"pair's slices 0..{s - 1}; "
                "give a block within them, or leave them out for the default (the last slices)"
            )
        rest = [i for i in idx if i not in set(val)]
        if not val or not set(val) <= set(idx) or not rest:
            raise InputError(f"the validation slices {shown} must be some, not all, of the training slices")
        return [(i, 0, ny) for i in rest], [(i, 0, ny) for i in val]
    if val_fraction <= 0:
        return [(i, 0, ny) for i in idx], []
    if len(idx) >= 2:
        n_val = min(len(idx) - 1, max(1, math.ceil(val_fraction * len(idx))))
        return [(i, 0, ny) for i in idx[:-n_val]], [(i, 0, ny) for i in idx[-n_val:]]
    i = idx[0]
    h_val = max(16, int(round(val_fraction * ny)))
    if ny - h_val < crop:
        log.warning("the single training slice is too small to hold out a validation strip; validating on it")
        return [(i, 0, ny)], [(i, 0, ny)]
    return [(i, 0, ny - h_val)], [(i, ny - h_val, ny)]


# -------------------------------------------------------------------------------------------------- batches
def _effective_crop(config, data, train_regions):
    unit = config.model.unit
    rows = min(r1 - r0 for _, r0, r1 in train_regions)
    limit = min(rows, data.lq.shape[2])
    crop = min(config.training.crop, limit)
    crop = (crop // unit) * unit
    if crop < unit:
        raise InputError(
            f"the training images ({rows}×{data.lq.shape[2]} px) are smaller than the network's "
            "minimum input "
            f"({unit} px); give larger slices or the cpu preset"
        )
    if crop != config.training.crop:
        log.warning("training crops reduced from %d to %d px to fit the images", config.training.crop, crop)
    return crop


def _draw_batch(data, regions, crop, batch, rng, config):
    lq, hq, wt, ctx = [], [], [], []
    for _ in range(batch):
        for _attempt in range(10):
            i, r0, r1 = regions[int(rng.integers(len(regions)))]
            y0 = int(rng.integers(r0, r1 - crop + 1))
            x0 = int(rng.integers(0, data.lq.shape[2] - crop + 1))
            sl = (i, slice(y0, y0 + crop), slice(x0, x0 + crop))
            m = None if data.mask is None else data.mask[sl]
            if m is None or m.mean() >= 0.5:
                break
        a, b = data.lq[sl], data.hq[sl]
        w = np.ones_like(a) if m is None else m.astype(np.float32)
        c = data.context(i, config, sl[1:])
        if config.training.rotations:
            k = int(rng.integers(4))
            a, b, w, c = (np.rot90(v, k, axes=(-2, -1)) for v in (a, b, w, c))
        if config.training.flips:
            if rng.random() < 0.5:
                a, b, w, c = (v[..., ::-1, :] for v in (a, b, w, c))
            if rng.random() < 0.5:
                a, b, w, c = (v[..., ::-1] for v in (a, b, w, c))
        lq.append(np.ascontiguousarray(a))
        hq.append(np.ascontiguousarray(b))
        wt.append(np.ascontiguousarray(w))
        ctx.append(np.ascontiguousarray(c))
    cond = np.stack(ctx) if config.model.context else None
    return np.stack(lq)[:, None], np.stack(hq)[:, None], np.stack(wt)[:, None], cond


def _validation_set(data, regions, config, max_slices=8):
    if not regions:
        return None
    if len(regions) > max_slices:
        pick = np.linspace(0, len(regions) - 1, max_slices).round().astype(int)
        regions = [regions[i] for i in pick]
    lq, hq, mk, ctx = [], [], [], []
    vc = config.training.val_crop
    for i, r0, r1 in regions:
        ny, nx = r1 - r0, data.lq.shape[2]
        cy, cx = (min(vc, ny), min(vc, nx)) if vc else (ny, nx)
        y0, x0 = r0 + (ny - cy) // 2, (nx - cx) // 2
        sl = (i, slice(y0, y0 + cy), slice(x0, x0 + cx))
        lq.append(data.lq[sl])
        hq.append(data.hq[sl])
        mk.append(None if data.mask is None else data.mask[sl])
        ctx.append(data.context(i, config, sl[1:]) if config.model.context else None)
    return lq, hq, mk, ctx


def _psnr(a, b, mask=None, data_range=2.0):
    d = (a - b) if mask is None else (a - b)[mask]
    mse = float(np.mean(np.square(d, dtype=np.float64)))
    return float("inf") if mse == 0 else 10 * math.log10(data_range**2 / mse)


def validate(net, val, *, steps_list=(1,), config=None, batch=4, data_range=2.0):
    """Mean PSNR (dB, inside the mask) of the sampler with each ``N`` in ``steps_list`` on the validation
    crops, plus the bicubic input's. ``data_range``: the normalised width of the HQ's percentile range, 2 for
    a pair normalised to ±1 (``2 · span`` of its statistics), so the figures do not depend on the headroom.
    """
    lq, hq, mk, ctx = val
    psnr = functools.partial(_psnr, data_range=data_range)
    out = {"psnr_input": float(np.mean([psnr(a, b, m) for a, b, m in zip(lq, hq, mk, strict=True)]))}
    for n in steps_list:
        vals = []
        for a, b, m, c in zip(lq, hq, mk, ctx, strict=True):
            pred = sample_image(
                net, a, steps=n, tile=config.inference.tile if config else 1024, batch=batch, context=c
            )
            vals.append(psnr(pred, b, m))
        out[f"psnr_{n}"] = float(np.mean(vals))
    return out


# ---------------------------------------------------------------------------------------------- checkpoints
def _model_meta(config, data, extra=None):
    meta = {
        "format": "matsight-restore-model",
        "version": 1,
        "config": config.model_dump(mode="json"),
        "stats": data.stats,
        "transform": data.transform,
        "spatial_dims": 2,
        "context_step": data.context_step,
        "pair": data.fingerprint,
    }
    if extra:
        meta.update(extra)
    return meta


def _save_state(out_dir, net, opt, config, data, step, elapsed, rng, tgen, history):
    optim = {}
    steps = []
    for i, p in enumerate(net.parameters()):
        st = opt.state.get(p)
        if st:
            optim[f"{i}.exp_avg"] = st["exp_avg"]
            optim[f"{i}.exp_avg_sq"] = st["exp_avg_sq"]
            steps.append(float(st["step"]))
        else:
            steps.append(0.0)
    rngs = {"torch_cpu": torch.get_rng_state(), "tgen": tgen.get_state()}
    meta = _model_meta(
        config,
        data,
        {
            "step": step,
            "elapsed_s": elapsed,
            "np_rng": rng.bit_generator.state,
            "optim_steps": steps,
            "history": history,
        },
    )
    save_checkpoint(out_dir / STATE_FILE, {"model": net.state_dict(), "optim": optim, "rng": rngs}, meta)


def _save_model(out_dir, net, config, data, extra):
    save_checkpoint(out_dir / MODEL_FILE, {"model": net.state_dict()}, _model_meta(config, data, extra))


def _check_resumable(out_dir, meta, config, data):
    """Refuse to resume the run whose state has ``meta`` with another network or on another pair."""
    old = load_config(meta["config"]).model
    diff = [f for f in ModelConfig.model_fields if getattr(old, f) != getattr(config.model, f)]
    if diff:
        raise InputError(
            f"{out_dir} holds a run with a different network ({', '.join(diff)}); use another --out folder "
            "or start afresh (resume=False / --no-resume)"
        )
    was = meta.get("pair")  # absent in runs saved before the pair was recorded: nothing to compare
    if was and was != data.fingerprint:
        what = (
            f"shape {tuple(was['shape'])}, now {tuple(data.fingerprint['shape'])}"
            if was["shape"] != data.fingerprint["shape"]
            else "same shape, other content"
        )
        raise InputError(
            f"{out_dir} holds a run trained on another pair ({what}); resume it with its original pair, "
            "or train this pair into a new --out folder (or start afresh there: resume=False / --no-resume)"
        )


def _load_state(groups, meta, net, opt, rng, tgen):
    net.load_state_dict(groups["model"])
    params = list(net.parameters())
    for i, p in enumerate(params):
        if f"{i}.exp_avg" in groups.get("optim", {}):
            opt.state[p] = {
                "step": torch.tensor(meta["optim_steps"][i]),
                "exp_avg": groups["optim"][f"{i}.exp_avg"].clone(),
                "exp_avg_sq": groups["optim"][f"{i}.exp_avg_sq"].clone(),
            }
    rng.bit_generator.state = meta["np_rng"]
    torch.set_rng_state(groups["rng"]["torch_cpu"])
    tgen.set_state(groups["rng"]["tgen"])
    return int(meta["step"]), float(meta["elapsed_s"]), list(meta.get("history", []))


# ------------------------------------------------------------------------------------------------ one step
def step(net, opt, lq, hq, *, config, lr, generator=None, weight=None, cond=None):
    """One optimiser step on the InDI objective (:func:`~matsight.restore.losses.indi_loss`) for a batch.

    Parameters
    ----------
    net : InDINet
    opt : torch.optim.Optimizer
    lq, hq : torch.Tensor
        ``(B, 1, Y, X)`` crops of the pair: ``y`` and ``x``, in [−1, 1].
    config : RestoreConfig
    lr : float
        Learning rate of this step (:func:`one_cycle_lr`).
    generator : torch.Generator, optional
        For ``t`` and the path noise.
    weight, cond : torch.Tensor, optional
        Field-of-view weights; the neighbouring LQ slices of a 2.5D network.

    Returns
    -------
    float
        The batch loss before the update.

    Raises
    ------
    RuntimeError
        The loss is not finite (the weights are left as they were).
    """
    for g in opt.param_groups:
        g["lr"] = lr
    loss = indi_loss(net, hq, lq, config=config, generator=generator, weight=weight, cond=cond)
    if not torch.isfinite(loss):
        raise RuntimeError(f"training diverged (loss {loss.item()}); lower training.lr_max")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


# ---------------------------------------------------------------------------------------------------- train
@dataclass
class _Run:
    """What the training loop carries from step to step."""

    config: RestoreConfig
    data: _Data
    out_dir: Path
    net: torch.nn.Module
    opt: torch.optim.Optimizer
    rng: np.random.Generator
    tgen: torch.Generator
    device: torch.device
    regions: tuple  # (training, validation) regions
    crop: int
    val: tuple | None
    step: int = 0
    elapsed: float = 0.0
    history: list = field(default_factory=list)
    latest: dict = field(default_factory=dict)  # the last validation figures, for the callback

    def progress(self):
        """Share of the run done: ``max(step / steps, elapsed / budget)``."""
        tr = self.config.training
        p = self.step / tr.steps
        if tr.budget_s:
            p = max(p, self.elapsed / tr.budget_s)
        return p

    def save_state(self):
        _save_state(
            self.out_dir,
            self.net,
            self.opt,
            self.config,
            self.data,
            self.step,
            self.elapsed,
            self.rng,
            self.tgen,
            self.history,
        )

    def validation(self):
        if self.val is None:
            return {}
        res = validate(
            self.net,
            self.val,
            # a one-step (direct regression) model is applied in one pass only
            steps_list=(1,) if _onestep(self.config) else (1, self.config.inference.indi_steps),
            config=self.config,
            data_range=self.data.data_range,
        )
        self.net.train()
        self.latest = res
        return res


def _run_config(config, preset, budget, overrides):
    """The run's :class:`RestoreConfig`: ``config`` or the preset's, with ``overrides`` and ``budget``."""
    if config is None:
        return make_config(preset, budget=budget, **overrides)
    if not isinstance(config, RestoreConfig):
        raise InputError("config must be a RestoreConfig (see matsight.restore.config.make_config)")
    if budget is not None:
        overrides = {**overrides, "training.budget_s": budget}
    return with_overrides(config, **overrides)


def _finished(out_dir, config, data):
    """``(state, result)``: the saved state of the run in ``out_dir`` (checked against this network and
    pair; None if there is none) and a :class:`TrainResult` when that run is already finished.
    """
    if not (out_dir / STATE_FILE).is_file():
        return None, None
    state = load_checkpoint(out_dir / STATE_FILE)
    _check_resumable(out_dir, state[1], config, data)
    step_, elapsed = int(state[1]["step"]), float(state[1]["elapsed_s"])
    tr = config.training
    done = step_ / tr.steps >= 1.0 or (tr.budget_s and elapsed / tr.budget_s >= 1.0)
    if not (done and (out_dir / MODEL_FILE).is_file()):
        return state, None
    # redoing the final validation and step selection would only rewrite the same model
    model_meta = load_checkpoint(out_dir / MODEL_FILE)[1]
    validation = model_meta.get("validation") or {}
    log.info("%s already holds a finished run of %d steps", out_dir, step_)
    history = list(state[1].get("history", []))
    auto = model_meta.get("steps_auto")
    return state, TrainResult(out_dir, step_, elapsed, history, validation, step_, auto)


def _start(config, data, out_dir, state, device, slices, val_slices):
    """A :class:`_Run` at step 0 (seeded) or at the saved ``state``."""
    tr = config.training
    train_regions, val_regions = split_validation(data.lq.shape, tr.val_fraction, tr.crop, slices, val_slices)
    crop = _effective_crop(config, data, train_regions)
    val = _validation_set(data, val_regions, config)
    dev = resolve_device(device)
    torch.manual_seed(tr.seed)
    net = build_network(config).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=tr.lr_max, weight_decay=tr.weight_decay)
    rng = np.random.default_rng(tr.seed)
    tgen = torch.Generator(device="cpu").manual_seed(tr.seed + 1)
    run = _Run(config, data, out_dir, net, opt, rng, tgen, dev, (train_regions, val_regions), crop, val)
    if state is not None:
        run.step, run.elapsed, run.history = _load_state(*state, net, opt, rng, tgen)
        log.info("resuming %s at step %d (%.0f s trained)", out_dir, run.step, run.elapsed)
    return run


def _loop(run, callback):
    """Optimiser steps until the run's steps or budget are spent; history, validation, checkpoints."""
    tr, dev = run.config.training, run.device
    total = tr.steps if tr.steps < UNLIMITED_STEPS else None
    running = []
    t_start = time.perf_counter() - run.elapsed
    last_ckpt = run.step
    run.net.train()
    while run.progress() < 1.0:
        lr = one_cycle_lr(
            run.progress(),
            lr_max=tr.lr_max,
            pct_start=tr.pct_start,
            div_factor=tr.div_factor,
            final_div_factor=tr.final_div_factor,
        )
        a, b, w, c = _draw_batch(run.data, run.regions[0], run.crop, tr.batch, run.rng, run.config)
        wt = torch.from_numpy(w).to(dev) if run.data.mask is not None else None
        cond = None if c is None else torch.from_numpy(c).to(dev)
        y, x = torch.from_numpy(a).to(dev), torch.from_numpy(b).to(dev)
        loss = step(
            run.net, run.opt, y, x, config=run.config, lr=lr, generator=run.tgen, weight=wt, cond=cond
        )
        run.step += 1
        run.elapsed = time.perf_counter() - t_start
        running.append(loss)
        if run.step % 25 == 0 or run.progress() >= 1.0:
            mean = float(np.mean(running))
            run.history.append({"step": run.step, "elapsed_s": round(run.elapsed, 2), "lr": lr, "loss": mean})
            running = []
        if run.step % tr.val_every == 0 and run.val is not None:
            run.history.append({"step": run.step, "elapsed_s": round(run.elapsed, 2), **run.validation()})
        if run.step - last_ckpt >= tr.checkpoint_every:
            run.save_state()
            last_ckpt = run.step
        metrics = {"loss": loss, **run.latest}
        report(
            callback,
            step=run.step,
            total=total,
            metrics=metrics,
            message="training",
            seconds=run.elapsed,
            budget=tr.budget_s,
        )


def _finish(run, resumed_at):
    """Final validation, the automatic InDI step count, and the model folder's files."""
    last = next((h for h in reversed(run.history) if "psnr_input" in h), None)
    if last is not None and last["step"] == run.step:
        # the loop validated at this very step: validating again would repeat that entry in history.json
        final_val = {k: v for k, v in last.items() if k.startswith("psnr_")}
    else:
        final_val = run.validation()
        if final_val:
            run.history.append({"step": run.step, "elapsed_s": round(run.elapsed, 2), **final_val})
    run.net.eval()
    run.save_state()
    inf = run.config.inference
    steps_auto = None
    if run.val is not None and inf.auto_steps and not _onestep(run.config):
        lq, hq, masks, contexts = run.val
        best, table = select_steps(
            run.net,
            lq,
            hq,
            masks=masks,
            contexts=contexts,
            candidates=inf.auto_steps,
            psnr_tolerance=inf.auto_psnr_tolerance,
            data_range=run.data.data_range,
        )
        steps_auto = {
            "best": best,
            "objective": "validation PSNR (fewest steps within auto_psnr_tolerance dB of the best)",
            "at_edge": at_edge(best, table),
            "table": {str(k): v for k, v in table.items()},
        }
    grey_map = _grey_map(run.data, run.regions[0])
    info = {
        "steps_auto": steps_auto,
        "grey_map": grey_map,
        "classical": _classical(run.data, run.regions[0], grey_map),
        "train": {
            "steps": run.step,
            "elapsed_s": run.elapsed,
            "crop": run.crop,
            "device": str(run.device),
            "train_slices": len(run.regions[0]),
            "val_slices": len(run.regions[1]),
        },
        "validation": final_val,
    }
    _save_model(run.out_dir, run.net, run.config, run.data, info)
    _write_history(run.out_dir, run.history)
    log.info("trained %d steps in %.0f s; validation %s", run.step, run.elapsed, final_val)
    return TrainResult(run.out_dir, run.step, run.elapsed, run.history, final_val, resumed_at, steps_auto)


def _grey_map(data, regions):
    """The least-squares LQ → HQ grey-level line on the training regions (inside the mask), for the bicubic
    baseline of ``enhance``/``evaluate``: fitted where InDI learns its own mapping, and nowhere else.
    """
    lq = np.concatenate([data.lq[i, r0:r1].ravel() for i, r0, r1 in regions])
    hq = np.concatenate([data.hq[i, r0:r1].ravel() for i, r0, r1 in regions])
    mask = None
    if data.mask is not None:
        mask = np.concatenate([data.mask[i, r0:r1].ravel() for i, r0, r1 in regions])
    return fit_grey_map(lq, hq, mask)


def _onestep(config):
    return config.training.objective == "onestep"


def _classical(data, regions, grey_map, *, n_crops=4, crop=192):
    """NLM and Gaussian parameters tuned on central crops of up to ``n_crops`` training slices (the
    grey-mapped bicubic LQ against the HQ; :func:`~matsight.restore.classical.tune_classical`), for the
    classical rows of ``evaluate``.
    """
    if not regions:
        return None
    pick = np.linspace(0, len(regions) - 1, min(n_crops, len(regions))).round().astype(int)
    lq, hq, mk = [], [], []
    for i, r0, r1 in (regions[j] for j in pick):
        ny, nx = r1 - r0, data.lq.shape[2]
        cy, cx = min(crop, ny), min(crop, nx)
        sl = (i, slice(r0 + (ny - cy) // 2, r0 + (ny - cy) // 2 + cy), slice((nx - cx) // 2, (nx + cx) // 2))
        lq.append(apply_grey_map(data.lq[sl], grey_map))
        hq.append(data.hq[sl])
        mk.append(None if data.mask is None else data.mask[sl])
    return tune_classical(lq, hq, mk, data_range=data.data_range)


def train(
    data,
    out_dir,
    *,
    config=None,
    budget=None,
    callback=None,
    resume=True,
    device="auto",
    slices=None,
    val_slices=None,
    preset="cpu",
    **overrides,
):
    """Train an InDI restoration model on a registered pair; resumable and time-budgeted.

    Parameters
    ----------
    data : (lq_up, hq), Pair or path
        The training pair on one grid, normalised to [−1, 1]: a ``(lq_up, hq)`` tuple of arrays (2D slices or
        3D ZYX volumes, trained slice-wise on the xy planes), a :class:`~matsight.restore.pair_io.Pair`, or
        a pair folder of ``matsight restore register`` (:func:`~matsight.restore.register.prepare_pair`).
        A pair carries its field-of-view mask, normalisation statistics and scale into the model.
    out_dir : str or Path
        Model folder (created). If it holds an unfinished run with the same network and pair and ``resume`` is
        True, training continues from it.
    config : RestoreConfig, optional
        Full configuration; default the ``preset``'s (``"cpu"``). ``overrides`` apply on top of either, by
        dotted (``**{"training.steps": 500}``) or flat name (``crop=64``, ``max_steps=500``).
    budget : float or str, optional
        Wall-clock budget of the whole run, seconds (or ``"20m"``). With ``config`` given, the run ends at
        ``config.training.steps`` or the budget, whichever comes first; without, a budget without a step count
        among the overrides trains until it ends (:func:`~matsight.restore.config.make_config`).
    callback : callable, optional
        A :mod:`matsight.progress` callback, called after every step with a
        :class:`~matsight.progress.Progress`: ``step``, ``total`` (None when only the budget bounds the run),
        ``metrics`` (``loss`` of the step and the latest validation PSNRs ``psnr_input``, ``psnr_1``,
        ``psnr_N``), ``seconds``, ``budget``. A ``KeyboardInterrupt`` raised there or by Ctrl-C saves the
        training state first, so the run can be resumed.
    resume : bool
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``.
    slices : sequence of int, optional
        Train and validate on these slices only (e.g. to hold out a test block); a 2.5D network still reads
        its neighbouring LQ slices from the whole stack.
    val_slices : sequence of int, optional
        Validate on these of the training slices (default: the last ``training.val_fraction`` of them).

    Returns
    -------
    TrainResult
    """
    config = _run_config(config, preset, budget, overrides)
    data = as_training_pair(data)
    if config.model.context and data.lq.shape[0] == 1:
        log.warning("a single slice has no neighbours: training without LQ slice context (context=0)")
        config = with_overrides(config, **{"model.context": 0})
    out_dir = Path(out_dir)
    # the saved run is checked before any work: another network or pair is refused, a finished run not redone
    state, done = _finished(out_dir, config, data) if resume else (None, None)
    if done is not None:
        return done
    run = _start(config, data, out_dir, state, device, slices, val_slices)
    make_folder(out_dir)
    resumed_at = run.step
    try:
        _loop(run, callback)
    except KeyboardInterrupt:
        run.save_state()
        log.warning("interrupted at step %d; the state is saved, run again to resume", run.step)
        raise
    return _finish(run, resumed_at)


def _write_history(out_dir, history):
    write_json(out_dir / "history.json", history)
    fig = curves_figure(history)
    with atomic_path(out_dir / "curves.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")  # the legends sit outside the axes
    import matplotlib.pyplot as plt

    plt.close(fig)


def curves_figure(history):
    """Training loss and learning rate, and the validation PSNRs, against the optimiser step (a figure)."""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend

    from ..report.style import axis_label, legend_outside

    tr = [h for h in history if "loss" in h]
    va = [h for h in history if "psnr_1" in h]
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
    if tr:
        axes[0].plot([h["step"] for h in tr], [h["loss"] for h in tr], label="training loss")
        axes[0].set_yscale("log")
        ax2 = axes[0].twinx()
        ax2.plot([h["step"] for h in tr], [h["lr"] for h in tr], color="0.6", lw=0.8, label="learning rate")
        ax2.set_ylabel("learning rate")
        # one legend for both axes, outside the data (right of the learning-rate axis)
        handles = axes[0].get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        legend_outside(axes[0], handles=handles, bbox_to_anchor=(1.18, 1.0))
    axes[0].set_xlabel(axis_label("optimiser step"))
    axes[0].set_ylabel(axis_label("reverse-Huber loss", "normalised units"))
    if va:
        keys = [k for k in va[-1] if k.startswith("psnr_")]
        for k in keys:
            label = "LQ input" if k == "psnr_input" else f"InDI N = {k.removeprefix('psnr_')}"
            steps = [h["step"] for h in va if k in h]
            axes[1].plot(steps, [h[k] for h in va if k in h], marker="o", label=label)
        legend_outside(axes[1])
    axes[1].set_xlabel(axis_label("optimiser step"))
    axes[1].set_ylabel(axis_label("validation PSNR", "dB"))
    fig.tight_layout()
    return fig

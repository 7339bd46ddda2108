"""Training of the InDI restoration network on one registered LQ/HQ pair.

Paper recipe (``papers/indi_4d_nanotomography.txt``, Methods): random crops with flips and rotations, both
images in [−1, 1], one-cycle LR schedule with cosine annealing (maximum 5e-4), reverse-Huber loss, 10 % of
the slices held out for validation. Here the schedule runs on the *progress* of the run,
``max(step / max_steps, elapsed / budget)``, so a wall-clock budget (``--budget 20m``) still gets the whole
warm-up/anneal cycle.

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

import numpy as np

from .._atomic import make_folder
from .._errors import InputError
from .config import RestoreConfig, load_config, make_config

log = logging.getLogger(__name__)

__all__ = ["train", "TrainResult", "load_model", "one_cycle_lr", "split_validation", "as_training_pair"]

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
_NET_FIELDS = (
    "features",
    "time_embedding",
    "space_to_depth",
    "blocks_per_level",
    "dilated_bottleneck",
    "subpixel_upsample",
    "first_kernel",
    "last_kernel",
    "activation",
    "output_activation",
    "prediction",
    "context",
)


@dataclass
class TrainResult:
    """What :func:`train` did: where the model is, how far it got and its validation figures."""

    model_dir: Path
    steps: int
    elapsed_s: float
    history: list = field(default_factory=list)
    validation: dict = field(default_factory=dict)
    resumed_at: int = 0  # the step a resumed run started at; equal to ``steps`` when it was already finished


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

    @functools.cached_property
    def fingerprint(self):
        """Shape and content hash of the pair, stored in the run: resuming on another pair is refused."""
        h = hashlib.blake2b(digest_size=16)
        for a in (self.lq, self.hq):
            h.update(np.ascontiguousarray(a).data)
        return {"shape": list(self.lq.shape), "hash": h.hexdigest()}

    def context(self, index, config, window=(slice(None), slice(None))):
        """The LQ neighbours of slice ``index`` (``(2·context, ...)``), inside the ``(rows, cols)`` window."""
        from .indi import context_slices

        view = self.lq[(slice(None), *window)]  # a view: only the window is copied
        return context_slices(view, index, context=config.context, step=self.context_step)


def as_training_pair(pair):
    """Accept a :class:`~matsight.restore.pair_io.Pair`, a pair folder, or ``(lq_up, hq)`` arrays;
    validate.
    """
    from .pair_io import Pair, load_pair

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
    unit = config.space_to_depth * 2 ** (len(config.features) - 1)
    rows = min(r1 - r0 for _, r0, r1 in train_regions)
    limit = min(rows, data.lq.shape[2])
    crop = min(config.crop, limit)
    crop = (crop // unit) * unit
    if crop < unit:
        raise InputError(
            f"the training images ({rows}×{data.lq.shape[2]} px) are smaller than the network's "
            "minimum input "
            f"({unit} px); give larger slices or the cpu preset"
        )
    if crop != config.crop:
        log.warning("training crops reduced from %d to %d px to fit the images", config.crop, crop)
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
        if config.rotations:
            k = int(rng.integers(4))
            a, b, w, c = (np.rot90(v, k, axes=(-2, -1)) for v in (a, b, w, c))
        if config.flips:
            if rng.random() < 0.5:
                a, b, w, c = (v[..., ::-1, :] for v in (a, b, w, c))
            if rng.random() < 0.5:
                a, b, w, c = (v[..., ::-1] for v in (a, b, w, c))
        lq.append(np.ascontiguousarray(a))
        hq.append(np.ascontiguousarray(b))
        wt.append(np.ascontiguousarray(w))
        ctx.append(np.ascontiguousarray(c))
    cond = np.stack(ctx) if config.context else None
    return np.stack(lq)[:, None], np.stack(hq)[:, None], np.stack(wt)[:, None], cond


def _validation_set(data, regions, config, max_slices=8):
    if not regions:
        return None
    if len(regions) > max_slices:
        pick = np.linspace(0, len(regions) - 1, max_slices).round().astype(int)
        regions = [regions[i] for i in pick]
    lq, hq, mk, ctx = [], [], [], []
    vc = config.val_crop
    for i, r0, r1 in regions:
        ny, nx = r1 - r0, data.lq.shape[2]
        cy, cx = (min(vc, ny), min(vc, nx)) if vc else (ny, nx)
        y0, x0 = r0 + (ny - cy) // 2, (nx - cx) // 2
        sl = (i, slice(y0, y0 + cy), slice(x0, x0 + cx))
        lq.append(data.lq[sl])
        hq.append(data.hq[sl])
        mk.append(None if data.mask is None else data.mask[sl])
        ctx.append(data.context(i, config, sl[1:]) if config.context else None)
    return lq, hq, mk, ctx


def _psnr(a, b, mask=None):
    # data range of the normalised images is 2 ([-1, 1])
    d = (a - b) if mask is None else (a - b)[mask]
    mse = float(np.mean(np.square(d, dtype=np.float64)))
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)


def validate(net, val, *, steps_list=(1,), config=None, batch=4):
    """Mean PSNR (dB, on the [−1, 1] scale, inside the mask) of the sampler with each ``N`` in ``steps_list``
    on the validation crops, plus the bicubic input's.
    """
    from .indi import sample_image

    lq, hq, mk, ctx = val
    out = {"psnr_input": float(np.mean([_psnr(a, b, m) for a, b, m in zip(lq, hq, mk, strict=True)]))}
    for n in steps_list:
        vals = []
        for a, b, m, c in zip(lq, hq, mk, ctx, strict=True):
            pred = sample_image(net, a, steps=n, tile=config.tile if config else 1024, batch=batch, context=c)
            vals.append(_psnr(pred, b, m))
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
    import torch

    from ..nn.checkpoint import save_checkpoint

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
    from ..nn.checkpoint import save_checkpoint

    save_checkpoint(out_dir / MODEL_FILE, {"model": net.state_dict()}, _model_meta(config, data, extra))


def _check_resumable(out_dir, meta, config, data):
    """Refuse to resume the run whose state has ``meta`` with another network or on another pair."""
    old = load_config(meta["config"])
    diff = [f for f in _NET_FIELDS if getattr(old, f) != getattr(config, f)]
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
    import torch

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


def load_model(model_dir, *, device="cpu"):
    """Load a trained restore model: returns ``(net, meta)``; ``meta`` has ``config`` (a
    :class:`RestoreConfig`), ``stats`` (LQ/HQ normalisation), ``transform`` (scale, ...) and training info.
    """
    from ..nn.checkpoint import load_checkpoint
    from ..nn.device import resolve_device
    from .indi import build_network

    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE if model_dir.is_dir() else model_dir
    if not path.is_file():
        raise InputError(
            f"no restore model at {model_dir}; train one with `matsight restore train PAIR --out MODEL`"
        )
    dev = resolve_device(device)
    groups, meta = load_checkpoint(path, device="cpu")
    if meta.get("format") != "matsight-restore-model":
        raise InputError(f"{path} is not a matsight restore model (format {meta.get('format')!r})")
    config = load_config(meta["config"])
    net = build_network(config)
    net.load_state_dict(groups["model"])
    net.to(dev).eval()
    meta = dict(meta)
    meta["config"] = config
    return net, meta


# ---------------------------------------------------------------------------------------------------- train
def train(
    pair,
    out_dir,
    *,
    config=None,
    preset="cpu",
    resume=True,
    device="auto",
    progress=False,
    callback=None,
    slices=None,
    val_slices=None,
    **overrides,
):
    """Train an InDI restoration model on a registered pair; resumable and time-budgeted.

    Parameters
    ----------
    pair : Pair, path or (lq_up, hq)
        The training pair on one grid, normalised to [−1, 1]
        (:func:`~matsight.restore.register.prepare_pair`).
        2D slices or 3D volumes (trained slice-wise on the xy planes).
    out_dir : str or Path
        Run folder (created). If it holds an unfinished run with the same network and ``resume`` is True,
        training continues from it.
    config : RestoreConfig, optional
        Full configuration; otherwise built from ``preset`` and ``overrides`` (e.g. ``budget_s=1200``,
        ``max_steps=500``).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``.
    progress : bool
        Show a progress bar.
    callback : callable, optional
        ``callback(step, loss)`` after every step (e.g. for a GUI). A ``KeyboardInterrupt`` raised there or by
        Ctrl-C saves the training state first, so the run can be resumed.
    slices : sequence of int, optional
        Train and validate on these slices only (e.g. to hold out a test block); a 2.5D network still reads
        its neighbouring LQ slices from the whole stack.
    val_slices : sequence of int, optional
        Validate on these of the training slices (default: the last ``config.val_fraction`` of them).

    Returns
    -------
    TrainResult
    """
    import torch

    from ..nn.device import resolve_device
    from .indi import build_network, indi_loss

    if config is None:
        config = make_config(preset, **overrides)
    elif overrides:
        base = config.model_dump(exclude={"preset"})
        config = make_config(
            config.preset if config.preset in ("cpu", "paper") else "cpu", **{**base, **overrides}
        )
    if not isinstance(config, RestoreConfig):
        raise InputError("config must be a RestoreConfig (see matsight.restore.config.make_config)")
    data = as_training_pair(pair)
    if config.context and data.lq.shape[0] == 1:
        log.warning("a single slice has no neighbours: training without LQ slice context (context=0)")
        config = config.model_copy(update={"context": 0})
    out_dir = Path(out_dir)

    def progress_of(step, elapsed):
        p = step / config.max_steps
        if config.budget_s:
            p = max(p, elapsed / config.budget_s)
        return p

    # the saved run is checked before any work: another network or pair is refused, a finished run not redone
    state = None
    if resume and (out_dir / STATE_FILE).is_file():
        from ..nn.checkpoint import load_checkpoint

        state = load_checkpoint(out_dir / STATE_FILE)
        _check_resumable(out_dir, state[1], config, data)
        step, elapsed = int(state[1]["step"]), float(state[1]["elapsed_s"])
        if progress_of(step, elapsed) >= 1.0 and (out_dir / MODEL_FILE).is_file():
            # redoing the final validation and step selection would only rewrite the same model
            validation = load_checkpoint(out_dir / MODEL_FILE)[1].get("validation") or {}
            log.info("%s already holds a finished run of %d steps", out_dir, step)
            return TrainResult(out_dir, step, elapsed, list(state[1].get("history", [])), validation, step)
    dev = resolve_device(device)
    train_regions, val_regions = split_validation(
        data.lq.shape, config.val_fraction, config.crop, slices, val_slices
    )
    crop = _effective_crop(config, data, train_regions)
    val = _validation_set(data, val_regions, config)

    torch.manual_seed(config.seed)
    net = build_network(config).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr_max, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    tgen = torch.Generator(device="cpu").manual_seed(config.seed + 1)

    step, elapsed, history = 0, 0.0, []
    if state is not None:
        step, elapsed, history = _load_state(*state, net, opt, rng, tgen)
        log.info("resuming %s at step %d (%.0f s trained)", out_dir, step, elapsed)
    make_folder(out_dir)
    resumed_at = step

    bar = task = None
    if progress:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
        )
        bar.start()
        task = bar.add_task("train", total=1.0, info="")

    def run_validation():
        if val is None:
            return {}
        res = validate(net, val, steps_list=(1, config.steps), config=config)
        net.train()
        return res

    running = []
    t_start = time.perf_counter() - elapsed
    last_ckpt = step
    try:
        net.train()
        while progress_of(step, elapsed) < 1.0:
            lr = one_cycle_lr(
                progress_of(step, elapsed),
                lr_max=config.lr_max,
                pct_start=config.pct_start,
                div_factor=config.div_factor,
                final_div_factor=config.final_div_factor,
            )
            for g in opt.param_groups:
                g["lr"] = lr
            a, b, w, c = _draw_batch(data, train_regions, crop, config.batch, rng, config)
            y = torch.from_numpy(a).to(dev)
            x = torch.from_numpy(b).to(dev)
            wt = torch.from_numpy(w).to(dev) if data.mask is not None else None
            cond = None if c is None else torch.from_numpy(c).to(dev)
            loss = indi_loss(net, x, y, config=config, generator=tgen, weight=wt, cond=cond)
            if not torch.isfinite(loss):
                raise RuntimeError(f"training diverged at step {step} (loss {loss.item()}); lower lr_max")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            elapsed = time.perf_counter() - t_start
            last_loss = loss.item()
            running.append(last_loss)
            if step % 25 == 0 or progress_of(step, elapsed) >= 1.0:
                history.append(
                    {"step": step, "elapsed_s": round(elapsed, 2), "lr": lr, "loss": float(np.mean(running))}
                )
                running = []
            if step % config.val_every == 0 and val is not None:
                history.append({"step": step, "elapsed_s": round(elapsed, 2), **run_validation()})
            if step - last_ckpt >= config.checkpoint_every:
                _save_state(out_dir, net, opt, config, data, step, elapsed, rng, tgen, history)
                last_ckpt = step
            if callback is not None:
                callback(step, last_loss)
            if bar is not None:
                bar.update(
                    task,
                    completed=min(1.0, progress_of(step, elapsed)),
                    info=f"step {step} loss {last_loss:.4f}",
                )
    except KeyboardInterrupt:
        _save_state(out_dir, net, opt, config, data, step, elapsed, rng, tgen, history)
        log.warning("interrupted at step %d; the state is saved, run again to resume", step)
        raise
    finally:
        if bar is not None:
            bar.stop()
    final_val = run_validation()
    if final_val:
        history.append({"step": step, "elapsed_s": round(elapsed, 2), **final_val})
    net.eval()
    _save_state(out_dir, net, opt, config, data, step, elapsed, rng, tgen, history)
    steps_auto = None
    if val is not None and config.auto_steps:
        from .steps import select_steps

        best, table = select_steps(
            net,
            val[0],
            val[1],
            masks=val[2],
            contexts=val[3],
            candidates=config.auto_steps,
            psnr_tolerance=config.auto_psnr_tolerance,
        )
        steps_auto = {"best": best, "table": {str(k): v for k, v in table.items()}}
    info = {
        "steps_auto": steps_auto,
        "train": {
            "steps": step,
            "elapsed_s": elapsed,
            "crop": crop,
            "device": str(dev),
            "train_slices": len(train_regions),
            "val_slices": len(val_regions),
        },
        "validation": final_val,
    }
    _save_model(out_dir, net, config, data, info)
    _write_history(out_dir, history)
    log.info("trained %d steps in %.0f s; validation %s", step, elapsed, final_val)
    return TrainResult(out_dir, step, elapsed, history, final_val, resumed_at)


def _write_history(out_dir, history):
    from .._atomic import atomic_path, write_json

    write_json(out_dir / "history.json", history)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    tr = [h for h in history if "loss" in h]
    va = [h for h in history if "psnr_1" in h]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if tr:
        axes[0].plot([h["step"] for h in tr], [h["loss"] for h in tr], label="training loss")
        axes[0].set_yscale("log")
        ax2 = axes[0].twinx()
        ax2.plot([h["step"] for h in tr], [h["lr"] for h in tr], color="0.6", lw=0.8, label="learning rate")
        ax2.set_ylabel("learning rate")
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("reverse-Huber loss")
    if va:
        keys = [k for k in va[-1] if k.startswith("psnr_")]
        for k in keys:
            axes[1].plot([h["step"] for h in va if k in h], [h[k] for h in va if k in h], marker="o", label=k)
        axes[1].legend()
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("validation PSNR (dB)")
    fig.tight_layout()
    with atomic_path(out_dir / "curves.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)

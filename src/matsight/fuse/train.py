"""SuperRes training: WGAN-GP with a voxel-wise LR consistency term (paper Algorithm 1).

Every iteration the critic(s) score slices of generated volumes against random HR crops (with a gradient
penalty), one critic step per slicing axis (``critic_steps="joint"``: a shared critic's one step on all three
axes together); every ``g_every``-th iteration the generator is updated with
``-critic(slices) + 10 · voxel-wise loss`` (the latter only when above 0.005). Training is budgeted
(``iterations`` and/or ``budget`` seconds), resumable (``last.safetensors`` holds generator, critics,
optimiser tensors, iteration and RNG states), and logs cheap metrics — phase fractions and surface areas of
generated slices vs the HR images, and agreement of the degraded output with the LR input — which decide the
best checkpoint (``best.safetensors``), the paper's suggested stopping rule for a loss without a convergence
criterion; the slices' Euler densities (grains per area) are logged beside them.

Run folder::

    RUN/last.safetensors   everything needed to resume
    RUN/best.safetensors   generator of the best-scoring evaluation (used by generation)
    RUN/metrics.csv, metrics.json, training_curves.png, config.json
    RUN/hr_reference.json  the HR images' values of the logged slice metrics
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .._atomic import make_folder, write_json, write_text
from .._duration import parse_duration
from .._errors import InputError, settings_message
from ..metrics.microstructure import euler_density
from .config import FuseConfig, make_config
from .data import HRSampler, LRSampler, as_hr_stack, as_labels, one_hot, phase_count, stack_order_warnings
from .degrade import downsample, voxelwise_loss, voxelwise_term
from .networks import build_critics, build_generator

log = logging.getLogger(__name__)

__all__ = [
    "train",
    "parse_duration",
    "TrainResult",
    "load_generator",
    "slice_metrics",
    "adversarial_loss",
    "critic_view",
    "saved_config",
]

LAST, BEST = "last.safetensors", "best.safetensors"


@dataclass
class TrainResult:
    """What :func:`train` leaves behind."""

    run_dir: Path
    iterations: int
    seconds: float
    best_iteration: int | None
    best_score: float | None
    seconds_per_iteration: float


# ---------------------------------------------------------------------------------------------- metrics
def slice_metrics(labels, n_phases):
    """Phase fractions, boundary densities and Euler densities of 2D label slices ``(N, H, W)``.

    The three 2D Minkowski functionals per phase, cheap and measured alike on HR and generated slices.
    Boundary density is face counting in 2D: the share of neighbouring pixel pairs (horizontal and
    vertical) with exactly one pixel of that phase; it tracks the specific surface area. Euler density is
    grains minus holes per pixel (edge-connected, Gray's bit quads inside the slices:
    :func:`matsight.metrics.microstructure.euler_density`); it tracks whether a phase is cut into the
    HR image's grains or joined by necks. Accepts torch or numpy.
    """
    t = torch.as_tensor(np.asarray(labels) if not torch.is_tensor(labels) else labels).long()
    labels_np = t.numpy()
    vf, sa, eu = [], [], []
    for p in range(n_phases):
        m = t == p
        vf.append(float(m.float().mean()))
        dy = (m[:, 1:, :] != m[:, :-1, :]).float()
        dx = (m[:, :, 1:] != m[:, :, :-1]).float()
        sa.append(float((dy.sum() + dx.sum()) / (dy.numel() + dx.numel())))
        eu.append(euler_density(labels_np, p, slice_axis=0))
    return np.array(vf), np.array(sa), np.array(eu)


def lr_agreement(degraded, lr, *, material_only=False):
    """Share of LR voxels that the degraded SR labels reproduce.

    With ``material_only`` (the paper's separator mode, where the SR adds material the LR cannot show) only
    the LR's material voxels count: the share of them that stay material, as the loss demands.
    """
    degraded, lr = np.asarray(degraded), np.asarray(lr)
    if material_only:
        material = lr > 0
        return float((degraded[material] == lr[material]).mean()) if material.any() else 1.0
    return float((degraded == lr).mean())


def _update_ema(ema, gen, decay, k):
    # warm-up: the average starts from the latest weights instead of the random initialisation
    d = min(decay, (1 + k) / (10 + k))
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), gen.parameters(), strict=True):
            pe.lerp_(p, 1.0 - d)


def _recalibrate_batchnorm(net, x):
    """Set the BatchNorm statistics of ``net`` to those of its own activations on ``x``.

    The averaged weights need their own statistics: the running ones of the training generator belong to
    other weights, and with them the average's phase fractions swing from one evaluation to the next.
    """
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: one pass over x gives exactly x's statistics
    net.train()
    with torch.no_grad():
        net(x)
    for m, mo in zip(bns, momenta, strict=True):
        m.momentum = mo
    net.eval()


def _representative_crops(lr, crop, n, n_phases, rng, draws=64):
    """Of ``draws`` random sets of ``n`` LR crops, the one whose phase fractions best match ``lr``."""
    sampler = LRSampler(lr, crop=crop, n_phases=n_phases, rng=rng)
    whole = np.bincount(np.asarray(lr).ravel(), minlength=n_phases) / np.asarray(lr).size
    best, best_err = None, np.inf
    for _ in range(draws):
        crops = sampler.sample_labels(n)
        err = np.abs(np.bincount(crops.ravel(), minlength=n_phases) / crops.size - whole).sum()
        if err < best_err:
            best, best_err = crops, err
    return best


def _score(vf, sa, vf_hr, sa_hr, lr_agree):
    # the paper's cheap-metric stopping rule, one number: VF error + relative surface error + LR mismatch
    rel_sa = np.abs(sa - sa_hr) / np.maximum(sa_hr, 1e-6)
    return float(np.abs(vf - vf_hr).sum() + rel_sa.mean() + (1.0 - lr_agree))


# ---------------------------------------------------------------------------------------------- state i/o
def _optim_groups(opt):
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    return tensors, sd["param_groups"]


def _load_optim(opt, tensors, groups):
    state = {}
    for key, v in tensors.items():
        i, _, name = key.partition(".")
        state.setdefault(int(i), {})[name] = v
    opt.load_state_dict({"state": state, "param_groups": groups})


def _save(path, cfg, gen, critics, opt_g, opt_ds, meta_extra, *, full=True, ema=None, tgen=None):
    from ..nn.checkpoint import save_checkpoint

    # a full (resumable) checkpoint keeps the raw generator and its average; a best one the generator to use
    groups = {"generator": (gen if full or ema is None else ema).state_dict()}
    if full and ema is not None:
        groups["generator_ema"] = ema.state_dict()
    meta = {"config": cfg.model_dump(mode="json"), "kind": "matsight.fuse", **meta_extra}
    if full:
        for i, c in enumerate(critics):
            groups[f"critic{i}"] = c.state_dict()
        t, pg = _optim_groups(opt_g)
        groups["opt_g"] = t
        meta["opt_g_groups"] = pg
        for i, o in enumerate(opt_ds):
            t, pg = _optim_groups(o)
            groups[f"opt_d{i}"] = t
            meta[f"opt_d{i}_groups"] = pg
        groups["rng"] = {"torch": torch.get_rng_state()}
        if tgen is not None:  # the sampling generator too, so a resumed run draws what an unbroken one would
            groups["rng"]["sampling"] = tgen.get_state()
    groups = {k: v for k, v in groups.items() if v}
    save_checkpoint(path, groups, meta)


def load_generator(path, device="cpu"):
    """Rebuild the trained generator (eval mode) and its config from a checkpoint or run folder."""
    from ..nn.checkpoint import load_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / BEST if (path / BEST).is_file() else path / LAST
    groups, meta = load_checkpoint(path, device=device)
    if meta.get("kind") != "matsight.fuse" or "generator" not in groups:
        raise InputError(
            f"{path} is not a matsight fuse checkpoint; give the folder of `matsight fuse train`"
        )
    cfg = FuseConfig.from_saved(meta["config"])
    gen = build_generator(cfg).to(device)
    gen.load_state_dict(groups.get("generator_ema") or groups["generator"])
    gen.eval()
    return gen, cfg, meta


# ---------------------------------------------------------------------------------------------- slicing
def adversarial_loss(critics, fake, axes, cfg, gen=None):
    """The generator's Wasserstein term: minus the critics' mean score over the slices of all ``axes``.

    A mean, not a sum, over the axes: the paper scores the slices of all three planes as one batch,
    ``l_G = −D(sr_slices) + c·l_vw`` (its Algorithm 1; the reference code adds ``c·l_vw`` once per axis to a
    per-axis sum, the same ratio), so the voxel-wise coefficient keeps its weight whatever the number of axes.
    """
    total = 0.0
    for a in axes:
        critic = critics[a if len(critics) > 1 else 0]
        total = total - critic(_slices(fake, a, cfg.edge_crop, cfg.slices_per_volume, gen)).mean()
    return total / len(axes)


def critic_view(probs, kind="soft"):
    """What the critics see of generated phase probabilities ``(B, n, ...)``.

    ``"soft"``: the probabilities themselves (the paper). ``"hard"``: their argmax as one-hot, with the
    probabilities' gradient (straight-through): real slices are one-hot, so a critic shown probabilities can
    score a fake by its softness alone, which measured (benchmarks/README.md) dwarfs what it learns of
    structure.
    """
    if kind == "soft":
        return probs
    hard = torch.zeros_like(probs).scatter_(1, probs.argmax(1, keepdim=True), 1.0)
    return hard + probs - probs.detach()


def _slices(vol, axis, crop, k=None, gen=None):
    """Edge-cropped ``(B, n, S, S, S)`` volume → ``(B·k, n, S, S)`` slices normal to ``axis``."""
    if crop:
        vol = vol[:, :, crop:-crop, crop:-crop, crop:-crop]
    b, n, s = vol.shape[:3]
    v = vol.movedim(2 + axis, 1)  # (B, S_axis, n, S, S)
    if k is not None and k < s:
        idx = torch.randperm(s, generator=gen)[:k].to(vol.device)
        v = v.index_select(1, idx)
    return v.reshape(-1, n, v.shape[-2], v.shape[-1])


def _gradient_penalty(critic, real, fake, gen):
    m = min(len(real), len(fake))
    real, fake = real[:m], fake[:m]
    alpha = torch.rand(m, 1, 1, 1, generator=gen).to(real.device)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return ((grad.reshape(m, -1).norm(2, dim=1) - 1) ** 2).mean()


# ---------------------------------------------------------------------------------------------- training
def _validate_inputs(lr, hr, hr_y, hr_z, cfg):
    lr = as_labels(lr, name="LR volume")
    if lr.ndim != 3:
        raise InputError(
            f"LR volume must be 3D (ZYX), got shape {lr.shape}; give the low-res 3D label volume"
        )
    hr = as_hr_stack(hr, name="HR image")
    extra = [
        as_hr_stack(h, name=f"HR {n} image") for h, n in ((hr_y, "--hr-y"), (hr_z, "--hr-z")) if h is not None
    ]
    if cfg.anisotropic:
        if len(extra) != 2:
            raise InputError(
                "anisotropic training needs an HR stack per slicing axis: give --hr (slices normal to x), "
                "--hr-y and --hr-z, or drop --anisotropic"
            )
        # stacks in axis order: normal to z (axis 0), y (axis 1), x (axis 2)
        stacks = [extra[1], extra[0], hr]
    else:
        if extra:
            raise InputError(
                "--hr-y/--hr-z are for anisotropic materials; add --anisotropic or give only --hr"
            )
        stacks = [hr]
    n_hr = phase_count(stacks, name="the HR images")
    n_lr = phase_count([lr], name="the LR volume")
    if n_lr < 2:
        raise InputError(
            "the LR volume holds one phase only (label 0); it must show pore (0) and at least one more phase"
        )
    if n_lr > n_hr:
        raise InputError(
            f"the LR volume has {n_lr} phases but the HR images only {n_hr}; the HR images must show every "
            "phase of the LR volume (check the files or relabel)"
        )
    return lr, stacks, n_hr, n_lr


def _fingerprint(lr, stacks):
    # identifies the training data, so that a resumed run refuses other files
    def digest(a):
        h = hashlib.blake2b(str(a.shape).encode(), digest_size=16)
        h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    return {"lr": digest(lr), "hr": [digest(s) for s in stacks]}


# settings a resumed run takes from the new call; every other one must match the run's
_BOOKKEEPING = ("metrics_every", "checkpoint_every", "checkpoint_minutes")


def _changed_settings(saved, cfg):
    """``["name: run's → given", ...]`` of the settings in which ``cfg`` differs from the run's ``saved``."""
    skip = {*_BOOKKEEPING, "n_hr_phases", "n_lr_phases"}
    out = []
    for name in FuseConfig.model_fields:
        a, b = getattr(saved, name), getattr(cfg, name)
        if name not in skip and a != b:
            out.append(f"{name}: {a} in the run, {b} given")
    return out


def saved_config(out_dir):
    """The settings of the run in ``out_dir`` (from its ``last.safetensors``), or None if it holds none.

    Reads the checkpoint's header only; an unreadable or foreign file also gives None (:func:`train`
    reports it when it resumes).
    """
    import json

    from safetensors import safe_open

    path = Path(out_dir) / LAST
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["matsight"])
        return FuseConfig.from_saved(meta["config"]) if meta.get("kind") == "matsight.fuse" else None
    except Exception:
        return None


def train(
    lr,
    hr,
    *,
    out_dir,
    config=None,
    hr_y=None,
    hr_z=None,
    iterations=None,
    budget=None,
    device="cpu",
    resume=True,
    progress=False,
    n_eval=16,
):
    """Train a SuperRes generator on an LR label volume and HR label image(s).

    Parameters
    ----------
    lr : ndarray
        Low-res 3D label volume (ZYX), phases ``0..m-1`` (0 = pore).
    hr : ndarray
        High-res 2D label image or stack ``(N, H, W)``, phases ``0..n-1``, ``n >= m``. For anisotropic data:
        the images of slices normal to x.
    out_dir : str or Path
        Run folder (created). An existing ``last.safetensors`` there is resumed when ``resume``.
    config : FuseConfig, optional
        Default: the resumed run's settings, else ``make_config("cpu")``. Phase counts are filled in from the
        data. Resuming a run with other settings raises :class:`InputError`, except ``metrics_every``,
        ``checkpoint_every`` and ``checkpoint_minutes``, which the resumed run takes from ``config``.
    hr_y, hr_z : ndarray, optional
        HR stacks of slices normal to y and to z (anisotropic only).
    iterations : int, optional
        Stop when the iteration count (including resumed ones) reaches this.
    budget : float or str, optional
        Stop after this much wall time in this call (seconds or ``"20m"``). Default without either: 1000
        iterations.
    device : str
        ``"cpu"``, ``"cuda"`` or ``"auto"``.
    resume : bool
        Continue from ``out_dir/last.safetensors`` if present; the LR and HR data must be the run's.
    progress : bool
        Show a rich progress bar with ETA.
    n_eval : int
        Number of fixed LR crops the cheap metrics are computed on; the set is drawn so that its phase
        fractions match the whole LR volume's (the HR volume fractions it is scored against are those of the
        whole sample, and a few small crops deviate by several percent).

    Returns
    -------
    TrainResult
    """
    from ..nn.device import resolve_device

    cfg = config
    if cfg is None:
        cfg = (saved_config(out_dir) if resume else None) or make_config("cpu")
    lr, stacks, n_hr, n_lr = _validate_inputs(lr, hr, hr_y, hr_z, cfg)
    data_id = _fingerprint(lr, stacks)
    try:
        cfg = FuseConfig(**{**cfg.model_dump(), "n_hr_phases": n_hr, "n_lr_phases": n_lr})
    except Exception as exc:
        raise InputError(settings_message(exc, "fuse")) from None
    if cfg.anisotropic:
        pore = cfg.lr_channels[0]
        for message in stack_order_warnings(
            lr, stacks, scale=cfg.scale, pore_phases=[pore] if isinstance(pore, int) else pore
        ):
            log.warning(message)
    budget_s = parse_duration(budget)
    if iterations is None and budget_s is None:
        iterations = 1000
    if iterations is not None and iterations < 0:
        raise InputError(f"iterations must be ≥ 0, got {iterations}")
    dev = resolve_device(device)
    out_dir = Path(out_dir)

    # ---- resume or start -------------------------------------------------------------------------------
    start_it, history, best = 0, [], {"score": math.inf, "iteration": None}
    groups = meta = None
    if resume and (out_dir / LAST).is_file():
        from ..nn.checkpoint import load_checkpoint

        groups, meta = load_checkpoint(out_dir / LAST)
        if meta.get("kind") != "matsight.fuse" or "config" not in meta:
            raise InputError(
                f"{out_dir / LAST} is not a checkpoint of `matsight fuse train`; give a new --out folder"
            )
        saved = FuseConfig.from_saved(meta["config"])
        known = meta.get("data", data_id)  # runs saved before fingerprints: phase counts only
        other = [
            what
            for what, differs in (
                (
                    f"{saved.n_lr_phases} LR / {saved.n_hr_phases} HR phases, given {n_lr} / {n_hr}",
                    (saved.n_hr_phases, saved.n_lr_phases) != (n_hr, n_lr),
                ),
                ("a different LR volume", known["lr"] != data_id["lr"]),
                ("different HR images", known["hr"] != data_id["hr"]),
            )
            if differs
        ]
        if other:
            raise InputError(
                f"{out_dir} holds a run trained on other data ({other[0]}); give the run's --lr and --hr "
                "files to resume it, or a new --out folder"
            )
        changed = _changed_settings(saved, cfg) if config is not None else []
        if changed:
            raise InputError(
                f"{out_dir} holds a run with other settings ({'; '.join(changed[:4])}"
                f"{'; …' if len(changed) > 4 else ''}); leave those options out to resume it with its own "
                "settings, or give a new --out folder"
            )
        # a resumed run is the same run: its own settings, except how often it logs and saves
        cfg = FuseConfig(**{**saved.model_dump(), **{k: getattr(cfg, k) for k in _BOOKKEEPING}})
        start_it = int(meta["iteration"])
        history = list(meta.get("history", []))
        best = meta.get("best", best)
        if best.get("score") is None:
            best["score"] = math.inf
        log.info("resuming %s at iteration %d", out_dir, start_it)

    torch.manual_seed(cfg.seed + start_it)
    rng = np.random.default_rng(cfg.seed)
    if meta is not None and "numpy_rng" in meta:
        rng.bit_generator.state = meta["numpy_rng"]
    tgen = torch.Generator().manual_seed(cfg.seed + 7919 * (start_it + 1))

    gen = build_generator(cfg).to(dev)
    critics = build_critics(cfg).to(dev)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    opt_ds = [torch.optim.Adam(c.parameters(), lr=cfg.lr, betas=tuple(cfg.betas)) for c in critics]
    ema = None
    if cfg.ema:
        ema = copy.deepcopy(gen).eval().requires_grad_(False)
    if groups is not None:
        gen.load_state_dict(groups["generator"])
        if ema is not None:
            ema.load_state_dict(groups.get("generator_ema") or groups["generator"])
        for i, c in enumerate(critics):
            c.load_state_dict(groups[f"critic{i}"])
        _load_optim(opt_g, groups.get("opt_g", {}), meta["opt_g_groups"])
        for i, o in enumerate(opt_ds):
            _load_optim(o, groups.get(f"opt_d{i}", {}), meta[f"opt_d{i}_groups"])
        if "rng" in groups:
            torch.set_rng_state(groups["rng"]["torch"])
            if "sampling" in groups["rng"]:
                tgen.set_state(groups["rng"]["sampling"])

    hr_sampler = HRSampler(stacks, size=cfg.slice_size, n_phases=n_hr, augment=cfg.hr_augment, rng=rng)
    lr_sampler = LRSampler(lr, crop=cfg.lr_crop, n_phases=n_lr, rng=rng)

    # fixed evaluation inputs and HR reference statistics (all HR images, unaugmented)
    eval_rng = np.random.default_rng(cfg.seed + 1)
    eval_lr = _representative_crops(lr, cfg.lr_crop, n_eval, n_lr, eval_rng)
    eval_noise = torch.from_numpy(
        eval_rng.standard_normal((n_eval, 1, *eval_lr.shape[1:])).astype(np.float32)
    )
    hr_ref = [slice_metrics(s, n_hr) for s in stacks]

    make_folder(out_dir)
    write_json(out_dir / "config.json", cfg.model_dump(mode="json"))
    # what the logged columns vf*, sa*, eu* aim at: one entry per HR stack (x, y, z planes if anisotropic)
    write_json(
        out_dir / "hr_reference.json",
        [{k: v.tolist() for k, v in zip(("vf", "sa", "eu"), ref, strict=True)} for ref in hr_ref],
    )

    def evaluate(it):
        net = ema if ema is not None else gen  # the generator that would be saved as best
        x = torch.cat([one_hot(eval_lr, n_lr), eval_noise], 1).to(dev)
        if ema is not None:
            _recalibrate_batchnorm(ema, x)
        net.eval()
        with torch.no_grad():
            probs = net(x)
            labels = probs.argmax(1)
            down = downsample(
                one_hot(labels.cpu(), n_hr),
                channels=cfg.lr_channels,
                d=cfg.d,
                mode=cfg.mode,
                temperature=cfg.vw_temperature,
            ).argmax(1)
            # the crops' faces are generated without their neighbours, which the whole volume has: the
            # agreement that predicts generation's is the interior's (faces can hold 10 points more)
            m = cfg.lr_margin
            inner = (slice(None),) + (slice(m, -m or None),) * 3
            lr_agree = lr_agreement(down.numpy()[inner], eval_lr[inner], material_only=cfg.material_only_loss)
        gen.train()  # (the average stays in eval mode)
        c = cfg.edge_crop
        vol = labels.cpu()[:, c : -c or None, c : -c or None, c : -c or None]
        vfs, sas, eus = [], [], []
        per_axis = []
        for axis in range(3):
            sl = vol.movedim(1 + axis, 1).reshape(-1, *[vol.shape[1 + a] for a in range(3) if a != axis])
            vf, sa, eu = slice_metrics(sl, n_hr)
            ref_vf, ref_sa, _ = hr_ref[axis if len(hr_ref) > 1 else 0]
            per_axis.append(_score(vf, sa, ref_vf, ref_sa, lr_agree))
            vfs.append(vf)
            sas.append(sa)
            eus.append(eu)
        vf, sa, eu = np.mean(vfs, 0), np.mean(sas, 0), np.mean(eus, 0)
        rec = {
            "iteration": it,
            "time_s": round(time.perf_counter() - t_start + elapsed_before, 2),
            "score": float(np.mean(per_axis)),
            "lr_agreement": lr_agree,
        }
        for p in range(n_hr):
            rec[f"vf{p}"] = float(vf[p])
            rec[f"sa{p}"] = float(sa[p])
            rec[f"eu{p}"] = float(eu[p])
        return rec

    # ---- loop ------------------------------------------------------------------------------------------
    elapsed_before = float(meta.get("seconds", 0.0)) if meta else 0.0
    t_start = time.perf_counter()
    last_ckpt_t = t_start
    it = start_it
    running = {"d_loss": [], "wass": [], "gp": [], "g_adv": [], "vw": []}
    axes = (0, 1, 2)

    def make_fake(grad):
        lr_oh = lr_sampler.sample(cfg.fake_batch).to(dev)
        noise = torch.randn(lr_oh.shape[0], 1, *lr_oh.shape[2:], generator=tgen).to(dev)
        x = torch.cat([lr_oh, noise], 1)
        if grad:
            return lr_oh, gen(x)
        with torch.no_grad():
            return lr_oh, gen(x)

    def checkpoint(final=False):
        nonlocal last_ckpt_t
        extra = {
            "iteration": it,
            "seconds": elapsed_before + time.perf_counter() - t_start,
            "history": history,
            "best": {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in best.items()},
            "numpy_rng": rng.bit_generator.state,
            "data": data_id,
        }
        _save(out_dir / LAST, cfg, gen, critics, opt_g, opt_ds, extra, ema=ema, tgen=tgen)
        _write_logs(out_dir, history)
        last_ckpt_t = time.perf_counter()

    def out_of_time():
        if iterations is not None and it >= iterations:
            return True
        return budget_s is not None and time.perf_counter() - t_start >= budget_s

    bar = _Progress(progress, iterations, budget_s, start_it)
    gen.train()
    try:
        while not out_of_time():
            # (1) critic step(s) on detached fakes
            _, fake = make_fake(grad=False)
            fake = critic_view(fake, cfg.critic_input)
            if len(critics) == 1 and cfg.critic_steps == "joint":
                groups_ax = [(0, axes)]  # one step on all three axes' slices
            else:  # one step per axis (the reference, also with one shared critic)
                groups_ax = [(a if len(critics) > 1 else 0, (a,)) for a in axes]
            for ci, ax_list in groups_ax:
                critic, opt = critics[ci], opt_ds[ci]
                fake_sl = torch.cat(
                    [_slices(fake, a, cfg.edge_crop, cfg.slices_per_volume, tgen) for a in ax_list]
                )
                per_axis_real = max(1, cfg.real_batch // len(ax_list)) if len(ax_list) > 1 else cfg.real_batch
                real = torch.cat([hr_sampler.sample(per_axis_real, a) for a in ax_list]).to(dev)
                d_real = critic(real).mean()
                d_fake = critic(fake_sl).mean()
                gp = _gradient_penalty(
                    critic, real, fake_sl[torch.randperm(len(fake_sl), generator=tgen)], tgen
                )
                d_loss = d_fake - d_real + cfg.gp_lambda * gp
                opt.zero_grad(set_to_none=True)
                d_loss.backward()
                opt.step()
                running["d_loss"].append(float(d_loss.detach()))
                running["wass"].append(float((d_real - d_fake).detach()))
                running["gp"].append(float(gp.detach()))

            # (2) generator step every g_every iterations
            if it % cfg.g_every == 0:
                lr_oh, fake = make_fake(grad=True)
                adv = adversarial_loss(critics, critic_view(fake, cfg.critic_input), axes, cfg, tgen)
                vw = voxelwise_loss(
                    fake,
                    lr_oh,
                    channels=cfg.lr_channels,
                    d=cfg.d,
                    mode=cfg.mode,
                    temperature=cfg.vw_temperature,
                    material_only=cfg.material_only_loss,
                    margin=cfg.lr_margin if cfg.vw_region == "judged" else 0,
                )
                g_loss = adv + voxelwise_term(vw, threshold=cfg.vw_threshold, coefficient=cfg.vw_coefficient)
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                if ema is not None:
                    _update_ema(ema, gen, cfg.ema, it // cfg.g_every)
                running["g_adv"].append(float(adv.detach()))
                running["vw"].append(float(vw.detach()))
            it += 1
            bar.update(it, time.perf_counter() - t_start)

            if it % cfg.metrics_every == 0 or out_of_time():
                rec = evaluate(it)
                for k, v in running.items():
                    rec[k] = float(np.mean(v)) if v else None
                    v.clear()
                history.append(rec)
                if rec["score"] < best["score"]:
                    best = {"score": rec["score"], "iteration": it}
                    _save(
                        out_dir / BEST,
                        cfg,
                        gen,
                        critics,
                        opt_g,
                        opt_ds,
                        {"iteration": it, "metrics": rec},
                        full=False,
                        ema=ema,
                    )
                log.info("it %d score %.4f lr-agree %.3f", it, rec["score"], rec["lr_agreement"])
            if (
                it % cfg.checkpoint_every == 0
                or time.perf_counter() - last_ckpt_t > 60 * cfg.checkpoint_minutes
            ):
                checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        log.warning("interrupted at iteration %d; the state is saved, run again to resume", it)
        raise
    finally:
        bar.close()
    checkpoint(final=True)
    if not (out_dir / BEST).is_file():  # zero iterations run: still leave a usable generator
        _save(out_dir / BEST, cfg, gen, critics, opt_g, opt_ds, {"iteration": it}, full=False, ema=ema)
    _plot_curves(out_dir, history, hr_ref)
    dt = time.perf_counter() - t_start
    done = it - start_it
    return TrainResult(
        run_dir=out_dir,
        iterations=it,
        seconds=dt,
        best_iteration=best["iteration"],
        best_score=None if math.isinf(best["score"]) else best["score"],
        seconds_per_iteration=dt / done if done else float("nan"),
    )


class _Progress:
    """rich progress bar over iterations (or over the time budget) with ETA; no-op when disabled."""

    def __init__(self, enabled, iterations, budget_s, start):
        self.p = None
        if not enabled:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.by_time = iterations is None
        self.p = Progress(
            TextColumn("fuse train"),
            BarColumn(),
            TextColumn("{task.fields[it]} it"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
        )
        total = budget_s if self.by_time else iterations
        self.task = self.p.add_task("train", total=total, completed=0 if self.by_time else start, it=start)
        self.p.start()

    def update(self, it, elapsed):
        if self.p is not None:
            self.p.update(self.task, completed=elapsed if self.by_time else it, it=it)

    def close(self):
        if self.p is not None:
            self.p.stop()


def _write_logs(out_dir, history):
    write_json(out_dir / "metrics.json", history)
    if not history:
        return
    keys = []
    for r in history:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(history)
    write_text(out_dir / "metrics.csv", buf.getvalue())


def _plot_curves(out_dir, history, hr_ref=None):
    if not history:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._atomic import atomic_path

    its = [r["iteration"] for r in history]
    fig, axs = plt.subplots(1, 4, figsize=(17, 3.6))
    for key, label in (("wass", "critic W-distance"), ("g_adv", "G adversarial")):
        axs[0].plot(its, [r.get(key) if r.get(key) is not None else np.nan for r in history], label=label)
    axs[0].set_xlabel("iteration")
    axs[0].legend()
    axs[1].plot(its, [r["score"] for r in history], label="score (lower is better)")
    axs[1].plot(its, [r["lr_agreement"] for r in history], label="LR agreement")
    axs[1].plot(
        its,
        [r.get("vw") if r.get("vw") is not None else np.nan for r in history],
        label="voxel-wise loss (LR mismatch)",
    )
    axs[1].set_xlabel("iteration")
    axs[1].legend()
    n = sum(1 for k in history[0] if re.fullmatch(r"vf\d+", k))
    for p in range(n):
        axs[2].plot(its, [r[f"vf{p}"] for r in history], label=f"VF phase {p}")
        # the HR images' Euler density is the aim: grains per area, cut apart or joined as in the HR
        ref = np.mean([h[2][p] for h in hr_ref]) if hr_ref else np.nan
        eu = [r.get(f"eu{p}", np.nan) / ref if ref else np.nan for r in history]
        axs[3].plot(its, eu, label=f"phase {p}")
    axs[2].set_xlabel("iteration")
    axs[2].legend()
    axs[3].axhline(1.0, color="0.5", lw=0.8)
    axs[3].set_xlabel("iteration")
    axs[3].set_ylabel("Euler density / HR images'")
    axs[3].legend()
    fig.tight_layout()
    with atomic_path(out_dir / "training_curves.png") as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)

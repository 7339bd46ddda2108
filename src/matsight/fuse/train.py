"""SuperRes training: WGAN-GP with a voxel-wise LR consistency term (paper Algorithm 1).

Every iteration (:func:`step`) the critic(s) score slices of generated volumes against random HR crops
(with a gradient penalty), one critic step per slicing axis (``critic_steps="joint"``: a shared critic's
one step on all three axes together); every ``g_every``-th iteration the generator is updated with
``-critic(slices) + 10 · voxel-wise loss`` (the latter only when above 0.005); the losses are
:mod:`matsight.fuse.losses`. Training (:func:`train`) is bounded by ``training.steps`` and/or a time
budget, resumable (``last.safetensors`` holds generator, critics, optimiser tensors, iteration and RNG
states), and logs cheap metrics — phase fractions and surface areas of generated slices vs the HR images,
and agreement of the degraded output with the LR input — which decide the best checkpoint
(``best.safetensors``), the paper's suggested stopping rule for a loss without a convergence criterion; the
slices' Euler densities (grains per area) are logged beside them. Before training, the LR phase fractions are
checked against the HR phases they map to (a warning above 0.05); every evaluation records the score's trend,
and the end of a call writes ``status.json`` and logs where the run stands — converged or not, LR consistency,
gaps to the HR images (:mod:`matsight.fuse.convergence`). The run folder is described in
:mod:`matsight.fuse.run`.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._atomic import make_folder, write_json
from .._duration import parse_duration
from .._errors import InputError, settings_message
from ..metrics.microstructure import euler_density
from ..nn.checkpoint import load_checkpoint
from ..nn.device import resolve_device
from ..progress import report
from .config import FLAT_NAMES, FuseConfig, make_config, saved_config
from .convergence import fraction_check, run_status, score_trend, status_lines
from .data import HRSampler, LRSampler, as_hr_stack, as_labels, one_hot, phase_count, stack_order_warnings
from .degrade import downsample
from .losses import critic_loss, critic_view, generator_loss, slices
from .networks import build_critics, build_generator
from .run import BEST, LAST, load, plot_curves, save_state, write_logs

log = logging.getLogger(__name__)

__all__ = [
    "train",
    "step",
    "TrainState",
    "TrainResult",
    "lr_agreement",
    "parse_duration",
    "saved_config",
    "slice_metrics",
]

AXES = (0, 1, 2)
load_generator = load  # the name before the package's face (``matsight.fuse.load``)


@dataclass
class TrainResult:
    """What :func:`train` leaves behind."""

    run_dir: Path
    iterations: int
    seconds: float
    best_iteration: int | None
    best_score: float | None
    seconds_per_iteration: float
    status: dict | None = None  # where the run stands (``status.json``: :func:`~.convergence.run_status`)


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


# ---------------------------------------------------------------------------------------------- one step
@dataclass
class TrainState:
    """Everything one iteration changes: networks, optimisers, samplers and random generators."""

    cfg: FuseConfig
    gen: torch.nn.Module
    critics: torch.nn.ModuleList
    opt_g: torch.optim.Optimizer
    opt_ds: list
    ema: torch.nn.Module | None
    hr_sampler: HRSampler
    lr_sampler: LRSampler
    tgen: torch.Generator
    rng: np.random.Generator
    device: torch.device
    iteration: int = 0


def _make_fake(state, grad):
    """A batch of LR crops (one-hot) and the generator's phase probabilities for them."""
    lr_oh = state.lr_sampler.sample(state.cfg.training.fake_batch).to(state.device)
    noise = torch.randn(lr_oh.shape[0], 1, *lr_oh.shape[2:], generator=state.tgen).to(state.device)
    x = torch.cat([lr_oh, noise], 1)
    if grad:
        return lr_oh, state.gen(x)
    with torch.no_grad():
        return lr_oh, state.gen(x)


def _critic_groups(cfg, n_critics):
    """``[(critic index, slicing axes), ...]``: the critic steps of one iteration."""
    if n_critics == 1 and cfg.training.critic_steps == "joint":
        return [(0, AXES)]  # one step on all three axes' slices
    return [(a if n_critics > 1 else 0, (a,)) for a in AXES]  # one per axis (the reference)


def step(state):
    """One training iteration (paper Algorithm 1) on ``state``, which it advances.

    The critic step(s) on detached fakes (:func:`matsight.fuse.losses.critic_loss`), then, every
    ``training.g_every``-th iteration, a generator step (:func:`matsight.fuse.losses.generator_loss`) and
    the update of the weights' moving average.

    Returns
    -------
    dict of str to list of float
        The losses of this iteration: ``d_loss``, ``wass``, ``gp`` per critic step; ``g_adv``, ``vw`` when
        the generator stepped.
    """
    cfg, t = state.cfg, state.cfg.training
    losses = {"d_loss": [], "wass": [], "gp": []}
    _, fake = _make_fake(state, grad=False)
    fake = critic_view(fake, t.critic_input)
    for ci, ax_list in _critic_groups(cfg, len(state.critics)):
        critic, opt = state.critics[ci], state.opt_ds[ci]
        fake_sl = torch.cat([slices(fake, a, t.edge_crop, t.slices_per_volume, state.tgen) for a in ax_list])
        per_axis_real = max(1, t.real_batch // len(ax_list)) if len(ax_list) > 1 else t.real_batch
        real = torch.cat([state.hr_sampler.sample(per_axis_real, a) for a in ax_list]).to(state.device)
        d_loss, wass, gp = critic_loss(critic, real, fake_sl, gp_lambda=t.gp_lambda, gen=state.tgen)
        opt.zero_grad(set_to_none=True)
        d_loss.backward()
        opt.step()
        for k, v in (("d_loss", d_loss), ("wass", wass), ("gp", gp)):
            losses[k].append(float(v.detach()))
    if state.iteration % t.g_every == 0:
        lr_oh, fake = _make_fake(state, grad=True)
        g_loss, adv, vw = generator_loss(state.critics, fake, lr_oh, AXES, cfg, state.tgen)
        state.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        state.opt_g.step()
        if state.ema is not None:
            _update_ema(state.ema, state.gen, t.ema, state.iteration // t.g_every)
        losses["g_adv"] = [float(adv.detach())]
        losses["vw"] = [float(vw.detach())]
    state.iteration += 1
    return losses


# ---------------------------------------------------------------------------------------------- inputs
def _split_data(data):
    """``(lr, hr, hr_y, hr_z)`` of ``data = (lr, hr)``, ``hr`` one image/stack or ``{"x", "y", "z"}``."""
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise InputError(
            "data must be (lr, hr): the LR label volume and the HR label image(s), or for anisotropic "
            'materials (lr, {"x": ..., "y": ..., "z": ...}) with the HR images of slices normal to each axis'
        )
    lr, hr = data
    if not isinstance(hr, dict):
        return lr, hr, None, None
    unknown = sorted(set(hr) - {"x", "y", "z"})
    if unknown or "x" not in hr:
        raise InputError(
            f"the HR images by axis take the keys x, y and z (the slices' normal), got {sorted(hr)}"
        )
    return lr, hr["x"], hr.get("y"), hr.get("z")


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
                '--hr-y and --hr-z (in Python {"x": ..., "y": ..., "z": ...}), or drop --anisotropic'
            )
        # stacks in axis order: normal to z (axis 0), y (axis 1), x (axis 2)
        stacks = [extra[1], extra[0], hr]
    else:
        if extra:
            raise InputError(
                "--hr-y/--hr-z (HR images by axis) are for anisotropic materials; add --anisotropic or give "
                "only --hr"
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


# ---------------------------------------------------------------------------------------------- resume
# settings a resumed run takes from the new call; every other one must match the run's
_FROM_CALL = (
    "training.steps",
    "training.metrics_every",
    "training.checkpoint_every",
    "training.checkpoint_minutes",
    *(v for v in FLAT_NAMES.values() if v.startswith("inference.")),
)


def _changed_settings(saved, cfg):
    """``["name: run's → given", ...]`` of the settings in which ``cfg`` differs from the run's ``saved``."""
    skip = {*_FROM_CALL, "n_hr_phases", "n_lr_phases"}
    names = [n for n in FuseConfig.model_fields if n not in ("model", "training", "inference")]
    out = []
    for name in [*names, *FLAT_NAMES.values()]:
        a, b = saved.setting(name), cfg.setting(name)
        if name not in skip and a != b:
            out.append(f"{name}: {a} in the run, {b} given")
    return out


def _resume(out_dir, cfg, given, data_id, n_hr, n_lr):
    """``(cfg, groups, meta)`` of the run saved in ``out_dir``, checked against the data and settings given.

    The resumed run keeps its own settings, except :data:`_FROM_CALL` (steps, how often it logs and saves).
    """
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
    changed = _changed_settings(saved, cfg) if given else []
    if changed:
        raise InputError(
            f"{out_dir} holds a run with other settings ({'; '.join(changed[:4])}"
            f"{'; …' if len(changed) > 4 else ''}); leave those options out to resume it with its own "
            "settings, or give a new --out folder"
        )
    cfg = saved.updated({k: cfg.setting(k) for k in _FROM_CALL})
    log.info("resuming %s at iteration %d", out_dir, int(meta["iteration"]))
    return cfg, groups, meta


def _build_state(cfg, dev, lr, stacks, n_hr, n_lr, groups, meta):
    """The networks, optimisers and samplers of a new run, or of the saved one (``groups``, ``meta``)."""
    start_it = int(meta["iteration"]) if meta else 0
    torch.manual_seed(cfg.seed + start_it)
    rng = np.random.default_rng(cfg.seed)
    if meta is not None and "numpy_rng" in meta:
        rng.bit_generator.state = meta["numpy_rng"]
    tgen = torch.Generator().manual_seed(cfg.seed + 7919 * (start_it + 1))
    t = cfg.training
    gen = build_generator(cfg).to(dev)
    critics = build_critics(cfg).to(dev)
    opt_g = torch.optim.Adam(gen.parameters(), lr=t.lr, betas=tuple(t.betas))
    opt_ds = [torch.optim.Adam(c.parameters(), lr=t.lr, betas=tuple(t.betas)) for c in critics]
    ema = copy.deepcopy(gen).eval().requires_grad_(False) if t.ema else None
    if groups is not None:
        _load_state(groups, meta, gen, ema, critics, opt_g, opt_ds, tgen)
    return TrainState(
        cfg=cfg,
        gen=gen,
        critics=critics,
        opt_g=opt_g,
        opt_ds=opt_ds,
        ema=ema,
        hr_sampler=HRSampler(stacks, size=cfg.slice_size, n_phases=n_hr, augment=cfg.hr_augment, rng=rng),
        lr_sampler=LRSampler(lr, crop=cfg.lr_crop, n_phases=n_lr, rng=rng),
        tgen=tgen,
        rng=rng,
        device=dev,
        iteration=start_it,
    )


def _load_state(groups, meta, gen, ema, critics, opt_g, opt_ds, tgen):
    from .run import _load_optim

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


# ---------------------------------------------------------------------------------------------- evaluation
class _Evaluator:
    """The cheap metrics of the generator that would be saved as best, on fixed LR crops and noise."""

    def __init__(self, cfg, lr, stacks, n_hr, n_lr, n_eval, dev):
        self.cfg, self.n_hr, self.n_lr, self.dev = cfg, n_hr, n_lr, dev
        eval_rng = np.random.default_rng(cfg.seed + 1)
        self.lr = _representative_crops(lr, cfg.lr_crop, n_eval, n_lr, eval_rng)
        self.noise = torch.from_numpy(
            eval_rng.standard_normal((n_eval, 1, *self.lr.shape[1:])).astype(np.float32)
        )
        self.hr_ref = [slice_metrics(s, n_hr) for s in stacks]  # all HR images, unaugmented

    def _labels_and_agreement(self, state):
        cfg, ema = self.cfg, state.ema
        net = ema if ema is not None else state.gen
        x = torch.cat([one_hot(self.lr, self.n_lr), self.noise], 1).to(self.dev)
        if ema is not None:
            _recalibrate_batchnorm(ema, x)
        net.eval()
        with torch.no_grad():
            labels = net(x).argmax(1)
            down = downsample(
                one_hot(labels.cpu(), self.n_hr),
                channels=cfg.lr_channels,
                d=cfg.d,
                mode=cfg.mode,
                temperature=cfg.training.vw_temperature,
            ).argmax(1)
            # the crops' faces are generated without their neighbours, which the whole volume has: the
            # agreement that predicts generation's is the interior's (faces can hold 10 points more)
            m = cfg.lr_margin
            inner = (slice(None),) + (slice(m, -m or None),) * 3
            agree = lr_agreement(
                down.numpy()[inner], self.lr[inner], material_only=cfg.training.material_only_loss
            )
        state.gen.train()  # (the average stays in eval mode)
        return labels.cpu(), agree

    def __call__(self, state):
        """``{"score", "lr_agreement", "vf0", "sa0", "eu0", ...}`` of the generator now."""
        labels, lr_agree = self._labels_and_agreement(state)
        c = self.cfg.training.edge_crop
        vol = labels[:, c : -c or None, c : -c or None, c : -c or None]
        vfs, sas, eus, per_axis = [], [], [], []
        for axis in range(3):
            sl = vol.movedim(1 + axis, 1).reshape(-1, *[vol.shape[1 + a] for a in range(3) if a != axis])
            vf, sa, eu = slice_metrics(sl, self.n_hr)
            ref_vf, ref_sa, _ = self.hr_ref[axis if len(self.hr_ref) > 1 else 0]
            per_axis.append(_score(vf, sa, ref_vf, ref_sa, lr_agree))
            vfs.append(vf)
            sas.append(sa)
            eus.append(eu)
        vf, sa, eu = np.mean(vfs, 0), np.mean(sas, 0), np.mean(eus, 0)
        rec = {"score": float(np.mean(per_axis)), "lr_agreement": lr_agree}
        for p in range(self.n_hr):
            rec[f"vf{p}"] = float(vf[p])
            rec[f"sa{p}"] = float(sa[p])
            rec[f"eu{p}"] = float(eu[p])
        return rec


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class _Log:
    """The run's record across calls: history, best evaluation, seconds, and when it last saved."""

    out_dir: Path
    data_id: dict
    history: list = field(default_factory=list)
    best: dict = field(default_factory=lambda: {"score": math.inf, "iteration": None})
    seconds_before: float = 0.0
    t_start: float = field(default_factory=time.perf_counter)
    last_save: float = field(default_factory=time.perf_counter)
    running: dict = field(default_factory=lambda: {k: [] for k in ("d_loss", "wass", "gp", "g_adv", "vw")})
    hr_ref: list = field(default_factory=list)  # the HR images' slice metrics (``hr_reference.json``)
    inputs: dict | None = None  # the LR/HR phase fraction check

    @classmethod
    def of(cls, out_dir, data_id, meta):
        run = cls(out_dir=out_dir, data_id=data_id)
        if meta:
            run.history = list(meta.get("history", []))
            run.best = meta.get("best", run.best)
            if run.best.get("score") is None:
                run.best["score"] = math.inf
            run.seconds_before = float(meta.get("seconds", 0.0))
        return run

    def seconds(self):
        return self.seconds_before + time.perf_counter() - self.t_start

    def checkpoint(self, state):
        best = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in self.best.items()}
        extra = {
            "iteration": state.iteration,
            "seconds": self.seconds(),
            "history": self.history,
            "best": best,
            "numpy_rng": state.rng.bit_generator.state,
            "data": self.data_id,
        }
        s = state
        save_state(
            self.out_dir / LAST, s.cfg, s.gen, s.critics, s.opt_g, s.opt_ds, extra, ema=s.ema, tgen=s.tgen
        )
        write_logs(self.out_dir, self.history)
        self.status(state)
        self.last_save = time.perf_counter()

    def status(self, state, stopped_by=None):
        """Write ``status.json``: where the run stands (``stopped_by`` None: still training)."""
        best = self.best["iteration"]
        every = state.cfg.training.metrics_every
        st = run_status(
            self.history, self.hr_ref, best_iteration=best, stopped_by=stopped_by, metrics_every=every
        )
        st["inputs"] = self.inputs
        write_json(self.out_dir / "status.json", st)
        return st

    def save_best(self, state, meta):
        s = state
        save_state(
            self.out_dir / BEST, s.cfg, s.gen, s.critics, s.opt_g, s.opt_ds, meta, full=False, ema=s.ema
        )

    def evaluate(self, state, evaluator):
        it = state.iteration
        rec = {"iteration": it, "time_s": round(self.seconds(), 2), **evaluator(state)}
        for k, v in self.running.items():
            rec[k] = float(np.mean(v)) if v else None
            v.clear()
        # the plateau test on the scores so far: metrics.json says at every evaluation if it still falls
        rec["score_trend"] = score_trend([r["score"] for r in [*self.history, rec]])["trend"]
        self.history.append(rec)
        if rec["score"] < self.best["score"]:
            self.best = {"score": rec["score"], "iteration": it}
            self.save_best(state, {"iteration": it, "metrics": rec})
        log.info("it %d score %.4f lr-agree %.3f", it, rec["score"], rec["lr_agreement"])


def _progress(callback, state, run, losses, budget_s):
    """Report the iteration just done to ``callback``: its losses and the latest evaluation."""
    if callback is None:
        return
    metrics = {k: float(np.mean(v)) for k, v in losses.items() if v}
    if run.history:
        metrics = {
            "score": run.history[-1]["score"],
            "lr_agreement": run.history[-1]["lr_agreement"],
            **metrics,
        }
    report(
        callback,
        step=state.iteration,
        total=state.cfg.training.steps,
        metrics=metrics,
        message=f"iteration {state.iteration}",
        seconds=run.seconds(),
        budget=None if budget_s is None else run.seconds_before + budget_s,
    )


def _loop(state, run, evaluator, budget_s, callback):
    t = state.cfg.training

    def out_of_time():
        if t.steps is not None and state.iteration >= t.steps:
            return True
        return budget_s is not None and time.perf_counter() - run.t_start >= budget_s

    state.gen.train()
    try:
        while not out_of_time():
            losses = step(state)
            for k, v in losses.items():
                run.running[k].extend(v)
            if state.iteration % t.metrics_every == 0 or out_of_time():
                run.evaluate(state, evaluator)
            if (
                state.iteration % t.checkpoint_every == 0
                or time.perf_counter() - run.last_save > 60 * t.checkpoint_minutes
            ):
                run.checkpoint(state)
            _progress(callback, state, run, losses, budget_s)
    except KeyboardInterrupt:
        run.checkpoint(state)
        log.warning("interrupted at iteration %d; the state is saved, run again to resume", state.iteration)
        raise


def _prepare(data, config, out_dir, resume):
    """Inputs checked, the settings completed with the data's phase counts, and the run to resume."""
    lr, hr, hr_y, hr_z = _split_data(data)
    cfg = config
    if cfg is None:
        cfg = (saved_config(out_dir) if resume else None) or make_config("cpu")
    lr, stacks, n_hr, n_lr = _validate_inputs(lr, hr, hr_y, hr_z, cfg)
    data_id = _fingerprint(lr, stacks)
    try:
        cfg = cfg.updated({"n_hr_phases": n_hr, "n_lr_phases": n_lr})
    except Exception as exc:
        raise InputError(settings_message(exc, "fuse")) from None
    if cfg.anisotropic:
        pore = cfg.lr_channels[0]
        for message in stack_order_warnings(
            lr, stacks, scale=cfg.scale, pore_phases=[pore] if isinstance(pore, int) else pore
        ):
            log.warning(message)
    groups = meta = None
    if resume and (out_dir / LAST).is_file():
        cfg, groups, meta = _resume(out_dir, cfg, config is not None, data_id, n_hr, n_lr)
    return cfg, lr, stacks, n_hr, n_lr, data_id, groups, meta


def train(data, out_dir, *, config=None, budget=None, callback=None, device="auto", resume=True, n_eval=16):
    """Train a SuperRes generator on an LR label volume and HR label image(s).

    Parameters
    ----------
    data : tuple
        ``(lr, hr)``: the low-res 3D label volume (ZYX), phases ``0..m-1`` (0 = pore), and the high-res 2D
        label image or stack ``(N, H, W)``, phases ``0..n-1``, ``n >= m``. Anisotropic materials
        (``config.anisotropic``): ``hr`` is ``{"x": ..., "y": ..., "z": ...}``, the images of slices normal
        to each axis.
    out_dir : str or Path
        Run folder (created). An existing ``last.safetensors`` there is resumed when ``resume``.
    config : FuseConfig, optional
        Default: the resumed run's settings, else ``make_config("cpu")``. Phase counts are filled in from the
        data. ``config.training.steps`` is the iteration count to reach (resumed ones included; None: only
        the budget bounds the run). Resuming a run with other settings raises :class:`InputError`, except
        the steps, ``metrics_every``, ``checkpoint_every``, ``checkpoint_minutes`` and the inference
        settings, which the resumed run takes from ``config``.
    budget : float or str, optional
        Stop after this much wall time in this call (seconds or ``"20m"``), or at ``training.steps`` if
        that comes first. None: the steps alone.
    callback : callable, optional
        A :data:`matsight.progress.Callback`, called after every iteration with the step, the total
        (``training.steps``) and ``metrics``: this iteration's losses (``d_loss``, ``wass``, ``gp``, and
        ``g_adv``, ``vw`` when the generator stepped) and the latest evaluation (``score``,
        ``lr_agreement``). Raising :class:`KeyboardInterrupt` in it saves the state and stops the run.
    device : str
        ``"auto"`` (cuda when available, else cpu), ``"cpu"`` or ``"cuda"``.
    resume : bool
        Continue from ``out_dir/last.safetensors`` if present; the LR and HR data must be the run's.
    n_eval : int
        Number of fixed LR crops the cheap metrics are computed on; the set is drawn so that its phase
        fractions match the whole LR volume's.

    Returns
    -------
    TrainResult
    """
    out_dir = Path(out_dir)
    cfg, lr, stacks, n_hr, n_lr, data_id, groups, meta = _prepare(data, config, out_dir, resume)
    budget_s = parse_duration(budget)
    if cfg.training.steps is None and budget_s is None:
        raise InputError("training.steps is None (no limit): give a time budget, or a number of steps")
    state = _build_state(cfg, resolve_device(device), lr, stacks, n_hr, n_lr, groups, meta)
    evaluator = _Evaluator(cfg, lr, stacks, n_hr, n_lr, n_eval, state.device)
    fractions = _check_fractions(cfg, lr, stacks, n_hr)
    run = _start_run(out_dir, cfg, data_id, meta, evaluator.hr_ref, fractions)
    if fractions["warning"]:  # once the run folder is written: a disk error is then the only line printed
        log.warning(fractions["warning"])
    start_it = state.iteration
    _loop(state, run, evaluator, budget_s, callback)
    run.checkpoint(state)
    status = _finish(run, state)
    if not (out_dir / BEST).is_file():  # zero iterations run: still leave a usable generator
        run.save_best(state, {"iteration": state.iteration})
    plot_curves(out_dir, run.history, evaluator.hr_ref)
    dt = time.perf_counter() - run.t_start
    done = state.iteration - start_it
    return TrainResult(
        run_dir=out_dir,
        iterations=state.iteration,
        seconds=dt,
        best_iteration=run.best["iteration"],
        best_score=None if math.isinf(run.best["score"]) else run.best["score"],
        seconds_per_iteration=dt / done if done else float("nan"),
        status=status,
    )


def _check_fractions(cfg, lr, stacks, n_hr):
    """The LR/HR phase fraction check of :func:`~.convergence.fraction_check`."""
    compare = [int(c) for c in cfg.lr_channels[1:]]
    return fraction_check(lr, stacks, compare, n_hr, material_only=cfg.training.material_only_loss)


def _start_run(out_dir, cfg, data_id, meta, hr_ref, inputs):
    """The run folder's settings and HR reference written, and the run's record (resumed from ``meta``)."""
    make_folder(out_dir)
    write_json(out_dir / "config.json", cfg.model_dump(mode="json"))
    # what the logged columns vf*, sa*, eu* aim at: one entry per HR stack (x, y, z planes if anisotropic)
    write_json(
        out_dir / "hr_reference.json",
        [{k: v.tolist() for k, v in zip(("vf", "sa", "eu"), ref, strict=True)} for ref in hr_ref],
    )
    run = _Log.of(out_dir, data_id, meta)
    run.hr_ref = [[np.asarray(v).tolist() for v in ref] for ref in hr_ref]
    run.inputs = inputs
    return run


def _finish(run, state):
    """The final ``status.json``, its lines logged: converged or not, LR consistency, gaps to the HR."""
    steps = state.cfg.training.steps
    stopped_by = "steps" if steps is not None and state.iteration >= steps else "budget"
    status = run.status(state, stopped_by)
    for line in status_lines(status):
        log.info(line)
    return status


def _fingerprint(lr, stacks):
    # identifies the training data, so that a resumed run refuses other files
    def digest(a):
        h = hashlib.blake2b(str(a.shape).encode(), digest_size=16)
        h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    return {"lr": digest(lr), "hr": [digest(s) for s in stacks]}

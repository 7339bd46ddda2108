"""A SuperRes run folder: its checkpoints, training logs and curves.

::

    RUN/last.safetensors   everything needed to resume (networks, optimisers, RNG states, history)
    RUN/best.safetensors   generator of the best-scoring evaluation (used by generation)
    RUN/metrics.csv, metrics.json, training_curves.png, config.json
    RUN/hr_reference.json  the HR images' values of the logged slice metrics
    RUN/status.json        where the run stands: converged or not, LR consistency, gaps to the HR images,
                           the LR/HR phase fraction check (:func:`matsight.fuse.convergence.run_status`)

Checkpoints are safetensors with the JSON settings in their header (:mod:`matsight.nn.checkpoint`);
loading never unpickles.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np
import torch

from .._atomic import write_json, write_text
from .._errors import InputError
from ..nn.checkpoint import load_checkpoint, save_checkpoint
from .config import BEST, LAST, FuseConfig
from .networks import build_generator

__all__ = ["BEST", "LAST", "load", "save_state", "write_logs", "plot_curves"]


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


def save_state(path, cfg, gen, critics, opt_g, opt_ds, meta_extra, *, full=True, ema=None, tgen=None):
    """Write a checkpoint: ``full`` (resumable) or best (the generator to use: the average if kept)."""
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


def load(path, device="cpu"):
    """Rebuild a trained generator from a run folder or checkpoint.

    Parameters
    ----------
    path : str or Path
        A run folder of :func:`matsight.fuse.train` (its ``best.safetensors``, else ``last.safetensors``) or
        one checkpoint.
    device : str
        Where to put the generator.

    Returns
    -------
    generator : Generator
        In eval mode; the moving average of the weights when the run kept one.
    config : FuseConfig
        The run's settings (runs saved with the flat settings of earlier versions included).
    meta : dict
        The checkpoint's header: iteration, history, metrics.
    """
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


def write_logs(out_dir, history):
    """``metrics.json`` and ``metrics.csv`` of the evaluations so far."""
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


def _series(history, key):
    return [r.get(key) if r.get(key) is not None else np.nan for r in history]


def plot_curves(out_dir, history, hr_ref=None):
    """``training_curves.png`` (SVG beside it): losses, score and LR agreement, phase fractions, Euler
    densities against the iteration; each panel's legend outside its data, phase lines in the phase colours.
    """
    if not history:
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..report.style import axis_label, legend_outside, phase_colour, save_figure

    its = [r["iteration"] for r in history]
    fig = Figure(figsize=(11, 6.4), layout="constrained")
    FigureCanvasAgg(fig)
    axs = fig.subplots(2, 2).ravel()
    for key, label in (("wass", "critic W-distance"), ("g_adv", "G adversarial")):
        axs[0].plot(its, _series(history, key), label=label)
    axs[0].set_ylabel(axis_label("loss", "a.u."))
    axs[1].plot(its, [r["score"] for r in history], label="score (lower is better)")
    axs[1].plot(its, [r["lr_agreement"] for r in history], label="LR agreement")
    axs[1].plot(its, _series(history, "vw"), label="voxel-wise loss\n(LR mismatch)")
    axs[1].set_ylabel("value")
    n = sum(1 for k in history[0] if re.fullmatch(r"vf\d+", k))
    for p in range(n):
        # phase 0 is black in label images; a black line reads fine, so the phase colours hold here too
        axs[2].plot(its, [r[f"vf{p}"] for r in history], color=phase_colour(p), label=f"phase {p}")
        # the HR images' Euler density is the aim: grains per area, cut apart or joined as in the HR
        ref = np.mean([h[2][p] for h in hr_ref]) if hr_ref else np.nan
        eu = [r.get(f"eu{p}", np.nan) / ref if ref else np.nan for r in history]
        axs[3].plot(its, eu, color=phase_colour(p), label=f"phase {p}")
    axs[2].set_ylabel("volume fraction")
    axs[3].axhline(1.0, color="0.5", lw=0.8)
    axs[3].set_ylabel("Euler density / HR images'")
    for ax in axs:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        legend_outside(ax)
    save_figure(fig, out_dir / "training_curves.png")

"""Validated configuration of a SuperRes (2D/3D fusion GAN) run; stored inside every checkpoint.

Two presets:

- ``"paper"`` — the reference implementation's sizes: generator trunk 128/256/512 channels for
  sf ≤ 2 / ≤ 4 / > 4, critic 64-128-256-512-1, 8 fake 64³ volumes and 64 real 56² crops per step, one critic
  step per slicing axis. Meant for GPUs (one iteration takes about a minute on 2 CPU cores).
- ``"cpu"`` (default) — the same method and losses, shrunk where the time goes on a CPU: thin full-resolution
  layers (the last convolution of the paper generator alone is ~220 k multiply-adds per output voxel), a ~40³
  output cube from an LR crop of ``40/sf`` voxels, 2 fake volumes per step with a random subset of their
  slices, a critic a quarter as wide and one critic step for the three axes together; evaluation, the best
  checkpoint and generation use a moving average of the generator weights (``ema``), which smooths the GAN's
  oscillation between checkpoints.

The settings are nested: ``model`` (the networks), ``training`` (losses, optimisation, sizes of a step,
bookkeeping), ``inference`` (tiling of generation); the problem itself (scale factor, degradation mode,
phases, seed) sits at the top. :func:`make_config`, ``--set`` and the GUI take the dotted names
(``training.steps``) and, for the commands users already have, the flat names of the settings before they
were nested (``steps``, ``ema``, ``gen_width``: :data:`FLAT_NAMES`); runs saved with the flat settings load
with :meth:`FuseConfig.from_saved`.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._errors import InputError, settings_message

__all__ = [
    "AUTO_UPSAMPLING",
    "FuseConfig",
    "ModelConfig",
    "TrainingConfig",
    "InferenceConfig",
    "FLAT_NAMES",
    "PRESETS",
    "SAVED_BEFORE",
    "auto_upsampling",
    "make_config",
    "nest_settings",
    "read_run_config",
    "run_config",
    "scale_fraction",
    "validate_scale",
]


def validate_scale(scale):
    """Return ``(sf, d)`` with ``sf = 64/d`` exactly, or raise :class:`InputError`.

    The paper's generator supports every scale factor ``64/d`` with integer ``8 <= d <= 64`` (1 to 8).
    """
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise InputError(f"scale must be a number like 4 or 2.6667, got {scale!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"scale must be a positive number, got {scale!r}")
    d = 64.0 / value
    d_int = round(d)
    if abs(d - d_int) > 1e-3 * d or not 8 <= d_int <= 64:
        near = sorted({min(64, max(8, math.floor(d))), min(64, max(8, math.ceil(d)))})
        options = ", ".join(f"{64 / n:.4g} (=64/{n})" for n in near)
        raise InputError(
            f"scale {value:g} is not supported: it must be 64/d for an integer d in 8..64 (1 to 8); "
            f"nearest: {options}"
        )
    return 64.0 / d_int, d_int


# upsampling="auto", by scale factor (first bound ≥ sf): measured on public real volumes at equal iterations
# (benchmarks/fuse_upsampling_real.py). At sf 8 resize-convolution leaves the least grid-aligned texture;
# at sf ≤ 4 the paper's transposed convolution is kept (at sf ≤ 2 the chain has none anyway)
AUTO_UPSAMPLING = ((4.0, "transpose"), (8.0, "resize"))


def auto_upsampling(scale):
    """The generator upsampling that ``upsampling="auto"`` picks at scale factor ``scale``.

    Examples
    --------
    >>> auto_upsampling(4), auto_upsampling(8)
    ('transpose', 'resize')
    """
    return next(kind for bound, kind in AUTO_UPSAMPLING if scale <= bound + 1e-9)


def scale_fraction(d):
    """``64/d`` as an exact :class:`fractions.Fraction` (``q`` LR voxels make ``p`` output voxels)."""
    return Fraction(64, d)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Section):
    """The networks: the 3D generator and the 2D critic(s)."""

    gen_width: int | None = Field(None, ge=4, description="trunk channels; None = by scale factor")
    gen_min_width: int = Field(1, ge=1)
    gen_res_blocks: int = Field(1, ge=0, le=8)
    upsampling: Literal["auto", "transpose", "resize", "shuffle"] = Field(
        "transpose",
        description="'auto' (the cpu preset's): the measured choice for the scale factor, "
        "AUTO_UPSAMPLING (docs/methods/superres.md), stored as that choice. "
        "The ×2 stage of 2 < sf ≤ 4 (and the second of sf > 4): 'transpose' is the paper's "
        "ConvTranspose3d(k4, s2); 'resize' is trilinear ×2 + k3 conv, less prone to grid-aligned textures "
        "(Odena et al., Distill 2016) but coarser after minutes of training (benchmarks/README.md); "
        "'shuffle' makes every ×2 stage a sub-pixel convolution (k3 conv to 8× the channels, 3D "
        "depth-to-space) with ICNR initialisation (Aitken et al. 2017), nearest-neighbour upsampling at the "
        "start of training",
    )
    critic_widths: list[int] = Field(default_factory=lambda: [64, 128, 256, 512])
    shared_critic: bool = Field(True, description="isotropic data: one critic for the three slicing axes")

    @field_validator("critic_widths")
    @classmethod
    def _critic(cls, v):
        if len(v) != 4 or any(w < 1 for w in v):
            raise ValueError("critic_widths needs 4 positive channel counts (paper: 64 128 256 512)")
        return v


class TrainingConfig(_Section):
    """One training step (sizes, what the critics see), the losses, the optimiser and the bookkeeping."""

    steps: int | None = Field(
        1000,
        ge=0,
        description="iterations to reach (a resumed run counts its earlier ones); None = no limit but the "
        "time budget",
    )
    # sizes
    output_size: int = Field(64, ge=8, description="edge of the generated training cube (voxels)")
    edge_crop: int = Field(4, ge=0, description="voxels cut from every face before slicing for the critic")
    fake_batch: int = Field(8, ge=1)
    real_batch: int = Field(64, ge=1)
    slices_per_volume: int | None = Field(None, ge=1, description="per axis and volume; None = all")
    augment_axes: list[bool] | None = Field(
        None,
        description="per slicing axis, in the order z, y, x: draw that axis's real HR crops in the 8 "
        "dihedral orientations (4 rotations × mirror). None = the reference's choice: every axis for "
        "isotropic data; for anisotropic data only x ([false, false, true], the reference's rotation "
        "flags), whose images (--hr; the separator's speckles) are isotropic within their plane",
    )
    # the critics
    critic_steps: Literal["per_axis", "joint"] = Field(
        "per_axis",
        description="a shared critic's updates per iteration: 'per_axis' one Adam step per slicing axis, "
        "each on real_batch real crops against that axis's fake slices (the reference code, whose shared "
        "critic is the same network for all three axes: 3 critic steps per iteration); 'joint' one step on "
        "the three axes' slices together with real_batch // 3 real crops per axis, a third of the critic "
        "cost per iteration on a CPU, which is why the cpu preset uses it (its measured results were made "
        "with it). Per-axis critics (shared_critic false, or anisotropic) always take one step each",
    )
    critic_input: Literal["soft", "hard"] = Field(
        "soft",
        description="what the critics see of a generated volume: 'soft' its phase probabilities (the paper); "
        "'hard' their argmax one-hot with the probabilities' gradient (straight-through), so the critics "
        "cannot score a slice by how far it is from one-hot, only by its structure; measured worse on the "
        "synthetic benchmark (benchmarks/README.md)",
    )
    # optimisation and losses
    lr: float = Field(1e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    gp_lambda: float = Field(10.0, ge=0)
    g_every: int = Field(5, ge=1)
    vw_coefficient: float = Field(10.0, ge=0)
    vw_threshold: float = Field(0.005, ge=0)
    vw_temperature: float = Field(0.01, gt=0)
    vw_unseen: Literal["pore", "drop"] = Field(
        "pore",
        description="HR phases the LR volume does not show, in the voxel-wise loss: 'pore' adds them to the "
        "pore channel before degrading (as the LR data were made: XCT sees binder as pore); 'drop' leaves "
        "them out (the reference code), under which a true structure with binder at its particle contacts "
        "violates the loss (benchmarks/README.md)",
    )
    vw_region: Literal["all", "judged"] = Field(
        "all",
        description="LR voxels the voxel-wise loss counts: 'all' the whole crop (the paper); 'judged' only "
        "those inside the edge-cropped region the critics see. The faces are held to the LR by that loss "
        "alone, so where critics and LR disagree the generator can keep the LR on the faces and trade it "
        "away inside; measured, the choice made no difference on this project's benchmarks "
        "(benchmarks/README.md)",
    )
    material_only_loss: bool = False  # paper's separator mode: only penalise missing LR material
    ema: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="decay per generator step of a moving average of the generator weights, which is "
        "evaluated, kept as best and generated from (0 = off, as the paper)",
    )
    # bookkeeping
    metrics_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(100, ge=1)
    checkpoint_minutes: float = Field(5.0, gt=0)

    @field_validator("augment_axes")
    @classmethod
    def _augment(cls, v):
        if v is not None and len(v) != 3:
            raise ValueError(
                "augment_axes needs 3 flags, one per slicing axis z, y, x (e.g. [false, false, true])"
            )
        return v


class InferenceConfig(_Section):
    """Generation's defaults (:func:`matsight.fuse.predict`); a call's own arguments take precedence."""

    tile: int | None = Field(
        None, ge=1, description="edge of a tile's core in LR voxels; None = about 128 output voxels"
    )
    crop: bool = Field(True, description="cut one LR voxel from every face of the output, as the paper")


SECTIONS = ("model", "training", "inference")


class FuseConfig(BaseModel):
    """Every setting of a SuperRes run (validated; JSON-serialisable; saved in each checkpoint).

    Phases: HR labels are ``0..n_hr_phases-1`` with 0 = pore; LR labels ``0..n_lr_phases-1``. LR phase
    ``i >= 1`` is compared with HR phase ``compare_phases[i-1]`` by the voxel-wise loss (channel 0, pore, is
    always compared as well, as in the paper). HR phases not listed are in-painted (e.g. NMC binder).

    Examples
    --------
    >>> cfg = make_config("cpu", scale=4, steps=200, **{"model.gen_width": 32})
    >>> cfg.training.steps, cfg.model.gen_width, cfg.d
    (200, 32, 16)
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    preset: Literal["cpu", "paper", "custom"] = "cpu"
    scale: float = 4.0
    mode: Literal["resolve", "sample"] = "resolve"
    anisotropic: bool = False
    n_hr_phases: int | None = Field(None, ge=2, le=16)
    n_lr_phases: int | None = Field(None, ge=2, le=16)
    compare_phases: list[int] | None = None
    seed: int = Field(0, ge=0)  # numpy's generators take no negative seeds
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, v):
        return validate_scale(v)[0]

    @model_validator(mode="after")
    def _check(self):
        t = self.training
        if t.output_size - 2 * t.edge_crop < 8:
            raise ValueError(f"edge_crop {t.edge_crop} leaves less than 8 voxels of a {t.output_size}³ cube")
        lr_len = Fraction(t.output_size) / scale_fraction(self.d)
        if lr_len.denominator != 1:
            raise ValueError(
                f"output_size {t.output_size} is not a whole number of LR voxels at scale {self.scale:.4g}; "
                f"use a multiple of {scale_fraction(self.d).numerator}"
            )
        if t.vw_region == "judged" and self.lr_crop - 2 * self.lr_margin < 1:
            raise ValueError(
                f"edge_crop {t.edge_crop} covers the whole {self.lr_crop}-voxel LR crop at scale "
                f"{self.scale:.4g}; use a larger output_size or a smaller edge_crop"
            )
        if self.n_hr_phases and self.n_lr_phases:
            self._check_phases()
        if self.model.upsampling == "auto":  # stored as the choice, so a run rebuilds the network it trained
            self.model.upsampling = auto_upsampling(self.scale)
        return self

    def _check_phases(self):
        if self.n_lr_phases > self.n_hr_phases:
            raise ValueError(
                f"LR has {self.n_lr_phases} phases but HR only {self.n_hr_phases}; the HR images must show "
                "every phase the LR volume shows"
            )
        cp = self.compare_phases
        if cp is None:
            return
        if len(cp) != self.n_lr_phases - 1:
            raise ValueError(
                f"compare_phases needs {self.n_lr_phases - 1} HR phase(s), one per LR phase after pore, "
                f"got {cp}"
            )
        if any(not 1 <= p < self.n_hr_phases for p in cp) or len(set(cp)) != len(cp):
            raise ValueError(f"compare_phases {cp} must be distinct HR phases in 1..{self.n_hr_phases - 1}")

    # derived values ------------------------------------------------------------------------------------
    @property
    def d(self):
        """Integer ``d`` with ``scale = 64/d``."""
        return round(64 / self.scale)

    @property
    def lr_crop(self):
        """Edge of the LR training crop: ``training.output_size / scale``."""
        return int(Fraction(self.training.output_size) / scale_fraction(self.d))

    @property
    def lr_margin(self):
        """LR voxels per face of the training crop that reach outside the region the critics judge."""
        return math.ceil(Fraction(self.training.edge_crop) / scale_fraction(self.d))

    @property
    def slice_size(self):
        """Edge of the 2D slices the critic sees."""
        return self.training.output_size - 2 * self.training.edge_crop

    @property
    def trunk_width(self):
        """Generator trunk channels (the paper's 128/256/512 by scale factor unless ``model.gen_width``)."""
        if self.model.gen_width is not None:
            return self.model.gen_width
        return 128 if self.scale <= 2 else 256 if self.scale <= 4 else 512

    @property
    def lr_channels(self):
        """HR phases of each LR phase (pore first), as :func:`matsight.fuse.degrade.downsample` takes them.

        Phases that are neither pore nor compared are in-painted; with ``training.vw_unseen="pore"`` they
        belong to the LR pore phase (``[[0, 2], 1]`` for NMC: pore + binder, active).
        """
        cp = self.compare_phases if self.compare_phases is not None else list(range(1, self.n_lr_phases))
        unseen = [p for p in range(1, self.n_hr_phases) if p not in cp]
        pore = [0, *unseen] if unseen and self.training.vw_unseen == "pore" else 0
        return [pore, *cp]

    @property
    def hr_augment(self):
        """Per slicing axis (z, y, x): whether its real HR crops are drawn in random dihedral orientations."""
        if self.training.augment_axes is not None:
            return tuple(self.training.augment_axes)
        return (False, False, True) if self.anisotropic else (True, True, True)

    @property
    def n_axes_critics(self):
        """Number of critics: one per axis unless isotropic with a shared critic."""
        return 3 if (self.anisotropic or not self.model.shared_critic) else 1

    def setting(self, name):
        """The value of a setting by its dotted (``"training.steps"``) or flat (``"steps"``) name."""
        obj = self
        for part in FLAT_NAMES.get(name, name).split("."):
            obj = getattr(obj, part)
        return obj

    def updated(self, settings):
        """A copy with ``settings`` (dotted or flat names) applied, validated as a whole."""
        return FuseConfig(**_merge(self.model_dump(), nest_settings(settings)))

    @classmethod
    def from_saved(cls, settings):
        """The config of a saved run (checkpoint or ``config.json``), as that run was trained.

        Runs saved before the settings were nested hold them flat (``{"ema": 0.99, ...}``); they are mapped
        to the sections. Settings added after a run was saved are absent from it; they take the values that
        reproduce how it was trained (:data:`SAVED_BEFORE`), not today's defaults, so that a resumed run
        goes on as it began. Once resumed, its checkpoints hold every setting explicitly.
        """
        settings = dict(settings)
        if not any(isinstance(settings.get(s), dict) for s in SECTIONS):  # flat: saved before nesting
            for name, value in SAVED_BEFORE.items():
                if name not in settings:
                    settings[name] = value(settings) if callable(value) else value
        return cls(**nest_settings(settings))


# every setting's flat name (the names before they were nested, still accepted) -> its dotted name
FLAT_NAMES = {
    name: f"{section}.{name}"
    for section, model in (
        ("model", ModelConfig),
        ("training", TrainingConfig),
        ("inference", InferenceConfig),
    )
    for name in model.model_fields
}

# settings absent from runs saved before they existed (flat names) -> the behaviour of those runs
SAVED_BEFORE = {
    "critic_steps": "joint",
    "augment_axes": lambda saved: [False, False, False] if saved.get("anisotropic") else None,
}


def nest_settings(settings):
    """Settings by flat, dotted or section names (``ema``, ``training.ema``, ``{"training": {...}}``),
    as the nested dict :class:`FuseConfig` takes. Unknown names are kept, for pydantic to refuse by name.

    Examples
    --------
    >>> nest_settings({"ema": 0.5, "model.gen_width": 8, "scale": 2})
    {'training': {'ema': 0.5}, 'model': {'gen_width': 8}, 'scale': 2}
    """
    out = {}
    for key, value in (settings or {}).items():
        if key in SECTIONS and isinstance(value, dict):
            out[key] = _merge(out.get(key), value)
            continue
        section, _, name = FLAT_NAMES.get(key, key).rpartition(".")
        if section in SECTIONS:
            out[section] = _merge(out.get(section), {name: value})
        else:
            out[key] = value
    return out


def _merge(base, extra):
    """``base`` updated by ``extra``, section dicts merged key by key."""
    out = dict(base) if isinstance(base, dict) else {}
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _cpu_output_size(d, target=40):
    # smallest whole number of LR voxels giving an integer output edge near ``target``
    frac = scale_fraction(d)
    q = frac.denominator  # LR voxels per whole number of output voxels
    n_lr = max(q, q * round(target / frac / q))
    return int(n_lr * frac)


PRESETS = ("cpu", "paper")


def _preset(preset, sf, d):
    """The preset's settings (flat names) at scale factor ``sf = 64/d``."""
    if preset == "paper":
        return dict(
            output_size=64,
            edge_crop=4,
            fake_batch=8,
            real_batch=64,
            slices_per_volume=None,
            critic_widths=[64, 128, 256, 512],
            gen_width=None,
            gen_min_width=1,
            critic_steps="per_axis",
            upsampling="transpose",
        )
    return dict(
        output_size=_cpu_output_size(d),
        edge_crop=4,
        fake_batch=2,
        real_batch=32,
        slices_per_volume=8,
        critic_widths=[16, 32, 64, 128],
        gen_width=64 if sf <= 4 else 96,
        gen_min_width=16,
        critic_steps="joint",  # one critic step covers the three axes: a third of the cost per iteration
        upsampling="auto",  # the measured choice per scale factor (AUTO_UPSAMPLING)
        ema=0.99,  # a few hundred iterations' average: smooths the GAN's oscillation between checkpoints
        metrics_every=25,
        checkpoint_every=100,
    )


def make_config(preset="cpu", *, settings=None, **overrides):
    """Build a :class:`FuseConfig` from a preset plus overrides.

    Parameters
    ----------
    preset : {"cpu", "paper"}
        Starting values.
    settings : dict, optional
        Settings applied as given, ``None`` included (``{"slices_per_volume": None}`` = all slices), after
        ``overrides``: for user-written settings (GUI, ``--set``).
    **overrides
        Settings whose ``None`` means "not given" (command-line options left out), so they are skipped.
        Both take flat (``ema``), dotted (``training.ema``, as ``**{"training.ema": 0.5}``) or section
        (``training={"ema": 0.5}``) names.

    Raises
    ------
    InputError
        Unknown preset, unsupported scale factor or an invalid combination (the message names the field).
    """
    given = _merge(
        nest_settings({k: v for k, v in overrides.items() if v is not None}), nest_settings(settings)
    )
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    sf, d = validate_scale(given.get("scale", 4.0))
    base = nest_settings(_preset(preset, sf, d))
    base.update(preset=preset, scale=sf)
    try:
        return FuseConfig(**_merge(base, given))
    except Exception as exc:  # pydantic ValidationError -> one line naming the field
        raise InputError(settings_message(exc, "fuse")) from None


# ------------------------------------------------------------------------------------------ run folders
LAST, BEST = "last.safetensors", "best.safetensors"


def saved_config(out_dir):
    """The settings of the run in ``out_dir`` (from its ``last.safetensors``), or None if it holds none.

    Reads the checkpoint's header only; an unreadable or foreign file also gives None (:func:`train`
    reports it when it resumes).
    """
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


def run_config(out_dir, *, preset=None, settings=None, resume=True):
    """The settings a training into ``out_dir`` runs with, from the options a user gave.

    A new run: ``preset`` (default ``"cpu"``) with ``settings``. A run to resume (``out_dir`` holds one and
    ``resume``): the run's own settings with ``settings`` (and ``preset``) applied, so that options left out
    keep the run's values; :func:`matsight.fuse.train` then refuses the ones that differ from the run's,
    except steps and how often it logs and saves.

    Parameters
    ----------
    out_dir : str or Path
        The run folder.
    preset : {"cpu", "paper"}, optional
        The preset given, if any.
    settings : dict, optional
        The settings given (flat or dotted names); ``None`` values are applied as given.
    resume : bool
        Whether a run in ``out_dir`` is to be resumed; if not, ``out_dir`` must hold none.

    Raises
    ------
    InputError
        ``out_dir`` holds a run and ``resume`` is false; an unknown preset or invalid setting.
    """
    if not resume and (Path(out_dir) / LAST).exists():
        raise InputError(f"{out_dir} already holds a run; give a new --out folder or drop --no-resume")
    saved = saved_config(out_dir) if resume else None
    if saved is None:
        return make_config(preset or "cpu", settings=settings)
    given = dict(settings or {})
    if preset is not None:
        make_config(preset)  # an unknown preset is reported as such
        given["preset"] = preset
    try:
        return saved.updated(given)
    except ValueError as exc:  # pydantic's ValidationError; anything else is a bug, with its traceback
        raise InputError(settings_message(exc, "fuse")) from None


def read_run_config(run, *, fix="give the folder of `matsight fuse train`"):
    """The settings in the ``config.json`` of the run folder ``run`` (flat ones of earlier versions too).

    Raises
    ------
    InputError
        ``run`` is not a run folder, or its ``config.json`` is unreadable or invalid (the message ends with
        ``fix``).
    """
    from .._atomic import read_json

    cfg_path = Path(run) / "config.json" if Path(run).is_dir() else None
    if cfg_path is None or not cfg_path.is_file():
        raise InputError(f"{run} has no config.json; give the folder of `matsight fuse train`")
    saved = read_json(cfg_path, what="run config", fix=fix)
    try:
        return FuseConfig.from_saved(saved)
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise InputError(f"{cfg_path}: {settings_message(exc, 'run config')}; {fix}") from None

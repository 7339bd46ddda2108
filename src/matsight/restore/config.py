"""Validated configuration of an InDI restoration run; stored inside every checkpoint.

Two presets:

- ``"paper"`` — the nano-tomography paper's model and schedule (Methods): U-Net with 64 base filters doubling
  per down-sampling block, dilated bottleneck, Swish, 7×7 first/last convolutions, sub-pixel last up-sampling,
  tanh; one-cycle cosine LR with maximum 5e-4, batch 2, random 640² crops, flips and rotations; reverse-Huber
  loss. Meant for a GPU: one pass over a 2048² slice takes minutes on 2 CPU cores.
- ``"cpu"`` (default) — the same method, objective and block types, sized so that a 10-step enhancement of a
  1024² slice takes at most 5 s on 2 CPU cores (3–4 s measured): the network works on a 2×2 space-to-depth
  rearrangement of the slice (4 channels at half the resolution, as FFDNet does; lossless and undone by a
  pixel shuffle at the end) with 16-32-64 filters, and trains on small crops. (A 4×4 rearrangement runs 3×
  faster but, in equal training time, loses ~1 dB and the thin structures.) It predicts the residual
  (``prediction="residual"``: F = x_t − t·d̂) on a slightly noisy path (ε = 0.01): a briefly trained net that
  outputs the clean image directly blurs a little at every step, so its N = 8 result was 2.7 dB below its
  N = 1 on the validation slices, while the residual net holds its PSNR as N grows
  (benchmarks/results/restore_preset.json).

The settings come in three groups: ``model`` (the network F, :class:`ModelConfig`), ``training`` (the
objective and the optimisation, :class:`TrainingConfig`) and ``inference`` (sampling and tiling,
:class:`InferenceConfig`). Overrides take the dotted names (``"training.steps"``) or the flat names of earlier
versions (``max_steps``, ``crop``, ``steps`` for the InDI step count, ...: :data:`FLAT_NAMES`), and model
folders saved with a flat config load as before.

Both presets enhance each slice alone, as the paper; ``context=k`` (opt-in) also feeds the network the ``k``
LQ slices on each side (2.5D). It did not help on the benchmark's cell CT (benchmarks/README.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._duration import parse_duration
from .._errors import InputError, settings_message

__all__ = [
    "RestoreConfig",
    "ModelConfig",
    "TrainingConfig",
    "InferenceConfig",
    "make_config",
    "load_config",
    "PRESETS",
    "FLAT_NAMES",
    "UNLIMITED_STEPS",
    "parse_duration",
    "parse_slices",
]

PRESETS = ("cpu", "paper")

UNLIMITED_STEPS = 10_000_000
"""The step count of a run that only a time budget ends (``make_config(budget=...)`` without a step count)."""


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelConfig(_Group):
    """The network ``F(x_t, t)``: a :class:`matsight.nn.unet.UNet` on an optional space-to-depth
    rearrangement.
    """

    features: list[int] = Field(default_factory=lambda: [16, 32, 64])
    time_embedding: int = Field(32, ge=2)
    space_to_depth: Literal[1, 2, 4] = 2
    blocks_per_level: int = Field(1, ge=1, le=4)
    dilated_bottleneck: bool = True
    subpixel_upsample: bool = True
    first_kernel: int = 7
    last_kernel: int = 7
    activation: Literal["swish", "relu", "gelu", "leaky_relu"] = "swish"
    output_activation: Literal["tanh", "none"] = "tanh"
    context: int = Field(
        0,
        ge=0,
        le=4,
        description=(
            "LQ slices on each side of the enhanced one given to the network as extra input channels "
            "(2.5D; spaced one LQ slice apart; 0: the slice alone, as the paper)"
        ),
    )
    prediction: Literal["clean", "residual"] = Field(
        "clean",
        description=(
            "clean: the net outputs x̂ (paper); residual: it outputs the degradation d̂ ≈ y − x and "
            "F = x_t − t·d̂, so F → x_t as t → 0 and the last sampling steps keep the detail already restored"
        ),
    )

    @field_validator("features")
    @classmethod
    def _features(cls, v):
        if not 1 <= len(v) <= 6 or any(f < 1 for f in v):
            raise ValueError("features needs 1 to 6 positive filter counts, e.g. [64, 128, 256, 512] (paper)")
        return v

    @field_validator("first_kernel", "last_kernel")
    @classmethod
    def _odd(cls, v):
        if v < 1 or v % 2 == 0:
            raise ValueError(f"kernel sizes must be odd and positive (7 in the paper), got {v}")
        return v

    @property
    def unit(self):
        """The edge (pixels) every network input must be a multiple of: space-to-depth × 2^downsamplings."""
        return self.space_to_depth * 2 ** (len(self.features) - 1)

    def unet_kwargs(self):
        """Keyword arguments for :class:`matsight.nn.unet.UNet`."""
        s2 = self.space_to_depth**2
        return dict(
            spatial_dims=2,
            in_channels=s2 * (1 + 2 * self.context),
            out_channels=s2,
            features=tuple(self.features),
            time_embedding=self.time_embedding,
            activation=self.activation,
            first_kernel=self.first_kernel,
            last_kernel=self.last_kernel,
            dilated_bottleneck=self.dilated_bottleneck,
            subpixel_upsample=self.subpixel_upsample,
            output_activation=None if self.output_activation == "none" else self.output_activation,
            blocks_per_level=self.blocks_per_level,
        )


class TrainingConfig(_Group):
    """The InDI objective (:mod:`~matsight.restore.losses`) and its optimisation (:mod:`~.train`)."""

    # InDI objective
    objective: Literal["indi", "onestep"] = Field(
        "indi",
        description=(
            "indi: the InDI path objective (t drawn, x_t between HQ and LQ; sampled in N steps); "
            "onestep: the same network trained for direct regression LQ → HQ (t fixed at 1, x_t = LQ; "
            "applied in one pass), the paper's one-step baseline"
        ),
    )
    t_mass_at_one: float = Field(
        0.5, ge=0, description="a: t ~ 1/(1+a) U[0,1] + a/(1+a) δ(t-1); the public implementation uses 0.5"
    )
    eps: float = Field(
        0.0, ge=0, le=1, description="constant ε of the noisy path x_t + t ε η (0: deterministic)"
    )
    loss: Literal["reverse_huber", "l1", "l2"] = "reverse_huber"
    huber_c: float = Field(0.5, gt=0, description="reverse-Huber threshold: MAE below, MSE above")
    # optimisation
    crop: int = Field(128, ge=16, description="edge of the random training crops (pixels)")
    batch: int = Field(8, ge=1)
    lr_max: float = Field(5e-4, gt=0)
    pct_start: float = Field(0.3, gt=0, lt=1, description="fraction of the schedule spent warming up")
    div_factor: float = Field(25.0, ge=1)
    final_div_factor: float = Field(1e4, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    steps: int = Field(4000, ge=1, description="optimiser steps (the run ends at these or at budget_s)")
    budget_s: float | None = Field(None, gt=0, description="wall-clock budget of the whole run (seconds)")
    flips: bool = True
    rotations: bool = True
    val_fraction: float = Field(0.1, ge=0, lt=1)
    val_every: int = Field(250, ge=1)
    val_crop: int = Field(
        256, ge=16, description="validation uses central crops of this edge (0: whole slices)"
    )
    checkpoint_every: int = Field(200, ge=1)
    seed: int = Field(0, ge=0)


class InferenceConfig(_Group):
    """Sampling (:mod:`~matsight.restore.indi`) and tiling of the enhancement (:mod:`~.predict`)."""

    indi_steps: int = Field(8, ge=1, le=1000, description="default number N of InDI sampling steps")
    auto_steps: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 6, 8, 10, 12, 16],
        description="candidates tried on the validation slices after training for N='auto' (empty: skip)",
    )
    auto_psnr_tolerance: float = Field(
        0.05,
        ge=0,
        description="auto takes the fewest steps whose validation PSNR is within this many dB of the best",
    )
    tile: int = Field(1024, ge=32, description="tile edge for enhancement of large slices")
    overlap: float = Field(0.25, ge=0, lt=1)


_GROUPS = {"model": ModelConfig, "training": TrainingConfig, "inference": InferenceConfig}
_RENAMED = {"max_steps": "training.steps", "steps": "inference.indi_steps"}

FLAT_NAMES = {
    **{name: f"{group}.{name}" for group, cls in _GROUPS.items() for name in cls.model_fields},
    **_RENAMED,
}
"""The flat setting names of earlier versions (overrides, saved model folders) → their dotted names.

Two were renamed: ``max_steps`` (optimiser steps) is ``training.steps``; ``steps`` (InDI sampling steps) is
``inference.indi_steps``.
"""


def nest(settings):
    """``{"crop": 64, "model.context": 1, "inference": {...}}`` → the nested dict of :class:`RestoreConfig`.

    Flat names (:data:`FLAT_NAMES`) and dotted names are placed in their group; group dicts are merged. An
    unknown name stays at the top level, where validation rejects it by name.
    """
    out = {}
    for key, value in dict(settings).items():
        path = FLAT_NAMES.get(key, key) if "." not in key else key
        group, dot, name = path.partition(".")
        if dot and group in _GROUPS:
            out.setdefault(group, {})
            if not isinstance(out[group], dict):
                out[group] = dict(out[group])
            out[group][name] = value
        elif key in _GROUPS and isinstance(value, dict):
            out[key] = {**value, **out.get(key, {})} if isinstance(out.get(key), dict) else dict(value)
        else:
            out[key] = value
    return out


class RestoreConfig(BaseModel):
    """Every setting of an InDI run (validated; JSON-serialisable; saved in each checkpoint).

    Built from flat (older) or nested settings alike: ``RestoreConfig(crop=64)`` is
    ``RestoreConfig(training={"crop": 64})``.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    preset: Literal["cpu", "paper", "custom"] = "cpu"
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)

    @model_validator(mode="before")
    @classmethod
    def _nest(cls, data):
        return nest(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check(self):
        crop, m = self.training.crop, self.model
        if crop < 2 * m.unit:
            raise ValueError(
                f"training.crop {crop} is too small for {len(m.features) - 1} down-samplings after a "
                f"{m.space_to_depth}× space-to-depth; use crop >= {2 * m.unit}"
            )
        if crop % m.space_to_depth:
            raise ValueError(f"training.crop {crop} must be a multiple of space_to_depth {m.space_to_depth}")
        return self


def parse_slices(text, what="slices"):
    """``"45:54"`` → ``range(45, 54)``: a block of z slices written START:STOP (STOP excluded).

    Raises
    ------
    InputError
        Not two non-negative integers with START < STOP; ``what`` names the option in the message.
    """
    start, sep, stop = str(text).partition(":")
    if not (sep and start.strip().isdigit() and stop.strip().isdigit() and int(start) < int(stop)):
        raise InputError(f"{what} must be START:STOP with START < STOP (e.g. 45:54), got {text!r}")
    return range(int(start), int(stop))


_PRESET_SETTINGS = {
    "paper": {
        "model.features": [64, 128, 256, 512],
        "model.space_to_depth": 1,
        "model.time_embedding": 64,
        "training.crop": 640,
        "training.batch": 2,
        "training.steps": 200_000,
        "training.val_crop": 512,
        "inference.tile": 1024,
    },
    "cpu": {
        "model.features": [16, 32, 64],
        "model.space_to_depth": 2,
        "model.time_embedding": 32,
        "training.crop": 128,
        "training.batch": 8,
        "model.prediction": "residual",
        "training.eps": 0.01,
    },
}


def make_config(preset="cpu", *, budget=None, **overrides):
    """Build a :class:`RestoreConfig` from a preset plus overrides (``None`` values are ignored).

    Parameters
    ----------
    preset : {"cpu", "paper"}
    budget : float or str, optional
        Wall-clock budget of the run (seconds, or ``"20m"``, ``"1h30m"``). Without a step count among the
        overrides the budget alone ends the run (:data:`UNLIMITED_STEPS`) — the rule of ``matsight restore
        train --budget`` and of the GUI.
    **overrides
        Settings by dotted name (``**{"training.steps": 500}``) or by flat name (``crop=64``,
        ``max_steps=500``; :data:`FLAT_NAMES`).

    Raises
    ------
    InputError
        Unknown preset or an invalid value/combination (the message names the field).

    Examples
    --------
    >>> cfg = make_config("cpu", **{"training.steps": 500}, context=1)
    >>> cfg.training.steps, cfg.model.context
    (500, 1)
    >>> make_config(budget="20m").training.steps == UNLIMITED_STEPS
    True
    """
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    settings = {FLAT_NAMES.get(k, k): v for k, v in overrides.items() if v is not None}
    if budget is not None:
        settings["training.budget_s"] = budget
        settings.setdefault("training.steps", UNLIMITED_STEPS)
    if "training.budget_s" in settings:
        settings["training.budget_s"] = parse_duration(settings["training.budget_s"])
    try:
        return RestoreConfig(**{**_PRESET_SETTINGS[preset], "preset": preset, **settings})
    except Exception as exc:  # pydantic ValidationError -> one line naming the field
        raise InputError(settings_message(exc, "restore")) from None


def with_overrides(config, **overrides):
    """``config`` with ``overrides`` (dotted or flat names) applied and validated again."""
    if not overrides:
        return config
    base = {f"{group}.{k}": v for group in _GROUPS for k, v in getattr(config, group).model_dump().items()}
    preset = config.preset if config.preset in PRESETS else "cpu"
    settings = {FLAT_NAMES.get(k, k): v for k, v in overrides.items() if v is not None}
    try:
        return RestoreConfig(**{**base, "preset": preset, **settings})
    except Exception as exc:
        raise InputError(settings_message(exc, "restore")) from None


def load_config(data):
    """Rebuild a config stored in a checkpoint (a dict, nested or the flat one of earlier versions), with a
    clear error for foreign or damaged ones.
    """
    try:
        return RestoreConfig(**data)
    except Exception as exc:
        raise InputError(
            f"the checkpoint's settings do not load ({settings_message(exc, 'restore')}); retrain"
        ) from None

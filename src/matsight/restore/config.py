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

Both presets enhance each slice alone, as the paper; ``context=k`` (opt-in) also feeds the network the ``k``
LQ slices on each side (2.5D). It did not help on the benchmark's cell CT (benchmarks/README.md).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._duration import parse_duration
from .._errors import InputError, settings_message

__all__ = ["RestoreConfig", "make_config", "PRESETS", "parse_duration", "parse_slices"]

PRESETS = ("cpu", "paper")


class RestoreConfig(BaseModel):
    """Every setting of an InDI run (validated; JSON-serialisable; saved in each checkpoint)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    preset: Literal["cpu", "paper", "custom"] = "cpu"

    # network (matsight.nn.unet.UNet)
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

    # InDI objective
    t_mass_at_one: float = Field(
        0.5, ge=0, description="a: t ~ 1/(1+a) U[0,1] + a/(1+a) δ(t-1); the public implementation uses 0.5"
    )
    eps: float = Field(
        0.0, ge=0, le=1, description="constant ε of the noisy path x_t + t ε η (0: deterministic)"
    )
    loss: Literal["reverse_huber", "l1", "l2"] = "reverse_huber"
    huber_c: float = Field(0.5, gt=0, description="reverse-Huber threshold: MAE below, MSE above")

    # training
    crop: int = Field(128, ge=16, description="edge of the random training crops (pixels)")
    batch: int = Field(8, ge=1)
    lr_max: float = Field(5e-4, gt=0)
    pct_start: float = Field(0.3, gt=0, lt=1, description="fraction of the schedule spent warming up")
    div_factor: float = Field(25.0, ge=1)
    final_div_factor: float = Field(1e4, ge=1)
    weight_decay: float = Field(0.0, ge=0)
    max_steps: int = Field(4000, ge=1)
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

    # inference
    steps: int = Field(8, ge=1, le=1000, description="default number of sampling steps")
    auto_steps: list[int] = Field(
        default_factory=lambda: [1, 2, 4, 6, 8, 10, 12, 16],
        description="candidates tried on the validation slices after training for steps='auto' (empty: skip)",
    )
    auto_psnr_tolerance: float = Field(
        1.0, ge=0, description="dB below the best PSNR still eligible for auto"
    )
    tile: int = Field(1024, ge=32, description="tile edge for enhancement of large slices")
    overlap: float = Field(0.25, ge=0, lt=1)

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

    @model_validator(mode="after")
    def _check(self):
        unit = self.space_to_depth * 2 ** (len(self.features) - 1)
        if self.crop < 2 * unit:
            raise ValueError(
                f"crop {self.crop} is too small for {len(self.features) - 1} down-samplings after a "
                f"{self.space_to_depth}× space-to-depth; use crop >= {2 * unit}"
            )
        if self.crop % self.space_to_depth:
            raise ValueError(f"crop {self.crop} must be a multiple of space_to_depth {self.space_to_depth}")
        return self

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


def make_config(preset="cpu", **overrides):
    """Build a :class:`RestoreConfig` from a preset plus overrides (``None`` values are ignored).

    Raises
    ------
    InputError
        Unknown preset or an invalid value/combination (the message names the field).
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if preset == "paper":
        base = dict(
            features=[64, 128, 256, 512],
            space_to_depth=1,
            time_embedding=64,
            crop=640,
            batch=2,
            max_steps=200_000,
            val_crop=512,
            tile=1024,
        )
    else:
        base = dict(
            features=[16, 32, 64],
            space_to_depth=2,
            time_embedding=32,
            crop=128,
            batch=8,
            prediction="residual",
            eps=0.01,
        )
    base["preset"] = preset
    base.update(overrides)
    if "budget_s" in base:
        base["budget_s"] = parse_duration(base["budget_s"])
    try:
        return RestoreConfig(**base)
    except Exception as exc:  # pydantic ValidationError -> one line naming the field
        raise InputError(settings_message(exc, "restore")) from None


def load_config(data):
    """Rebuild a config stored in a checkpoint (a dict), with a clear error for foreign or damaged ones."""
    try:
        return RestoreConfig(**data)
    except Exception as exc:
        raise InputError(
            f"the checkpoint's settings do not load ({settings_message(exc, 'restore')}); retrain"
        ) from None

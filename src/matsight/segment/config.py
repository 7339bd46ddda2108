"""Validated configuration of a segmentation model; stored inside every saved model.

Two methods share the config:

- ``"forest"`` (default) — a random forest on multi-scale filter responses, trained from a few strokes per
  phase (the ilastik / Trainable Weka Segmentation approach). Seconds on a CPU.
- ``"unet"`` — a small 2D U-Net (residual blocks and attention gates, as the attention residual U-Net of the
  InDI nano-tomography paper), trained with a cross-entropy on the labelled pixels only. For when more labels
  exist; minutes on a CPU at the default size.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._errors import InputError, settings_message

__all__ = ["FeatureConfig", "SegmentConfig", "make_config"]

FEATURE_KINDS = ("intensity", "gaussian", "gradient", "log", "dog", "hessian", "structure")


class FeatureConfig(BaseModel):
    """The multi-scale filter bank of the forest (see :mod:`matsight.segment.features`).

    ``kinds`` chooses filters, ``sigmas`` the Gaussian scales in pixels; every kind except ``intensity`` is
    computed at every sigma. The defaults are ilastik's standard feature families at four octave-spaced
    scales.
    """

    model_config = ConfigDict(extra="forbid")

    sigmas: list[float] = Field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    kinds: list[str] = Field(default_factory=lambda: list(FEATURE_KINDS))
    truncate: float = Field(4.0, gt=0, le=8, description="Gaussian kernels end at truncate × sigma")

    @field_validator("sigmas")
    @classmethod
    def _sigmas(cls, v):
        if not v:
            raise ValueError("give at least one sigma, e.g. [1, 2, 4, 8]")
        if any(not (0.3 <= s <= 64) for s in v):
            raise ValueError(f"sigmas must lie in [0.3, 64] pixels, got {v}")
        return sorted(float(s) for s in v)

    @field_validator("kinds")
    @classmethod
    def _kinds(cls, v):
        bad = [k for k in v if k not in FEATURE_KINDS]
        if bad or not v:
            raise ValueError(f"unknown feature kinds {bad}; choose from {', '.join(FEATURE_KINDS)}")
        return [k for k in FEATURE_KINDS if k in v]  # canonical order → stable feature indices


class SegmentConfig(BaseModel):
    """Every setting of a segmentation model (validated; JSON-serialisable; saved with the model).

    Labels: in the training label image 0 means "unlabelled" and value ``k >= 1`` marks phase ``k - 1``, so
    the predicted label image uses the matsight convention (0 = pore, 1, 2, ...).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    method: Literal["forest", "unet"] = "forest"
    dims: Literal["auto", 2, 3] = Field(
        "auto", description="feature dimensionality: 2 = slice-wise, 3 = volumetric, auto = the image's"
    )
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    normalize: Literal["train", "image"] = Field(
        "train",
        description="intensity scaling at apply time: the training image's percentiles or the new image's",
    )
    # forest
    n_estimators: int = Field(100, ge=1, le=2000)
    max_depth: int | None = Field(None, ge=1, le=64)
    min_samples_leaf: int = Field(1, ge=1)
    max_samples_per_class: int = Field(
        20_000,
        ge=100,
        description="labelled pixels drawn per phase for training (keeps training seconds-fast)",
    )
    n_jobs: int = Field(-1, description="CPU threads for forest training (-1: all the process may use)")
    # unet
    unet_widths: list[int] = Field(default_factory=lambda: [16, 32, 64])
    attention: bool = True
    residual: bool = True
    crop: int = Field(96, ge=16, le=1024)
    batch_size: int = Field(4, ge=1, le=256)
    iterations: int = Field(300, ge=1)
    learning_rate: float = Field(2e-3, gt=0, lt=1)
    device: str = "auto"
    # training protocol
    holdout: float = Field(0.2, ge=0.0, lt=1.0)
    refit: bool = Field(True, description="after scoring on the held-out labels, retrain on all labels")
    seed: int = Field(0, ge=0)

    @field_validator("unet_widths")
    @classmethod
    def _widths(cls, v):
        if not 2 <= len(v) <= 6 or min(v) < 1:
            raise ValueError(f"unet_widths needs 2 to 6 positive channel counts, e.g. [16, 32, 64], got {v}")
        return [int(w) for w in v]

    @model_validator(mode="after")
    def _unet_is_2d(self):
        if self.method == "unet" and self.dims == 3:
            raise ValueError(
                "the U-Net is 2D (applied slice-wise to volumes); use dims=2 or auto, or method=forest"
            )
        return self


def make_config(config=None, **overrides):
    """Build a :class:`SegmentConfig` from a config/dict plus keyword overrides; errors become InputError.

    ``sigmas=`` and ``kinds=`` are accepted as shortcuts for ``features={"sigmas": ..., "kinds": ...}``.
    """
    if isinstance(config, SegmentConfig):
        base = config.model_dump()
    else:
        base = dict(config or {})
    overrides = {k: v for k, v in overrides.items() if v is not None}
    feat = dict(base.get("features") or {})
    for key in ("sigmas", "kinds", "truncate"):
        if key in overrides:
            feat[key] = overrides.pop(key)
    if feat:
        base["features"] = feat
    base.update(overrides)
    try:
        return SegmentConfig(**base)
    except ValidationError as exc:
        raise InputError(settings_message(exc, "segment")) from None

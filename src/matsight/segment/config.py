"""Validated configuration of a segmentation model; stored inside every saved model.

:class:`SegmentConfig` nests three parts, as every method of matsight does:

- ``model`` — what is learnt: ``method`` ``"forest"`` (default; a random forest on multi-scale filter
  responses ``model.forest.features``, trained from a few strokes per phase — the ilastik / Trainable Weka
  Segmentation approach; seconds on a CPU) or ``"unet"`` (a small 2D U-Net with residual blocks and attention
  gates, as the attention residual U-Net of the InDI nano-tomography paper, trained with a cross-entropy on
  the labelled pixels only; for when more labels exist, minutes on a CPU), and ``dims``;
- ``training`` — how: held-out share, refit, seed, the forest's sampling and threads, the U-Net's optimiser
  ``steps``, crops, batch, learning rate and device;
- ``inference`` — how a saved model reads new images (its intensity scaling).

Models saved before this layout (one flat JSON object of settings, e.g. ``{"method": "unet", "iterations":
300, "unet_widths": [16, 32, 64], ...}``) load unchanged: flat names are moved to their place (:data:`FLAT`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._errors import InputError, settings_message

__all__ = [
    "FeatureConfig",
    "ForestConfig",
    "UNetConfig",
    "ModelConfig",
    "TrainingConfig",
    "InferenceConfig",
    "SegmentConfig",
    "make_config",
]

FEATURE_KINDS = ("intensity", "gaussian", "gradient", "log", "dog", "hessian", "structure")

#: Where each setting of the earlier flat config (and of :func:`make_config`'s keywords) lives now.
FLAT = {
    "method": ("model", "method"),
    "dims": ("model", "dims"),
    "features": ("model", "forest", "features"),
    "sigmas": ("model", "forest", "features", "sigmas"),
    "kinds": ("model", "forest", "features", "kinds"),
    "truncate": ("model", "forest", "features", "truncate"),
    "n_estimators": ("model", "forest", "n_estimators"),
    "max_depth": ("model", "forest", "max_depth"),
    "min_samples_leaf": ("model", "forest", "min_samples_leaf"),
    "unet_widths": ("model", "unet", "widths"),
    "attention": ("model", "unet", "attention"),
    "residual": ("model", "unet", "residual"),
    "holdout": ("training", "holdout"),
    "refit": ("training", "refit"),
    "seed": ("training", "seed"),
    "max_samples_per_class": ("training", "max_samples_per_class"),
    "n_jobs": ("training", "n_jobs"),
    "steps": ("training", "steps"),
    "iterations": ("training", "steps"),  # the earlier name of the optimiser steps
    "crop": ("training", "crop"),
    "batch_size": ("training", "batch_size"),
    "learning_rate": ("training", "learning_rate"),
    "device": ("training", "device"),
    "normalize": ("inference", "normalize"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class FeatureConfig(_Strict):
    """The multi-scale filter bank of the forest (see :mod:`matsight.segment.features`).

    ``kinds`` chooses filters, ``sigmas`` the Gaussian scales in pixels; every kind except ``intensity`` is
    computed at every sigma. The defaults are ilastik's standard feature families at four octave-spaced
    scales.
    """

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


class ForestConfig(_Strict):
    """The random forest: its features and trees (scikit-learn's meaning of each setting)."""

    features: FeatureConfig = Field(default_factory=FeatureConfig)
    n_estimators: int = Field(100, ge=1, le=2000)
    max_depth: int | None = Field(None, ge=1, le=64)
    min_samples_leaf: int = Field(1, ge=1)


class UNetConfig(_Strict):
    """The segmentation U-Net (:func:`matsight.segment.networks.build_network`)."""

    widths: list[int] = Field(default_factory=lambda: [16, 32, 64])
    attention: bool = True
    residual: bool = True

    @field_validator("widths")
    @classmethod
    def _widths(cls, v):
        if not 2 <= len(v) <= 6 or min(v) < 1:
            raise ValueError(f"unet widths need 2 to 6 positive channel counts, e.g. [16, 32, 64], got {v}")
        return [int(w) for w in v]


class ModelConfig(_Strict):
    """What is learnt: the method, its dimensionality and the settings of each method."""

    method: Literal["forest", "unet"] = "forest"
    dims: Literal["auto", 2, 3] = Field(
        "auto", description="feature dimensionality: 2 = slice-wise, 3 = volumetric, auto = the image's"
    )
    forest: ForestConfig = Field(default_factory=ForestConfig)
    unet: UNetConfig = Field(default_factory=UNetConfig)

    @model_validator(mode="after")
    def _unet_is_2d(self):
        if self.method == "unet" and self.dims == 3:
            raise ValueError(
                "the U-Net is 2D (applied slice-wise to volumes); use dims=2 or auto, or method=forest"
            )
        return self


class TrainingConfig(_Strict):
    """How the model is trained and scored on held-out strokes."""

    holdout: float = Field(0.2, ge=0.0, lt=1.0)
    refit: bool = Field(True, description="after scoring on the held-out labels, retrain on all labels")
    seed: int = Field(0, ge=0)
    # forest
    max_samples_per_class: int = Field(
        20_000,
        ge=100,
        description="labelled pixels drawn per phase for training (keeps training seconds-fast)",
    )
    n_jobs: int = Field(-1, description="CPU threads for forest training (-1: all the process may use)")
    # unet
    steps: int = Field(300, ge=1, description="U-Net optimiser steps")
    crop: int = Field(96, ge=16, le=1024)
    batch_size: int = Field(4, ge=1, le=256)
    learning_rate: float = Field(2e-3, gt=0, lt=1)
    device: str = "auto"


class InferenceConfig(_Strict):
    """How a saved model reads new images."""

    normalize: Literal["train", "image"] = Field(
        "train",
        description="intensity scaling at apply time: the training image's percentiles or the new image's",
    )


class SegmentConfig(_Strict):
    """Every setting of a segmentation model (validated; JSON-serialisable; saved with the model).

    Labels: in the training label image 0 means "unlabelled" and value ``k >= 1`` marks phase ``k - 1``, so
    the predicted label image uses the matsight convention (0 = pore, 1, 2, ...).

    Examples
    --------
    >>> cfg = SegmentConfig(model={"method": "unet"}, training={"steps": 50})
    >>> cfg.model.unet.widths, cfg.training.steps
    ([16, 32, 64], 50)
    >>> SegmentConfig(method="unet", iterations=50) == cfg  # the earlier flat form
    True
    """

    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    inference: InferenceConfig = Field(default_factory=InferenceConfig)

    @model_validator(mode="before")
    @classmethod
    def _nest_flat(cls, data):
        """Move the flat settings of models saved before the nested layout to their place."""
        if not isinstance(data, dict) or not any(k in FLAT for k in data):
            return data
        return nest(data)


def nest(flat):
    """A dict of flat settings (:data:`FLAT` names, nested parts kept) → the nested form of SegmentConfig."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in flat.items() if k not in FLAT}
    for key, value in flat.items():
        if key not in FLAT:
            continue
        *parents, leaf = FLAT[key]
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        if isinstance(value, dict) and isinstance(node.get(leaf), dict):
            node[leaf] = {**node[leaf], **value}
        else:
            node[leaf] = value
    return out


def make_config(config=None, **overrides):
    """A :class:`SegmentConfig` from a config or dict plus flat keyword overrides; errors become InputError.

    Overrides use the flat names of :data:`FLAT` (``method="unet"``, ``steps=50``, ``sigmas=[1, 2]``,
    ``n_estimators=60``, ...); ``None`` values are ignored.

    Examples
    --------
    >>> make_config(method="unet", steps=20).training.steps
    20
    """
    if isinstance(config, SegmentConfig):
        base = config.model_dump()
    else:
        base = nest(dict(config or {}))
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(k for k in overrides if k not in FLAT)
    if unknown:
        raise InputError(f"unknown segment setting(s) {', '.join(unknown)}; use {', '.join(sorted(FLAT))}")
    merged = _merge(base, nest(overrides))
    try:
        return SegmentConfig(**merged)
    except ValidationError as exc:
        raise InputError(settings_message(exc, "segment")) from None


def _merge(base, new):
    out = dict(base)
    for k, v in new.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

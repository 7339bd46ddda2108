"""Every setting of an HRTEM analysis and of the spot detector's training, validated once (pydantic).

:class:`TemConfig` has one section per step of the method:

- ``detection`` (:class:`DetectionConfig`) — FFT window, spot detector (classical or the U-Net and its
  weights), the classical seed level, the analysed spacings ``d_min ≤ d ≤ d_max`` (Å);
- ``matching`` (:class:`MatchingConfig`) — the phases searched and the d / inter-plane-angle tolerances;
- ``mapping`` (:class:`MappingConfig`) — whether and how real-space phase maps are made;
- ``series`` (:class:`SeriesConfig`) — movies: seconds per frame, dask scheduler and workers;
- ``training`` (:class:`TrainingConfig`) — the spot U-Net's optimisation (the synthetic frames it learns
  from are :class:`matsight.tem.train.SyntheticFrames`).

The CLI's options, the GUI's fields and the old keyword arguments of :func:`~matsight.tem.predict.analyze`
(``tolerance=``, ``detector=``, ...) are the same settings by their flat names (:data:`FLAT`);
:func:`make_config` accepts both and raises one :class:`~matsight.InputError` line naming every bad field
and its option.

Examples
--------
>>> cfg = make_config(tolerance=0.03, detector="unet")
>>> cfg.matching.tolerance, cfg.detection.detector
(0.03, 'unet')
>>> make_config(tolerance=0.7)
Traceback (most recent call last):
...
matsight._errors.InputError: invalid tem setting — matching.tolerance: --tolerance 0.7 must be a relative \
d error in (0, 0.5), e.g. 0.02 for 2 %
"""

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .._errors import InputError, settings_message
from .spots import check_d_range

__all__ = [
    "DETECTORS",
    "FLAT",
    "DetectionConfig",
    "MappingConfig",
    "MatchingConfig",
    "SeriesConfig",
    "TemConfig",
    "TrainingConfig",
    "make_config",
]

DETECTORS = ("classical", "unet")
LOCAL_SCHEDULERS = ("sync", "threads", "processes")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class DetectionConfig(_Section):
    """FFT and spot detection (:mod:`matsight.tem.fft`, :mod:`~matsight.tem.spots`, :mod:`~.detector`)."""

    detector: Literal["classical", "unet"] = "classical"
    weights: Path | None = Field(None, description="U-Net weights (default: the shipped ones)")
    threshold: float | None = Field(
        None, description="classical seed level (noise-normalised); default spots.auto_threshold"
    )
    d_min: float = Field(1.0, description="smallest analysed spacing (Å)")
    d_max: float = Field(15.0, description="largest analysed spacing (Å)")
    window: Literal["hann", "tukey", "periodic", "none"] = "hann"

    @field_validator("detector", mode="before")
    @classmethod
    def _detector(cls, v):
        if v not in DETECTORS:
            raise ValueError(f"unknown detector {v!r}; use one of {', '.join(DETECTORS)}")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.weights is not None and self.detector != "unet":
            raise ValueError("--weights needs --detector unet; add it or drop --weights")
        check_d_range(self.d_min, self.d_max)
        return self


class MatchingConfig(_Section):
    """Spots to phases (:func:`matsight.tem.match.match_spots`)."""

    phases: list[Any] | None = Field(
        None, description="names, structure files, dicts or Phase objects; default the shipped four"
    )
    tolerance: float = Field(0.02, description="relative d tolerance (0.02 = 2 %)")
    angle_tolerance: float = Field(2.0, description="inter-plane angle tolerance (degrees)")
    min_intensity: float = Field(0.01, description="ignore weaker reference reflections (relative |F|²)")
    scale_range: float = Field(
        0.08, ge=0, lt=0.5, description="when no phase fits, search pixel-size scales within ± this (0 = off)"
    )
    min_merit: float = Field(2.0, ge=0, description="figure of merit a crystal needs to name its phase")
    max_anisotropy: float = Field(
        0.03, ge=0, description="largest x/y stretch of a zone net a crystal may need to fit (0.03 = 3 %)"
    )

    # `not a < x` also refuses NaN
    @field_validator("tolerance")
    @classmethod
    def _tolerance(cls, v):
        if not 0 < v < 0.5:
            raise ValueError(f"--tolerance {v} must be a relative d error in (0, 0.5), e.g. 0.02 for 2 %")
        return v

    @field_validator("angle_tolerance")
    @classmethod
    def _angle(cls, v):
        if not 0 < v <= 90:
            raise ValueError(f"--angle-tolerance must be in (0, 90] degrees, got {v}")
        return v

    @field_validator("min_intensity")
    @classmethod
    def _min_intensity(cls, v):
        if not 0 <= v < 1:
            raise ValueError(
                f"--min-intensity must be in [0, 1) (|F|² relative to the strongest reflection), got {v}"
            )
        return v


class MappingConfig(_Section):
    """Real-space phase maps (:func:`matsight.tem.phasemap.phase_maps`)."""

    maps: bool = Field(True, description="compute real-space phase maps")
    min_radius: float = Field(2.0, gt=0, description="smallest spot-mask radius (spectrum px)")
    opening_size: int = Field(7, ge=1, description="morphological opening kernel (frame px)")
    opening_iterations: int = Field(2, ge=0)
    work_max: int = Field(1024, ge=16, description="segmentation grid side at most this (px)")


class SeriesConfig(_Section):
    """Movies and folders (:func:`matsight.tem.series.analyze_series`)."""

    frame_time: float | None = Field(None, description="seconds per frame; default the file's times")
    scheduler: str | None = Field(
        None, description="None (serial), sync, threads, processes, distributed or tcp://host:port"
    )
    workers: int | None = Field(None, description="dask workers")

    @field_validator("frame_time")
    @classmethod
    def _frame_time(cls, v):
        if v is not None and not 0 < v < math.inf:
            raise ValueError(f"--frame-time must be a positive number of seconds per frame, got {v}")
        return v

    @field_validator("workers", mode="before")
    @classmethod
    def _workers(cls, v):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or int(v) != v or v < 1):
            raise ValueError(f"--workers must be a whole number ≥ 1, got {v}")
        return v

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v):
        if v is not None and v not in (*LOCAL_SCHEDULERS, "distributed") and "://" not in v:
            raise ValueError(
                f"unknown scheduler {v!r}; "
                "use sync, threads, processes, distributed or a tcp://host:port address"
            )
        return v


class TrainingConfig(_Section):
    """Optimisation of the spot U-Net (:func:`matsight.tem.train.train`); stored in its checkpoint."""

    patch: tuple[int, int] = (128, 64)
    patches_per_frame: int = Field(2, ge=1, description="patches per training frame and epoch")
    epochs: int = Field(12, ge=1, description="passes over the training patches (when steps is None)")
    steps: int | None = Field(
        None, ge=1, description="optimiser steps (overrides epochs); validation every epoch's worth of steps"
    )
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-3, gt=0)
    features: tuple[int, ...] = (8, 16, 32, 64)
    seed: int = 0
    threads: int = Field(2, ge=1)
    device: str = "auto"

    @field_validator("patch")
    @classmethod
    def _patch(cls, v):
        if min(v) < 16 or v[0] % 8 or v[1] % 8:
            raise ValueError("patch sides must be multiples of 8 and at least 16, e.g. (128, 64)")
        return v


class TemConfig(_Section):
    """Every setting of the analysis and the training, one section per step of the method."""

    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    matching: MatchingConfig = Field(default_factory=MatchingConfig)
    mapping: MappingConfig = Field(default_factory=MappingConfig)
    series: SeriesConfig = Field(default_factory=SeriesConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)


# flat setting name (CLI option, GUI field, analyze keyword) -> section
FLAT = {
    **{k: "detection" for k in DetectionConfig.model_fields},
    **{k: "matching" for k in MatchingConfig.model_fields},
    **{k: "mapping" for k in MappingConfig.model_fields},
    **{k: "series" for k in SeriesConfig.model_fields},
}


def _nest(base, flat):
    """``base`` (a TemConfig dump) updated by flat names and by whole sections."""
    out = {k: dict(v) for k, v in base.items()}
    for key, value in flat.items():
        if key in TemConfig.model_fields:
            out[key].update(value.model_dump() if isinstance(value, BaseModel) else dict(value))
        elif key in FLAT:
            out[FLAT[key]][key] = value
        else:
            known = ", ".join(sorted(FLAT))
            raise InputError(f"invalid tem setting — {key}: unknown setting; known: {known}")
    return out


def make_config(config=None, **settings):
    """A validated :class:`TemConfig`: ``config`` (TemConfig, nested dict or None) updated by ``settings``.

    ``settings`` are flat names (:data:`FLAT`: ``tolerance=0.03``, ``detector="unet"``, ...) or whole
    sections (``training={"epochs": 1}``). Invalid values raise one :class:`~matsight.InputError` naming each
    field and its option.
    """
    if isinstance(config, TemConfig) and not settings:
        return config
    if isinstance(config, TemConfig):
        base = {name: dict(getattr(config, name)) for name in TemConfig.model_fields}
    else:
        base = {name: {} for name in TemConfig.model_fields}
        base = _nest(base, dict(config or {}))
    try:
        return TemConfig(**_nest(base, settings))
    except ValidationError as exc:
        raise InputError(settings_message(exc, "tem")) from None
    except InputError as exc:  # a check shared with the library (d range) raised directly
        raise InputError(f"invalid tem setting — {exc}") from None

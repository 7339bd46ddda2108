"""Input checks shared by the image metrics (:mod:`.image_quality`, :mod:`.resolution`)."""

from __future__ import annotations

import numpy as np

from matsight._errors import InputError

__all__ = ["as_image"]


def as_image(a, name, *, ndim=(2, 3)):
    """``a`` as an array; an :class:`InputError` naming ``name`` unless it is a finite numeric image."""
    a = np.asarray(a)
    if a.ndim not in ndim:
        want = " or ".join(f"{n}D" for n in ndim)
        raise InputError(f"{name} must be {want}, got shape {a.shape}; pass a single image or volume")
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise InputError(f"{name} contains NaN/inf values; remove or fill them (np.nan_to_num) first")
    return a

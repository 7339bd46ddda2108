"""Argument checks shared by the synthetic-data generators: one-line :class:`InputError` messages."""

import math
import numbers

from .._errors import InputError


def check_shape(shape, *, ndims=(2, 3), min_size=2, name="shape"):
    """Validate an image shape: a tuple of ``ndims`` whole numbers, each at least ``min_size``.

    Floats are accepted only when whole (``64.0``); ``64.5``, strings, bools and negative sizes are errors
    (silently truncating them would hand back an image of another shape than the one asked for).
    """
    dims = " or ".join(str(d) for d in ndims)
    example = "(128, 128, 128)" if 3 in ndims else "(512, 512)"
    if isinstance(shape, numbers.Number) or isinstance(shape, str) or shape is None:
        raise InputError(f"{name} must be a tuple of {dims} sizes, e.g. {example}, got {shape!r}")
    try:
        items = tuple(shape)
    except TypeError:
        raise InputError(f"{name} must be a tuple of {dims} sizes, e.g. {example}, got {shape!r}") from None
    out = []
    for s in items:
        whole = isinstance(s, numbers.Integral) and not isinstance(s, bool)
        if not whole and isinstance(s, numbers.Real) and not isinstance(s, bool):
            whole = math.isfinite(float(s)) and float(s).is_integer()
        if not whole:
            raise InputError(f"{name} must hold whole numbers of pixels, e.g. {example}, got {shape!r}")
        out.append(int(s))
    if len(out) not in ndims or min(out) < min_size:
        raise InputError(f"{name} must have {dims} sizes, each at least {min_size}, got {tuple(out)!r}")
    return tuple(out)


def check_seed(seed):
    """A seed for :func:`numpy.random.default_rng`: a non-negative integer (or None for fresh entropy)."""
    import numpy as np

    if seed is None or isinstance(
        seed, np.random.Generator | np.random.SeedSequence | np.random.BitGenerator
    ):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, e.g. seed=0, got {seed!r}")
    return int(seed)

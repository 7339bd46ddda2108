"""Checks of the GUI's own request fields (paths, names, switches, the numbers no method config holds).

A setting that a method's config holds is checked by that config instead (:func:`matsight.tem.make_config`,
:func:`matsight.restore.config.make_config`, ...). Each check turns a JSON value (or the text a page sends)
into a Python value or raises :class:`~matsight.InputError` with one line naming the field.
"""

import re

import numpy as np

from ..._duration import parse_duration
from ..._errors import InputError
from .. import guard
from ..paths import _short

INT_MAX = 2**63 - 1  # what numpy, torch and the file formats can hold
DEVICES = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)")
DEVICE = "auto"  # the CLI's --device default, for every command


def _range_text(lo, hi, gt=False):
    if lo is not None and hi is not None:
        return f" between {lo:g} and {hi:g}"
    if lo is not None:
        return f" {'>' if gt else '≥'} {lo:g}"
    if hi is not None:
        return f" ≤ {hi:g}"
    return ""


def number(v, name, *, default=None, lo=None, hi=None, gt=False):
    """A finite number in [lo, hi] (``gt``: strictly above ``lo``) from a JSON value or text."""
    if v is None or v == "":
        return default
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise InputError(f"{name} must be a number, got {_short(v)}")
    try:
        x = float(v)
    except ValueError:
        raise InputError(f"{name} must be a number, got {_short(v)}") from None
    bad_lo = lo is not None and (x <= lo if gt else x < lo)
    if not np.isfinite(x) or bad_lo or (hi is not None and x > hi):
        raise InputError(f"{name} must be a finite number{_range_text(lo, hi, gt)}, got {_short(v)}")
    return x


def whole(v, name, *, default=None, lo=None, hi=INT_MAX):
    """A whole number in [lo, hi] from a JSON value or text (``1.0`` is fine; ``1.5``, ``true`` are not)."""
    if v is None or v == "":
        return default
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise InputError(f"{name} must be a whole number, got {_short(v)}")
    try:
        x = int(v) if not isinstance(v, float) else None
    except ValueError:
        x = None
    if x is None:  # a float, or text like "1e3" / "2.0"
        try:
            f = float(v)
        except ValueError:
            raise InputError(f"{name} must be a whole number, got {_short(v)}") from None
        if not np.isfinite(f) or f != int(f):
            raise InputError(f"{name} must be a whole number, got {_short(v)}")
        x = int(f)
    if x > INT_MAX:
        raise InputError(f"{name} is too large, got {_short(v)}; give a smaller number")
    shown_hi = None if hi == INT_MAX else hi
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise InputError(f"{name} must be a whole number{_range_text(lo, shown_hi)}, got {_short(v)}")
    return x


def text(v, name, *, default=None):
    """Text (stripped) or ``default`` when absent/empty; anything else is refused."""
    if v is None:
        return default
    if not isinstance(v, str):
        raise InputError(f"{name} must be text, got {_short(v)}")
    return v.strip() or default


def switch(v, name, *, default=False):
    """A checkbox value: JSON true/false (or "true"/"false", 1/0); anything else is refused."""
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return v.strip().lower() in ("true", "1", "yes", "on")
    raise InputError(f"{name} must be true or false, got {_short(v)}")


def names(v, name):
    """A list of texts (one text is a list of one); anything else is refused."""
    if v in (None, ""):
        return []
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InputError(f"{name} must be a list of names, got {_short(v)}")
    return v


def device(v):
    """A torch device name; the CLI's default (``auto``) when absent."""
    dev = text(v, "device", default=DEVICE)
    if not DEVICES.fullmatch(dev.lower()):
        raise InputError(f"unknown device {_short(dev)}; use auto, cpu, cuda, cuda:N or mps")
    return dev


def pixel_size(v):
    """One pixel size in nm, or ``(py, px)`` from ``"PY,PX"``; None when absent (the file's)."""
    if v in (None, ""):
        return None
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise InputError(f"pixel size must be one number in nm or 'PY,PX', got {_short(v)}")
    vals = [p for p in str(v).replace(";", ",").split(",") if p.strip()]
    if len(vals) not in (1, 2):
        raise InputError(f"pixel size must be one number in nm or 'PY,PX', got {_short(v)}")
    out = [number(p, "pixel size (nm)", lo=0, gt=True) for p in vals]
    return out[0] if len(out) == 1 else tuple(out)


def overrides(v):
    """The advanced settings: a JSON object (or its text); None when absent. The config checks its names."""
    if v in (None, "", {}):
        return None
    if isinstance(v, dict):
        return v
    example = 'advanced settings must be a JSON object like {"output_size": 32}'
    if not isinstance(v, str):
        raise InputError(f"{example}, got {_short(v)}")
    try:
        val = guard.loads(v, "advanced settings")
    except InputError:
        raise
    except ValueError as exc:
        raise InputError(f"{example}: {exc}") from None
    if not isinstance(val, dict):
        raise InputError(example)
    return val


def steps_budget(b):
    """The page's optimiser steps (``iterations``) and time budget; either may be absent.

    The steps are read as a whole number here (JSON to int, no larger than the file formats hold); their range
    is the method config's (``training.steps``). A bad duration is refused before a process starts.
    """
    steps = whole(b.get("iterations"), "iterations")
    budget = text(b.get("budget"), "time budget")
    if budget is not None:
        parse_duration(budget)
    return steps, budget

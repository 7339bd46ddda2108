"""Length units of microscope calibrations → nanometres.

Microscope software writes units in many spellings ("Å", "A", "angstrom", "µm" with a micro sign or a Greek
mu, "um", "micron", "1/nm", "nm^-1", ...). :func:`parse_length_unit` understands them all; everything else in
:mod:`matsight.io` goes through it so that a calibration is either converted correctly or reported, never
guessed.
"""

import math
import re
import unicodedata

import numpy as np

from .._errors import InputError

__all__ = [
    "NM_PER_UNIT",
    "UNCALIBRATED",
    "canonical_unit",
    "is_reciprocal",
    "is_uncalibrated",
    "length_calibration",
    "parse_length_unit",
    "to_inv_nm",
    "to_nm",
    "to_seconds",
]

#: nanometres per unit, keyed by the canonical spelling
NM_PER_UNIT = {"pm": 1e-3, "Å": 0.1, "nm": 1.0, "µm": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9}

_ALIASES = {
    "pm": "pm",
    "picometer": "pm",
    "picometre": "pm",
    "å": "Å",  # U+00C5 (lower-cased)
    "\u212b": "Å",  # ANGSTROM SIGN
    "\u212b".lower(): "Å",
    "a": "Å",  # DigitalMicrograph writes plain "A"
    "ang": "Å",
    "angstrom": "Å",
    "angstroms": "Å",
    "ångström": "Å",
    "ångströms": "Å",
    "angström": "Å",
    "angstroem": "Å",
    "nm": "nm",
    "nanometer": "nm",
    "nanometre": "nm",
    "nanometers": "nm",
    "nanometres": "nm",
    "µm": "µm",  # MICRO SIGN
    "μm": "µm",  # GREEK SMALL LETTER MU
    "um": "µm",
    "micron": "µm",
    "microns": "µm",
    "micrometer": "µm",
    "micrometre": "µm",
    "micrometers": "µm",
    "micrometres": "µm",
    "mm": "mm",
    "millimeter": "mm",
    "millimetre": "mm",
    "cm": "cm",
    "centimeter": "cm",
    "centimetre": "cm",
    "m": "m",
    "meter": "m",
    "metre": "m",
    "meters": "m",
    "metres": "m",
}

#: unit strings that mean "no calibration" (compared after :func:`_clean` and lower-casing)
UNCALIBRATED = frozenset(
    {"", "<undefined>", "undefined", "none", "null", "unknown", "px", "pix", "pixel", "pixels", "a.u.", "au"}
)

# ImageJ writes non-ASCII units as Java escapes into its description: "\u00B5m" for µm, "\u00C5" for Å
_ESCAPES = re.compile(r"\\u([0-9a-f]{4})|\\x([0-9a-f]{2})", re.IGNORECASE)

_RECIPROCAL = re.compile(r"^(?:1/(?P<a>.+)|(?P<b>.+?)(?:\^-1|\^\(-1\)|⁻¹|\*\*-1|-1))$")

_SECONDS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "µs": 1e-6,
    "us": 1e-6,
    "μs": 1e-6,
}
_SECONDS |= {"ns": 1e-9, "min": 60.0, "h": 3600.0}


def _clean(unit):
    """One spelling per unit: Java escapes decoded, NFKC (Å sign → Å, Greek mu → micro sign), no blanks.

    ncempy/Velox's "n_m" loses its underscore, "[nm]" its brackets; bytes are decoded.
    """
    if isinstance(unit, bytes):
        unit = unit.decode("utf-8", "replace")
    u = _ESCAPES.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), str(unit))
    u = "".join(u.split()).replace("⁻¹", "^-1").replace("\u2212", "-")
    u = unicodedata.normalize("NFKC", u).replace("\u03bc", "µ")
    return u.replace("_", "").strip("[]")


def canonical_unit(unit):
    """The canonical spelling of a length unit ("nm", "Å", "1/nm", ...), or "" when not a length unit."""
    p = parse_length_unit(unit)
    if p is None:
        return ""
    return f"1/{p[0]}" if p[2] else p[0]


def is_uncalibrated(unit):
    """True for units that say "no calibration": None, "", "<undefined>", "px", "pixel", ..."""
    return unit is None or _clean(unit).lower() in UNCALIBRATED


def length_calibration(scale, unit):
    """A file's axis calibration → ``(per_pixel, reciprocal)``, or ``None`` when it is no calibration.

    ``per_pixel`` is nm per pixel for a length unit, nm⁻¹ per pixel for a reciprocal one (``reciprocal``
    True). ``None`` for an uncalibrated unit ("", "px", "<undefined>", ...), a unit that is no length, and a
    scale that is not a finite number > 0 (e.g. the −1 of uncalibrated mrc files).
    """
    if is_uncalibrated(unit) or not valid_scale(scale):
        return None
    p = parse_length_unit(unit)
    if p is None:
        return None
    s = float(scale)
    return (s / p[1], True) if p[2] else (s * p[1], False)


def parse_length_unit(unit):
    """Parse a length unit, plain or reciprocal.

    Parameters
    ----------
    unit : str or None
        A unit string as written by microscope software.

    Returns
    -------
    (str, float, bool) or None
        ``(canonical, nm_per_unit, reciprocal)``, e.g. ``("Å", 0.1, False)`` for "A" and
        ``("nm", 1.0, True)`` for "1/nm" (then ``nm_per_unit`` is that of the length inside the reciprocal);
        ``None`` when the string is empty, "<undefined>", a pixel unit or anything else that is not a length.
    """
    if unit is None:
        return None
    u = _clean(unit)
    if not u:
        return None
    m = _RECIPROCAL.match(u)
    reciprocal = False
    if m and (m.group("a") or m.group("b")):
        inner = (m.group("a") or m.group("b")).strip("()")
        if _ALIASES.get(inner) or _ALIASES.get(inner.lower()):
            u, reciprocal = inner, True
    key = _ALIASES.get(u) or _ALIASES.get(u.lower())
    if key is None:
        return None
    return key, NM_PER_UNIT[key], reciprocal


def is_reciprocal(unit):
    """True if ``unit`` is a reciprocal length such as "1/nm", "1/Å" or "nm^-1"."""
    p = parse_length_unit(unit)
    return bool(p and p[2])


def _scale(value, factor):
    if np.ndim(value) == 0:
        return float(value) * factor
    return np.asarray(value, dtype=float) * factor


def to_nm(value, unit):
    """Convert a length (scalar or array) from ``unit`` to nanometres.

    Parameters
    ----------
    value : float or array_like
    unit : str
        pm, Å ("A", "angstrom"), nm, µm ("um", "micron"), mm, cm or m, in any of the common spellings.

    Returns
    -------
    float or ndarray

    Raises
    ------
    InputError
        For reciprocal units (use :func:`to_inv_nm`) and for anything that is not a length unit.

    Examples
    --------
    >>> to_nm(2.0, "A")
    0.2
    >>> to_nm(0.5, "µm")
    500.0
    """
    p = parse_length_unit(unit)
    if p is None:
        raise InputError(f"unknown length unit {unit!r}; use pm, Å, nm, µm, mm or m")
    if p[2]:
        raise InputError(
            f"unit {unit!r} is a reciprocal length (diffraction/FFT space), not a real-space length"
        )
    return _scale(value, p[1])


def to_inv_nm(value, unit):
    """Convert a reciprocal length (e.g. from "1/Å") to nm⁻¹."""
    p = parse_length_unit(unit)
    if p is None or not p[2]:
        raise InputError(f"unit {unit!r} is not a reciprocal length such as 1/nm or 1/Å")
    return _scale(value, 1.0 / p[1])


def to_seconds(value, unit):
    """Convert a time to seconds; ``None`` if ``unit`` is not a time unit."""
    if unit is None:
        return None
    f = _SECONDS.get(_clean(unit)) or _SECONDS.get(_clean(unit).lower())
    if f is None:
        return None
    return _scale(value, f)


def valid_scale(scale):
    """True for a usable pixel size: a finite number > 0."""
    try:
        s = float(scale)
    except (TypeError, ValueError):
        return False
    return math.isfinite(s) and s > 0

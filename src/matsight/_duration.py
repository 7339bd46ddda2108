"""Time budgets written as text, one reading for every command (``--budget 20m``)."""

from __future__ import annotations

import re

from ._errors import InputError

_UNIT_S = {"h": 3600.0, "m": 60.0, "min": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(h|min|m|s)")


def parse_duration(value):
    """Seconds in a time budget: ``"20m"``, ``"1h30m"``, ``"1h 30min"``, ``"90s"``, ``"45"`` or a number.

    A bare number is seconds. Every other part needs its unit (``"1h30"`` is refused rather than guessed
    as 1 h 30 s or 1 h 30 min). ``None`` stays ``None`` (no budget).

    Raises
    ------
    InputError
        Unreadable text, or a budget that is not positive.
    """
    if value is None:
        return None
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _PART.findall(text)
            if not parts or "".join(a + u for a, u in parts) != text:
                raise InputError(
                    f"cannot read the duration {value!r}; write it like 20m, 1h30m, 90s or 45 (seconds)"
                )
            seconds = sum(float(a) * _UNIT_S[u] for a, u in parts)
    if not seconds > 0:
        raise InputError(f"the time budget must be positive, got {value!r}")
    return seconds


def format_duration(seconds):
    """Seconds as short text in units :func:`parse_duration` reads: ``"6m21s"``, ``"1h02m"``, ``"45s"``.

    Examples
    --------
    >>> format_duration(381)
    '6m21s'
    >>> format_duration(3725)
    '1h02m'
    """
    s = max(0, int(round(seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"

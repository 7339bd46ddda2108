"""Calibration files: a pixel size measured once (e.g. on a reference crystal), used for many files.

A calibration file is a small JSON document::

    {"kind": "matsight.calibration", "pixel_size_nm": [0.01225, 0.01226], "shear": 0.0,
     "source": "Si [110] reference, 2024-05-02", "note": "Titan, 620 kx, Ceta"}

``pixel_size_nm`` is ``[y, x]`` in nm (one number means square pixels); ``shear`` is recorded but not applied.
``tem analyze``/``tem series`` and :func:`matsight.io.read_microscope` take it with ``--calibration cal.json``
(``calibration=`` in Python); a later ``tem calibrate`` command writes it (:func:`write_calibration`).
"""

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from .._errors import InputError

__all__ = ["KIND", "Calibration", "read_calibration", "write_calibration"]

KIND = "matsight.calibration"


class Calibration(BaseModel):
    """A pixel size (nm, per axis y, x) and where it was measured."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["matsight.calibration"] = KIND
    pixel_size_nm: tuple[float, float]
    shear: float = 0.0
    source: str = ""
    note: str = ""

    @field_validator("pixel_size_nm", mode="before")
    @classmethod
    def _one_or_two(cls, v):
        if isinstance(v, int | float) and not isinstance(v, bool):
            return (v, v)
        if isinstance(v, list | tuple) and len(v) == 1:
            return (v[0], v[0])
        return v

    @field_validator("pixel_size_nm")
    @classmethod
    def _positive(cls, v):
        if not all(math.isfinite(p) and p > 0 for p in v):
            raise ValueError(f"pixel_size_nm must be positive numbers in nm [y, x], got {list(v)}")
        return v

    @field_validator("shear")
    @classmethod
    def _finite(cls, v):
        if not math.isfinite(v):
            raise ValueError("shear must be a finite number")
        return v


def read_calibration(path):
    """Read and validate a calibration file → :class:`Calibration`.

    Raises
    ------
    InputError
        Missing or unreadable file, not JSON, not a ``matsight.calibration``, or invalid values; one line
        naming the problem and the fix.
    """
    if isinstance(path, Calibration):
        return path
    path = Path(path)
    if not path.is_file():
        raise InputError(f"calibration file {path} does not exist; give the path of a cal.json file")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"calibration file {path} is not readable JSON ({e}); fix or rewrite it") from None
    if not isinstance(obj, dict) or obj.get("kind") != KIND:
        got = obj.get("kind") if isinstance(obj, dict) else type(obj).__name__
        raise InputError(
            f"calibration file {path} is not a calibration (kind {got!r}); it needs "
            f'"kind": "{KIND}" and "pixel_size_nm": [y, x] in nm'
        )
    try:
        return Calibration.model_validate(obj)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "file"
        raise InputError(
            f"calibration file {path}: {where}: {err.get('msg')}; "
            'expected {"kind": "matsight.calibration", "pixel_size_nm": [y, x], "shear": 0.0, ...}'
        ) from None


def write_calibration(path, calibration):
    """Write a :class:`Calibration` (or a dict of its fields) as JSON, atomically; returns the path."""
    from .._atomic import write_json

    cal = calibration if isinstance(calibration, Calibration) else Calibration.model_validate(calibration)
    data = cal.model_dump()
    data["pixel_size_nm"] = list(data["pixel_size_nm"])
    write_json(Path(path), data)
    return Path(path)

"""HRTEM phase identification from FFT spots, real-space phase maps and beam-damage series.

Pipeline (each step is a small module usable on its own):

- :mod:`~matsight.tem.fft` — windowed FFT of raw counts, ``g = k / (N · pixel)``, ``d = 1/|g|``,
  exact half-spectrum (Friedel) tools.
- :mod:`~matsight.tem.spots` — classical spot detector; :mod:`~matsight.tem.detector` — the learned one (U-Net
  on the half spectrum, weights shipped), trained by :mod:`~matsight.tem.train_detector`
  on :mod:`~matsight.tem.lattice` images (synthetic HRTEM-like frames whose spots are known).
- :mod:`~matsight.tem.crystals` — phase database from structures (gemmi): reflections, d, |F|².
- :mod:`~matsight.tem.match` — d-spacing + inter-plane-angle (zone axis) matching; unmatched → ``unknown``.
- :mod:`~matsight.tem.phasemap` — masked inverse FFT amplitude → Otsu + opening + watershed maps.
- :mod:`~matsight.tem.series` — intensity per phase per frame for movies and folders.
- :mod:`~matsight.tem.pipeline` — :func:`analyze` one frame end to end.

``import matsight.tem`` is light: submodules load on first use, and torch only with the U-Net detector.
"""

import importlib

_LAZY = {
    "analyze": "pipeline",
    "analyze_file": "pipeline",
    "TemResult": "pipeline",
    "load_phase": "crystals",
    "load_phases": "crystals",
    "phase_from_dict": "crystals",
    "select_phases": "crystals",
    "Phase": "crystals",
    "detect_spots": "spots",
    "detect_spots_unet": "detector",
    "match_spots": "match",
    "phase_maps": "phasemap",
    "analyze_series": "series",
}
_SUBMODULES = (
    "fft",
    "spots",
    "crystals",
    "match",
    "phasemap",
    "pipeline",
    "series",
    "report",
    "detector",
    "train_detector",
    "lattice",
)

__all__ = sorted(_LAZY) + list(_SUBMODULES)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__

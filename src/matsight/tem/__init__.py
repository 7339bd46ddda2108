"""tem — HRTEM phase identification from FFT spots (``papers/hrtem_fft_phase_segmentation.txt``).

The face every matsight method has:

- :func:`predict` — a frame (2D) → :class:`~matsight.tem.predict.TemResult` (spots, d, (hkl), phases, phase
  maps), a movie → :class:`~matsight.tem.series.SeriesResult` (intensity per phase per frame);
  :func:`analyze` and :func:`analyze_series` are the same on one frame and on a movie;
- :class:`TemConfig` — every setting (detection, matching, mapping, series, training), validated once;
- :func:`train` — the learned spot detector on synthetic lattice FFTs; :func:`load` loads its weights;
- :func:`evaluate` — both spot detectors on held-out synthetic FFTs.

Parts, each usable on its own: :mod:`~matsight.tem.fft` (windowed FFT, ``g = k / (N · pixel)``,
``d = 1/|g|``, the exact half spectrum), :mod:`~matsight.tem.spots` (classical spot detector),
:mod:`~matsight.tem.detector` (the U-Net one; its network in :mod:`~matsight.tem.networks`, its loss in
:mod:`~matsight.tem.losses`), :mod:`~matsight.tem.crystals` (phase database from structures),
:mod:`~matsight.tem.match` (d-spacing + zone-axis matching), :mod:`~matsight.tem.phasemap` (masked inverse
FFT maps), :mod:`~matsight.tem.series` (movies), :mod:`~matsight.tem.frames` (reading microscope files),
:mod:`~matsight.tem.lattice` (synthetic HRTEM-like frames whose spots are known), :mod:`~matsight.tem.report`.
"""

from .config import TemConfig, make_config
from .crystals import Phase, load_phase, load_phases, phase_from_dict, select_phases
from .detector import detect_spots_unet, load_detector
from .detector import load_detector as load
from .evaluate import evaluate
from .match import match_spots
from .phasemap import phase_maps
from .predict import TemResult, analyze, analyze_file, analyze_series, predict
from .spots import detect_spots
from .train import SyntheticFrames, train

__all__ = [
    "Phase",
    "SyntheticFrames",
    "TemConfig",
    "TemResult",
    "analyze",
    "analyze_file",
    "analyze_series",
    "detect_spots",
    "detect_spots_unet",
    "evaluate",
    "load",
    "load_detector",
    "load_phase",
    "load_phases",
    "make_config",
    "match_spots",
    "phase_from_dict",
    "phase_maps",
    "predict",
    "select_phases",
    "train",
]

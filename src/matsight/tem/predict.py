"""Analyse a frame or a movie: FFT → spots → matching → real-space phase maps (per frame, per phase).

:func:`analyze` is the method on one frame and :func:`analyze_series` on a movie (intensity per phase per
frame); :func:`predict` is the uniform entry point every matsight method has (a 2D frame or a movie, one
:class:`~matsight.tem.config.TemConfig`). :func:`analyze_file` and :func:`analyze_series_file` read the frames
first (:mod:`matsight.tem.frames`).

>>> from matsight.tem import analyze                                        # doctest: +SKIP
>>> res = analyze(frame, pixel_size_nm=0.02, phases=["LiF", "Li"])          # doctest: +SKIP
>>> res.table()[0]["phase"], res.maps.area_fraction                         # doctest: +SKIP
"""

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from .._errors import InputError
from . import fft as _fft
from .config import make_config
from .crystals import load_phases
from .detector import detect_spots_unet
from .frames import read_frame, read_series
from .match import UNKNOWN, match_spots
from .phasemap import phase_maps
from .series import collect, run_frames, time_axis
from .spots import detect_spots

log = logging.getLogger(__name__)

__all__ = [
    "TemResult",
    "analyze",
    "analyze_file",
    "analyze_series",
    "analyze_series_file",
    "family_label",
    "predict",
]


def family_label(phase, hkl, fraction=1):
    """``"{200}"`` (``"1/3{422}"`` for ``fraction`` 3): the family of ``hkl`` by its representative member."""
    rep = max(tuple(int(i) for i in h) for h in phase.equivalents(hkl))
    sep = " " if max(abs(i) for i in rep) > 9 else ""
    pre = f"1/{fraction}" if fraction != 1 else ""
    return pre + "{" + sep.join(map(str, rep)) + "}"


@dataclass
class TemResult:
    """Everything :func:`analyze` found in one frame."""

    shape: tuple
    pixel_size_nm: tuple
    spots: object  # SpotTable
    match: object  # MatchResult
    maps: object | None  # PhaseMaps
    phases: list  # Phase objects searched
    fft_display: np.ndarray = field(repr=False)  # the paper's denoised log magnitude, [0, 1]
    timings: dict = field(default_factory=dict)
    detector: str = "classical"
    #: where ``pixel_size_nm`` came from: "file: <tag path>", "--pixel-size", "calibration file <path>"
    #: ("" when the caller passed the pixel size directly to :func:`analyze`)
    calibration_source: str = ""

    def calibration(self):
        """The pixel size used per axis and its source: ``{"pixel_size_nm": {"y", "x"}, "source"}``."""
        py, px = (float(p) for p in self.pixel_size_nm)
        return {"pixel_size_nm": {"y": py, "x": px}, "source": self.calibration_source or "pixel_size_nm="}

    def table(self):
        """One record per spot: position, g, d, (hkl), phase, intensity, size, zone."""
        out = []
        for rec, m in zip(self.spots.to_records(), self.match.matches, strict=True):
            rec.update(
                phase=m.phase,
                hkl="" if m.hkl is None else m.label.split(" ", 1)[1],
                d_ref_angstrom=m.d_ref,
                d_error_percent=100 * m.d_error,
                zone="" if m.zone is None else "[" + " ".join(map(str, m.zone)) + "]",
                grain=m.grain,
                ambiguous=m.ambiguous,
                alternatives="; ".join(m.alternatives),
            )
            out.append(rec)
        return out

    @property
    def phases_found(self):
        """Names of the phases with at least one matched spot."""
        return self.match.phases_found

    def phase_intensity(self):
        """Sum of the spots' integrated FFT amplitude per phase (``unknown`` included)."""
        out = {p.name: 0.0 for p in self.phases}
        out[UNKNOWN] = 0.0
        for k, m in enumerate(self.match.matches):
            out[m.phase] = out.get(m.phase, 0.0) + float(self.spots.intensity[k])
        return out

    def family_intensity(self):
        """Sum of the spots' integrated FFT amplitude per (phase, reflection family), as in the paper's plots.

        Returns
        -------
        dict
            ``{(phase, family): (intensity, d_ref)}`` with ``family`` like ``"{200}"`` or ``"1/3{422}"`` (the
            family's representative as in :meth:`~matsight.tem.crystals.Phase.reflections`); unknown spots
            are left out.
        """
        by_name = {p.name: p for p in self.phases}
        out = {}
        for k, m in enumerate(self.match.matches):
            if m.phase == UNKNOWN or m.hkl is None or m.phase not in by_name:
                continue
            key = (m.phase, family_label(by_name[m.phase], m.hkl, m.fraction))
            inten, _ = out.get(key, (0.0, m.d_ref))
            out[key] = (inten + float(self.spots.intensity[k]), float(m.d_ref))
        return out

    def summary(self):
        """Short dict for reports and the CLI."""
        s = {
            "frame": f"{self.shape[0]}×{self.shape[1]} px",
            "pixel size (nm)": ", ".join(f"{p:.5g}" for p in self.pixel_size_nm),
            "pixel size source": self.calibration_source or "pixel_size_nm=",
            "detector": self.detector,
            "spots (Friedel pairs)": len(self.spots),
            "unknown spots": sum(m.phase == UNKNOWN for m in self.match.matches),
            "phases found": ", ".join(self.phases_found) or "none",
            "identification": self.match.verdict(self.pixel_size_nm),
            "figure of merit": "; ".join(
                f"{r['phase']} {r['merit']:.2f}" + (" (named)" if r["named"] else "")
                for r in sorted(self.match.merit_table(), key=lambda r: -r["merit"])
            ),
        }
        if self.maps is not None:
            for name, f in self.maps.area_fraction.items():
                s[f"area fraction {name}"] = round(f, 4)
        s["seconds"] = round(sum(self.timings.values()), 3)
        return s


def _detect(spec, ps, det):
    """Spots of the centred spectrum ``spec`` with the detector of ``det`` (a DetectionConfig)."""
    if det.detector == "classical":
        return detect_spots(
            None, ps, spectrum=spec, threshold=det.threshold, d_min=det.d_min, d_max=det.d_max
        )
    return detect_spots_unet(None, ps, spectrum=spec, d_min=det.d_min, d_max=det.d_max, weights=det.weights)


def _match(spots, plist, cfg):
    mat, det = cfg.matching, cfg.detection
    return match_spots(
        spots,
        plist,
        tolerance=mat.tolerance,
        angle_tolerance=mat.angle_tolerance,
        min_intensity=mat.min_intensity,
        scale_range=mat.scale_range,
        min_merit=mat.min_merit,
        max_anisotropy=mat.max_anisotropy,
        d_min=det.d_min,
        d_max=det.d_max,
    )


def _maps(img, spots, match, mp):
    return phase_maps(
        img,
        spots,
        match,
        min_radius=mp.min_radius,
        opening_size=mp.opening_size,
        opening_iterations=mp.opening_iterations,
        work_max=mp.work_max,
    )


def analyze(image, pixel_size_nm, phases=None, *, config=None, **settings):
    """Identify phases in one HRTEM frame.

    Parameters
    ----------
    image : array_like, 2D
        Raw counts (any size, any dtype; never rescaled to 8 bit).
    pixel_size_nm : float or (float, float)
        Pixel size in nm, per axis (y, x) if anisotropic.
    phases : list of str / path / dict / Phase, optional
        Phases to look for (wins over ``config.matching.phases``); default: the shipped Li, LiF, Li2O, Li2CO3.
    config : TemConfig or dict, optional
        Settings (:mod:`matsight.tem.config`); default :class:`~matsight.tem.config.TemConfig`.
    **settings
        Flat settings over ``config``: ``tolerance`` (relative d, 0.02 = 2 %), ``angle_tolerance`` (degrees),
        ``min_intensity`` (relative |F|²), ``detector`` (``"classical"`` or ``"unet"``), ``weights``,
        ``threshold`` (classical seed level), ``d_min``/``d_max`` (Å), ``window``
        (``"hann" | "tukey" | "periodic" | "none"``), ``maps`` (also make real-space phase maps), ...

    Returns
    -------
    TemResult
    """
    t0 = time.perf_counter()
    cfg = make_config(config, **settings)
    img = _fft.check_frame(image)
    ps = _fft.check_pixel_size(pixel_size_nm)
    plist = load_phases(phases if phases is not None else cfg.matching.phases)
    timings = {}
    spec = _fft.spectrum(img, window_kind=cfg.detection.window)
    timings["fft"] = time.perf_counter() - t0
    t = time.perf_counter()
    spots = _detect(spec, ps, cfg.detection)
    timings["spots"] = time.perf_counter() - t
    t = time.perf_counter()
    match = _match(spots, plist, cfg)
    timings["match"] = time.perf_counter() - t
    pm = None
    if cfg.mapping.maps:
        t = time.perf_counter()
        pm = _maps(img, spots, match, cfg.mapping)
        timings["maps"] = time.perf_counter() - t
    display = _fft.denoise(_fft.log_magnitude(spec)).astype(np.float32)
    log.info("tem.analyze: %d spots, phases %s", len(spots), match.phases_found)
    return TemResult(img.shape, ps, spots, match, pm, plist, display, timings, cfg.detection.detector)


def analyze_file(
    path, *, pixel_size=None, frame=None, phases=None, config=None, calibration=None,
    pixel_size_source="pixel_size=", **settings,
):  # fmt: skip
    """:func:`~matsight.tem.frames.read_frame` then :func:`analyze`; returns ``(TemResult, image)``.

    The pixel size is the file's, ``pixel_size`` (nm, or ``(py, px)``) or a calibration file's
    (``calibration``); ``TemResult.calibration_source`` says which. The settings are validated before the
    file is read.
    """
    cfg = make_config(config, **settings)
    data, ps, src = read_frame(
        path, pixel_size=pixel_size, frame=frame, calibration=calibration,
        pixel_size_source=pixel_size_source, return_source=True,
    )  # fmt: skip
    res = analyze(data, ps, phases, config=cfg)
    res.calibration_source = src
    return res, data


def _one_frame(frame, pixel_size_nm, phases, cfg):
    """One frame of a series: ``(phase intensity, spot counts, seconds, family intensity)``."""
    t = time.perf_counter()
    res = analyze(frame, pixel_size_nm, phases, config=cfg)
    counts = {}
    for m in res.match.matches:
        counts[m.phase] = counts.get(m.phase, 0) + 1
    return res.phase_intensity(), counts, time.perf_counter() - t, res.family_intensity()


def analyze_series(
    frames, pixel_size_nm, phases=None, *, config=None, times=None, labels=None, callback=None, **settings
):
    """Intensity per phase (and per reflection family) per frame of a movie; no phase maps.

    Parameters
    ----------
    frames : ndarray (n, y, x) or sequence of 2D arrays
    pixel_size_nm : float or (float, float)
    phases : list, optional
        Phase names / files / :class:`~matsight.tem.crystals.Phase`; default: the shipped ones.
    config : TemConfig or dict, optional
        ``config.series`` holds ``frame_time`` (seconds per frame; wins over ``times``), ``scheduler`` (None
        runs serially here; ``sync/threads/processes`` use dask's local schedulers; ``"distributed"`` starts a
        local ``dask.distributed`` cluster of ``workers`` processes; ``"tcp://host:8786"`` sends the frames to
        an existing cluster, i.e. other machines; ``scale`` extra) and ``workers``.
    times : array_like, optional
        Time of every frame in seconds (e.g. the file's, from :func:`~matsight.tem.frames.read_series`), used
        when ``frame_time`` is not given. Without either, time = frame index.
    labels : list of str, optional
        Frame labels (default: index).
    callback : :data:`matsight.progress.Callback`, optional
        Told of every finished frame (``step`` frames of ``total``).
    **settings
        Flat settings over ``config`` (see :func:`analyze`; ``frame_time``, ``scheduler``, ``workers``).

    Returns
    -------
    SeriesResult
    """
    # refuse bad settings once, before the first frame (not once per frame on a worker)
    cfg = make_config(config, **settings)
    cfg = cfg.model_copy(update={"mapping": cfg.mapping.model_copy(update={"maps": False})})
    plist = load_phases(phases if phases is not None else cfg.matching.phases)  # Phase objects pickle
    n = len(frames)
    if n == 0:
        raise InputError("no frames to analyse; check the file or folder")
    time_s, source = time_axis(
        n, cfg.series.frame_time, times
    )  # refuse bad frame times before the first frame
    t0 = time.perf_counter()
    outs = run_frames(
        _one_frame,
        frames,
        (pixel_size_nm, plist, cfg),
        scheduler=cfg.series.scheduler,
        workers=cfg.series.workers,
        callback=callback,
    )
    names = [p.name for p in plist] + [UNKNOWN]
    return collect(outs, names, labels=labels, time_s=time_s, source=source, seconds=time.perf_counter() - t0)


def analyze_series_file(
    source, *, pixel_size=None, phases=None, config=None, callback=None, calibration=None,
    pixel_size_source="pixel_size=", **settings,
):  # fmt: skip
    """:func:`~matsight.tem.frames.read_series` (movie, stack or folder) then :func:`analyze_series`.

    The settings are validated before anything is read; the file's frame times are used unless
    ``frame_time`` is given. ``pixel_size``/``calibration`` as in :func:`analyze_file`; the result's
    ``pixel_size_nm`` and ``calibration_source`` record the pixel size used and where it came from.
    """
    cfg = make_config(config, **settings)
    frames, ps, labels, times, src = read_series(
        source, pixel_size=pixel_size, return_times=True, calibration=calibration,
        pixel_size_source=pixel_size_source, return_source=True,
    )  # fmt: skip
    res = analyze_series(frames, ps, phases, config=cfg, times=times, labels=labels, callback=callback)
    res.pixel_size_nm, res.calibration_source = tuple(float(p) for p in ps), src
    return res


def predict(data, pixel_size_nm, phases=None, *, config=None, callback=None, **settings):
    """The uniform entry point: a frame (2D) → :class:`TemResult`; a movie → :class:`SeriesResult`.

    ``data`` is a 2D array (one frame: :func:`analyze`) or a 3D array / sequence of 2D frames
    (:func:`analyze_series`, which reports every frame to ``callback``). Other arguments as those functions.

    Examples
    --------
    >>> from matsight.tem import lattice, predict
    >>> frame = lattice.two_phase_image((256, 256), 0.02, seed=0)  # a LiF grain beside a Li grain
    >>> predict(frame.image, 0.02, maps=False).phases_found
    ['Li', 'LiF']
    """
    frame = getattr(data, "ndim", None) == 2 or (not hasattr(data, "ndim") and np.ndim(data[0]) < 2)
    if frame:
        return analyze(data, pixel_size_nm, phases, config=config, **settings)
    return analyze_series(data, pixel_size_nm, phases, config=config, callback=callback, **settings)

"""One call from an HRTEM frame to identified phases: FFT → spots → matching → real-space phase maps.

>>> from matsight.tem import analyze                                        # doctest: +SKIP
>>> res = analyze(frame, pixel_size_nm=0.02, phases=["LiF", "Li"])          # doctest: +SKIP
>>> res.table()[0]["phase"], res.maps.area_fraction                         # doctest: +SKIP
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError
from . import fft as _fft
from .crystals import load_phases
from .match import UNKNOWN, match_spots
from .spots import check_d_range, detect_spots

log = logging.getLogger(__name__)

__all__ = [
    "TemResult",
    "analyze",
    "analyze_file",
    "read_frame",
    "check_settings",
    "frame_suffixes",
    "family_label",
    "DETECTORS",
]

DETECTORS = ("classical", "unet")


def frame_suffixes():
    """File suffixes that hold HRTEM frames: what :func:`matsight.io.read_microscope` reads.

    Built from the reader's own lists, so the tem commands and their messages never disagree with it.
    """
    from ..io.microscope import MICROSCOPE_EXTS
    from ..io.volumes import PLAIN_IMAGE_EXTS, TIF_EXTS

    return (*MICROSCOPE_EXTS, *TIF_EXTS, ".npy", *PLAIN_IMAGE_EXTS)


def check_suffix(path):
    """Refuse a file whose suffix no frame reader handles, listing those that are read."""
    from ..io.volumes import _ext

    path = Path(path)
    if path.is_file() and _ext(path) not in frame_suffixes():
        raise InputError(
            f"{path.name}: unsupported file type {_ext(path) or '(none)'!r}; HRTEM frames are read from "
            + ", ".join(frame_suffixes())
        )


def check_settings(
    *,
    tolerance=0.02,
    angle_tolerance=2.0,
    d_min=1.0,
    d_max=15.0,
    min_intensity=0.01,
    detector="classical",
    weights=None,
):
    """Refuse out-of-range analysis settings before any work (one :class:`InputError` naming the option).

    Parameters are those of :func:`analyze`.
    """
    if detector not in DETECTORS:
        raise InputError(f"unknown detector {detector!r}; use one of {', '.join(DETECTORS)}")
    if weights is not None and detector != "unet":
        raise InputError("--weights needs --detector unet; add it or drop --weights")
    # `not a < x` also refuses NaN
    if not 0 < tolerance < 0.5:
        raise InputError(f"--tolerance {tolerance} must be a relative d error in (0, 0.5), e.g. 0.02 for 2 %")
    if not 0 < angle_tolerance <= 90:
        raise InputError(f"--angle-tolerance must be in (0, 90] degrees, got {angle_tolerance}")
    if not 0 <= min_intensity < 1:
        raise InputError(
            "--min-intensity must be in [0, 1) (|F|² relative to the strongest reflection), "
            f"got {min_intensity}"
        )
    check_d_range(d_min, d_max)


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
            "detector": self.detector,
            "spots (Friedel pairs)": len(self.spots),
            "unknown spots": sum(m.phase == UNKNOWN for m in self.match.matches),
            "phases found": ", ".join(self.phases_found) or "none",
        }
        if self.maps is not None:
            for name, f in self.maps.area_fraction.items():
                s[f"area fraction {name}"] = round(f, 4)
        s["seconds"] = round(sum(self.timings.values()), 3)
        return s


def analyze(
    image,
    pixel_size_nm,
    phases=None,
    *,
    tolerance=0.02,
    angle_tolerance=2.0,
    detector="classical",
    threshold=None,
    d_min=1.0,
    d_max=15.0,
    window="hann",
    maps=True,
    min_intensity=0.01,
    weights=None,
):
    """Identify phases in one HRTEM frame.

    Parameters
    ----------
    image : array_like, 2D
        Raw counts (any size, any dtype; never rescaled to 8 bit).
    pixel_size_nm : float or (float, float)
        Pixel size in nm, per axis (y, x) if anisotropic.
    phases : list of str / path / Phase, optional
        Phases to look for; default: the shipped Li, LiF, Li2O, Li2CO3.
    tolerance : float
        Relative d tolerance for matching (0.02 = 2 %).
    angle_tolerance : float
        Inter-plane angle tolerance (degrees) for zone indexing.
    detector : {"classical", "unet"}
    threshold : float, optional
        Classical detector seed level (noise-normalised); default :func:`matsight.tem.spots.auto_threshold`.
    d_min, d_max : float
        Analysed spacings in Å.
    window : {"hann", "tukey", "periodic", "none"}
    maps : bool
        Also compute real-space phase maps.
    min_intensity : float
        Ignore reference reflections weaker than this (relative kinematic |F|²).
    weights : path, optional
        U-Net weights (default: the shipped ones).

    Returns
    -------
    TemResult
    """
    t0 = time.perf_counter()
    check_settings(
        tolerance=tolerance,
        angle_tolerance=angle_tolerance,
        d_min=d_min,
        d_max=d_max,
        min_intensity=min_intensity,
        detector=detector,
        weights=weights,
    )
    img = _fft.check_frame(image)
    ps = _fft.check_pixel_size(pixel_size_nm)
    plist = load_phases(phases)
    timings = {}
    spec = _fft.spectrum(img, window_kind=window)
    timings["fft"] = time.perf_counter() - t0
    t = time.perf_counter()
    if detector == "classical":
        spots = detect_spots(None, ps, spectrum=spec, threshold=threshold, d_min=d_min, d_max=d_max)
    else:
        from .detector import detect_spots_unet

        spots = detect_spots_unet(None, ps, spectrum=spec, d_min=d_min, d_max=d_max, weights=weights)
    timings["spots"] = time.perf_counter() - t
    t = time.perf_counter()
    match = match_spots(
        spots,
        plist,
        tolerance=tolerance,
        angle_tolerance=angle_tolerance,
        min_intensity=min_intensity,
        d_min=d_min,
        d_max=d_max,
    )
    timings["match"] = time.perf_counter() - t
    pm = None
    if maps:
        from .phasemap import phase_maps

        t = time.perf_counter()
        pm = phase_maps(img, spots, match)
        timings["maps"] = time.perf_counter() - t
    display = _fft.denoise(_fft.log_magnitude(spec)).astype(np.float32)
    log.info("tem.analyze: %d spots, phases %s", len(spots), match.phases_found)
    return TemResult(img.shape, ps, spots, match, pm, plist, display, timings, detector)


def read_frame(path, *, pixel_size=None, frame=None):
    """Read one 2D frame and its pixel size (nm) through :func:`matsight.io.read_microscope`.

    Raises :class:`InputError` for unsupported files, diffraction patterns, 1D signals, missing calibration
    (``pixel_size``), stacks without ``frame`` and a ``frame`` the file does not have.
    """
    from .. import io as _io

    check_suffix(path)
    mi = _io.read_microscope(path, pixel_size=pixel_size)
    data = np.asarray(mi.data)
    name = Path(path).name
    if data.ndim == 1:
        raise InputError(
            f"{path} holds a 1D signal of {data.size} samples, not an image; pass an HRTEM image"
        )
    if data.ndim == 3 and data.shape[-1] in (3, 4) and min(data.shape[:2]) > 4:
        # (y, x, 3|4) from an .npy is a colour image, not thousands of 3-pixel-wide frames
        raise InputError(
            f"{name} has shape {data.shape}, a colour image (channels last); save it as one grey (y, x) "
            "image (e.g. the mean over the last axis), or a stack as (frames, y, x)"
        )
    if data.ndim == 3:
        n = data.shape[0]
        if frame is None:
            if n != 1:
                raise InputError(
                    f"{name} is a stack of {n} frames; pick one with --frame N (0 to {n - 1}) "
                    "or analyse all with `matsight tem series`"
                )
            frame = 0
        if not -n <= frame < n:
            raise InputError(f"--frame {frame} is out of range: {name} has {n} frames (0 to {n - 1})")
        data = data[frame]
    elif frame is not None and frame not in (0, -1):
        raise InputError(
            f"--frame {frame} is out of range: {name} is a single image (one frame); drop --frame"
        )
    ps = tuple(mi.pixel_size_nm)[-2:]
    return data, _fft.check_pixel_size(ps)


def analyze_file(path, *, pixel_size=None, frame=None, **kw):
    """:func:`read_frame` then :func:`analyze`; returns ``(TemResult, image)``."""
    path = Path(path)
    data, ps = read_frame(path, pixel_size=pixel_size, frame=frame)
    return analyze(data, ps, **kw), data

"""Pixel-size calibration from a frame of a known crystal: scale, x/y anisotropy and shear of the scan.

The spots of the frame are indexed against the one known phase (the ratio method of
:func:`~matsight.tem.match.match_spots` finds the crystal even when the pixel size is off by up to ±8 %).
For the crystal with the best figure of merit, every indexed spot gives its reference reciprocal vector in the
zone plane, ``r`` (1/nm, in an orthonormal basis of that plane), and its measured one at the given pixel size,
``m = (g_y, g_x)``. A 2×2 map ``m ≈ M r`` is fitted by least squares and split (polar decomposition) into a
rotation (the crystal's orientation) and a symmetric distortion ``P``: a pixel ``p_y × p_x`` that is really
``P_yy p_y × P_xx p_x`` stretches the measured ``g`` by exactly ``P``. The corrected pixel size is therefore
``(P_yy p_y, P_xx p_x)``; ``P_xy / √(P_xx P_yy)`` is the scan's shear (recorded in the calibration file, not
applied); ``√det P`` is the overall scale.

>>> from matsight.tem import lattice                                     # doctest: +SKIP
>>> fit = calibrate(frame, 0.021, "LiF")                                 # doctest: +SKIP
>>> fit.pixel_size_nm                                                    # doctest: +SKIP
(0.02001, 0.01999)
"""

from dataclasses import dataclass

import numpy as np

from .._errors import InputError
from .config import make_config
from .crystals import load_phases
from .merit import fit_net

__all__ = ["CalibrationFit", "calibrate", "calibrate_file", "fit_distortion"]


@dataclass
class CalibrationFit:
    """A pixel size measured on a known crystal."""

    pixel_size_nm: tuple  # (y, x), corrected
    given_nm: tuple  # (y, x), the pixel size the frame was analysed with
    shear: float
    scale: float  # √det P: overall factor on the given pixel size
    phase: str
    zone: tuple
    spots: int
    merit: float
    residual_percent: float  # rms |m − M r| / |m| of the fit

    def summary(self):
        """The fit as plain numbers (for JSON and the CLI)."""
        return {
            "pixel_size_nm": {"y": self.pixel_size_nm[0], "x": self.pixel_size_nm[1]},
            "given_pixel_size_nm": {"y": self.given_nm[0], "x": self.given_nm[1]},
            "scale": self.scale,
            "anisotropy_percent": 100 * (self.pixel_size_nm[1] / self.pixel_size_nm[0] - 1),
            "shear": self.shear,
            "phase": self.phase,
            "zone": "[" + " ".join(map(str, self.zone)) + "]",
            "spots": self.spots,
            "merit": self.merit,
            "residual_percent": self.residual_percent,
        }

    def to_calibration(self, source="", note=""):
        """The :class:`matsight.io.calibration.Calibration` to write (``tem calibrate``)."""
        from ..io.calibration import Calibration

        return Calibration(
            pixel_size_nm=tuple(float(p) for p in self.pixel_size_nm),
            shear=float(self.shear),
            source=source,
            note=note,
        )


def fit_distortion(phase, hkl, g_measured):
    """Fit ``g_measured ≈ P R r`` for the reflections ``hkl`` of one zone.

    Parameters
    ----------
    phase : Phase
    hkl : (n, 3) ints, n ≥ 2 non-collinear
    g_measured : (n, 2) measured reciprocal vectors ``(g_y, g_x)`` in 1/nm

    Returns
    -------
    P : (2, 2) symmetric distortion in (y, x)
    residual : rms relative misfit
    """
    try:
        M, _, res = fit_net(phase, hkl, g_measured)
    except ValueError:
        raise InputError(
            "the indexed spots are collinear: a calibration needs two non-parallel reflections"
        ) from None
    w, V = np.linalg.eigh(M @ M.T)
    P = V @ np.diag(np.sqrt(np.clip(w, 0, None))) @ V.T
    return P, res


def _best_grain(match):
    grains = [g for g in match.grains if len(g["spots"]) >= 2]
    if not grains:
        return None
    return max(grains, key=lambda g: (g["merit"]["merit"], len(g["spots"])))


def calibrate(frame, pixel_size_nm, phase, *, config=None, **settings):
    """Fit the pixel size of ``frame`` from its spots of the known crystal ``phase``.

    Parameters
    ----------
    frame : 2D array
    pixel_size_nm : float or (float, float)
        The pixel size the file claims (y, x).
    phase : str, path or Phase
        The crystal in the frame (a shipped name or a YAML/CIF file).
    config, **settings
        As :func:`matsight.tem.predict.analyze` (tolerances, detector, ``scale_range`` ...).

    Returns
    -------
    CalibrationFit
    """
    from .predict import analyze

    # the phase is known: the net's stretch is what is measured here, not a test of the phase
    settings.setdefault("max_anisotropy", 0.25)
    cfg = make_config(config, maps=False, **settings)
    plist = load_phases([phase])
    res = analyze(frame, pixel_size_nm, plist, config=cfg)
    g = _best_grain(res.match)
    if g is None:
        raise InputError(
            f"no crystal of {plist[0].name} found in the frame ({res.match.verdict()}); check the phase, "
            "or widen --scale-range if the pixel size may be off by more"
        )
    idx = [k for k in g["spots"] if res.match.matches[k].fraction == 1]
    hkl = [res.match.matches[k].hkl for k in idx]
    gm = np.column_stack([res.spots.gy[idx], res.spots.gx[idx]])
    P, resid = fit_distortion(plist[0], hkl, gm)
    given = tuple(float(p) for p in np.broadcast_to(np.asarray(pixel_size_nm, float), (2,)))
    fixed = (given[0] * P[0, 0], given[1] * P[1, 1])
    return CalibrationFit(
        pixel_size_nm=tuple(float(p) for p in fixed),
        given_nm=given,
        shear=float(P[0, 1] / np.sqrt(P[0, 0] * P[1, 1])),
        scale=float(np.sqrt(np.linalg.det(P))),
        phase=plist[0].name,
        zone=tuple(g["zone"]),
        spots=len(idx),
        merit=float(g["merit"]["merit"]),
        residual_percent=100 * resid,
    )


def calibrate_file(path, phase, *, pixel_size=None, frame=None, config=None, **settings):
    """:func:`~matsight.tem.frames.read_frame` then :func:`calibrate`; returns ``(CalibrationFit, source)``.

    ``source`` says where the given pixel size came from (the file's tags or ``--pixel-size``).
    """
    from .frames import read_frame

    make_config(config, **settings)  # refuse bad settings before reading
    data, ps, src = read_frame(path, pixel_size=pixel_size, frame=frame, return_source=True)
    return calibrate(data, ps, phase, config=config, **settings), src

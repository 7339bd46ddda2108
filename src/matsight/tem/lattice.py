"""Synthetic HRTEM-like lattice images whose FFT spots are known by construction.

An image is a sum of crystal grains, each the kinematic lattice-fringe pattern of a phase seen down a zone
axis (all reflections ``h`` with ``h·[uvw] = 0`` and ``d ≥ d_info``, amplitudes ``|F(h)|`` from
:mod:`matsight.tem.crystals`, phases ``arg F(h)`` plus a random shift), rotated in plane and cut by a soft
grain mask, on an amorphous background (band-limited speckle with CTF-like Thon rings), damped by an
information-limit envelope, then counted with Poisson noise at a given dose (e/Å²).

Ground truth travels with the image: the reciprocal vector of every reflection of every grain, which of them
stand out of the noise in the windowed FFT (``visible``), a per-pixel phase label map and a spot label mask of
the spectrum for training/evaluating spot detectors.

Approximations (why this is "HRTEM-like", not a simulation): kinematic single scattering, linear imaging
(fringe amplitude ∝ |F|), no thickness or dynamical effects; use abTEM for quantitative image simulation.
"""

import logging
import numbers
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

from .._errors import InputError
from ..data.checks import check_seed, check_shape

log = logging.getLogger(__name__)

__all__ = ["Grain", "LatticeImage", "lattice_image", "two_phase_image", "random_grains", "ZONES"]

# low-index zone axes that show two or more fringe sets for the shipped phases
ZONES = {
    "Li": [(0, 0, 1), (1, 1, 1), (0, 1, 1)],
    "LiF": [(0, 0, 1), (0, 1, 1), (1, 1, 1)],
    "Li2O": [(0, 1, 1), (0, 0, 1), (1, 1, 1)],
    "Li2CO3": [(0, 1, 0), (1, 0, 0), (0, 0, 1), (1, 1, 0)],
}


@dataclass
class Grain:
    """One crystal: a phase seen down ``zone`` rotated by ``rotation_deg`` inside ``mask``."""

    phase: object  # name, path or matsight.tem.crystals.Phase
    zone: tuple = (0, 0, 1)
    rotation_deg: float = 0.0
    mask: np.ndarray | None = field(default=None, repr=False)
    strength: float = 1.0


@dataclass
class LatticeImage:
    """A synthetic frame and its ground truth.

    Attributes
    ----------
    image : ndarray, float64
        Counts (Poisson) — the raw frame.
    pixel_size_nm : tuple
    phase_names : list of str
        Phase of label ``k`` is ``phase_names[k - 1]``.
    phase_labels : ndarray of uint8
        Per pixel: 0 = no crystal, ``k`` = the phase whose grain covers it.
    spots : list of dict
        Every reflection of every grain: ``phase, grain, hkl, d (Å), gy, gx (1/nm), row, col (spectrum px),
        peak_power, visible``. Friedel mates are both listed.
    spot_labels : ndarray of bool
        Spectrum pixels belonging to visible spots (full centred spectrum).
    clean : ndarray
        The noise-free crystal signal (relative contrast).
    """

    image: np.ndarray
    pixel_size_nm: tuple
    phase_names: list
    phase_labels: np.ndarray
    spots: list
    spot_labels: np.ndarray
    clean: np.ndarray = field(repr=False)

    def visible_spots(self, phase=None):
        """Visible spots one per Friedel pair (``gx > 0``, or ``gy > 0`` at gx = 0)."""
        out = []
        for s in self.spots:
            if not s["visible"] or (phase is not None and s["phase"] != phase):
                continue
            if s["gx"] > 1e-9 or (abs(s["gx"]) <= 1e-9 and s["gy"] > 0):
                out.append(s)
        return out


def _plane_basis(phase, zone):
    """Orthonormal Cartesian basis (e1, e2) of the plane normal to the real-space direction ``zone``."""
    A = np.array(phase._cell.orth.mat.tolist())  # columns: a, b, c in Å
    u = A @ np.asarray(zone, float)
    u /= np.linalg.norm(u)
    ref = np.array([1.0, 0, 0]) if abs(u[0]) < 0.9 else np.array([0, 1.0, 0])
    e1 = np.cross(u, ref)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(u, e1)
    return e1, e2


def _soft(mask, sigma=1.5):
    return np.clip(ndi.gaussian_filter(mask.astype(float), sigma), 0, 1) if sigma > 0 else mask.astype(float)


def _amorphous(shape, pixel_size_nm, rng, *, defocus_nm=-50.0, wavelength_nm=0.00197, cs_mm=1.2):
    """Band-limited speckle with CTF-like Thon rings: white noise × |sin χ(g)| × envelope."""
    py, px = pixel_size_nm
    gy = np.fft.fftfreq(shape[0], py)
    gx = np.fft.rfftfreq(shape[1], px)
    g2 = gy[:, None] ** 2 + gx[None, :] ** 2
    cs = cs_mm * 1e6
    chi = np.pi * wavelength_nm * defocus_nm * g2 + 0.5 * np.pi * cs * wavelength_nm**3 * g2**2
    env = np.exp(-g2 * (0.12**2) * 4)  # soft decay beyond ~1.2 Å
    noise = rng.standard_normal(shape)
    out = np.fft.irfft2(np.fft.rfft2(noise) * np.abs(np.sin(chi)) * env, s=shape)
    return out / (out.std() + 1e-12)


def _grain_signal(grain, shape, pixel_size_nm, d_info, rng):
    """Fringe pattern of one grain (unmasked) and its reflections as dicts."""
    from .crystals import load_phase

    phase = load_phase(grain.phase)
    hkl, d, inten = phase.zone_reflections(grain.zone, d_min=d_info, d_max=30.0, min_intensity=0.01)
    if len(hkl) == 0:
        raise InputError(
            f"{phase.name} shows no reflections down [{' '.join(map(str, grain.zone))}] with d ≥ {d_info} Å; "
            "pick another zone axis"
        )
    e1, e2 = _plane_basis(phase, grain.zone)
    G = phase.g_vectors(hkl)  # 1/Å
    t = np.radians(grain.rotation_deg)
    gx0, gy0 = G @ e1, G @ e2
    gx = 10 * (np.cos(t) * gx0 - np.sin(t) * gy0)  # 1/nm
    gy = 10 * (np.sin(t) * gx0 + np.cos(t) * gy0)
    F = phase.structure_factor(hkl)
    amp = np.sqrt(inten)  # |F| relative to the phase's strongest reflection
    env = np.exp(-((d_info / d) ** 2) * 0.7)
    shift = rng.random(2) * 10.0  # nm
    phi = np.angle(F) + 2 * np.pi * (gy * shift[0] + gx * shift[1])
    py, px = pixel_size_nm
    yy = np.arange(shape[0]) * py
    xx = np.arange(shape[1]) * px
    sig = np.zeros(shape)
    a_eff = amp * env * grain.strength
    for k in range(len(hkl)):
        # separable plane wave: Re(a e^{iφ} e^{2πi gy y} ⊗ e^{2πi gx x}) — no per-pixel cos
        ey = (0.5 * a_eff[k] * np.exp(1j * phi[k])) * np.exp(2j * np.pi * gy[k] * yy)
        ex = np.exp(2j * np.pi * gx[k] * xx)
        sig += (ey.real[:, None] * ex.real[None, :]) - (ey.imag[:, None] * ex.imag[None, :])
    spots = [
        {
            "phase": phase.name,
            "hkl": tuple(int(i) for i in hkl[k]),
            "d": float(d[k]),
            "gy": float(gy[k]),
            "gx": float(gx[k]),
            "amplitude": float(a_eff[k]),
        }
        for k in range(len(hkl))
    ]
    return sig, spots


def _mark_visible(spots, image, crystal, pixel_size_nm, visible_snr):
    """Ground truth of visibility: the windowed spectrum of the crystal part against that of the rest.

    Sets ``row``, ``col``, ``peak_power`` and ``visible`` of every spot (in place); returns the spectrum
    pixels of the visible spots (bool, full centred spectrum). ``crystal`` is the crystal signal in counts.
    """
    from . import fft as _fft

    shape, ps = image.shape, pixel_size_nm
    w = _fft.window(shape, "hann")
    Sc = np.fft.fftshift(np.fft.fft2(crystal * w))
    Pc = np.abs(Sc) ** 2
    rest = image - crystal
    Pr = np.abs(np.fft.fftshift(np.fft.fft2((rest - rest.mean()) * w))) ** 2
    gyv, gxv = _fft.reciprocal_coords(shape, ps)
    g = np.hypot(gyv[:, None], gxv[None, :])
    bw = min(gyv[1] - gyv[0], gxv[1] - gxv[0])
    b = (g / bw).astype(int)
    prof = np.bincount(b.ravel(), Pr.ravel()) / np.maximum(np.bincount(b.ravel()), 1)
    prof = ndi.uniform_filter1d(prof, 3)
    bgP = prof[b]
    for s in spots:
        r, c = _fft.g_to_pixel(s["gy"], s["gx"], shape, ps)
        s["row"], s["col"] = float(r), float(c)
        ri, ci = int(round(r)) % shape[0], int(round(c)) % shape[1]
        win = Pc[np.ix_(np.arange(ri - 1, ri + 2) % shape[0], np.arange(ci - 1, ci + 2) % shape[1])]
        s["peak_power"] = float(win.max())
        s["visible"] = bool(win.max() >= visible_snr * bgP[ri, ci])
    spot_labels = (Pc >= visible_snr * bgP) & (Pc >= 0.1 * ndi.maximum_filter(Pc, size=9, mode="wrap"))
    spot_labels[shape[0] // 2, shape[1] // 2] = False
    # keep only components that contain a visible spot centre
    lab, _ = ndi.label(spot_labels)
    keep = {
        int(lab[int(round(s["row"])) % shape[0], int(round(s["col"])) % shape[1]])
        for s in spots
        if s["visible"]
    }
    keep.discard(0)
    return np.isin(lab, list(keep))


def lattice_image(
    shape=(512, 512),
    pixel_size_nm=0.02,
    *,
    grains=(),
    dose=500.0,
    contrast=0.25,
    amorphous=0.15,
    d_info=1.1,
    visible_snr=20.0,
    seed=0,
):
    """Render grains on an amorphous background with Poisson noise.

    Parameters
    ----------
    shape : tuple of int
    pixel_size_nm : float or (float, float)
    grains : sequence of Grain
        Their masks must have ``shape``; a grain without mask fills the frame.
    dose : float
        Electron dose in e/Å² (counts per pixel = dose × pixel area).
    contrast : float
        Fringe contrast of the strongest reflection (relative to the mean intensity).
    amorphous : float
        Standard deviation of the amorphous background contrast.
    d_info : float
        Information limit in Å: no reflections with smaller d; envelope decays towards it.
    visible_snr : float
        A spot is ``visible`` when its windowed-FFT peak power exceeds this multiple of the radial mean
        background power at its radius.
    seed : int

    Returns
    -------
    LatticeImage
    """
    from . import fft as _fft

    ps = _fft.check_pixel_size(pixel_size_nm)
    shape = check_shape(shape, ndims=(2,))
    rng = np.random.default_rng(check_seed(seed))
    names, labels = [], np.zeros(shape, np.uint8)
    clean = np.zeros(shape)
    spots = []
    for gi, grain in enumerate(grains):
        mask = np.ones(shape, bool) if grain.mask is None else np.asarray(grain.mask, bool)
        if mask.shape != shape:
            raise InputError(f"grain mask shape {mask.shape} differs from the image shape {shape}")
        sig, sp = _grain_signal(grain, shape, ps, d_info, rng)
        clean += _soft(mask) * sig
        for s in sp:
            s["grain"] = gi
        spots += sp
        pname = sp[0]["phase"]
        if pname not in names:
            names.append(pname)
        labels[mask] = names.index(pname) + 1
    amorph = _amorphous(shape, ps, rng) * amorphous if amorphous > 0 else 0.0
    mean_counts = dose * (10 * ps[0]) * (10 * ps[1])
    intensity = np.clip(1.0 + contrast * clean + amorph, 0.0, None) * mean_counts
    image = rng.poisson(intensity).astype(np.float64)
    spot_labels = _mark_visible(spots, image, contrast * clean * mean_counts, ps, visible_snr)
    return LatticeImage(image, ps, names, labels, spots, spot_labels, clean)


def _disk(shape, centre, radius):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def two_phase_image(
    shape=(512, 512),
    pixel_size_nm=0.02,
    *,
    phases=("LiF", "Li"),
    zones=None,
    layout="halves",
    dose=500.0,
    seed=0,
    **kw,
):
    """Two grains of two phases: left/right halves (``layout="halves"``) or a disk in a matrix (``"disk"``).

    The gap between halves (8 % of the width) is amorphous, like a real grain boundary region.
    """
    shape = check_shape(shape, ndims=(2,))
    rng = np.random.default_rng(check_seed(seed))
    if zones is None:
        zones = [ZONES.get(str(p), [(0, 0, 1)])[0] for p in phases]
    if layout == "halves":
        gap = int(0.04 * shape[1])
        m1 = np.zeros(shape, bool)
        m1[:, : shape[1] // 2 - gap] = True
        m2 = np.zeros(shape, bool)
        m2[:, shape[1] // 2 + gap :] = True
    elif layout == "disk":
        m2 = _disk(shape, (shape[0] / 2, shape[1] / 2), 0.3 * min(shape))
        m1 = ~_disk(shape, (shape[0] / 2, shape[1] / 2), 0.36 * min(shape))
    else:
        raise InputError(f"unknown layout {layout!r}; use halves or disk")
    grains = [
        Grain(phases[0], zones[0], float(rng.uniform(0, 180)), m1),
        Grain(phases[1], zones[1], float(rng.uniform(0, 180)), m2),
    ]
    return lattice_image(shape, pixel_size_nm, grains=grains, dose=dose, seed=seed, **kw)


def random_grains(shape, *, phases=("Li", "LiF", "Li2O", "Li2CO3"), n_grains=(1, 5), crystalline=0.7, seed=0):
    """Random Voronoi grains (random phase, zone and rotation each) covering ~``crystalline`` of the frame.

    Returns
    -------
    list of Grain
    """
    shape = check_shape(shape, ndims=(2,))
    try:
        lo, hi = (int(v) for v in n_grains)
    except (TypeError, ValueError):
        lo = hi = -1
    if not 0 <= lo <= hi:
        raise InputError(f"n_grains must be (min, max) with 0 <= min <= max, e.g. (1, 5), got {n_grains!r}")
    if not (isinstance(crystalline, numbers.Real) and 0 <= crystalline <= 1):
        raise InputError(
            f"crystalline (the share of crystalline grains) must be in [0, 1], got {crystalline!r}"
        )
    rng = np.random.default_rng(check_seed(seed))
    n = int(rng.integers(lo, hi + 1))
    seeds = rng.random((n + 1, 2)) * np.array(shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    dist = np.stack([(yy - s[0]) ** 2 + (xx - s[1]) ** 2 for s in seeds])
    owner = np.argmin(dist, axis=0)
    grains = []
    for k in range(n):
        region = owner == k
        if rng.random() > crystalline:
            continue  # amorphous cell
        p = str(rng.choice(list(phases)))
        zones = ZONES.get(p, [(0, 0, 1)])
        z = zones[int(rng.integers(len(zones)))]
        grains.append(Grain(p, z, float(rng.uniform(0, 360)), region, float(rng.uniform(0.5, 1.0))))
    if not grains:  # at least one crystal
        p = str(rng.choice(list(phases)))
        grains.append(Grain(p, ZONES.get(p, [(0, 0, 1)])[0], float(rng.uniform(0, 360)), owner == 0))
    return grains

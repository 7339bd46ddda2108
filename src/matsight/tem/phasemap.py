"""Real-space phase maps: mask each phase's FFT spots (and Friedel mates), inverse FFT, segment.

For every identified phase P:

1. The FFT of the frame (periodic component, so the edge cross does not leak into masks) is masked with a
   disk of radius ``size/2`` (the spot's feature size, at least ``min_radius``) around each of P's spots and
   its Friedel mate ``-g``.
2. The inverse FFT of a {g, −g} mask is a fringe field ``2 A(x) cos(2π g·x + φ(x))``; its *amplitude*
   ``A(x)`` (the local fringe strength) is computed exactly by demodulating each spot to the origin on a
   small grid, and amplitudes of P's spots add in quadrature: ``A_P = sqrt(Σ A_s²)``. This is cheap (a
   few-ten-pixel inverse FFT per spot) and free of fringe ripple.
3. Threshold of ``A_P``: the level noise alone exceeds at 1e-3 of the pixels (:func:`noise_threshold`, from
   the FFT background on rings through the spots), and at least :data:`EDGE_FRACTION` of the local maximum
   within the masks' blur (a grain's edge; Otsu on ``A_P`` cut uniform crystals to 69–90 %); morphological
   opening with a 7×7 square, 2 iterations (the paper's best setting; in frame pixels, also
   when frames above 1024 px are segmented on a downsampled grid), and a watershed on the distance transform
   split the phase into regions (grains).

Pixels claimed by two phases go to the one with the larger ``A_P / threshold_P``; the result is one label
image (0 = none/amorphous, k = phase k) and area fractions.
"""

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from . import fft as _fft

log = logging.getLogger(__name__)

__all__ = ["spot_amplitudes", "PhaseMaps", "phase_maps", "opening_kernel", "noise_threshold"]


def _crop_size(radius):
    m = int(4 * np.ceil(radius) + 4)
    return m + (m % 2)


def spot_amplitudes(spectrum, rows, cols, radii, *, grid=None):
    """Fringe amplitude ``A_s(x)`` of each spot on a coarse ``grid`` (demodulated inverse FFT of a disk).

    Parameters
    ----------
    spectrum : ndarray, complex
        Centred full spectrum (unwindowed) of the frame.
    rows, cols, radii : array_like
        Spot centres (sub-pixel) and mask radii, in spectrum pixels.
    grid : (int, int), optional
        Coarse grid shape; default: the largest crop (4·radius + 4, even).

    Returns
    -------
    ndarray, shape ``(n, gy, gx)``
        ``2 |f_s|`` where ``f_s`` is the inverse FFT of the one-sided disk: the amplitude of the real fringe
        field given by the disk and its Friedel mate, in image intensity units.
    """
    ny, nx = spectrum.shape
    rows, cols, radii = (np.atleast_1d(np.asarray(a, float)) for a in (rows, cols, radii))
    if grid is None:
        m = _crop_size(radii.max()) if radii.size else 8
        grid = (min(m, ny), min(m, nx))
    my, mx = grid
    out = np.zeros((len(rows), my, mx))
    ky = np.arange(my) - my // 2
    kx = np.arange(mx) - mx // 2
    for s, (r, c, rad) in enumerate(zip(rows, cols, radii, strict=True)):
        r0, c0 = int(round(r)), int(round(c))
        sub = spectrum[np.ix_((r0 + ky) % ny, (c0 + kx) % nx)]
        disk = ((ky[:, None] + r0 - r) ** 2 + (kx[None, :] + c0 - c) ** 2) <= rad**2
        f = np.fft.ifft2(np.fft.ifftshift(sub * disk))
        out[s] = 2.0 * np.abs(f) * (my * mx) / (ny * nx)
    return out


def _upsample(coarse, shape):
    """Periodic linear interpolation of a coarse periodic map to the frame grid."""
    my, mx = coarse.shape
    yy = np.arange(shape[0]) * (my / shape[0])
    xx = np.arange(shape[1]) * (mx / shape[1])
    # separable: rows then columns
    y0 = np.floor(yy).astype(int)
    wy = yy - y0
    tmp = coarse[y0 % my] * (1 - wy)[:, None] + coarse[(y0 + 1) % my] * wy[:, None]
    x0 = np.floor(xx).astype(int)
    wx = xx - x0
    return tmp[:, x0 % mx] * (1 - wx)[None, :] + tmp[:, (x0 + 1) % mx] * wx[None, :]


@dataclass
class PhaseMaps:
    """Per-phase amplitude maps, masks and the combined label map."""

    phase_names: list
    amplitude: dict  # name -> ndarray (frame shape)
    threshold: dict  # name -> float
    masks: dict  # name -> bool ndarray
    regions: dict  # name -> int32 ndarray (watershed regions)
    labels: np.ndarray  # 0 = none, k = phase_names[k-1]
    area_fraction: dict = field(default_factory=dict)


def _ring_background(spectrum, rows, cols, radii, avoid_rows, avoid_cols, avoid_radii, *, n=512, seed=0):
    """Mean background power ``E|S|²`` per spectrum pixel at each spot's ``|q|``, away from every spot.

    ``n`` points on the ring through the spot (same distance from the zero frequency) are kept when they lie
    more than 3 mask radii from every spot in ``avoid_*`` and from its Friedel mate; the median of ``|S|``
    over them gives the power (complex Gaussian noise: ``|S|`` is Rayleigh, ``E|S|² = median² / ln 2``, robust
    to the odd unlisted spot on the ring).
    """
    ny, nx = spectrum.shape
    cy, cx = ny // 2, nx // 2
    rng = np.random.default_rng(seed)
    av = np.column_stack([avoid_rows, avoid_cols, avoid_radii]) if len(avoid_rows) else np.zeros((0, 3))
    av = np.concatenate([av, np.column_stack([2 * cy - av[:, 0], 2 * cx - av[:, 1], av[:, 2]])])
    out = np.empty(len(rows))
    for s, (r, c) in enumerate(zip(rows, cols, strict=True)):
        rho = np.hypot(r - cy, c - cx)
        t = rng.uniform(0, 2 * np.pi, n)
        rr, cc = cy + rho * np.sin(t), cx + rho * np.cos(t)
        far = np.all(np.hypot(rr[:, None] - av[:, 0], cc[:, None] - av[:, 1]) > 3 * av[:, 2] + 1, axis=1)
        if far.sum() < 16:  # a ring crowded with spots: take it whole (the median resists them)
            far[:] = True
        vals = np.abs(spectrum[np.round(rr[far]).astype(int) % ny, np.round(cc[far]).astype(int) % nx])
        out[s] = np.median(vals) ** 2 / np.log(2)
    return out


def _disk_pixels(rows, cols, radii):
    """Number of spectrum pixels in each spot's mask disk (as :func:`spot_amplitudes` draws it)."""
    out = np.empty(len(rows))
    for s, (r, c, rad) in enumerate(zip(rows, cols, radii, strict=True)):
        h = int(np.ceil(rad)) + 1
        k = np.arange(-h, h + 1)
        r0, c0 = round(r), round(c)
        out[s] = (((k[:, None] + r0 - r) ** 2 + (k[None, :] + c0 - c) ** 2) <= rad**2).sum()
    return out


def noise_threshold(background_power, n_pixels, shape, false_positive_rate=1e-3):
    """Amplitude that noise alone exceeds at a fraction ``false_positive_rate`` of the pixels.

    Noise of mean power ``b_s`` per spectrum pixel, passed through a mask of ``n_s`` pixels (and its Friedel
    mate), gives a fringe amplitude ``A_s = 2|f_s|`` with ``|f_s|²`` exponential of mean ``n_s b_s / N²``
    (``N`` = pixels of the frame; the inverse FFT of complex Gaussian noise). A phase's amplitude
    ``A_P² = Σ A_s²`` is then a sum of independent exponentials of means ``μ_s = 4 n_s b_s / N²``; it is
    approximated by the Gamma law with the same mean ``Σμ_s`` and variance ``Σμ_s²`` (exact when all
    ``μ_s`` are equal; with unequal ones its tail is a little light: 1.6e-3 of the pixels exceed the 1e-3
    quantile in ``tests/tem/test_honest_maps.py``), whose upper quantile is returned (as an amplitude).
    """
    from scipy.stats import gamma

    mu = 4.0 * np.asarray(n_pixels, float) * np.asarray(background_power, float) / float(np.prod(shape)) ** 2
    mean, var = mu.sum(), (mu**2).sum()
    if not mean > 0:
        return 0.0
    return float(np.sqrt(gamma.isf(false_positive_rate, mean**2 / var, scale=var / mean)))


def opening_kernel(opening_size, opening_iterations, factor):
    """Side of the one square opening, on a grid downsampled ``factor`` times, equal to the given opening.

    A ``k×k`` square opening iterated ``n`` times is one opening by a ``n(k−1)+1`` square (13 frame px for the
    paper's 7×7 × 2). On a downsampled working grid the same frame-pixel size is ``(n(k−1)+1) / factor``
    working pixels, rounded to an odd side (an even one would shift the mask) and at least 3 where an
    opening is asked for: within a working pixel of the paper's up to 5120 px frames (factor ≤ 5), coarser
    beyond. Returns 1 for no opening.
    """
    if opening_iterations <= 0 or opening_size <= 1:
        return 1
    k_frame = opening_iterations * (opening_size - 1) + 1
    return max(3, 2 * int(np.floor((k_frame / factor - 1) / 2 + 0.5)) + 1)


# a grain's edge lies where its blurred amplitude is half its plateau; the local maximum that stands for the
# plateau is ~20 % above it (the ringing of a sharp mask's step response, noise peaks): 0.4 of it is the
# half-plateau. Measured on generated frames (512², 0.02 nm): 0.5 shrank two-grain maps by up to 3.3 % of the
# frame and uniform crystals to 97.5 %, 0.3 grew a crystal disk into amorphous by 2–5 %, 0.4 stays within 2 %.
EDGE_FRACTION = 0.4


def _edge_level(Aw, shape, radius, factor):
    """:data:`EDGE_FRACTION` of the largest amplitude within the blur of the masks: where a grain's edge lies.

    A mask of radius ``r`` spectrum px blurs the amplitude over ``~n / (2r)`` frame px along an axis of ``n``
    px: a grain's amplitude falls from its plateau to 0 across its edge, through half the plateau at the edge
    itself. The local maximum within that distance (periodic: the map is of the periodic component) is the
    plateau of the nearest grain; requiring half of it puts the edge of a grain that borders an amorphous gap
    or another grain where it is, instead of a blur width out (a noise threshold alone would).
    """
    size = [2 * int(np.ceil(n / (2.0 * radius) / factor)) + 1 for n in shape]
    size = [min(s, w - (1 - w % 2)) for s, w in zip(size, Aw.shape, strict=True)]
    return EDGE_FRACTION * ndi.maximum_filter(Aw, size=size, mode="wrap")


def _segment_phase(Aw, t, k_open, min_distance):
    """``(mask, regions)`` of one phase's amplitude ``Aw``: above ``t``, opened by a ``k_open`` square,
    split by a watershed of the distance transform from peaks ``min_distance`` apart.
    """
    m = Aw > t
    if k_open > 1:
        m = ndi.maximum_filter(
            ndi.minimum_filter(m, size=k_open, mode="nearest"), size=k_open, mode="nearest"
        )
    dist = ndi.distance_transform_edt(m)
    lab, nlab = ndi.label(m)
    if nlab:
        pk = peak_local_max(dist, min_distance=min_distance, labels=lab, exclude_border=False)
        mk = np.zeros(Aw.shape, np.int32)
        mk[tuple(pk.T)] = np.arange(1, len(pk) + 1)
        reg = watershed(-dist, mk, mask=m)
    else:
        reg = lab
    return m, reg.astype(np.int32)


def phase_maps(
    image,
    spots,
    match,
    *,
    min_radius=2.0,
    opening_size=7,
    opening_iterations=2,
    work_max=1024,
    false_positive_rate=1e-3,
):
    """Segment each identified phase in real space (see the module docstring).

    Parameters
    ----------
    image : ndarray, 2D
        The frame (raw counts).
    spots : SpotTable
    match : MatchResult
    min_radius : float
        Smallest mask radius in spectrum pixels.
    opening_size, opening_iterations : int
        Morphological opening (square kernel, iterated) in frame pixels; on a downsampled working grid it is
        scaled to the same frame-pixel size (:func:`opening_kernel`).
    work_max : int
        Segmentation runs on a grid of at most this many pixels per side (amplitude maps are smooth).

    Returns
    -------
    PhaseMaps
    """
    img = _fft.check_frame(image)
    shape = img.shape
    p = _fft.periodic_component(img - img.mean())
    S = _fft.spectrum(p, window_kind="none")  # real FFT mirrored: half the work of fft2
    names = match.phases_found
    factor = max(1, int(np.ceil(max(shape) / work_max)))
    wshape = (int(np.ceil(shape[0] / factor)), int(np.ceil(shape[1] / factor)))
    k_open = opening_kernel(opening_size, opening_iterations, factor)
    amps, thr, masks, regs = {}, {}, {}, {}
    all_radii = np.maximum(spots.size / 2.0, min_radius)
    score = np.zeros((len(names),) + wshape)
    for pi, name in enumerate(names):
        idx = [k for k, m in enumerate(match.matches) if m.phase == name]
        rows, cols = spots.row[idx], spots.col[idx]
        radii = np.maximum(spots.size[idx] / 2.0, min_radius)
        coarse = spot_amplitudes(S, rows, cols, radii)
        A_coarse = np.sqrt((coarse**2).sum(axis=0))
        amps[name] = _upsample(A_coarse, shape)
        Aw = _upsample(A_coarse, wshape)
        bgp = _ring_background(S, rows, cols, radii, spots.row, spots.col, all_radii)
        thr[name] = noise_threshold(bgp, _disk_pixels(rows, cols, radii), shape, false_positive_rate)
        t_local = np.maximum(thr[name], _edge_level(Aw, shape, radii.min(), factor))
        masks[name], regs[name] = _segment_phase(Aw, t_local, k_open, max(opening_size, min(wshape) // 16))
        score[pi] = np.where(masks[name], Aw / t_local, 0.0)
    if names:
        best = np.argmax(score, axis=0)
        lab_w = np.where(score.max(axis=0) > 0, best + 1, 0).astype(np.uint8)
    else:
        lab_w = np.zeros(wshape, np.uint8)
    if factor > 1:
        # nearest-neighbour back to the frame grid
        iy = np.minimum(np.arange(shape[0]) // factor, wshape[0] - 1)
        ix = np.minimum(np.arange(shape[1]) // factor, wshape[1] - 1)
        labels = lab_w[np.ix_(iy, ix)]
        masks = {k: v[np.ix_(iy, ix)] for k, v in masks.items()}
        regs = {k: v[np.ix_(iy, ix)] for k, v in regs.items()}
    else:
        labels = lab_w
    total = labels.size
    frac = {name: float((labels == k + 1).sum() / total) for k, name in enumerate(names)}
    return PhaseMaps(names, amps, thr, masks, regs, labels, frac)

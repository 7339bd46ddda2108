"""Learned FFT spot detector: a small U-Net on the half spectrum, mirrored back exactly (Hermitian symmetry).

The spectrum of a real frame obeys ``S(-g) = S*(g)``, so ``|S|`` on the half spectrum (columns ``cx ...``, see
:mod:`matsight.tem.fft`) holds everything: the network sees only that half (the paper's "half FFT" training,
which keeps detections Friedel-symmetric) and its mask is mirrored back with
:func:`~matsight.tem.fft.from_half`, which is exact for even and odd frame sizes. Only the self-conjugate
columns (gx = 0, and the Nyquist column of even widths) need care: both ``±gy`` of them lie in the half,
so they are made symmetric by an OR with their mirrored rows.

Input (2 channels, both independent of dose and frame size, so one small model serves every frame):

0. ``z``: the noise-normalised log power of :func:`matsight.tem.spots.radial_background` (radially flattened,
   in units of the radial noise spread), clipped to [-4, 16] / 4;
1. local peakness ``log P - log mean3x3(P)`` clipped to [-4, 2] / 2 (sharpens sub-spot localisation).

Pixels outside the analysed annulus ``d_min ≤ d ≤ d_max`` are set to 0 and never predicted. Only the bounding
box of the annulus in the half spectrum is fed to the network (for a 2048² frame at 0.02 nm and ``d_min = 1
Å`` that is 820 × 411 px of the 2048 × 1025 half), which keeps inference well under a second on 2 cores.

The network (:class:`~matsight.tem.networks.SpotUNet`) is a plain 4-level U-Net (8-16-32-64 channels, ~120 k
parameters, 0.5 MB) trained by :mod:`matsight.tem.train_detector` on synthetic lattice FFTs whose spot labels
are known by construction; the trained weights ship in ``matsight/tem/weights/spot_unet.safetensors``
(config + metrics in its metadata).
"""

import logging
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage as ndi

from .._errors import InputError
from . import fft as _fft
from .networks import IN_CHANNELS, SpotUNet
from .spots import (
    SpotTable,
    _uncrop,
    annulus_crop,
    auto_threshold,
    radial_background,
    spots_from_mask,
    suppress_streaks,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_WEIGHTS",
    "SpotUNet",
    "half_features",
    "load_detector",
    "predict_half",
    "unet_spot_mask",
    "detect_spots_unet",
]

DEFAULT_WEIGHTS = Path(__file__).with_name("weights") / "spot_unet.safetensors"


def _annulus_box(shape, pixel_size_nm, d_min):
    """Rows and half-spectrum columns that can hold ``d ≥ d_min`` (plus a small margin)."""
    ny, nx = shape
    py, px = _fft.check_pixel_size(pixel_size_nm)
    g_hi = 10.0 / d_min
    ry = int(np.ceil(g_hi * ny * py)) + 4
    rx = int(np.ceil(g_hi * nx * px)) + 4
    cy = ny // 2
    r0, r1 = max(cy - ry, 0), min(cy + ry + 1, ny)
    c1 = min(rx + 1, nx - nx // 2)
    return slice(r0, r1), slice(0, c1)


def half_features(spectrum, pixel_size_nm, *, d_min=1.0, d_max=15.0, background=None, power=None):
    """Network input on the half spectrum: ``(C, ny, nx//2 + 1)`` float32, the annulus mask and the
    background.

    Parameters
    ----------
    spectrum : ndarray, complex
        Centred full spectrum (:func:`matsight.tem.fft.spectrum`).
    pixel_size_nm : float or (float, float)
    d_min, d_max : float
        Analysed spacings (Å).
    background : SpotBackground, optional
        Precomputed :func:`~matsight.tem.spots.radial_background` of ``|spectrum|²``.
    power : ndarray, optional
        Precomputed ``|spectrum|²``.

    Returns
    -------
    x : ndarray, float32, ``(2, ny, nx//2 + 1)``
    valid : ndarray of bool, ``(ny, nx//2 + 1)``
    background : SpotBackground
    """
    ps = _fft.check_pixel_size(pixel_size_nm)
    if power is None:
        power = spectrum.real**2 + spectrum.imag**2
    if background is None:
        background = radial_background(power, ps, d_min=d_min, d_max=d_max)
    # everything below is computed on the half only (cheaper, and exactly what the mirror needs)
    ph = _fft.to_half(power)
    valid = _fft.to_half(background.valid)
    z = np.nan_to_num(_fft.to_half(background.z), nan=0.0)
    x0 = np.clip(z, -4.0, 16.0) / 4.0
    # 3×3 mean on the full power (wrap-around neighbours of the gx = 0 column live in the other half)
    sm = _fft.to_half(ndi.uniform_filter(power, 3, mode="wrap"))
    x1 = np.clip(np.log(ph + 1e-300) - np.log(sm + 1e-300), -4.0, 2.0) / 2.0
    x = np.stack([np.where(valid, x0, 0.0), np.where(valid, x1, 0.0)]).astype(np.float32)
    return x, valid, background


def _pad_to(x, multiple):
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate" if min(h, w) > 1 else "constant")
    return x, (h, w)


@lru_cache(maxsize=4)
def _load_cached(path, device):
    from ..nn.checkpoint import load_checkpoint

    groups, meta = load_checkpoint(path)
    if meta.get("kind") != "tem_spot_unet" or "detector" not in groups:
        raise InputError(
            f"{path} is not a matsight spot-detector checkpoint; train one with `matsight tem train-detector`"
        )
    net = SpotUNet(in_channels=int(meta.get("in_channels", IN_CHANNELS)), features=tuple(meta["features"]))
    try:
        net.load_state_dict(groups["detector"])
    except RuntimeError as exc:
        raise InputError(
            f"{path}: weights do not fit the stored network config ({exc}); retrain the detector"
        ) from exc
    net.eval().to(device)
    return net, meta


def load_detector(weights=None, *, device="cpu"):
    """Load the U-Net spot detector: ``(SpotUNet, meta)``; default the weights shipped with matsight."""
    path = Path(weights) if weights is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise InputError(
            f"U-Net detector weights not found: {path}; "
            "train them with `matsight tem train-detector --out FILE` "
            "or use detector='classical'"
        )
    return _load_cached(str(path.resolve()), str(device))


@torch.no_grad()
def predict_half(net, x, valid=None, *, box=None, device="cpu"):
    """Spot probability on the half spectrum (0 outside ``box`` / ``valid``).

    Parameters
    ----------
    net : SpotUNet
    x : ndarray ``(C, H, W)``
        From :func:`half_features`.
    valid : ndarray of bool ``(H, W)``, optional
    box : (slice, slice), optional
        Only this part of the half is passed through the network (the annulus bounding box).
    """
    prob = np.zeros(x.shape[-2:], np.float32)
    sl = box if box is not None else (slice(None), slice(None))
    t = torch.from_numpy(np.ascontiguousarray(x[:, sl[0], sl[1]]))[None].to(device)
    t, (h, w) = _pad_to(t, net.multiple)
    p = torch.sigmoid(net(t))[0, 0, :h, :w].float().cpu().numpy()
    prob[sl] = p
    if valid is not None:
        prob[~valid] = 0.0
    return prob


def _symmetrise_half(mask_half, ny, nx):
    """OR the self-conjugate columns of the half (gx = 0, and Nyquist for even ``nx``) with their row mirror.

    Every other half column maps to a distinct full column, so after this the full mask is exactly symmetric.
    """
    mate = _fft.friedel_mate(np.arange(ny), (ny,))
    cols = [0, mask_half.shape[1] - 1] if nx % 2 == 0 else [0]
    for c in cols:
        col = mask_half[:, c]
        mask_half[:, c] = col | col[mate]
    return mask_half


def unet_spot_mask(
    spectrum,
    pixel_size_nm,
    *,
    d_min=1.0,
    d_max=15.0,
    weights=None,
    threshold=None,
    device="cpu",
    background=None,
    power=None,
    return_prob=False,
):
    """Boolean spot mask of the full centred spectrum from the U-Net (half spectrum in, exact mirror out).

    Returns
    -------
    mask : ndarray of bool, spectrum shape
        Exactly Friedel-symmetric.
    background : SpotBackground
    prob_half : ndarray, only with ``return_prob=True``
    """
    net, meta = load_detector(weights, device=device)
    thr = float(meta.get("threshold", 0.5) if threshold is None else threshold)
    if not 0.0 < thr < 1.0:
        raise InputError(f"U-Net threshold must be in (0, 1), got {thr}")
    ny, nx = spectrum.shape
    x, valid, bg = half_features(
        spectrum, pixel_size_nm, d_min=d_min, d_max=d_max, background=background, power=power
    )
    box = _annulus_box((ny, nx), pixel_size_nm, d_min)
    prob = predict_half(net, x, valid, box=box, device=device)
    half = _symmetrise_half(prob > thr, ny, nx)
    full = _fft.from_half(half, nx)
    if return_prob:
        return full, bg, prob
    return full, bg


def detect_spots_unet(
    image,
    pixel_size_nm,
    *,
    spectrum=None,
    window_kind="hann",
    d_min=1.0,
    d_max=15.0,
    weights=None,
    threshold=None,
    device="cpu",
    max_spots=200,
    streak_ratio=0.1,
    min_snr_margin=0.0,
):
    """U-Net FFT spot detector: same output as :func:`matsight.tem.spots.detect_spots`.

    Parameters
    ----------
    image : array_like, 2D
        Raw counts (ignored when ``spectrum`` is given).
    pixel_size_nm : float or (float, float)
    spectrum : ndarray, optional
        Precomputed centred spectrum.
    window_kind : str
    d_min, d_max : float
        Analysed spacings (Å).
    weights : path, optional
        Checkpoint from ``matsight tem train-detector``; default the shipped weights.
    threshold : float, optional
        Probability threshold; default the one tuned on held-out data, stored with the weights.
    device : str
    max_spots : int
    streak_ratio : float or None
        See :func:`matsight.tem.spots.suppress_streaks`.
    min_snr_margin : float
        Keep spots whose peak ``z`` exceeds :func:`matsight.tem.spots.auto_threshold` of the frame plus this.

    Returns
    -------
    SpotTable
    """
    ps_full = _fft.check_pixel_size(pixel_size_nm)
    if spectrum is None:
        spectrum = _fft.spectrum(image, window_kind=window_kind)
    # the centred crop holding d >= d_min is itself an exact centred spectrum (see spots.annulus_crop)
    box, ps, offset = annulus_crop(spectrum.shape, ps_full, d_min)
    sub = spectrum[box]
    power = sub.real**2 + sub.imag**2
    mask, bg = unet_spot_mask(
        sub, ps, d_min=d_min, d_max=d_max, weights=weights, threshold=threshold, device=device, power=power
    )
    if not mask.any():
        return SpotTable.empty(spectrum.shape, ps_full)
    table = spots_from_mask(mask, sub, ps, d_min=d_min, d_max=d_max, background=bg, power=power)
    table = _uncrop(table, spectrum.shape, ps_full, offset)
    # the network judges shape; significance is the classical detector's noise-adaptive level, which rises
    # with the frame's pixel count (a 2048² spectrum holds 64× the noise maxima of the 256² training frames)
    table = table.subset(table.snr > auto_threshold(spectrum.shape) + min_snr_margin)
    table = suppress_streaks(table, ratio=streak_ratio)
    if len(table) > max_spots:
        table = table.subset(np.argsort(-table.intensity)[:max_spots])
    return table

"""The sampler's step count ``N``: chosen on validation crops of the training pair, resolved for enhancement.

:func:`select_steps` runs at the end of training; ``indi_steps="auto"`` in enhancement then uses its choice:
the step count whose output's mid-frequency power spectrum best matches the HQ's, among those within
``psnr_tolerance`` dB of the best PSNR — few steps are blurry (regression to the mean), many amplify noise;
the paper chose 7–10 by eye. Its own module because training and enhancement both need it.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .._errors import InputError
from ..metrics.image_quality import ssim
from .indi import sample_image

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_CANDIDATES", "band_power_ratio", "resolve_steps", "select_steps", "warn_if_largest"]

DEFAULT_CANDIDATES = (1, 2, 4, 6, 8, 10, 12, 16)


def band_power_ratio(image, reference, *, band=(0.125, 0.375)):
    """Power of ``image`` relative to ``reference`` in a band of spatial frequencies (cycles/pixel), 2D
    slices.

    1 means the same amount of detail as the reference; < 1 blurrier, > 1 noisier/ringing. Stacks are
    averaged.
    """
    img = np.asarray(image, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if img.ndim == 2:
        img, ref = img[None], ref[None]
    ny, nx = img.shape[-2:]
    fy = np.fft.fftfreq(ny)[:, None]
    fx = np.fft.fftfreq(nx)[None, :]
    f = np.hypot(fy, fx)
    sel = (f >= band[0]) & (f < band[1])
    win = np.outer(np.hanning(ny), np.hanning(nx))

    def power(a):
        a = a - a.mean(axis=(-2, -1), keepdims=True)
        return float(np.mean([np.sum(np.abs(np.fft.fft2(s * win))[sel] ** 2) for s in a]))

    p_ref = power(ref)
    return power(img) / p_ref if p_ref > 0 else math.inf


def select_steps(
    net, lq_crops, hq_crops, *, candidates=DEFAULT_CANDIDATES, psnr_tolerance=1.0, masks=None, contexts=None
):
    """Choose the number of sampling steps on validation crops of the training pair.

    Among ``candidates`` whose mean PSNR is within ``psnr_tolerance`` dB of the best, pick the one whose
    mid-frequency power (:func:`band_power_ratio`) is closest to the HQ's on a log scale.

    ``contexts``: the neighbouring LQ slices of each crop, for a 2.5D network.

    Returns
    -------
    best : int
    table : dict
        ``{N: {"psnr": dB, "ssim": ..., "band_power": ratio}}``.
    """
    table = {}
    for n in candidates:
        ps, ss, bp = [], [], []
        for i, (a, b) in enumerate(zip(lq_crops, hq_crops, strict=True)):
            c = None if contexts is None else contexts[i]
            pred = sample_image(net, a, steps=int(n), context=c)
            m = None if masks is None or masks[i] is None else masks[i]
            d = (pred - b) if m is None else (pred - b)[m]
            mse = float(np.mean(d.astype(np.float64) ** 2))
            ps.append(10 * math.log10(4.0 / mse) if mse > 0 else 99.0)
            ss.append(ssim(b, pred, data_range=2.0) if min(b.shape) >= 7 else float("nan"))
            bp.append(band_power_ratio(pred, b))
        table[int(n)] = {
            "psnr": float(np.mean(ps)),
            "ssim": float(np.nanmean(ss)),
            "band_power": float(np.mean(bp)),
        }
    best_psnr = max(v["psnr"] for v in table.values())
    ok = [n for n, v in table.items() if v["psnr"] >= best_psnr - psnr_tolerance]
    best = min(ok, key=lambda n: (abs(math.log(max(table[n]["band_power"], 1e-12))), -table[n]["psnr"]))
    log.info("auto steps: N = %d (%s)", best, {n: round(v["psnr"], 2) for n, v in table.items()})
    warn_if_largest(best, table)
    return best, table


def warn_if_largest(best, candidates):
    """Warn when the automatic step count is the largest candidate.

    The band power grows with ``N`` on real scans, so the rule tends to run to the end of the candidates,
    beyond the 7–10 steps the nano-tomography paper found best (more steps amplified noise and ringing there).
    """
    largest = max(int(n) for n in candidates)
    if len(candidates) > 1 and int(best) == largest:
        log.warning(
            "--indi-steps auto chose N = %d, the largest candidate (the rule picks the mid-frequency detail "
            "closest to the HQ's, and it grows with N); the nano-tomography paper found 7-10 steps best, "
            "more amplifying noise and ringing: use --indi-steps 8 to follow it",
            largest,
        )


def resolve_steps(steps, meta):
    """The step count to sample with: ``steps`` checked, or the model's default or validated one.

    Parameters
    ----------
    steps : int, str or None
        A positive integer, ``"auto"`` (the ``N`` :func:`select_steps` chose at the end of training) or None
        (the model config's ``inference.indi_steps``).
    meta : dict
        The model's metadata (:func:`matsight.restore.networks.load_model`).

    Returns
    -------
    int
    """
    if steps is None:
        return int(meta["config"].inference.indi_steps)
    if isinstance(steps, str):
        if steps.strip().lower() == "auto":
            auto = meta.get("steps_auto")
            if not auto:
                raise InputError(
                    "this model has no validated step count (trained without validation slices); "
                    "give --indi-steps N"
                )
            warn_if_largest(auto["best"], auto.get("table") or [auto["best"]])
            return int(auto["best"])
        try:
            steps = int(steps)
        except ValueError:
            raise InputError(f"steps must be a positive integer or 'auto', got {steps!r}") from None
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise InputError(f"steps must be a positive integer or 'auto', got {steps!r}")
    return int(steps)

"""The sampler's step count ``N``: chosen on validation crops of the training pair, resolved for enhancement.

:func:`select_steps` runs at the end of training; ``indi_steps="auto"`` in enhancement then uses its choice:
the ``N`` with the best mean PSNR on the validation slices (the fewest steps among those within
``auto_psnr_tolerance`` dB of it), the search widened beyond the candidates while the best lies on their
edge. It optimises fidelity: few steps approach the MMSE estimate, and more steps trade PSNR for sharpness
(the paper chose 7–10 by eye; give ``--indi-steps 8`` for that). Its own module because training and
enhancement both need it.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .._errors import InputError
from ..metrics.image_quality import ssim
from .indi import sample_image

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CANDIDATES",
    "MAX_AUTO_STEPS",
    "at_edge",
    "band_power_ratio",
    "resolve_steps",
    "select_steps",
    "warn_if_largest",
]

DEFAULT_CANDIDATES = (1, 2, 4, 6, 8, 10, 12, 16)
MAX_AUTO_STEPS = 64  # the search doubles N beyond the candidates while the PSNR rises, up to here


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


def _score(net, lq_crops, hq_crops, n, masks, contexts, data_range):
    """Mean PSNR (dB, inside the masks), SSIM and band power of ``N = n`` on the crops."""
    ps, ss, bp = [], [], []
    for i, (a, b) in enumerate(zip(lq_crops, hq_crops, strict=True)):
        c = None if contexts is None else contexts[i]
        pred = sample_image(net, a, steps=int(n), context=c)
        m = None if masks is None or masks[i] is None else masks[i]
        d = (pred - b) if m is None else (pred - b)[m]
        mse = float(np.mean(d.astype(np.float64) ** 2))
        ps.append(10 * math.log10(data_range**2 / mse) if mse > 0 else 99.0)
        ss.append(ssim(b, pred, data_range=data_range) if min(b.shape) >= 7 else float("nan"))
        bp.append(band_power_ratio(pred, b))
    return {"psnr": float(np.mean(ps)), "ssim": float(np.nanmean(ss)), "band_power": float(np.mean(bp))}


def _pick(table, tolerance):
    """The fewest steps among those within ``tolerance`` dB of the best PSNR (differences below it are
    noise, and fewer steps cost less and stay closer to the MMSE estimate).
    """
    best_psnr = max(v["psnr"] for v in table.values())
    return min(n for n, v in table.items() if v["psnr"] >= best_psnr - tolerance)


def select_steps(
    net,
    lq_crops,
    hq_crops,
    *,
    candidates=DEFAULT_CANDIDATES,
    psnr_tolerance=0.05,
    masks=None,
    contexts=None,
    max_steps=MAX_AUTO_STEPS,
    data_range=2.0,
):
    """Choose the number of sampling steps on validation crops of the training pair.

    What it optimises: the mean validation PSNR (inside the masks). Candidates within ``psnr_tolerance`` dB
    of the best count as tied, and the fewest steps among them wins. It never settles on the edge of its
    range unannounced: while the winner is the largest ``N`` tried, ``N`` is doubled (up to ``max_steps``)
    until the PSNR stops rising; while it is the smallest and above 1, ``N`` is halved. A winner still on
    the edge (the cap ``max_steps``, or ``candidates`` given with a single value) is logged as a warning.
    SSIM and the mid-frequency band power (:func:`band_power_ratio`) are recorded for information.

    ``contexts``: the neighbouring LQ slices of each crop, for a 2.5D network; ``data_range``: of the PSNR
    (the normalised width of the HQ's percentile range).

    Returns
    -------
    best : int
    table : dict
        ``{N: {"psnr": dB, "ssim": ..., "band_power": ratio}}`` of every ``N`` tried, extensions included.
    """
    table = {int(n): _score(net, lq_crops, hq_crops, n, masks, contexts, data_range) for n in candidates}
    while True:
        best = _pick(table, psnr_tolerance)
        lo, hi = min(table), max(table)
        if best == hi and hi < max_steps and len(table) > 1:
            grow = min(2 * hi, int(max_steps))
        elif best == lo and lo > 1 and len(table) > 1:
            grow = max(1, lo // 2)
        else:
            break
        table[grow] = _score(net, lq_crops, hq_crops, grow, masks, contexts, data_range)
    table = dict(sorted(table.items()))
    log.info(
        "auto steps: N = %d (validation PSNR %s)", best, {n: round(v["psnr"], 2) for n, v in table.items()}
    )
    warn_if_largest(best, table)
    return best, table


def at_edge(best, candidates):
    """Whether ``best`` is the largest of several candidates (the PSNR may still rise beyond it)."""
    ns = [int(n) for n in candidates]
    return len(ns) > 1 and int(best) == max(ns)


def warn_if_largest(best, candidates):
    """Warn when the automatic step count is the largest candidate tried: the validation PSNR may still rise
    beyond it, so the choice is the range's edge, not an optimum.
    """
    if at_edge(best, candidates):
        log.warning(
            "--indi-steps auto chose N = %d, the largest step count tried: the edge of the search, not a "
            "validated optimum (models trained before #38 chose by mid-frequency detail, which grows with N; "
            "retrain for the PSNR choice); give --indi-steps N to choose",
            int(best),
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

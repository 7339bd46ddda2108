"""Classical denoisers as baselines for InDI, tuned on the training slices of the pair.

The paper compares InDI with the bicubic LQ and a network trained for direct regression; a fair table also
needs what a careful user would do without a network: denoise the (grey-mapped) bicubic LQ. Two filters,
each with its parameters chosen by a small grid search maximising PSNR against the HQ on crops of the
training slices (the slices the network learns on, never the validation or test ones):

- non-local means (:func:`skimage.restoration.denoise_nl_means`, fast mode): the filter strength ``h`` as a
  multiple of the RMS difference between the LQ and the HQ on the crops, and the patch size;
- a Gaussian filter: its σ in pixels, no filtering (σ = 0) among the candidates.

The strength is scaled by the LQ−HQ residual, not by a white-noise estimate of the LQ's σ (Immerkær's,
:func:`noise_sigma`): the LQ is upscaled bicubically, which correlates its noise between neighbouring pixels,
and the white-noise estimate then comes out some 30× too small (0.006 against a residual of 0.19 on a woven
fabric's CT), so every ``h`` tried was too weak to filter anything. Wherever the best value is the largest
(or smallest) of its grid, the search goes on past that edge, doubling (halving) it until the PSNR falls.

:func:`tune_classical` runs at the end of training (``train``) and its parameters are stored in the model
(``meta["classical"]``), so ``evaluate`` needs no pair folder: it applies them with :func:`apply_classical`
to the bicubic baseline, in the normalised units they were tuned in. Models trained before have no such
entry and get no classical rows (retrain).
"""

from __future__ import annotations

import time

import numpy as np
from scipy import ndimage
from skimage.restoration import denoise_nl_means

__all__ = ["NLM_H_FACTORS", "NLM_PATCH_SIZES", "GAUSSIAN_SIGMAS", "tune_classical", "apply_classical"]

NLM_H_FACTORS = (0.4, 0.6, 0.8, 1.0, 1.3, 1.7)
"""Candidates for NLM's ``h``, as multiples of the RMS LQ − HQ difference on the tuning crops."""
NLM_PATCH_SIZES = (3, 5, 7)
NLM_PATCH_DISTANCE = 5
GAUSSIAN_SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
"""Candidates for the Gaussian filter's σ (pixels of the HQ grid); σ = 0, no filtering, is tried too."""
MAX_EXTENSIONS = 6  # doublings/halvings past a grid's edge


def _psnr(pred, ref, mask, data_range):
    sel = np.ones(ref.shape, bool) if mask is None or not np.any(mask) else np.asarray(mask, bool)
    mse = float(np.mean((pred[sel].astype(np.float64) - ref[sel]) ** 2))
    return 10 * np.log10(data_range**2 / max(mse, 1e-12))


def _score(filt, lq, hq, masks, data_range):
    return float(np.mean([_psnr(filt(a), b, m, data_range) for a, b, m in zip(lq, hq, masks, strict=True)]))


def noise_sigma(image):
    """Gaussian noise σ of a 2D image (Immerkær 1996: the mean absolute response of a Laplacian difference
    mask, which cancels smooth structure).
    """
    m = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    r = ndimage.convolve(np.asarray(image, np.float64), m, mode="reflect")[1:-1, 1:-1]
    return float(np.sqrt(np.pi / 2) * np.abs(r).mean() / 6)


def _nlm(image, h, patch_size, sigma):
    return denoise_nl_means(
        np.asarray(image, np.float64),
        h=h,
        sigma=sigma,
        patch_size=int(patch_size),
        patch_distance=NLM_PATCH_DISTANCE,
        fast_mode=True,
    ).astype(np.float32)


def _search(score, grid, *, extend_down=True):
    """``(best score, best value, values tried)`` over ``grid``, extended past its edge while the best is on
    it: doubled above the largest, halved below the smallest (``extend_down``; a zero candidate is a floor).
    """
    tried = {float(v): score(float(v)) for v in grid}
    for _ in range(MAX_EXTENSIONS):
        best, values = max(tried, key=tried.get), sorted(tried)
        if best == values[-1]:
            new = 2 * best
        elif best == values[0] and best > 0 and extend_down:
            new = best / 2
        else:
            break
        tried[new] = score(new)
    best = max(tried, key=tried.get)
    return tried[best], best, sorted(tried)


def _residual_rms(lq, hq, masks):
    sel = [
        np.ones(b.shape, bool) if m is None else np.asarray(m, bool) for b, m in zip(hq, masks, strict=True)
    ]
    d = np.concatenate([(a - b)[m].astype(np.float64) for a, b, m in zip(lq, hq, sel, strict=True)])
    return float(np.sqrt(np.mean(d**2)))


def tune_classical(lq, hq, masks=None, *, data_range=2.0):
    """Search NLM and Gaussian parameters maximising the mean PSNR against ``hq``.

    Parameters
    ----------
    lq, hq : sequence of 2D arrays
        Crops of the training slices: the (grey-mapped) bicubic LQ and the HQ, in the same normalised units.
    masks : sequence of bool arrays or None, optional
        Where to score each crop (the field of view).
    data_range : float
        Of the PSNR.

    Returns
    -------
    dict
        ``{"nlm": {"h", "h_factor", "residual_rms", "sigma", "patch_size", "patch_distance", "psnr",
        "tried"}, "gaussian": {"sigma", "psnr", "tried"}, "psnr_input", "crops", "data_range", "seconds"}``:
        ``h = h_factor × residual_rms`` (the RMS LQ − HQ difference), ``sigma`` the white-noise estimate
        NLM is given, ``tried`` the values searched, ``seconds`` the wall-clock time of the whole search.
    """
    t0 = time.perf_counter()
    lq = [np.asarray(a, np.float32) for a in lq]
    hq = [np.asarray(b, np.float32) for b in hq]
    masks = [None] * len(lq) if masks is None else list(masks)
    noise = max(float(np.mean([noise_sigma(a) for a in lq])), 1e-6)
    scale = max(_residual_rms(lq, hq, masks), 1e-6)
    nlm = []
    for p in NLM_PATCH_SIZES:
        score = lambda k, p=p: _score(lambda a: _nlm(a, k * scale, p, noise), lq, hq, masks, data_range)  # noqa: E731
        nlm.append((*_search(score, NLM_H_FACTORS), p))
    psnr, k, tried, p = max(nlm, key=lambda r: r[0])
    g_score = lambda s: _score(lambda a: ndimage.gaussian_filter(a, s), lq, hq, masks, data_range)  # noqa: E731
    g_psnr, g_sigma, g_tried = _search(g_score, (0.0, *GAUSSIAN_SIGMAS))
    return {
        "nlm": {
            "h": k * scale,
            "h_factor": k,
            "residual_rms": scale,
            "sigma": noise,
            "patch_size": p,
            "patch_distance": NLM_PATCH_DISTANCE,
            "psnr": psnr,
            "tried": tried,
        },
        "gaussian": {"sigma": g_sigma, "psnr": g_psnr, "tried": g_tried},
        "psnr_input": _score(lambda a: a, lq, hq, masks, data_range),
        "crops": len(lq),
        "data_range": float(data_range),
        "seconds": time.perf_counter() - t0,
    }


def apply_classical(image, method, params):
    """Filter a slice, or each slice along axis 0 of a volume, with tuned ``params`` (:func:`tune_classical`).

    ``method``: ``"nlm"`` or ``"gaussian"``. The image must be in the units the parameters were tuned in.
    """
    image = np.asarray(image, np.float32)
    if method == "nlm":
        filt = lambda a: _nlm(a, params["h"], params["patch_size"], params["sigma"])  # noqa: E731
    elif method == "gaussian":
        filt = lambda a: ndimage.gaussian_filter(a, float(params["sigma"]))  # noqa: E731
    else:
        raise ValueError(f"unknown classical method {method!r}; nlm or gaussian")
    if image.ndim == 2:
        return filt(image)
    return np.stack([filt(s) for s in image])

"""The tuned classical baselines on a bicubic-upscaled LQ: its noise is correlated between neighbouring
pixels, so a white-noise σ estimate is far too small and NLM strengths scaled by it do nothing. The tuning
must find the strength that helps, never stop silently on the edge of its grid."""

import numpy as np
from scipy import ndimage

from matsight.restore.classical import GAUSSIAN_SIGMAS, NLM_H_FACTORS, tune_classical
from matsight.restore.register import upscale


def _upscaled_noisy(rng, n=3, size=96, noise=0.25):
    hq, lq = [], []
    for _ in range(n):
        h = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 4)
        h = np.tanh(3 * h / h.std()).astype(np.float32)  # flat phases with sharp-ish edges, in [-1, 1]
        coarse = h.reshape(size // 2, 2, size // 2, 2).mean((1, 3)) + rng.normal(0, noise, (size // 2,) * 2)
        hq.append(h)
        lq.append(upscale(coarse.astype(np.float32), 2))
    return lq, hq


def test_nlm_tuned_on_an_upscaled_lq_denoises_it(rng):
    lq, hq = _upscaled_noisy(rng)
    tuned = tune_classical(lq, hq)
    nlm, gauss = tuned["nlm"], tuned["gaussian"]
    # NLM is at least as good as a Gaussian on piecewise-flat phases, and clearly better than nothing
    assert nlm["psnr"] > tuned["psnr_input"] + 2.0
    assert nlm["psnr"] > gauss["psnr"] - 0.3
    # the chosen strength is inside the range tried (searched past the grid's edge when the best is on it)
    assert min(nlm["tried"]) < nlm["h_factor"] < max(nlm["tried"])
    assert min(gauss["tried"]) < gauss["sigma"] < max(gauss["tried"]) or gauss["sigma"] == min(gauss["tried"])


def test_the_grids_are_searched_past_their_edge(rng):
    # nearly clean input: the best Gaussian is below the grid's smallest σ, the identity being among the tried
    lq, hq = _upscaled_noisy(rng, noise=0.002)
    tuned = tune_classical(lq, hq)
    assert min(tuned["gaussian"]["tried"]) < min(GAUSSIAN_SIGMAS)
    assert tuned["gaussian"]["psnr"] >= tuned["psnr_input"] - 1e-6  # never worse than leaving it alone
    assert tuned["nlm"]["psnr"] >= tuned["psnr_input"] - 0.05
    # very noisy input: NLM's h goes beyond the largest grid factor when that is still the best
    lq, hq = _upscaled_noisy(rng, noise=0.8)
    tuned = tune_classical(lq, hq)
    assert max(tuned["nlm"]["tried"]) > max(NLM_H_FACTORS) or tuned["nlm"]["h_factor"] < max(NLM_H_FACTORS)

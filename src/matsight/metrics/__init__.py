"""Metrics the papers validate with: plain functions over numpy arrays.

- :mod:`~matsight.metrics.microstructure` — volume fraction, surface areas, TPB, correlations, chords,
  FFT profiles.
- :mod:`~matsight.metrics.tortuosity` — tortuosity factor and transport efficiency by a steady diffusion
  solve.
- :mod:`~matsight.metrics.image_quality` — PSNR, SSIM, SIFT congruent keypoints, CNR, SNR.
- :mod:`~matsight.metrics.resolution` — spatial resolution: FWHM of edges and thin lines.
- :mod:`~matsight.metrics.segmentation` — Dice, IoU, pixel accuracy, precision, recall, Hausdorff distance.
"""

import importlib

_SUBMODULES = ("microstructure", "tortuosity", "image_quality", "resolution", "segmentation")
__all__ = list(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

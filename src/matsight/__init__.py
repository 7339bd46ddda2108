"""matsight: images materials scientists can get → the images and numbers they need.

Subpackages (imported lazily, so ``import matsight`` stays light and never imports torch):

- :mod:`matsight.io` — volumes (tif, npy, zarr) and microscope files (dm3/dm4/mrc/ser/emd) with calibration.
- :mod:`matsight.data` — seeded synthetic microstructures, grayscale images and degradations.
- :mod:`matsight.metrics` — microstructure, image-quality and segmentation metrics.
- :mod:`matsight.fuse` — SuperRes 2D/3D fusion GAN.
- :mod:`matsight.restore` — InDI restoration of tomography.
- :mod:`matsight.tem` — HRTEM phase identification from FFT spots.
- :mod:`matsight.segment` — grayscale → phase labels from sparse strokes.
- :mod:`matsight.report` — figures and HTML reports.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"io", "data", "metrics", "fuse", "restore", "tem", "segment", "report", "nn"}

__all__ = sorted(_SUBMODULES) + ["InputError", "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "InputError":
        from ._errors import InputError

        return InputError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__

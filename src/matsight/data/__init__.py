"""Method-free seeded synthetic data: microstructures, grayscale images, the papers' degradations to low-res.

Modules are imported lazily: ``from matsight.data import microstructures``.
"""

import importlib

_SUBMODULES = ("microstructures", "degrade", "grayscale", "checks")
__all__ = list(_SUBMODULES)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

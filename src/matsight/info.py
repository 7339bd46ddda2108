"""Environment report for bug reports and ``matsight info``."""

import importlib.metadata
import importlib.util
import os
import platform

OPTIONAL = {
    "rosettasciio": "tem",
    "mrcfile": "tem",
    "gemmi": "tem",
    "dask": "scale",
    "distributed": "scale",
    "zarr": "scale",
    "taufactor": "dev",
    "porespy": "dev",
    "abtem": "dev",
}


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def system_info():
    """Return a dict of versions, the torch device and the optional packages present.

    Returns
    -------
    dict of str to str
    """
    from . import __version__

    out = {"matsight": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for dist in ("numpy", "scipy", "scikit-image", "torch"):
        out[dist] = _version(dist) or "missing"
    if importlib.util.find_spec("torch") is not None:
        import torch

        if torch.cuda.is_available():
            out["torch device"] = f"cuda ({torch.cuda.get_device_name(0)})"
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            out["torch device"] = "mps"
        else:
            out["torch device"] = "cpu"
        from .nn.device import set_threads

        source = "MATSIGHT_THREADS / --threads" if os.environ.get("MATSIGHT_THREADS") else "free cores now"
        out["torch threads"] = f"{set_threads()} ({source})"
    for dist, extra in OPTIONAL.items():
        v = _version(dist)
        out[dist] = v if v else f"not installed (pip install 'matsight[{extra}]')"
    return out

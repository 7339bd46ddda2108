"""Environment report for bug reports and ``matsight info``."""

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil

# the extra that brings each optional package, read from the installed metadata so it follows pyproject.toml;
# specific extras first, so a package shows the smallest extra that installs it
_EXTRA_ORDER = ("tem", "scale", "gui", "napari", "docs", "dev")


def optional_packages():
    """``{distribution: extra}`` of every optional dependency of matsight."""
    found = {}
    try:
        requires = importlib.metadata.requires("matsight") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    for req in requires:
        spec, _, marker = req.partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([\w-]+)['\"]", marker)
        if not extra or extra.group(1) not in _EXTRA_ORDER:
            continue
        name = re.match(r"[A-Za-z0-9_.-]+", spec.strip()).group(0)
        if name == "matsight":
            continue
        rank = _EXTRA_ORDER.index(extra.group(1))
        if name not in found or rank < _EXTRA_ORDER.index(found[name]):
            found[name] = extra.group(1)
    return dict(sorted(found.items(), key=lambda kv: (_EXTRA_ORDER.index(kv[1]), kv[0].lower())))


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

        explicit = os.environ.get("MATSIGHT_THREADS", "auto").strip().lower() not in ("", "auto")
        source = "MATSIGHT_THREADS / --threads" if explicit else "free cores now"
        out["torch threads"] = f"{set_threads()} ({source})"
    for dist, extra in optional_packages().items():
        v = _version(dist)
        out[dist] = f"{v} ({extra})" if v else f"not installed (pip install 'matsight[{extra}]')"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    out["chromium"] = browser or "not found (GUI browser tests skip; apt-get install chromium)"
    return out

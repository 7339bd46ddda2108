"""Device selection and seeding for every torch workload."""

import logging
import os
import random

import numpy as np
import torch

from .._errors import InputError

log = logging.getLogger(__name__)


def resolve_device(device="auto"):
    """Return a :class:`torch.device` for ``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"``.

    ``"auto"`` picks CUDA, then MPS, then CPU. Asking for an absent accelerator is a user error.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device).lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("device 'mps' requested but MPS is not available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown device {device!r}; use auto, cpu, cuda or mps") from exc


def seed_everything(seed):
    """Seed python, numpy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - legacy global state used by some third-party code
    torch.manual_seed(seed)


def set_threads(n=None):
    """Use ``n`` intra-op threads (default: all cores the process may use, or MATSIGHT_THREADS)."""
    if n is None:
        env = os.environ.get("MATSIGHT_THREADS")
        if env:
            n = int(env)
        else:
            n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, int(n)))
    return torch.get_num_threads()

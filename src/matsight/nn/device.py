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
    ensure_threads()
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


def default_threads():
    """Intra-op threads for a machine as busy as this one is now: its free cores, at least one.

    The cores the process may use, less the run queue of the last minute (``os.getloadavg``). torch's own
    default takes every core; when other processes hold some, its threads wait on each other at every
    operation: on 2 cores beside one busy process, a conv-net training step ran 3.4× slower with 2 threads
    than with 1, while on the idle machine 2 threads were 1.65× faster (``benchmarks/threads.py``).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows has no load average
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))


def parse_threads(value):
    """``"auto"`` (or None/empty) → None; a positive integer (as text or int) → int; else an InputError."""
    if value is None or str(value).strip().lower() in ("", "auto"):
        return None
    try:
        n = int(str(value).strip())
    except ValueError:
        n = 0
    if n < 1:
        raise InputError(f"threads must be a positive whole number or auto, got {value!r}; e.g. --threads 2")
    return n


_applied = False


def set_threads(n=None):
    """Use ``n`` intra-op threads; None: ``MATSIGHT_THREADS`` if set, else :func:`default_threads`.

    Returns the number of threads torch now uses.
    """
    global _applied
    if n is None:
        n = parse_threads(os.environ.get("MATSIGHT_THREADS"))
    if n is None:
        n = default_threads()
    torch.set_num_threads(max(1, int(n)))
    _applied = True
    log.debug("torch uses %d threads", torch.get_num_threads())
    return torch.get_num_threads()


def ensure_threads():
    """Apply :func:`set_threads`'s choice once per process where ``MATSIGHT_THREADS`` asks for it.

    torch workloads call it via :func:`resolve_device`. The CLI sets the variable (``auto`` by default), and
    its worker processes inherit it; a library user who did not set it keeps torch's own thread setting.
    """
    if not _applied and os.environ.get("MATSIGHT_THREADS"):
        set_threads()

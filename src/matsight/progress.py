"""One progress protocol for every long-running library function: training, prediction, evaluation.

A *callback* is any callable that takes one :class:`Progress`. Library loops call it as they go (the
CLI draws a progress bar from it, the GUI forwards it to the page, a notebook may log it). To stop a run
early, the callback raises :class:`KeyboardInterrupt`: training loops save a checkpoint and re-raise, so
the run resumes where it stopped.

Examples
--------
>>> seen = []
>>> report(seen.append, step=3, total=10, metrics={"loss": 0.5})
>>> seen[0].fraction
0.3
>>> report(None, step=1)  # no callback: nothing happens
"""

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["Progress", "Callback", "report", "throttled"]


@dataclass(frozen=True)
class Progress:
    """Where a run stands.

    Attributes
    ----------
    step : int
        Units of work done: optimiser steps, frames, tiles, slices.
    total : int or None
        Units planned; None when only a time budget bounds the run.
    metrics : mapping of str to float
        Latest figures (``loss``, validation PSNR, a GAN's score, ...), by name.
    message : str
        What is being done, for people ("training", "frame 3 of 40").
    seconds : float
        Wall-clock seconds of the run so far (a resumed training counts its earlier sessions).
    budget : float or None
        The run's wall-clock budget in seconds, if it has one.
    """

    step: int
    total: int | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    message: str = ""
    seconds: float = 0.0
    budget: float | None = None

    @property
    def fraction(self):
        """Share of the run done in [0, 1] (the larger of steps and time when both bound it), or None."""
        parts = []
        if self.total:
            parts.append(self.step / self.total)
        if self.budget:
            parts.append(self.seconds / self.budget)
        return min(1.0, max(parts)) if parts else None


Callback = Callable[[Progress], None]


def report(callback, **fields):
    """Call ``callback`` with a :class:`Progress` made of ``fields``; nothing when ``callback`` is None."""
    if callback is not None:
        callback(Progress(**fields))


def throttled(callback, *, interval=0.5):
    """A callback that forwards to ``callback`` at most every ``interval`` seconds.

    The first call, and any call that completes the run (``step == total``), always pass: a bar never
    stops short of its end.
    """
    if callback is None:
        return None
    last = -math.inf

    def forward(p):
        nonlocal last
        now = time.monotonic()
        if now - last >= interval or (p.total is not None and p.step >= p.total):
            last = now
            callback(p)

    return forward

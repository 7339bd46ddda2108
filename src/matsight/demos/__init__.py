"""``matsight demo``: every method, on data matsight generates itself, into one HTML report.

Each part is a module of this package, ``matsight.demos.<part>`` (one per method, plus ``metrics``), whose
``run(out_dir, *, seed)`` writes its own sub-report into ``out_dir`` and returns a short summary dict shown on
the front page. The demos sit above the methods: no method imports them.
"""

import importlib
import logging
import time

from .._atomic import make_folder
from .._errors import InputError
from ..report import Report

log = logging.getLogger(__name__)

PARTS = ("metrics", "fuse", "restore", "tem", "segment")


def available_parts():
    """Parts whose demo module exists in this installation."""
    found = []
    for part in PARTS:
        try:
            importlib.import_module(f"{__name__}.{part}")
        except ModuleNotFoundError as exc:
            if exc.name not in (f"{__name__}.{part}", f"matsight.{part}"):
                raise
            continue
        found.append(part)
    return found


def run_demo(out_dir="matsight-demo", *, parts="all", seed=0):
    """Run the demo parts and write ``out_dir/index.html``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created). Each part writes into ``out_dir/<part>/``.
    parts : str or sequence of str
        ``"all"`` or a comma-separated list / sequence of part names.
    seed : int
        Seed for every generated dataset and training run.

    Returns
    -------
    Path
        The front page ``index.html``.
    """
    have = available_parts()
    if parts == "all":
        chosen = have
    else:
        chosen = [p.strip() for p in (parts.split(",") if isinstance(parts, str) else parts) if p.strip()]
        unknown = [p for p in chosen if p not in have]
        if unknown:
            raise InputError(f"unknown demo part(s) {', '.join(unknown)}; choose from {', '.join(have)}")
    out_dir = make_folder(out_dir)
    front = Report(out_dir, "matsight demo")
    front.text(
        "Every result below was computed on data matsight generated itself (seed "
        f"{seed}); rerun with `matsight demo --seed N` for another realisation."
    )
    for part in chosen:
        module = importlib.import_module(f"{__name__}.{part}")
        t0 = time.perf_counter()
        print(f"[demo] {part} ...", flush=True)
        summary = module.run(out_dir / part, seed=seed)
        dt = time.perf_counter() - t0
        print(f"[demo] {part} done in {dt:.0f} s", flush=True)
        front.heading(module.TITLE)
        front.table({k: {"value": v} for k, v in summary.items()}, caption=f"{part}: {dt:.1f} s")
        front.link(f"{part}/index.html", f"full {part} report")
    return front.write()

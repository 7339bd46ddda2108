"""Demo part ``fuse``: SuperRes on a generated three-phase electrode, from LR simulation to report.

A 3-phase ground truth (particles + binder at their contacts) is degraded the way the paper simulates an XCT
scan (binder merged into pore, blur, ×4 downsample, threshold); a generator is trained with the CPU preset
on that LR volume and ONE high-res 2D slice of the truth for a short run, generates the whole super-res
volume (binder in-painted from the 2D slice), and the fuse evaluation compares it with the truth, the HR slice
and the LR input; the report marks each target met or not (:data:`matsight.fuse.evaluate_report.TARGETS`). The
demo's 400 iterations take 110 s of one core (0.27 s each) and hold 96% of the LR voxels: a rough result;
``benchmarks/fuse_fidelity.py`` trains for 30 minutes, and ``benchmarks/README.md`` quotes what that reaches
(and which targets it still misses).
"""

from __future__ import annotations

import logging
import time

from .. import fuse
from .._atomic import make_folder
from ..data.degrade import degrade
from ..data.microstructures import particle_electrode
from ..fuse.evaluate_report import TARGETS_TEXT, target_rows
from ..io import write_volume

log = logging.getLogger(__name__)

TITLE = "fuse: super-resolution of a simulated low-res scan from one high-res slice"

PHASE_NAMES = {0: "pore", 1: "active", 2: "binder"}

ITERATIONS = 400
"""Training iterations of the demo: a fixed count, so every machine reaches one result (a slow one later)."""


def run(out_dir, *, seed=0, size=96, scale=4, iterations=ITERATIONS, callback=None) -> dict:
    """Degrade a generated electrode, train SuperRes briefly, generate, evaluate into ``out_dir/index.html``.

    Parameters
    ----------
    out_dir : str or Path
        Folder of the report (created); the run folder is ``out_dir/run``.
    seed : int
        Seed of the structure, the training and the noise field.
    size : int, default 96
        Edge of the generated ground truth (voxels).
    scale : float, default 4
        Scale factor of the simulated LR scan.
    iterations : int, default :data:`ITERATIONS`
        Training iterations, and nothing else ends the training: a busy machine takes longer for the same
        result (a wall-clock budget gave one 29 iterations and noise).
    callback : callable, optional
        A :data:`matsight.progress.Callback` for the training.

    Returns
    -------
    dict
        Headline numbers and the report path.
    """
    t0 = time.perf_counter()
    out_dir = make_folder(out_dir)
    truth = particle_electrode((size,) * 3, n_phases=3, radius=6.0, seed=seed)
    lr, _ = degrade(truth, scale, merge=[(0, 2)])
    hr = truth[size // 2]
    write_volume(out_dir / "truth.tif", truth)
    write_volume(out_dir / "lr.tif", lr)
    write_volume(out_dir / "hr_slice.tif", hr)
    res, gen, ev = _train_predict_evaluate(out_dir, truth, lr, hr, scale, seed, iterations, callback)
    vt = ev["versus_truth"]
    marks = target_rows(ev, PHASE_NAMES)
    out = {
        "truth / LR / SR": f"{size}³ / {lr.shape[0]}³ / {gen.labels.shape[0]}³ (scale {scale:g})",
        "training": f"{res.iterations} iterations in {res.seconds:.0f} s (CPU preset)",
        "generation": f"{gen.voxels_per_second / 1e6:.2f} M voxels/s",
        "LR consistency": f"{100 * ev['lr_consistency']['consistency']:.1f}%",
        "max |ΔVF| vs truth": round(max(vt["abs_delta_vf"].values()), 4),
        "TPB SR vs truth": "n/a" if vt["rel_delta_tpb"] is None else f"{100 * vt['rel_delta_tpb']:+.0f}%",
        **_target_summary(marks),
        "training curves": str(out_dir / "run" / "training_curves.png"),
        "report": str(out_dir / "index.html"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log.info("fuse demo: %s", out)
    return out


def _train_predict_evaluate(out_dir, truth, lr, hr, scale, seed, iterations, callback):
    # a short training: the generator changes too fast for a weight average to help, and fewer evaluation
    # crops leave more of the time to training
    cfg = fuse.make_config(
        "cpu", scale=scale, seed=seed, compare_phases=[1], metrics_every=20, ema=0.0, steps=iterations
    )
    res = fuse.train((lr, hr), out_dir / "run", config=cfg, callback=callback, resume=False, n_eval=8)
    gen = fuse.predict(out_dir / "run", lr, seed=seed, out=out_dir / "sr.tif")
    ev = fuse.evaluate(
        gen.labels,
        hr=hr,
        lr=lr,
        truth=truth,
        scale=scale,
        compare_phases=[1],
        out_dir=out_dir,
        n_subvolumes=32,
        subvolume_size=32,
        n_transport=2,
        seed=seed,
        phase_names=PHASE_NAMES,
    )
    return res, gen, ev


def _target_summary(marks):
    """The front page's view of the report's target table: how many are met and which are not."""
    judged = {k: r for k, r in marks.items() if r["met"] != "n/a"}
    missed = [k for k, r in judged.items() if r["met"] == "no"]
    met = f"{len(judged) - len(missed)} of {len(judged)} ({TARGETS_TEXT})"
    return {"targets met": met, "targets not met": ", ".join(missed) or "none"}

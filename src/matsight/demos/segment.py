"""Demo: segment a generated grayscale electrode volume from a few strokes on one slice.

A 3-phase particle electrode (pore, active material, binder) is generated, turned into a blurred, noisy
grayscale volume, and a dozen short strokes are drawn on its middle slice. A random forest trained on those
strokes segments the whole volume slice by slice; the result is scored against the generating labels (Dice,
IoU, volume fractions) next to a multi-Otsu threshold baseline.
"""

import logging
import time

import numpy as np

from ..report import Report
from ..segment import evaluate, predict, train
from ..segment.synthetic import draw_strokes, grayscale_from_labels

log = logging.getLogger(__name__)

TITLE = "segment — phases from a few strokes (random forest on multi-scale features)"

PHASES = {0: "pore", 1: "active", 2: "binder"}


def _stroke_overlay(strokes):
    """RGBA of the strokes (label k + 1 = phase k) in the phase colours, drawn 3 px wide with a white rim so
    that 1 px strokes, and black (pore) ones on dark pixels, stay visible in print.
    """
    from matplotlib.colors import to_rgb
    from scipy import ndimage

    from ..report.style import phase_colour

    out = np.zeros(strokes.shape + (4,))
    drawn = strokes > 0
    out[ndimage.binary_dilation(drawn, iterations=2)] = (1.0, 1.0, 1.0, 1.0)
    for k in np.unique(strokes[drawn]):
        out[ndimage.binary_dilation(strokes == k)] = (*to_rgb(phase_colour(int(k) - 1)), 1.0)
    return out


def _figure(image, strokes, pred, truth, z):
    """Input, strokes, result and errors on slice ``z``: phase colours and legend shared with every report,
    a scale bar (voxels: the generated volume has no calibration) on each panel.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..report.style import phase_legend, show_image, show_labels

    fig = Figure(figsize=(14, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots(1, 4)
    n_px = int((strokes[z] > 0).sum())
    show_image(ax[0], image[z], unit="px", title=f"grayscale, slice z = {z}")
    show_image(ax[1], image[z], unit="px", title=f"strokes ({n_px} px)")
    ax[1].imshow(_stroke_overlay(strokes[z]), interpolation="nearest")
    show_labels(ax[2], pred[z], n_labels=len(PHASES), legend=False, title="forest")
    wrong = pred[z] != truth[z]
    title = f"errors vs truth ({wrong.mean():.1%} of pixels)"
    show_image(ax[3], wrong, cmap="Reds", vmin=0, vmax=1, title=title)
    phase_legend(fig, range(len(PHASES)), names=PHASES)
    return fig


def run(out_dir, *, seed=0, shape=(32, 128, 128)):
    """Generate, train, segment, score; write ``out_dir/index.html`` and return a summary dict."""
    from skimage.filters import threshold_multiotsu

    from ..data.microstructures import particle_electrode

    t0 = time.perf_counter()
    truth = particle_electrode(shape, radius=8, binder_fraction=0.12, seed=seed)
    image = grayscale_from_labels(truth, levels=(0.15, 0.8, 0.45), blur=1.0, noise=0.12, seed=seed)
    z = shape[0] // 2
    strokes = draw_strokes(truth, strokes_per_phase=5, length=20, margin=1, slices=[z], seed=seed)

    config = {
        "model": {"method": "forest", "dims": 2, "forest": {"n_estimators": 60}},
        "training": {"seed": seed},
    }
    model = train((image, strokes), None, config=config)
    pred = predict(model, image)
    cleaned = predict(model, image, clean=10)
    otsu = np.digitize(image, threshold_multiotsu(image, classes=3))
    otsu = np.array([0, 2, 1], dtype=np.uint8)[otsu]  # dark → pore, middle → binder, bright → active
    phases = [0, 1, 2]
    s_forest = evaluate(pred, truth, phases=phases)
    s_clean = evaluate(cleaned, truth, phases=phases)
    s_otsu = evaluate(otsu, truth, phases=phases)
    dt = time.perf_counter() - t0

    rep = Report(out_dir, "segment: phases from a few strokes")
    rep.text(
        f"A generated {shape[0]}×{shape[1]}×{shape[2]} three-phase electrode, rendered as grayscale (levels "
        "0.15 / 0.8 / 0.45 for pore / active / binder, Gaussian blur σ = 1 px, noise σ = 0.12), with "
        f"{int((strokes > 0).sum())} labelled pixels drawn as strokes on slice {z} only "
        f"({(strokes > 0).sum() / strokes.size:.4%} of the voxels). A random forest "
        f"({model.config.model.forest.n_estimators} trees, {len(model.feature_names())} 2D features) "
        "trained on them segments every slice."
    )
    rep.figure(
        _figure(image, strokes, pred, truth, z),
        "slice",
        caption=f"Slice {z} of {shape[0]} ({shape[1]}×{shape[2]} px): input, strokes, forest result, errors.",
    )
    rows = {}
    for name, s in (("forest", s_forest), ("forest + clean 10", s_clean), ("multi-Otsu", s_otsu)):
        row = {"pixel accuracy": s["pixel_accuracy"], "mean Dice": s["mean_dice"]}
        for p in phases:
            row[f"Dice {PHASES[p]}"] = s["per_phase"][p]["dice"]
            row[f"IoU {PHASES[p]}"] = s["per_phase"][p]["iou"]
        rows[name] = row
    rep.table(rows, caption="Whole volume vs the generating labels")
    vf = {
        PHASES[p]: {
            "truth": float((truth == p).mean()),
            "forest": float((pred == p).mean()),
            "multi-Otsu": float((otsu == p).mean()),
        }
        for p in phases
    }
    rep.table(vf, caption="Volume fractions")
    hs = model.scores
    if "per_phase" in hs:
        rep.table(
            {PHASES[p]: v for p, v in hs["per_phase"].items()},
            caption=(
                f"Scores on held-out {hs['holdout_unit']} ({hs['n_test']} px; the model was then refit on "
                "all strokes) — what `matsight segment train` reports without ground truth"
            ),
        )
    rep.text(f"Total time {dt:.1f} s (training {hs['seconds']:.1f} s).", note=True)
    rep.write()
    return {
        "labelled voxels": int((strokes > 0).sum()),
        "mean Dice forest": round(s_forest["mean_dice"], 4),
        "mean Dice multi-Otsu": round(s_otsu["mean_dice"], 4),
        "held-out accuracy": round(hs.get("pixel_accuracy", float("nan")), 4),
        "seconds": round(dt, 1),
    }

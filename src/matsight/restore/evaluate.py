"""Side-by-side quality of restored images against an HQ reference (the nano-tomography paper's evaluation).

For every candidate (LQ bicubic, one-step regression, InDI with N steps, ...) on the HQ grid:
PSNR and SSIM (inside the field of view), SIFT keypoints matched with the HQ's (``sift_matched``, the paper's
count) and those of them at the same place (``sift_congruent``, within 3 px), the FWHM edge width over many
automatically found edges (spatial resolution; the paper measured a few edges by hand), and the
contrast-to-noise ratio with one pair of particle/background masks for all (Otsu on the HQ, as the paper's
segmentation), plus intensity profiles across edges (paper Fig. 3B) and an HTML report.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib
import numpy as np
from scipy import ndimage
from skimage.filters import threshold_otsu
from skimage.metrics import structural_similarity

from .._atomic import read_json, require, write_json
from .._errors import InputError
from ..io import read_volume
from ..metrics.image_quality import cnr, sift_congruent_keypoints
from ..metrics.resolution import edge_fwhm, line_fwhm
from ..nn.checkpoint import load_checkpoint
from ..report import Report
from .classical import apply_classical
from .networks import MODEL_FILE
from .predict import _denorm, _norm, baseline_description
from .register import apply_grey_map, fov_mask, upscale

log = logging.getLogger(__name__)

__all__ = ["compare", "profile_line", "profile_figure", "panels_figure", "write_report", "evaluate"]


def _check(hq, images, mask):
    hq = np.asarray(hq, dtype=np.float32)
    if hq.ndim not in (2, 3):
        raise InputError(f"the HQ reference must be a 2D slice or 3D volume, got shape {hq.shape}")
    if not np.isfinite(hq).all():
        raise InputError("the HQ reference contains NaN/inf values; fill or crop them first")
    out = {}
    for name, im in images.items():
        im = np.asarray(im, dtype=np.float32)
        if im.shape != hq.shape:
            raise InputError(
                f"{name} has shape {im.shape} but the HQ reference is {hq.shape}; "
                "both must be on the HQ grid "
                "(register them, or crop the HQ to the enhanced region)"
            )
        if not np.isfinite(im).all():
            raise InputError(f"{name} contains NaN/inf values")
        out[name] = im
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), hq.shape)
        if not mask.any():
            raise InputError("the evaluation mask is empty; give a mask covering the sample")
    return hq, out, mask


def _masked_ssim(hq, im, data_range, mask):
    if min(hq.shape[-2:]) < 7:
        return float("nan")
    vals = []
    slices = (
        [(hq, im, mask)]
        if hq.ndim == 2
        else [(hq[i], im[i], None if mask is None else mask[i]) for i in range(hq.shape[0])]
    )
    for a, b, m in slices:
        _, full = structural_similarity(a, b, data_range=data_range, full=True)
        vals.append(float(full[m].mean()) if m is not None and m.any() else float(full.mean()))
    return float(np.mean(vals))


def _otsu_in(hq, mask, *, erode=2, smooth=1.0):
    """Otsu foreground/background of the (smoothed) HQ, thresholded on the pixels inside ``mask`` only."""
    sm = ndimage.gaussian_filter(hq.astype(np.float64), smooth) if smooth else hq
    vals = sm[mask] if mask is not None else sm
    if vals.max() == vals.min():
        raise InputError("the HQ reference is constant inside the mask; give CNR masks explicitly")
    t = threshold_otsu(vals)
    inside = np.ones(hq.shape, bool) if mask is None else mask
    fg, bg = (sm > t) & inside, (sm <= t) & inside
    if erode:
        st = ndimage.generate_binary_structure(hq.ndim, 1)
        fg = ndimage.binary_erosion(fg, st, iterations=int(erode), border_value=1)
        bg = ndimage.binary_erosion(bg, st, iterations=int(erode), border_value=1)
    if fg.sum() < 2 or bg.sum() < 2:
        raise InputError(
            "the Otsu masks are (nearly) empty after erosion; use a smaller cnr_erode or give masks"
        )
    return fg, bg


def compare(
    hq,
    images,
    *,
    mask=None,
    spacing=1.0,
    data_range=None,
    n_edges=60,
    edge_sigma=1.5,
    profile_length=None,
    cnr_masks=None,
    cnr_erode=2,
    sift=True,
    line_length=None,
):
    """Quality metrics of each image in ``images`` against ``hq`` (and the HQ's resolution and contrast).

    Parameters
    ----------
    hq : ndarray
        Reference on the HQ grid (2D, or 3D scored on its z slices).
    images : dict of str to ndarray
        Candidates, same shape as ``hq`` and the same intensity units.
    mask : ndarray of bool, optional
        Field of view; metrics are computed inside it.
    spacing : float
        Pixel size for the FWHM (its unit is the unit of the widths).
    data_range : float, optional
        PSNR/SSIM data range; default the HQ's 0.5–99.5 percentile range inside the mask.
    n_edges : int
        Edges per image for the FWHM (found automatically, :func:`~matsight.metrics.resolution.edge_fwhm`).
    cnr_masks : (fg, bg), optional
        Foreground/background masks for the CNR; default Otsu on the HQ (smoothed, eroded) within ``mask``.
    cnr_erode : int
        Erosion (pixels) of the Otsu masks, keeping the blurred transition zone out of both; use 0–1 for thin
        structures such as electrode windings.
    sift : bool
        Count SIFT keypoints matched with the HQ's (slowest metric): ``sift_matched``, the descriptor matches
        (nearest Euclidean descriptor distance with a cross check and Lowe's ratio test: the paper's count,
        robust to misalignment), and ``sift_congruent``, those of them whose keypoints also lie within 3 px of
        each other (which falls off once the images are misaligned by more than that).
    line_length : float, optional
        Profile length (pixels) of the thin-line FWHM (:func:`~matsight.metrics.resolution.line_fwhm`),
        measured on every image at the bright lines found in the HQ, so all are compared at the same places;
        default ``profile_length`` or 9. Keep it below twice the spacing of neighbouring lines.

    Returns
    -------
    dict
        ``{name: {"psnr", "ssim", "sift_congruent", "sift_matched", "fwhm_median", "fwhm_mean", "fwhm_std",
        "n_edges", "line_fwhm_median", "n_lines", "cnr"}}`` with ``"HQ"`` first (only resolution, contrast
        and the SIFT counts).
        ``fwhm_*``: edge width (steps found in each image); ``line_fwhm_median``: width of thin lines at the
        HQ's line positions, ``n_lines`` of them measurable on profiles ``line_profile_px`` long
        (``line_length``, or twice it where fewer than half the HQ's lines fitted).
    """
    hq, images, mask = _check(hq, images, mask)
    if data_range is None:
        lo, hi = np.percentile(hq[mask] if mask is not None else hq, [0.5, 99.5])
        data_range = float(hi - lo) or 1.0
    if cnr_masks is None:
        fg, bg = _otsu_in(hq, mask, erode=cnr_erode)
    else:
        fg, bg = (np.broadcast_to(np.asarray(m, dtype=bool), hq.shape) for m in cnr_masks)
    edges = dict(spacing=spacing, n_edges=n_edges, sigma=edge_sigma, profile_length=profile_length, mask=mask)
    ll = float(line_length or profile_length or 9.0)
    ref_lines = line_fwhm(hq, spacing=spacing, n_lines=n_edges, profile_length=ll, mask=mask)
    out = {"HQ": {**_edge_widths(hq, **edges), "line_fwhm_median": ref_lines.median}}
    out["HQ"].update(n_lines=int(ref_lines.finite.size), cnr=cnr(hq, fg, bg))
    for name, im in images.items():
        row = _fidelity(hq, im, mask, data_range)
        if sift:
            row.update(_sift_counts(im, hq))
        row.update(_edge_widths(im, **edges))
        row.update(_line_widths(im, ref_lines, spacing=spacing, profile_length=ll))
        row["cnr"] = cnr(im, fg, bg)
        out[name] = row
    if sift:
        out["HQ"].update(_sift_counts(hq, hq))
    return out


def _fidelity(hq, im, mask, data_range):
    """PSNR and SSIM of ``im`` against ``hq`` inside ``mask``."""
    d = (im - hq) if mask is None else (im - hq)[mask]
    mse = float(np.mean(d.astype(np.float64) ** 2))
    return {
        "psnr": 10 * math.log10(data_range**2 / mse) if mse > 0 else float("inf"),
        "ssim": _masked_ssim(hq, im, data_range, mask),
    }


def _edge_widths(im, *, spacing, n_edges, sigma, profile_length, mask):
    """FWHM of the steps found in ``im`` (:func:`~matsight.metrics.resolution.edge_fwhm`)."""
    ew = edge_fwhm(
        im, spacing=spacing, n_edges=n_edges, sigma=sigma, profile_length=profile_length, mask=mask
    )
    return {
        "fwhm_median": ew.median,
        "fwhm_mean": ew.mean,
        "fwhm_std": ew.std,
        "n_edges": int(ew.finite.size),
    }


def _line_widths(im, ref_lines, *, spacing, profile_length):
    """FWHM of the thin lines of ``im`` at the HQ's line positions ``ref_lines``."""
    if not ref_lines.points.size:
        return {"line_fwhm_median": float("nan"), "n_lines": 0, "line_profile_px": float(profile_length)}
    at = dict(spacing=spacing, points=ref_lines.points, normals=ref_lines.normals)
    r = line_fwhm(im, profile_length=profile_length, **at)
    used = profile_length
    if 2 * r.finite.size < ref_lines.finite.size:
        # a profile only fits lines up to half its length wide: a smoother result's lines there read NaN
        # ("0 lines" beside the HQ's 10), so measure them on profiles twice as long
        longer = line_fwhm(im, profile_length=2 * profile_length, **at)
        if longer.finite.size > r.finite.size:
            r, used = longer, 2 * profile_length
    return {"line_fwhm_median": r.median, "n_lines": int(r.finite.size), "line_profile_px": float(used)}


def _sift_counts(im, hq):
    """SIFT keypoints of ``im`` matched with the HQ's (the paper's count) and those of them ≤ 3 px apart."""
    d = sift_congruent_keypoints(im, hq, return_details=True)
    return {"sift_congruent": int(d["congruent"]), "sift_matched": int(d["matches"])}


# -------------------------------------------------------------------------------------------------- figures
def profile_line(hq, *, length=64, mask=None):
    """A horizontal line ``(row, col0, col1)`` across the most edges of a 2D ``hq`` (for Fig. 3B-like
    profiles).
    """
    img = np.asarray(hq, dtype=np.float64)
    if img.ndim != 2:
        raise InputError("profile_line needs a 2D slice")
    length = min(int(length), img.shape[1])
    g = np.abs(ndimage.sobel(ndimage.gaussian_filter(img, 1.0), axis=1))
    if mask is not None:
        g = g * np.asarray(mask, dtype=bool)
    # best window of ``length`` along every row: sum of the horizontal gradient
    c = np.cumsum(np.pad(g, ((0, 0), (1, 0))), axis=1)
    win = c[:, length:] - c[:, :-length]
    r, c0 = np.unravel_index(int(np.argmax(win)), win.shape)
    return int(r), int(c0), int(c0 + length)


def profile_figure(images, line, *, title="intensity profiles", spacing=None, unit=None):
    """Intensity profiles of every image along ``line = (row, col0, col1)`` (2D images; paper Fig. 3B).

    ``spacing``/``unit``: the pixel size, for an x axis in physical units (pixels without them). The legend
    sits outside the data.
    """
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend

    from ..report.style import axis_label, legend_outside

    r, c0, c1 = line
    physical = spacing is not None and unit is not None
    x = np.arange(c0, c1) * (float(spacing) if physical else 1.0)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for name, im in images.items():
        lw = 2.0 if name == "HQ" else 1.2
        ax.plot(x, np.asarray(im)[r, c0:c1], lw=lw, label=name, color="k" if name == "HQ" else None)
    ax.set_xlabel(axis_label(f"x along row {r}", unit if physical else "px"))
    ax.set_ylabel(axis_label("grey value", "HQ units"))
    ax.set_title(title)
    legend_outside(ax)
    fig.tight_layout()
    return fig


def panels_figure(images, *, line=None, crop=None, vmin=None, vmax=None, spacing=None, unit=None):
    """Side-by-side 2D panels (same grey scale), optionally zoomed to ``crop`` and with the profile line
    drawn; each with a scale bar (in ``unit`` from the pixel size ``spacing``, else in pixels).
    """
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend

    from ..report.style import show_image

    names = list(images)
    ref = np.asarray(images[names[0]])
    if vmin is None:
        vmin, vmax = (float(v) for v in np.percentile(ref, [0.5, 99.5]))
    physical = spacing is not None and unit is not None
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        im = np.asarray(images[name])
        sl = crop if crop is not None else (slice(None), slice(None))
        show_image(
            ax,
            im[sl],
            spacing=spacing if physical else None,
            unit=unit or "px",
            title=name,
            vmin=vmin,
            vmax=vmax,
        )
        if line is not None and crop is None:
            r, c0, c1 = line
            ax.plot([c0, c1], [r, r], color="r", lw=1)
    fig.tight_layout()
    return fig


def _mid(a):
    a = np.asarray(a)
    return a[a.shape[0] // 2] if a.ndim == 3 else a


def write_report(
    out_dir,
    metrics,
    images,
    hq,
    *,
    title="restore: evaluation",
    notes=(),
    consistency=None,
    mask=None,
    extra_tables=None,
    rows=None,
    spacing=None,
    unit=None,
):
    """HTML report: metrics table, image panels (whole and zoomed), profiles and the consistency map.

    ``rows``: ``{row name: how it was produced}``, shown under the metrics table. ``spacing``/``unit``: the HQ
    pixel size, for scale bars and the profiles' axis (pixels without them).
    """
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after choosing the backend

    out_dir = Path(out_dir)
    rep = Report(out_dir, title)
    for n in notes:
        rep.text(n)
    rep.heading("Metrics")
    rep.table(
        metrics,
        caption="PSNR/SSIM inside the field of view; FWHM = median edge width (px) over "
        "automatically found edges; CNR with Otsu masks of the HQ",
    )
    if rows:
        rep.table({k: {"how it was produced": v} for k, v in rows.items()}, caption="the rows")
    for cap, tab in (extra_tables or {}).items():
        rep.table(tab, caption=cap)
    show = {"HQ": _mid(hq), **{k: _mid(v) for k, v in images.items()}}
    m2 = None if mask is None else _mid(np.broadcast_to(mask, np.asarray(hq).shape))
    line = profile_line(show["HQ"], mask=m2)
    rep.heading("Images")
    px = dict(spacing=spacing, unit=unit)
    rep.figure(panels_figure(show, line=line, **px), "panels", caption="middle slice; red: profile line")
    r, c0, c1 = line
    h = max(48, c1 - c0)
    ny, nx = show["HQ"].shape
    y0 = min(max(0, r - h // 2), max(0, ny - h))
    x0 = min(max(0, c0), max(0, nx - h))
    rep.figure(
        panels_figure(show, crop=(slice(y0, y0 + h), slice(x0, x0 + h)), **px),
        "zoom",
        caption="zoom around the profile line",
    )
    rep.figure(
        profile_figure(show, line, **px),
        "profiles",
        caption="intensity profiles along the red line (cf. paper Fig. 3B)",
    )
    if consistency is not None:
        from ..report.style import show_image

        c = _mid(consistency)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        v = float(np.percentile(np.abs(c), 99.5)) or 1.0
        # on the LQ grid: its pixels are unknown here, so the scale bar counts them
        mappable = show_image(ax, c, cmap="RdBu_r", vmin=-v, vmax=v, title="LQ − degraded output")
        fig.colorbar(mappable, ax=ax, shrink=0.8, label="residual (normalised LQ units)")
        rep.figure(
            fig,
            "consistency",
            caption="residual of the enhanced image degraded back onto the LQ grid; "
            "structure here is not supported by the measurement",
        )
    rows = rows or {}
    write_json(
        out_dir / "metrics.json",
        {k: {**v, **({"how": rows[k]} if k in rows else {})} for k, v in metrics.items()},
    )
    return rep.write()


# ------------------------------------------------------------------------------------------------------ CLI
def _model_meta(meta):
    """Metadata of the model named in ``enhance.json`` (for folders written before it recorded stats and FOV).

    Returns None when the model is not found or not readable (e.g. the path was relative to another folder).
    """
    name = meta.get("model")
    if not name:
        return None
    path = Path(name)
    path = path / MODEL_FILE if path.is_dir() else path
    if not path.is_file():
        return None
    try:
        return load_checkpoint(path)[1]
    except InputError:
        return None


def _recorded(meta, key, model_meta):
    """``stats`` or ``fov_radius`` as recorded by ``apply``, else from its model; ``(found, value)``."""
    if key in meta:
        return True, meta[key]
    if model_meta is None:
        return False, None
    if key == "stats":
        return True, model_meta.get("stats") or {}
    return True, (model_meta.get("transform") or {}).get("fov_radius")


def evaluate(
    out,
    hq,
    *,
    lq=None,
    report_dir=None,
    mask=None,
    fov="auto",
    spacing=1.0,
    n_edges=60,
    sift=True,
    onestep_model=None,
    unit=None,
):
    """Evaluate an ``apply`` output folder (``enhanced.tif``, ``onestep.tif``, ``bicubic.tif``) against
    ``hq``.

    The rows: ``LQ bicubic``, ``classical NLM`` and ``classical Gaussian`` (tuned on the training slices:
    :mod:`~matsight.restore.classical`), ``one-step`` (``onestep_model``, or the output of a one-step model),
    ``InDI N=1`` (``onestep.tif``), ``InDI N=…``; each row's ``how`` says how it was produced.

    Parameters
    ----------
    out : path
        Folder written by ``matsight restore apply`` (or by :func:`~matsight.restore.predict.predict` results
        saved the same way).
    hq : path or ndarray
        The HQ reference on the same grid.
    lq : path or ndarray, optional
        The raw LQ; when given, its bicubic upscaling (with the scale in ``enhance.json``), normalised with
        the model's LQ statistics and mapped to HQ units as ``apply`` does, replaces ``bicubic.tif`` as the LQ
        baseline.
    report_dir : path, optional
        Where to write the HTML report (default ``out/report``).
    mask : ndarray of bool, optional
        Where to score; overrides ``fov``.
    fov : "auto", float or None
        Field of view scored when no ``mask`` is given: ``"auto"``, the circle (centred, in HQ pixels) of the
        training pair's FOV mask, none if the pair had none; a number, a centred circle of that radius;
        None, the whole image.
    spacing, n_edges, sift
        As :func:`compare`; with ``unit`` (e.g. ``"µm"``), ``spacing`` also sets the report's scale bars.
    onestep_model : path, optional
        A model trained with ``training.objective = "onestep"`` (direct regression); it is applied to the same
        LQ (``lq``, else the input recorded in ``enhance.json``) and scored as the ``one-step`` row.

    Returns
    -------
    (dict, Path)
        Metrics and the report's ``index.html``.
    """
    out = Path(out)
    meta, enhanced, hq_a, lq_a = _inputs(out, hq, lq)
    _check_fov(fov)
    need_model = ("stats" not in meta or "grey_map" not in meta) and lq_a is not None
    need_model |= "fov_radius" not in meta and mask is None and fov == "auto"
    model_meta = _model_meta(meta) if need_model else None
    mask, fov_note = _scored_region(out / "enhance.json", meta, model_meta, enhanced.shape, mask, fov)
    images, how = _candidates(out, meta, model_meta, lq_a, enhanced)
    _add_baselines(images, how, out, meta, lq_a, enhanced, onestep_model)
    metrics = compare(hq_a, images, mask=mask, spacing=spacing, n_edges=n_edges, sift=sift)
    cons = read_volume(out / "consistency.tif") if (out / "consistency.tif").is_file() else None
    report = write_report(  # scale bars in ``unit`` where it is given, else in pixels
        report_dir or out / "report",
        metrics,
        images,
        hq_a,
        consistency=cons,
        mask=mask,
        notes=[
            f"enhanced with {meta.get('steps', '?')} InDI steps; model {meta.get('model', '')}",
            f"scored in: {fov_note}",
        ],
        rows=how,
        **({"spacing": spacing, "unit": unit} if unit else {}),
    )
    for name, words in how.items():
        metrics[name]["how"] = words
    return metrics, report


def _add_baselines(images, how, out, meta, lq_a, enhanced, onestep_model):
    """Add the classical rows (after the bicubic one) and the ``onestep_model`` row to the candidates."""
    model_meta = _model_meta(meta) if "classical" not in meta else None
    extra, words = _classical_rows(images, meta, model_meta)
    if onestep_model is not None:
        name = "one-step" if "one-step" not in images else "one-step (--onestep-model)"
        extra[name], words[name] = _onestep_model_row(onestep_model, out, meta, lq_a, enhanced)
    first = {k: v for k, v in images.items() if k == "LQ bicubic"}
    rest = {k: v for k, v in images.items() if k != "LQ bicubic"}
    images.clear()
    images.update({**first, **extra, **rest})
    how.update(words)


def _inputs(out, hq, lq):
    """``(record, enhanced, hq, lq)`` of an ``apply`` folder and the references, their shapes checked."""
    if not (out / "enhanced.tif").is_file():
        raise InputError(f"{out} holds no enhanced.tif; give the --out folder of `matsight restore apply`")
    meta = _read_record(out / "enhance.json")
    enhanced = np.asarray(read_volume(out / "enhanced.tif"))
    hq_a = np.asarray(read_volume(hq) if isinstance(hq, str | Path) else hq, dtype=np.float32)
    lq_a = None
    if lq is not None:
        lq_a = np.asarray(read_volume(lq) if isinstance(lq, str | Path) else lq, dtype=np.float32)
    _check_dims(out, enhanced, hq_a, lq_a)
    if hq_a.shape != enhanced.shape:  # before the candidates are compared with it, which would name them
        raise InputError(
            f"the HQ reference (--hq) has shape {hq_a.shape} but the enhanced output in {out} is "
            f"{enhanced.shape}; give the HQ of the same region on the HQ grid (crop it to the enhanced "
            "region)"
        )
    return meta, enhanced, hq_a, lq_a


def _read_record(meta_path):
    """``enhance.json`` of an ``apply`` folder, its fields' types checked (``{}`` for older folders)."""
    if not meta_path.is_file():  # folders of older versions have none
        return {}
    fix = "rerun `matsight restore apply` to recreate it"
    meta = read_json(meta_path, what="record of `matsight restore apply`", fix=fix)
    types = {
        "model": str,
        "stats": dict,
        "fov_radius": (int, float, type(None)),
        "scale": (int, float, list),
        "steps": int,
        "grey_map": (dict, type(None)),
        "classical": (dict, type(None)),
        "objective": str,
        "baseline": str,
    }
    present = {k: t for k, t in types.items() if k in meta}
    require(meta, present, path=meta_path, what="record of `matsight restore apply`", fix=fix)
    return meta


def _check_fov(fov):
    if fov is not None and not isinstance(fov, str):
        if isinstance(fov, bool) or not float(fov) > 0:
            raise InputError(f"the field-of-view radius must be a positive number of HQ pixels, got {fov!r}")
    elif fov not in (None, "auto"):
        raise InputError(f"fov must be 'auto', a radius in HQ pixels or None, got {fov!r}")


def _check_dims(out, enhanced, hq_a, lq_a):
    # before any work: a 2D scan against a 3D result would otherwise fail deep inside with no names
    for what, a in (("the HQ reference (--hq)", hq_a), ("the LQ scan (--lq)", lq_a)):
        if a is not None and a.ndim != enhanced.ndim:
            raise InputError(
                f"{what} is {a.ndim}D {a.shape} but the enhanced output in {out} is {enhanced.ndim}D "
                f"{enhanced.shape}; give a {enhanced.ndim}D {'slice' if enhanced.ndim == 2 else 'volume'} of "
                "the same region"
            )


def _scored_region(meta_path, meta, model_meta, shape, mask, fov):
    """``(mask, note)``: where the metrics are computed — the given mask, the FOV, or the whole image."""
    if mask is not None:
        return mask, "given mask"
    radius = fov
    if fov == "auto":
        found, radius = _recorded(meta, "fov_radius", model_meta)
        if not found:
            log.warning(
                "%s records no field of view and its model is not readable from here; scoring the whole "
                "image (give a radius to score a circular field of view)",
                meta_path,
            )
    if radius is None:
        return None, "whole image"
    return fov_mask(
        shape, radius=float(radius)
    ), f"field of view: centred circle of radius {float(radius):g} px"


def _candidates(out, meta, model_meta, lq_a, enhanced):
    """The images to score: LQ bicubic (from ``lq_a`` or ``bicubic.tif``), one-step, InDI; and how each row
    was produced (``{name: words}``).
    """
    images, how = {}, {}
    if lq_a is not None:
        found, stats = _recorded(meta, "stats", model_meta)
        stats = stats or {}
        if not found:
            raise InputError(
                f"{out / 'enhance.json'} records no normalisation statistics and its model "
                f"({meta.get('model') or 'none'}) is not readable from here, so the raw LQ cannot be put "
                "into the output's units; leave out --lq (bicubic.tif is that baseline) or run "
                "`matsight restore apply` again"
            )
        # the output and bicubic.tif are in HQ units: normalise like training, then map as `apply` does
        grey_map = meta["grey_map"] if "grey_map" in meta else (model_meta or {}).get("grey_map")
        up = upscale(lq_a, meta.get("scale", 2.0), shape=enhanced.shape)
        images["LQ bicubic"] = _denorm(apply_grey_map(_norm(up, stats.get("lq")), grey_map), stats.get("hq"))
        how["LQ bicubic"] = baseline_description(grey_map) + " (from --lq)"
    elif (out / "bicubic.tif").is_file():
        images["LQ bicubic"] = read_volume(out / "bicubic.tif")
        how["LQ bicubic"] = meta.get("baseline") or (
            "bicubic.tif of `apply` (written before apply recorded how; percentile-to-percentile grey map)"
        )
    if (out / "onestep.tif").is_file():
        images["InDI N=1"] = read_volume(out / "onestep.tif")
        how["InDI N=1"] = (
            "the InDI model sampled with N = 1 (onestep.tif: InDI's own one-step estimate, not a network "
            "trained for direct regression)"
        )
    n = meta.get("steps", "?")
    if meta.get("objective") == "onestep":
        images["one-step"] = enhanced
        how["one-step"] = (
            "a network trained for direct regression LQ -> HQ (training.objective onestep: t = 1, x_t = LQ), "
            "applied in one pass (enhanced.tif)"
        )
    else:
        images[f"InDI N={n}"] = enhanced
        how[f"InDI N={n}"] = f"the InDI model sampled with N = {n} steps (enhanced.tif)"
    return images, how


def _classical_rows(images, meta, model_meta):
    """Rows of the classical denoisers tuned at training time (``meta["classical"]`` of the model) applied
    to the LQ bicubic baseline in the normalised units they were tuned in; ``({name: image}, {name: how})``.
    """
    params = meta.get("classical") or (model_meta or {}).get("classical")
    base = images.get("LQ bicubic")
    if not params or base is None:
        if base is not None:
            log.warning("the model records no tuned classical denoisers (trained before they were); retrain")
        return {}, {}
    found, stats = _recorded(meta, "stats", model_meta)
    hq_stats = (stats or {}).get("hq")
    b = _norm(np.asarray(base, np.float32), hq_stats)
    nlm, gauss = params["nlm"], params["gaussian"]
    unit = (
        "the LQ-HQ residual RMS" if "residual_rms" in nlm else "the noise sigma"
    )  # older models: the latter
    rows = {
        "classical NLM": (
            _denorm(apply_classical(b, "nlm", nlm), hq_stats),
            "classical: non-local means (skimage denoise_nl_means, fast mode) of the LQ bicubic baseline; "
            "h = "
            f"{nlm['h_factor']:g} x {unit} ({nlm['h']:.4g} normalised), patch "
            f"{nlm['patch_size']}, distance {nlm['patch_distance']}: tuned by a search for PSNR against "
            "the HQ on the training slices",
        ),
        "classical Gaussian": (
            _denorm(apply_classical(b, "gaussian", gauss), hq_stats),
            f"classical: Gaussian filter of the LQ bicubic baseline, sigma {gauss['sigma']:g} px (tuned "
            "likewise on the training slices)",
        ),
    }
    return {k: v[0] for k, v in rows.items()}, {k: v[1] for k, v in rows.items()}


def _onestep_model_row(onestep_model, out, meta, lq_a, enhanced):
    """The row of a separate one-step model (``--onestep-model``) applied to the same LQ as the output."""
    from .networks import load_model
    from .predict import is_onestep, predict

    if lq_a is None:
        source = meta.get("input")
        if not source or not Path(source).is_file():
            raise InputError(
                f"--onestep-model needs the LQ: give --lq (the LQ input of {out} is not recorded or not "
                "found)"
            )
        lq_a = np.asarray(read_volume(source), dtype=np.float32)
    loaded = load_model(onestep_model, device="cpu")
    if not is_onestep(loaded[1]):
        raise InputError(
            f"{onestep_model} is an InDI model; train the one-step one with `matsight restore train "
            "--objective onestep`"
        )
    upscaled = lq_a.shape == enhanced.shape
    res = predict(
        loaded,
        lq_a,
        slice_axis=0 if lq_a.ndim == 3 else None,
        z_mode=meta.get("z_mode", "cubic"),
        upscaled=upscaled,
        onestep=False,
        device="cpu",
    )
    how = (
        "one-step: a separate network trained for direct regression LQ -> HQ (training.objective onestep: "
        f"t = 1, x_t = LQ), one pass on the same LQ; model {onestep_model}"
    )
    return res.image, how

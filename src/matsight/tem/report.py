"""Figures and output files for :mod:`matsight.tem` results (CSV, JSON, PNG, HTML; written atomically)."""

import csv
import io
import logging

import numpy as np

from .._atomic import atomic_path, make_folder, write_json, write_text
from .match import UNKNOWN

log = logging.getLogger(__name__)

__all__ = [
    "fft_figure",
    "phase_map_figure",
    "write_analysis",
    "records_to_csv",
    "phase_colors",
    "ANALYSIS_FILES",
]

# every file write_analysis may write: a rerun removes those it does not write this time (e.g. the maps of
# a run without --no-maps), so that a folder never mixes two analyses; other files are never touched
ANALYSIS_FILES = (
    "spots.csv",
    "spots.json",
    "fft_spots.png",
    "fft_spots.svg",
    "phase_labels.tif",
    "phase_map.png",
    "phase_map.svg",
    "index.html",
)

UNKNOWN_COLOUR = "#999999"


def phase_colors(names):
    """A stable colour per phase name: the k-th phase searched in the k-th phase colour of every matsight
    figure (:data:`matsight.report.style.PHASE_COLOURS`, label 0 being "none"); unknown in grey.
    """
    from ..report.style import phase_colour

    out = {n: phase_colour(i + 1) for i, n in enumerate(names)}
    out[UNKNOWN] = UNKNOWN_COLOUR
    return out


def records_to_csv(records, columns=None):
    """CSV text from a list of dicts."""
    if not records:
        return ""
    if columns is None:
        columns = list(records[0])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _friedel_pairs(sp):
    """Indices of the spot table's distinct Friedel pairs: a row whose spot sits on an earlier row's mate
    (the same pair found twice, as k and −k) is left out.
    """
    keep = []
    for k in range(len(sp)):
        tol = max(sp.size[k] / 2, 3)
        if not any(
            np.hypot(sp.row[k] - sp.mate_row[j], sp.col[k] - sp.mate_col[j]) <= tol
            or np.hypot(sp.row[k] - sp.row[j], sp.col[k] - sp.col[j]) <= tol
            for j in keep
        ):
            keep.append(k)
    return keep


def _label_places(x, y, cx, cy, rad):
    """Where a spot's label may go, best first: offsets in points (display axes, y up) away from the FFT's
    centre (straight out, then turned ±35°, ±70°, then further out) and the text alignment for each.
    """
    ang0 = np.arctan2(-(y - cy), x - cx) if (x, y) != (cx, cy) else np.pi / 4  # display y is up
    for dist in (rad + 3, rad + 10):
        for turn in (0, 35, -35, 70, -70):
            a = ang0 + np.deg2rad(turn)
            ux, uy = np.cos(a), np.sin(a)
            ha = "left" if ux > 0.3 else "right" if ux < -0.3 else "center"
            va = "bottom" if uy > 0.3 else "top" if uy < -0.3 else "center"
            yield (ux * dist, uy * dist), ha, va


def _place_labels(ax, items, centre, avoid=()):
    """Label the spots without overlap, inside the axes: ``items`` ``(text, colour, [(x, y, radius), …])``
    (a pair's two spots; the label goes by either), clear of the artists ``avoid`` (the scale bar). A label
    with no free place is left out.

    Returns
    -------
    (list of Text, int)
        The labels placed and the number left out.
    """
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    inside = ax.get_window_extent(renderer).padded(-2)
    taken = [a.get_window_extent(renderer).padded(2) for a in avoid]
    placed, left_out = [], 0
    for txt, col, spots in items:
        for x, y, rad in spots:
            rad_pt = rad * inside.width / max(np.ptp(ax.get_xlim()), 1e-9) * 72 / fig.dpi
            for offset, ha, va in _label_places(x, y, *centre, rad_pt):
                t = ax.annotate(
                    txt, (x, y), xytext=offset, textcoords="offset points", ha=ha, va=va, color=col,
                    fontsize=7, annotation_clip=True,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.45, "lw": 0},
                )  # fmt: skip
                bb = t.get_window_extent(renderer).padded(2)
                free = inside.contains(bb.x0, bb.y0) and inside.contains(bb.x1, bb.y1)
                if free and not any(bb.overlaps(o) for o in taken):
                    taken.append(bb)
                    placed.append(t)
                    break
                t.remove()
            else:
                continue
            break
        else:
            left_out += 1
    return placed, left_out


def _fft_spacing(result, shape):
    """The FFT's pixel in 1/nm along x (``1 / (n_x · pixel size)``), or None without a calibration."""
    ps = tuple(getattr(result, "pixel_size_nm", ()) or ())
    if len(ps) != 2 or not all(p > 0 for p in ps):
        return None
    return 1.0 / (shape[1] * float(ps[1]))


def _spot_items(ax, result, colors):
    """Circle every spot and its mate on ``ax``; the labels to place, best first, and the phases seen."""
    from matplotlib.patches import Circle

    sp, items, seen = result.spots, [], {}
    for k in _friedel_pairs(sp):
        m = result.match.matches[k]
        col = colors.get(m.phase, UNKNOWN_COLOUR)
        seen[m.phase] = col
        rad = max(sp.size[k] / 2, 3)
        pair = [(sp.col[k], sp.row[k], rad), (sp.mate_col[k], sp.mate_row[k], rad)]
        for c, r, _ in pair:
            ax.add_patch(Circle((c, r), rad, fill=False, color=col, lw=1.4))
        txt = m.label if m.phase != UNKNOWN else f"? {sp.d[k]:.3g} Å"
        # named phases first, then the stronger spots: they get the free places
        items.append(((m.phase == UNKNOWN, -float(sp.intensity[k])), (txt, col, pair)))
    items.sort(key=lambda it: it[0])
    return [it[1] for it in items], seen


def fft_figure(result, *, zoom=True, annotate=True):
    """The denoised FFT with every spot circled (Friedel mates too) and one label ``phase (hkl)`` per
    Friedel pair, placed away from the centre where it overlaps no other label nor the scale bar and stays
    inside the axes (a label with no such place is left out and the title says how many; the table lists
    every spot). A scale bar in 1/nm (pixels without a calibration) and a legend of the phases' colours
    outside the data.
    """
    from ..report.style import colour_legend, figure_meta, scale_bar

    disp = result.fft_display
    ny, nx = disp.shape
    cy, cx = ny // 2, nx // 2
    sp = result.spots
    fig = _new_figure((7.8, 6.6 * ny / nx if nx else 6.6))
    ax = fig.subplots()
    ax.imshow(disp, cmap="gray", interpolation="nearest")
    figure_meta(fig)["images"] += 1
    items, seen = _spot_items(ax, result, phase_colors([p.name for p in result.phases]))
    width = nx
    if zoom and len(sp):
        r = max(np.max(np.hypot(sp.row - cy, sp.col - cx)) * 1.35, 20)
        ax.set_xlim(cx - r, cx + r)
        ax.set_ylim(cy + r, cy - r)
        width = 2 * r
    ax.set_xticks([])
    ax.set_yticks([])
    dq = _fft_spacing(result, disp.shape)
    bar = scale_bar(ax, width, spacing=dq, unit="nm⁻¹", loc="lower left")
    title = "FFT (log magnitude, denoised) — spots: phase (hkl)"
    if annotate and items:
        _, left_out = _place_labels(ax, items, (cx, cy), avoid=[bar])
        if left_out:
            plural = "s" if left_out > 1 else ""
            title += f"\n{left_out} label{plural} left out (no free place; see the table)"
    ax.set_title(title, fontsize=10)
    colour_legend(ax, {("unknown" if p == UNKNOWN else p): c for p, c in seen.items()}, title="phase")
    return fig


def _new_figure(size):
    """A figure on its own Agg canvas (no pyplot state: safe in the GUI's threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _fft_caption(result):
    """What the FFT figure shows, counted from the result."""
    n_pairs = len(_friedel_pairs(result.spots))
    named = sum(m.phase != UNKNOWN for m in result.match.matches)
    dq = _fft_spacing(result, result.fft_display.shape)
    unit = f"; one pixel = {dq:.3g} nm⁻¹ along x" if dq else ""
    return (
        f"FFT of the {result.shape[0]}×{result.shape[1]} px frame: {len(result.spots)} spots "
        f"({n_pairs} Friedel pairs, each circled with its mate and labelled once), {named} indexed{unit}."
    )


def phase_map_figure(image, result):
    """The frame in grey, and beside it each phase's region in its colour with its area fraction in the
    legend (outside the image); a scale bar in nm on both.
    """
    from matplotlib.colors import ListedColormap

    from ..report.style import colour_legend, show_image

    img = np.asarray(image, float)
    lo, hi = np.percentile(img, [1, 99])
    grey = np.clip((img - lo) / (hi - lo + 1e-12), 0, 1)
    fig = _new_figure((12.5, 6 * img.shape[0] / max(img.shape[1], 1) + 0.6))
    axes = fig.subplots(1, 2)
    ps = tuple(getattr(result, "pixel_size_nm", ()) or ()) or None
    ny, nx = img.shape
    show_image(axes[0], grey, spacing=ps, unit="nm", title=f"frame ({ny}×{nx} px)")
    show_image(
        axes[1], grey, spacing=ps, unit="nm", title="phase map (masked inverse FFT → Otsu + watershed)"
    )
    pm = result.maps
    names = pm.phase_names if pm is not None else []
    colors = phase_colors([p.name for p in result.phases])
    if pm is not None and names:
        cmap = ListedColormap([(0, 0, 0, 0)] + [colors.get(n, UNKNOWN_COLOUR) for n in names])
        axes[1].imshow(pm.labels, cmap=cmap, vmin=0, vmax=len(names), alpha=0.5, interpolation="nearest")
        colour_legend(
            axes[1],
            {
                f"{n}: {100 * pm.area_fraction.get(n, 0.0):.1f} %": colors.get(n, UNKNOWN_COLOUR)
                for n in names
            },
            title="phase: area",
        )
    fig.tight_layout()
    return fig


def analysis_settings(result, settings=None):
    """The settings an analysis ran with, as its folder records them (``spots.json``'s ``settings``, the
    report's settings table): ``settings`` (the caller's: tolerances, d range, …) with the detector, the
    calibration used and its source, and every phase searched with its source. The caller's ``phases``
    (dicts with a ``name``) add to those of the same name, e.g. the ``file`` each phase was read from.
    """
    out = dict(settings or {})
    given = {p["name"]: p for p in out.get("phases") or () if isinstance(p, dict) and "name" in p}
    out["detector"] = result.detector
    out["calibration"] = result.calibration()
    out["phases"] = [
        {
            **given.get(p.name, {}),
            "name": p.name,
            "formula": p.formula,
            "space_group": p.space_group,
            "source": p.source,
        }
        for p in result.phases
    ]
    return out


def _settings_rows(settings):
    """The settings as ``{"setting", "value"}`` rows of the report."""
    rows = []
    for k, v in settings.items():
        if k == "phases":
            v = "; ".join(f"{p['name']} ({p.get('file') or p['source'] or 'shipped'})" for p in v)
        elif k == "calibration":
            ps = v["pixel_size_nm"]
            v = f"{ps['x']:.5g} nm/px (x), {ps['y']:.5g} (y) from {v['source']}"
        elif isinstance(v, list | tuple):
            v = ", ".join(map(str, v))
        rows.append({"setting": k, "value": "" if v is None else str(v)})
    return rows


def _settings_table(rep, result, settings):
    rep.table(
        _settings_rows(analysis_settings(result, settings)),
        caption="Settings (spots.json: settings) — what reproduces this result",
    )


def _analysis_json(result, rows, source, settings=None):
    """What ``spots.json`` holds: settings, summary, spots, grains, intensity and area per phase, phases."""
    return {
        "source": str(source) if source else None,
        "settings": analysis_settings(result, settings),
        "calibration": result.calibration(),
        "summary": result.summary(),
        "spots": rows,
        "grains": [
            {**g, "zone": list(g["zone"]), "hkl": {str(k): v for k, v in g["hkl"].items()}}
            for g in result.match.grains
        ],
        "identification": {
            "verdict": result.match.verdict(result.pixel_size_nm),
            "scale": result.match.scale,
            "min_merit": result.match.min_merit,
            "merit_per_phase": result.match.merit_table(),
            "candidates": [{**c, "zone": list(c["zone"])} for c in result.match.candidates[:10]],
        },
        "phase_intensity": result.phase_intensity(),
        "area_fraction": result.maps.area_fraction if result.maps is not None else {},
        "phases": [p.to_dict() for p in result.phases],
    }


def write_analysis(
    result, image, out_dir, *, title="HRTEM phase identification", source=None, extra_tables=(),
    settings=None,
):  # fmt: skip
    """Write ``spots.csv``, ``spots.json``, ``phase_labels.tif``, figures and ``index.html`` into ``out_dir``.

    ``extra_tables`` — ``(caption, table)`` pairs shown after the summary (e.g. a demo's ground-truth scores).
    ``settings`` — the caller's settings (tolerances, …), recorded with the detector, calibration and phases
    (:func:`analysis_settings`) in ``spots.json`` and the report.

    Returns
    -------
    Path
        The HTML report.
    """
    import tifffile

    from ..report import Report

    out = make_folder(out_dir)
    written = {"spots.csv", "spots.json", "fft_spots.png", "fft_spots.svg", "index.html"}
    if result.maps is not None:
        written |= {"phase_labels.tif", "phase_map.png", "phase_map.svg"}
    # results of an earlier analysis that this one will not overwrite would be taken for its own
    for name in ANALYSIS_FILES:
        if name not in written and (out / name).is_file():
            (out / name).unlink()
    rows = result.table()
    write_text(out / "spots.csv", records_to_csv(rows) or "row,col,d_angstrom,phase\n")
    write_json(out / "spots.json", _analysis_json(result, rows, source, settings))
    rep = Report(out, title)
    if source:
        rep.text(f"Input: {source}")
    rep.table(result.summary())
    _settings_table(rep, result, settings)
    rep.table(
        result.match.merit_table(),
        caption="Figure of merit per phase (−log10 chance × share; a phase is named at ≥ "
        f"{result.match.min_merit:g})",
    )
    for caption, table in extra_tables:
        rep.table(table, caption=caption)
    rep.figure(fft_figure(result), "fft_spots", caption=_fft_caption(result))
    if result.maps is not None:
        with atomic_path(out / "phase_labels.tif") as tmp:
            tifffile.imwrite(tmp, result.maps.labels.astype(np.uint8))
        rep.figure(
            phase_map_figure(image, result),
            "phase_map",
            caption=f"{result.shape[0]}×{result.shape[1]} px frame. Labels in phase_labels.tif: 0 = none, "
            "k = k-th phase found ("
            + ", ".join(f"{i + 1} = {n}" for i, n in enumerate(result.maps.phase_names))
            + ").",
        )
    cols = [
        "d_angstrom",
        "phase",
        "hkl",
        "d_error_percent",
        "zone",
        "intensity",
        "snr",
        "size_px",
        "ambiguous",
    ]
    rep.heading("Spots")
    rep.table([{c: r[c] for c in cols} for r in rows])
    rep.heading("Reference reflections")
    for p in result.phases:
        refl = p.reflections(d_min=1.0)[:12]
        rep.table(
            [
                {"(hkl)": r.label, "d (Å)": r.d, "rel. |F|²": r.intensity, "multiplicity": len(r.members)}
                for r in refl
            ],
            caption=f"{p.name} ({p.space_group}; {p.source})",
        )
    return rep.write()

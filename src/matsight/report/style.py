"""One figure style for every report and the GUI (issue #39).

* :data:`PHASE_COLOURS`: one colour per phase label, the same in every figure (Okabe–Ito, colour-blind safe).
* :func:`show_labels` / :func:`show_image`: a label image (with its legend outside the axes) or a grey image,
  each with a scale bar from the calibration.
* :func:`distribution`: violins where a group has enough samples, the points themselves where it has not;
  the y axis labelled with its unit.
* :func:`save_figure`: PNG at a paper's resolution, SVG beside it.

Every helper records what it drew in :func:`figure_meta` (``fig._matsight``) and gives its artists a ``gid``
(``matsight-scale-bar``, ``matsight-legend``; ids in the SVG), so tests check metadata, not pixels.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "MIN_VIOLIN",
    "PAPER_DPI",
    "PHASE_COLOURS",
    "axis_label",
    "colour_legend",
    "distribution",
    "figure_meta",
    "label_cmap",
    "legend_outside",
    "nice_length",
    "phase_colour",
    "phase_legend",
    "save_figure",
    "scale_bar",
    "show_image",
    "show_labels",
]

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
PHASE_COLOURS = (
    "#000000",  # 0 black (pore, background)
    "#E69F00",  # 1 orange
    "#56B4E9",  # 2 sky blue
    "#009E73",  # 3 bluish green
    "#F0E442",  # 4 yellow
    "#0072B2",  # 5 blue
    "#D55E00",  # 6 vermillion
    "#CC79A7",  # 7 reddish purple
)
PAPER_DPI = 200
MIN_VIOLIN = 8  # fewer samples per group than this: points, not a violin
SCALE_BAR_GID = "matsight-scale-bar"
LEGEND_GID = "matsight-legend"


def phase_colour(k):
    """The colour of phase label ``k``: :data:`PHASE_COLOURS`, then matplotlib's ``tab20`` beyond them."""
    k = int(k)
    if k < len(PHASE_COLOURS):
        return PHASE_COLOURS[k]
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return to_hex(colormaps["tab20"](k - len(PHASE_COLOURS)))


def label_cmap(n):
    """``(cmap, norm)`` mapping labels ``0 .. n-1`` to their phase colours (exactly, no interpolation)."""
    from matplotlib.colors import BoundaryNorm, ListedColormap

    n = max(1, int(n))
    cmap = ListedColormap([phase_colour(k) for k in range(n)], name=f"matsight_phases_{n}")
    return cmap, BoundaryNorm(np.arange(-0.5, n + 0.5), cmap.N)


def figure_meta(fig):
    """What the figure carries, as recorded by the helpers: ``{"scale_bar": int, "legend": int, ...}``."""
    meta = getattr(fig, "_matsight", None)
    if meta is None:
        meta = {"scale_bar": 0, "legend": 0, "violins": 0, "points": 0, "images": 0}
        fig._matsight = meta
    return meta


def _record(ax, **counts):
    meta = figure_meta(ax.figure)
    for k, v in counts.items():
        meta[k] = meta.get(k, 0) + v
    own = ax.__dict__.setdefault("_matsight", {})
    for k, v in counts.items():
        own[k] = own.get(k, 0) + v


def nice_length(target):
    """The largest 1, 2 or 5 × 10ⁿ not above ``target`` (> 0)."""
    if not target > 0 or not math.isfinite(target):
        raise ValueError(f"scale bar length must be a positive number, got {target!r}")
    exp = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10**exp <= target * (1 + 1e-9):
            return m * 10**exp
    return 10**exp  # pragma: no cover


def _x_spacing(spacing):
    if spacing is None:
        return None
    s = np.atleast_1d(np.asarray(spacing, float))
    return float(s[-1])


def scale_bar(ax, width_px, *, spacing=None, unit="nm", loc="lower right"):
    """Draw a scale bar about 1/5 of ``width_px`` wide on ``ax``; without a spacing it is in pixels.

    ``spacing``: the pixel size (a number, or per axis with x last) in ``unit``. Returns the artist.
    """
    from matplotlib.font_manager import FontProperties
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    dx = _x_spacing(spacing)
    if dx is None or not dx > 0:
        dx, unit = 1.0, "px"
    length = nice_length(width_px * dx / 5)
    bar = AnchoredSizeBar(
        ax.transData,
        length / dx,
        f"{length:g} {unit}",
        loc,
        pad=0.3,
        borderpad=0.4,
        sep=3,
        color="black",
        frameon=True,
        size_vertical=max(1.0, width_px / 120),
        fontproperties=FontProperties(size=7),
    )
    bar.patch.set_facecolor("white")
    bar.patch.set_alpha(0.8)
    bar.patch.set_edgecolor("none")
    bar.set_gid(SCALE_BAR_GID)
    for artist in bar.size_bar.get_children():  # the offset box itself writes no id into an SVG
        artist.set_gid(SCALE_BAR_GID)
    ax.add_artist(bar)
    _record(ax, scale_bar=1)
    return bar


def _phase_name(k, names):
    if names is None:
        return f"phase {k}"
    if isinstance(names, dict):
        return names.get(int(k), names.get(str(k), f"phase {k}"))
    return names[int(k)] if int(k) < len(names) else f"phase {k}"


def phase_legend(target, phases, *, names=None, fontsize=8, **kwargs):
    """A legend of phase colours for ``phases`` outside the data.

    ``target``: an Axes (legend to its right) or a Figure (legend below the panels, ``layout="constrained"``).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=phase_colour(k), edgecolor="0.5", label=_phase_name(k, names)) for k in phases]
    if isinstance(target, Figure):
        kwargs.setdefault("loc", "outside lower center")
        kwargs.setdefault("ncols", min(len(handles), 6))
        leg = target.legend(handles=handles, fontsize=fontsize, **kwargs)
        figure_meta(target)["legend"] += 1
    else:
        kwargs.setdefault("loc", "upper left")
        kwargs.setdefault("bbox_to_anchor", (1.02, 1.0))
        leg = target.legend(handles=handles, fontsize=fontsize, borderaxespad=0.0, **kwargs)
        _record(target, legend=1)
    leg.set_gid(LEGEND_GID)
    return leg


def legend_outside(target, *, fontsize=8, **kwargs):
    """The legend of the labelled artists (lines, bars, or ``handles=``) outside the data: to the right of an
    Axes, or below the panels of a Figure (``layout="constrained"``; the entries of its first labelled Axes,
    for panels that share their lines). Returns the legend, or None when nothing is labelled (no empty box,
    no matplotlib warning).
    """
    from matplotlib.figure import Figure

    if isinstance(target, Figure):
        if "handles" not in kwargs:
            found = [ax.get_legend_handles_labels() for ax in target.axes]
            handles, labels = next(((h, lab) for h, lab in found if h), ([], []))
            if not handles:
                return None
            kwargs.update(handles=handles, labels=labels)
        kwargs.setdefault("loc", "outside lower center")
        kwargs.setdefault("ncols", min(len(kwargs["handles"]), 4))
        leg = target.legend(fontsize=fontsize, **kwargs)
        figure_meta(target)["legend"] += 1
    else:
        if "handles" not in kwargs and not target.get_legend_handles_labels()[0]:
            return None
        kwargs.setdefault("loc", "upper left")
        kwargs.setdefault("bbox_to_anchor", (1.02, 1.0))
        leg = target.legend(fontsize=fontsize, borderaxespad=0.0, **kwargs)
        _record(target, legend=1)
    leg.set_gid(LEGEND_GID)
    return leg


def colour_legend(ax, entries, *, fontsize=8, **kwargs):
    """A legend of colour patches ``{text: colour}`` to the right of ``ax`` (outside the data)."""
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=c, edgecolor="0.5", label=t) for t, c in entries.items()]
    return legend_outside(ax, handles=handles, fontsize=fontsize, **kwargs) if handles else None


def _bare(ax, title):
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def show_labels(ax, labels, *, names=None, spacing=None, unit="nm", n_labels=None, legend=True, title=None):
    """Draw a 2D label image in the phase colours, with a scale bar and (``legend``) a legend outside.

    Parameters
    ----------
    labels : ndarray of int
        2D label image; label ``k`` is drawn in ``phase_colour(k)`` whatever else is in the image.
    names : dict or list, optional
        Phase names for the legend (default ``"phase k"``).
    spacing : float or sequence, optional
        Pixel size in ``unit`` (x last); without it the scale bar is in pixels.
    n_labels : int, optional
        Labels the legend lists (``0 .. n_labels-1``); default those present in the image.
    legend : bool
        False when the figure shows one shared legend (:func:`phase_legend` on the figure).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"show_labels draws a 2D image, got shape {labels.shape}")
    present = np.unique(labels).astype(int)
    top = max(int(present.max(initial=0)) + 1, int(n_labels or 0))
    cmap, norm = label_cmap(top)
    im = ax.imshow(labels, cmap=cmap, norm=norm, interpolation="nearest")
    _bare(ax, title)
    _record(ax, images=1)
    scale_bar(ax, labels.shape[1], spacing=spacing, unit=unit)
    if legend:
        phase_legend(ax, range(n_labels) if n_labels else present, names=names)
    return im


def show_image(ax, image, *, spacing=None, unit="nm", title=None, cmap="gray", **imshow_kw):
    """Draw a 2D grey image (or an RGB(A) one, ``(H, W, 3|4)``) with a scale bar (pixels when ``spacing`` is
    None).
    """
    image = np.asarray(image)
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise ValueError(f"show_image draws a 2D grey or RGB image, got shape {image.shape}")
    im = ax.imshow(image, cmap=cmap, interpolation="nearest", **imshow_kw)
    _bare(ax, title)
    _record(ax, images=1)
    scale_bar(ax, image.shape[1], spacing=spacing, unit=unit)
    return im


def axis_label(label, unit=None):
    """``"label (unit)"``, or ``label`` when there is no unit."""
    return f"{label} ({unit})" if unit else label


def _groups(samples):
    if isinstance(samples, dict):
        items = list(samples.items())
    elif len(samples) and np.ndim(samples[0]) == 0:
        items = [("", samples)]
    else:
        items = [(str(i), s) for i, s in enumerate(samples)]
    out = []
    for name, v in items:
        v = np.asarray(v, float).ravel()
        out.append((str(name), v[np.isfinite(v)]))
    return out


def distribution(ax, samples, *, label, unit=None, min_violin=MIN_VIOLIN, colours=None):
    """Violins of each group with ``min_violin`` samples or more; the points themselves (and their count)
    for smaller groups, so 2 sub-cubes never look like a distribution.

    Parameters
    ----------
    samples : dict of str to array, list of arrays, or one array
        One group per entry, drawn at x = 0, 1, ...
    label, unit : str
        The y axis label, ``"label (unit)"``.
    colours : list, optional
        One colour per group; default matplotlib's cycle (``C0``, ``C1``, ...).

    Returns
    -------
    dict
        ``{"violins": n, "points": n}``: how many groups each way.
    """
    groups = _groups(samples)
    drawn = {"violins": 0, "points": 0}
    for j, (_, v) in enumerate(groups):
        colour = (colours or [f"C{k}" for k in range(len(groups))])[j]
        if v.size >= min_violin:
            parts = ax.violinplot([v], positions=[j], showmedians=True, widths=0.8)
            for body in parts["bodies"]:
                body.set_facecolor(colour)
                body.set_alpha(0.55)
                body.set_gid("matsight-violin")
            drawn["violins"] += 1
        elif v.size:
            jitter = np.linspace(-0.12, 0.12, v.size) if v.size > 1 else np.zeros(1)
            pts = ax.scatter(j + jitter, v, s=14, color=colour, zorder=3)
            pts.set_gid("matsight-points")
            ax.annotate(
                f"n={v.size}",
                (j, 1.0),
                xycoords=("data", "axes fraction"),
                ha="center",
                va="bottom",
                fontsize=6,
                color="0.35",
            )
            drawn["points"] += 1
    ax.set_xticks(range(len(groups)), [g for g, _ in groups], fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel(axis_label(label, unit), fontsize=8)
    _record(ax, **drawn)
    return drawn


def save_figure(fig, path, *, dpi=PAPER_DPI, vector=True):
    """Write ``fig`` as PNG at ``dpi`` to ``path`` (suffix set to ``.png``) and, with ``vector``, as SVG
    beside it (same stem). Returns the PNG path. Does not close the figure.
    """
    from pathlib import Path

    from .._atomic import atomic_path, make_folder

    png = Path(path).with_suffix(".png")
    make_folder(png.parent)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    if vector:
        with atomic_path(png.with_suffix(".svg")) as tmp:
            fig.savefig(tmp, bbox_inches="tight", format="svg")
    return png

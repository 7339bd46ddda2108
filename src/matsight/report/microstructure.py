"""Plots and tables of microstructure metrics, for one volume or several side by side (SR vs HR vs GT).

Every ``compare_*`` function takes ``{name: data}`` — ``data`` being the output of
:func:`matsight.metrics.microstructure.summary` (or of ``subvolume_statistics`` for the violins) — and returns
a matplotlib :class:`~matplotlib.figure.Figure` (or a table for :class:`matsight.report.Report`). The
single-volume ``plot_*`` functions are the same plots with one entry. Figures are made without pyplot's
global state (Agg canvas), so they are safe in scripts, threads and tests.

:func:`summary_report` puts all of it into a ``Report``.
"""

from __future__ import annotations

import numpy as np

from .style import MIN_VIOLIN, legend_outside, phase_colour

__all__ = [
    "compare_chord_lengths",
    "compare_fft_profiles",
    "compare_slices",
    "compare_subvolume_violins",
    "compare_two_point_correlation",
    "compare_volume_fractions",
    "metrics_table",
    "plot_chord_lengths",
    "plot_fft_profiles",
    "plot_subvolume_violins",
    "plot_two_point_correlation",
    "plot_volume_fractions",
    "summary_report",
    "surface_table",
]

_SINGLE = "volume"


def _figure(nrows=1, ncols=1, *, width=None, height=3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = width or 4.2 * ncols + 0.6
    fig = Figure(figsize=(width, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _phase_name(p, names):
    return (names or {}).get(int(p), (names or {}).get(str(p), f"phase {p}"))


def _pair_name(key, names):
    a, b = key.split("-")
    if a == b:
        return _phase_name(a, names)
    return f"{_phase_name(a, names)} / {_phase_name(b, names)}"


def _phases_of(summaries):
    keys = []
    for s in summaries.values():
        keys += [str(k) for k in s["volume_fraction"] if str(k) not in keys]
    return sorted(keys, key=int)


# ------------------------------------------------------------------------------------- volume fractions
def compare_volume_fractions(summaries, *, phase_names=None):
    """Grouped bars of the volume fraction of each phase, one bar per volume.

    Parameters
    ----------
    summaries : dict of str to dict
        ``{name: summary}`` (only ``summary["volume_fraction"]`` is used), or ``{name: {phase: VF}}``.
    phase_names : dict, optional
        ``{phase: "pore", ...}`` for the axis labels.
    """
    summaries = {k: (v if "volume_fraction" in v else {"volume_fraction": v}) for k, v in summaries.items()}
    phases = _phases_of(summaries)
    fig, ax = _figure(width=max(4.5, 1.2 * len(phases) * max(1, len(summaries)) + 1.5))
    ax = ax[0, 0]
    width = 0.8 / len(summaries)
    x = np.arange(len(phases))
    for i, (name, s) in enumerate(summaries.items()):
        vf = {str(k): v for k, v in s["volume_fraction"].items()}
        vals = [vf.get(p, 0.0) for p in phases]
        bars = ax.bar(x + (i - (len(summaries) - 1) / 2) * width, vals, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, [_phase_name(p, phase_names) for p in phases])
    ax.set_ylabel("volume fraction")
    ax.set_ylim(0, 1.08 * max(1e-9, max(max(s["volume_fraction"].values()) for s in summaries.values())))
    if len(summaries) > 1:
        legend_outside(ax)
    return fig


def plot_volume_fractions(summary, *, phase_names=None):
    """Bar chart of the volume fractions of one volume (see :func:`compare_volume_fractions`)."""
    return compare_volume_fractions({_SINGLE: summary}, phase_names=phase_names)


# ----------------------------------------------------------------------------------------------- tables
def surface_table(summaries, *, phase_names=None):
    """Rows for :meth:`Report.table`: SSA per phase, interfacial area per pair, TPB, 2D Euler density (per
    slicing plane); one column per volume.
    """
    if "volume_fraction" in summaries:
        summaries = {_SINGLE: summaries}
    rows = {}
    for name, s in summaries.items():
        for p, v in s["specific_surface_area"].items():
            rows.setdefault(f"SSA {_phase_name(p, phase_names)}", {})[name] = v
        for pair, v in s["interfacial_area"].items():
            rows.setdefault(f"interface {_pair_name(pair, phase_names)}", {})[name] = v
        if s.get("triple_phase_boundary") is not None:
            rows.setdefault("TPB density", {})[name] = s["triple_phase_boundary"]
        for p, v in s.get("euler_density", {}).items():
            for ax, x in v.items() if isinstance(v, dict) else [(None, v)]:
                plane = f" ⟂ {'ZYX'[int(ax)]}" if ax is not None else ""
                rows.setdefault(f"Euler density {_phase_name(p, phase_names)}{plane}", {})[name] = x
    return rows


def metrics_table(summaries, *, phase_names=None):
    """Rows for :meth:`Report.table`: VF, τ and transport efficiency per phase and axis, mean chord length."""
    if "volume_fraction" in summaries:
        summaries = {_SINGLE: summaries}
    rows = {}
    for name, s in summaries.items():
        for p, v in s["volume_fraction"].items():
            rows.setdefault(f"VF {_phase_name(p, phase_names)}", {})[name] = v
        for p, per_axis in (s.get("tortuosity") or {}).items():
            for ax, r in per_axis.items():
                tau = r["tau"] if r["tau"] is not None else float("inf")
                rows.setdefault(f"τ {_phase_name(p, phase_names)} axis {ax}", {})[name] = tau
                rows.setdefault(f"VF/τ {_phase_name(p, phase_names)} axis {ax}", {})[name] = r[
                    "transport_efficiency"
                ]
        for p, per_axis in s.get("chord_length", {}).items():
            for ax, c in per_axis.items():
                mean = c["mean"] if c["mean"] is not None else float("nan")
                rows.setdefault(f"mean chord {_phase_name(p, phase_names)} axis {ax}", {})[name] = mean
    return rows


# ---------------------------------------------------------------------------------------------- curves
def _styles(n):
    # six distinct dash patterns: the FFT figure can hold SR, truth, blurred truth, HR and LR
    dashes = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2))]
    return dashes[:n] + ["-"] * max(0, n - len(dashes))


def _conditional(entry_aa, curves):
    """``S_ab(d) / VF_a`` per axis, ``VF_a`` being ``S_aa(0)`` of the same axis (the same voxels)."""
    out = {}
    for k, y in curves.items():
        vf = float(entry_aa[k][0]) if entry_aa is not None and k in entry_aa else float("nan")
        out[k] = y / vf if vf > 0 else np.full_like(y, np.nan)
    return out


def compare_two_point_correlation(summaries, *, pairs=None, axis=None, phase_names=None, conditional=False):
    """Two-point correlation curves, one panel per phase pair, one line style per volume.

    Parameters
    ----------
    summaries : dict of str to dict
        ``{name: summary}``; uses ``summary["two_point_correlation"]``.
    pairs : list of str, optional
        Pair keys such as ``"1-1"`` (intra) or ``"0-2"`` (inter). Default: all.
    axis : int or str, optional
        Axis to plot; default: the mean over the axes present (solid) per volume.
    conditional : bool, default False
        False: the joint probability ``S_ab(d) = P(x in a, x + d in b)`` as computed (``S_aa(0) = VF_a``).
        True: ``S_ab(d) / VF_a = P(x + d in b | x in a)``, the form the SuperRes paper's Fig. 10 describes
        (the intra-phase curve starts at 1); ``VF_a`` is ``S_aa(0)`` along the same axis.
    """
    keys = []
    for s in summaries.values():
        keys += [k for k in s["two_point_correlation"] if k not in keys]
    keys = pairs or keys
    ncols = min(3, len(keys))
    nrows = int(np.ceil(len(keys) / ncols))
    fig, axes = _figure(nrows, ncols)
    styles = _styles(len(summaries))
    for i, key in enumerate(keys):
        ax = axes.flat[i]
        for (name, s), ls in zip(summaries.items(), styles, strict=False):
            entry = s["two_point_correlation"].get(key)
            if entry is None:
                continue
            curves = {k: np.asarray(v, float) for k, v in entry.items() if k != "distance"}
            if conditional:
                a = key.split("-")[0]
                curves = _conditional(s["two_point_correlation"].get(f"{a}-{a}"), curves)
            if axis is not None:
                y = curves.get(str(axis))
                if y is None:
                    continue
                label = name
            else:
                n = min(len(v) for v in curves.values())
                y = np.mean([v[:n] for v in curves.values()], axis=0)
                label = name if len(curves) == 1 else f"{name} (mean of axes)"
            ax.plot(np.asarray(entry["distance"][: len(y)]), y, linestyle=ls, label=label)
        a, b = key.split("-")
        ax.set_title(("intra: " if a == b else "inter: ") + _pair_name(key, phase_names), fontsize=9)
        ax.set_xlabel("distance d (voxels)")
        # a, b: the title's first and second phase
        ax.set_ylabel("S_ab/VF_a = P(b at x+d | a at x)" if conditional else "S_ab = P(a at x, b at x+d)")
    for j in range(len(keys), axes.size):
        axes.flat[j].set_visible(False)
    if len(summaries) > 1 or axis is None:
        legend_outside(fig)  # the panels share their lines: one legend below them
    return fig


def plot_two_point_correlation(summary, *, pairs=None, axis=None, phase_names=None):
    """Two-point correlation curves of one volume; a line per axis unless ``axis`` is given."""
    if axis is not None:
        return compare_two_point_correlation(
            {_SINGLE: summary}, pairs=pairs, axis=axis, phase_names=phase_names
        )
    # one volume: show each axis as its own line
    axes_present = sorted(
        {k for e in summary["two_point_correlation"].values() for k in e if k != "distance"}, key=int
    )
    per_axis = {
        f"axis {a}": {
            "two_point_correlation": {
                k: {"distance": e["distance"], a: e[a]} for k, e in summary["two_point_correlation"].items()
            }
        }
        for a in axes_present
    }
    return compare_two_point_correlation(per_axis, pairs=pairs, axis=None, phase_names=phase_names)


def compare_chord_lengths(summaries, *, axis=None, phase_names=None):
    """Length-weighted chord length distributions, one panel per phase, a line per volume.

    Plots ``d·N(d) / Σ d·N(d)``: the probability that a voxel of the phase lies in a chord of length ``d``
    (the SuperRes paper's Fig. 10), computed from ``count`` and ``length`` (so summaries written before
    ``length_weighted_pdf`` existed plot the same). ``axis``: plot that axis only; default: every axis,
    distinguished by colour.
    """
    phases = _phases_of(summaries)
    ncols = min(3, len(phases))
    fig, axes = _figure(int(np.ceil(len(phases) / ncols)), ncols)
    styles = _styles(len(summaries))
    for i, p in enumerate(phases):
        ax = axes.flat[i]
        for (name, s), ls in zip(summaries.items(), styles, strict=False):
            per_axis = s.get("chord_length", {}).get(p, {})
            for k, (a, c) in enumerate(sorted(per_axis.items())):
                if axis is not None and str(a) != str(axis):
                    continue
                count = np.asarray(c["count"], float)
                # voxels in chords of each length; the number-weighted count/Σcount is not the paper's
                vox = count * np.asarray(c["length"], float)
                if vox.sum() == 0:
                    continue
                lab = name if axis is not None else f"{name}, axis {a}"
                if len(summaries) == 1 and axis is None:
                    lab = f"axis {a}"
                ax.plot(c["length"], vox / vox.sum(), linestyle=ls, color=f"C{k}", label=lab, lw=1.2)
        ax.set_title(_phase_name(p, phase_names), fontsize=9)
        ax.set_xlabel("chord length d (voxels)")
        ax.set_ylabel("P(voxel in a chord of length d)")
    for j in range(len(phases), axes.size):
        axes.flat[j].set_visible(False)
    legend_outside(fig, fontsize=7)  # every panel has the same lines: one legend below them
    return fig


def plot_chord_lengths(summary, *, axis=None, phase_names=None):
    """Chord length distributions of one volume (a line per axis)."""
    return compare_chord_lengths({_SINGLE: summary}, axis=axis, phase_names=phase_names)


def compare_fft_profiles(summaries, *, phase_names=None):
    """Radially averaged FFT magnitude of each phase indicator (log scale), a line style per volume."""
    phases = _phases_of(summaries)
    fig, axes = _figure(1, 1, width=5.5)
    ax = axes[0, 0]
    styles = _styles(len(summaries))
    for (name, s), ls in zip(summaries.items(), styles, strict=False):
        for p in phases:
            prof = s.get("fft_profile", {}).get(p)
            if not prof:
                continue
            mag = np.array([np.nan if v is None else v for v in prof["magnitude"]], float)
            lab = (
                _phase_name(p, phase_names)
                if len(summaries) == 1
                else f"{name}: {_phase_name(p, phase_names)}"
            )
            ax.semilogy(prof["frequency"], mag, linestyle=ls, color=phase_colour(p), label=lab)
    ax.set_xlabel("spatial frequency (cycles / voxel)")
    ax.set_ylabel("|FFT| / √N")
    legend_outside(ax, fontsize=7)
    return fig


def plot_fft_profiles(summary, *, phase_names=None):
    """Radially averaged FFT magnitude profiles of one volume's phases."""
    return compare_fft_profiles({_SINGLE: summary}, phase_names=phase_names)


# ---------------------------------------------------------------------------------------------- violins
def _violin_metrics(stats, phase_names, length_unit=None):
    """``{metric: (values, unit)}`` of a ``subvolume_statistics`` result."""
    ssa_unit = f"1/{length_unit}" if length_unit else "1/voxel"
    out = {}
    for p, v in stats["volume_fraction"].items():
        out[f"VF {_phase_name(p, phase_names)}"] = (v, "fraction")
    for p, v in stats["specific_surface_area"].items():
        out[f"SSA {_phase_name(p, phase_names)}"] = (v, ssa_unit)
    if "triple_phase_boundary" in stats:
        out["TPB density"] = (stats["triple_phase_boundary"], "fraction of edges")
    for p, v in stats.get("transport_efficiency", {}).items():
        out[f"VF/τ {_phase_name(p, phase_names)}"] = (v, "dimensionless")
    return out


def compare_subvolume_violins(stats, *, phase_names=None, length_unit=None):
    """Sub-volume metric distributions (the paper's 256 × 64³ figure), one group per volume.

    A group with at least :data:`matsight.report.style.MIN_VIOLIN` finite values is a violin; a smaller
    one shows its points (2 sub-cubes are not a distribution). Every panel's y axis carries the unit.

    Parameters
    ----------
    stats : dict of str to dict
        ``{name: subvolume_statistics(...)}``.
    length_unit : str, optional
        The unit of the spacing the statistics were computed with (SSA in 1/unit); default voxels.
    """
    from .style import distribution

    per = {name: _violin_metrics(s, phase_names, length_unit) for name, s in stats.items()}
    metrics = []
    for m in per.values():
        metrics += [k for k in m if k not in metrics]
    ncols = min(4, len(metrics))
    nrows = int(np.ceil(len(metrics) / ncols))
    fig, axes = _figure(nrows, ncols, width=3.0 * ncols + 0.6, height=2.8)
    for i, metric in enumerate(metrics):
        ax = axes.flat[i]
        unit = next(m[metric][1] for m in per.values() if metric in m)
        groups = {name: np.asarray(m[metric][0] if metric in m else [], float) for name, m in per.items()}
        distribution(ax, groups, label=metric, unit=unit)
        ax.set_title(metric, fontsize=9)
    for j in range(len(metrics), axes.size):
        axes.flat[j].set_visible(False)
    return fig


def plot_subvolume_violins(stats, *, phase_names=None, length_unit=None):
    """Sub-volume statistics of one volume (violins, or points for few sub-volumes)."""
    return compare_subvolume_violins({_SINGLE: stats}, phase_names=phase_names, length_unit=length_unit)


# ----------------------------------------------------------------------------------------------- slices
def _views(vol, index, spacing):
    """``[(title, 2D image, (row, column) pixel size or None)]`` of one volume's central slices."""
    sp = None if spacing is None else np.broadcast_to(np.asarray(spacing, float), (vol.ndim,))
    if vol.ndim == 2:
        return [("YX", vol, sp)]
    c = index or tuple(s // 2 for s in vol.shape)
    pick = (lambda i, j: None) if sp is None else (lambda i, j: (sp[i], sp[j]))
    return [
        (f"YX, z={c[0]}", vol[c[0]], pick(1, 2)),
        (f"ZX, y={c[1]}", vol[:, c[1]], pick(0, 2)),
        (f"ZY, x={c[2]}", vol[:, :, c[2]], pick(0, 1)),
    ]


def compare_slices(volumes, *, index=None, phase_names=None, spacing=None, unit="nm"):
    """The three central orthogonal slices (ZY, ZX, YX planes) of each label volume, one row per volume.

    Phases in :data:`matsight.report.style.PHASE_COLOURS` (the same colour for a phase in every figure),
    one shared legend below the panels, a scale bar on every slice.

    Parameters
    ----------
    volumes : dict of str to ndarray
        ``{name: labels}`` (3D; a 2D image shows as one panel).
    index : tuple of int, optional
        Slice positions (z, y, x); default the centre.
    spacing : float or sequence of float, optional
        Voxel size (per axis z, y, x) in ``unit``; without it the scale bars are in pixels.
    """
    from .style import phase_legend, show_labels

    n_lab = max(int(np.max(v)) for v in volumes.values()) + 1
    ncols = max(3 if np.ndim(v) == 3 else 1 for v in volumes.values())
    fig, axes = _figure(len(volumes), ncols, width=3.2 * ncols + 0.6, height=3.2)
    for r, (name, vol) in enumerate(volumes.items()):
        views = _views(np.asarray(vol), index, spacing)
        for k, (title, img, sp) in enumerate(views):
            show_labels(
                axes[r, k], img, spacing=sp, unit=unit, n_labels=n_lab, legend=False, title=f"{name}: {title}"
            )
        for k in range(len(views), ncols):
            axes[r, k].set_visible(False)
    phase_legend(fig, range(n_lab), names=phase_names)
    return fig


# ----------------------------------------------------------------------------------------------- report
def _sizes(summaries):
    """``"of the 88×88×88 voxel volume"``, ``"of GT (64×64×64), SR (256×256×256) voxels"``: from the data."""
    sizes = {k: "×".join(map(str, s["shape"])) for k, s in summaries.items() if s.get("shape")}
    if not sizes:
        return ""
    if len(summaries) == 1 or len(set(sizes.values())) == 1:
        n = "" if len(summaries) == 1 else f" {len(summaries)}"
        return f"of the{n} {next(iter(sizes.values()))} voxel volume{'s' if n else ''}"
    return "of " + ", ".join(f"{k} ({v})" for k, v in sizes.items()) + " voxels"


def summary_report(report, summaries, *, subvolumes=None, phase_names=None, prefix=""):
    """Add every table and figure for ``{name: summary}`` (and optional ``{name: sub-volume stats}``).

    Parameters
    ----------
    report : matsight.report.Report
    summaries : dict of str to dict, or one summary dict
    subvolumes : dict of str to dict, or one ``subvolume_statistics`` result, optional
    phase_names : dict, optional
    prefix : str
        Prefix of the PNG file names (to keep several calls in one report apart).

    Returns
    -------
    Report
        The same report, for chaining.
    """
    if "volume_fraction" in summaries:
        summaries = {_SINGLE: summaries}
    if subvolumes is not None and "volume_fraction" in subvolumes:
        subvolumes = {next(iter(summaries)): subvolumes}
    kw = {"phase_names": phase_names}
    of = _sizes(summaries)
    report.heading("Volume fractions, tortuosity, chords")
    report.table(metrics_table(summaries, **kw))
    report.figure(
        compare_volume_fractions(summaries, **kw),
        f"{prefix}volume_fractions",
        caption=f"Volume fractions {of}",
    )
    report.heading("Surfaces and triple phase boundary")
    report.text(
        "Face counting: SSA = faces between a phase and any other / total volume; interfacial area = faces "
        "between the two phases / total volume (1/voxel, or 1/length with a spacing). TPB density = fraction "
        "of internal voxel edges touched by three phases (TauFactor's definition).",
        note=True,
    )
    report.table(surface_table(summaries, **kw))
    report.heading("Two-point correlation")
    fig = (
        plot_two_point_correlation(next(iter(summaries.values())), **kw)
        if len(summaries) == 1
        else compare_two_point_correlation(summaries, **kw)
    )
    report.figure(
        fig,
        f"{prefix}two_point_correlation",
        caption="S₂(d) = P(x in a, x + d in b): the joint probability, intra- and inter-phase, along the "
        f"axes (S_aa(0) = VF_a; the SuperRes paper's Fig. 10 shows the conditional S_ab/VF_a), {of}",
    )
    report.heading("Chord length distributions")
    report.figure(
        compare_chord_lengths(summaries, **kw),
        f"{prefix}chord_lengths",
        caption="Chords per axis, length-weighted: the probability that a voxel of the phase lies in a chord "
        f"of length d, d·N(d)/Σ d·N(d) (chords cut by the image faces left out), {of}",
    )
    if any(s.get("fft_profile") for s in summaries.values()):
        report.heading("Radially averaged FFT magnitude")
        report.figure(
            compare_fft_profiles(summaries, **kw), f"{prefix}fft_profile", caption=f"Per phase, {of}"
        )
    if subvolumes:
        first = next(iter(subvolumes.values()))
        n = len(first["corners"])
        report.heading("Sub-volume statistics")
        report.figure(
            compare_subvolume_violins(subvolumes, **kw),
            f"{prefix}subvolume_violins",
            caption=f"{n} random sub-volumes of {first['size']} voxels per edge per volume "
            f"({'violins' if n >= MIN_VIOLIN else 'points: too few for violins'})",
        )
    return report

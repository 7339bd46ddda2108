"""The HTML report of a SuperRes evaluation: tables and figures of :func:`matsight.fuse.evaluate.evaluate`'s
results, ``index.html`` with its PNGs, and ``metrics.json``.

Computation is in :mod:`matsight.fuse.evaluate`; this module only lays its results out.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["BLURRED_TRUTH", "NEAREST_LR", "TARGETS", "target_rows", "write_report"]

# FFT profile names: keys of ``fft_profile`` in the results and legends of the report
BLURRED_TRUTH = "truth blurred (LR kernel)"
NEAREST_LR = "LR nearest on SR grid (block-edge harmonics)"

TARGETS = {
    "lr_consistency": 0.95,
    "abs_delta_vf": 0.01,
    "rel_delta_interface": 0.05,
    "delta_transport_efficiency": 0.02,
    "rel_delta_tpb": 0.10,
}
"""The fidelity targets (benchmarks/README.md): LR consistency ≥ 95%; against a 3D truth |ΔVF| ≤ 0.01,
interface face fractions within ±5%, transport efficiency VF/τ within ±0.02 and TPB density within ±10%."""

TARGETS_TEXT = (
    "targets: LR consistency ≥ 95%; against the truth |ΔVF| ≤ 0.01, interface face fractions within ±5%, "
    "VF/τ within ±0.02, TPB within ±10%"
)


def write_report(
    out_dir, res, *, subs, transport, curves, fft, show, phase_names, summary_size, spacing=None
):
    """Write ``index.html``, its figures and ``metrics.json`` for the results ``res`` of an evaluation.

    Parameters
    ----------
    out_dir : str or Path
        The report folder.
    res : dict
        The JSON-able results (written to ``metrics.json``).
    subs, transport : dict
        Sub-volume statistics and transport efficiencies per axis, as arrays (for the violins).
    curves : dict
        Whole-volume summaries with two-point correlations and chord lengths.
    fft : dict
        FFT profiles per volume and phase.
    show : dict
        ``{name: label volume}`` whose central slices are shown side by side.
    phase_names : dict or None
        ``{phase: name}`` for plots and tables.
    summary_size : int or None
        Edge of the central region the curves were computed on (for the captions).
    spacing : sequence of float, optional
        Voxel size in nm (Z, Y, X) for the slices' scale bars (pixels without it).
    """
    from .._atomic import write_json
    from ..report import Report
    from ..report import microstructure as rm

    out_dir = Path(out_dir)
    rep = Report(out_dir, "SuperRes evaluation")
    rep.text(
        f"SR volume {tuple(res['shape'])}; compared with: "
        + ", ".join(k for k in ("HR", "truth") if k in res["whole"])
        + (", LR" if "lr_consistency" in res else "")
    )
    if "verdict" in res:
        _verdict_block(rep, res["verdict"])
    if "lr_consistency" in res:
        _lr_section(rep, res)
    _whole_section(rep, res, phase_names)
    if "versus_truth" in res:
        _truth_section(rep, res, phase_names)
    _subvolume_section(rep, res, subs, transport, phase_names)
    _curves_section(rep, curves, phase_names, _region_text(res["shape"], summary_size))
    _fft_section(rep, res, fft, phase_names)
    shown = _region_text(res["shape"], 256)
    rep.figure(
        rm.compare_slices(show, phase_names=phase_names, spacing=spacing),
        "slices",
        caption=f"Central slices of {shown}, each volume on the SR grid"
        + (" (the LR volume repeated onto it)" if any(k.startswith("LR") for k in show) else ""),
    )
    write_json(out_dir / "metrics.json", res)
    rep.link("metrics.json", "all figures as JSON")
    rep.write()


def _region_text(shape, size):
    """What a central ``size``³ crop of a volume of ``shape`` is, in words ("the whole volume (88×88×88)")."""
    shape = [int(n) for n in shape]
    region = [min(n, int(size)) for n in shape] if size else shape
    whole = "×".join(map(str, shape))
    if region == shape:
        return f"the whole volume ({whole})"
    return f"the central {'×'.join(map(str, region))} box of {whole}"


def _verdict_block(rep, findings):
    """A box at the top of the report: green "no problems found", or an amber list of what is off."""
    import html

    if not findings:
        body = "<strong>Verdict: no problems found</strong> (no grid artefacts, shells, interface deficits "
        body += "or LR disagreement beyond the thresholds of matsight.fuse.verdict)"
        colour, border = "#e6f4ea", "#2e7d32"
    else:
        items = "".join(
            f"<li><b>{html.escape(f['severity'])}</b> — {html.escape(f['message'])}</li>" for f in findings
        )
        body = f"<strong>Verdict: {len(findings)} problem(s) found</strong><ul>{items}</ul>"
        colour, border = "#fff4e0", "#e69500"
    # Report has no boxes of its own: the block is raw HTML, escaped above
    rep._parts.append(
        f'<div class="verdict" style="background:{colour};border-left:6px solid {border};'
        f'padding:0.6em 1em;margin:1em 0">{body}</div>'
    )


def _pn(p, names):
    from ..report import microstructure as rm

    return rm._phase_name(p, names)


def _lr_section(rep, res):
    c = res["lr_consistency"]
    rep.heading("LR consistency")
    rep.text(
        f"{100 * c['consistency']:.2f}% of {c['n_scored']} LR voxels are reproduced by degrading the SR "
        "volume "
        f"(scale {c['scale']:.4g}, mode {c['mode']}, border {c['border']} voxels; LR voxels next to the "
        "cropped border are not scored)."
    )
    rows = {f"LR phase {p}": {"recall": v} for p, v in c["per_phase"].items()}
    for name, vf in res["lr_volume_fraction"].items():
        for p, v in vf.items():
            rows.setdefault(f"LR phase {p}", {})[f"VF {name}"] = v
    rep.table(rows)


def _whole_section(rep, res, names):
    from ..report import microstructure as rm

    rep.heading("Volume fractions, interfaces, TPB (whole volumes)")
    rows = {}
    for name, w in res["whole"].items():
        for p, v in w["volume_fraction"].items():
            rows.setdefault(f"VF {_pn(p, names)}", {})[name] = v
        for k, v in w["interface_face_fraction"].items():
            a, b = k.split("-")
            rows.setdefault(f"interface {_pn(a, names)} / {_pn(b, names)} (face fraction)", {})[name] = v
        if w["triple_phase_boundary"] is not None:
            rows.setdefault("TPB density", {})[name] = w["triple_phase_boundary"]
    rep.table(rows)
    rep.figure(rm.compare_volume_fractions(res["whole"], phase_names=names), "volume_fractions")
    if "planes" in res:
        _planes_table(rep, res["planes"], names)


def _planes_table(rep, planes, names):
    rows = {}
    for ax, per in planes.items():
        for name, st in per.items():
            for p, v in st["volume_fraction"].items():
                rows.setdefault(f"⟂ {ax}: VF {_pn(p, names)}", {})[name] = v
            for k, v in st["interface_face_fraction"].items():
                a, b = k.split("-")
                rows.setdefault(f"⟂ {ax}: interface {_pn(a, names)} / {_pn(b, names)}", {})[name] = v
            for p, v in st["euler_density"].items():
                rows.setdefault(f"⟂ {ax}: Euler density {_pn(p, names)} (per 1000 px)", {})[name] = 1000 * v
    rep.table(
        rows,
        caption="Slices of each plane: the SR volume's (evenly spaced) against the HR images given for "
        "that plane (anisotropic) or the one HR image (isotropic: the SR should match it in every "
        "plane). Euler density: grains minus holes per area (edge-connected); too few grains of a "
        "phase means the SR joins what the HR image shows apart, which raises that phase's transport",
    )


def target_rows(res, names=None):
    """``{figure: {"value", "target", "met"}}`` for each figure of an evaluation's results that has a target.

    LR consistency (when ``res`` has it) and the figures against the truth (``versus_truth``), marked
    against :data:`TARGETS`; ``met`` is ``"yes"``, ``"no"`` or ``"n/a"`` (no value: e.g. an interface the
    truth lacks).
    """
    rows = {}

    def mark(name, value, key, text, at_least=False):
        t = TARGETS[key]
        met = "n/a" if value is None else ("yes" if (value >= t if at_least else abs(value) <= t) else "no")
        rows[name] = {"value": value, "target": text, "met": met}

    if "lr_consistency" in res:
        mark("LR consistency", res["lr_consistency"]["consistency"], "lr_consistency", "≥ 0.95", True)
    vt = res.get("versus_truth")
    if vt is None:
        return rows
    for p, v in vt["abs_delta_vf"].items():
        mark(f"|ΔVF| {_pn(p, names)}", v, "abs_delta_vf", "≤ 0.01")
    for k, v in vt["rel_delta_interface"].items():
        a, b = k.split("-")
        mark(f"rel. Δ interface {_pn(a, names)} / {_pn(b, names)}", v, "rel_delta_interface", "within ±0.05")
    for k, v in vt["delta_transport_efficiency"].items():
        p, ax = k.split(" axis ")
        mark(f"Δ VF/τ {_pn(p, names)}, axis {ax}", v, "delta_transport_efficiency", "within ±0.02")
    mark("rel. Δ TPB", vt["rel_delta_tpb"], "rel_delta_tpb", "within ±0.10")
    return rows


def _truth_section(rep, res, names):
    rep.heading("SR versus truth")
    rows = target_rows(res, names)
    met = [r["met"] for r in rows.values()]
    rep.text(
        f"Targets met: {met.count('yes')} of {len(met) - met.count('n/a')} "
        f"({TARGETS_TEXT}; relative differences as fractions, 0.05 = 5%)."
    )
    rep.table(rows, caption=TARGETS_TEXT)


def _subvolume_section(rep, res, subs, transport, names):
    from ..report import microstructure as rm

    rep.heading("Sub-volume statistics")
    rep.text(
        "Violins over random sub-cubes (squares for the 2D HR images). SSA is shown as the share of a "
        "voxel's faces that are interfaces (faces per voxel / number of axes), comparable between 2D and 3D.",
        note=True,
    )
    rep.figure(rm.compare_subvolume_violins(subs, phase_names=names), "subvolume_violins")
    for ax, per in transport.items():
        st = {
            n: {"volume_fraction": {}, "specific_surface_area": {}, "transport_efficiency": te}
            for n, te in per.items()
        }
        n_cubes = len(next(iter(next(iter(per.values())).values())))
        rep.figure(
            rm.compare_subvolume_violins(st, phase_names=names),
            f"transport_axis{ax}",
            caption=f"Transport efficiency VF/τ along axis {ax}, per phase, over {n_cubes} random sub-cubes "
            f"of {res['subvolumes']['SR']['size']}³ — the paper's violins use 256; fewer here because each "
            "needs a diffusion solve per phase (a CPU compromise): --transport 256 for the paper's",
        )


def _curves_section(rep, curves, names, region):
    from ..report import microstructure as rm

    rep.heading("Two-point correlation and chord lengths")
    hr_note = f"; HR: all {curves['HR']['n_images']} HR image(s) pooled" if "HR" in curves else ""
    rep.figure(
        rm.compare_two_point_correlation(curves, phase_names=names, conditional=True),
        "two_point_correlation",
        caption="Conditional two-point correlation S_ab(d)/VF_a = P(x + d in b | x in a), the form the "
        "paper's Fig. 10 describes (intra-phase curves start at 1, inter-phase at 0); metrics.json holds "
        "the joint S_ab(d) = P(x in a, x + d in b), which starts at VF_a. "
        f"SR/truth: {region}, mean of the three axes{hr_note}, mean of the images' two axes",
    )
    rep.figure(
        rm.compare_chord_lengths(curves, phase_names=names),
        "chord_lengths",
        caption="Chord length distributions, length-weighted as in the paper's Fig. 10: the probability that "
        "a voxel of the phase lies in a chord of length d along the axis, d·N(d)/Σ d·N(d) (metrics.json also "
        "holds the number-weighted N(d)/ΣN); chords cut by the faces left out. "
        f"SR/truth: {region}{hr_note}; a line per axis",
    )


def _fft_section(rep, res, fft, names):
    from ..report import microstructure as rm

    rep.heading("FFT magnitude profiles (paper Fig. 18)")
    fsum = {n: {"volume_fraction": {p: 0 for p in f}, "fft_profile": f} for n, f in fft.items()}
    rep.figure(
        rm.compare_fft_profiles(fsum, phase_names=names),
        "fft_profiles",
        caption="Radially averaged |FFT| of each phase map over slices normal to Z. As in the paper's "
        "Fig. 18 the SR is set against the truth blurred with the LR simulation's kernel "
        f"('{BLURRED_TRUTH}', each phase's indicator; needs a truth and the scale): the resolution the LR "
        f"volume was made from, at the SR's voxel size. '{NEAREST_LR}' is the LR volume upsampled by "
        "repetition: its block edges add high-frequency harmonics the LR does not resolve, so it cannot "
        "show the SR's resolution gain",
    )
    rep.table(
        res["fft_high_frequency_share"],
        caption="share of |FFT| above 1/8 cycles per voxel, per phase (a resolution proxy; the nearest-"
        "upsampled LR left out: its block edges count there)",
    )
    rep.table(
        res["fft_orientation_ratio"],
        caption="FFT power along the diagonals / along the axes at 0.1–0.35 cycles per voxel, per phase and "
        "slicing plane; away from the HR image's, the SR has textures aligned with the voxel grid (above: "
        "along the diagonals, below: along the axes)",
    )

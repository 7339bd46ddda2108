import numpy as np
import pytest

from matsight.data.microstructures import particle_electrode
from matsight.metrics.microstructure import subvolume_statistics, summary
from matsight.report import Report
from matsight.report import microstructure as rm


def test_compare_plots_and_tables_for_several_volumes(tmp_path):
    vols = {
        name: particle_electrode((24, 24, 24), radius=4, seed=s) for s, name in enumerate(["GT", "SR", "HR"])
    }
    # τ (the slow part) is exercised by the metrics tests; here only its table rows
    sums = {k: summary(v, tortuosity=[0] if k == "GT" else False, max_distance=8) for k, v in vols.items()}
    subs = {k: subvolume_statistics(v, size=12, n=6, seed=0) for k, v in vols.items()}
    names = {0: "pore", 1: "active", 2: "binder"}
    figs = [
        rm.compare_volume_fractions(sums, phase_names=names),
        rm.compare_two_point_correlation(sums, pairs=["1-1", "0-2"], axis=0),
        rm.compare_chord_lengths(sums, axis=2),
        rm.compare_fft_profiles(sums),
        rm.compare_subvolume_violins(subs, phase_names=names),
        rm.compare_slices(vols, phase_names=names),
        rm.plot_two_point_correlation(sums["GT"]),
    ]
    # one line per volume in each correlation panel; one violin per volume per metric
    assert len(figs[1].axes[0].lines) == 3 and figs[1].axes[0].get_title() == "intra: phase 1"
    assert len(figs[4].axes[0].collections) >= 3
    rows = rm.surface_table(sums, phase_names=names)
    assert rows["TPB density"]["SR"] == sums["SR"]["triple_phase_boundary"]
    table = rm.metrics_table(sums)
    assert set(table["τ phase 1 axis 0"]) == {"GT"} and "VF phase 2" in table
    rep = Report(tmp_path / "r", "t")
    rep.figure(figs[5], "f5", dpi=40)
    rm.summary_report(rep, sums, subvolumes=subs, phase_names=names, prefix="all_")
    page = rep.write().read_text()
    assert "all_subvolume_violins.png" in page and (tmp_path / "r" / "f5.png").stat().st_size > 2000


def test_single_volume_helpers_accept_one_summary(tmp_path):
    vol = np.zeros((16, 16, 16), dtype=np.uint8)
    vol[:, :8] = 1
    s = summary(vol, tortuosity=False, max_distance=4)
    assert rm.plot_volume_fractions(s).axes[0].get_ylabel() == "volume fraction"
    assert "SSA phase 0" in rm.surface_table(s)
    rm.plot_chord_lengths(s)
    rm.plot_fft_profiles(s)
    rm.plot_subvolume_violins(subvolume_statistics(vol, size=8, n=4))


def test_chord_plot_is_length_weighted():
    # every line along axis 1: chords of 2 and 6 voxels (number pdf 1/2, 1/2; length-weighted 0.25, 0.75)
    vol = np.zeros((2, 11, 3), dtype=np.uint8)
    vol[:, [1, 2, 4, 5, 6, 7, 8, 9]] = 1
    s = summary(vol, axes=[1], tortuosity=False, max_distance=4)
    assert s["chord_length"]["1"]["1"]["length_weighted_pdf"] == [0, 0.25, 0, 0, 0, 0.75]
    ax = rm.compare_chord_lengths({"v": s}, axis=1).axes[1]  # panel of phase 1
    (line,) = ax.lines
    np.testing.assert_allclose(line.get_ydata(), [0, 0.25, 0, 0, 0, 0.75])
    assert ax.get_ylabel() == "P(voxel in a chord of length d)"
    # summaries written before length_weighted_pdf existed (count and length only) plot the same
    old = {k: v for k, v in s["chord_length"]["1"]["1"].items() if k in ("length", "count", "mean")}
    (line,) = rm.compare_chord_lengths({"v": {**s, "chord_length": {"1": {"1": old}}}}).axes[1].lines
    np.testing.assert_allclose(line.get_ydata(), [0, 0.25, 0, 0, 0, 0.75])


def test_conditional_two_point_correlation():
    vol = particle_electrode((20, 20, 20), radius=3, seed=1)
    s = summary(vol, tortuosity=False, max_distance=6)
    tp = s["two_point_correlation"]
    fig = rm.compare_two_point_correlation({"v": s}, pairs=["1-1", "1-2"], axis=0, conditional=True)
    intra, inter = (ax.lines[0].get_ydata() for ax in fig.axes[:2])
    vf = tp["1-1"]["0"][0]
    assert vf == pytest.approx(s["volume_fraction"]["1"], abs=1e-6)
    # P(same phase at d | phase 1 at x): 1 at d = 0; P(binder at d | phase 1 at x): 0 at d = 0
    np.testing.assert_allclose(intra, np.asarray(tp["1-1"]["0"]) / vf)
    np.testing.assert_allclose(inter, np.asarray(tp["1-2"]["0"]) / vf)
    assert intra[0] == pytest.approx(1.0) and inter[0] == 0
    assert "P(b at x+d | a at x)" in fig.axes[0].get_ylabel()
    joint = rm.compare_two_point_correlation({"v": s}, pairs=["1-1"], axis=0).axes[0]
    assert joint.lines[0].get_ydata()[0] == pytest.approx(vf) and "P(a at x, b at x+d)" in joint.get_ylabel()

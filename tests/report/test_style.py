import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

from matsight.report import Report, style


def _fig(ncols=1):
    fig = Figure(figsize=(3 * ncols + 1, 3), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _labels():
    img = np.zeros((40, 50), dtype=np.uint8)
    img[:, 20:] = 1
    img[25:, 35:] = 2
    return img


def test_a_phase_has_one_colour_in_every_call():
    assert style.phase_colour(2) == style.PHASE_COLOURS[2] and len(set(style.PHASE_COLOURS)) == 8
    a, _ = style.label_cmap(3)
    b, _ = style.label_cmap(6)
    assert a(2) == b(2) and a(1) == b(1)
    fig, (ax1, ax2) = _fig(2)
    style.show_labels(ax1, _labels())
    style.show_labels(ax2, _labels()[:, 25:])  # no phase 0 here: phase 2 keeps its colour
    c1 = ax1.images[0].to_rgba(np.array([[2]]))
    c2 = ax2.images[0].to_rgba(np.array([[2]]))
    np.testing.assert_allclose(c1, c2)


def test_label_figure_has_legend_outside_and_scale_bar():
    fig, (ax,) = _fig()
    style.show_labels(ax, _labels(), names={0: "pore", 1: "active", 2: "binder"}, spacing=20.0, unit="nm")
    meta = style.figure_meta(fig)
    assert meta["scale_bar"] == 1 and meta["legend"] == 1 and meta["images"] == 1
    bars = [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]
    assert len(bars) == 1 and bars[0].get_gid() == style.SCALE_BAR_GID
    # 50 px × 20 nm = 1000 nm wide: a 200 nm bar, 10 px long
    assert bars[0].txt_label.get_text() == "200 nm"
    leg = ax.get_legend()
    assert leg.get_gid() == style.LEGEND_GID and [t.get_text() for t in leg.get_texts()] == [
        "pore",
        "active",
        "binder",
    ]
    fig.canvas.draw()
    assert leg.get_window_extent().x0 >= ax.get_window_extent().x1  # outside the data


def test_scale_bar_without_calibration_is_in_pixels():
    fig, (ax,) = _fig()
    style.show_image(ax, np.random.default_rng(0).random((30, 100)))
    assert ax.artists[0].txt_label.get_text() == "20 px" and style.figure_meta(fig)["scale_bar"] == 1


@pytest.mark.parametrize(("target", "want"), [(1000 / 5, 200), (7.3, 5), (0.031, 0.02), (1.0, 1)])
def test_nice_length(target, want):
    assert style.nice_length(target) == pytest.approx(want)


def test_violins_only_with_enough_samples():
    fig, (ax,) = _fig()
    rng = np.random.default_rng(1)
    drawn = style.distribution(ax, {"many": rng.random(8), "two": rng.random(2)}, label="VF/τ", unit="1")
    assert drawn == {"violins": 1, "points": 1}
    assert ax.get_ylabel() == "VF/τ (1)"
    assert [c.get_gid() for c in ax.collections if c.get_gid()] == ["matsight-violin", "matsight-points"]
    fig2, (ax2,) = _fig()
    assert style.distribution(ax2, rng.random(7), label="SSA", unit="1/nm") == {"violins": 0, "points": 1}


def test_svg_written_beside_png_and_metadata_in_page(tmp_path):
    fig, (ax,) = _fig()
    style.show_labels(ax, _labels(), spacing=5.0)
    png = style.save_figure(fig, tmp_path / "a.png")
    assert png.is_file() and (tmp_path / "a.svg").is_file()
    assert style.SCALE_BAR_GID in (tmp_path / "a.svg").read_text()
    rep = Report(tmp_path / "r", "t", vector=True)
    rep.figure(fig, "labels")
    page = rep.write().read_text()
    assert (tmp_path / "r" / "labels.svg").is_file() and 'href="labels.svg"' in page
    assert 'data-scale-bar="1"' in page and 'data-legend="1"' in page


def test_metrics_report_figures_carry_legend_scale_bars_and_units():
    from matsight.metrics.microstructure import subvolume_statistics
    from matsight.report import microstructure as rm

    vol = np.zeros((12, 12, 12), dtype=np.uint8)
    vol[:, 4:] = 1
    vol[6:, 8:] = 2
    fig = rm.compare_slices({"GT": vol, "SR": vol}, phase_names={2: "binder"}, spacing=(10, 20, 20))
    meta = style.figure_meta(fig)
    assert meta["scale_bar"] == 6 and meta["legend"] == 1 and meta["images"] == 6
    assert fig.legends[0].get_gid() == style.LEGEND_GID
    assert fig.legends[0].get_patches()[2].get_facecolor() == pytest.approx(
        (0.337, 0.706, 0.914, 1), abs=1e-3
    )
    few = rm.plot_subvolume_violins(subvolume_statistics(vol, size=6, n=2, seed=0))
    many = rm.plot_subvolume_violins(subvolume_statistics(vol, size=6, n=8, seed=0), length_unit="nm")
    assert style.figure_meta(few)["violins"] == 0 and style.figure_meta(few)["points"] > 0
    assert style.figure_meta(many)["points"] == 0 and style.figure_meta(many)["violins"] > 0
    assert all(ax.get_ylabel() for ax in many.axes if ax.get_visible())
    assert any(ax.get_ylabel() == "SSA phase 1 (1/nm)" for ax in many.axes)

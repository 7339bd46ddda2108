"""restore's figures follow the report style: scale bars from the pixel size, legends outside the data,
labelled axes with units."""

import re

import numpy as np

from matsight.report import style
from matsight.restore.evaluate import panels_figure, profile_figure, write_report
from matsight.restore.train import _write_history, curves_figure


def _images(rng):
    hq = rng.normal(100, 10, (48, 64)).astype(np.float32)
    return {"HQ": hq, "LQ bicubic": hq + 5, "InDI N=4": hq - 2}


def test_panels_carry_a_scale_bar_in_the_given_unit(rng):
    fig = panels_figure(_images(rng), spacing=1.3, unit="µm")
    assert style.figure_meta(fig)["scale_bar"] == 3
    labels = [a.artists[0].txt_label.get_text() for a in fig.axes]
    assert labels == ["10 µm"] * 3  # 64 px × 1.3 µm / 5 = 16.6 µm → the nice length 10 µm
    fig = panels_figure(_images(rng))
    assert fig.axes[0].artists[0].txt_label.get_text().endswith("px")


def test_profiles_have_physical_x_units_and_the_legend_outside(rng):
    fig = profile_figure(_images(rng), (10, 4, 24), spacing=1.3, unit="µm")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "x along row 10 (µm)" and "(HQ units)" in ax.get_ylabel()
    assert np.isclose(ax.lines[0].get_xdata()[0], 4 * 1.3)
    leg = ax.get_legend()
    assert (
        leg is not None and leg.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1
    )  # right of the axes
    assert style.figure_meta(fig)["legend"] == 1


def test_the_report_embeds_scale_bars_and_legends(rng, tmp_path):
    imgs = _images(rng)
    hq = imgs.pop("HQ")
    metrics = {k: {"psnr": 1.0} for k in ("HQ", *imgs)}
    page = write_report(tmp_path, metrics, imgs, hq, consistency=hq[::2, ::2] - 100, spacing=0.5, unit="µm")
    html = page.read_text()
    figures = re.findall(r"<figure[^>]*>", html)
    assert len(figures) == 4
    assert sum('data-scale-bar="0"' not in f for f in figures) == 3  # panels, zoom, consistency
    assert any('data-legend="1"' in f for f in figures)  # profiles


def test_training_curves_name_their_axes_with_units_and_keep_legends_outside(tmp_path):
    history = [{"step": s, "loss": 1.0 / s, "lr": 1e-4} for s in range(1, 6)]
    history += [{"step": 5, "psnr_input": 20.0, "psnr_1": 21.0, "psnr_8": 22.0}]
    fig = curves_figure(history)
    loss, psnr = fig.axes[0], fig.axes[1]
    assert psnr.get_ylabel() == "validation PSNR (dB)" and loss.get_xlabel() == "optimiser step"
    assert [t.get_text() for t in psnr.get_legend().get_texts()] == ["LQ input", "InDI N = 1", "InDI N = 8"]
    assert style.figure_meta(fig)["legend"] == 2
    _write_history(tmp_path, history)
    assert (tmp_path / "curves.png").stat().st_size > 0

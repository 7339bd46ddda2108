"""Every report figure carries a scale bar on each image and a legend where lines need one; an SVG beside each
PNG. Checked on the figures' metadata (``data-*`` of each ``<figure>``, ids in the SVG), not on pixels: in
Python, and as rendered by headless Chromium.
"""

import pytest

REPORTS = ("tem_report", "metrics_report", "series_report", "fuse_report", "restore_report")


def _folder(request, name):
    got = request.getfixturevalue(name)
    return got[0] if isinstance(got, tuple) else got


@pytest.mark.parametrize("name", REPORTS)
def test_every_figure_has_scale_bars_legends_and_an_svg(request, rules, name):
    folder = _folder(request, name)
    figs = rules.page_figures((folder / "index.html").read_text())
    assert figs, "the report shows no figure"
    for fig in figs:
        assert not rules.figure_problems(fig), rules.figure_problems(fig)
        png = folder / fig["src"]
        svg = png.with_suffix(".svg")
        assert png.stat().st_size > 1000 and svg.is_file(), fig["src"]
        text = svg.read_text()
        if fig.get("scale-bar"):
            assert 'id="matsight-scale-bar' in text, fig["src"]
        if fig.get("legend"):
            assert 'id="matsight-legend' in text, fig["src"]


def test_tem_figures_show_what_a_reader_needs(tem_report, rules):
    folder, res = tem_report
    figs = {f["src"]: f for f in rules.page_figures((folder / "index.html").read_text())}
    fft, pmap = figs["fft_spots.png"], figs["phase_map.png"]
    # the FFT: one scale bar (1/nm) and the phases' colour key; the map: a bar per panel and the area key
    assert fft["scale-bar"] == 1 and fft["legend"] == 1
    assert pmap["images"] == 2 and pmap["scale-bar"] == 2 and pmap["legend"] == 1
    page = (folder / "index.html").read_text()
    assert f"FFT of the {res.shape[0]}×{res.shape[1]} px frame: {len(res.spots)} spots" in page


def test_fft_scale_bar_is_in_reciprocal_nm_and_clear_of_the_labels(tem_report):
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    from matsight.tem.report import fft_figure

    _, res = tem_report
    fig = fft_figure(res)
    ax = fig.axes[0]
    (bar,) = [a for a in ax.artists if isinstance(a, AnchoredSizeBar)]
    text = bar.txt_label.get_text()
    assert text.endswith(" nm⁻¹")
    # the bar's length in FFT pixels × the FFT pixel (1 / (n_x · pixel size)) is the length it names
    dq = 1 / (res.shape[1] * res.pixel_size_nm[1])
    length_px = bar.size_bar.get_children()[0].get_width()
    assert length_px * dq == pytest.approx(float(text.split()[0]))
    fig.canvas.draw()
    box = bar.get_window_extent()
    labels = [t for t in ax.texts if t.get_text()]
    assert labels and not any(t.get_window_extent().overlaps(box) for t in labels)
    leg = ax.get_legend()
    assert leg.get_window_extent().x0 >= ax.get_window_extent().x1  # the colour key is outside the data


def test_tem_phase_colours_are_the_reports_phase_colours(tem_report):
    from matsight.report.style import PHASE_COLOURS
    from matsight.tem.report import phase_colors

    _, res = tem_report
    names = [p.name for p in res.phases]
    assert [phase_colors(names)[n] for n in names] == list(PHASE_COLOURS[1 : len(names) + 1])


def _dom_figures(page, url):
    page.goto(url)
    page.wait_for_load_state("load")
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('figure')).map((f) => {
            const img = f.querySelector('img');
            return Object.assign({src: img.getAttribute('src'), complete: img.complete,
                                  width: img.naturalWidth, shown: img.getBoundingClientRect().width},
                                 f.dataset);
        })"""
    )


@pytest.mark.parametrize("name", REPORTS)
def test_report_renders_in_chromium_with_every_figure_marked(request, browser, artifacts, rules, name):
    folder = _folder(request, name)
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    try:
        page = ctx.new_page()
        figs = _dom_figures(page, (folder / "index.html").as_uri())
        assert len(figs) == len(rules.page_figures((folder / "index.html").read_text()))
        for fig in figs:
            # dataset keys are camelCase in the DOM: scaleBar → scale-bar
            fig = {("scale-bar" if k == "scaleBar" else k): v for k, v in fig.items()}
            assert fig["complete"] and fig["width"] > 0, fig["src"]
            assert 0 < fig["shown"] <= 1200, fig["src"]  # drawn, and no wider than the page
            assert not rules.figure_problems(fig), rules.figure_problems(fig)
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)
        # each figure's SVG draws in the browser, its scale bars and legends findable by id
        for fig in figs:
            if int(fig.get("scaleBar", fig.get("scale-bar", 0))) or int(fig.get("legend", 0)):
                page.goto((folder / fig["src"]).with_suffix(".svg").as_uri())
                found = page.evaluate(
                    """() => ({bar: document.querySelectorAll('[id^="matsight-scale-bar"]').length,
                               legend: document.querySelectorAll('[id^="matsight-legend"]').length})"""
                )
                assert found["bar"] >= int(fig.get("scale-bar", 0) > 0), fig["src"]
                assert found["legend"] >= int(int(fig.get("legend", 0)) > 0), fig["src"]
    finally:
        ctx.close()


def test_metrics_captions_count_from_the_data(metrics_report):
    page = (metrics_report / "index.html").read_text()
    # two 20³ volumes, 8 sub-volumes each: the captions say so (not a fixed size)
    assert "Volume fractions of the 2 20×20×20 voxel volumes" in page
    assert "8 random sub-volumes of 10 voxels per edge per volume (violins)" in page

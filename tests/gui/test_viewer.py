"""The slice viewer and the pages' small parts in headless Chromium (skips without Playwright/Chromium):
volumes scaled to their panel with square pixels, the label colours' key, slices linked across panels at
the same physical position, live-curve legends off the lines, an empty job list that says so.
"""

import json

import numpy as np
import pytest

pytest.importorskip("starlette")


def _wait(page, expression, timeout=30.0):
    import time

    t0 = time.monotonic()
    while not page.evaluate(expression):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{expression} still false after {timeout:g} s")
        time.sleep(0.05)


@pytest.fixture
def viewer_root(tmp_path):
    """LR 16³ labels (80 nm voxels), its SR 64³ (20 nm, the same phases), an uncertainty map (no
    calibration), a 2D HR image, a run folder.
    """
    import tifffile

    root = tmp_path / "data"
    root.mkdir()
    z = np.arange(16)[:, None, None]
    lr = np.broadcast_to((z // 4) % 3, (16, 16, 16)).astype(np.uint8)  # the phase says which 4-slice block
    sr = np.repeat(np.repeat(np.repeat(lr, 4, 0), 4, 1), 4, 2)
    from matsight.io import write_volume

    write_volume(root / "lr.tif", lr, spacing=80.0)  # nm: the SR's voxel is 4× smaller
    write_volume(root / "sr.tif", sr, spacing=20.0)
    tifffile.imwrite(root / "sr_entropy.tif", np.random.default_rng(0).random((64, 64, 64), dtype=np.float32))
    tifffile.imwrite(root / "hr.tif", sr[0])
    run = root / "runs" / "r"
    run.mkdir(parents=True)
    hist = [
        {"iteration": i, "score": 1 / (i + 1), "lr_agreement": 0.5 + i / 100, "wass": 1.0 - i / 50,
         "g_adv": -i / 40, "vw": 0.1, "vf0": 0.3, "vf1": 0.5, "vf2": 0.2}
        for i in range(0, 40, 5)
    ]  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(hist))
    return root


def _panel(page, path):
    return page.locator(f"#viewer .vpanel[data-path='{path}']")


def test_viewer_scales_links_and_keys_the_panels(page, viewer_root, artifacts, gui_server):
    from matsight.report.style import PHASE_COLOURS

    with gui_server(viewer_root) as (url, app):
        page.goto(f"{url}/fuse?token={app.state.token}")
        # nothing started yet: the job list says so
        page.wait_for_selector("#jobs li.empty")
        assert "no jobs yet" in page.inner_text("#jobs")
        viewer = page.locator("#viewer")
        for path in ("lr.tif", "sr.tif", "sr_entropy.tif"):
            viewer.locator("input.path").fill(path)
            viewer.locator("button.view").click()
            _panel(page, path).locator("img.slice-img").wait_for()
        _wait(page, "[...document.querySelectorAll('#viewer img.slice-img')].every(i => i.naturalWidth > 0)")
        sizes = page.evaluate(
            """() => Array.from(document.querySelectorAll('#viewer .vpanel')).map((p) => {
                const img = p.querySelector('img.slice-img');
                return {path: p.dataset.path, natural: img.naturalWidth,
                        shown: img.getBoundingClientRect().width, panel: p.getBoundingClientRect().width,
                        rendering: getComputedStyle(img).imageRendering};
            })"""
        )
        for s in sizes:
            # every slice fills its panel (16 px and 64 px alike), drawn with square pixels
            assert s["shown"] == pytest.approx(s["panel"], abs=2) and s["rendering"] == "pixelated", s
        assert {s["path"]: s["natural"] for s in sizes} == {"lr.tif": 16, "sr.tif": 64, "sr_entropy.tif": 64}
        shown = {s["path"]: s["shown"] for s in sizes}
        assert shown["lr.tif"] == pytest.approx(shown["sr.tif"], abs=2)

        # scale bars from the calibration: 1280 nm wide either way, so a 200 nm bar of the same drawn length
        bars = page.evaluate(
            """() => Object.fromEntries(Array.from(document.querySelectorAll('#viewer .vpanel')).map((p) => {
                const b = p.querySelector('.scalebar');
                return [p.dataset.path, {text: b.querySelector('.text').textContent, unit: b.dataset.unit,
                                         width: b.querySelector('.bar').getBoundingClientRect().width}];
            }))"""
        )
        assert bars["lr.tif"]["text"] == bars["sr.tif"]["text"] == "200 nm"
        assert bars["lr.tif"]["width"] == pytest.approx(bars["sr.tif"]["width"], abs=1)
        assert bars["lr.tif"]["width"] == pytest.approx(shown["lr.tif"] * 200 / 1280, abs=1.5)
        assert bars["sr_entropy.tif"]["text"] == "10 px"  # no calibration: pixels, as the reports do

        # the label key: the phases present, in the reports' phase colours; none for the grey map
        keys = _panel(page, "lr.tif").locator(".legend .key")
        assert [k.get_attribute("data-label") for k in keys.all()] == ["0", "1", "2"]
        colours = [
            k.locator(".swatch").evaluate("e => getComputedStyle(e).backgroundColor") for k in keys.all()
        ]
        want = [PHASE_COLOURS[i] for i in range(3)]
        assert colours == [
            "rgb({}, {}, {})".format(*(int(c[j : j + 2], 16) for j in (1, 3, 5))) for c in want
        ]
        assert _panel(page, "sr_entropy.tif").locator(".legend").get_attribute("class") == "legend hidden"

        # linked: LR slice 3 (of 16) shows SR / uncertainty slice 14 (of 64), the same physical position
        lr_slider = _panel(page, "lr.tif").locator("input.slice")
        lr_slider.focus()
        page.keyboard.press("Home")
        for _ in range(3):
            page.keyboard.press("ArrowRight")
        assert _panel(page, "lr.tif").locator(".index").inner_text() == "4 / 16"
        assert _panel(page, "sr.tif").locator(".index").inner_text() == "15 / 64"
        assert _panel(page, "sr_entropy.tif").locator(".index").inner_text() == "15 / 64"
        # and back: SR slice 40 → LR slice 10
        sr_slider = _panel(page, "sr.tif").locator("input.slice")
        sr_slider.evaluate("e => { e.value = '40'; e.dispatchEvent(new Event('input')); }")
        assert _panel(page, "lr.tif").locator(".index").inner_text() == "11 / 16"
        sr_img = "document.querySelector(\"#viewer .vpanel[data-path='sr.tif'] img\")"
        _wait(page, f"{sr_img}.src.includes('index=40')")

        # a 2D image joins as its own panel, the axis choice still there for the volumes
        viewer.locator("input.path").fill("hr.tif")
        viewer.locator("button.view").click()
        _panel(page, "hr.tif").locator("img.slice-img").wait_for()
        assert _panel(page, "hr.tif").locator("input.slice").is_disabled()
        assert not viewer.locator("select.axis").is_disabled()

        # live curves: every legend entry sits below the plotting frame, off the lines
        page.fill("#runpick", "runs/r")
        page.click("#runopen")
        page.wait_for_selector("#plot-vf polyline", state="attached")  # flat lines are not "visible"
        below = page.evaluate(
            """() => Array.from(document.querySelectorAll('svg.plot')).map((svg) => {
                const frame = svg.querySelector('rect.frame').getBBox();
                return Array.from(svg.querySelectorAll('text.legend')).map(
                    (t) => t.getBBox().y >= frame.y + frame.height);
            })"""
        )
        assert all(len(b) >= 2 and all(b) for b in below), below
        # the VF curves in the phase colours, as the reports draw them
        stroke = "ls => ls.map((l) => l.getAttribute('stroke'))"
        strokes = page.eval_on_selector_all("#plot-vf polyline", stroke)
        assert strokes == list(PHASE_COLOURS[:3])
        page.screenshot(path=str(artifacts / "viewer_linked.png"), full_page=True)


def test_tem_open_button_has_its_own_line(page, gui_server, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    with gui_server(root) as (url, app):
        page.goto(f"{url}/tem?token={app.state.token}")
        button = page.locator("#open").bounding_box()
        label = page.locator("label", has_text="pixel size (nm").bounding_box()
        # the pixel-size label starts below the button, not beside it
        assert label["y"] >= button["y"] + button["height"] - 1


def test_page_phase_colours_are_the_reports():
    """The pages' phase colours (common.js) are the figures' (report.style): one per phase everywhere."""
    import re
    from importlib import resources

    from matsight.gui import render
    from matsight.report.style import PHASE_COLOURS

    js = (resources.files("matsight.gui") / "static" / "common.js").read_text()
    listed = re.search(r"MS\.PHASE_COLOURS = \[([^\]]*)\]", js).group(1)
    assert re.findall(r'"(#[0-9A-Fa-f]{6})"', listed) == list(PHASE_COLOURS)
    # and the slices the server draws
    rgb = render.label_rgb(np.arange(len(PHASE_COLOURS))[None])[0]
    assert [render.hex_rgb(c) for c in PHASE_COLOURS] == [tuple(int(v) for v in px) for px in rgb]

"""The tem widget: calibration from the layer, spots as points in 1/nm, phases in a table, maps as labels."""

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")  # napari's make_napari_viewer needs qtbot

TIMEOUT_MS = 120_000
SRTIO3 = Path(__file__).resolve().parents[1] / "tem" / "data" / "SrTiO3.yaml"


def _widget(viewer):
    from matsight.napari.tem_widget import TemWidget

    w = TemWidget(viewer)
    viewer.window.add_dock_widget(w, name="tem", area="right")
    w.reset_choices()
    return w


def test_two_phase_frame(make_napari_viewer, qtbot, screenshot):
    from matsight.tem import lattice

    frame = lattice.two_phase_image((256, 256), 0.02, seed=0)  # LiF left, Li right
    viewer = make_napari_viewer()
    layer = viewer.add_image(frame.image.astype(np.float32), name="frame", scale=(0.02, 0.02), units="nm")
    w = _widget(viewer)
    assert w.pixel_size.value == "0.02" and "layer's scale" in w.calibration.value
    w.analyse()
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    res = w.result
    assert res is not None, w.status.value
    assert res.pixel_size_nm == (0.02, 0.02)
    assert {"LiF", "Li"} <= set(res.phases_found)

    spots = viewer.layers["frame spots"]
    assert len(spots.data) == 2 * len(res.spots)
    # a spot's position is its g (1/nm): |g| = 10 / d(Å)
    d = 10.0 / np.hypot(*spots.data[: len(res.spots)].T)
    assert np.allclose(d, res.spots.d, rtol=1e-6)
    assert set(spots.features["phase"]) >= {"LiF", "Li"}
    fft = viewer.layers["frame FFT"]
    assert fft.scale[0] == pytest.approx(1 / (256 * 0.02))
    # the FFT's centre pixel sits at g = 0
    assert np.allclose(fft.data_to_world((128, 128)), 0)

    maps = viewer.layers["frame phase map"]
    assert tuple(maps.scale) == tuple(layer.scale)
    names = res.maps.phase_names
    left = names.index("LiF") + 1
    assert (maps.data[:, :100] == left).mean() > 0.5
    assert w.table.shape[0] == len(res.spots)
    assert "LiF" in w.summary.value

    w.view.value = "FFT and spots"
    assert spots.visible and fft.visible and not maps.visible
    screenshot(viewer, "tem_fft", view=w._show_view)
    w.view.value = "image and phase map"
    assert maps.visible and layer.visible and not spots.visible
    screenshot(viewer, "tem", view=w._show_view)


def test_uncalibrated_image_asks_for_the_pixel_size(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    viewer.add_image(np.random.default_rng(0).random((64, 64)), name="raw")
    w = _widget(viewer)
    assert "no calibration" in w.calibration.value
    w.analyse()
    assert w.status.value == "error: the image has no calibration; type its pixel size in nm (e.g. 0.02)"
    assert "raw FFT" not in viewer.layers
    w.pixel_size.value = "-1"
    w.analyse()
    assert w.status.value == "error: the pixel size must be a positive number of nm (e.g. 0.02), got '-1'"


def test_real_srtio3_image(make_napari_viewer, qtbot, shared_data):
    """The real SrTiO3 image (ncempy's test data), opened with its calibration, is identified as SrTiO3."""
    from matsight.io import read_microscope

    mi = read_microscope(shared_data / "tem" / "16_STOimage.emi")
    viewer = make_napari_viewer()
    viewer.add_image(np.asarray(mi.data, np.float32), name="STO", scale=mi.pixel_size_nm, units="nm")
    w = _widget(viewer)
    assert float(w.pixel_size.value) == pytest.approx(0.0100127, rel=1e-3)
    w.phases.value = str(SRTIO3)
    w.tolerance.value = 5.0  # the scan calibration reads spacings 3–4 % long
    w.maps.value = False
    w.analyse()
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    assert w.result is not None, w.status.value
    assert w.result.phases_found == ["SrTiO3"]
    assert "STO phase map" not in viewer.layers

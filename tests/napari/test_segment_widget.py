"""The segment widget: strokes on an image → trained model → prediction layer; retrains on new strokes."""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")  # napari's make_napari_viewer needs qtbot

from matsight.segment.synthetic import draw_strokes, grayscale_from_labels, phase_image  # noqa: E402

TIMEOUT_MS = 120_000


@pytest.fixture
def scene():
    truth = phase_image((96, 96), n_phases=3, seed=2)
    image = grayscale_from_labels(truth, seed=2)
    strokes = draw_strokes(truth, strokes_per_phase=2, seed=2)
    return truth, image, strokes


def _widget(viewer):
    from matsight.napari.segment_widget import SegmentWidget

    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w, name="segment", area="right")
    return w


def test_strokes_train_predict_and_retrain(make_napari_viewer, qtbot, scene, screenshot):
    truth, image, strokes = scene
    viewer = make_napari_viewer()
    viewer.add_image(image, name="sample", scale=(2.5, 2.5))
    w = _widget(viewer)
    w.trees.value = 20
    layer = w.add_strokes_layer()
    assert layer.name == "sample strokes" and layer.data.shape == image.shape
    assert tuple(layer.scale) == (2.5, 2.5)
    layer.data = strokes.astype(np.uint8)
    w.train()
    assert w.busy
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    pred = viewer.layers["sample prediction"]
    assert pred.data.shape == image.shape and tuple(pred.scale) == (2.5, 2.5)
    first = float((pred.data == truth).mean())
    assert first > 0.8, first
    assert "held-out pixel accuracy" in w.status.value
    # the prediction's phase p and the stroke label p + 1 share one colour
    assert np.allclose(pred.colormap.map(np.array([1]))[0], layer.colormap.map(np.array([2]))[0])

    # a new stroke (here: the truth of one band of rows) retrains by itself
    more = layer.data.copy()
    more[40:44] = truth[40:44] + 1
    layer.data = more
    model_before = w.model
    layer.events.paint(value=[])
    qtbot.waitUntil(lambda: w.model is not model_before and not w.busy, timeout=TIMEOUT_MS)
    assert float((pred.data == truth).mean()) >= first - 0.02
    viewer.layers.selection.active = layer
    screenshot(viewer, "segment")


def test_apply_and_save(make_napari_viewer, qtbot, scene, tmp_path):
    from matsight import segment

    truth, image, strokes = scene
    viewer = make_napari_viewer()
    viewer.add_image(image, name="sample")
    viewer.add_labels(strokes.astype(np.uint8), name="strokes")
    other = viewer.add_image(grayscale_from_labels(truth, seed=9), name="other")
    w = _widget(viewer)
    w.image.value, w.strokes.value, w.trees.value = viewer.layers["sample"], viewer.layers["strokes"], 10
    w.train()
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    w.apply_to.value = other
    w.apply()
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    assert (viewer.layers["other prediction"].data == truth).mean() > 0.8
    w.model_dir.value = tmp_path / "model"
    assert w.save() == tmp_path / "model"
    assert segment.load(tmp_path / "model").phases == [0, 1, 2]


def test_one_phase_of_strokes_is_one_line(make_napari_viewer, qtbot, scene):
    _, image, _ = scene
    viewer = make_napari_viewer()
    viewer.add_image(image, name="sample")
    w = _widget(viewer)
    layer = w.add_strokes_layer()
    layer.data[10, 10:20] = 1
    w.train()
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    assert w.status.value.startswith("error: paint strokes of at least two phases")
    assert "\n" not in w.status.value and "sample prediction" not in viewer.layers


def test_real_xct_slice(make_napari_viewer, qtbot, shared_data):
    """A real uint16 XCT slice of a Li-ion cell (MPJ-Imaging/battery_xct_workflows): strokes on the three
    grey-level classes give a segmentation that agrees with multi-Otsu thresholding on most pixels.
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_multiotsu

    from matsight.io import read_volume

    crop = np.asarray(read_volume(shared_data / "xct" / "cell_slice_1.tif"))[208:368, 208:368]
    ref = np.digitize(crop, threshold_multiotsu(crop.astype(np.float32), 3))  # 256 bins, not 65536
    strokes = np.zeros(crop.shape, np.uint8)
    for k in range(3):  # every 9th row of each class's core, as a user's sparse strokes
        core = ndi.binary_erosion(ref == k, iterations=2)
        core[np.arange(crop.shape[0]) % 9 != 0] = False
        strokes[core] = k + 1
    viewer = make_napari_viewer()
    viewer.add_image(crop, name="xct")
    viewer.add_labels(strokes, name="strokes")
    w = _widget(viewer)
    w.image.value, w.strokes.value, w.trees.value = viewer.layers["xct"], viewer.layers["strokes"], 20
    w.train()
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    pred = viewer.layers["xct prediction"].data
    assert pred.dtype == np.uint8 and (pred == ref).mean() > 0.75
    assert [layer.name for layer in viewer.layers] == ["xct", "xct prediction", "strokes"]

"""The open widget: a matsight output folder as layers, scaled by its recorded calibration."""

import shutil

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")  # napari's make_napari_viewer needs qtbot


def _widget(viewer):
    from matsight.napari.open_widget import OpenWidget

    w = OpenWidget(viewer)
    viewer.window.add_dock_widget(w, name="open", area="right")
    return w


def test_open_a_calibrated_output_folder(make_napari_viewer, tmp_path, screenshot):
    from matsight.data.microstructures import particle_electrode
    from matsight.io import write_volume

    labels = particle_electrode((24, 64, 64), radius=6, seed=4).astype(np.uint8)
    grey = (labels * 0.4 + np.random.default_rng(0).normal(0, 0.1, labels.shape)).astype(np.float32)
    out = tmp_path / "segment"
    write_volume(out / "labels.tif", labels, spacing=(40.0, 20.0, 20.0))
    write_volume(out / "image.tif", grey, spacing=(40.0, 20.0, 20.0))
    viewer = make_napari_viewer()
    w = _widget(viewer)
    w.folder.value = out
    added = w.open()
    assert [layer.name for layer in added] == ["image", "labels"]
    assert tuple(viewer.layers["labels"].scale) == (40.0, 20.0, 20.0)
    assert np.array_equal(viewer.layers["labels"].data, labels)
    assert w.kind.value == "folder: 2 layer(s)" and w.status.value == ""
    screenshot(viewer, "open")


def test_real_superres_volume_without_calibration(make_napari_viewer, tmp_path, shared_data):
    """The SOFC anode's real LR volume (tldr-group/SuperRes) opens as labels; no calibration is invented."""
    folder = tmp_path / "sofc"
    folder.mkdir()
    shutil.copy(shared_data / "superres" / "sofc_lr.tif", folder)
    viewer = make_napari_viewer()
    w = _widget(viewer)
    w.folder.value = folder
    (layer,) = w.open()
    assert layer.data.shape == (62, 62, 62) and set(np.unique(layer.data)) == {0, 1, 2}
    assert tuple(layer.scale) == (1.0, 1.0, 1.0)
    assert w.status.value == "sofc_lr.tif: no calibration recorded; scale 1 (pixels)"


def test_empty_folder_is_one_line(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    w = _widget(viewer)
    w.open()
    assert w.status.value.startswith("error: choose a matsight output folder")
    w.folder.value = tmp_path
    assert w.open() == []
    assert w.status.value == f"error: {tmp_path.name} (folder) holds no .tif/.npy/.zarr volume to show"
    assert len(viewer.layers) == 0


def test_dropped_folder_opens_through_the_plugin_reader(make_napari_viewer, tmp_path):
    """What drag and drop does: napari asks the plugin's reader; it takes folders with a matsight marker."""
    import json

    from matsight.io import write_volume

    out = tmp_path / "enhanced"
    write_volume(out / "enhanced.tif", np.ones((3, 16, 16), np.float32), spacing=(30.0, 15.0, 15.0))
    (out / "enhance.json").write_text(json.dumps({"steps": 4}))
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(out), plugin="matsight")
    assert layer.name == "enhanced" and tuple(layer.scale) == (30.0, 15.0, 15.0)

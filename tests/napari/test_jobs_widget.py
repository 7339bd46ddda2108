"""Fuse and restore jobs on layers: run in the background, report progress, cancel, results as layers."""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")  # napari's make_napari_viewer needs qtbot

TIMEOUT_MS = 300_000
FUSE_TINY = "gen_width: 8, gen_min_width: 4, critic_widths: [4, 4, 8, 8], fake_batch: 1, real_batch: 4"
RESTORE_TINY = (
    "features: [4, 8], time_embedding: 8, crop: 16, batch: 2, val_crop: 24, auto_steps: [1, 2], steps: 2"
)


def _widget(viewer):
    from matsight.napari.jobs_widget import JobsWidget

    w = JobsWidget(viewer)
    viewer.window.add_dock_widget(w, name="jobs", area="right")
    w.reset_choices()
    return w


def _seen_progress(w):
    seen = []
    w.worker.yielded.connect(lambda p: seen.append(p) if p.step >= 0 else None)
    return seen


def test_fuse_train_then_generate(make_napari_viewer, qtbot, tmp_path, screenshot):
    from matsight.data.degrade import degrade
    from matsight.data.microstructures import particle_electrode

    gt = particle_electrode((48, 48, 48), radius=5, seed=1)
    lr, _ = degrade(gt, 4, merge=[(0, 2)])
    viewer = make_napari_viewer()
    lr_layer = viewer.add_labels(lr, name="LR", scale=(400.0, 400.0, 400.0), units="nm")
    viewer.add_labels(gt[24], name="HR", scale=(100.0, 100.0))
    w = _widget(viewer)
    w.lr.value, w.hr.value = viewer.layers["LR"], viewer.layers["HR"]
    w.run_dir.value = tmp_path / "run"
    w.steps.value = 2
    w.settings.value = FUSE_TINY
    w.start_job()
    seen = _seen_progress(w)
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    assert w.status.value.startswith("fuse run in"), w.status.value
    assert (tmp_path / "run" / "last.safetensors").is_file()
    assert any(p.total == 2 for p in seen)  # the training's own steps reached the UI
    sr = viewer.layers["LR SR"]
    assert sr.data.ndim == 3 and set(np.unique(sr.data)) <= {0, 1, 2}
    assert tuple(sr.scale) == pytest.approx((100.0, 100.0, 100.0))  # LR voxel / scale factor 4
    # the SR volume covers the LR volume's place (less the cropped border)
    lo, hi = sr.extent.world
    lr_lo, lr_hi = lr_layer.extent.world
    assert np.all(lo >= lr_lo - 1e-6) and np.all(hi <= lr_hi + 1e-6)
    viewer.layers["HR"].visible = lr_layer.visible = False
    screenshot(viewer, "jobs")

    # generate again from the run folder alone
    w.job.value = "fuse generate"
    assert w.hr.native.isHidden() and not w.lr.native.isHidden()
    w.start_job()
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    assert w.status.value.startswith("SR volume"), w.status.value


def test_restore_train_apply_and_cancel(make_napari_viewer, qtbot, tmp_path):
    from skimage.transform import resize

    from matsight.data.grayscale import synthetic_grayscale

    hq = synthetic_grayscale((64, 64), seed=3).astype(np.float32)
    lq = resize(hq, (32, 32), order=1, anti_aliasing=True).astype(np.float32)
    viewer = make_napari_viewer()
    viewer.add_image(lq, name="LQ", scale=(20.0, 20.0), units="nm")
    viewer.add_image(hq, name="HQ", scale=(10.0, 10.0), units="nm")
    w = _widget(viewer)
    w.job.value = "restore train"
    w.lq.value, w.hq.value = viewer.layers["LQ"], viewer.layers["HQ"]
    assert w._restore_scale(w.lq.value, w.hq.value) == [2.0, 2.0]
    w.run_dir.value = tmp_path / "model"
    w.steps.value = 3
    w.settings.value = RESTORE_TINY
    w.start_job()
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    assert w.status.value.startswith("restore model in"), w.status.value
    enhanced = viewer.layers["LQ enhanced"]
    assert enhanced.data.shape == hq.shape and tuple(enhanced.scale) == (10.0, 10.0)

    # a long training stops on Cancel, its state saved for a resume
    w.run_dir.value = tmp_path / "long"
    w.steps.value = 100_000
    w.start_job()
    seen = _seen_progress(w)
    qtbot.waitUntil(lambda: len(seen) > 2, timeout=TIMEOUT_MS)
    w.cancel_button.clicked.emit()
    qtbot.waitUntil(lambda: not w.busy, timeout=TIMEOUT_MS)
    assert w.status.value.startswith("cancelled"), w.status.value
    assert (tmp_path / "long" / "state.safetensors").is_file()


def test_missing_inputs_are_one_line(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    w = _widget(viewer)
    w.start_job()
    assert w.status.value == "error: add or choose the LR labels layer" and not w.busy
    viewer.add_labels(np.zeros((4, 4, 4), np.uint8), name="LR")
    viewer.add_labels(np.zeros((16, 16), np.uint8), name="HR")
    w.reset_choices()
    w.start_job()
    assert w.status.value == "error: choose the run folder"
    w.run_dir.value = tmp_path / "run"
    w.settings.value = "gen_width 8"
    w.start_job()
    assert w.status.value.startswith("error: settings must read 'name: value, name: value'")
    w.settings.value = "gen_widht: 8"
    w.start_job()
    assert w.status.value.startswith("error: ") and "gen_widht" in w.status.value, w.status.value
    assert not w.busy and not (tmp_path / "run").exists()

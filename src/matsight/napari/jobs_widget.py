"""Fuse and restore jobs on layers: train a run folder, apply it, see the result as a layer.

- **fuse train**: an LR Labels volume and an HR Labels image → a SuperRes run folder
  (:func:`matsight.fuse.train`); then, if ticked, the LR volume super-resolved by it.
- **fuse generate**: a run folder and an LR Labels volume → the SR volume (:func:`matsight.fuse.predict`).
- **restore train**: an LQ and an HQ Image layer of the same sample → registered pair
  (:func:`matsight.restore.register.prepare_pair`) → an InDI model folder (:func:`matsight.restore.train`);
  then, if ticked, the LQ image enhanced by it.
- **restore apply**: a model folder and an LQ Image → the enhanced image (:func:`matsight.restore.predict`).

Jobs run in a napari thread worker, report every step (:mod:`matsight.progress`), and stop on *Cancel* (a
training saves its state and resumes from it when started again on the same folder). Results are placed in
physical coordinates: an SR volume at the LR layer's voxel size divided by the scale factor, an enhanced image
on the HQ grid.
"""

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, LineEdit, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.viewer import Viewer

from .. import fuse, restore
from .._atomic import make_folder
from .._errors import InputError
from ..io import validate_labels
from ..restore.config import make_config as restore_config
from ..restore.register import prepare_pair
from ._base import JobWidget, add_or_update, layer_scale_nm
from .folders import phase_colormap
from .settings import parse_settings

__all__ = ["JobsWidget", "JOBS", "train_config"]

JOBS = ("fuse train", "fuse generate", "restore train", "restore apply")


def _folder(value, what):
    text = str(value or "").strip()
    if text in ("", "."):
        raise InputError(f"choose the {what} folder")
    return Path(text)


def _voxel(layer):
    """The layer's voxel size per axis (nm when calibrated, else its scale) and translate, as arrays."""
    return np.asarray(layer.scale, float), np.asarray(layer.translate, float)


def train_config(method, steps, settings):
    """The ``cpu`` preset of ``method`` ("fuse" or "restore") with the typed settings and optimiser steps.

    Built before the job starts, so a misspelt setting is one line at once, not an error from the worker.
    """
    extra = {**settings, **({"training.steps": int(steps)} if steps else {})}
    if method == "fuse":
        return fuse.make_config("cpu", settings=extra)
    return restore_config("cpu", **extra)


def fuse_train_job(lr, hr, run, *, config, callback):
    """Train a SuperRes run on label arrays; returns the run folder (resumes an unfinished run there)."""
    lr = validate_labels(lr, name="LR layer")
    hr = validate_labels(hr, name="HR layer")
    fuse.train((lr, hr), make_folder(run), config=config, callback=callback)
    return run


def restore_train_job(lq, hq, run, *, scale, config, callback):
    """Register the LQ/HQ pair, train an InDI model in ``run``; returns the run folder."""
    lq, hq = np.asarray(lq, np.float32), np.asarray(hq, np.float32)
    if lq.ndim != hq.ndim:
        raise InputError(
            f"the LQ ({lq.ndim}D) and HQ ({hq.ndim}D) layers must both be images or both volumes"
        )
    pair = prepare_pair(lq, hq, scale=scale)
    restore.train(pair, make_folder(run), config=config, callback=callback)
    return run


class JobsWidget(JobWidget):
    """Start fuse / restore jobs on layers, with progress, in the background, cancellable."""

    def __init__(self, viewer: Viewer):
        super().__init__(viewer)
        self.job = ComboBox(label="job", choices=list(JOBS), value=JOBS[0])
        self.lr = self.layer_choice("LR labels", Labels)
        self.hr = self.layer_choice("HR labels", Labels)
        self.lq = self.layer_choice("LQ image", Image)
        self.hq = self.layer_choice("HQ image", Image)
        self.run_dir = FileEdit(label="run folder", mode="d", value="")
        self.steps = SpinBox(label="steps (0: preset)", value=0, min=0, max=10_000_000)
        self.settings = LineEdit(label="settings", value="")
        self.then_apply = CheckBox(text="apply after training", value=True)
        self.start_button = PushButton(text="start")
        self.extend([
            self.job, self.lr, self.hr, self.lq, self.hq, self.run_dir, self.steps, self.settings,
            self.then_apply, self.start_button, *self.footer(),
        ])  # fmt: skip
        self.job.changed.connect(self._show_fields)
        self.start_button.changed.connect(self.start_job)
        self._show_fields()

    def _show_fields(self, *_):
        job = self.job.value
        self.lr.visible = job.startswith("fuse")
        self.hr.visible = job == "fuse train"
        self.lq.visible = job.startswith("restore")
        self.hq.visible = job == "restore train"
        self.steps.visible = self.settings.visible = self.then_apply.visible = job.endswith("train")

    def start_job(self, *_):
        """Check the inputs, then run the chosen job in a thread worker."""
        try:
            fn, done, message = getattr(self, "_" + self.job.value.replace(" ", "_"))()
        except InputError as exc:
            self.say(f"error: {exc}", error=True)
            return None
        return self.start(fn, done, message=message)

    def _need(self, combo, what):
        if combo.value is None:
            raise InputError(f"add or choose the {what} layer")
        return combo.value

    # --------------------------------------------------------------------------------------------- fuse
    def _fuse_train(self):
        lr, hr = self._need(self.lr, "LR labels"), self._need(self.hr, "HR labels")
        run = _folder(self.run_dir.value, "run")
        config = train_config("fuse", self.steps.value, parse_settings(self.settings.value))
        lr_data, hr_data, apply = np.asarray(lr.data), np.asarray(hr.data), self.then_apply.value

        def fn(callback):
            fuse_train_job(lr_data, hr_data, run, config=config, callback=callback)
            return fuse.predict(run, validate_labels(lr_data), callback=callback) if apply else None

        def done(res):
            self.say(f"fuse run in {run}" + ("" if res is None else f"; SR volume {tuple(res.labels.shape)}"))
            if res is not None:
                self._show_sr(lr, res)

        return fn, done, "fuse training"

    def _fuse_generate(self):
        lr = self._need(self.lr, "LR labels")
        run, lr_data = _folder(self.run_dir.value, "run"), np.asarray(lr.data)

        def done(res):
            self._show_sr(lr, res)
            self.say(f"SR volume {tuple(res.labels.shape)} in {res.seconds:.1f} s")

        return (lambda cb: fuse.predict(run, validate_labels(lr_data), callback=cb)), done, "generating"

    def _show_sr(self, lr, res):
        sf = float(res.scale)
        scale, translate = _voxel(lr)
        sr_scale = scale / sf
        # voxel centres: the first SR voxel's centre lies half an SR voxel inside the (cropped) LR edge
        sr_translate = translate - scale / 2 + sr_scale / 2 + res.border * sr_scale
        labels = np.asarray(res.labels)
        colors = phase_colormap(int(labels.max()) + 1)
        add_or_update(
            self.viewer, labels, name=f"{lr.name} SR", kind=Labels, scale=sr_scale, translate=sr_translate,
            colormap=colors,
        )  # fmt: skip

    # ------------------------------------------------------------------------------------------ restore
    def _restore_scale(self, lq, hq):
        """LQ voxel / HQ voxel: from the layers' calibrations, else from their shapes."""
        a, b = layer_scale_nm(lq), layer_scale_nm(hq)
        if a is not None and b is not None:
            return [float(x) / float(y) for x, y in zip(a, b, strict=True)]
        return [h / q for h, q in zip(hq.data.shape, lq.data.shape, strict=True)]

    def _restore_train(self):
        lq, hq = self._need(self.lq, "LQ image"), self._need(self.hq, "HQ image")
        run = _folder(self.run_dir.value, "run")
        config = train_config("restore", self.steps.value, parse_settings(self.settings.value))
        lq_data, hq_data, apply = np.asarray(lq.data), np.asarray(hq.data), self.then_apply.value
        scale = self._restore_scale(lq, hq)

        def fn(callback):
            restore_train_job(lq_data, hq_data, run, scale=scale, config=config, callback=callback)
            return restore.predict(run, lq_data, callback=callback) if apply else None

        def done(res):
            self.say(f"restore model in {run}" + ("" if res is None else f"; enhanced with N = {res.steps}"))
            if res is not None:
                self._show_enhanced(lq, res, hq)

        return fn, done, "restore training"

    def _restore_apply(self):
        lq = self._need(self.lq, "LQ image")
        run, lq_data = _folder(self.run_dir.value, "model"), np.asarray(lq.data)

        def done(res):
            self._show_enhanced(lq, res, None)
            self.say(
                f"enhanced with N = {res.steps}; "
                f"consistency RMS {res.info.get('consistency_rms', np.nan):.4f}"
            )

        return (lambda cb: restore.predict(run, lq_data, callback=cb)), done, "enhancing"

    def _show_enhanced(self, lq, res, hq):
        """The enhanced image on the HQ grid: the HQ layer's place, else the LQ's divided by the scale."""
        image = np.asarray(res.image, np.float32)
        if hq is not None and hq.data.shape == image.shape:
            scale, translate = _voxel(hq)
        else:
            lq_scale, translate = _voxel(lq)
            scale = lq_scale * np.asarray(lq.data.shape, float) / np.asarray(image.shape, float)
        add_or_update(
            self.viewer, image, name=f"{lq.name} enhanced", kind=Image, scale=scale, translate=translate
        )

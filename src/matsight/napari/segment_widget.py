"""Segment from strokes: paint a few strokes per phase on an image, train, see the prediction, paint more.

Strokes use matsight's convention: label ``k`` marks phase ``k − 1`` (paint with label 1 on pore, 2 on the
next phase, ...), so the prediction's phase ``p`` is the stroke label ``p + 1`` and both are drawn in the
same phase colour as every matsight report. Training and prediction run in a thread worker
(:func:`matsight.segment.train`, :func:`matsight.segment.predict`); with *retrain on new strokes* ticked,
every finished brush stroke starts a new training after a short pause.
"""

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, FileEdit, PushButton, SpinBox
from napari.layers import Image, Labels
from napari.viewer import Viewer
from qtpy.QtCore import QTimer

from .. import segment
from .._errors import InputError
from ._base import JobWidget, add_or_update
from .folders import phase_colormap

__all__ = ["SegmentWidget", "train_and_predict"]

RETRAIN_DELAY_MS = 600  # pause after the last brush stroke before a live retraining starts


def train_and_predict(image, strokes, *, method="forest", trees=50, steps=60, callback=None):
    """Train on ``(image, strokes)`` in memory and segment ``image``: ``(model, labels)``.

    A small default budget (50 trees, or 60 U-Net steps) keeps a retraining within seconds on a CPU.
    """
    image = np.asarray(image)
    strokes = np.asarray(strokes)
    if strokes.shape != image.shape:
        raise InputError(
            f"the strokes layer {strokes.shape} and the image {image.shape} differ in shape; add a strokes "
            "layer for this image (button 'new strokes layer')"
        )
    if len(np.unique(strokes[strokes > 0])) < 2:
        raise InputError("paint strokes of at least two phases (label 1 = phase 0, label 2 = phase 1, ...)")
    config = {"method": method, "n_estimators": int(trees), "steps": int(steps), "n_jobs": 1}
    model = segment.train((image, strokes.astype(np.int32)), None, config=config, callback=callback)
    labels = segment.predict(model, image, callback=callback)
    return model, labels


class SegmentWidget(JobWidget):
    """Train and apply ``segment`` from a Labels layer of strokes painted on an Image layer."""

    def __init__(self, viewer: Viewer):
        super().__init__(viewer)
        self.model = None
        self.image = self.layer_choice("image", Image)
        self.strokes = self.layer_choice("strokes", Labels)
        self.new_strokes = PushButton(text="new strokes layer")
        self.method = ComboBox(label="method", choices=["forest", "unet"], value="forest")
        self.trees = SpinBox(label="trees", value=50, min=1, max=500)
        self.steps = SpinBox(label="U-Net steps", value=60, min=1, max=5000)
        self.live = CheckBox(text="retrain on new strokes", value=True)
        self.train_button = PushButton(text="train and predict")
        self.apply_to = self.layer_choice("apply to", Image)
        self.apply_button = PushButton(text="apply model", enabled=False)
        self.model_dir = FileEdit(label="model folder", mode="d", value="")
        self.save_button = PushButton(text="save model", enabled=False)
        self.extend([
            self.image, self.strokes, self.new_strokes, self.method, self.trees, self.steps, self.live,
            self.train_button, self.apply_to, self.apply_button, self.model_dir, self.save_button,
            *self.footer(),
        ])  # fmt: skip
        self.new_strokes.changed.connect(self.add_strokes_layer)
        self.train_button.changed.connect(self.train)
        self.apply_button.changed.connect(self.apply)
        self.save_button.changed.connect(self.save)
        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._live_retrain)
        self._watched = None
        self.strokes.changed.connect(self._watch)
        self._watch()

    def add_strokes_layer(self, *_):
        """A new empty Labels layer on the chosen image, in paint mode with label 1 (phase 0)."""
        img = self.image.value
        if img is None:
            self.say("open an image first", error=True)
            return None
        layer = self.viewer.add_labels(
            np.zeros(img.data.shape, np.uint8), name=f"{img.name} strokes", scale=img.scale,
            translate=img.translate, colormap=phase_colormap(offset=1),
        )  # fmt: skip
        layer.brush_size = 5
        layer.selected_label = 1
        layer.mode = "paint"
        self.reset_choices()
        self.strokes.value = layer
        return layer

    def _watch(self, *_):
        """Follow the chosen strokes layer's paint events for live retraining."""
        if self._watched is not None:
            self._watched.events.paint.disconnect(self._on_paint)
        self._watched = self.strokes.value
        if self._watched is not None:
            self._watched.events.paint.connect(self._on_paint)

    def _on_paint(self, *_):
        if self.live.value and self.model is not None:
            self._timer.start(RETRAIN_DELAY_MS)

    def _live_retrain(self):
        if self.busy:  # strokes painted during a training: train again once it ends
            self._timer.start(RETRAIN_DELAY_MS)
        else:
            self.train()

    def train(self, *_):
        """Train on the strokes and show the prediction as the ``<image> prediction`` Labels layer."""
        img, strokes = self.image.value, self.strokes.value
        if img is None or strokes is None:
            self.say("choose an image and a strokes layer (button 'new strokes layer')", error=True)
            return None
        image, labels = np.asarray(img.data), np.asarray(strokes.data)
        method, trees, steps = self.method.value, self.trees.value, self.steps.value

        def job(callback):
            return train_and_predict(
                image, labels, method=method, trees=trees, steps=steps, callback=callback
            )

        def done(result):
            self.model, pred = result
            self._show(img, pred)
            sc = self.model.scores
            acc = sc.get("pixel_accuracy")
            held = (
                "no held-out strokes" if acc is None or acc != acc else f"held-out pixel accuracy {acc:.3f}"
            )
            self.say(f"trained ({self.model.method}, phases {self.model.phases}): {held}")
            self.apply_button.enabled = self.save_button.enabled = True

        return self.start(job, done, message="training")

    def _show(self, img, pred):
        colors = phase_colormap(int(pred.max()) + 1)
        layer = add_or_update(
            self.viewer, pred, name=f"{img.name} prediction", kind=Labels, scale=img.scale,
            translate=img.translate, colormap=colors,
        )  # fmt: skip
        layer.opacity = 0.5
        layers = self.viewer.layers
        if img in layers and layers.index(layer) > layers.index(img) + 1:  # under the strokes, over the image
            layers.move(layers.index(layer), layers.index(img) + 1)
        return layer

    def apply(self, *_):
        """Segment the image chosen under *apply to* with the last model."""
        img = self.apply_to.value
        if self.model is None or img is None:
            self.say("train a model first, and choose the image to apply it to", error=True)
            return None
        model, data = self.model, np.asarray(img.data)

        def done(pred):
            self._show(img, pred)
            self.say(f"applied to {img.name}")

        return self.start(lambda cb: segment.predict(model, data, callback=cb), done, message="segmenting")

    def save(self, *_):
        """Save the last model to the chosen folder (readable by ``matsight segment apply``)."""
        folder = str(self.model_dir.value or "").strip()
        if self.model is None or folder in ("", "."):
            self.say("train a model and choose a folder to save it in", error=True)
            return None
        try:
            path = self.model.save(folder)
        except InputError as exc:
            self.say(f"error: {exc}", error=True)
            return None
        self.say(f"model saved in {path}")
        return path

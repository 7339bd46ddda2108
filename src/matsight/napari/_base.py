"""What every matsight widget shares: layer choices that follow the viewer, one status line, a progress bar,
and background jobs in napari thread workers that report, cancel and fail in one line.
"""

import threading

from magicgui.widgets import ComboBox, Container, Label, ProgressBar, PushButton
from napari.layers import Image, Labels, Points
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info

from .._errors import InputError
from .workers import Cancelled, progress_steps

__all__ = ["JobWidget", "layer_scale_nm"]

USER_ERRORS = (InputError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError, Cancelled)


def layer_scale_nm(layer):
    """The layer's pixel size in nm per axis when its scale is a calibration (units nm or a recorded one).

    Returns None for a layer shown at scale 1 without units (uncalibrated).
    """
    recorded = (layer.metadata or {}).get("spacing_nm")
    if recorded is not None:
        return tuple(float(s) for s in recorded)
    scale = tuple(float(s) for s in layer.scale)
    units = [str(u) for u in getattr(layer, "units", ())]
    if units and all(u in ("nm", "nanometer") for u in units):
        return scale
    if any(s != 1.0 for s in scale):  # a scale someone set: taken as nm, as matsight records it
        return scale
    return None


class JobWidget(Container):
    """A magicgui container bound to a viewer, with a status line, a progress bar and a Cancel button.

    Subclasses add their controls and call :meth:`start` with a function ``fn(callback) -> result`` and
    what to do with the result (in the UI thread).
    """

    def __init__(self, viewer, *, cancellable=True, **kwargs):
        super().__init__(**kwargs)
        self.viewer = viewer
        self.worker = None
        self._cancel = threading.Event()
        self.status = Label(value="")
        self.status.native.setWordWrap(True)  # long paths and messages wrap instead of widening the dock
        self.progress = ProgressBar(value=0, min=0, max=1000, visible=False)
        self.cancel_button = PushButton(text="Cancel", enabled=False, visible=cancellable)
        self.cancel_button.changed.connect(self.cancel)
        for ev in (viewer.layers.events.inserted, viewer.layers.events.removed):
            ev.connect(lambda _e=None: self.reset_choices())

    def layer_choice(self, label, kind):
        """A combo box of the viewer's layers of ``kind`` (e.g. ``napari.layers.Image``), kept up to date."""

        def choices(_widget=None):
            return [(layer.name, layer) for layer in self.viewer.layers if isinstance(layer, kind)]

        return ComboBox(label=label, choices=choices, nullable=False)

    def footer(self):
        """The status line, progress bar and Cancel button, to append after a subclass's controls."""
        return [self.progress, self.cancel_button, self.status]

    @property
    def busy(self):
        """Whether a job of this widget is running."""
        return self.worker is not None

    def say(self, text, *, error=False):
        """Show ``text`` on the status line; an error starts with ``error:`` and is also a notification."""
        if error and not text.startswith("error"):
            text = f"error: {text}"
        self.status.value = text
        if error:
            show_error(text)

    def start(self, fn, on_done, *, message="working"):
        """Run ``fn(callback)`` in a napari thread worker; ``on_done(result)`` runs in the UI thread."""
        if self.busy:
            self.say("a job is running; wait for it or cancel it")
            return None
        self._cancel.clear()
        self.say(message)
        self.progress.value, self.progress.visible = 0, True
        self.cancel_button.enabled = True
        handlers = {
            "yielded": self._on_progress,
            "returned": lambda result: self._finish(on_done, result),
            "errored": self._on_error,  # given here, so the worker does not re-raise in the UI thread
            "finished": self._on_finished,
        }
        worker = create_worker(
            progress_steps, fn, cancel=self._cancel, _connect=handlers, _start_thread=False
        )
        self.worker = worker
        worker.start()
        return worker

    def cancel(self, *_):
        """Stop the running job at its next progress report (a training saves its state first)."""
        if self.busy:
            self._cancel.set()
            self.say("cancelling…")

    def _on_progress(self, p):
        if p.step < 0:
            return
        if p.fraction is not None:
            self.progress.value = int(1000 * p.fraction)
        loss = p.metrics.get("loss") if p.metrics else None
        text = p.message or "working"
        if p.total:
            text += f" — {p.step}/{p.total}"
        if loss is not None:
            text += f", loss {float(loss):.4g}"
        self.status.value = text

    def _finish(self, on_done, result):
        try:
            on_done(result)
        except USER_ERRORS as exc:
            self._on_error(exc)

    def _on_error(self, exc):
        if isinstance(exc, Cancelled):
            self.say(str(exc))
            show_info(str(exc))
        elif isinstance(exc, USER_ERRORS):
            self.say(f"error: {exc}", error=True)
        else:  # a bug: its type names it for the report
            self.say(f"error ({type(exc).__name__}): {exc}", error=True)

    def _on_finished(self):
        self.worker = None
        self.progress.visible = False
        self.cancel_button.enabled = False


def add_or_update(viewer, data, *, name, kind, **kwargs):
    """Replace the data of the layer ``name`` if it exists with the same kind, else add a new layer."""
    if name in viewer.layers and isinstance(viewer.layers[name], kind):
        layer = viewer.layers[name]
        layer.data = data
        for key in ("scale", "translate"):
            if key in kwargs:
                setattr(layer, key, kwargs[key])
        return layer
    adder = {
        Labels: viewer.add_labels,
        Image: viewer.add_image,
        Points: viewer.add_points,
    }[kind]
    return adder(data, name=name, **kwargs)

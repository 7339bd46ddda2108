"""Open any matsight run or output folder as layers, each scaled by its recorded calibration."""

from magicgui.widgets import FileEdit, Label, PushButton
from napari.viewer import Viewer

from .._errors import InputError
from ._base import JobWidget
from .folders import read_folder

__all__ = ["OpenWidget"]


class OpenWidget(JobWidget):
    """A folder field and an *open* button: :func:`~matsight.napari.folders.read_folder` into the viewer."""

    def __init__(self, viewer: Viewer):
        super().__init__(viewer, cancellable=False)
        self.folder = FileEdit(label="folder", mode="d", value="")
        self.open_button = PushButton(text="open")
        self.kind = Label(value="")
        self.extend([self.folder, self.open_button, self.kind, *self.footer()])
        self.open_button.changed.connect(self.open)

    def open(self, *_):
        """Add the folder's layers; the status line says what the folder is and what had no calibration."""
        folder = str(self.folder.value or "").strip()
        if folder in ("", "."):
            self.say(
                "choose a matsight output folder (a fuse run, a restore or segment output, ...)", error=True
            )
            return []
        try:
            found = read_folder(folder)
        except InputError as exc:
            self.say(f"error: {exc}", error=True)
            return []
        added = []
        for data, kwargs, kind in found.layers:
            added.append(getattr(self.viewer, f"add_{kind}")(data, **kwargs))
        self.kind.value = f"{found.kind}: {len(added)} layer(s)"
        self.say("\n".join(found.notes))
        self.viewer.reset_view()
        return added

"""The npe2 reader: a matsight output folder dropped on napari opens as layers with their calibration."""

from .._errors import InputError
from .folders import folder_kind, read_folder

__all__ = ["get_reader"]


def get_reader(path):
    """The reader hook of napari: a function reading ``path`` when it is a matsight output folder, else None.

    Folders without a matsight marker file (:data:`~matsight.napari.folders.MARKERS`) are left to other
    readers, so plain image folders open as napari always opened them.
    """
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if folder_kind(path) is None:
        return None
    return read_layers


def read_layers(path):
    """The folder's layers (napari layer data tuples); a folder with nothing to show gives one clear error."""
    if isinstance(path, list):
        path = path[0]
    try:
        return read_folder(path).layers
    except InputError as exc:  # napari shows a reader's error as a notification
        raise ValueError(str(exc)) from None

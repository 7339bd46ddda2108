"""What every part of the GUI shares: which errors are the user's, one-line messages, JSON for the page.

A module of its own so that the server, the job runner, the worker process and the call pool all import
it and none of them imports another (``jobs`` starts ``worker``; ``worker`` needs only these).
"""

import math

from .._errors import InputError

__all__ = ["EVENT_PREFIX", "USER_ERRORS", "user_message", "jsonable"]

EVENT_PREFIX = "@@matsight-gui "  # worker → server event lines on the worker's stdout
USER_ERRORS = (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def user_message(exc):
    """One line for the page: the user error's own message, or the type and message of a bug."""
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        return f"{exc.strerror or exc}: {exc.filename}"
    if isinstance(exc, USER_ERRORS):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"unexpected error ({type(exc).__name__}){': ' + text if text else ''}"


def jsonable(obj):
    """Numpy scalars/arrays → Python, non-finite floats → None, paths → str (JSON the browser can parse)."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, str | int | bool) or obj is None:
        return obj
    return str(obj)

"""The one exception type for user mistakes (bad files, bad options, bad data).

The CLI turns an :class:`InputError` into a single line on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """A problem with what the user gave us; the message names the problem and the fix."""


def settings_message(exc, what):
    """One line naming every invalid field of a pydantic ``ValidationError``.

    ``what`` names the settings in the message: "fuse", "restore", ...
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "config"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}")
    return f"invalid {what} setting — " + "; ".join(parts)

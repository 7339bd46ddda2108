"""The one exception type for user mistakes (bad files, bad options, bad data).

The CLI turns an :class:`InputError` into a single line on stderr and exit code 2; anything
else is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """A problem with what the user gave us; the message names the problem and the fix."""

"""Settings typed in a widget's text box, read as YAML (no Qt here, so the examples run without napari)."""

import yaml

from .._errors import InputError

__all__ = ["parse_settings"]


def parse_settings(text):
    """Extra settings typed as YAML ``key: value, key: [..]`` (braces optional) → a dict (``{}`` if empty).

    Examples
    --------
    >>> parse_settings("gen_width: 8, critic_widths: [4, 4, 8, 8]")
    {'gen_width': 8, 'critic_widths': [4, 4, 8, 8]}
    """
    text = str(text or "").strip()
    if not text:
        return {}
    try:
        value = yaml.safe_load(text if text.startswith("{") else "{" + text + "}")
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict) or any(v is None for v in value.values()):
        raise InputError(f"settings must read 'name: value, name: value' (YAML), got {text!r}")
    return value

"""Every command's --help shows flags as flags (no ``<bool>``), as the console script prints it."""

import pytest

from matsight.cli import command


def _commands(cmd, path=()):
    subs = getattr(cmd, "commands", {})
    if not subs:
        yield path
    for name, sub in subs.items():
        yield from _commands(sub, (*path, name))


@pytest.mark.parametrize("path", list(_commands(command())), ids=" ".join)
def test_help_shows_flags_as_flags(path, capsys):
    with pytest.raises(SystemExit) as done:
        command().main([*path, "--help"], prog_name="matsight")
    assert done.value.code == 0
    text = capsys.readouterr().out
    assert "--help" in text and "<bool>" not in text

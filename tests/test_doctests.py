"""The Examples sections of the docstrings run as doctests: every module of matsight that has one."""

import doctest
import importlib
from pathlib import Path

import pytest

import matsight

ROOT = Path(matsight.__file__).parent
MODULES = sorted(
    ".".join(("matsight", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
    for p in ROOT.rglob("*.py")
    if ">>> " in p.read_text(encoding="utf-8")
)


def test_there_are_examples():
    assert len(MODULES) >= 20


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (see stdout)"

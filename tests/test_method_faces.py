"""Every method package has the same shape and face (DESIGN.md): the same six modules, and an ``__init__``
exporting ``train``, ``predict``, ``evaluate``, its config and ``load``, with one ``train`` signature."""

import importlib
import inspect
from pathlib import Path

import pytest

import matsight

METHODS = {"fuse": "FuseConfig", "restore": "RestoreConfig", "segment": "SegmentConfig", "tem": "TemConfig"}
SIX = ("config.py", "networks.py", "losses.py", "train.py", "predict.py", "evaluate.py")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_package_has_the_six_modules(name):
    folder = Path(matsight.__file__).parent / name
    assert [f for f in SIX if not (folder / f).is_file()] == []


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_face(name):
    mod = importlib.import_module(f"matsight.{name}")
    face = {"train", "predict", "evaluate", "load", METHODS[name]}
    assert face <= set(mod.__all__), face - set(mod.__all__)
    assert all(callable(getattr(mod, f)) for f in face)
    params = list(inspect.signature(mod.train).parameters.values())
    head = [(p.name, p.kind) for p in params[:5]]
    assert head == [
        ("data", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("out_dir", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("config", inspect.Parameter.KEYWORD_ONLY),
        ("budget", inspect.Parameter.KEYWORD_ONLY),
        ("callback", inspect.Parameter.KEYWORD_ONLY),
    ]
    assert all(p.default is None for p in params[2:5])

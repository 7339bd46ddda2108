import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight import InputError
from matsight._atomic import atomic_path, write_json
from matsight.cli import app
from matsight.report import Report


def test_import_does_not_import_torch():
    code = (
        "import sys, matsight, matsight.metrics, matsight.data, matsight.report, matsight.cli; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_atomic_path_keeps_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_existing_file_and_directory(tmp_path):
    target = tmp_path / "a.json"
    write_json(target, {"x": 1})
    write_json(target, {"x": 2})
    assert target.read_text().strip().endswith("}") and '"x": 2' in target.read_text()
    store = tmp_path / "vol.zarr"
    for value in ("old", "new"):
        with atomic_path(store, directory=True) as tmp:
            (tmp / "f").write_text(value)
    assert (store / "f").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "vol.zarr"]
    # a store's stale entries go; an output folder can keep what it did not write (a user's files, a lock)
    with atomic_path(store, directory=True) as tmp:
        (tmp / "g").write_text("g")
    assert sorted(p.name for p in store.iterdir()) == ["g"]
    (store / "notes.txt").write_text("mine")
    with atomic_path(store, directory=True, keep_other=True) as tmp:
        (tmp / "g").write_text("g2")
    assert (store / "notes.txt").read_text() == "mine" and (store / "g").read_text() == "g2"


def test_atomic_path_refuses_paths_it_would_damage(tmp_path, monkeypatch):
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "adir").mkdir()
    with pytest.raises(InputError, match="is a file"), atomic_path(tmp_path / "afile" / "x.tif"):
        pass
    with pytest.raises(InputError, match="is not a folder"), atomic_path(tmp_path / "afile", directory=True):
        pass
    with pytest.raises(InputError, match="is a folder"), atomic_path(tmp_path / "adir"):
        pass
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InputError, match="current folder"), atomic_path(".", directory=True):
        pass
    assert (tmp_path / "afile").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "adir",
        "afile",
    ]


def test_atomic_outputs_follow_the_umask(tmp_path):
    import os

    from safetensors.numpy import save_file

    with atomic_path(tmp_path / "w.safetensors") as tmp:
        save_file({"a": np.zeros(2)}, str(tmp))  # safetensors itself writes mode 0600
    with atomic_path(tmp_path / "d", directory=True) as tmp:
        pass
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~mask
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o777 & ~mask


def test_write_json_is_strict_json(tmp_path):
    import json

    write_json(
        tmp_path / "m.json", {"a": np.float32("nan"), "b": [1.5, float("inf")], np.int64(3): np.arange(2)}
    )
    text = (tmp_path / "m.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [1.5, None], "3": [0, 1]}


def test_check_outputs_refuses_before_any_work(tmp_path, monkeypatch):
    from matsight.cli._common import check_outputs

    img = tmp_path / "in.tif"
    img.write_text("x")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    cases = [
        ({"files": [("--out", img)], "inputs": [img]}, "also an input"),
        ({"files": [("--out", tmp_path / "o.tif"), ("--probabilities", tmp_path / "o.tif")]}, "same path"),
        ({"files": [("--out", tmp_path / "adir")]}, "is a folder"),
        ({"folders": [("--out", tmp_path / "afile")]}, "is a file; give a folder"),
        ({"files": [("--json", tmp_path / "afile" / "m.json")]}, "is a file, not a folder"),
        ({"folders": [("--out", tmp_path)]}, "current folder"),
    ]
    monkeypatch.chdir(tmp_path)
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            check_outputs(**kwargs)
    check_outputs(files=[("--out", tmp_path / "new" / "o.zarr"), ("--p", None)], folders=[("--out", "run")])


def test_report_writes_html_and_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rep = Report(tmp_path / "rep", "Test <report>")
    rep.heading("Numbers")
    rep.table({"phase 0": {"VF": 0.58, "tau": float("inf")}, "phase 1": {"VF": 0.42, "tau": 3.2}})
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = rep.figure(fig, "line", caption="a line")
    page = rep.write()
    text = page.read_text()
    assert png.is_file() and png.stat().st_size > 1000
    assert "Test &lt;report&gt;" in text and "line.png" in text and "∞" in text and "0.58" in text
    assert png.with_suffix(".svg").is_file() and 'href="line.svg"' in text  # vector beside PNG by default


def test_report_written_again_drops_its_own_stale_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def page(names):
        rep = Report(tmp_path, "r")
        for n in names:
            rep.figure(plt.figure(), n)
        rep.write()

    page(["a", "violins"])
    (tmp_path / "mine.png").write_bytes(b"x")
    page(["a"])
    # each figure's SVG beside its PNG (the default); the stale one's both gone, the user's file kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.svg", "index.html", "mine.png"]


def test_cli_info_and_help():
    runner = CliRunner()
    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    assert "numpy" in result.output and "torch device" in result.output
    assert runner.invoke(app, ["--help"]).exit_code == 0


def test_info_lists_every_optional_package_of_pyproject():
    import re
    import tomllib

    from matsight.info import system_info

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {
        re.match(r"[A-Za-z0-9_.-]+", req).group(0).lower()
        for name, reqs in extras.items()
        if name in ("tem", "scale", "gui", "napari", "docs")
        for req in reqs
    }
    shown = {k.lower() for k in system_info()}
    # the metadata of an older editable install can lag pyproject.toml: say so rather than fail obscurely
    missing = wanted - shown
    assert not missing, f"matsight info does not list {sorted(missing)} (reinstall: pip install -e '.[dev]')"
    assert "chromium" in shown


def test_cli_unknown_demo_part_is_a_one_line_error(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "matsight", "demo", "--parts", "nonsense", "--out", str(tmp_path / "d")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown demo part")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "d").exists()


def test_input_error_is_value_error():
    assert issubclass(InputError, ValueError)

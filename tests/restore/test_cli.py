import json

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight.cli import app
from matsight.io import read_volume, write_volume

runner = CliRunner()


@pytest.fixture
def files(tmp_path, rng, disk_scene):
    hq = disk_scene(rng)
    lq = hq.reshape(32, 2, 32, 2).mean((1, 3)) + rng.normal(0, 0.02, (32, 32)).astype(np.float32)
    write_volume(tmp_path / "hq.tif", hq)
    write_volume(tmp_path / "lq.tif", lq.astype(np.float32))
    return tmp_path


def test_register_train_apply_evaluate(files):
    t = files
    r = runner.invoke(
        app,
        [
            "restore",
            "register",
            str(t / "lq.tif"),
            str(t / "hq.tif"),
            "--out",
            str(t / "pair"),
            "--scale",
            "2",
            "--no-mask",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (t / "pair" / "pair.json").is_file()
    r = runner.invoke(
        app,
        [
            "restore",
            "train",
            str(t / "pair"),
            "--out",
            str(t / "model"),
            "--max-steps",
            "3",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "trained 3 steps" in r.output
    assert "note: --max-steps is now --steps" in r.output  # the old name still works
    # a one-slice pair cannot give up its only slice to validation
    r = runner.invoke(
        app,
        [
            "restore",
            "train",
            str(t / "pair"),
            "--out",
            str(t / "m2"),
            "--val-slices",
            "0:1",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 2 and "validation slices" in r.output and not (t / "m2").exists()
    r = runner.invoke(
        app,
        [
            "restore",
            "apply",
            str(t / "model"),
            str(t / "lq.tif"),
            "--out",
            str(t / "out"),
            "--indi-steps",
            "auto",
            "--device",
            "cpu",
        ],
    )
    assert r.exit_code == 0, r.output
    meta = json.loads((t / "out" / "enhance.json").read_text())
    n = meta["steps"]
    assert n in (1, 2, 4, 6, 8, 10, 12, 16)
    for f in ("enhanced.tif", "bicubic.tif", "consistency.tif"):
        assert (t / "out" / f).is_file()
    # N = 1 is the one-step result itself: no second copy of it
    assert (t / "out" / "onestep.tif").is_file() == (n != 1)
    r = runner.invoke(
        app,
        [
            "restore",
            "evaluate",
            str(t / "out"),
            "--hq",
            str(t / "hq.tif"),
            "--out",
            str(t / "report"),
            "--no-sift",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (t / "report" / "index.html").is_file()
    metrics = json.loads((t / "report" / "metrics.json").read_text())
    assert "HQ" in metrics and "LQ bicubic" in metrics and {"InDI N=1", f"InDI N={n}"} <= set(metrics)

    # a time series (folder of time steps) without retraining, by the CLI and by the GUI's worker task
    (t / "series").mkdir()
    lq = np.asarray(read_volume(t / "lq.tif"))
    for i in range(2):
        write_volume(t / "series" / f"T{i}.tif", (lq * (1 + 0.1 * i)).astype(np.float32))
    r = runner.invoke(
        app,
        [
            "restore",
            "apply",
            str(t / "model"),
            str(t / "series"),
            "--out",
            str(t / "sout"),
            "--steps",
            "2",
            "--ensemble",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "note: --steps is now --indi-steps" in r.output  # the old name still works
    assert (t / "sout" / "T0" / "enhanced.tif").is_file() and (t / "sout" / "T1" / "enhanced.tif").is_file()
    assert json.loads((t / "sout" / "T1" / "enhance.json").read_text())["ensemble"] is True
    from matsight.gui.tasks import restore_apply

    res = restore_apply(
        lambda **_: None, model=str(t / "model"), volume=str(t / "lq.tif"), out=str(t / "gui")
    )
    assert res["steps"] == n and (t / "gui" / "enhanced.tif").is_file()  # the model's validated N, as above
    res = restore_apply(lambda **_: None, model=str(t / "model"), volume=str(t / "series"), out=str(t / "gs"))
    assert res["time_steps"] == ["T0", "T1"] and (t / "gs" / "T1" / "consistency.tif").is_file()


def test_bad_inputs_exit_2(files, tmp_path):
    t = files
    # HQ far from lq × scale: cannot be the same field of view
    r = runner.invoke(
        app,
        ["restore", "register", str(t / "lq.tif"), str(t / "hq.tif"), "--out", str(t / "p"), "--scale", "4"],
    )
    assert r.exit_code == 2 and "error:" in r.output and not (t / "p").exists()
    r = runner.invoke(app, ["restore", "train", str(t / "nopair"), "--out", str(t / "m"), "--budget", "soon"])
    assert r.exit_code == 2 and "duration" in r.output
    r = runner.invoke(app, ["restore", "train", str(t / "nopair"), "--out", str(t / "m")])
    assert r.exit_code == 2 and "pair folder" in r.output
    r = runner.invoke(app, ["restore", "train", str(t / "nopair"), "--out", str(t / "m"), "--context", "9"])
    assert r.exit_code == 2 and "context" in r.output and not (t / "m").exists()
    r = runner.invoke(
        app, ["restore", "train", str(t / "nopair"), "--out", str(t / "m"), "--val-slices", "5"]
    )
    assert r.exit_code == 2 and "START:STOP" in r.output and not (t / "m").exists()
    r = runner.invoke(app, ["restore", "apply", str(t / "nomodel"), str(t / "lq.tif"), "--out", str(t / "o")])
    assert r.exit_code == 2 and "no restore model" in r.output and not (t / "o").exists()
    nan = np.ones((16, 16), np.float32)
    nan[2, 2] = np.nan
    write_volume(t / "nan.tif", nan)
    r = runner.invoke(
        app, ["restore", "register", str(t / "nan.tif"), str(t / "hq.tif"), "--out", str(t / "p")]
    )
    assert r.exit_code == 2 and "NaN" in r.output
    r = runner.invoke(
        app, ["restore", "evaluate", str(t / "noout"), "--hq", str(t / "hq.tif"), "--out", str(t / "r")]
    )
    assert r.exit_code == 2

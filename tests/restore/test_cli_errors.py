"""`matsight restore` user mistakes: one `error:` line, exit code 2, nothing written, before any work."""

import importlib
import json
import os
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight.cli import app
from matsight.io import read_volume, write_volume
from matsight.restore.pair_io import save_pair
from matsight.restore.register import prepare_pair
from matsight.restore.train import train

runner = CliRunner()


@pytest.fixture(scope="module")
def work(tmp_path_factory, disk_scene, tiny_indi):
    """hq.tif (64²), lq.tif (32²), a registered pair/ and a tiny 2D model/ trained on it."""
    t = tmp_path_factory.mktemp("restore_cli")
    rng = np.random.default_rng(5)
    hq = disk_scene(rng)
    lq = hq.reshape(32, 2, 32, 2).mean((1, 3)) + rng.normal(0, 0.02, (32, 32)).astype(np.float32)
    write_volume(t / "hq.tif", hq)
    write_volume(t / "lq.tif", lq.astype(np.float32))
    save_pair(prepare_pair(lq, hq, scale=2, mask=False), t / "pair")
    train(t / "pair", t / "model", device="cpu", max_steps=2, **tiny_indi)
    (t / "notes.txt").write_text("keep me")
    return t


def _commands(t, out):
    return {
        "register": ["register", str(t / "lq.tif"), str(t / "hq.tif"), "--out", out],
        "train": ["train", str(t / "pair"), "--out", out, "--steps", "1"],
        "apply": ["apply", str(t / "model"), str(t / "lq.tif"), "--indi-steps", "1", "--out", out],
        "evaluate": ["evaluate", str(t / "model"), "--hq", str(t / "hq.tif"), "--out", out],
    }


# the library function each command computes with: the output check must come before it
# (module, name): the package's face `matsight.restore.train` is the function, so modules are named in full
HEAVY = {
    "register": ("matsight.restore.register", "prepare_pair"),
    "train": ("matsight.restore", "train"),
    "apply": ("matsight.restore.predict", "predict_path"),
    "evaluate": ("matsight.restore", "evaluate"),
}


@pytest.mark.parametrize("command", ["register", "train", "apply", "evaluate"])
@pytest.mark.parametrize(
    "out, expect",
    [
        ("notes.txt", "is a file; give a folder"),
        ("notes.txt/sub", "is a file"),
        ("lq.tif", "also an input"),
        (".", "current folder"),
    ],
)
def test_bad_output_paths_are_refused_before_any_work(
    work, monkeypatch, command, out, expect, one_error_line
):
    def boom(*args, **kwargs):
        raise AssertionError("computed before checking the output path")

    module, name = HEAVY[command]
    monkeypatch.setattr(importlib.import_module(module), name, boom)
    monkeypatch.chdir(work)
    if out == "lq.tif" and command in ("train", "evaluate"):
        out = "pair" if command == "train" else "model"  # their inputs are folders
    before = sorted(os.listdir(work))
    r = runner.invoke(app, ["restore", *_commands(work, out)[command]])
    line = one_error_line(r)
    assert expect in line and "--out" in line
    assert sorted(os.listdir(work)) == before and (work / "notes.txt").read_text() == "keep me"
    assert (work / "lq.tif").is_file()


def test_apply_refuses_two_time_steps_with_one_name(work, tmp_path, one_error_line):
    lq = np.asarray(read_volume(work / "lq.tif"))
    (tmp_path / "series").mkdir()
    write_volume(tmp_path / "series" / "T0.tif", lq)
    np.save(tmp_path / "series" / "T0.npy", lq)
    write_volume(tmp_path / "series" / "T1.tif", lq)
    r = runner.invoke(
        app,
        ["restore", "apply", str(work / "model"), str(tmp_path / "series"), "--steps", "1", "--out"]
        + [str(tmp_path / "out")],
    )
    line = one_error_line(r)
    assert "T0.tif" in line and "T0.npy" in line
    assert not (tmp_path / "out").exists()


def test_register_scale_mismatch_prints_plain_numbers(work, tmp_path, one_error_line):
    r = runner.invoke(
        app,
        ["restore", "register", str(work / "lq.tif"), str(work / "hq.tif"), "--out", str(tmp_path / "p")]
        + ["--scale", "3"],
    )
    line = one_error_line(r)
    assert "scale (3, 3) = (96, 96) does not match hq (64, 64)" in line and "np." not in line
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("seed", [0, 1])
def test_register_keeps_the_rotation_bound_and_warns_on_unrelated_scans(tmp_path, seed):
    # unrelated noise: the unbounded polish used to wander to 8-18 degrees and the pair was written silently
    rng = np.random.default_rng(seed)
    write_volume(tmp_path / "a.tif", rng.normal(size=(8, 8)))
    write_volume(tmp_path / "b.tif", rng.normal(size=(16, 16)))
    r = runner.invoke(
        app,
        ["restore", "register", str(tmp_path / "a.tif"), str(tmp_path / "b.tif"), "--no-mask", "--out"]
        + [str(tmp_path / "p")],
    )
    assert r.exit_code == 0, r.output
    transform = json.loads((tmp_path / "p" / "pair.json").read_text())["transform"]
    assert abs(transform["rotation_deg"]) <= 5.0 + 1e-9
    assert transform["ncc_after"] < 0.2
    warnings = [line for line in r.output.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "same region" in warnings[0]


def test_register_of_a_true_pair_does_not_warn(work, tmp_path):
    r = runner.invoke(
        app,
        ["restore", "register", str(work / "lq.tif"), str(work / "hq.tif"), "--no-mask", "--out"]
        + [str(tmp_path / "p")],
    )
    assert r.exit_code == 0 and "warning" not in r.output, r.output


def test_train_validation_slices_outside_the_pair(work, tmp_path, one_error_line):
    r = runner.invoke(
        app, ["restore", "train", str(work / "pair"), "--out", str(tmp_path / "m"), "--val-slices", "50:60"]
    )
    line = one_error_line(r)
    assert "50:60 are outside the pair's slices 0..0" in line and "range(" not in line
    assert not (tmp_path / "m").exists()


def test_train_negative_seed_is_a_one_line_error(work, tmp_path, one_error_line):
    r = runner.invoke(
        app, ["restore", "train", str(work / "pair"), "--out", str(tmp_path / "m"), "--seed", "-1"]
    )
    line = one_error_line(r)
    assert "seed" in line
    assert not (tmp_path / "m").exists()


def test_train_refuses_another_pair_and_says_when_finished(work, tmp_path, one_error_line):
    cmd = ["restore", "train", str(work / "pair"), "--out", str(tmp_path / "m"), "--max-steps", "1"]
    r = runner.invoke(app, cmd)
    assert r.exit_code == 0 and "trained 1 steps" in r.output, r.output
    model = tmp_path / "m" / "model.safetensors"
    stamp = model.stat().st_mtime_ns
    r = runner.invoke(app, cmd)
    assert r.exit_code == 0 and "already holds a finished run (1 steps" in r.output, r.output
    assert "trained" not in r.output and model.stat().st_mtime_ns == stamp
    # the same shape with other content (LQ and HQ swapped) is another pair too
    (tmp_path / "other").mkdir()
    for name in ("lq", "hq"):
        os.link(work / "pair" / f"{'hq' if name == 'lq' else 'lq'}.tif", tmp_path / "other" / f"{name}.tif")
    (tmp_path / "other" / "pair.json").write_text((work / "pair" / "pair.json").read_text())
    r = runner.invoke(app, ["restore", "train", str(tmp_path / "other"), *cmd[3:5], "--max-steps", "2"])
    line = one_error_line(r)
    assert "another pair" in line and "--out" in line and "original pair" in line
    assert model.stat().st_mtime_ns == stamp


def _fake_apply_output(folder, enhanced, scale):
    folder.mkdir()
    write_volume(folder / "enhanced.tif", enhanced.astype(np.float32))
    # as `apply` records them: no normalisation (the scans are in one grey scale) and no field of view
    meta = {"steps": 2, "scale": scale, "stats": {"lq": None, "hq": None}, "fov_radius": None}
    (folder / "enhance.json").write_text(json.dumps(meta))


def test_evaluate_checks_the_dimensions_of_lq_and_hq_first(work, tmp_path, monkeypatch, one_error_line):
    def boom(*args, **kwargs):
        raise AssertionError("computed before checking the dimensions")

    monkeypatch.setattr(importlib.import_module("matsight.restore.evaluate"), "compare", boom)
    hq = np.asarray(read_volume(work / "hq.tif"))
    write_volume(tmp_path / "hq3.tif", np.stack([hq] * 3))
    _fake_apply_output(tmp_path / "enh", np.stack([hq] * 3), [1.0, 2.0, 2.0])
    r = runner.invoke(
        app,
        ["restore", "evaluate", str(tmp_path / "enh"), "--hq", str(tmp_path / "hq3.tif"), "--lq"]
        + [str(work / "lq.tif"), "--out", str(tmp_path / "rep")],
    )
    line = one_error_line(r)
    assert "--lq" in line and "2D" in line and "3D" in line
    r = runner.invoke(
        app,
        ["restore", "evaluate", str(tmp_path / "enh"), "--hq", str(work / "hq.tif"), "--out"]
        + [str(tmp_path / "rep")],
    )
    line = one_error_line(r)
    assert "--hq" in line and "2D" in line and "3D" in line
    assert not (tmp_path / "rep").exists()


def test_evaluate_prints_the_sift_and_edge_counts(work, tmp_path):
    hq = np.asarray(read_volume(work / "hq.tif"))
    noisy = hq + np.random.default_rng(0).normal(0, 0.03, hq.shape)
    _fake_apply_output(tmp_path / "enh", noisy, [2.0, 2.0])
    r = runner.invoke(
        app,
        ["restore", "evaluate", str(tmp_path / "enh"), "--hq", str(work / "hq.tif"), "--lq"]
        + [str(work / "lq.tif"), "--out", str(tmp_path / "rep")],
    )
    assert r.exit_code == 0, r.output
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    rows = {line.split("  ")[0]: line for line in r.output.splitlines()}
    for name in ("HQ", "LQ bicubic", "InDI N=2"):
        for key in ("sift_matched", "sift_congruent", "n_edges"):
            assert re.search(rf"\b{key} {metrics[name][key]}(,|$)", rows[name]), rows[name]

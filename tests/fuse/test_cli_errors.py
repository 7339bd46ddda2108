"""`matsight fuse` user mistakes: one `error:` line, exit code 2, nothing written; resumes keep the run."""

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight._errors import InputError
from matsight.cli import app
from matsight.data.degrade import degrade
from matsight.data.microstructures import particle_electrode
from matsight.fuse.config import make_config
from matsight.fuse.data import phase_count
from matsight.fuse.train import saved_config, train
from matsight.io import write_volume

runner = CliRunner()

TINY = dict(gen_width=8, gen_min_width=4, critic_widths=[4, 4, 8, 8], fake_batch=1, real_batch=4)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """truth.tif (48³, 3 phases), lr.tif (12³, 2 phases), hr.tif, mistaken inputs and a tiny run/."""
    t = tmp_path_factory.mktemp("fuse_cli")
    gt = particle_electrode((48, 48, 48), radius=5, seed=1)
    lr, _ = degrade(gt, 4, merge=[(0, 2)])
    write_volume(t / "truth.tif", gt)
    write_volume(t / "lr.tif", lr)
    write_volume(t / "hr.tif", gt[24])
    write_volume(t / "hr_gaps.tif", np.array([0, 2, 5], np.uint8)[gt[24]])  # labels {0, 2, 5}
    write_volume(t / "lr_gaps.tif", np.array([0, 5], np.uint8)[lr])
    write_volume(t / "lr_one_phase.tif", np.zeros_like(lr))
    write_volume(t / "hr_small.tif", gt[24, :20, :20])
    write_volume(
        t / "sr.tif", gt[4:-4, 4:-4, 4:-4]
    )  # as generated from lr.tif: one LR voxel cropped per face
    (t / "badrun").mkdir()
    (t / "badrun" / "config.json").write_text("not json")
    train((lr, gt[24]), t / "run", config=make_config("cpu", **TINY).updated({"steps": 0}))
    return t


def _case(t, command, out):
    lr, hr, sr = str(t / "lr.tif"), str(t / "hr.tif"), str(t / "sr.tif")
    ev = [
        "fuse",
        "evaluate",
        sr,
        "--out",
        out,
        "--subvolumes",
        "2",
        "--subvolume-size",
        "8",
        "--transport",
        "0",
    ]
    return {
        "hr gaps": [
            "fuse",
            "train",
            "--lr",
            lr,
            "--hr",
            str(t / "hr_gaps.tif"),
            "--out",
            out,
            "--steps",
            "1",
        ],
        "lr gaps": [
            "fuse",
            "train",
            "--lr",
            str(t / "lr_gaps.tif"),
            "--hr",
            hr,
            "--out",
            out,
            "--steps",
            "1",
        ],
        "lr one phase": [
            "fuse",
            "train",
            "--lr",
            str(t / "lr_one_phase.tif"),
            "--hr",
            hr,
            "--out",
            out,
            "--steps",
            "1",
        ],
        "train seed": [
            "fuse",
            "train",
            "--lr",
            lr,
            "--hr",
            hr,
            "--seed",
            "-1",
            "--out",
            out,
            "--steps",
            "1",
        ],
        "hr small": [
            "fuse",
            "train",
            "--lr",
            lr,
            "--hr",
            str(t / "hr_small.tif"),
            "--out",
            out,
            "--steps",
            "1",
        ],
        "compare list": [
            "fuse",
            "train",
            "--lr",
            lr,
            "--hr",
            hr,
            "--compare-phases",
            "1,2",
            "--out",
            out,
            "--steps",
            "1",
        ],
        "dask": ["fuse", "generate", str(t / "run"), "--lr", lr, "--out", out + ".tif", "--dask", "foo"],
        "generate seed": [
            "fuse",
            "generate",
            str(t / "run"),
            "--lr",
            lr,
            "--out",
            out + ".tif",
            "--seed",
            "-1",
        ],
        "transport": [*ev[:-1], "-1"],
        "subvolumes": [*ev, "--subvolumes", "0"],
        "evaluate seed": [*ev, "--seed", "-1"],
        "compare pore": [*ev, "--lr", lr, "--compare-phases", "0"],
        "compare absent": [*ev, "--lr", lr, "--compare-phases", "5"],
        "compare count": [*ev, "--lr", lr, "--compare-phases", "1,2"],
        "evaluate lr gaps": [*ev, "--lr", str(t / "lr_gaps.tif")],
        "evaluate hr gaps": [*ev, "--hr", str(t / "hr_gaps.tif")],
        "bad run config": [*ev, "--run", str(t / "badrun")],
        "degrade scale": ["fuse", "degrade", str(t / "truth.tif"), "--scale", "3", "--out", out + ".tif"],
        "merge one": ["fuse", "degrade", str(t / "truth.tif"), "--merge", "2", "--out", out + ".tif"],
        "merge all": ["fuse", "degrade", str(t / "truth.tif"), "--merge", "0,1,2", "--out", out + ".tif"],
        "degrade gaps": ["fuse", "degrade", str(t / "lr_gaps.tif"), "--scale", "2", "--out", out + ".tif"],
        "degrade suffix": ["fuse", "degrade", str(t / "truth.tif"), "--out", out + ".png"],
    }[command]


@pytest.mark.parametrize(
    ("command", "expect"),
    [
        ("hr gaps", r"labels \{0, 2, 5\} skip phase\(s\) 1, 3, 4"),
        ("lr gaps", r"LR volume: labels \{0, 5\} skip"),
        ("lr one phase", "one phase only"),
        ("train seed", "seed"),
        ("hr small", "at least 32×32 pixels"),
        ("compare list", r"needs 1 HR phase\(s\).*\[1, 2\]"),  # 1,2 is read as two phases
        ("dask", "unknown dask scheduler 'foo'"),
        ("generate seed", "seed must be ≥ 0"),
        ("transport", r"--transport\) must be ≥ 0"),
        ("subvolumes", r"--subvolumes\) must be ≥ 1"),
        ("evaluate seed", "seed must be ≥ 0"),
        ("compare pore", "distinct HR phases ≥ 1"),
        ("compare absent", r"names a phase .* \(phases 0..2\)"),
        ("compare count", "LR volume has 2 phases but compare_phases lists 2"),
        ("evaluate lr gaps", "skip phase"),
        ("evaluate hr gaps", "skip phase"),
        ("bad run config", "not valid JSON"),
        ("degrade scale", "64/d"),
        ("merge one", "names one phase"),
        ("merge all", "single phase"),
        ("degrade gaps", "skip phase"),
        ("degrade suffix", r"must end in \.tif"),
    ],
)
def test_mistakes_give_one_error_line_and_write_nothing(work, tmp_path, command, expect, one_error_line):
    out = str(tmp_path / "out")
    line = one_error_line(runner.invoke(app, _case(work, command, out)))
    assert re.search(expect, line), line
    assert "--output-size" not in line  # no such option
    assert not list(tmp_path.iterdir())


def _train_cli_args(work, out):
    return ["fuse", "train", "--lr", str(work / "lr.tif"), "--hr", str(work / "hr.tif"), "--out", str(out)]


def _train_cli(work, out, *extra):
    args = _train_cli_args(work, out)
    return runner.invoke(app, [*args, "--steps", "0", *extra])


def test_resume_keeps_the_runs_settings_and_refuses_other_ones(work, tmp_path, one_error_line):
    run = tmp_path / "run"
    r = _train_cli(work, run, "--mode", "sample", "--seed", "3")
    assert r.exit_code == 0, r.output
    # the wrote line lists what was written: no curves or metrics.csv without an iteration
    assert "best.safetensors, last.safetensors, status.json)" in r.output
    assert "training_curves" not in r.output
    # options left out: the run's own settings, not the defaults
    assert _train_cli(work, run).exit_code == 0
    assert saved_config(run).mode == "sample" and saved_config(run).seed == 3
    before = (run / "last.safetensors").read_bytes()
    for extra, name in (
        (["--mode", "resolve"], "mode"),
        (["--preset", "paper"], "preset"),
        (["--scale", "2"], "scale"),
    ):
        line = one_error_line(_train_cli(work, run, *extra))
        assert "other settings" in line and name in line, line
    assert (run / "last.safetensors").read_bytes() == before
    # the old --iterations still works (a note says it is now --steps)
    r = runner.invoke(app, [*_train_cli_args(work, run), "--iterations", "0"])
    assert r.exit_code == 0 and "--steps" in r.output
    # how often it logs may change
    assert _train_cli(work, run, "--metrics-every", "7").exit_code == 0
    assert saved_config(run).training.metrics_every == 7
    assert json.loads((run / "config.json").read_text())["mode"] == "sample"


def test_resume_refuses_other_files_with_the_same_phases(work, tmp_path):
    gt = particle_electrode((48, 48, 48), radius=5, seed=2)
    lr, _ = degrade(gt, 4, merge=[(0, 2)])
    cfg = make_config("cpu", **TINY)
    train((lr, gt[24]), tmp_path, config=cfg.updated({"steps": 0}))
    with pytest.raises(InputError, match="different HR images"):
        train((lr, gt[20]), tmp_path, config=cfg.updated({"steps": 1}))
    with pytest.raises(InputError, match="different LR volume"):
        train((lr[::-1].copy(), gt[24]), tmp_path, config=cfg.updated({"steps": 1}))
    with pytest.raises(InputError, match="other settings"):
        train((lr, gt[24]), tmp_path, config=make_config("cpu", **{**TINY, "ema": 0.5}).updated({"steps": 1}))
    assert train((lr, gt[24]), tmp_path, config=cfg.updated({"steps": 1})).iterations == 1
    assert (
        train((lr, gt[24]), tmp_path, config=saved_config(tmp_path).updated({"steps": 2})).iterations == 2
    )  # the run's


def test_phase_count_refuses_gaps():
    assert phase_count([np.array([0, 1]), np.array([2, 0])]) == 3  # the union counts
    with pytest.raises(InputError, match=r"labels \{0, 2\} skip phase\(s\) 1"):
        phase_count([np.array([0, 2])], name="x")

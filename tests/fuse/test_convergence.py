"""Where a run stands (issue #37): the plateau test, the gaps to the HR images, the LR/HR fraction check."""

import json

import numpy as np
import pytest
import tifffile

from matsight.data.degrade import degrade
from matsight.data.microstructures import particle_electrode
from matsight.fuse.convergence import fraction_check, phase_gaps, run_status, score_trend, status_lines

from .test_train import TINY


def _noisy(curve, sd=0.02, seed=0):
    return list(np.asarray(curve) + np.random.default_rng(seed).normal(0, sd, len(curve)))


# ---------------------------------------------------------------------------------------------- plateau
@pytest.mark.parametrize("seed", range(5))
def test_a_falling_score_is_still_falling(seed):
    t = score_trend(_noisy(0.2 + np.exp(-np.arange(20) / 10), seed=seed))
    assert t["trend"] == "falling" and t["change"] < -t["threshold"] and t["window"] == 8


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_score_is_a_plateau(seed):
    # GAN noise: scatter 0.03 around 0.3, and one bad evaluation
    scores = _noisy(np.full(24, 0.3), sd=0.03, seed=seed)
    scores[-3] = 0.9
    t = score_trend(scores)
    assert t["trend"] == "plateau" and t["scatter"] == pytest.approx(0.03, rel=0.6)


def test_a_rising_score_is_rising():
    assert score_trend(_noisy(0.3 + 0.02 * np.arange(20)))["trend"] == "rising"


def test_a_slow_noiseless_decline_under_two_percent_is_a_plateau():
    assert score_trend(0.3 - 0.0001 * np.arange(20))["trend"] == "plateau"
    assert score_trend(0.3 - 0.01 * np.arange(20))["trend"] == "falling"


@pytest.mark.parametrize("n", [0, 1, 5, 7])
def test_a_short_history_is_too_few_to_tell(n):
    t = score_trend(0.5 - 0.1 * np.arange(n))
    assert t == {"trend": "too_few", "evaluations": n, "needed": 8}
    assert score_trend([1.0, None, float("nan"), *range(8, 0, -1)])["evaluations"] == 9


# ---------------------------------------------------------------------------------------------- status
def _history(scores):
    return [
        {"iteration": 10 * (i + 1), "score": s, "lr_agreement": 0.95, "vf0": 0.5, "sa0": 0.2, "eu0": 0.001}
        for i, s in enumerate(scores)
    ]


def test_status_reports_the_best_evaluations_gaps_and_lr_consistency():
    hist = _history([0.9, 0.5])
    hist[0]["lr_agreement"] = 0.5
    hr_ref = [([0.4, 0.6], [0.1, 0.1], [0.002, 0.0])]
    st = run_status(hist, hr_ref, best_iteration=20, stopped_by="budget", metrics_every=10)
    assert not st["converged"] and st["evaluated_iteration"] == 20 and st["lr_consistency"] == 0.95
    g = st["gaps"]["0"]
    assert g["vf_gap"] == pytest.approx(0.1) and g["interfaces_gap"] == pytest.approx(1.0)
    assert g["euler_gap"] == pytest.approx(-0.5)
    assert set(st["gaps"]) == {"0"}  # the record holds phase 0 only
    lines = status_lines(st)
    assert lines[-1].startswith("not converged — train longer (resume with the same command): too few")
    assert "one every 10 iterations" in lines[-1]
    assert any("95.00%" in line for line in lines) and any("VF +0.100" in line for line in lines)
    # zero HR Euler density: no relative gap
    assert phase_gaps({"vf1": 0.5, "sa1": 0.1, "eu1": 0.0}, hr_ref)["1"]["euler_gap"] is None


def test_status_says_when_the_best_checkpoint_traded_lr_agreement_away():
    # measured on NMC x8: the best score at iteration 75 with 75 % LR agreement, 90 % at the end
    hist = _history([0.9, 0.3, 0.5, 0.45])
    for r, a in zip(hist, (0.6, 0.75, 0.88, 0.90), strict=True):
        r["lr_agreement"] = a
    hr_ref = [([0.4, 0.6], [0.1, 0.1], [0.002, 0.0])]
    best = hist[1]["iteration"]
    st = run_status(hist, hr_ref, best_iteration=best, stopped_by="steps")
    trade = st["best_vs_latest"]
    assert trade == {
        "best_iteration": best,
        "latest_iteration": hist[-1]["iteration"],
        "best": 0.75,
        "latest": 0.9,
    }
    line = [x for x in status_lines(st) if "best checkpoint" in x]
    assert len(line) == 1 and "75.0%" in line[0] and "90.0%" in line[0] and "last.safetensors" in line[0]
    # within LR_TRADE, or the best being the latest: nothing to say
    hist[-1]["lr_agreement"] = 0.78
    assert run_status(hist, hr_ref, best_iteration=best)["best_vs_latest"] is None
    assert run_status(hist, hr_ref, best_iteration=hist[-1]["iteration"])["best_vs_latest"] is None


def test_status_verdicts():
    flat = _history(_noisy(np.full(16, 0.3)))
    st = run_status(flat, [([0.5], [0.2], [0.001])], best_iteration=160, stopped_by="steps")
    assert st["converged"] and st["verdict"].startswith("converged")
    falling = _history(_noisy(0.2 + np.exp(-np.arange(20) / 10)))
    st = run_status(falling, [([0.5], [0.2], [0.001])], best_iteration=200, stopped_by="steps")
    assert st["verdict"] == (
        "not converged — train longer (resume with the same command and more --steps, e.g. --steps 400)"
    )
    rising = _history(_noisy(0.3 + 0.02 * np.arange(20)))
    st = run_status(rising, [([0.5], [0.2], [0.001])], best_iteration=10, stopped_by="budget")
    assert "rising" in st["verdict"] and "iteration 10" in st["verdict"]
    assert run_status([], [([0.5], [0.2], [0.001])], stopped_by="steps")["gaps"] == {}


# ---------------------------------------------------------------------------------------------- inputs
@pytest.fixture(scope="module")
def pair():
    gt = particle_electrode((48, 48, 48), seed=3)
    lr, _ = degrade(gt, 4, merge=[(0, 2)])
    more_particle = gt[::4].copy()
    more_particle[:, :, :24][more_particle[:, :, :24] == 0] = 1
    return lr, gt[::4], more_particle


def test_fraction_check_maps_the_lr_phases_to_the_hr_phases(pair):
    lr, hr, more = pair
    ok = fraction_check(lr, [hr], [1], 3)
    assert not ok["mismatch"] and ok["warning"] is None
    assert [r["hr_phases"] for r in ok["phases"]] == [[0, 2], [1]]  # binder is seen as pore by the LR
    bad = fraction_check(lr, [more], [1], 3)
    rows = bad["phases"]
    assert (
        bad["mismatch"] and rows[1]["delta"] > 0.05 and rows[0]["delta"] == pytest.approx(-rows[1]["delta"])
    )
    assert (
        "LR phase 1 (HR phase 1)" in bad["warning"]
        and "the SR will follow the LR's fractions" in bad["warning"]
    )
    sep = fraction_check(lr, [more], [1], 3, material_only=True)["warning"]
    assert "where the HR images hold more material the SR can follow them" in sep


def _train_cli(tmp_path, lr, hr, steps=3):
    from typer.testing import CliRunner

    from matsight.cli import app

    tifffile.imwrite(tmp_path / "lr.tif", lr)
    tifffile.imwrite(tmp_path / "hr.tif", hr)
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    args = ["fuse", "train", "--lr", str(tmp_path / "lr.tif"), "--hr", str(tmp_path / "hr.tif")]
    args += ["--scale", "4", "--steps", str(steps), "--out", str(tmp_path / "run"), *sets]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return r


def test_cli_train_says_where_the_run_stands(tmp_path, pair):
    lr, hr, _ = pair
    r = _train_cli(tmp_path, lr, hr)
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("not converged — train longer (resume with the same command and more --steps")
    assert "too few evaluations to tell" in lines[-1]
    assert any(line.startswith("LR consistency") for line in lines[-4:])
    assert any(line.startswith("slices vs the HR images") and "Euler density" in line for line in lines)
    assert "warning" not in r.output  # fractions that match: no warning
    st = json.loads((tmp_path / "run" / "status.json").read_text())
    assert st["converged"] is False and st["stopped_by"] == "steps" and st["iteration"] == 3
    assert st["score_trend"]["trend"] == "too_few" and set(st["gaps"]) == {"0", "1", "2"}
    assert st["inputs"]["mismatch"] is False and 0 <= st["lr_consistency"] <= 1
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [h["score_trend"] for h in history] == ["too_few", "too_few"]


def test_cli_train_warns_when_lr_and_hr_fractions_differ(tmp_path, pair):
    lr, _, more = pair
    r = _train_cli(tmp_path, lr, more, steps=1)
    warning = r.stderr.split("warning: ", 1)[1]
    assert "differ from those of the HR phases they map to by more than 0.05" in warning
    assert "the SR will follow the LR's fractions" in warning
    assert r.stdout.find("inputs: LR and HR phase fractions differ") > 0
    st = json.loads((tmp_path / "run" / "status.json").read_text())
    assert st["inputs"]["mismatch"] and st["inputs"]["phases"][1]["delta"] > 0.05

"""The verdict of a SuperRes evaluation (issue #37): each finding on synthetic metrics and volumes."""

import json

import numpy as np
import pytest
from scipy import ndimage

from matsight.fuse.evaluate import evaluate
from matsight.fuse.verdict import interface_coverage, verdict

KW = dict(subvolume_size=8, n_subvolumes=4, n_transport=0, fft_slices=8)


def _kinds(findings):
    return sorted(f["kind"] for f in findings)


def _blobs(shape, seed, particles=0.93):
    """Three phases: sparse particles (1) in a matrix (2) with pore blobs (0)."""
    rng = np.random.default_rng(seed)
    a, b = (ndimage.gaussian_filter(rng.random(shape), 3, mode="wrap") for _ in range(2))
    t = np.full(shape, 2, np.uint8)
    t[b > np.quantile(b, 0.6)] = 0
    t[a > np.quantile(a, particles)] = 1
    return t


def _shelled(t, thickness=8):
    """Every particle (1) wrapped in a pore (0) shell ``thickness`` voxels thick."""
    out = t.copy()
    d = ndimage.distance_transform_edt(t != 1)
    out[(d > 0) & (d <= thickness)] = 0
    return out


def test_empty_metrics_give_no_findings():
    assert verdict({}) == []


def test_grid_rule():
    orient = {"SR ⟂ Z": {"1": 0.05, "2": 0.7}, "SR ⟂ Y": {"1": 0.6, "2": 0.8}, "HR": {"1": 0.8, "2": 0.8}}
    (f,) = verdict({"fft_orientation_ratio": orient})
    assert f["kind"] == "grid" and f["severity"] == "major"
    assert set(f["values"]) == {"⟂ Z, phase 1"} and "0.05" in f["message"]
    orient["SR ⟂ Z"]["1"] = 0.41  # 0.51 × the HR's: not a grid
    assert verdict({"fft_orientation_ratio": orient}) == []
    orient["SR ⟂ Z"]["1"] = 0.39
    assert verdict({"fft_orientation_ratio": orient})[0]["severity"] == "minor"
    # anisotropic: each plane against its own HR images; nan ratios are left out
    aniso = {"SR ⟂ X": {"1": 0.3, "2": float("nan")}, "HR ⟂ X": {"1": 0.4, "2": 0.9}}
    assert verdict({"fft_orientation_ratio": aniso}) == []


def test_shell_rule_on_coverage_profiles():
    hr = {"1-0": [0.4] * 16}
    sr = {"1-0": [1.0] * 8 + [0.6] * 8}
    (f,) = verdict({"interface_coverage": {"SR": sr, "HR": hr}})
    assert f["kind"] == "shell" and f["values"]["thickness"] == 8 and f["values"]["phase"] == 1
    assert f["values"]["shell_phase"] == 0 and "8 voxels thick" in f["message"]
    # a matrix (no end to the layer) and a thin skin (2 px) are not shells
    assert verdict({"interface_coverage": {"SR": {"1-0": [1.0] * 16}, "HR": hr}}) == []
    assert verdict({"interface_coverage": {"SR": {"1-0": [1.0] * 2 + [0.4] * 14}, "HR": hr}}) == []
    # the HR image has the same layer: no surplus
    assert verdict({"interface_coverage": {"SR": sr, "HR": sr}}) == []


def test_shell_statistic_on_volumes_with_and_without_a_shell():
    t = _blobs((32, 64, 64), 0)
    ph = [0, 1, 2]
    cov_hr = interface_coverage(t[1::4], ph)
    clean = {"SR": interface_coverage(t[::4], ph), "HR": cov_hr}
    assert verdict({"interface_coverage": clean}) == []
    cov = {"SR": interface_coverage(_shelled(t)[::4], ph), "HR": cov_hr}
    (f,) = verdict({"interface_coverage": cov})
    assert f["kind"] == "shell" and (f["values"]["phase"], f["values"]["shell_phase"]) == (1, 0)
    assert 7 <= f["values"]["thickness"] <= 9 and f["values"]["SR"] > 0.95 > 0.6 > f["values"]["HR"]


def test_interface_lr_and_training_rules():
    whole = {
        "SR": {"interface_face_fraction": {"0-1": 0.02, "1-2": 0.1, "0-2": 0.13}},
        "HR": {"interface_face_fraction": {"0-1": 0.1, "1-2": 0.1, "0-2": 0.1}},
    }
    found = verdict({"whole": whole})
    assert _kinds(found) == ["interface", "interface"]
    by = {f["values"]["interface"]: f for f in found}
    assert by["0-1"]["severity"] == "major" and "deficit" in by["0-1"]["message"]
    assert "-80%" in by["0-1"]["message"] and by["0-2"]["severity"] == "minor"
    assert "surplus" in by["0-2"]["message"]
    (f,) = verdict({"lr_consistency": {"consistency": 0.93, "per_phase": {}}})
    assert f["kind"] == "lr" and f["severity"] == "minor" and "93.0%" in f["message"]
    assert verdict({"lr_consistency": {"consistency": 0.95}}) == []
    (f,) = verdict({}, {"converged": False, "verdict": "not converged: the score is still falling"})
    assert f["kind"] == "training" and "still falling" in f["message"]
    assert verdict({}, {"converged": True, "verdict": "converged"}) == []


def test_evaluate_clean_sr_has_no_findings(tmp_path):
    pytest.importorskip("matplotlib")
    t = _blobs((24, 48, 48), 1)
    res = evaluate(t, hr=t[::3].copy(), truth=t, out_dir=tmp_path, **KW)
    assert res["verdict"] == []
    assert json.loads((tmp_path / "metrics.json").read_text())["verdict"] == []
    page = (tmp_path / "index.html").read_text()
    assert "Verdict: no problems found" in page
    assert page.index("Verdict") < page.index("Volume fractions")


def test_evaluate_flags_a_lattice_of_dots_and_shells(tmp_path):
    pytest.importorskip("matplotlib")
    t = _blobs((24, 48, 48), 1)
    # the real case: pore became phase 2 carrying a grid-aligned lattice of phase-1 dots
    z, y, x = np.indices(t.shape)
    lattice = t.copy()
    lattice[t == 0] = 2
    lattice[(t == 0) & (y % 3 == 0) & (x % 3 == 0)] = 1
    res = evaluate(lattice, hr=t[::3].copy(), out_dir=tmp_path, **KW)
    grid = [f for f in res["verdict"] if f["kind"] == "grid"]
    assert grid and any("⟂ Z" in k for k in grid[0]["values"])
    page = (tmp_path / "index.html").read_text()
    assert "problem(s) found" in page and "grid artefacts" in page
    res = evaluate(_shelled(t), hr=t[::3].copy(), **KW)
    shells = [f for f in res["verdict"] if f["kind"] == "shell"]
    assert [(f["values"]["phase"], f["values"]["shell_phase"]) for f in shells] == [(1, 0)]

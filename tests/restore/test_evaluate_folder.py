"""`evaluate` of an `apply` folder: the LQ baseline in HQ units, the recorded field of view, SIFT counts."""

import json
import logging

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight import InputError
from matsight.cli import app
from matsight.data.grayscale import synthetic_grayscale
from matsight.io import write_volume
from matsight.restore.evaluate import compare, evaluate
from matsight.restore.pair_io import save_pair
from matsight.restore.predict import predict_path
from matsight.restore.register import prepare_pair
from matsight.restore.steps import at_edge, resolve_steps, select_steps
from matsight.restore.train import train

runner = CliRunner()


@pytest.fixture(scope="module")
def applied(tmp_path_factory, tiny_indi):
    """A 64² HQ, its LQ in other grey units (×1000 + 50), a FOV-masked pair, a tiny model and its apply/."""
    t = tmp_path_factory.mktemp("restore_eval")
    rng = np.random.default_rng(3)
    hq = np.full((64, 64), 0.2, np.float32)
    yy, xx = np.mgrid[:64, :64]
    for _ in range(10):
        cy, cx, r = rng.uniform(12, 52, 2).tolist() + [rng.uniform(3, 8)]
        hq[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.choice([0.6, 0.9])
    lq = hq.reshape(32, 2, 32, 2).mean((1, 3)) + rng.normal(0, 0.02, (32, 32))
    lq = (1000 * lq + 50).astype(np.float32)
    write_volume(t / "hq.tif", hq)
    write_volume(t / "lq.tif", lq)
    save_pair(prepare_pair(lq, hq, scale=2, mask=True), t / "pair")
    train(t / "pair", t / "model", device="cpu", max_steps=2, **tiny_indi)
    predict_path(t / "model", t / "lq.tif", t / "out", indi_steps=2, device="cpu")
    return t, hq, lq


def _rows(metrics, name):
    return metrics[name]["psnr"], metrics[name]["ssim"]


def test_lq_baseline_is_scored_in_hq_units_like_bicubic_tif(applied, tmp_path):
    t, hq, lq = applied
    ref, _ = evaluate(t / "out", hq, report_dir=tmp_path / "a", sift=False)
    got, _ = evaluate(t / "out", hq, lq=lq, report_dir=tmp_path / "b", sift=False)
    assert _rows(got, "LQ bicubic") == pytest.approx(_rows(ref, "LQ bicubic"), rel=1e-4)
    assert ref["LQ bicubic"]["psnr"] > 10  # raw LQ units (×1000) would score far below 0 dB
    # a folder written before apply recorded the statistics: they come from its model
    meta = json.loads((t / "out" / "enhance.json").read_text())
    old = tmp_path / "old"
    old.mkdir()
    for f in ("enhanced.tif", "bicubic.tif", "onestep.tif"):
        (old / f).write_bytes((t / "out" / f).read_bytes())
    meta.pop("stats"), meta.pop("fov_radius")
    (old / "enhance.json").write_text(json.dumps(meta))
    got, _ = evaluate(old, hq, lq=lq, report_dir=tmp_path / "c", sift=False)
    assert _rows(got, "LQ bicubic") == pytest.approx(_rows(ref, "LQ bicubic"), rel=1e-4)
    meta["model"] = str(tmp_path / "gone")
    (old / "enhance.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="--lq"):
        evaluate(old, hq, lq=lq, report_dir=tmp_path / "d", sift=False)


def test_pixels_outside_the_recorded_fov_do_not_count(applied, tmp_path):
    t, hq, _ = applied
    assert json.loads((t / "out" / "enhance.json").read_text())["fov_radius"] == 32
    outside = ~((np.mgrid[:64, :64] - 31.5) ** 2).sum(0).__le__(32**2)
    spoilt = hq.copy()
    spoilt[outside] += 5.0
    write_volume(t / "spoilt.tif", spoilt)
    name = "InDI N=2"
    a, _ = evaluate(t / "out", hq, report_dir=tmp_path / "a", sift=False)
    b, _ = evaluate(t / "out", spoilt, report_dir=tmp_path / "b", sift=False)
    # PSNR is scored inside the FOV only (SSIM windows and the CNR smoothing still reach across the rim)
    assert b[name]["psnr"] == pytest.approx(a[name]["psnr"], abs=1e-9)
    c, _ = evaluate(t / "out", spoilt, fov=None, report_dir=tmp_path / "c", sift=False)
    assert c[name]["psnr"] < a[name]["psnr"] - 3

    def cli(*extra):
        rep = tmp_path / f"r{len(extra)}"
        args = ["restore", "evaluate", str(t / "out"), "--hq", str(t / "spoilt.tif"), "--out", str(rep)]
        r = runner.invoke(app, args + ["--no-sift", *extra])
        assert r.exit_code == 0, r.output
        return json.loads((rep / "metrics.json").read_text())[name]["psnr"]

    assert cli() == pytest.approx(a[name]["psnr"])
    assert cli("--no-fov") == pytest.approx(c[name]["psnr"])
    assert cli("--fov-radius", "20") != pytest.approx(a[name]["psnr"])
    r = runner.invoke(
        app,
        ["restore", "evaluate", str(t / "out"), "--hq", str(t / "hq.tif"), "--out", str(tmp_path / "x")]
        + ["--no-fov", "--fov-radius", "20"],
    )
    assert r.exit_code == 2 and "either --fov-radius or --no-fov" in r.output
    assert not (tmp_path / "x").exists()


def test_sift_matched_survives_a_shift_that_breaks_congruence():
    hq = synthetic_grayscale((160, 160), seed=0)
    m = compare(hq, {"shifted": np.roll(hq, 5, axis=1)}, n_edges=10)
    row = m["shifted"]
    assert row["sift_matched"] > 20 and row["sift_congruent"] < 0.2 * row["sift_matched"]
    assert m["HQ"]["sift_matched"] >= m["HQ"]["sift_congruent"] > 20


def _fake_sampler(monkeypatch, hq, err):
    """``sample_image`` replaced: the output at ``N`` steps is the HQ plus ``err(N)`` times fixed noise."""
    noise = np.random.default_rng(1).normal(0, 1, hq.shape).astype(np.float32)
    tried = []

    def fake(net, y, *, steps, context=None):
        tried.append(steps)
        return hq + err(steps) * noise

    monkeypatch.setattr("matsight.restore.steps.sample_image", fake)
    return tried


def test_auto_steps_maximises_validation_psnr_and_searches_past_the_edge(monkeypatch, caplog):
    hq = np.random.default_rng(0).normal(0, 0.3, (32, 32)).astype(np.float32)
    y = [np.zeros_like(hq)]
    # the case: the PSNR peaks at N = 2 (0.3 dB above N = 16): auto takes 2, not the largest N
    _fake_sampler(monkeypatch, hq, lambda n: 0.25 if n == 2 else 0.26 + 0.001 * n)
    best, table = select_steps(None, y, [hq], candidates=(1, 2, 4, 16))
    assert best == 2 and set(table) == {1, 2, 4, 16}
    # within the tolerance the fewest steps win (differences below it are noise)
    _fake_sampler(monkeypatch, hq, lambda n: 0.25 - 0.0001 * n)
    assert select_steps(None, y, [hq], candidates=(1, 2, 4))[0] == 1
    # the PSNR still rises at the largest candidate: the search goes on, 16 -> 32 -> 64, and stops at the peak
    tried = _fake_sampler(monkeypatch, hq, lambda n: 0.1 + 0.01 * abs(n - 30))
    with caplog.at_level(logging.WARNING, logger="matsight.restore.steps"):
        best, table = select_steps(None, y, [hq], candidates=(1, 4, 16))
    assert best == 32 and sorted(table) == [1, 4, 16, 32, 64] and tried == [1, 4, 16, 32, 64]
    assert not at_edge(best, table) and "edge" not in caplog.text
    # rising up to the cap: the edge is announced, not chosen silently
    _fake_sampler(monkeypatch, hq, lambda n: 1.0 / n)
    with caplog.at_level(logging.WARNING, logger="matsight.restore.steps"):
        best, table = select_steps(None, y, [hq], candidates=(1, 4, 16))
    assert best == 64 == max(table) and at_edge(best, table) and "edge of the search" in caplog.text
    # the smallest candidate above 1 is an edge too: N is halved towards 1
    _fake_sampler(monkeypatch, hq, lambda n: 0.1 + 0.01 * n)
    assert select_steps(None, y, [hq], candidates=(4, 8))[0] == 1


def test_auto_steps_of_a_model_on_its_largest_candidate_warn_when_applied(caplog):
    with caplog.at_level(logging.WARNING, logger="matsight.restore.steps"):
        assert resolve_steps("auto", {"steps_auto": {"best": 8, "table": {"8": {}, "16": {}}}}) == 8
    assert "edge" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="matsight.restore.steps"):
        assert resolve_steps("auto", {"steps_auto": {"best": 16, "table": {"8": {}, "16": {}}}}) == 16
    assert "largest step count tried" in caplog.text

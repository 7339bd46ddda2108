"""The paper's baselines (issue #38): a one-step network trained for direct regression, and classical
denoisers tuned on the training slices, as labelled rows of ``evaluate``."""

import json

import numpy as np
import torch
from typer.testing import CliRunner

from matsight.cli import app
from matsight.io import write_volume
from matsight.restore.classical import apply_classical, tune_classical
from matsight.restore.config import make_config
from matsight.restore.losses import indi_loss
from matsight.restore.networks import load_model
from matsight.restore.predict import predict
from matsight.restore.train import train

runner = CliRunner()


def _psnr(a, b, data_range=2.0):
    return 10 * np.log10(data_range**2 / np.mean((a.astype(np.float64) - b) ** 2))


def test_onestep_loss_feeds_the_lq_at_t_one():
    seen = {}

    def net(xt, t, cond=None):
        seen["xt"], seen["t"] = xt, t
        return xt

    x, y = torch.zeros(3, 1, 8, 8), torch.ones(3, 1, 8, 8)
    cfg = make_config(**{"training.objective": "onestep", "training.eps": 0.1})
    indi_loss(net, x, y, config=cfg)
    assert torch.equal(seen["t"], torch.ones(3)) and torch.equal(seen["xt"], y)
    assert make_config().training.objective == "indi"  # the default, and that of older models


def test_onestep_training_and_one_pass(tmp_path, rng, disk_scene, tiny_indi):
    hq = np.stack([disk_scene(rng, 48) for _ in range(3)]) * 1.6 - 0.8
    lq = np.clip(hq + rng.normal(0, 0.05, hq.shape), -1, 1).astype(np.float32)
    settings = {**tiny_indi, "training.objective": "onestep", "training.steps": 3}
    res = train((lq, hq.astype(np.float32)), tmp_path / "m", device="cpu", **settings)
    assert res.steps_auto is None and set(res.validation) == {"psnr_input", "psnr_1"}
    net, meta = load_model(tmp_path / "m")
    assert meta["config"].training.objective == "onestep" and meta["classical"]["nlm"]["h"] > 0
    calls = []
    forward = net.forward
    net.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    out = predict((net, meta), lq[0], indi_steps=4, upscaled=True, onestep=True, device="cpu")
    assert len(calls) == 1 and out.steps == 1 and out.onestep is None
    assert out.info["objective"] == "onestep"


def test_tuned_nlm_beats_the_raw_lq(rng, disk_scene):
    hq = [disk_scene(rng, 64) * 2 - 1 for _ in range(3)]
    lq = [(h + rng.normal(0, 0.15, h.shape)).astype(np.float32) for h in hq]
    tuned = tune_classical(lq[:2], hq[:2])
    assert tuned["nlm"]["psnr"] > tuned["psnr_input"] + 3
    assert tuned["gaussian"]["psnr"] > tuned["psnr_input"]
    # on a slice it was not tuned on
    assert _psnr(apply_classical(lq[2], "nlm", tuned["nlm"]), hq[2]) > _psnr(lq[2], hq[2]) + 3
    vol = apply_classical(np.stack(lq), "gaussian", tuned["gaussian"])
    assert vol.shape == (3, 64, 64)


def _cli(*args):
    r = runner.invoke(app, ["restore", *map(str, args)])
    assert r.exit_code == 0, r.output
    return r.output


def test_evaluate_lists_the_baselines_with_their_labels(tmp_path, rng, disk_scene):
    t = tmp_path
    hq = disk_scene(rng)
    lq = hq.reshape(32, 2, 32, 2).mean((1, 3)) + rng.normal(0, 0.05, (32, 32)).astype(np.float32)
    write_volume(t / "hq.tif", hq)
    write_volume(t / "lq.tif", lq.astype(np.float32))
    _cli("register", t / "lq.tif", t / "hq.tif", "--out", t / "pair", "--scale", "2", "--no-mask")
    common = ("--steps", "2", "--device", "cpu")
    _cli("train", t / "pair", "--out", t / "indi", *common)
    _cli("train", t / "pair", "--out", t / "one", "--objective", "onestep", *common)
    out = _cli("apply", t / "one", t / "lq.tif", "--out", t / "o1", "--device", "cpu")
    assert "one network pass" in out and not (t / "o1" / "onestep.tif").exists()
    _cli("apply", t / "indi", t / "lq.tif", "--out", t / "o", "--indi-steps", "2", "--device", "cpu")
    out = _cli(
        "evaluate", t / "o", "--hq", t / "hq.tif", "--lq", t / "lq.tif", "--out", t / "r", "--no-sift",
        "--onestep-model", t / "one",
    )  # fmt: skip
    metrics = json.loads((t / "r" / "metrics.json").read_text())
    rows = ["LQ bicubic", "classical NLM", "classical Gaussian", "one-step", "InDI N=1", "InDI N=2"]
    assert [k for k in metrics if k != "HQ"] == rows
    how = {k: metrics[k]["how"] for k in rows}
    assert "non-local means" in how["classical NLM"] and "tuned" in how["classical NLM"]
    assert "Gaussian" in how["classical Gaussian"] and "training slices" in how["classical Gaussian"]
    assert "direct regression" in how["one-step"] and "not a network trained" in how["InDI N=1"]
    assert "N = 2 steps" in how["InDI N=2"]
    assert "classical NLM" in out and "direct regression" in out
    # the one-step model's own output is labelled one-step, not InDI
    _cli("evaluate", t / "o1", "--hq", t / "hq.tif", "--out", t / "r1", "--no-sift")
    metrics = json.loads((t / "r1" / "metrics.json").read_text())
    assert "one-step" in metrics and not any(k.startswith("InDI") for k in metrics)

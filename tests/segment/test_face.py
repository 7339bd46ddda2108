"""The package face (#40): nested config with the earlier flat form, the U-Net as a configured nn.unet.UNet
that reproduces the earlier SegUNet, models saved by earlier versions, the one train signature, the CLI words.

``data/segunet_reference.safetensors``, ``data/legacy_*`` were written by the code before the change (the
SegUNet class, a flat ``model.json``): same seed → same network, same training, same labels.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file as load_np
from safetensors.torch import load_file
from typer.testing import CliRunner

import matsight.segment as seg
from matsight._errors import InputError
from matsight.cli import app
from matsight.io import write_volume
from matsight.nn.device import seed_everything
from matsight.nn.unet import UNet
from matsight.segment.config import SegmentConfig, UNetConfig, make_config
from matsight.segment.losses import class_weights, stroke_loss
from matsight.segment.networks import build_network, load_weights
from matsight.segment.predict import predict_proba

DATA = Path(__file__).with_name("data")
VARIANTS = {
    "res_att": dict(attention=True, residual=True),
    "plain": dict(attention=False, residual=False),
    "res_noatt": dict(attention=False, residual=True),
    "plain_att": dict(attention=True, residual=False),
}

# outputs stored by an earlier run: another thread count or CPU sums floats in another order (~1e-7);
# a different network would differ by O(1)
STORED = dict(rtol=1e-5, atol=1e-5)


def test_face():
    assert seg.__all__ == ["train", "predict", "evaluate", "SegmentConfig", "load"]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("widths", [[4, 8, 8], [16, 32, 64]])
def test_network_is_a_unet_equal_to_the_earlier_segunet(variant, widths):
    ref = load_file(str(DATA / "segunet_reference.safetensors"))
    key = f"{variant}_{'-'.join(map(str, widths))}"
    seed_everything(7)
    net = build_network(3, UNetConfig(widths=widths, **VARIANTS[variant])).eval()
    assert type(net) is UNet
    with torch.no_grad():
        torch.testing.assert_close(net(ref["x"]), ref[f"y/{key}"], **STORED)
    torch.testing.assert_close(torch.rand(4), ref[f"after_rng/{key}"], rtol=0, atol=0)  # same draws after
    if widths == [4, 8, 8]:  # an earlier state dict (SegUNet names) loads and gives the same logits
        old = {k.split("/", 2)[2]: v for k, v in ref.items() if k.startswith(f"sd/{key}/")}
        fresh = load_weights(build_network(3, UNetConfig(widths=widths, **VARIANTS[variant])), old).eval()
        with torch.no_grad():
            torch.testing.assert_close(fresh(ref["x"]), ref[f"y/{key}"], **STORED)


@pytest.mark.parametrize("method", ["forest", "unet"])
def test_models_of_earlier_versions_load_and_retrain_identically(method):
    ref = load_np(str(DATA / "legacy_predictions.safetensors"))
    folder = DATA / f"legacy_{method}"
    flat = json.loads((folder / "model.json").read_text())["config"]
    assert "model" not in flat  # the earlier flat layout
    model = seg.load(folder)
    np.testing.assert_allclose(predict_proba(model, ref["image"]), ref[f"p_{method}"], **STORED)
    assert model.config == SegmentConfig(**flat)
    again = seg.train((ref["image"], ref["strokes"]), None, config=model.config)
    np.testing.assert_allclose(predict_proba(again, ref["image"]), ref[f"p_{method}"], **STORED)


def test_config_nested_flat_and_errors():
    cfg = SegmentConfig(model={"method": "unet", "unet": {"widths": [8, 16]}}, training={"steps": 7})
    assert cfg == SegmentConfig(method="unet", unet_widths=[8, 16], iterations=7)
    assert make_config(cfg, steps=9, sigmas=[2, 1]).training.steps == 9
    assert make_config(sigmas=[2, 1]).model.forest.features.sigmas == [1.0, 2.0]
    with pytest.raises(InputError, match="model: the U-Net is 2D"):
        make_config(method="unet", dims=3)
    with pytest.raises(InputError, match="model.unet.widths"):
        make_config(unet_widths=[4])
    with pytest.raises(InputError, match="unknown segment setting"):
        make_config(iteration=3)
    with pytest.raises(ValueError, match="extra"):
        SegmentConfig(training={"iterations": 3})  # nested parts use the new names only


def test_stroke_loss_weights_rare_phases_and_ignores_unlabelled():
    t = np.array([[0, 0, 0, 1, -1]])
    w = class_weights(t, 2)
    torch.testing.assert_close(w, torch.tensor([4 / (2 * 3), 4 / (2 * 1)]))  # w_c = N / (C N_c)
    logits = torch.zeros(1, 2, 1, 5)
    logits[0, 0, 0, 4] = 50.0  # the unlabelled pixel: no effect
    torch.testing.assert_close(
        stroke_loss(logits, torch.from_numpy(t[:, None, :]), w),
        torch.tensor(np.log(2.0), dtype=torch.float32),
    )


def _sample():
    ref = load_np(str(DATA / "legacy_predictions.safetensors"))
    return ref["image"], ref["strokes"]


def test_train_writes_the_model_and_reports_progress(tmp_path):
    seen = []
    model = seg.train(
        _sample(), tmp_path / "m", config={"n_estimators": 3, "sigmas": [1]}, callback=seen.append
    )
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert seen[-1].step == seen[-1].total and seen[-1].message
    assert seg.load(tmp_path / "m").config == model.config
    with pytest.raises(InputError, match="pair"):
        seg.train(_sample()[0], None)


def test_unet_budget_stops_early():
    cfg = {
        "method": "unet",
        "steps": 10_000,
        "crop": 16,
        "batch_size": 1,
        "unet_widths": [2, 4],
        "holdout": 0,
    }
    seen = []
    seg.train(_sample(), None, config=cfg, budget=0.5, callback=seen.append)
    assert seen[-1].step < 10_000 and seen[-1].step == seen[-1].total and seen[-1].budget == 0.5


def test_evaluate_against_reference_with_mask():
    ref = np.array([[0, 1], [2, 2]])
    pred = np.array([[0, 1], [1, 2]])
    s = seg.evaluate(pred, ref)
    assert s["pixel_accuracy"] == 0.75 and s["per_phase"][2]["iou"] == 0.5
    assert seg.evaluate(pred, ref, mask=ref != 2)["pixel_accuracy"] == 1.0
    with pytest.raises(InputError, match="shape"):
        seg.evaluate(pred, ref[:1])


def test_cli_steps_and_the_old_iterations_word(tmp_path):
    image, strokes = _sample()
    write_volume(tmp_path / "img.tif", image)
    write_volume(tmp_path / "s.tif", strokes)
    base = ["segment", "train", str(tmp_path / "img.tif"), str(tmp_path / "s.tif"), "--method", "unet"]
    tiny = ["--holdout", "0"]
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "a"), "--steps", "2", *tiny])
    assert r.exit_code == 0, r.output
    assert seg.load(tmp_path / "a").config.training.steps == 2
    r = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "b"), "--iterations", "3", *tiny])
    assert r.exit_code == 0, r.output
    assert "--iterations is now --steps" in r.output and seg.load(tmp_path / "b").config.training.steps == 3
    assert "--iterations" not in CliRunner().invoke(app, ["segment", "train", "--help"]).output

import numpy as np
import pytest

pytest.importorskip("torch")

from matsight import InputError  # noqa: E402
from matsight.tem import analyze, fft, lattice  # noqa: E402
from matsight.tem.detector import DEFAULT_WEIGHTS, detect_spots_unet, load_detector, unet_spot_mask  # noqa: E402


def test_shipped_weights_load():
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.stat().st_size < 3_000_000
    net, meta = load_detector()
    assert meta["kind"] == "tem_spot_unet" and 0 < meta["threshold"] < 1
    assert sum(p.numel() for p in net.parameters()) < 500_000


def test_unet_finds_spots_of_synthetic_image():
    li = lattice.two_phase_image((256, 256), 0.025, seed=3, dose=800)
    tab = detect_spots_unet(li.image, 0.025)
    truth = li.visible_spots()
    assert len(truth) >= 4
    found = sum(np.hypot(tab.row - s["row"], tab.col - s["col"]).min() < 1.5 for s in truth)
    assert found / len(truth) >= 0.8
    allg = np.array([(s["row"], s["col"]) for s in li.spots])
    for r, c in zip(tab.row, tab.col, strict=True):  # no false positives
        assert np.hypot(allg[:, 0] - r, allg[:, 1] - c).min() < 2.0
    for s, d in zip(tab.to_records(), tab.d, strict=True):
        assert s["d_angstrom"] == d


@pytest.mark.parametrize("shape", [(256, 256), (255, 257), (240, 251)])
def test_unet_mask_mirrored_exactly(shape):
    grains = [lattice.Grain("LiF", (0, 1, 1), 17.0)]
    li = lattice.lattice_image(shape, 0.02, grains=grains, dose=1500, seed=2)
    S = fft.spectrum(li.image)
    mask, _ = unet_spot_mask(S, 0.02)
    assert mask.any()
    ii, jj = np.indices(shape)
    mi, mj = fft.friedel_mate(np.stack([ii, jj], -1), shape).transpose(2, 0, 1)
    assert np.array_equal(mask[mi, mj], mask)  # every pixel has its Friedel mate
    assert np.array_equal(fft.from_half(fft.to_half(mask), shape[1]), mask)


def test_pipeline_with_unet_identifies_both_phases():
    li = lattice.two_phase_image((320, 320), 0.02, phases=("LiF", "Li"), seed=1, dose=600)
    res = analyze(li.image, 0.02, detector="unet")
    assert res.detector == "unet" and set(res.phases_found) == {"LiF", "Li"}
    for name in ("LiF", "Li"):
        gt = li.phase_labels == li.phase_names.index(name) + 1
        pred = res.maps.labels == res.maps.phase_names.index(name) + 1
        assert (gt & pred).sum() / (gt | pred).sum() >= 0.7, name


def test_unet_amorphous_finds_nothing():
    im = lattice.lattice_image((256, 256), 0.02, grains=[], dose=300, amorphous=0.3, seed=0)
    assert len(detect_spots_unet(im.image, 0.02)) == 0


def test_bad_weights(tmp_path):
    with pytest.raises(InputError, match="weights not found"):
        load_detector(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="checkpoint"):
        load_detector(junk)
    with pytest.raises(InputError, match="threshold"):
        unet_spot_mask(np.ones((64, 64), complex), 0.02, threshold=1.5)


def test_train_detector_cli_smoke(tmp_path):
    from typer.testing import CliRunner

    from matsight.cli import app

    out = tmp_path / "w.safetensors"
    args = ["tem", "train-detector", "--out", str(out), "--n-train", "8", "--n-val", "4", "--steps", "2"]
    r = CliRunner().invoke(app, [*args, "--size", "64", "--evaluate", "2"])
    assert r.exit_code == 0, r.output
    assert out.is_file() and out.with_suffix(".json").is_file() and out.with_suffix(".eval.json").is_file()
    assert "held-out" in r.output and "unet" in r.output
    _, meta = load_detector(out)
    # 8 frames × 2 patches / batch 16 = 1 step per epoch: validated after each of the 2 steps
    assert meta["train_config"]["data"]["n_train"] == 8 and len(meta["history"]) == 2
    assert meta["train_config"]["training"]["steps"] == 2
    li = lattice.two_phase_image((128, 128), 0.02, seed=2, dose=2000)
    detect_spots_unet(li.image, 0.02, weights=out)  # loads and runs (an untrained net finds what it finds)
    r = CliRunner().invoke(app, ["tem", "train-detector", "--out", str(tmp_path / "w.pt")])
    assert r.exit_code == 2 and "safetensors" in r.output


def test_train_library_folder_callback_and_deprecated_epochs(tmp_path):
    from typer.testing import CliRunner

    from matsight.cli import app
    from matsight.tem import SyntheticFrames, train

    seen = []
    data = SyntheticFrames(n_train=8, n_val=4, size=64)
    summary = train(data, tmp_path / "run", config={"training": {"epochs": 2}}, callback=seen.append)
    assert summary["path"] == str(tmp_path / "run" / "spot_unet.safetensors")
    assert (tmp_path / "run" / "spot_unet.json").is_file()
    steps = [p for p in seen if p.message == "training"]
    assert steps[-1].step == steps[-1].total == 2 and "loss" in steps[-1].metrics
    # the old --epochs still works (hidden, deprecated): one pass = one step here
    args = ["tem", "train-detector", "--n-train", "8", "--n-val", "4", "--size", "64", "--evaluate", "0"]
    r = CliRunner().invoke(app, [*args, "--epochs", "1", "--out", str(tmp_path / "old.safetensors")])
    assert r.exit_code == 0, r.output
    assert len(load_detector(tmp_path / "old.safetensors")[1]["history"]) == 1
    r = CliRunner().invoke(app, ["tem", "train-detector", "--help"])
    assert "--steps" in r.output and "--epochs" not in r.output


@pytest.mark.parametrize("shape", [(64, 64), (65, 63), (64, 67), (63, 66)])
def test_symmetrise_half_exact_with_nyquist(shape, rng):
    from matsight.tem.detector import _symmetrise_half

    ny, nx = shape
    half = rng.random((ny, nx // 2 + 1)) > 0.7  # arbitrary, asymmetric self-conjugate columns
    full = fft.from_half(_symmetrise_half(half, ny, nx), nx)
    ii, jj = np.indices(shape)
    mi, mj = fft.friedel_mate(np.stack([ii, jj], -1), shape).transpose(2, 0, 1)
    assert np.array_equal(full[mi, mj], full)

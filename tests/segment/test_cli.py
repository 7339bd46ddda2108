import numpy as np
import pytest
from typer.testing import CliRunner

from matsight.cli import app
from matsight.io import read_spacing, read_volume, write_volume
from matsight.segment.evaluate import label_scores
from matsight.segment.synthetic import draw_strokes, grayscale_from_labels, phase_image


@pytest.fixture
def files(tmp_path):
    truth = phase_image((6, 80, 80), correlation=6, seed=3)
    vol = (grayscale_from_labels(truth, noise=0.1, seed=3) * 1000).astype(np.uint16)
    strokes = draw_strokes(truth[3], strokes_per_phase=4, length=20, seed=3)
    write_volume(tmp_path / "vol.tif", vol, spacing=(100.0, 50.0, 50.0))
    write_volume(tmp_path / "slice.tif", vol[3])
    write_volume(tmp_path / "strokes.tif", strokes)
    return tmp_path, truth


def _run(*args):
    return CliRunner().invoke(app, ["segment", *map(str, args)])


def test_train_apply_with_probabilities_and_clean(files):
    d, truth = files
    r = _run(
        "train",
        d / "slice.tif",
        d / "strokes.tif",
        "--out",
        d / "model",
        "--trees",
        "20",
        "--sigmas",
        "1,2,4",
    )
    assert r.exit_code == 0, r.output
    assert "mean Dice" in r.output and (d / "model" / "model.safetensors").is_file()
    r = _run(
        "apply",
        d / "model",
        d / "vol.tif",
        "--out",
        d / "lab.tif",
        "--probabilities",
        d / "p.tif",
        "--clean",
        "5",
    )
    assert r.exit_code == 0, r.output
    lab = read_volume(d / "lab.tif")
    assert lab.shape == truth.shape and lab.dtype == np.uint8
    np.testing.assert_allclose(read_spacing(d / "lab.tif"), (100.0, 50.0, 50.0), rtol=1e-4)
    assert label_scores(truth, lab, [0, 1, 2])["mean_dice"] > 0.85
    import tifffile

    p = tifffile.imread(d / "p.tif")  # a multi-channel tif: read_volume asks for one channel
    assert p.shape == (6, 3, 80, 80)  # ZCYX
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-4)


def test_train_on_one_slice_of_a_volume(files):
    d, _ = files
    r = _run(
        "train",
        d / "vol.tif",
        d / "strokes.tif",
        "--slice",
        "3",
        "--dims",
        "2",
        "--out",
        d / "m2",
        "--trees",
        "5",
    )
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize(
    ("make", "extra", "match"),
    [
        (lambda s: np.where(s > 0, 1, 0).astype(np.uint8), [], "only one phase"),
        (lambda s: np.pad(s, ((0, 4), (0, 0))), [], "outside the image"),
        (lambda s: s[:50], [], "shape"),
        (lambda s: s, ["--slice", "9"], "outside the image"),
    ],
)
def test_bad_labels_exit_2_one_line(files, make, extra, match):
    d, _ = files
    strokes = read_volume(d / "strokes.tif")
    write_volume(d / "bad.tif", make(strokes))
    image = d / ("vol.tif" if extra else "slice.tif")
    r = _run("train", image, d / "bad.tif", "--out", d / "nomodel", *extra)
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0]
    assert not (d / "nomodel").exists()


def test_apply_missing_model_is_error(files):
    d, _ = files
    r = _run("apply", d / "nothing", d / "vol.tif", "--out", d / "x.tif")
    assert r.exit_code == 2 and "error:" in r.output and not (d / "x.tif").exists()


def test_outputs_never_replace_inputs_or_user_files(files):
    d, _ = files
    (d / "notes.txt").write_text("mine")
    # the model folder is replaced as a whole: one that holds an input is refused (issue 35)
    r = _run("train", d / "slice.tif", d / "strokes.tif", "--out", d, "--trees", "5")
    assert r.exit_code == 2 and "holds the input" in r.output and not (d / "model.safetensors").exists()
    # a model folder written over the user's own folder keeps their other files
    (d / "mine").mkdir(exist_ok=True)
    (d / "mine" / "notes.txt").write_text("mine")
    r = _run("train", d / "slice.tif", d / "strokes.tif", "--out", d / "mine", "--trees", "5")
    assert r.exit_code == 0, r.output
    assert (d / "mine" / "notes.txt").read_text() == "mine" and (d / "mine" / "model.safetensors").is_file()
    before = (d / "slice.tif").read_bytes()
    for args, message in [
        (["--out", d / "slice.tif"], "also an input"),
        (["--out", d / "x.tif", "--probabilities", d / "x.tif"], "same path"),
        (["--out", d / "notes.txt" / "x.tif"], "is a file, not a folder"),
    ]:
        r = _run("apply", d / "mine", d / "slice.tif", *args)
        assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert (d / "slice.tif").read_bytes() == before and not (d / "x.tif").exists()
    r = _run("train", d / "slice.tif", d / "strokes.tif", "--out", d / "notes.txt")
    assert r.exit_code == 2 and "is a file; give a folder" in r.output
    r = _run("train", d / "slice.tif", d / "strokes.tif", "--out", d / "m", "--seed", "-1")
    assert r.exit_code == 2 and "seed" in r.output and not (d / "m").exists(), r.output


def test_no_holdout_and_foreign_model_folder(files):
    d, _ = files
    r = _run("train", d / "slice.tif", d / "strokes.tif", "--out", d / "m0", "--trees", "5", "--holdout", "0")
    assert r.exit_code == 0, r.output
    assert "no held-out scores (--holdout 0)" in r.output
    # a folder of another command (restore writes a model.safetensors too)
    from matsight.nn.checkpoint import save_checkpoint

    (d / "restore_run").mkdir()
    save_checkpoint(d / "restore_run" / "model.safetensors", {}, {"format": "matsight.restore/1"})
    r = _run("apply", d / "restore_run", d / "slice.tif", "--out", d / "x.tif")
    assert r.exit_code == 2 and "not a segmentation model" in r.output and "Traceback" not in r.output
    assert not (d / "x.tif").exists()
    # a 2D image's probabilities are (C, Y, X)
    r = _run("apply", d / "m0", d / "slice.tif", "--out", d / "s.tif", "--probabilities", d / "sp.tif")
    assert r.exit_code == 0, r.output
    import tifffile

    with tifffile.TiffFile(d / "sp.tif") as t:
        assert t.series[0].axes == "CYX" and t.series[0].shape == (3, 80, 80)

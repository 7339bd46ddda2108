"""The methods chain end to end through the CLI, as docs/howto/chain-*.md show (tiny sizes, few steps)."""

import json

import numpy as np
from typer.testing import CliRunner

from matsight.cli import app
from matsight.io import read_volume, write_volume
from matsight.segment.synthetic import draw_strokes, grayscale_from_labels, phase_image


def _ok(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


def test_restore_segment_metrics(tmp_path):
    # HQ grayscale volume of a 3-phase structure, and an LQ scan of it: 2× coarser voxels plus noise
    truth = phase_image((16, 64, 64), correlation=6, seed=1)
    hq = grayscale_from_labels(truth, noise=0.02, seed=1).astype(np.float32)
    rng = np.random.default_rng(1)
    lq = hq.reshape(8, 2, 32, 2, 32, 2).mean((1, 3, 5)) + rng.normal(0, 0.05, (8, 32, 32)).astype(np.float32)
    write_volume(tmp_path / "hq.tif", hq[8])
    write_volume(tmp_path / "lq.tif", lq[4])
    write_volume(tmp_path / "lq_scan.tif", lq)
    write_volume(tmp_path / "strokes.tif", draw_strokes(truth[8], strokes_per_phase=4, length=16, seed=1))

    _ok(
        "restore",
        "register",
        tmp_path / "lq.tif",
        tmp_path / "hq.tif",
        "--out",
        tmp_path / "pair",
        "--scale",
        2,
        "--no-mask",
    )
    _ok(
        "restore", "train", tmp_path / "pair", "--out", tmp_path / "indi", "--max-steps", 3, "--device", "cpu"
    )
    _ok(
        "restore",
        "apply",
        tmp_path / "indi",
        tmp_path / "lq_scan.tif",
        "--steps",
        4,
        "--out",
        tmp_path / "enh",
    )
    enhanced = read_volume(tmp_path / "enh" / "enhanced.tif")
    assert enhanced.shape == truth.shape
    _ok(
        "segment",
        "train",
        tmp_path / "enh" / "enhanced.tif",
        tmp_path / "strokes.tif",
        "--slice",
        8,
        "--dims",
        2,
        "--trees",
        20,
        "--out",
        tmp_path / "seg",
    )
    _ok(
        "segment",
        "apply",
        tmp_path / "seg",
        tmp_path / "enh" / "enhanced.tif",
        "--out",
        tmp_path / "labels.tif",
    )
    labels = read_volume(tmp_path / "labels.tif")
    assert labels.shape == truth.shape and set(np.unique(labels)) <= {0, 1, 2}
    _ok("metrics", tmp_path / "labels.tif", "--json", tmp_path / "metrics.json")
    m = json.loads((tmp_path / "metrics.json").read_text())
    vf = m["volume_fraction"]
    assert abs(sum(vf.values()) - 1) < 1e-9 and all(0 < v < 1 for v in vf.values())


def test_segment_then_fuse(tmp_path):
    # grayscale SEM-like HR image (3 phases) and XCT-like LR volume where phase 2 looks like pore
    hr_truth = phase_image((96, 96), correlation=6, seed=2)
    lr_truth = (phase_image((24, 24, 24), n_phases=2, correlation=3, seed=3)).astype(np.uint8)
    write_volume(tmp_path / "sem.tif", grayscale_from_labels(hr_truth, noise=0.05, seed=2).astype(np.float32))
    write_volume(tmp_path / "xct.tif", grayscale_from_labels(lr_truth, noise=0.05, seed=3).astype(np.float32))
    write_volume(tmp_path / "sem_strokes.tif", draw_strokes(hr_truth, strokes_per_phase=4, length=20, seed=2))
    write_volume(
        tmp_path / "xct_strokes.tif", draw_strokes(lr_truth[12], strokes_per_phase=4, length=8, seed=3)
    )

    _ok(
        "segment",
        "train",
        tmp_path / "sem.tif",
        tmp_path / "sem_strokes.tif",
        "--trees",
        20,
        "--out",
        tmp_path / "s1",
    )
    _ok("segment", "apply", tmp_path / "s1", tmp_path / "sem.tif", "--out", tmp_path / "hr_labels.tif")
    _ok(
        "segment",
        "train",
        tmp_path / "xct.tif",
        tmp_path / "xct_strokes.tif",
        "--slice",
        12,
        "--dims",
        2,
        "--trees",
        20,
        "--out",
        tmp_path / "s2",
    )
    _ok("segment", "apply", tmp_path / "s2", tmp_path / "xct.tif", "--out", tmp_path / "lr_labels.tif")
    _ok(
        "fuse",
        "train",
        "--lr",
        tmp_path / "lr_labels.tif",
        "--hr",
        tmp_path / "hr_labels.tif",
        "--scale",
        4,
        "--steps",
        2,
        "--out",
        tmp_path / "run",
    )
    _ok(
        "fuse", "generate", tmp_path / "run", "--lr", tmp_path / "lr_labels.tif", "--out", tmp_path / "sr.tif"
    )
    sr = read_volume(tmp_path / "sr.tif")
    assert sr.shape == (88, 88, 88) and int(sr.max()) <= 2

import json
from fractions import Fraction

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.fuse.evaluate import evaluate, infer_scale, lr_consistency, phase_map
from matsight.fuse.generate import border_voxels


def _nearest_up(lr, d):
    """SR built by nearest upsampling: output voxel j lies in LR voxel floor(j / sf) = floor(j d / 64)."""
    sf = Fraction(64, d)
    idx = [(np.arange(int(n * sf)) * d) // 64 for n in lr.shape]
    return lr[np.ix_(*idx)]


def _crop(a, b):
    return a[b:-b, b:-b, b:-b] if b else a


@pytest.mark.parametrize("d", [32, 16, 8, 24])
@pytest.mark.parametrize("crop", [False, True])
def test_consistency_of_nearest_upsampling_is_one(d, crop):
    rng = np.random.default_rng(d)
    lr = rng.integers(0, 3, size=(9, 10, 8)).astype(np.uint8)
    b = border_voxels(Fraction(64, d)) if crop else 0
    sr = _crop(_nearest_up(lr, d), b)
    res = lr_consistency(sr, lr)  # scale and border inferred from the shapes
    assert res["scale"] == pytest.approx(64 / d) and res["border"] == b
    assert res["consistency"] == 1.0
    assert all(v == 1.0 for v in res["per_phase"].values())
    n_scored = np.prod([e - a for a, e in res["scored"]])
    assert res["n_scored"] == n_scored
    if crop:  # the LR voxels next to the cropped faces are not scored
        assert all(a >= 1 and e <= n - 1 for (a, e), n in zip(res["scored"], lr.shape, strict=True))
    else:
        assert n_scored == lr.size
    if d in (32, 16, 8):  # super-sampling mode: every sf-th voxel
        assert lr_consistency(sr, lr, mode="sample")["consistency"] == 1.0


@pytest.mark.parametrize("d", [32, 16])
def test_consistency_of_shifted_volume_closed_form(d):
    rng = np.random.default_rng(1)
    lr = rng.integers(0, 2, size=(10, 9, 9)).astype(np.uint8)
    shifted = np.roll(lr, 1, axis=0)
    b = border_voxels(Fraction(64, d))
    res = lr_consistency(_crop(_nearest_up(shifted, d), b), lr)
    sel = tuple(slice(a, e) for a, e in res["scored"])
    expect = float((shifted[sel] == lr[sel]).mean())
    assert res["consistency"] == pytest.approx(expect)
    assert res["consistency"] < 0.8
    conf = np.array(res["confusion"])
    assert conf.sum() == res["n_scored"] and np.trace(conf) / conf.sum() == pytest.approx(expect)


def test_inpainted_phase_counts_as_pore():
    rng = np.random.default_rng(2)
    lr = rng.integers(0, 2, size=(8, 8, 8)).astype(np.uint8)
    sr = _nearest_up(lr, 16).copy()
    pore = sr == 0
    sr[pore & (rng.random(sr.shape) < 0.3)] = 2  # "binder" in the pore, invisible in the LR volume
    assert lr_consistency(sr, lr, scale=4)["consistency"] == 1.0
    # comparing LR phase 1 with HR phase 2 instead: the particles now read as pore
    assert lr_consistency(sr, lr, scale=4, compare_phases=[2])["consistency"] < 0.7
    np.testing.assert_array_equal(phase_map(4, 3, [2, 3]), [0, 0, 1, 2])


def test_infer_scale():
    assert infer_scale((504, 504, 504), (128, 128, 128)) == (Fraction(4), 4)
    assert infer_scale((512, 512, 512), (128, 128, 128)) == (Fraction(4), 0)
    assert infer_scale((58, 50, 26), (24, 21, 12)) == (Fraction(8, 3), 3)
    with pytest.raises(InputError, match="scale"):
        infer_scale((50, 50, 50), (128, 128, 128))
    with pytest.raises(InputError, match="scale"):
        lr_consistency(np.zeros((30, 30, 30), np.uint8), np.zeros((8, 8, 8), np.uint8), scale=8)


def test_evaluate_report(tmp_path):
    pytest.importorskip("matplotlib")
    from matsight.data.microstructures import particle_electrode

    truth = particle_electrode((32, 32, 32), seed=0)
    lr = (truth[1::4, 1::4, 1::4] == 1).astype(np.uint8)  # binder merged into pore
    sr = truth[4:-4, 4:-4, 4:-4]
    res = evaluate(
        sr,
        hr=truth[16],
        lr=lr,
        truth=truth,
        out_dir=tmp_path,
        subvolume_size=12,
        n_subvolumes=8,
        n_transport=1,
        transport_axes=(0,),
        fft_slices=3,
    )
    assert (tmp_path / "index.html").is_file()
    for name in ("subvolume_violins", "fft_profiles", "two_point_correlation", "chord_lengths", "slices"):
        assert (tmp_path / f"{name}.png").is_file()
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["lr_consistency"]["consistency"] == pytest.approx(res["lr_consistency"]["consistency"])
    assert res["lr_consistency"]["consistency"] > 0.8
    vt = res["versus_truth"]  # SR is the truth here: every difference is zero
    assert all(v == 0 for v in vt["abs_delta_vf"].values())
    assert all(v == 0 for v in vt["rel_delta_interface"].values())
    assert vt["rel_delta_tpb"] == 0 and all(v == 0 for v in vt["delta_transport_efficiency"].values())
    w = res["whole"]
    assert sum(w["SR"]["volume_fraction"].values()) == pytest.approx(1.0)
    assert set(res["fft_profile"]) == {"SR", "truth", "HR", "LR (nearest, SR grid)"}
    assert res["subvolumes"]["HR"]["size"] == 12 and "triple_phase_boundary" not in res["subvolumes"]["HR"]
    # the LR volume on the SR grid has less high-frequency content than the SR volume (paper Fig. 18)
    hf = res["fft_high_frequency_share"]
    assert hf["LR (nearest, SR grid)"]["1"] < hf["SR"]["1"]
    # SR = truth: the same per-plane orientation ratios; streaks along the diagonals would raise them
    orient = res["fft_orientation_ratio"]
    assert set(orient) == {f"{n} ⟂ {a}" for n in ("SR", "truth") for a in "ZYX"} | {"HR"}
    assert orient["SR ⟂ Y"] == orient["truth ⟂ Y"] and 0.2 < orient["SR ⟂ Y"]["1"] < 5


def test_anisotropic_evaluation_compares_each_plane_with_its_own_images():
    # lamellae normal to x, wavy: slices normal to x show blobs, normal to y and z stripes
    rng = np.random.default_rng(1)
    z, y, x = np.indices((20, 20, 20))
    truth = ((x + 3 * np.sin(z / 3 + rng.random()) + 2 * np.cos(y / 4)) % 6 < 2).astype(np.uint8)
    normal = {"z": truth, "y": truth.transpose(1, 0, 2), "x": truth.transpose(2, 0, 1)}
    kw = dict(subvolume_size=8, n_subvolumes=4, n_transport=0, fft_slices=20)
    res = evaluate(truth, hr=normal["x"], hr_y=normal["y"], hr_z=normal["z"], **kw)
    for ax in "ZYX":  # every slice of the SR volume is an HR image of its plane
        sr, hr = res["planes"][ax]["SR"], res["planes"][ax]["HR"]
        assert sr["interface_face_fraction"] == pytest.approx(hr["interface_face_fraction"])
        assert sr["volume_fraction"] == pytest.approx(hr["volume_fraction"])
        assert sr["euler_density"] == pytest.approx(hr["euler_density"])
    # the three planes' 2D face fractions, weighed equally, are the 3D one
    assert res["whole"]["HR"]["interface_face_fraction"]["0-1"] == pytest.approx(
        res["whole"]["SR"]["interface_face_fraction"]["0-1"]
    )
    assert {"HR ⟂ Z", "HR ⟂ Y", "HR ⟂ X"} <= set(res["fft_orientation_ratio"])
    swapped = evaluate(truth, hr=normal["z"], hr_y=normal["y"], hr_z=normal["x"], **kw)["planes"]["X"]
    # stripes (across the lamellae) have more interface than blobs (along them): a swap shows
    hr_faces, sr_faces = (swapped[k]["interface_face_fraction"]["0-1"] for k in ("HR", "SR"))
    assert hr_faces > 1.25 * sr_faces
    with pytest.raises(InputError, match="--hr-y and --hr-z"):
        evaluate(truth, hr=normal["x"], hr_y=normal["y"], **kw)


def test_evaluate_inputs():
    sr = np.zeros((16, 16, 16), np.uint8)
    sr[8:] = 1
    res = evaluate(sr, subvolume_size=8, n_subvolumes=4, n_transport=0, fft_slices=2)
    assert res["whole"]["SR"]["volume_fraction"] == {"0": 0.5, "1": 0.5}
    with pytest.raises(InputError, match="truth"):
        evaluate(sr, truth=np.zeros((10, 10, 10), np.uint8), n_transport=0)
    with pytest.raises(InputError, match="3D"):
        evaluate(sr[0])
    with pytest.raises(InputError, match="label"):
        evaluate(sr.astype(float) + 0.5)


def test_cli_evaluate(tmp_path):
    pytest.importorskip("matplotlib")
    from typer.testing import CliRunner

    from matsight.cli import app
    from matsight.io import write_volume

    rng = np.random.default_rng(3)
    lr = (rng.random((8, 8, 8)) < 0.5).astype(np.uint8)
    sr = _crop(_nearest_up(lr, 16), 4)
    write_volume(tmp_path / "lr.tif", lr)
    write_volume(tmp_path / "sr.tif", sr)
    write_volume(tmp_path / "hr.tif", _nearest_up(lr, 16)[10])
    r = CliRunner().invoke(
        app,
        [
            "fuse",
            "evaluate",
            str(tmp_path / "sr.tif"),
            "--hr",
            str(tmp_path / "hr.tif"),
            "--lr",
            str(tmp_path / "lr.tif"),
            "--out",
            str(tmp_path / "rep"),
            "--subvolumes",
            "4",
            "--subvolume-size",
            "8",
            "--transport",
            "0",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "LR consistency: 100.00%" in r.output
    assert (tmp_path / "rep" / "index.html").is_file()
    r = CliRunner().invoke(
        app, ["fuse", "evaluate", str(tmp_path / "nope.tif"), "--out", str(tmp_path / "x")]
    )
    assert r.exit_code == 2 and "error:" in r.output
    hr = str(tmp_path / "hr.tif")
    r = CliRunner().invoke(
        app,
        [
            "fuse",
            "evaluate",
            str(tmp_path / "sr.tif"),
            "--hr",
            hr,
            "--hr-y",
            hr,
            "--out",
            str(tmp_path / "y"),
        ],
    )
    assert r.exit_code == 2 and "--hr-y and --hr-z" in r.output and not (tmp_path / "y").exists()

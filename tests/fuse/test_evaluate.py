import json
from fractions import Fraction

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.fuse.evaluate import (
    BLURRED_TRUTH,
    NEAREST_LR,
    _blurred_phase_slices,
    evaluate,
    infer_scale,
    lr_consistency,
    phase_map,
)
from matsight.fuse.predict import border_voxels


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
    assert set(res["fft_profile"]) == {"SR", "truth", "HR", BLURRED_TRUTH, NEAREST_LR}
    assert res["subvolumes"]["HR"]["size"] == 12 and "triple_phase_boundary" not in res["subvolumes"]["HR"]
    # paper Fig. 18: the truth blurred with the LR kernel (scale 4 from the shapes) has less high-frequency
    # content than the SR (= truth); the nearest-upsampled LR's block edges keep it out of the shares
    hf = res["fft_high_frequency_share"]
    assert NEAREST_LR not in hf and set(hf[BLURRED_TRUTH]) == {"0", "1", "2"}
    assert all(hf[BLURRED_TRUTH][p] < hf["SR"][p] for p in ("0", "1", "2"))
    page = (tmp_path / "index.html").read_text()
    assert "Conditional two-point correlation" in page and "length-weighted" in page
    assert "over 1 random sub-cubes" in page and "--transport 256" in page and "block-edge harmonics" in page
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
    assert r.output.index("verdict:") > r.output.index("wrote")  # the verdict comes last
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


def test_blurred_truth_slices_are_the_lr_simulations_blur():
    torch = pytest.importorskip("torch")
    from matsight.fuse.degrade import blur

    rng = np.random.default_rng(4)
    vol = rng.integers(0, 3, size=(12, 10, 11)).astype(np.uint8)
    z = np.array([0, 5, 11])  # both faces: edges replicated as the training loss's blur pads
    for scale in (4, 8, 2):
        got = _blurred_phase_slices(vol, z, scale, [0, 1, 2])
        oh = torch.from_numpy(np.stack([vol == p for p in range(3)])[None].astype(np.float32))
        ref = blur(oh, scale)[0].numpy()
        for p in range(3):
            np.testing.assert_allclose(got[p], ref[p][z], atol=1e-6)
    assert not np.allclose(_blurred_phase_slices(vol, z, 4, [1])[1], vol[z] == 1)  # sf 4 blurs (k = 3)


def test_blurred_truth_has_less_high_frequency_than_truth():
    # smooth blobs: a thresholded low-pass noise field, 24³; no LR volume, so the blur takes --scale
    from scipy import ndimage

    field = ndimage.gaussian_filter(np.random.default_rng(0).normal(size=(24, 24, 24)), 2.0, mode="wrap")
    truth = (field > 0).astype(np.uint8)
    kw = dict(truth=truth, subvolume_size=8, n_subvolumes=2, n_transport=0, fft_slices=8)
    hf = evaluate(truth, scale=8, **kw)["fft_high_frequency_share"]
    for p in ("0", "1"):
        assert hf[BLURRED_TRUTH][p] < 0.8 * hf["truth"][p]
    assert BLURRED_TRUTH not in evaluate(truth, **kw)["fft_profile"]  # no scale: no kernel to blur with


def test_hr_curves_pool_every_image():
    from matsight.metrics.microstructure import summary

    # stripes 2 voxels wide in one image, 5 in the other (period 2× the width, along x)
    x = np.arange(40)
    imgs = np.stack([np.tile((x // w) % 2, (40, 1)) for w in (2, 5)]).astype(np.uint8)
    sr = np.stack([imgs[0]] * 20)[:, :40, :40]
    res = evaluate(sr, hr=imgs, subvolume_size=8, n_subvolumes=2, n_transport=0, fft_slices=2)
    hr = res["curves"]["HR"]
    per = [summary(im, tortuosity=False) for im in imgs]
    # chords: the two images' counts summed (along x: widths 2 and 5; along y none end inside the image)
    c = hr["chord_length"]["1"]["1"]
    counts = [np.asarray(s["chord_length"]["1"]["1"]["count"]) for s in per]
    want = np.zeros(max(map(len, counts)), int)
    for k in counts:
        want[: len(k)] += k
    assert c["count"] == want.tolist() and c["count"][1] > 0 and c["count"][4] > 0
    # two-point correlation of images of one size: the mean of the images'
    for key in ("1-1", "0-1"):
        for ax in ("0", "1"):
            mean = np.mean([s["two_point_correlation"][key][ax] for s in per], axis=0)
            np.testing.assert_allclose(hr["two_point_correlation"][key][ax], mean, atol=1e-6)


def test_target_rows_mark_each_target():
    from matsight.fuse.evaluate_report import target_rows

    res = {
        "lr_consistency": {"consistency": 0.94},
        "versus_truth": {
            "abs_delta_vf": {"0": 0.004, "1": 0.02},
            "rel_delta_interface": {"0-1": -0.05, "0-2": None},
            "delta_transport_efficiency": {"1 axis 2": 0.03},
            "rel_delta_tpb": None,
        },
    }
    rows = target_rows(res, {0: "pore", 1: "active", 2: "binder"})
    assert {k: r["met"] for k, r in rows.items()} == {
        "LR consistency": "no",
        "|ΔVF| pore": "yes",
        "|ΔVF| active": "no",
        "rel. Δ interface pore / active": "yes",
        "rel. Δ interface pore / binder": "n/a",
        "Δ VF/τ active, axis 2": "no",
        "rel. Δ TPB": "n/a",
    }
    assert target_rows({"shape": [4, 4, 4]}) == {}

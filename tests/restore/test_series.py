"""Slab-wise series enhancement (matsight.restore.series): equal to the whole volume, zarr and OME-Zarr with
voxel sizes, resumable, on dask's schedulers, and clear errors.
"""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight import InputError
from matsight.cli import app
from matsight.io import read_spacing, read_volume, write_volume
from matsight.restore import series as series_mod
from matsight.restore.pair_io import Pair
from matsight.restore.predict import predict
from matsight.restore.register import upscale
from matsight.restore.series import enhance_series
from matsight.restore.train import train
from matsight.restore.zinterp import zoom_z

from .test_predict import STATS, _scene  # the same tiny scene and grey-level statistics

zarr = pytest.importorskip("zarr")
pytest.importorskip("dask")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny 2.5D model (context 1), scale 2, saved to a folder (process workers load it by path)."""
    rng = np.random.default_rng(0)
    hq = np.stack([_scene(rng, (48, 48)) for _ in range(4)])
    lq = np.stack([upscale(h.reshape(24, 2, 24, 2).mean((1, 3)), 2) for h in hq])
    pair = Pair(lq_up=np.clip(lq * 2 - 1, -1, 1), hq=hq * 2 - 1, transform={"scale": [2.0, 2.0]}, stats=STATS)
    out = tmp_path_factory.mktemp("model")
    kw = dict(features=[4, 8], time_embedding=8, space_to_depth=2, crop=16, batch=2, max_steps=4)
    train(pair, out, device="cpu", val_every=100, val_crop=32, auto_steps=[1, 2], steps=2, context=1, **kw)
    return str(out)


def _volume(seed, shape=(11, 20, 18)):
    rng = np.random.default_rng(seed)
    v = np.stack([_scene(rng, shape[1:]) for _ in range(shape[0])])
    return (v + 0.1 * rng.random(shape)).astype(np.float32)


def test_zoom_z_equals_scipy_zoom_and_its_slabs_the_whole():
    from scipy import ndimage

    from matsight.restore.slabs import zoom_slab

    a = np.random.default_rng(1).normal(size=(60, 8, 9)).astype(np.float32)
    for n_out in (120, 90, 60):
        ref = ndimage.zoom(a, (n_out / 60, 1, 1), order=3, mode="reflect", grid_mode=True)
        whole = zoom_z(a, n_in=60, n_out=n_out)
        np.testing.assert_allclose(whole, ref, atol=5e-6)
        seen = []

        def read(lo, hi, seen=seen):
            seen.append((lo, hi))
            return a[lo:hi]

        j0, j1 = n_out // 2, n_out // 2 + 7
        np.testing.assert_allclose(zoom_slab(read, j0, j1, 60, n_out), whole[j0:j1], atol=1e-6)
        assert seen[0][0] > 0 and seen[0][1] < 60  # it read a slab with its halo, not the volume


def test_slabs_equal_the_whole_volume_and_zarr_keeps_the_voxel_size(model, tmp_path):
    vol = _volume(0)
    write_volume(tmp_path / "lq.zarr", vol, spacing=(40.0, 20.0, 20.0))
    ref = predict(model, vol, slice_axis=0, indi_steps=2, device="cpu")
    res = enhance_series(
        model, tmp_path / "lq.zarr", tmp_path / "out.zarr", indi_steps=2, device="cpu", slab=3
    )
    info = res.steps[0][1]
    assert res.slab == 3 and info["consistency_rms"] == pytest.approx(ref.info["consistency_rms"], rel=1e-5)
    assert info["consistency_rms_bicubic"] == pytest.approx(ref.info["consistency_rms_bicubic"], rel=1e-5)
    for key, want in [("enhanced", ref.image), ("bicubic", ref.bicubic), ("onestep", ref.onestep)]:
        got = read_volume(tmp_path / "out.zarr" / key)
        assert got.shape == want.shape == (22, 40, 36)
        np.testing.assert_allclose(got, want, atol=1e-5, err_msg=key)  # seams at z = 6, 12, 18 included
        assert read_spacing(tmp_path / "out.zarr" / key) == pytest.approx((20.0, 10.0, 10.0))
    np.testing.assert_allclose(read_volume(tmp_path / "out.zarr" / "consistency"), ref.consistency, atol=1e-5)
    assert read_spacing(tmp_path / "out.zarr" / "consistency") == pytest.approx((40.0, 20.0, 20.0))
    ome = zarr.open_group(str(tmp_path / "out.zarr" / "enhanced"), mode="r").attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in ome["axes"]] == ["z", "y", "x"] and ome["axes"][0]["unit"] == "nanometer"


def test_4d_zarr_into_a_folder_of_tifs(model, tmp_path):
    series = np.stack([_volume(1, (7, 16, 16)), _volume(2, (7, 16, 16))])
    write_volume(tmp_path / "s.zarr", series, axes="TZYX", spacing=(30.0, 10.0, 10.0))
    res = enhance_series(model, tmp_path / "s.zarr", tmp_path / "out", indi_steps=2, onestep=False, slab=4)
    assert [n for n, _ in res.steps] == ["t000", "t001"]
    for t, name in enumerate(["t000", "t001"]):
        ref = predict(model, series[t], slice_axis=0, indi_steps=2, onestep=False, device="cpu")
        got = read_volume(tmp_path / "out" / name / "enhanced.tif")
        np.testing.assert_allclose(got, ref.image, atol=1e-5)
        assert read_spacing(tmp_path / "out" / name / "enhanced.tif") == pytest.approx((15.0, 5.0, 5.0))
        assert not (tmp_path / "out" / name / "onestep.tif").exists()
        assert json.loads((tmp_path / "out" / name / "enhance.json").read_text())["steps"] == 2
    assert not (tmp_path / "out" / ".scratch.zarr").exists()


def test_resume_skips_finished_steps_and_redoes_a_cut_short_one(model, tmp_path, monkeypatch):
    folder = tmp_path / "series"
    folder.mkdir()
    vols = [_volume(10 + i, (6, 16, 16)) for i in range(3)]
    for i, v in enumerate(vols):
        write_volume(folder / f"T{i}.npy", v)
    kw = dict(indi_steps=2, onestep=False, device="cpu", slab=2)
    out = tmp_path / "out.zarr"

    def cut(progress):  # killed after step T0 and the first slab of T1
        if progress.step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        enhance_series(model, folder, out, callback=cut, **kw)
    assert sorted(p.stem for p in (out / "steps").glob("*.json")) == ["T0"]
    calls = []
    real = series_mod._task_enhance
    monkeypatch.setattr(series_mod, "_task_enhance", lambda plan, t, k: calls.append(t) or real(plan, t, k))
    res = enhance_series(model, folder, out, **kw)
    assert res.skipped == ["T0"] and res.steps[0][1]["skipped"]
    assert sorted(set(calls)) == [1, 2] and len(calls) == 6  # T1 redone whole, T2 run, T0 untouched
    got = zarr.open_group(str(out), mode="r")["enhanced"]["0"]
    for t, v in enumerate(vols):
        ref = predict(model, v, slice_axis=0, indi_steps=2, onestep=False, device="cpu")
        np.testing.assert_allclose(got[t], ref.image, atol=1e-5)
    again = enhance_series(model, folder, out, **kw)
    assert again.skipped == ["T0", "T1", "T2"] and again.voxels == 0
    with pytest.raises(InputError, match="another indi_steps"):
        enhance_series(model, folder, out, **{**kw, "indi_steps": 1})


def test_processes_scheduler_gives_the_serial_result(model, tmp_path):
    series = np.stack([_volume(3, (5, 16, 16)), _volume(4, (5, 16, 16))])
    np.save(tmp_path / "s.npy", series)
    kw = dict(indi_steps=1, onestep=True, device="cpu", slab=3)  # N = 1: no separate one-step output
    serial = enhance_series(model, tmp_path / "s.npy", tmp_path / "a.zarr", **kw)
    par = enhance_series(
        model, tmp_path / "s.npy", tmp_path / "b.zarr", scheduler="processes", workers=2, **kw
    )
    assert par.workers == 2 and par.scheduler == "processes"
    a = zarr.open_group(str(tmp_path / "a.zarr"), mode="r")["enhanced"]["0"][...]
    b = zarr.open_group(str(tmp_path / "b.zarr"), mode="r")["enhanced"]["0"][...]
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert "onestep" not in zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    assert [i["consistency_rms"] for _, i in serial.steps] == pytest.approx(
        [i["consistency_rms"] for _, i in par.steps], rel=1e-6
    )


def test_cli_series_progress_resume_and_bad_scheduler(model, tmp_path):
    series = np.stack([_volume(5, (4, 12, 12)), _volume(6, (4, 12, 12))])
    write_volume(tmp_path / "s.tif", series, axes="TZYX")
    runner = CliRunner()
    args = ["restore", "apply", model, str(tmp_path / "s.tif"), "--indi-steps", "2", "--no-onestep"]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "o.zarr"), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "t000: enhanced with N=2" in r.output and "2 time step(s)" in r.output
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "o.zarr"), "--device", "cpu"])
    assert r.exit_code == 0 and "t001: finished by an earlier run, skipped" in r.output
    bad = [*args, "--out", str(tmp_path / "x.zarr"), "--scheduler", "tcp://127.0.0.1:9"]
    r = runner.invoke(app, bad)
    assert r.exit_code != 0 and "cannot reach the dask scheduler tcp://127.0.0.1:9" in r.output
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.zarr").exists()
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "y.zarr"), "--scheduler", "cloud"])
    assert r.exit_code != 0 and "unknown scheduler 'cloud'" in r.output
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "z.zarr"), "--z-mode", "triplanar"])
    assert r.exit_code != 0 and "--z-mode cubic" in r.output
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "m.zarr"), "--memory", "0"])
    assert r.exit_code != 0 and "--memory must be a positive number" in r.output
    assert not any((tmp_path / n).exists() for n in ("y.zarr", "z.zarr", "m.zarr"))

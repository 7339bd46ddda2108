import importlib

import numpy as np
import pytest

from matsight import InputError
from matsight.restore.pair_io import Pair
from matsight.restore.predict import consistency_map, predict_series
from matsight.restore.predict import predict as enhance
from matsight.restore.register import upscale
from matsight.restore.steps import band_power_ratio, select_steps
from matsight.restore.train import load_model, train

STATS = {
    "lq": {"lo": 0.0, "hi": 1.0, "percentiles": [0.5, 99.5]},
    "hq": {"lo": 0.0, "hi": 1.0, "percentiles": [0.5, 99.5]},
}


def _scene(rng, shape):
    img = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    for _ in range(6):
        cy, cx, r = rng.uniform(0, shape[-2]), rng.uniform(0, shape[-1]), rng.uniform(3, 8)
        img[..., (yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 1.0
    return img


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    hq = np.stack([_scene(rng, (48, 48)) for _ in range(4)])
    lq = np.stack([upscale(h.reshape(24, 2, 24, 2).mean((1, 3)), 2) for h in hq])
    pair = Pair(lq_up=np.clip(lq * 2 - 1, -1, 1), hq=hq * 2 - 1, transform={"scale": [2.0, 2.0]}, stats=STATS)
    out = tmp_path_factory.mktemp("model")
    train(
        pair,
        out,
        device="cpu",
        features=[4, 8],
        time_embedding=8,
        space_to_depth=2,
        crop=16,
        batch=2,
        max_steps=6,
        val_every=100,
        val_crop=32,
        auto_steps=[1, 2, 3],
        steps=2,
        context=1,  # a 2.5D model, so that every enhancement test also passes the neighbouring slices
    )
    return load_model(out)


def test_enhance_slice_shapes_onestep_and_auto(model, rng):
    net, meta = model
    lq = rng.uniform(0.2, 0.8, (20, 22)).astype(np.float32)
    res = enhance(model, lq, indi_steps=3)
    assert res.image.shape == (40, 44) and res.bicubic.shape == (40, 44) and res.onestep.shape == (40, 44)
    assert res.consistency.shape == (20, 22)
    one = enhance(model, lq, indi_steps=1, onestep=False)
    np.testing.assert_allclose(one.image, res.onestep, atol=1e-5)
    # the bicubic baseline is the network input mapped by the grey-level line fitted on the training pair
    gm = meta["grey_map"]
    assert gm["gain"] != 1.0 and res.info["grey_map"] == gm and "least-squares" in res.info["baseline"]
    # (STATS map [0, 1] to [-1, 1])
    expected = (gm["gain"] * np.clip(2 * upscale(lq, 2) - 1, -1, 1) + gm["offset"] + 1) / 2
    np.testing.assert_allclose(res.bicubic, expected, atol=1e-5)
    auto = enhance(model, lq, indi_steps="auto", onestep=False)
    assert auto.steps == meta["steps_auto"]["best"]
    # the candidates, and beyond the largest while the best PSNR sat there
    assert {"1", "2", "3"} <= set(meta["steps_auto"]["table"])
    assert {"consistency_rms", "consistency_rms_bicubic", "consistency_rms_onestep"} <= set(res.info)


def test_enhance_volume_needs_slice_axis_and_interpolates_z(model, rng):
    vol = rng.uniform(0.2, 0.8, (5, 16, 18)).astype(np.float32)
    with pytest.raises(InputError, match="slice_axis=0"):
        enhance(model, vol, indi_steps=2)
    res = enhance(model, vol, indi_steps=2, slice_axis=0, onestep=False)
    assert res.image.shape == (10, 32, 36)
    assert res.consistency.shape == (5, 16, 18)
    tri = enhance(model, vol, indi_steps=1, slice_axis=0, z_mode="triplanar", onestep=False)
    assert tri.image.shape == (10, 32, 36)
    with pytest.raises(InputError, match="z_mode"):
        enhance(model, vol, indi_steps=1, slice_axis=0, z_mode="linear")


def test_enhance_gives_a_2p5d_model_the_neighbouring_lq_slices(model, monkeypatch):
    predict_module = importlib.import_module(
        "matsight.restore.predict"
    )  # the package's `predict` is the function

    seen = []
    real = predict_module.sample_image

    def spy(net, y, **kw):
        seen.append((np.asarray(y)[:, 0, 0].copy(), kw["context"][:, :, 0, 0].copy()))
        return real(net, y, **kw)

    monkeypatch.setattr(predict_module, "sample_image", spy)
    assert model[0].context == 1
    # slice i holds the constant i/10 (the model's STATS map [0, 1] onto [-1, 1])
    vol = np.broadcast_to((np.arange(6, dtype=np.float32) / 10)[:, None, None], (6, 16, 16)).copy()

    def pairs():
        y = np.concatenate([a for a, _ in seen])
        c = np.concatenate([b for _, b in seen])
        seen.clear()
        return np.rint((y + 1) * 5).astype(int), np.rint((c + 1) * 5).astype(int)

    enhance(model, vol, indi_steps=1, slice_axis=0, onestep=False)  # native LQ slices: neighbours 1 apart
    i, c = pairs()
    np.testing.assert_array_equal(c, np.stack([np.maximum(i - 1, 0), np.minimum(i + 1, 5)], 1))
    # already on the HQ grid of a 2× model: the LQ neighbours are 2 slices away
    enhance(model, vol, indi_steps=1, slice_axis=0, upscaled=True, onestep=False)
    i, c = pairs()
    np.testing.assert_array_equal(c, np.stack([np.maximum(i - 2, 0), np.minimum(i + 2, 5)], 1))


def test_bad_inputs_are_clear(model):
    bad = np.ones((16, 16), np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        enhance(model, bad, indi_steps=1)
    with pytest.raises(InputError, match="time series"):
        enhance(model, np.zeros((2, 3, 16, 16), np.float32), indi_steps=1)
    with pytest.raises(InputError, match="steps"):
        enhance(model, np.zeros((16, 16), np.float32), indi_steps="many")
    with pytest.raises(InputError, match="steps"):
        enhance(model, np.zeros((16, 16), np.float32), indi_steps=0)


def test_series_uses_one_model(model, rng):
    frames = [rng.uniform(0, 1, (16, 16)).astype(np.float32) for _ in range(3)]
    out = predict_series(model, frames, indi_steps=2, onestep=False)
    assert [n for n, _ in out] == ["t000", "t001", "t002"]
    single = enhance(model, frames[1], indi_steps=2, onestep=False)
    np.testing.assert_array_equal(out[1][1].image, single.image)


def test_consistency_map_flags_invented_structure(rng):
    lq = rng.uniform(0, 1, (32, 32))
    lq = np.kron(lq, np.ones((1, 1)))
    faithful = np.kron(lq, np.ones((2, 2)))  # block upscaling: degrades back exactly
    res, rms = consistency_map(faithful * 3 + 1, lq, (2, 2))  # grey-level changes are matched away
    assert rms < 1e-6
    invented = faithful.copy()
    invented[20:30, 20:30] += 2.0  # a blob the measurement does not show
    res, rms2 = consistency_map(invented, lq, (2, 2))
    assert rms2 > 0.05
    inside = np.abs(res[11:14, 11:14]).mean()
    outside = np.abs(res[:5, :5]).mean()
    assert inside > 5 * outside


def test_band_power_ratio_orders_blur_and_noise(rng):
    from scipy import ndimage

    ref = ndimage.gaussian_filter(rng.normal(size=(64, 64)), 1.0)
    assert band_power_ratio(ref, ref) == pytest.approx(1.0)
    assert band_power_ratio(ndimage.gaussian_filter(ref, 2), ref) < 0.2
    assert band_power_ratio(ref + rng.normal(0, 1, ref.shape), ref) > 2


def test_select_steps_prefers_matching_detail(model, rng):
    net, _ = model
    lq = [rng.uniform(-0.5, 0.5, (32, 32)).astype(np.float32)]
    ctx = [np.repeat(lq[0][None], 2 * net.context, 0)]
    best, table = select_steps(net, lq, lq, candidates=(1, 2), contexts=ctx)
    assert best in (1, 2) and set(table) == {1, 2}
    assert all(np.isfinite(v["psnr"]) for v in table.values())


def test_read_series_refuses_two_time_steps_with_one_name(tmp_path):
    from matsight.io import write_volume
    from matsight.restore.predict import read_series

    frame = np.zeros((8, 8), np.float32)
    write_volume(tmp_path / "T0.tif", frame)
    np.save(tmp_path / "T0.npy", frame)
    with pytest.raises(InputError, match=r"two time steps named T0: T0\.npy and T0\.tif"):
        read_series(tmp_path)

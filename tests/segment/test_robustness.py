"""Edge cases a user meets: odd inputs to train/apply, damaged or foreign model files, score bookkeeping."""

import json
import logging

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from matsight._errors import InputError
from matsight.segment import load, predict, train
from matsight.segment.predict import predict_proba
from matsight.segment.synthetic import draw_strokes, grayscale_from_labels, phase_image

KW = dict(n_estimators=8, sigmas=[1, 2])


@pytest.fixture(scope="module")
def sample():
    truth = phase_image((64, 64), correlation=6, seed=1)
    image = grayscale_from_labels(truth, noise=0.1, seed=1)
    strokes = draw_strokes(truth, strokes_per_phase=4, seed=1)
    return image, truth, strokes


@pytest.fixture(scope="module")
def model(sample):
    return train((sample[0], sample[2]), None, config=KW)


def test_non_finite_pixels_do_not_crash_or_spread(sample, model):
    image, _, strokes = sample
    lo, hi = model.intensity
    for value, fill in ((np.nan, lo), (np.inf, hi), (-np.inf, lo)):
        bad = image.copy()
        bad[30:32, 30:32] = value
        m = train((bad, strokes), None, config=KW)  # inf used to stop in scikit-learn with a traceback
        assert np.isfinite(m.scores["mean_dice"])
        p = predict_proba(model, bad)
        # documented: NaN and -inf pixels are read as the low grey value, +inf as the high one (a NaN
        # used to turn every feature within a kernel radius into NaN)
        filled = image.copy()
        filled[30:32, 30:32] = fill
        np.testing.assert_allclose(p, predict_proba(model, filled), atol=1e-6)
        np.testing.assert_array_equal(predict_proba(model, bad, tile=13), p)


def test_constant_image_is_a_user_error(sample):
    with pytest.raises(InputError, match="constant"):
        train((np.full((64, 64), 3.0), sample[2]), None, config=KW)


def test_boolean_image_trains(sample):
    image, _, strokes = sample
    m = train((image > 0.5, strokes), None, config=KW)
    assert predict(m, image > 0.5).shape == image.shape


@pytest.mark.parametrize("tile", [0, -3, 0.5, "8", True])
def test_bad_tile_is_a_user_error(sample, model, tile):
    with pytest.raises(InputError, match="tile"):
        predict(model, sample[0], tile=tile)


def test_tiny_tiles_and_tiny_images_equal_untiled(sample, model):
    image = sample[0]
    np.testing.assert_array_equal(predict_proba(model, image, tile=1), predict_proba(model, image))
    small = image[:5, :3]  # smaller than the feature kernels
    np.testing.assert_array_equal(predict_proba(model, small, tile=2), predict_proba(model, small))


def test_bad_normalize_is_a_user_error(sample, model):
    with pytest.raises(InputError, match="normalize_with"):
        predict(model, sample[0], normalize_with="imgae")


def test_other_intensity_scale_warns(sample, model, caplog):
    image = sample[0]
    with caplog.at_level(logging.WARNING, logger="matsight.segment"):
        predict(model, image * 0.9 + 0.05)  # another scan, slightly different brightness: fine
    assert "do not match" not in caplog.text
    u16 = np.clip(image * 40000, 0, 65535).astype(np.uint16)  # same sample, another data type
    with caplog.at_level(logging.WARNING, logger="matsight.segment"):
        predict(model, u16)
    assert "do not match" in caplog.text and "--normalize image" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="matsight.segment"):
        lab = predict(model, u16, normalize_with="image")
    assert "do not match" not in caplog.text
    assert (lab == predict(model, image)).mean() > 0.95


def test_scores_keys_survive_save_load_and_missing_holdout(sample, model, tmp_path):
    image, _, strokes = sample
    model.save(tmp_path / "m")
    again = load(tmp_path / "m")
    assert list(again.scores["per_phase"]) == [0, 1, 2]  # were the strings "0", "1", "2"
    assert again.scores["per_phase"][1]["n"] == model.scores["per_phase"][1]["n"]
    # nothing held out: the documented keys exist (NaN), so `model.scores["mean_dice"]` works
    m = train((image, strokes), None, config={**KW, "holdout": 0})
    assert np.isnan(m.scores["mean_dice"]) and m.scores["n_test"] == 0
    assert set(m.scores["per_phase"]) == {0, 1, 2}


def _variant(tmp_path, name, src, *, arrays=None, meta=None, raw=None):
    f = src / "model.safetensors"
    d = tmp_path / name
    d.mkdir()
    if raw is not None:
        (d / "model.safetensors").write_bytes(raw)
        return d
    if arrays is None:
        arrays = load_file(str(f))
    if meta is None:
        with safe_open(str(f), "np") as h:
            meta = h.metadata()["matsight"]
    meta = meta if isinstance(meta, str) else json.dumps(meta)
    save_file(arrays, str(d / "model.safetensors"), metadata={"matsight": meta})
    return d


def test_damaged_or_foreign_model_files_are_user_errors(model, tmp_path):
    src = model.save(tmp_path / "ok")
    f = src / "model.safetensors"
    arrays = load_file(str(f))
    with safe_open(str(f), "np") as h:
        meta = json.loads(h.metadata()["matsight"])
    left = arrays["forest/left_child"].copy()
    left[np.flatnonzero(left >= 0)[0]] = 10**6  # used to crash the interpreter (segmentation fault)
    loop = arrays["forest/left_child"].copy()
    loop[np.flatnonzero(loop >= 0)[0]] = 0  # a link back to the root: an endless walk
    cases = {
        "badjson": dict(meta="{not json"),
        "restore": dict(meta={"config": {}, "format": "matsight.restore/1"}),
        "noclasses": dict(meta={k: v for k, v in meta.items() if k != "classes"}),
        "newconfig": dict(meta=dict(meta, config=dict(meta["config"], unknown=1))),
        "novalue": dict(arrays={k: v for k, v in arrays.items() if k != "forest/value"}),
        "badchild": dict(arrays=dict(arrays, **{"forest/left_child": left})),
        "loop": dict(arrays=dict(arrays, **{"forest/left_child": loop})),
        "nodepth": dict(arrays=dict(arrays, **{"forest/max_depth": arrays["forest/max_depth"][:1]})),
        "garbage": dict(raw=b"not a model" * 20),
    }
    for name, kw in cases.items():
        d = _variant(tmp_path, name, src, **kw)
        with pytest.raises(InputError):
            load(d)


def test_damaged_unet_weights_are_user_errors(sample, tmp_path):
    pytest.importorskip("torch")
    image, _, strokes = sample
    cfg = dict(method="unet", steps=2, crop=32, batch_size=1, unet_widths=[4, 8])
    m = train((image, strokes), None, config=cfg)
    src = m.save(tmp_path / "u")
    with safe_open(str(src / "model.safetensors"), "np") as h:
        meta = json.loads(h.metadata()["matsight"])
    meta["config"]["model"]["unet"]["widths"] = [8, 16]  # the weights no longer fit
    d = _variant(tmp_path, "wrong", src, meta=meta)
    with pytest.raises(InputError, match="do not fit"):
        load(d)

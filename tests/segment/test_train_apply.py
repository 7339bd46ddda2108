import numpy as np
import pytest

from matsight._errors import InputError
from matsight.segment import SegmentConfig, load, predict, train
from matsight.segment.evaluate import label_scores
from matsight.segment.predict import clean_labels, predict_proba
from matsight.segment.strokes import check_labels, split_holdout
from matsight.segment.synthetic import draw_strokes, grayscale_from_labels, phase_image


@pytest.fixture(scope="module")
def sample():
    truth = phase_image((160, 160), correlation=8, seed=1)
    image = grayscale_from_labels(truth, noise=0.2, seed=1)
    strokes = draw_strokes(truth, strokes_per_phase=4, seed=1)
    return image, truth, strokes


@pytest.fixture(scope="module")
def forest(sample):
    image, _, strokes = sample
    return train((image, strokes), None, config={"n_estimators": 40, "seed": 0})


def test_forest_recovers_three_phases_from_strokes(sample, forest):
    image, truth, strokes = sample
    assert (strokes > 0).mean() < 0.01  # sparse: under 1 % of the pixels are labelled
    pred = predict(forest, image)
    assert pred.dtype == np.uint8 and pred.shape == truth.shape
    scores = label_scores(truth, pred, [0, 1, 2])
    for phase, s in scores["per_phase"].items():
        assert s["dice"] >= 0.9, (phase, s)
    # the noise defeats a per-pixel threshold at the midpoints between phase levels
    baseline = label_scores(truth, np.digitize(image, [0.35, 0.65]), [0, 1, 2])["mean_dice"]
    assert scores["mean_dice"] > baseline + 0.15
    s = forest.scores
    assert s["holdout_unit"] == "strokes" and s["n_test"] > 0 and s["n_train"] > 0
    assert 0.5 < s["pixel_accuracy"] <= 1.0  # few held-out pixels: a coarse estimate
    assert set(s["per_phase"]) == {0, 1, 2}


def test_save_load_identical(sample, forest, tmp_path):
    image = sample[0]
    forest.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "model.json").is_file()
    again = load(tmp_path / "m")
    assert again.phases == forest.phases and again.config == forest.config
    np.testing.assert_array_equal(predict_proba(again, image), predict_proba(forest, image))
    assert again.scores["mean_dice"] == forest.scores["mean_dice"]


def test_tiled_equals_untiled_2d(sample, forest):
    image = sample[0]
    np.testing.assert_array_equal(predict_proba(forest, image, tile=37), predict_proba(forest, image))


def test_3d_forest_tiled_and_slicewise(rng):
    truth = phase_image((20, 40, 40), correlation=3, seed=2)
    image = grayscale_from_labels(truth, noise=0.1, seed=2)
    strokes = draw_strokes(truth, slices=[4, 10, 16], length=15, seed=2)
    m3 = train((image, strokes), None, config={"n_estimators": 10, "sigmas": [1, 2]})
    assert m3.ndim == 3
    p = predict_proba(m3, image)
    np.testing.assert_array_equal(predict_proba(m3, image, tile=9), p)
    m2 = train((image, strokes), None, config={"n_estimators": 10, "sigmas": [1, 2], "dims": 2})
    assert m2.ndim == 2
    np.testing.assert_array_equal(predict_proba(m2, image, tile=11), predict_proba(m2, image))
    # a 2D model on a volume == the model on each slice
    np.testing.assert_array_equal(predict(m2, image)[7], predict(m2, image[7]))
    assert label_scores(truth, np.argmax(p, -1), [0, 1, 2])["mean_dice"] > 0.85
    with pytest.raises(InputError, match="3D features"):
        predict(m3, image[0])


def test_unet_trains_on_strokes_and_round_trips(sample, tmp_path):
    pytest.importorskip("torch")
    image, truth, strokes = sample
    crop = (slice(0, 96), slice(0, 96))
    cfg = SegmentConfig(
        model={"method": "unet", "unet": {"widths": [8, 16]}},
        training={"steps": 15, "crop": 48, "batch_size": 2, "refit": False},
    )
    seen = []
    m = train((image[crop], strokes[crop]), tmp_path / "u", config=cfg, callback=seen.append)
    assert seen[-1].step == seen[-1].total == 15 and "loss" in seen[-1].metrics
    assert m.method == "unet" and np.isfinite(m.scores["final_loss"])
    pred = predict(m, image[crop])
    assert pred.shape == (96, 96) and set(np.unique(pred)) <= {0, 1, 2}
    np.testing.assert_array_equal(predict(load(tmp_path / "u"), image[crop]), pred)


def test_holdout_split_by_strokes():
    lab = np.zeros((40, 40), np.uint8)
    for k, y in enumerate(range(2, 38, 6)):  # 6 strokes: alternating phases
        lab[y, 5:30] = 1 + k % 2
    tr, te, unit = split_holdout(lab, 0.3, seed=0)
    assert unit == "strokes"
    assert not (tr & te).any() and np.array_equal(tr | te, lab > 0)
    for c in (1, 2):  # every phase keeps training pixels and whole strokes move
        assert (tr & (lab == c)).any()
        rows = np.unique(np.nonzero(te & (lab == c))[0])
        for r in rows:
            assert te[r][lab[r] > 0].all()
    # one stroke per phase: blocks instead
    lab1 = np.zeros((40, 40), np.uint8)
    lab1[5, :] = 1
    lab1[30, :] = 2
    tr, te, unit = split_holdout(lab1, 0.3, seed=0)
    assert unit == "blocks" and te.any() and (tr & (lab1 == 1)).any() and (tr & (lab1 == 2)).any()


def test_label_scores_hand_computed():
    truth = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    s = label_scores(truth, pred, [0, 1, 2])
    assert s["pixel_accuracy"] == pytest.approx(4 / 6)
    # phase 1: tp 1, fp 1, fn 1 → Dice 2/4, IoU 1/3
    assert s["per_phase"][1]["dice"] == pytest.approx(0.5)
    assert s["per_phase"][1]["iou"] == pytest.approx(1 / 3)
    assert s["per_phase"][0]["precision"] == 1.0 and s["per_phase"][0]["recall"] == pytest.approx(2 / 3)


def test_clean_labels():
    lab = np.zeros((30, 30), np.uint8)
    lab[10:20, 10:20] = 1
    lab[3, 3] = 2  # 1-px island inside phase 0
    lab[15, 15] = 0  # 1-px hole inside phase 1
    out = clean_labels(lab, min_size=4)
    assert out[3, 3] == 0 and out[15, 15] == 1
    assert (out == 1).sum() == 100
    out = clean_labels(lab, majority=1)
    assert out[3, 3] == 0 and out[15, 15] == 1
    np.testing.assert_array_equal(clean_labels(lab), lab)


@pytest.mark.parametrize(
    ("labels", "kw", "match"),
    [
        (np.ones((20, 20), np.uint8), {}, "only one phase"),
        (np.zeros((20, 20), np.uint8), {}, "no strokes"),
        (np.ones((25, 20), np.uint8), {}, "outside the image"),
        (np.ones((10, 20), np.uint8), {}, "shape"),
        (np.random.default_rng(0).random((20, 20)), {}, "grayscale image"),
    ],
)
def test_bad_labels_2d(labels, kw, match):
    img = np.zeros((20, 20), np.float32)
    with pytest.raises(InputError, match=match):
        check_labels(img, labels, **kw)


def test_bad_labels_volume():
    vol = np.zeros((5, 20, 20), np.float32)
    two = np.zeros((20, 20), np.uint8)
    two[2, 2], two[8, 8] = 1, 2
    with pytest.raises(InputError, match="--slice"):
        check_labels(vol, two)
    with pytest.raises(InputError, match="outside the image"):
        check_labels(vol, two, slice_index=5)
    img, lab, classes = check_labels(vol, two, slice_index=3)
    assert lab.shape == vol.shape and lab[3, 8, 8] == 2 and classes == [1, 2]

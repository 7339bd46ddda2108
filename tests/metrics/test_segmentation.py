"""Segmentation metrics: hand-computed values and cross-checks with scikit-learn / scikit-image."""

import math

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.metrics.segmentation import (
    confusion_matrix,
    dice,
    hausdorff_distance,
    iou,
    pixel_accuracy,
    precision,
    recall,
    segmentation_summary,
)

REF = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2]])
PRED = np.array([[0, 1, 1, 1], [0, 0, 0, 1], [2, 2, 2, 1]])
# class 0: TP 3 (0,0),(1,0),(1,1); FN 1 (0,1); FP 1 (1,2)      -> dice 6/8, iou 3/5, P 3/4, R 3/4
# class 1: TP 3 (0,2),(0,3),(1,3); FN 1 (1,2); FP 2 (0,1),(2,3) -> dice 6/9, iou 3/6, P 3/5, R 3/4
# class 2: TP 3; FN 1 (2,3); FP 0                               -> dice 6/7, iou 3/4, P 1, R 3/4


def test_hand_computed():
    d = dice(REF, PRED)
    assert d[0] == pytest.approx(6 / 8) and d[1] == pytest.approx(6 / 9) and d[2] == pytest.approx(6 / 7)
    assert d["mean"] == pytest.approx((6 / 8 + 6 / 9 + 6 / 7) / 3)
    j = iou(REF, PRED)
    assert [j[0], j[1], j[2]] == pytest.approx([3 / 5, 3 / 6, 3 / 4])
    assert [precision(REF, PRED)[c] for c in (0, 1, 2)] == pytest.approx([3 / 4, 3 / 5, 1.0])
    assert [recall(REF, PRED)[c] for c in (0, 1, 2)] == pytest.approx([3 / 4, 3 / 4, 3 / 4])
    acc = pixel_accuracy(REF, PRED)
    assert acc["overall"] == pytest.approx(9 / 12)
    assert (
        acc[0] == pytest.approx(10 / 12)
        and acc[1] == pytest.approx(9 / 12)
        and acc[2] == pytest.approx(11 / 12)
    )
    cm, cls = confusion_matrix(REF, PRED)
    np.testing.assert_array_equal(cls, [0, 1, 2])
    np.testing.assert_array_equal(cm, [[3, 1, 0], [1, 3, 0], [0, 1, 3]])


def test_matches_sklearn(rng):
    from sklearn import metrics as skm

    ref = rng.integers(0, 4, (30, 40))
    pred = np.where(rng.random(ref.shape) < 0.7, ref, rng.integers(0, 4, ref.shape))
    pred[pred == 3] = 5  # a class only in the prediction, one only in the reference
    t, p = ref.ravel(), pred.ravel()
    labels = [0, 1, 2, 3, 5]
    for ours, theirs in [
        (precision, skm.precision_score),
        (recall, skm.recall_score),
        (dice, skm.f1_score),
        (iou, skm.jaccard_score),
    ]:
        got = ours(ref, pred)
        zd = 0.0 if theirs is skm.jaccard_score else np.nan  # jaccard accepts only 0/1; never hit here
        exp = theirs(t, p, labels=labels, average=None, zero_division=zd)
        np.testing.assert_allclose([got[c] for c in labels], exp, equal_nan=True)
        assert got["mean"] == pytest.approx(np.nanmean(exp))
    assert pixel_accuracy(ref, pred)["overall"] == pytest.approx(skm.accuracy_score(t, p))
    np.testing.assert_array_equal(confusion_matrix(ref, pred)[0], skm.confusion_matrix(t, p, labels=labels))


def test_labels_and_ignore():
    d = dice(REF, PRED, labels=[1, 7])
    assert set(d) == {1, 7, "mean"} and math.isnan(d[7]) and d["mean"] == pytest.approx(6 / 9)
    # class 0 restricted: pixels of other classes still count as FP/FN for class 1
    assert precision(REF, PRED, labels=[1])[1] == pytest.approx(3 / 5)
    ref = REF.copy()
    ref[2] = -1  # ignored row
    a = pixel_accuracy(ref, PRED, ignore_label=-1)
    assert a["overall"] == pytest.approx(6 / 8)
    assert set(a) == {0, 1, "mean", "overall"}


def test_hausdorff_matches_skimage(rng):
    from skimage.metrics import hausdorff_distance as sk_hd

    ref = np.zeros((40, 50), int)
    ref[5:20, 5:25] = 1
    ref[25:35, 30:45] = 2
    pred = np.zeros_like(ref)
    pred[7:22, 4:24] = 1
    pred[25:33, 30:47] = 2
    pred[2, 48] = 2  # an outlier pixel far from class 2
    hd = hausdorff_distance(ref, pred)
    for c in (0, 1, 2):
        assert hd[c] == pytest.approx(sk_hd(ref == c, pred == c))
    assert hd[2] == pytest.approx(math.hypot(25 - 2, 48 - 44))
    assert hd["mean"] == pytest.approx(np.mean([hd[0], hd[1], hd[2]]))
    # physical spacing, HD95 smaller than the max with an outlier
    assert hausdorff_distance(ref, pred, spacing=2.0)[1] == pytest.approx(2 * hd[1])
    assert hausdorff_distance(ref, pred, percentile=95)[2] < hd[2]
    vol = rng.integers(0, 2, (6, 10, 10))
    assert hausdorff_distance(vol, vol)[1] == 0.0
    only = hausdorff_distance(REF, np.where(PRED == 2, 0, PRED))
    assert math.isinf(only[2])


def test_validation():
    with pytest.raises(InputError, match="differ in shape"):
        dice(REF, PRED[:, :3])
    with pytest.raises(InputError, match="grayscale|non-integer"):
        iou(REF + 0.5, PRED)
    with pytest.raises(InputError, match="2D or 3D"):
        recall(np.arange(5), np.arange(5))
    with pytest.raises(InputError, match="spacing"):
        hausdorff_distance(REF, PRED, spacing=(1, 2, 3))
    assert dice(REF.astype(float), PRED.astype(bool).astype(np.uint8))[0] == pytest.approx(6 / 8)


def test_summary_equals_individual_scores():
    s = segmentation_summary(REF, PRED, spacing=0.5)
    assert s["dice"] == dice(REF, PRED) and s["iou"] == iou(REF, PRED)
    assert s["precision"] == precision(REF, PRED) and s["recall"] == recall(REF, PRED)
    assert s["pixel_accuracy"] == pixel_accuracy(REF, PRED)
    assert s["hausdorff"] == hausdorff_distance(REF, PRED, spacing=0.5)
    assert "hausdorff" not in segmentation_summary(REF, PRED, hausdorff=False)

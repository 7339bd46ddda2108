import numpy as np

from matsight.segment.forest import Forest, fit_forest


def _data(rng, n=3000):
    X = rng.random((n, 6)).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int) + (X[:, 1] + 0.2 * X[:, 2] > 0.7)
    return X, y


def test_rebuilt_trees_match_sklearn_and_numpy_walk(rng):
    from sklearn.ensemble import RandomForestClassifier

    X, y = _data(rng)
    forest = fit_forest(X, y, n_classes=3, n_estimators=10, seed=3)
    ref = RandomForestClassifier(10, class_weight="balanced", random_state=3).fit(X, y)
    Xt = rng.random((2000, 6)).astype(np.float32)
    p = forest.predict_proba(Xt)
    np.testing.assert_allclose(p, ref.predict_proba(Xt), atol=1e-6)
    np.testing.assert_array_equal(forest.predict_proba_numpy(Xt), p)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


def test_arrays_round_trip(rng):
    X, y = _data(rng, 500)
    forest = fit_forest(X, y, n_classes=3, n_estimators=4, seed=0)
    copy = Forest({k: v.copy() for k, v in forest.arrays.items()}, forest.n_features, forest.n_classes)
    np.testing.assert_array_equal(copy.predict_proba(X), forest.predict_proba(X))


def test_damaged_arrays_rejected(rng):
    import pytest

    from matsight._errors import InputError

    X, y = _data(rng, 300)
    forest = fit_forest(X, y, n_classes=3, n_estimators=2, seed=0)
    bad = dict(forest.arrays)
    bad["feature"] = bad["feature"].copy()
    bad["feature"][0] = 99
    with pytest.raises(InputError, match="damaged"):
        Forest(bad, forest.n_features, forest.n_classes)

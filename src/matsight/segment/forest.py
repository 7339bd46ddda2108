"""Random-forest pixel classifier stored as plain arrays (no pickle).

Training uses scikit-learn's :class:`~sklearn.ensemble.RandomForestClassifier`. The fitted trees are exported
node by node into flat numpy arrays (children, split feature, threshold, class fractions per node: every
field of scikit-learn's node record), which are what a saved model contains (safetensors). Loading rebuilds
scikit-learn's compiled ``Tree`` objects from those arrays, the way skops does, so predictions keep
scikit-learn's speed and never go through pickle; :meth:`Forest.predict_proba_numpy` is an independent pure
numpy traversal of the same arrays, used to cross-check the rebuild.
"""

import logging
import os

import numpy as np

from .._errors import InputError

log = logging.getLogger(__name__)

__all__ = ["Forest", "fit_forest"]

_GROUPS = 8  # fixed tree grouping for prediction (see Forest.predict_proba)
_INT_FIELDS = ("left_child", "right_child", "feature", "n_node_samples")
_FLOAT_FIELDS = ("threshold", "impurity", "weighted_n_node_samples")


class Forest:
    """A fitted forest as arrays: ``nodes`` (per-field flat arrays over all trees), ``values``, ``offsets``.

    Parameters
    ----------
    arrays : dict of str to ndarray
        ``left_child, right_child, feature, threshold, impurity, n_node_samples, weighted_n_node_samples,
        missing_go_to_left`` (one entry per node, all trees concatenated; child indices are tree-local),
        ``value`` (n_nodes, n_classes) class fractions, ``offsets`` (n_trees + 1) node ranges, ``max_depth``
        (n_trees,).
    n_features, n_classes : int
    """

    def __init__(self, arrays, n_features, n_classes):
        damaged = "the model file is damaged; retrain with matsight segment train"
        need = (*_INT_FIELDS, *_FLOAT_FIELDS, "value", "offsets", "max_depth")
        missing = [k for k in need if k not in arrays]
        if missing:
            raise InputError(f"the forest arrays lack {', '.join(missing)}; {damaged}")
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        # fixed dtypes: scikit-learn's compiled trees read these buffers as int64 / float64
        a = {}
        for k, v in arrays.items():
            v = np.asarray(v)
            if k in (*_INT_FIELDS, "offsets", "max_depth"):
                v = v.astype(np.int64, copy=False)
            elif k in (*_FLOAT_FIELDS, "value"):
                v = v.astype(np.float64, copy=False)
            elif k == "missing_go_to_left":
                v = v.astype(np.uint8, copy=False)
            a[k] = np.ascontiguousarray(v)
        self.arrays = a
        n_nodes = len(a["threshold"])
        per_node = [k for k in (*_INT_FIELDS, *_FLOAT_FIELDS, "missing_go_to_left") if k in a]
        if any(a[k].shape != (n_nodes,) for k in per_node) or a["offsets"].ndim != 1:
            raise InputError(f"the forest arrays are inconsistent (array lengths); {damaged}")
        off = a["offsets"]
        if len(off) < 2 or off[0] != 0 or off[-1] != n_nodes or np.any(np.diff(off) < 1):
            raise InputError(f"the forest arrays are inconsistent (node offsets); {damaged}")
        if a["max_depth"].shape != (len(off) - 1,):
            raise InputError(f"the forest arrays are inconsistent (tree depths); {damaged}")
        if a["value"].shape != (n_nodes, self.n_classes):
            raise InputError(f"the forest arrays are inconsistent (class values); {damaged}")
        left, right = a["left_child"], a["right_child"]
        internal = left >= 0
        feat = a["feature"]
        if np.any(feat[internal] >= self.n_features) or np.any(feat[internal] < 0):
            raise InputError(f"the forest uses features the model does not define; {damaged}")
        # the compiled traversal follows child indices unchecked: out-of-range or backward links in a
        # damaged file would read outside the node table or loop forever. scikit-learn numbers every
        # child after its parent, inside its tree.
        local = np.arange(n_nodes) - np.repeat(off[:-1], np.diff(off))
        size = np.repeat(np.diff(off), np.diff(off))
        ok = np.where(
            internal,
            (left > local) & (left < size) & (right > local) & (right < size),
            right < 0,
        )
        if not ok.all():
            raise InputError(f"the forest arrays are inconsistent (tree links); {damaged}")
        self._trees = None

    @property
    def n_trees(self):
        """Number of trees."""
        return len(self.arrays["offsets"]) - 1

    @property
    def n_nodes(self):
        """Total number of nodes over all trees."""
        return len(self.arrays["threshold"])

    # ------------------------------------------------------------------ export / rebuild
    @classmethod
    def from_sklearn(cls, rf):
        """Export a fitted :class:`~sklearn.ensemble.RandomForestClassifier` (single output)."""
        parts = {k: [] for k in (*_INT_FIELDS, *_FLOAT_FIELDS, "missing_go_to_left", "value")}
        offsets, depths = [0], []
        for est in rf.estimators_:
            t = est.tree_
            state = t.__getstate__()
            nodes = state["nodes"]
            for f in (*_INT_FIELDS, *_FLOAT_FIELDS):
                parts[f].append(np.asarray(nodes[f]))
            if "missing_go_to_left" in nodes.dtype.names:
                parts["missing_go_to_left"].append(np.asarray(nodes["missing_go_to_left"]))
            else:
                parts["missing_go_to_left"].append(np.zeros(len(nodes), np.uint8))
            v = np.asarray(state["values"])[:, 0, :].astype(np.float64)
            v = v / np.maximum(v.sum(axis=1, keepdims=True), 1e-300)  # class fractions per node
            parts["value"].append(v)
            offsets.append(offsets[-1] + len(nodes))
            depths.append(int(t.max_depth))
        arrays = {}
        for f in _INT_FIELDS:
            arrays[f] = np.concatenate(parts[f]).astype(np.int64)
        for f in _FLOAT_FIELDS:
            arrays[f] = np.concatenate(parts[f]).astype(np.float64)
        arrays["missing_go_to_left"] = np.concatenate(parts["missing_go_to_left"]).astype(np.uint8)
        arrays["value"] = np.concatenate(parts["value"]).astype(np.float64)
        arrays["offsets"] = np.asarray(offsets, dtype=np.int64)
        arrays["max_depth"] = np.asarray(depths, dtype=np.int64)
        return cls(arrays, rf.n_features_in_, len(rf.classes_))

    def _sklearn_trees(self):
        if self._trees is not None:
            return self._trees
        from sklearn.tree._tree import NODE_DTYPE, Tree

        a = self.arrays
        trees = []
        for i in range(self.n_trees):
            lo, hi = int(a["offsets"][i]), int(a["offsets"][i + 1])
            nodes = np.zeros(hi - lo, dtype=NODE_DTYPE)
            for name in NODE_DTYPE.names:
                if name in a:
                    nodes[name] = a[name][lo:hi]
            tree = Tree(self.n_features, np.array([self.n_classes], dtype=np.intp), 1)
            tree.__setstate__(
                {
                    "max_depth": int(a["max_depth"][i]),
                    "node_count": hi - lo,
                    "nodes": nodes,
                    "values": np.ascontiguousarray(a["value"][lo:hi, None, :]),
                }
            )
            trees.append(tree)
        self._trees = trees
        return trees

    # ------------------------------------------------------------------ prediction
    def _check(self, X):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise InputError(f"expected features of shape (n, {self.n_features}), got {X.shape}")
        return np.ascontiguousarray(X, dtype=np.float32)

    def predict_proba(self, X, *, n_jobs=None):
        """Mean class fractions over the trees, ``(n, n_classes)`` float32 (scikit-learn's compiled trees).

        The trees are summed in a fixed number of interleaved groups whose sums are added in a fixed order, so
        the floating-point result is the same whatever ``n_jobs`` (threads; default: the cores this process
        may use) and whatever the number of rows — tiled and whole-image predictions agree bit for bit.
        """
        X = self._check(X)
        trees = self._sklearn_trees()
        if n_jobs is None:
            n_jobs = (
                len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
            )
        n_groups = min(_GROUPS, len(trees))
        n_jobs = max(1, min(int(n_jobs), n_groups, max(1, len(X) // 2048)))

        def partial(chunk):
            acc = np.zeros((len(X), self.n_classes), dtype=np.float64)
            for tree in chunk:
                acc += tree.predict(X).reshape(len(X), self.n_classes)
            return acc

        groups = [trees[i::n_groups] for i in range(n_groups)]
        if n_jobs == 1:
            parts = [partial(g) for g in groups]
        else:
            from concurrent.futures import ThreadPoolExecutor

            # compiled tree traversal releases the GIL, so threads run in parallel
            with ThreadPoolExecutor(n_jobs) as pool:
                parts = list(pool.map(partial, groups))
        total = parts[0]
        for part in parts[1:]:
            total += part
        return (total / self.n_trees).astype(np.float32)

    def predict_proba_numpy(self, X):
        """The same as :meth:`predict_proba` by a vectorised numpy walk down every tree (a cross-check)."""
        X = self._check(X)
        a = self.arrays
        acc = np.zeros((len(X), self.n_classes), dtype=np.float64)
        rows = np.arange(len(X))
        for i in range(self.n_trees):
            lo = int(a["offsets"][i])
            node = np.full(len(X), lo, dtype=np.int64)
            while True:
                left = a["left_child"][node]
                active = left >= 0
                if not active.any():
                    break
                n_act = node[active]
                f = a["feature"][n_act]
                go_left = X[rows[active], f] <= a["threshold"][n_act]
                nxt = np.where(go_left, a["left_child"][n_act], a["right_child"][n_act]) + lo
                node[active] = nxt
            acc += a["value"][node]
        return (acc / self.n_trees).astype(np.float32)


def fit_forest(X, y, *, n_classes, n_estimators=100, max_depth=None, min_samples_leaf=1, seed=0, n_jobs=1):
    """Fit a random forest on features ``X`` (n, F) and class indices ``y`` in ``0..n_classes-1``.

    Classes are weighted inversely to their pixel counts ("balanced"), so a longer stroke for one phase does
    not bias the prediction towards it.
    """
    from sklearn.ensemble import RandomForestClassifier

    y = np.asarray(y)
    present = np.unique(y)
    if len(present) != n_classes or present[0] != 0 or present[-1] != n_classes - 1:
        raise InputError(f"training needs pixels of every phase 0..{n_classes - 1}; got {present.tolist()}")
    rf = RandomForestClassifier(
        n_estimators=n_estimators,
        max_depth=max_depth,
        min_samples_leaf=min_samples_leaf,
        class_weight="balanced",
        n_jobs=n_jobs,
        random_state=seed,
    )
    rf.fit(np.asarray(X, dtype=np.float32), y)
    forest = Forest.from_sklearn(rf)
    log.info("forest: %d trees, %d nodes, %d features", forest.n_trees, forest.n_nodes, forest.n_features)
    return forest

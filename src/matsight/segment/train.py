"""Train a segmenter from sparse labels, scoring it on held-out strokes.

Protocol: the labelled pixels are split into a training and a held-out part — whole strokes (connected
components of one label value) when every phase has at least two strokes, otherwise 16-pixel spatial blocks
of the strokes (neighbouring pixels of one stroke are nearly copies of each other, so a random pixel split
would grade the model on its own training data). The model is fitted on the training part, scored on the
held-out part (pixel accuracy; Dice, IoU, precision, recall per phase), and then, with ``refit=True``,
fitted again on all labels; the saved scores are those of the held-out evaluation.
"""

import logging
import time

import numpy as np
from scipy import ndimage as ndi

from .._errors import InputError
from ..io import validate_labels
from .apply import default_tile, iter_blocks
from .config import make_config
from .features import compute_features, feature_names, feature_radius, intensity_range, normalize
from .model import SegmentModel

log = logging.getLogger(__name__)

__all__ = ["train", "check_labels", "split_holdout", "label_scores"]

MAX_LABEL_VALUES = 64
BLOCK = 16


def check_labels(image, labels, *, slice_index=None, name="labels"):
    """Validate an image / sparse-label pair and return them as arrays of equal shape.

    Parameters
    ----------
    image : array_like
        2D (YX) or 3D (ZYX) grayscale.
    labels : array_like
        Integer labels, 0 = unlabelled, ``k >= 1`` marks phase ``k - 1``. Same shape as ``image``, or one 2D
        slice of a 3D image together with ``slice_index``.
    slice_index : int, optional
        Which z slice a 2D label image marks.

    Returns
    -------
    (ndarray, ndarray, list of int)
        Image, labels (same shape) and the label values present (the classes).
    """
    img = np.asarray(image)
    if img.dtype.kind not in "biuf":
        raise InputError(f"the image has data type {img.dtype}; give a grayscale image (integers or floats)")
    if img.ndim == 3 and img.shape[0] == 1:
        img = img[0]
    if img.ndim not in (2, 3):
        raise InputError(f"the image must be 2D (Y, X) or 3D (Z, Y, X), got shape {img.shape}")
    lab = validate_labels(labels, name=name, max_labels=MAX_LABEL_VALUES)
    if lab.ndim == 3 and lab.shape[0] == 1 and img.ndim == 2:
        lab = lab[0]
    if slice_index is not None:
        if img.ndim != 3 or lab.ndim != 2:
            raise InputError(
                "--slice is for a 2D label image drawn on one slice of a 3D volume; drop it here"
            )
        z = int(slice_index)
        if not 0 <= z < img.shape[0]:
            raise InputError(
                f"{name} are outside the image: slice {z} asked for, "
                f"but the volume has slices 0..{img.shape[0] - 1}"
            )
        if lab.shape != img.shape[1:]:
            raise InputError(
                f"{name} have shape {lab.shape} but the volume's slices are {img.shape[1:]}; "
                "draw them on one slice"
            )
        full = np.zeros(img.shape, dtype=lab.dtype)
        full[z] = lab
        lab = full
    if lab.shape != img.shape:
        if lab.ndim == 2 and img.ndim == 3 and lab.shape == img.shape[1:]:
            raise InputError(
                f"{name} are one 2D slice {lab.shape} but the image is a volume of {img.shape[0]} slices; "
                "say which slice they mark (--slice Z)"
            )
        if lab.ndim == img.ndim and any(a > b for a, b in zip(lab.shape, img.shape, strict=True)):
            raise InputError(
                f"{name} extend outside the image: {name} shape {lab.shape}, image shape {img.shape}; "
                "draw the labels on the image itself (same size)"
            )
        raise InputError(
            f"{name} have shape {lab.shape} but the image has shape {img.shape}; "
            "they must match pixel for pixel"
        )
    counts = np.bincount(lab.ravel())
    classes = [int(v) for v in np.flatnonzero(counts) if v > 0]
    if not classes:
        raise InputError(
            f"{name} contain no strokes (every pixel is 0 = unlabelled); "
            "mark each phase with values 1, 2, ..."
        )
    if len(classes) == 1:
        raise InputError(
            f"{name} mark only one phase (value {classes[0]}); draw strokes for at least two phases "
            "(values 1, 2, ... = phases 0, 1, ...)"
        )
    return img, lab, classes


def split_holdout(labels, fraction, *, seed=0):
    """Split labelled pixels into training and held-out masks by strokes (or 16-px blocks of strokes).

    Returns
    -------
    (ndarray of bool, ndarray of bool, str)
        Training mask, held-out mask, and the unit used (``"strokes"``, ``"blocks"`` or ``"none"``).
    """
    lab = np.asarray(labels)
    labelled = lab > 0
    if fraction <= 0:
        return labelled, np.zeros_like(labelled), "none"
    rng = np.random.default_rng(seed)
    classes = [int(c) for c in np.unique(lab[labelled])]
    comps = {}
    for c in classes:
        comp, n = ndi.label(lab == c, structure=np.ones((3,) * lab.ndim))
        comps[c] = (comp, n)
    unit = "strokes" if all(n >= 2 for _, n in comps.values()) else "blocks"
    test = np.zeros(lab.shape, dtype=bool)
    for c in classes:
        if unit == "strokes":
            ids = comps[c][0]
        else:
            # unit id = index of the 16-px block, restricted to this class's pixels
            grid = np.indices(lab.shape, sparse=True)
            ids = np.zeros(lab.shape, dtype=np.int64)
            mult = 1
            for g, s in zip(reversed(grid), reversed(lab.shape), strict=True):
                ids = ids + (g // BLOCK) * mult
                mult *= -(-s // BLOCK)
            ids = np.where(lab == c, ids + 1, 0)
        uid, size = np.unique(ids[ids > 0], return_counts=True)
        if len(uid) < 2:
            continue  # cannot hold out without losing the phase from training
        order = rng.permutation(len(uid))
        target = fraction * size.sum()
        chosen, total = [], 0
        for k in order[:-1]:  # at least one unit stays for training
            if total >= target:
                break
            chosen.append(uid[k])
            total += size[k]
        test |= np.isin(ids, chosen) & (lab == c)
    return labelled & ~test, test, unit


def label_scores(truth, pred, phases):
    """Pixel accuracy and per-phase Dice, IoU, precision, recall of ``pred`` against ``truth``.

    A thin layer over :mod:`matsight.metrics.segmentation` (same definitions) that takes any-shaped arrays
    (held-out pixels come as 1D arrays) and returns one dict per phase with its reference pixel count ``n``.
    ``mean_dice`` averages the phases present in ``truth``; phases absent from both are NaN.
    """
    from ..metrics import segmentation as ms

    t = np.asarray(truth).reshape(1, -1)
    p = np.asarray(pred).reshape(1, -1)
    phases = [int(c) for c in phases]
    if t.size == 0:
        nan = float("nan")
        per = {c: {"dice": nan, "iou": nan, "precision": nan, "recall": nan, "n": 0} for c in phases}
        return {"pixel_accuracy": nan, "mean_dice": nan, "per_phase": per}
    kw = {"labels": phases}
    d, j = ms.dice(t, p, **kw), ms.iou(t, p, **kw)
    pr, rc = ms.precision(t, p, **kw), ms.recall(t, p, **kw)
    counts = {c: int(np.count_nonzero(t == c)) for c in phases}
    per = {
        c: {"dice": d[c], "iou": j[c], "precision": pr[c], "recall": rc[c], "n": counts[c]} for c in phases
    }
    dices = [per[c]["dice"] for c in phases if counts[c] > 0]
    return {
        "pixel_accuracy": ms.pixel_accuracy(t, p, **kw)["overall"],
        "mean_dice": float(np.mean(dices)) if dices else float("nan"),
        "per_phase": per,
    }


def _feature_dims(cfg, img):
    if cfg.dims == "auto":
        return 2 if (img.ndim == 2 or cfg.method == "unet") else 3
    if cfg.dims == 3 and img.ndim == 2:
        raise InputError("dims=3 needs a 3D volume; this image is 2D (use dims 2 or auto)")
    return int(cfg.dims)


def _labelled_features(cfg, norm, labels, ndim):
    """Features at every labelled pixel: ``(X (n, F), flat indices (n,))``, computed block by block."""
    halo = feature_radius(cfg.features)
    if ndim == 2 and norm.ndim == 3:
        core = (1,) + (default_tile(cfg, 2),) * 2
    else:
        core = (default_tile(cfg, ndim),) * norm.ndim
    xs, idx = [], []
    flat_index = np.arange(labels.size).reshape(labels.shape)
    for cs, es, inner in iter_blocks(norm.shape, core, halo):
        lab = labels[cs]
        if not lab.any():
            continue
        if ndim == 2 and norm.ndim == 3:  # slice-wise: halo in y and x only
            f = compute_features(norm[(cs[0], *es[1:])][0], cfg.features)[inner[1:]][None]
        else:
            f = compute_features(norm[es], cfg.features)[inner]
        m = lab > 0
        xs.append(f[m])
        idx.append(flat_index[cs][m])
    return np.concatenate(xs), np.concatenate(idx)


def _subsample(y, per_class, rng):
    keep = []
    for c in np.unique(y):
        where = np.flatnonzero(y == c)
        if len(where) > per_class:
            where = rng.choice(where, per_class, replace=False)
        keep.append(where)
    return np.sort(np.concatenate(keep))


def _train_forest(cfg, norm, lab, classes, train_mask, test_mask, ndim, progress):
    from .forest import fit_forest

    t0 = time.perf_counter()
    X, flat = _labelled_features(cfg, norm, lab, ndim)
    lut = np.zeros(max(classes) + 1, dtype=np.int64)
    lut[classes] = np.arange(len(classes))
    y = lut[lab.ravel()[flat]]
    is_test = test_mask.ravel()[flat]
    log.info("features: %d labelled pixels × %d in %.1f s", len(X), X.shape[1], time.perf_counter() - t0)
    rng = np.random.default_rng(cfg.seed)

    def fit(sel):
        sub = sel[_subsample(y[sel], cfg.max_samples_per_class, rng)]
        return fit_forest(
            X[sub],
            y[sub],
            n_classes=len(classes),
            n_estimators=cfg.n_estimators,
            max_depth=cfg.max_depth,
            min_samples_leaf=cfg.min_samples_leaf,
            seed=cfg.seed,
            n_jobs=cfg.n_jobs,
        )

    scores = {}
    all_idx = np.arange(len(X))
    if is_test.any():
        tr = all_idx[~is_test]
        if len(np.unique(y[tr])) < len(classes):
            raise InputError("holding out labels left a phase without training pixels; draw more strokes")
        forest = fit(tr)
        te = all_idx[is_test]
        pred = np.argmax(forest.predict_proba(X[te]), axis=1)
        scores = _scored(y[te], pred, classes)
        if not cfg.refit:
            return forest, scores
    return fit(all_idx), scores


def _scored(y_true_idx, y_pred_idx, classes):
    phases = [c - 1 for c in classes]
    lut = np.asarray(phases)
    return label_scores(lut[y_true_idx], lut[y_pred_idx], phases)


def _train_unet(cfg, norm, lab, classes, train_mask, test_mask, progress):
    from .unet import IGNORE, train_unet, unet_predict_proba

    vol = norm[None] if norm.ndim == 2 else norm
    lab3 = lab[None] if lab.ndim == 2 else lab
    tr3 = train_mask[None] if lab.ndim == 2 else train_mask
    te3 = test_mask[None] if lab.ndim == 2 else test_mask
    zs = np.flatnonzero(lab3.reshape(len(lab3), -1).any(axis=1))  # only slices with strokes
    lut = np.full(max(classes) + 1, IGNORE, dtype=np.int64)
    lut[classes] = np.arange(len(classes))
    imgs = np.ascontiguousarray(vol[zs], dtype=np.float32)
    target_all = lut[lab3[zs]]
    scores = {}
    net = None
    if te3.any():
        target = np.where(tr3[zs], target_all, IGNORE)
        net, losses = train_unet(imgs, target, cfg, n_classes=len(classes), progress=progress)
        test = te3[zs]
        truth, pred = [], []
        for k in range(len(zs)):
            if not test[k].any():
                continue
            p = unet_predict_proba(net, imgs[k])
            pred.append(np.argmax(p, axis=-1)[test[k]])
            truth.append(target_all[k][test[k]])
        scores = _scored(np.concatenate(truth), np.concatenate(pred), classes)
        scores["final_loss"] = float(np.mean(losses[-20:]))
        if not cfg.refit:
            return net, scores
    net, losses = train_unet(imgs, target_all, cfg, n_classes=len(classes), progress=progress)
    scores.setdefault("final_loss", float(np.mean(losses[-20:])))
    return net, scores


def train(
    image,
    labels,
    *,
    method="forest",
    holdout=0.2,
    seed=0,
    config=None,
    slice_index=None,
    progress=False,
    **overrides,
):
    """Train a segmenter on a grayscale image and sparse labels (0 = unlabelled, k = phase k − 1).

    Parameters
    ----------
    image : array_like
        2D (YX) or 3D (ZYX) grayscale.
    labels : array_like
        Integer strokes of the same shape (or a 2D slice with ``slice_index``).
    method : {"forest", "unet"}
    holdout : float
        Fraction of labelled pixels (whole strokes where possible) held out for scoring; 0 to skip.
    seed : int
    config : SegmentConfig or dict, optional
        Further settings (see :class:`~matsight.segment.config.SegmentConfig`); keyword ``overrides`` win.
    slice_index : int, optional
        The z slice a 2D label image marks in a 3D image.
    progress : bool

    Returns
    -------
    SegmentModel
        With ``.scores``: ``pixel_accuracy``, ``mean_dice`` and per phase ``dice, iou, precision, recall, n``
        on the held-out labels (NaN, ``n`` 0, when nothing could be held out), plus ``holdout_unit``,
        ``n_train``, ``n_test``, ``seconds``.

    Examples
    --------
    >>> model = train(image, strokes, method="forest")            # doctest: +SKIP
    >>> labels = matsight.segment.apply(model, volume)               # doctest: +SKIP
    """
    cfg = make_config(config, method=method, holdout=holdout, seed=seed, **overrides)
    img, lab, classes = check_labels(image, labels, slice_index=slice_index)
    ndim = _feature_dims(cfg, img)
    t0 = time.perf_counter()
    lo, hi = intensity_range(img)
    finite = img[np.isfinite(img)] if img.dtype.kind == "f" else img
    if finite.min() == finite.max():
        raise InputError(
            f"the image is constant (every pixel is {finite.min():g}); there is nothing to learn from — "
            "check that the right file was given"
        )
    norm = normalize(img, lo, hi)
    train_mask, test_mask, unit = split_holdout(lab, cfg.holdout, seed=cfg.seed)
    if cfg.method == "forest":
        est, scores = _train_forest(cfg, norm, lab, classes, train_mask, test_mask, ndim, progress)
    else:
        est, scores = _train_unet(cfg, norm, lab, classes, train_mask, test_mask, progress)
    scores.update(
        holdout_unit=unit,
        n_train=int(train_mask.sum()),
        n_test=int(test_mask.sum()),
        seconds=round(time.perf_counter() - t0, 3),
    )
    if not test_mask.any():
        if unit != "none":
            log.warning("too few strokes to hold any out; no held-out scores")
        # the same keys as with held-out scores (NaN: not measured), so code reading them does not break
        scores.update(label_scores([], [], [c - 1 for c in classes]))
    info = {"image_shape": list(img.shape), "n_labelled": int((lab > 0).sum())}
    if cfg.method == "forest":
        info["n_features"] = len(feature_names(cfg.features, ndim))
    return SegmentModel(
        cfg, classes=classes, intensity=(lo, hi), ndim=ndim, estimator=est, scores=scores, info=info
    )

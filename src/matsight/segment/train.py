"""Train a segmenter from sparse labels, scoring it on held-out strokes.

Protocol: the labelled pixels are split into a training and a held-out part by
:func:`~matsight.segment.strokes.split_holdout` (whole strokes where possible). The model is fitted on the
training part, scored on the held-out part (pixel accuracy; Dice, IoU, precision, recall per phase), and then,
with ``refit=True``, fitted again on all labels; the saved scores are those of the held-out evaluation.

- Forest: features at the labelled pixels (:mod:`~matsight.segment.features`), at most
  ``max_samples_per_class`` per phase, :func:`~matsight.segment.forest.fit_forest`.
- U-Net: :func:`step` (one optimiser step of :func:`~matsight.segment.losses.stroke_loss` on random crops
  around labelled pixels) in :func:`fit_unet`'s loop (AdamW, one-cycle learning rate).
"""

import logging
import time
from pathlib import Path

import numpy as np
import torch

from .._errors import InputError
from ..nn.device import resolve_device, seed_everything
from ..progress import report, throttled
from .config import make_config
from .evaluate import label_scores
from .features import compute_features, feature_names, feature_radius, intensity_range, normalize
from .forest import fit_forest
from .losses import IGNORE, class_weights, stroke_loss
from .model import SegmentModel
from .networks import build_network
from .predict import default_tile, iter_blocks, unet_predict_proba
from .strokes import check_labels, split_holdout

log = logging.getLogger(__name__)

__all__ = ["train", "step", "fit_unet"]


def train(data, out_dir, *, config=None, budget=None, callback=None):
    """Train a segmenter on a grayscale image and sparse labels (0 = unlabelled, k = phase k − 1).

    Parameters
    ----------
    data : (array_like, array_like)
        ``(image, strokes)``: a 2D (YX) or 3D (ZYX) grayscale image and integer strokes of the same shape
        (:func:`~matsight.segment.strokes.check_labels` expands strokes drawn on one slice of a volume).
    out_dir : path or None
        Model folder to write (:meth:`SegmentModel.save`); None to keep the model in memory only.
    config : SegmentConfig or dict, optional
        Every setting (:class:`~matsight.segment.config.SegmentConfig`; a flat dict of the earlier names is
        accepted too). Default: a random forest with a 20 % hold-out.
    budget : float, optional
        Wall-clock seconds for the U-Net's optimiser steps, shared equally by the held-out fit and the refit
        (each stops early when its share is spent); forests are not limited.
    callback : callable, optional
        A :data:`matsight.progress.Callback`: called with the step, the total and the latest ``loss``.

    Returns
    -------
    SegmentModel
        With ``.scores``: ``pixel_accuracy``, ``mean_dice`` and per phase ``dice, iou, precision, recall, n``
        on the held-out labels (NaN, ``n`` 0, when nothing could be held out), plus ``holdout_unit``,
        ``n_train``, ``n_test``, ``seconds``.

    Examples
    --------
    >>> from matsight.segment.synthetic import draw_strokes, grayscale_from_labels, phase_image
    >>> truth = phase_image((64, 64), seed=0)
    >>> strokes = draw_strokes(truth, seed=0)
    >>> model = train((grayscale_from_labels(truth), strokes), None, config={"n_estimators": 10})
    >>> model.method, model.phases
    ('forest', [0, 1, 2])
    """
    cfg = make_config(config)
    image, strokes = _unpack(data)
    img, lab, classes = check_labels(image, strokes)
    ndim = _feature_dims(cfg.model, img)
    t0 = time.perf_counter()
    lo, hi, norm = _normalised(img)
    train_mask, test_mask, unit = split_holdout(lab, cfg.training.holdout, seed=cfg.training.seed)
    fit = _fit_forest if cfg.model.method == "forest" else _fit_unet
    est, scores = fit(cfg, norm, lab, classes, test_mask, ndim, budget=budget, callback=callback)
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
    if cfg.model.method == "forest":
        info["n_features"] = len(feature_names(cfg.model.forest.features, ndim))
    model = SegmentModel(
        cfg, classes=classes, intensity=(lo, hi), ndim=ndim, estimator=est, scores=scores, info=info
    )
    if out_dir is not None:
        model.save(Path(out_dir))
    return model


def _unpack(data):
    if not isinstance(data, tuple | list) or len(data) != 2:
        raise InputError("segment training data is a pair (image, strokes) of arrays of the same shape")
    return data


def _normalised(img):
    """The training image's intensity range and the image mapped to it (constant images are refused)."""
    lo, hi = intensity_range(img)
    finite = img[np.isfinite(img)] if img.dtype.kind == "f" else img
    if finite.min() == finite.max():
        raise InputError(
            f"the image is constant (every pixel is {finite.min():g}); there is nothing to learn from — "
            "check that the right file was given"
        )
    return lo, hi, normalize(img, lo, hi)


def _scored(y_true_idx, y_pred_idx, classes):
    phases = [c - 1 for c in classes]
    lut = np.asarray(phases)
    return label_scores(lut[y_true_idx], lut[y_pred_idx], phases)


# ------------------------------------------------------------------------------------------------- forest
def _feature_dims(mc, img):
    """2 (slice-wise) or 3 (volumetric) for ``img`` under the model config ``mc``."""
    if mc.dims == "auto":
        return 2 if (img.ndim == 2 or mc.method == "unet") else 3
    if mc.dims == 3 and img.ndim == 2:
        raise InputError("dims=3 needs a 3D volume; this image is 2D (use dims 2 or auto)")
    return int(mc.dims)


def _labelled_features(feats, norm, labels, ndim):
    """Features at every labelled pixel: ``(X (n, F), flat indices (n,))``, computed block by block."""
    halo = feature_radius(feats)
    if ndim == 2 and norm.ndim == 3:
        core = (1,) + (default_tile(feats, 2),) * 2
    else:
        core = (default_tile(feats, ndim),) * norm.ndim
    xs, idx = [], []
    flat_index = np.arange(labels.size).reshape(labels.shape)
    for cs, es, inner in iter_blocks(norm.shape, core, halo):
        lab = labels[cs]
        if not lab.any():
            continue
        if ndim == 2 and norm.ndim == 3:  # slice-wise: halo in y and x only
            f = compute_features(norm[(cs[0], *es[1:])][0], feats)[inner[1:]][None]
        else:
            f = compute_features(norm[es], feats)[inner]
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


def _fit_forest(cfg, norm, lab, classes, test_mask, ndim, *, budget=None, callback=None):
    """Forest on the labelled pixels' features: held-out fit and score, then (``refit``) a fit on all."""
    t0 = time.perf_counter()
    feats = cfg.model.forest.features
    report(callback, step=0, total=None, message="features of the labelled pixels")
    X, flat = _labelled_features(feats, norm, lab, ndim)
    lut = np.zeros(max(classes) + 1, dtype=np.int64)
    lut[classes] = np.arange(len(classes))
    y = lut[lab.ravel()[flat]]
    is_test = test_mask.ravel()[flat]
    log.info("features: %d labelled pixels × %d in %.1f s", len(X), X.shape[1], time.perf_counter() - t0)
    rng = np.random.default_rng(cfg.training.seed)
    n_fits = 2 if is_test.any() and cfg.training.refit else 1

    def fit(sel, k):
        report(callback, step=k, total=n_fits, message="fitting the forest", seconds=time.perf_counter() - t0)
        sub = sel[_subsample(y[sel], cfg.training.max_samples_per_class, rng)]
        f = cfg.model.forest
        return fit_forest(
            X[sub],
            y[sub],
            n_classes=len(classes),
            n_estimators=f.n_estimators,
            max_depth=f.max_depth,
            min_samples_leaf=f.min_samples_leaf,
            seed=cfg.training.seed,
            n_jobs=cfg.training.n_jobs,
        )

    scores = {}
    all_idx = np.arange(len(X))
    forest = None
    if is_test.any():
        tr = all_idx[~is_test]
        if len(np.unique(y[tr])) < len(classes):
            raise InputError("holding out labels left a phase without training pixels; draw more strokes")
        forest = fit(tr, 0)
        te = all_idx[is_test]
        scores = _scored(y[te], np.argmax(forest.predict_proba(X[te]), axis=1), classes)
    if forest is None or cfg.training.refit:
        forest = fit(all_idx, n_fits - 1)
    report(callback, step=n_fits, total=n_fits, message="forest fitted", seconds=time.perf_counter() - t0)
    return forest, scores


# --------------------------------------------------------------------------------------------------- unet
def step(net, optimizer, scheduler, batch, weight):
    """One optimiser step of :func:`~matsight.segment.losses.stroke_loss` on ``batch = (x, targets)``.

    Returns the loss (float).
    """
    x, t = batch
    loss = stroke_loss(net(x), t, weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return loss.item()


def _sample_crop(img, tgt, crop, rng, labelled):
    """A random crop (YX) centred near a random labelled pixel, randomly flipped / rotated by 90°."""
    z, y, x = labelled[rng.integers(len(labelled))]
    h, w = img.shape[1:]
    cy, cx = min(crop, h), min(crop, w)
    y0 = int(np.clip(y - rng.integers(cy), 0, h - cy))
    x0 = int(np.clip(x - rng.integers(cx), 0, w - cx))
    a = img[z, y0 : y0 + cy, x0 : x0 + cx]
    b = tgt[z, y0 : y0 + cy, x0 : x0 + cx]
    k = int(rng.integers(4))
    a, b = np.rot90(a, k), np.rot90(b, k)
    if rng.random() < 0.5:
        a, b = a[:, ::-1], b[:, ::-1]
    if a.shape != (crop, crop):  # small images: pad to a fixed batch shape, padding is ignored by the loss
        pa = ((0, crop - a.shape[0]), (0, crop - a.shape[1]))
        a = np.pad(a, pa, mode="reflect" if min(a.shape) > 1 else "edge")
        b = np.pad(b, pa, constant_values=IGNORE)
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def _batch(images, targets, tc, rng, labelled, device):
    pairs = [_sample_crop(images, targets, tc.crop, rng, labelled) for _ in range(tc.batch_size)]
    x = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None].to(device)
    t = torch.from_numpy(np.stack([p[1] for p in pairs]).astype(np.int64)).to(device)
    return x, t


def fit_unet(images, targets, config, *, n_classes, budget=None, callback=None, message="U-Net training"):
    """Train the segmentation U-Net on normalised slices with sparse targets.

    Parameters
    ----------
    images : ndarray
        ``(S, Y, X)`` float32 slices (normalised grey values).
    targets : ndarray
        ``(S, Y, X)`` int64 class indices; -1 (:data:`~matsight.segment.losses.IGNORE`) where unlabelled
        or held out.
    config : SegmentConfig
    n_classes : int
    budget : float, optional
        Seconds; the loop stops after the step that spends them.
    callback : callable, optional
        :data:`matsight.progress.Callback`.
    message : str

    Returns
    -------
    (UNet, list of float)
        The trained network (eval mode, CPU) and the loss per step.
    """
    tc = config.training
    seed_everything(tc.seed)
    rng = np.random.default_rng(tc.seed)
    device = resolve_device(tc.device)
    net = build_network(n_classes, config.model.unet).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=tc.learning_rate, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=tc.learning_rate, total_steps=tc.steps)
    labelled = np.argwhere(targets != IGNORE)
    weight = class_weights(targets, n_classes, device)
    callback = throttled(callback)
    losses = []
    t0 = time.perf_counter()
    net.train()
    for k in range(tc.steps):
        losses.append(step(net, opt, sched, _batch(images, targets, tc, rng, labelled, device), weight))
        seconds = time.perf_counter() - t0
        done = budget is not None and seconds >= budget
        total = k + 1 if done else tc.steps
        report(callback, step=k + 1, total=total, metrics={"loss": losses[-1]}, message=message,
               seconds=seconds, budget=budget)  # fmt: skip
        if done:
            log.info("time budget of %.0f s spent after %d of %d steps", budget, k + 1, tc.steps)
            break
    net.eval()
    return net.cpu(), losses


def _fit_unet(cfg, norm, lab, classes, test_mask, ndim, *, budget=None, callback=None):
    """U-Net on the slices with strokes: held-out fit and score, then (``refit``) a fit on all strokes."""
    vol = norm[None] if norm.ndim == 2 else norm
    lab3 = lab[None] if lab.ndim == 2 else lab
    te3 = test_mask[None] if lab.ndim == 2 else test_mask
    zs = np.flatnonzero(lab3.reshape(len(lab3), -1).any(axis=1))  # only slices with strokes
    lut = np.full(max(classes) + 1, IGNORE, dtype=np.int64)
    lut[classes] = np.arange(len(classes))
    imgs = np.ascontiguousarray(vol[zs], dtype=np.float32)
    target_all = lut[lab3[zs]]
    test = te3[zs]
    n_fits = 2 if test.any() and cfg.training.refit else 1
    share = None if budget is None else budget / n_fits
    kw = dict(n_classes=len(classes), budget=share, callback=callback)
    scores = {}
    if test.any():
        net, losses = fit_unet(imgs, np.where(test, IGNORE, target_all), cfg, **kw)
        truth, pred = [], []
        for k in np.flatnonzero(test.reshape(len(test), -1).any(axis=1)):
            pred.append(np.argmax(unet_predict_proba(net, imgs[k]), axis=-1)[test[k]])
            truth.append(target_all[k][test[k]])
        scores = _scored(np.concatenate(truth), np.concatenate(pred), classes)
        scores["final_loss"] = float(np.mean(losses[-20:]))
        if not cfg.training.refit:
            return net, scores
    net, losses = fit_unet(imgs, target_all, cfg, message="U-Net training on all strokes", **kw)
    scores.setdefault("final_loss", float(np.mean(losses[-20:])))
    return net, scores

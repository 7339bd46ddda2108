"""Overlapped tiled inference for 2D and 3D images (modelled on MONAI's ``sliding_window_inference``).

Large slices and volumes are cut into overlapping tiles, run through a predictor a batch of tiles at a
time, and blended back with Gaussian, linear (tent) or constant weights, so peak memory depends on the tile
size and not on the image size. ``margin`` additionally gives zero weight to the outermost voxels of every
tile side that lies inside the image: for a translation-equivariant predictor whose receptive-field radius
is at most ``margin``, the tiled result then equals the whole-image result exactly.
"""

import contextlib
import itertools
import logging

import numpy as np
import torch

from .._errors import InputError

log = logging.getLogger(__name__)

__all__ = ["sliding_window_inference", "tile_starts", "importance_map", "tiled_apply"]


def tile_starts(size, tile, step):
    """Start offsets of tiles of length ``tile`` covering ``[0, size)`` with stride at most ``step``.

    The last tile is aligned with the end of the axis (as in MONAI), so no tile sticks out.
    """
    if tile >= size:
        return [0]
    starts = list(range(0, size - tile, max(1, step)))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def importance_map(roi, mode="gaussian", *, sigma_scale=0.125, dtype=torch.float32, device="cpu"):
    """Blending weights for one tile: ``"gaussian"``, ``"linear"`` (separable tent) or ``"constant"``."""
    axes = []
    for n in roi:
        c = (n - 1) / 2.0
        r = torch.arange(n, dtype=torch.float64)
        if mode == "gaussian":
            sigma = max(sigma_scale * n, 1e-3)
            w = torch.exp(-0.5 * ((r - c) / sigma) ** 2)
        elif mode == "linear":
            w = 1.0 - (r - c).abs() / (c + 1.0)
        elif mode == "constant":
            w = torch.ones(n, dtype=torch.float64)
        else:
            raise InputError(f"unknown blend mode {mode!r}; use gaussian, linear or constant")
        axes.append(w)
    out = axes[0]
    for w in axes[1:]:
        out = out[..., None] * w
    out = out / out.max()
    # strictly positive so every covered voxel gets weight (MONAI clamps the same way)
    out = out.clamp_min(1e-3)
    return out.to(dtype=dtype, device=device)


def _tile_grid(inputs, roi_size, overlap, margin):
    """Validate the tiling; return the tile size and the start position of every tile."""
    if inputs.ndim not in (4, 5):
        raise InputError(f"inputs must be (B, C, Y, X) or (B, C, Z, Y, X), got shape {tuple(inputs.shape)}")
    if not 0 <= overlap < 1:
        raise InputError(f"overlap must be in [0, 1), got {overlap}")
    nd = inputs.ndim - 2
    size = tuple(inputs.shape[2:])
    if np.isscalar(roi_size):
        roi_size = (int(roi_size),) * nd
    if len(roi_size) != nd:
        raise InputError(f"roi_size {tuple(roi_size)} has {len(roi_size)} axes; the image has {nd}")
    roi = tuple(s if (r <= 0 or r >= s) else int(r) for r, s in zip(roi_size, size, strict=True))
    margin = int(margin)
    steps = []
    for r, s in zip(roi, size, strict=True):
        if r < s and r <= 2 * margin:
            raise InputError(f"tile size {r} must exceed 2 × margin ({2 * margin}); use larger tiles")
        step = max(1, int(r * (1 - overlap)))
        if r < s:
            step = min(step, r - 2 * margin)
        steps.append(step)
    starts = [tile_starts(s, r, st) for s, r, st in zip(size, roi, steps, strict=True)]
    return roi, list(itertools.product(*starts))


def _tile_weight(base, pos, roi, size, margin):
    """Blending weight of the tile at ``pos``: ``base``, ``margin`` voxels zeroed at each interior side."""
    w = base
    if margin:
        w = w.clone()
        for ax, (p, r, s) in enumerate(zip(pos, roi, size, strict=True)):
            idx_lo = [slice(None)] * len(roi)
            idx_hi = [slice(None)] * len(roi)
            if p > 0:  # interior side: drop the margin
                idx_lo[ax] = slice(0, margin)
                w[tuple(idx_lo)] = 0
            if p + r < s:
                idx_hi[ax] = slice(r - margin, r)
                w[tuple(idx_hi)] = 0
    return w


def _blend_sample(
    inputs, b, predictor, kwargs, positions, roi, base, margin, sw_batch_size, out_device, advance
):
    """Prediction for sample ``b`` of ``inputs``: its tiles through ``predictor`` in batches, blended.

    ``advance(n)``, when given, is called after each batch of ``n`` tiles.
    """
    size = tuple(inputs.shape[2:])
    acc = None
    norm = torch.zeros(size, device=out_device, dtype=torch.float32)
    for i in range(0, len(positions), sw_batch_size):
        chunk = positions[i : i + sw_batch_size]
        sl = [tuple(slice(p, p + r) for p, r in zip(pos, roi, strict=True)) for pos in chunk]
        tiles = torch.cat([inputs[(b, slice(None), *s)][None] for s in sl], dim=0)
        pred = predictor(tiles, **kwargs)
        if tuple(pred.shape[2:]) != roi:
            raise InputError(
                f"predictor changed the tile size {roi} → {tuple(pred.shape[2:])}; it must keep it"
            )
        pred = pred.to(out_device, dtype=torch.float32)
        if acc is None:
            acc = torch.zeros((pred.shape[1], *size), device=out_device, dtype=torch.float32)
        for k, (s, pos) in enumerate(zip(sl, chunk, strict=True)):
            w = _tile_weight(base, pos, roi, size, margin)
            acc[(slice(None), *s)] += pred[k] * w
            norm[s] += w
        if advance is not None:
            advance(len(chunk))
    return acc / norm.clamp_min(1e-12)


@contextlib.contextmanager
def _tile_progress(total, enabled):
    """Yield ``advance(n)`` of a transient progress bar over ``total`` tiles, or None when not ``enabled``."""
    if not enabled:
        yield None
        return
    from rich.progress import Progress

    bar = Progress(transient=True)
    bar.start()
    task = bar.add_task("tiles", total=total)
    try:
        yield lambda k: bar.advance(task, k)
    finally:
        bar.stop()


def sliding_window_inference(
    inputs,
    roi_size,
    predictor,
    *,
    sw_batch_size=4,
    overlap=0.25,
    mode="gaussian",
    sigma_scale=0.125,
    margin=0,
    progress=False,
    out_device=None,
    **kwargs,
):
    """Run ``predictor`` over overlapping tiles of ``inputs`` and blend the results.

    Parameters
    ----------
    inputs : torch.Tensor
        ``(B, C, Y, X)`` or ``(B, C, Z, Y, X)``.
    roi_size : int or sequence of int
        Tile size per spatial axis; values ``<= 0`` or larger than the image mean "whole axis".
    predictor : callable
        ``predictor(tiles, **kwargs) -> (n, C_out, *roi)``; must keep the spatial size.
    sw_batch_size : int
        Tiles per predictor call.
    overlap : float in [0, 1)
        Fraction of the tile shared with its neighbour along each axis.
    mode : {"gaussian", "linear", "constant"}
        Blending weights.
    sigma_scale : float
        Gaussian sigma as a fraction of the tile size.
    margin : int
        Voxels at each interior tile side given zero weight (discarded); must leave tiles overlapping by at
        least ``2 * margin`` (the stride is reduced when needed).
    progress : bool
        Show a progress bar over tile batches.
    out_device : torch.device, optional
        Where the output is accumulated (default: the input's device).
    **kwargs
        Passed to ``predictor`` (e.g. ``t=`` for a time-conditioned network).

    Returns
    -------
    torch.Tensor
        ``(B, C_out, *spatial)`` on ``out_device``.
    """
    roi, positions = _tile_grid(inputs, roi_size, overlap, margin)
    margin = int(margin)
    out_device = torch.device(out_device) if out_device is not None else inputs.device
    base = importance_map(roi, mode, sigma_scale=sigma_scale, device=out_device)
    with _tile_progress(inputs.shape[0] * len(positions), progress) as advance:
        outs = [
            _blend_sample(
                inputs, b, predictor, kwargs, positions, roi, base, margin, sw_batch_size, out_device, advance
            )
            for b in range(inputs.shape[0])
        ]
    return torch.stack(outs, 0)


def tiled_apply(image, fn, *, tile=512, overlap=0.25, mode="gaussian", margin=0, batch=4, progress=False):
    """Numpy convenience: apply ``fn`` (tensor ``(n, 1, *roi)`` → same shape) to a 2D/3D array in tiles."""
    arr = np.asarray(image, dtype=np.float32)
    x = torch.from_numpy(arr)[None, None]
    with torch.no_grad():
        y = sliding_window_inference(
            x, tile, fn, sw_batch_size=batch, overlap=overlap, mode=mode, margin=margin, progress=progress
        )
    return y[0, 0].cpu().numpy()

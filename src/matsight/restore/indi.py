"""InDI's sampler (Inversion by Direct Iteration, Delbracio & Milanfar 2023): from the LQ ``y`` to ``x̂_0``.

Notation of the InDI paper (:mod:`matsight.restore.losses` has the path and the training objective): ``x`` is
the HQ image, ``y`` the LQ image upscaled onto the HQ grid, ``F(x_t, t)`` the trained network. Sampling walks
back from ``x̂_1 = y`` in ``N`` steps of ``δ = 1/N``:

    x̂_{t−δ} = (δ/t)·F(x̂_t, t) + (1 − δ/t)·x̂_t,

the last step (``t = δ``) returning ``F(x̂_δ, δ)`` (:func:`indi_sample`). ``N = 1`` is plain one-step
regression ``F(y, 1)`` (the MMSE estimate; blurry); larger ``N`` trades distortion for sharper, more realistic
detail (the 4D nano-tomography paper found 7–10 steps best). With a constant ``ε`` the sampler's extra noise
term ``(t−δ)·sqrt(ε²_{t−δ} − ε²_t)·ζ`` is zero; only the start ``x̂_1 = y + ε·η`` would be noisy. Enhancement,
validation and the automatic step count deliberately start from ``x̂_1 = y`` (``eps=0``), so the same input
always gives the same output; the noisy start is available through ``eps=``.

:func:`sample_image` runs the sampler on numpy slices, in tiles for large ones.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .._errors import InputError
from ..nn.tiling import sliding_window_inference

log = logging.getLogger(__name__)

__all__ = ["indi_sample", "sample_image", "time_grid"]


def time_grid(steps):
    """The times ``1, 1 − δ, …, δ`` at which the network is evaluated for ``steps`` = N (δ = 1/N)."""
    steps = _check_steps(steps)
    return [(steps - i) / steps for i in range(steps)]


def _check_steps(steps):
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise InputError(f"steps must be a positive integer (e.g. 8; 1 = one-step regression), got {steps!r}")
    return int(steps)


def indi_sample(predict, y, *, steps, eps=0.0, generator=None, callback=None):
    """Run the ``N``-step InDI sampler from ``y``.

    Parameters
    ----------
    predict : callable
        ``predict(x_t, t) -> x̂`` with ``t`` a Python float (the network, or a tiled wrapper around it).
    y : torch.Tensor
        Degraded input(s) on the HQ grid, any shape ``predict`` accepts.
    steps : int
        ``N`` ≥ 1.
    eps : float
        Start from ``y + ε·η`` (the start of the path that training with a constant ``ε`` sees). The package's
        callers (enhancement, validation, the automatic step count) keep the default 0 on purpose: a
        deterministic, noise-free start ``y``, so results are reproducible.
    callback : callable, optional
        ``callback(i, t, x)`` after each step.

    Returns
    -------
    torch.Tensor
        ``x̂_0``.
    """
    steps = _check_steps(steps)
    delta = 1.0 / steps
    x = y
    if eps:
        x = y + eps * torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
    for i, t in enumerate(time_grid(steps)):
        f = predict(x, t)
        r = delta / t  # = 1 at the last step: the result is F(x̂_δ, δ) exactly
        x = f if i == steps - 1 else r * f + (1.0 - r) * x
        if callback is not None:
            callback(i, t, x)
    return x


def _dihedral(x, k, inverse=False):
    # the k-th of the 8 flips/rotations of the square on the last two axes (or its inverse)
    flip, rot = k // 4, k % 4
    if inverse:
        x = torch.rot90(x, -rot, dims=(-2, -1))
        return torch.flip(x, dims=(-1,)) if flip else x
    x = torch.flip(x, dims=(-1,)) if flip else x
    return torch.rot90(x, rot, dims=(-2, -1))


def sample_image(
    net,
    y,
    *,
    steps,
    tile=1024,
    overlap=0.25,
    batch=4,
    eps=0.0,
    seed=0,
    device=None,
    ensemble=False,
    context=None,
):
    """Enhance 2D slices (numpy, normalised to [−1, 1], on the HQ grid) with the ``N``-step sampler.

    Slices larger than ``tile`` are processed in overlapping tiles at every step (Gaussian blending), so
    memory does not grow with the slice size.

    Parameters
    ----------
    net : InDINet
    y : ndarray
        ``(Y, X)`` or a stack ``(B, Y, X)`` of slices.
    steps : int
    tile, overlap, batch
        Tiling for slices bigger than ``tile``; ``batch`` tiles or slices per network call.
    eps, seed
        Noisy start ``y + ε·η`` (:func:`indi_sample`) and its random seed; the default ``eps=0``, which
        enhancement and validation keep on purpose, starts deterministically from ``y``.
    ensemble : bool
        At every step, average the network's prediction over the 8 flips and rotations of the slice
        (geometric self-ensemble: the same estimator with less of its variance, at 8× the time).
    context : ndarray, optional
        The neighbouring LQ slices of each slice for a 2.5D network: ``(2·context, Y, X)`` for one slice,
        ``(B, 2·context, Y, X)`` for a stack (:func:`context_slices`; same grid and normalisation as ``y``).

    Returns
    -------
    ndarray of float32, same shape as ``y``.
    """
    arr, ctx, squeeze = _as_stack(y, context)
    if device is None:
        device = next(net.parameters()).device
    net.eval()
    x = torch.from_numpy(arr)[:, None].to(device)
    c = None if ctx is None else torch.from_numpy(ctx).to(device)
    big = max(arr.shape[1:]) > tile
    predict = _predictor(net, c, big=big, tile=tile, overlap=overlap, batch=batch, ensemble=ensemble)
    gen = torch.Generator(device=device).manual_seed(int(seed)) if eps else None
    with torch.inference_mode():
        out = indi_sample(predict, x, steps=steps, eps=eps, generator=gen)
    out = out[:, 0].float().cpu().numpy()
    return out[0] if squeeze else out


def _as_stack(y, context):
    """``(slices (B, Y, X), context (B, 2k, Y, X) or None, squeeze)`` as float32, checked."""
    arr = np.ascontiguousarray(y, dtype=np.float32)
    if arr.ndim not in (2, 3):
        raise InputError(f"sample_image needs a 2D slice or a (B, Y, X) stack, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError("the input contains NaN/inf values; fill them (e.g. np.nan_to_num) before enhancing")
    squeeze = arr.ndim == 2
    if squeeze:
        arr = arr[None]
    ctx = None
    if context is not None:
        ctx = np.ascontiguousarray(context, dtype=np.float32)
        ctx = ctx[None] if squeeze else ctx
        if ctx.ndim != 4 or ctx.shape[0] != arr.shape[0] or ctx.shape[2:] != arr.shape[1:]:
            raise InputError(
                f"context {np.shape(context)} does not match the slices {np.shape(y)}; give "
                "(2·context, Y, X) per slice"
            )
    return arr, ctx, squeeze


def _predictor(net, c, *, big, tile, overlap, batch, ensemble):
    """``predict(x_t, t) -> F(x_t, t)`` over a stack: ``batch`` slices (or tiles, when ``big``) per call;
    with ``ensemble``, averaged over the 8 flips and rotations of the input (geometric self-ensemble).
    """

    def net_z(z, t):
        # the LQ context rides along as extra channels, so tiles and flips treat it like the slice
        return net(z, t) if z.shape[1] == 1 else net(z[:, :1], t, cond=z[:, 1:])

    def predict_once(z, t):
        if big:
            return sliding_window_inference(z, tile, net_z, sw_batch_size=batch, overlap=overlap, t=t)
        out = [net_z(z[i : i + batch], t) for i in range(0, z.shape[0], batch)]
        return torch.cat(out, 0)

    def predict(xt, t):
        z = xt if c is None else torch.cat([xt, c], 1)
        if not ensemble:
            return predict_once(z, t)
        acc = sum(_dihedral(predict_once(_dihedral(z, k), t), k, inverse=True) for k in range(8))
        return acc / 8

    return predict

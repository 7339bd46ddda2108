"""InDI (Inversion by Direct Iteration, Delbracio & Milanfar 2023): training target, loss and sampler.

Notation of the InDI paper (and ``shared/REFERENCE.md``): ``x`` is the high-quality (HQ) image, ``y`` the
low-quality (LQ) image upscaled onto the HQ grid. The degradation path is

    x_t = (1 − t)·x + t·y  (+ t·ε·η, η ~ N(0, 1)),     t ∈ [0, 1],

so ``x_0 = x`` and ``x_1 = y``. A network ``F(x_t, t)`` is trained to predict the clean ``x`` from any
point of the path, with ``t`` drawn from the mixture ``1/(1+a)·U[0, 1] + a/(1+a)·δ(t − 1)`` (mass at
``t = 1`` so the first sampling step, the hardest, is well trained). Sampling walks back from ``x̂_1 = y``
in ``N`` steps of ``δ = 1/N``:

    x̂_{t−δ} = (δ/t)·F(x̂_t, t) + (1 − δ/t)·x̂_t,

the last step (``t = δ``) returning ``F(x̂_δ, δ)``. ``N = 1`` is plain one-step regression ``F(y, 1)``
(the MMSE estimate; blurry); larger ``N`` trades distortion for sharper, more realistic detail (the 4D
nano-tomography paper found 7–10 steps best). With a constant ``ε`` the sampler's extra noise term
``(t−δ)·sqrt(ε²_{t−δ} − ε²_t)·ζ`` is zero; only the start ``x̂_1 = y + ε·η`` would be noisy. Enhancement,
validation and the automatic step count deliberately start from ``x̂_1 = y`` (``eps=0``), so the same input
always gives the same output; the noisy start is available through ``eps=``.

The network can give ``F`` in two equivalent ways (``RestoreConfig.prediction``): ``"clean"`` outputs ``x̂``
(the paper); ``"residual"`` outputs the degradation ``d̂ ≈ y − x`` and ``F = x_t − t·d̂`` (since
``x_t − x = t·(y − x)``), so ``F → x_t`` as ``t → 0`` and an imperfect net cannot blur the detail the first
steps restored. The loss is the same; ``N = 1`` is still ``F(y, 1) = y − d̂``.

The loss is the reverse Huber ("berHu") loss of the nano-tomography paper: MAE for |error| ≤ c = 0.5 and,
above it, the MSE branch ``(e² + c²)/(2c)``, which meets the MAE branch with equal value and slope at ``c``
(the reverse of torch's ``HuberLoss``, which is quadratic near zero).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "InDINet",
    "build_network",
    "sample_t",
    "degrade_path",
    "reverse_huber",
    "indi_loss",
    "indi_sample",
    "sample_image",
    "time_grid",
    "context_slices",
]


class InDINet(nn.Module):
    """The InDI denoiser ``F(x_t, t)``: a time-conditioned :class:`~matsight.nn.unet.UNet`, optionally run
    on a
    ``s × s`` space-to-depth rearrangement of the image (lossless; ``s = 1`` is the paper's full-resolution
    net).

    Input and output are ``(B, 1, Y, X)`` in [−1, 1]; any ``Y, X`` (padded by replication to a multiple of
    ``s``
    and cropped back).
    """

    def __init__(self, config):
        super().__init__()
        from ..nn.unet import UNet

        self.s = int(config.space_to_depth)
        self.residual = config.prediction == "residual"
        self.context = int(config.context)
        # a tanh output spans [-1, 1]; the residual y - x of two [-1, 1] images spans [-2, 2]
        self.gain = 2.0 if self.residual and config.output_activation == "tanh" else 1.0
        self.unet = UNet(**config.unet_kwargs())

    def forward(self, x, t, cond=None):
        """``F(x_t, t)`` for ``(B, 1, Y, X)`` inputs and one ``t`` per item (or one for all).

        ``cond``: ``(B, 2·context, Y, X)`` neighbouring LQ slices for a network with ``context`` > 0 (2.5D),
        concatenated to ``x_t`` as extra input channels; they stay LQ along the whole InDI path.
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise InputError(f"InDINet expects (batch, 1, Y, X) tensors, got shape {tuple(x.shape)}")
        want = 2 * self.context
        got = 0 if cond is None else cond.shape[1]
        if got != want or (cond is not None and cond.shape[-2:] != x.shape[-2:]):
            raise InputError(
                f"this network takes {want} neighbouring LQ slices as context, got "
                f"{'none' if cond is None else tuple(cond.shape)}"
            )
        z = x if cond is None else torch.cat([x, cond], 1)
        s = self.s
        if s == 1:
            out = self.unet(z, t=t)
        else:
            h, w = x.shape[-2:]
            ph, pw = (-h) % s, (-w) % s
            z = F.pad(z, (0, pw, 0, ph), mode="replicate") if (ph or pw) else z
            out = F.pixel_shuffle(self.unet(F.pixel_unshuffle(z, s), t=t), s)[..., :h, :w]
        if not self.residual:
            return out
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        return x - tt * (self.gain * out)


def context_slices(stack, index, *, context, step=1):
    """The ``2·context`` neighbours of slice ``index`` in a ``(S, Y, X)`` stack, ``step`` slices apart.

    Order ``index − context·step, …, index − step, index + step, …, index + context·step``; indices past the
    ends are clamped (the edge slice repeats), as a volume's border would be padded.

    Returns
    -------
    ndarray of shape ``(2·context, Y, X)``.
    """
    n = stack.shape[0]
    offsets = [-j * step for j in range(context, 0, -1)] + [j * step for j in range(1, context + 1)]
    return np.stack([stack[min(max(index + o, 0), n - 1)] for o in offsets]) if offsets else stack[:0]


def build_network(config):
    """Instantiate :class:`InDINet` for a :class:`~matsight.restore.config.RestoreConfig`."""
    return InDINet(config)


# ------------------------------------------------------------------------------------------ training target
def sample_t(n, *, a=0.5, generator=None, device="cpu"):
    """Draw ``n`` times from ``1/(1+a)·U[0, 1] + a/(1+a)·δ(t − 1)``.

    Parameters
    ----------
    n : int
    a : float
        Relative weight of the point mass at ``t = 1`` (0: uniform only).
    generator : torch.Generator, optional
    """
    if a < 0:
        raise InputError(f"the mass weight a must be >= 0, got {a}")
    u = torch.rand(n, generator=generator, device=device)
    at_one = torch.rand(n, generator=generator, device=device) < a / (1.0 + a)
    return torch.where(at_one, torch.ones_like(u), u)


def degrade_path(x, y, t, *, eps=0.0, generator=None):
    """``x_t = (1 − t)·x + t·y + t·ε·η`` with one ``t`` per batch item (broadcast over the other axes)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.ndim - 1)))
    xt = (1 - t) * x + t * y
    if eps:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        xt = xt + t * eps * noise
    return xt


def reverse_huber(pred, target, *, c=0.5, weight=None):
    """Mean reverse-Huber loss: ``|e|`` for ``|e| ≤ c``, ``(e² + c²)/(2c)`` above (continuous, C¹ at ``c``).

    ``weight`` (same shape, e.g. a field-of-view mask) gives a weighted mean.
    """
    e = (pred - target).abs()
    per = torch.where(e <= c, e, (e * e + c * c) / (2 * c))
    if weight is None:
        return per.mean()
    weight = weight.to(per.dtype)
    return (per * weight).sum() / weight.sum().clamp_min(1e-8)


def indi_loss(net, x, y, *, config, generator=None, weight=None, cond=None):
    """One InDI training loss on a batch: draw ``t``, form ``x_t``, predict ``x``, reverse-Huber (or
    L1/L2). ``cond``: the neighbouring LQ slices of a 2.5D network.
    """
    t = sample_t(x.shape[0], a=config.t_mass_at_one, generator=generator, device=x.device)
    xt = degrade_path(x, y, t, eps=config.eps, generator=generator)
    pred = net(xt, t, cond=cond)
    if config.loss == "reverse_huber":
        return reverse_huber(pred, x, c=config.huber_c, weight=weight)
    per = (pred - x).abs() if config.loss == "l1" else (pred - x).square()
    if weight is None:
        return per.mean()
    return (per * weight).sum() / weight.sum().clamp_min(1e-8)


# -------------------------------------------------------------------------------------------------- sampler
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
    from ..nn.tiling import sliding_window_inference

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
    if device is None:
        device = next(net.parameters()).device
    net.eval()
    x = torch.from_numpy(arr)[:, None].to(device)
    c = None if ctx is None else torch.from_numpy(ctx).to(device)
    big = max(arr.shape[1:]) > tile

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

    gen = torch.Generator(device=device).manual_seed(int(seed)) if eps else None
    with torch.inference_mode():
        out = indi_sample(predict, x, steps=steps, eps=eps, generator=gen)
    out = out[:, 0].float().cpu().numpy()
    return out[0] if squeeze else out

"""The degradation inside SuperRes's voxel-wise loss: the generated volume taken the way the LR volume was.

Paper (Methods, Algorithm 1): take the pore channel and the channels of the HR phases that the LR volume
shows, Gaussian-blur them (odd kernel ``k = ceil(sf)`` or ``ceil(sf) - 1``, ``σ = 0.3((k-1)/2 - 1) + 0.8``;
rule in :func:`matsight.data.degrade.blur_kernel`), downsample trilinearly by ``1/sf``, turn the result into a
near one-hot map with a low-temperature softmax (``T = 0.01``) and take the MSE against the LR one-hot volume.
HR phases the LR volume does not show (NMC binder in XCT) are added to the LR phase they were merged into when
the LR data were taken — pore, by default — before the blur, as the paper's LR simulation merges them (the
reference code drops them instead, which makes the true structure itself violate the loss; see
:class:`matsight.fuse.config.FuseConfig.vw_unseen`).
The term enters the generator loss as ``10 · MSE`` only when ``MSE > 0.005``. For under-*sampled* LR data
(SEM with a coarse raster step, paper case 3) there is no blur and no softmax: every ``sf``-th voxel is
compared directly ("nearest"). The separator variant (``material_only``) compares material channels only and
does not penalise extra material where the LR volume shows pore.

The numpy degradation used to *make* LR data from a 3D ground truth is :func:`matsight.data.degrade.degrade`;
this module is the differentiable torch side used during training; the loss itself is
:func:`matsight.fuse.losses.voxelwise_loss`.

Implementation notes: the blur is applied as three 1D convolutions (identical to the 3D product kernel)
with replicate padding — the reference pads with zeros, which darkens the faces of every training cube;
inside the cube both agree.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from ..data.degrade import blur_kernel

__all__ = ["blur_rule", "gaussian_weights", "blur", "downsample"]


def blur_rule(scale):
    """``(k, sigma)`` of the paper's blur at scale factor ``scale`` (rule: :mod:`matsight.data.degrade`)."""
    k, sigma = blur_kernel(scale)
    return int(k), float(sigma)


def gaussian_weights(scale, *, dtype=torch.float32, device="cpu"):
    """Normalised 1D Gaussian weights of length ``k`` (``[1.]`` when ``k == 1``: no blur)."""
    k, sigma = blur_rule(scale)
    t = torch.arange(k, dtype=torch.float64) - (k // 2)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return (w / w.sum()).to(dtype=dtype, device=device)


def blur(x, scale):
    """Separable Gaussian blur of every channel of ``x`` (``B, C, Z, Y, X``), replicate padding."""
    w = gaussian_weights(scale, dtype=x.dtype, device=x.device)
    k = w.numel()
    if k == 1:
        return x
    b, c = x.shape[:2]
    h = x.reshape(b * c, 1, *x.shape[2:])
    r = k // 2
    for axis in range(3):
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = r  # F.pad lists the last axis first
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = k
        h = F.conv3d(F.pad(h, pad, mode="replicate"), w.view(shape))
    return h.reshape(b, c, *h.shape[2:])


def _lr_shape(hr_shape, d):
    # output edge n·64/d ↔ LR edge n·d/64 (exact for the sizes training and tiling use)
    return [round(n * d / 64) for n in hr_shape]


def downsample(probs, *, channels, d, mode="resolve", temperature=0.01):
    """Degrade generated phase probabilities to the LR grid.

    Parameters
    ----------
    probs : torch.Tensor
        ``(B, n, Z, Y, X)`` softmax output of the generator.
    channels : sequence of int or of sequences of int
        HR channel compared with each LR phase, pore (0) first; a sequence sums those HR channels (the HR
        phases merged into that LR phase, e.g. ``[[0, 2], 1]``: pore + binder, active).
    d : int
        Scale factor ``sf = 64/d``.
    mode : {"resolve", "sample"}
        ``"resolve"``: blur, trilinear downsample, softmax(x/T). ``"sample"``: every sf-th voxel, no softmax.
    temperature : float
        Softmax temperature ``T`` (paper: 0.01).

    Returns
    -------
    torch.Tensor
        ``(B, len(channels), z, y, x)`` on the LR grid.
    """
    x = torch.stack([_channel_sum(probs, c) for c in channels], 1)
    lr_shape = _lr_shape(x.shape[2:], d)
    if mode == "sample":
        for axis, n in enumerate(lr_shape):
            idx = torch.arange(n, device=x.device) * 64 // d  # nearest: voxel floor(i·sf)
            x = x.index_select(2 + axis, idx)
        return x
    x = blur(x, 64 / d)
    x = F.interpolate(x, size=lr_shape, mode="trilinear", align_corners=False)
    return torch.softmax(x / temperature, dim=1)


def _channel_sum(probs, group):
    if isinstance(group, numbers.Integral):
        return probs[:, int(group)]
    return probs[:, list(group)].sum(1)

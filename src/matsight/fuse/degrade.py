"""The voxel-wise loss of SuperRes: degrade the generated volume the way the LR volume was taken, compare.

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
this module is the differentiable torch side used during training.

Implementation notes: the blur is applied as three 1D convolutions (identical to the 3D product kernel)
with replicate padding — the reference pads with zeros, which darkens the faces of every training cube;
inside the cube both agree.
"""

from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

__all__ = ["blur_rule", "gaussian_weights", "blur", "downsample", "voxelwise_loss", "voxelwise_term"]


def blur_rule(scale):
    """``(k, sigma)`` of the paper's blur at scale factor ``scale`` (rule: :mod:`matsight.data.degrade`)."""
    from ..data.degrade import blur_kernel

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


def voxelwise_loss(
    probs, lr_onehot, *, channels, d, mode="resolve", temperature=0.01, material_only=False, margin=0
):
    """MSE between the degraded generator output and the LR one-hot volume (paper's voxel-wise loss).

    ``lr_onehot`` is ``(B, m, z, y, x)`` with channel 0 = pore; ``channels`` picks the matching HR channels.
    The MSE over the ``m`` channels is scaled by ``m/2``, as the reference code does: a mismatched LR voxel
    costs ``2/m`` in a plain MSE (two one-hot channels wrong by 1), so the loss is the fraction of mismatched
    LR voxels whatever ``m``, and the 0.005 threshold means 0.5% for two LR phases and for three alike.
    With ``material_only`` (paper's separator mode) only material channels count, and only where the LR
    volume has material (unscaled, as in the reference). ``margin`` LR voxels per face are left out
    (degraded with their neighbours, not compared): the region no critic judges, see
    ``FuseConfig.vw_region``.

    Returns
    -------
    torch.Tensor
        Scalar loss; for a one-hot degraded output (not ``material_only``), the fraction of mismatched LR
        voxels.
    """
    down = downsample(probs, channels=channels, d=d, mode=mode, temperature=temperature)
    if margin:
        inner = (slice(None), slice(None)) + (slice(margin, -margin),) * 3
        down, lr_onehot = down[inner], lr_onehot[inner]
    if material_only:
        lr = lr_onehot[:, 1:]
        return F.mse_loss(down[:, 1:] * lr, lr)
    # ×m/2: the share of mismatched LR voxels for any number m of LR phases (reference "standardize")
    return F.mse_loss(down, lr_onehot) * (lr_onehot.shape[1] / 2)


def voxelwise_term(loss, *, threshold=0.005, coefficient=10.0):
    """``coefficient · loss`` if ``loss > threshold`` else 0 (the paper's 0.5% slack at blocky LR edges)."""
    if float(loss.detach()) > threshold:
        return coefficient * loss
    return loss.new_zeros(())

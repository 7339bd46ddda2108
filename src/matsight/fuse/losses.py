"""The SuperRes objective (paper, Methods and Algorithm 1): each equation once, in the paper's notation.

The generator ``G`` maps the one-hot low-res volume ``lr`` plus a noise channel to phase probabilities
``sr = G(lr)`` on the fine grid; the critics ``D`` score 2D slices. Training minimises

- the **critic loss** (WGAN-GP), each critic step:
  ``l_D = D(sr_slices) − D(hr) + λ·l_gp``, ``l_gp = E[(‖∇D(x̂)‖₂ − 1)²]`` on interpolates
  ``x̂ = α·hr + (1 − α)·sr_slices``, ``α ~ U(0, 1)``, ``λ = 10`` (:func:`critic_loss`,
  :func:`gradient_penalty`);
- the **generator loss**, every ``g_every``-th iteration: ``l_G = −D(sr_slices) + c·l_vw``, ``c = 10``,
  the voxel-wise term counted only when ``l_vw > b = 0.005`` (:func:`generator_loss`,
  :func:`adversarial_loss`, :func:`voxelwise_term`);
- the **voxel-wise loss** ``l_vw = MSE(lr, σ(sr))``, where ``σ`` degrades the generated volume the way the
  LR volume was taken (blur, trilinear ↓sf, softmax at ``T = 0.01``:
  :func:`matsight.fuse.degrade.downsample`) (:func:`voxelwise_loss`).

``sr_slices`` are the 2D planes normal to each axis of the edge-cropped generated cube (:func:`slices`), as
the critics see them (:func:`critic_view`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .degrade import downsample

__all__ = [
    "adversarial_loss",
    "critic_loss",
    "critic_view",
    "generator_loss",
    "gradient_penalty",
    "slices",
    "voxelwise_loss",
    "voxelwise_term",
]


# ------------------------------------------------------------------------------------------ what D sees
def slices(vol, axis, crop, k=None, gen=None):
    """Edge-cropped ``(B, n, S, S, S)`` volume → ``(B·k, n, S, S)`` slices normal to ``axis``.

    ``crop`` voxels are cut from every face; ``k`` random slices per volume (all when None), drawn with the
    torch generator ``gen``.
    """
    if crop:
        vol = vol[:, :, crop:-crop, crop:-crop, crop:-crop]
    b, n, s = vol.shape[:3]
    v = vol.movedim(2 + axis, 1)  # (B, S_axis, n, S, S)
    if k is not None and k < s:
        idx = torch.randperm(s, generator=gen)[:k].to(vol.device)
        v = v.index_select(1, idx)
    return v.reshape(-1, n, v.shape[-2], v.shape[-1])


def critic_view(probs, kind="soft"):
    """What the critics see of generated phase probabilities ``(B, n, ...)``.

    ``"soft"``: the probabilities themselves (the paper). ``"hard"``: their argmax as one-hot, with the
    probabilities' gradient (straight-through): real slices are one-hot, so a critic shown probabilities can
    score a fake by its softness alone, which measured (benchmarks/README.md) dwarfs what it learns of
    structure.
    """
    if kind == "soft":
        return probs
    hard = torch.zeros_like(probs).scatter_(1, probs.argmax(1, keepdim=True), 1.0)
    return hard + probs - probs.detach()


# ------------------------------------------------------------------------------------------ critic
def gradient_penalty(critic, real, fake, gen):
    """The gradient penalty ``l_gp = E[(‖∇D(x̂)‖₂ − 1)²]``, ``x̂ = α·real + (1 − α)·fake``, ``α ~ U(0, 1)``.

    Real and fake slices are paired in order (the shorter batch sets the count); ``gen`` draws ``α``.
    """
    m = min(len(real), len(fake))
    real, fake = real[:m], fake[:m]
    alpha = torch.rand(m, 1, 1, 1, generator=gen).to(real.device)
    x = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    return ((grad.reshape(m, -1).norm(2, dim=1) - 1) ** 2).mean()


def critic_loss(critic, real, fake, *, gp_lambda=10.0, gen=None):
    """The WGAN-GP critic loss ``l_D = D(sr_slices) − D(hr) + λ·l_gp``.

    Parameters
    ----------
    critic : torch.nn.Module
        The 2D critic ``D``.
    real, fake : torch.Tensor
        ``(N, n, S, S)`` HR crops and generated slices (detached).
    gp_lambda : float
        ``λ`` (paper: 10).
    gen : torch.Generator, optional
        Draws the fakes' pairing with the reals and the interpolation weights ``α``.

    Returns
    -------
    loss, wasserstein, gp : torch.Tensor
        ``l_D``, the critic's Wasserstein estimate ``D(hr) − D(sr_slices)`` and ``l_gp``.
    """
    d_real = critic(real).mean()
    d_fake = critic(fake).mean()
    gp = gradient_penalty(critic, real, fake[torch.randperm(len(fake), generator=gen)], gen)
    return d_fake - d_real + gp_lambda * gp, d_real - d_fake, gp


# ------------------------------------------------------------------------------------------ generator
def adversarial_loss(critics, fake, axes, cfg, gen=None):
    """The generator's Wasserstein term ``−D(sr_slices)``: minus the critics' mean score over
    the slices of all ``axes``.

    A mean, not a sum, over the axes: the paper scores the slices of all three planes as one batch,
    ``l_G = −D(sr_slices) + c·l_vw`` (its Algorithm 1; the reference code adds ``c·l_vw`` once per axis to a
    per-axis sum, the same ratio), so the voxel-wise coefficient keeps its weight whatever the number of axes.
    """
    t = cfg.training
    total = 0.0
    for a in axes:
        critic = critics[a if len(critics) > 1 else 0]
        total = total - critic(slices(fake, a, t.edge_crop, t.slices_per_volume, gen)).mean()
    return total / len(axes)


def voxelwise_loss(
    probs, lr_onehot, *, channels, d, mode="resolve", temperature=0.01, material_only=False, margin=0
):
    """The voxel-wise loss ``l_vw = MSE(lr, σ(sr))``.

    The generated probabilities are degraded to the LR grid (:func:`matsight.fuse.degrade.downsample`) and
    compared with the LR one-hot volume ``lr_onehot`` ``(B, m, z, y, x)`` (channel 0 = pore); ``channels``
    picks the matching HR channels. The MSE over the ``m`` channels is scaled by ``m/2``, as the reference
    code does: a mismatched LR voxel costs ``2/m`` in a plain MSE (two one-hot channels wrong by 1), so the
    loss is the fraction of mismatched LR voxels whatever ``m``, and the 0.005 threshold means 0.5% for two
    LR phases and for three alike. With ``material_only`` (paper's separator mode) only material channels
    count, and only where the LR volume has material (unscaled, as in the reference). ``margin`` LR voxels
    per face are left out (degraded with their neighbours, not compared): the region no critic judges, see
    ``FuseConfig.training.vw_region``.

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
    """``c·l_vw`` if ``l_vw > b`` else 0.

    ``b`` = ``threshold`` (paper 0.005, a 0.5% slack at blocky LR edges), ``c`` = ``coefficient`` (paper 10).
    """
    if float(loss.detach()) > threshold:
        return coefficient * loss
    return loss.new_zeros(())


def generator_loss(critics, probs, lr_onehot, axes, cfg, gen=None):
    """The generator loss ``l_G = −D(sr_slices) + c·l_vw`` under the settings ``cfg``.

    Returns
    -------
    loss, adversarial, voxelwise : torch.Tensor
        ``l_G``, its Wasserstein term and ``l_vw`` (before threshold and coefficient).
    """
    t = cfg.training
    adv = adversarial_loss(critics, critic_view(probs, t.critic_input), axes, cfg, gen)
    vw = voxelwise_loss(
        probs,
        lr_onehot,
        channels=cfg.lr_channels,
        d=cfg.d,
        mode=cfg.mode,
        temperature=t.vw_temperature,
        material_only=t.material_only_loss,
        margin=cfg.lr_margin if t.vw_region == "judged" else 0,
    )
    return adv + voxelwise_term(vw, threshold=t.vw_threshold, coefficient=t.vw_coefficient), adv, vw

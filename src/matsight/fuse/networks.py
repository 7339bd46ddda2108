"""SuperRes networks: the conditional 3D generator and the 2D slice critic.

Generator (paper Fig. 13, reference implementation): input = one-hot LR crop (pore + LR phases) and one
N(0, 1) noise channel, ``L³`` voxels; output = softmax over the ``n`` HR phases on ``(L·sf)³`` voxels.
3D convolutions k3 with replicate padding, BatchNorm, ReLU; one residual block and a global skip around it;
then the upsampling chain: ×2 trilinear + conv when sf > 4, ConvTranspose3d(k4, s2, p1) when sf > 2, and the
remaining (possibly fractional) factor by trilinear upsampling + conv. Every upsampling stage halves the
channels (never below ``min_width``); a last k3 convolution maps to the ``n`` phases. ``upsampling="resize"``
swaps the transposed convolution for trilinear ×2 + conv, less prone to grid-aligned streaks;
``upsampling="shuffle"`` makes every ×2 stage a sub-pixel convolution (a k3 conv to 8× the channels, then a
3D depth-to-space), initialised by ICNR so that it starts as nearest-neighbour upsampling and has no
checkerboard at the start of training (Shi et al., CVPR 2016; Aitken et al., arXiv:1707.02937).

Critic: 2D convolutions 64-128-256-512-1 with kernels 4,4,4,3,4, stride 2, ReLU, no normalisation. On the
paper's 56² slices the last layer sees a 4×4 map and returns one number; on other slice sizes its kernel
shrinks to the map left and the scores of the remaining map are averaged (a patch critic), so any slice size
≥ 16 works.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from .config import scale_fraction

__all__ = [
    "Generator",
    "Critic",
    "UPSAMPLINGS",
    "build_generator",
    "build_critics",
    "depth_to_space",
    "upsampling_plan",
    "count_parameters",
]

UPSAMPLINGS = ("transpose", "resize", "shuffle")


def upsampling_plan(d, upsampling="transpose"):
    """Stages for ``sf = 64/d``: list of ``("interp2" | "convT" | "shuffle" | "interp", factor)``.

    ``upsampling="transpose"`` is the paper's chain; ``"resize"`` replaces its transposed convolution by
    trilinear ×2 + conv; ``"shuffle"`` makes every ×2 stage a sub-pixel convolution and keeps trilinear +
    conv only for a fractional remainder (``sf = 64/24``: ×2 sub-pixel, then ×4/3 trilinear). The stages
    and their channels are the same in number for the three, so they differ in how they upsample alone.
    At ``sf <= 2`` the paper's chain has no transposed convolution: "transpose" and "resize" coincide.

    Examples
    --------
    >>> [k for k, _ in upsampling_plan(8, "shuffle")]
    ['shuffle', 'shuffle', 'shuffle']
    >>> [(k, str(f)) for k, f in upsampling_plan(24, "transpose")]
    [('convT', '2'), ('interp', '4/3')]
    """
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLINGS)}, got {upsampling!r}")
    sf = scale_fraction(d)
    plan = []
    if sf > 4:
        plan.append(("interp2", Fraction(2)))
    if sf > 2:
        plan.append(("convT" if upsampling == "transpose" else "interp2", Fraction(2)))
    rest = sf / (2 ** len(plan))
    plan.append(("interp", rest))
    if upsampling == "shuffle":
        plan = [("shuffle" if f == 2 else kind, f) for kind, f in plan]
    return plan


def depth_to_space(x, r):
    """3D pixel shuffle: ``(B, C·r³, Z, Y, X)`` → ``(B, C, Z·r, Y·r, X·r)``.

    Channel ``c·r³ + (i·r + j)·r + k`` becomes offset ``(i, j, k)`` inside the ``r³`` block of channel ``c``
    (the 3D form of :func:`torch.nn.functional.pixel_shuffle`).
    """
    b, c, z, y, w = x.shape
    if c % r**3:
        raise ValueError(f"depth_to_space needs channels divisible by {r**3}, got {c}")
    x = x.reshape(b, c // r**3, r, r, r, z, y, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, c // r**3, z * r, y * r, w * r)


def _icnr_(conv, r):
    """ICNR: the ``r³`` sub-pixel outputs of each channel start equal, so the stage starts as
    nearest-neighbour upsampling of one k3 convolution (no checkerboard at initialisation).
    """
    c_out = conv.out_channels // r**3
    proto = _conv3(conv.in_channels, c_out)  # PyTorch's default initialisation, for c_out channels
    with torch.no_grad():
        conv.weight.copy_(proto.weight.repeat_interleave(r**3, dim=0))
        conv.bias.copy_(proto.bias.repeat_interleave(r**3, dim=0))


def _conv3(c_in, c_out):
    return nn.Conv3d(c_in, c_out, 3, padding=1, padding_mode="replicate")


class _ResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1, self.bn1 = _conv3(c, c), nn.BatchNorm3d(c)
        self.conv2, self.bn2 = _conv3(c, c), nn.BatchNorm3d(c)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class _Up(nn.Module):
    """One upsampling stage: (interpolate → conv | transposed conv | conv → depth-to-space) → BN → ReLU."""

    def __init__(self, kind, factor, c_in, c_out):
        super().__init__()
        self.kind, self.factor = kind, Fraction(factor)
        if kind == "convT":
            self.conv = nn.ConvTranspose3d(c_in, c_out, 4, stride=2, padding=1)
        elif kind == "shuffle":
            self.conv = _conv3(c_in, c_out * int(self.factor) ** 3)
            _icnr_(self.conv, int(self.factor))
        else:
            self.conv = _conv3(c_in, c_out)
        self.bn = nn.BatchNorm3d(c_out)

    def forward(self, x):
        if self.kind == "shuffle":
            return F.relu(self.bn(depth_to_space(self.conv(x), int(self.factor))))
        if self.kind != "convT" and self.factor != 1:
            # exact output size (fractional factors: the caller keeps inputs a whole number of q-blocks)
            size = [round(n * self.factor) for n in x.shape[2:]]
            x = F.interpolate(x, size=size, mode="trilinear", align_corners=False)
        return F.relu(self.bn(self.conv(x)))


class Generator(nn.Module):
    """LR one-hot + noise (``B, m+1, L, L, L``) → HR phase probabilities (``B, n, L·sf, L·sf, L·sf``).

    Parameters
    ----------
    in_channels : int
        LR phases (pore included) + 1 noise channel.
    n_phases : int
        HR phases.
    d : int
        Scale factor ``64/d``.
    width : int
        Trunk channels (paper: 128/256/512 for sf ≤ 2/≤ 4/> 4).
    min_width : int
        Floor for the channels of the upsampling stages.
    res_blocks : int
        Residual blocks in the trunk (paper: 1).
    upsampling : {"transpose", "resize", "shuffle"}
        The paper's transposed convolution for the ×2 stage, trilinear ×2 + conv, or sub-pixel convolution
        for every ×2 stage (see :func:`upsampling_plan`).
    """

    def __init__(
        self, in_channels, n_phases, d, *, width=256, min_width=1, res_blocks=1, upsampling="transpose"
    ):
        super().__init__()
        self.d = d
        self.conv_in = _conv3(in_channels, width)
        self.bn_in = nn.BatchNorm3d(width)
        self.res = nn.Sequential(*[_ResBlock(width) for _ in range(res_blocks)])
        stages, c = [], width
        for kind, factor in upsampling_plan(d, upsampling):
            c_out = max(c // 2, min_width)
            stages.append(_Up(kind, factor, c, c_out))
            c = c_out
        self.up = nn.ModuleList(stages)
        self.conv_out = _conv3(c, n_phases)

    def logits(self, x):
        """Pre-softmax output (used by tiled generation to argmax without the softmax)."""
        first = F.relu(self.bn_in(self.conv_in(x)))
        h = first + self.res(first)  # global skip around the residual trunk
        for stage in self.up:
            h = stage(h)
        return self.conv_out(h)

    def forward(self, x):
        """Phase probabilities ``(B, n, Z, Y, X)`` (softmax over the HR phases)."""
        return torch.softmax(self.logits(x), dim=1)


class Critic(nn.Module):
    """2D WGAN critic on ``(B, n, S, S)`` slices; returns one score per slice (mean over the last map)."""

    def __init__(self, n_phases, slice_size, *, widths=(64, 128, 256, 512)):
        super().__init__()
        chans = [n_phases, *widths]
        kernels, pads = (4, 4, 4, 3), (1, 1, 1, 1)
        layers, s = [], slice_size
        for i in range(4):
            layers.append(nn.Conv2d(chans[i], chans[i + 1], kernels[i], stride=2, padding=pads[i]))
            s = (s + 2 * pads[i] - kernels[i]) // 2 + 1
        if s < 1:
            raise ValueError(f"slice size {slice_size} is too small for the critic (need ≥ 16)")
        self.convs = nn.ModuleList(layers)
        self.last = nn.Conv2d(chans[-1], 1, min(4, s), stride=2, padding=0)

    def forward(self, x):
        """One score per slice of ``x`` ``(B, n, S, S)``."""
        for conv in self.convs:
            x = F.relu(conv(x))
        return self.last(x).mean(dim=(1, 2, 3))


def build_generator(cfg):
    """Generator for a :class:`~matsight.fuse.config.FuseConfig` whose phase counts are set."""
    return Generator(
        cfg.n_lr_phases + 1,
        cfg.n_hr_phases,
        cfg.d,
        width=cfg.trunk_width,
        min_width=cfg.model.gen_min_width,
        res_blocks=cfg.model.gen_res_blocks,
        upsampling=cfg.model.upsampling,
    )


def build_critics(cfg):
    """One critic per slicing axis (anisotropic or ``model.shared_critic=False``), else one shared critic."""
    return nn.ModuleList(
        Critic(cfg.n_hr_phases, cfg.slice_size, widths=tuple(cfg.model.critic_widths))
        for _ in range(cfg.n_axes_critics)
    )


def count_parameters(module):
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)

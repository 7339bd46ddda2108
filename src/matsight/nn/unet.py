"""A configurable 2D/3D U-Net shared by the restoration (InDI) and HRTEM spot-detection parts.

Defaults follow the InDI nano-tomography paper (Fig. 1E and Methods): Swish activations, 7×7 first and last
convolutions, residual blocks into which a sin/cos time embedding is added through a dense layer, dilated plus
non-dilated convolutions in the bottleneck, a sub-pixel convolution (pixel shuffle) as the last
up-sampling and a tanh output. Every switch can be turned off to get a plain segmentation U-Net
(ReLU, sigmoid, no time input).

The network accepts any spatial size: :meth:`UNet.forward` pads the input to a multiple of
``2**depth`` and crops the output back, so odd-sized slices and tiles need no special handling by callers.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._errors import InputError

__all__ = ["UNet", "sinusoidal_embedding", "pixel_shuffle"]


def sinusoidal_embedding(t, dim, *, max_period=10000.0, scale=1000.0):
    """Sin/cos positional embedding of (continuous) times ``t`` → ``(B, dim)``.

    ``t`` in [0, 1] is multiplied by ``scale`` first so that neighbouring InDI times get distinct codes
    (the usual diffusion convention for continuous time).
    """
    t = t.reshape(-1).float() * scale
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


def pixel_shuffle(x, factor, spatial_dims):
    """Sub-pixel rearrangement ``(B, C·f^d, *S) → (B, C, *(S·f))`` for ``d`` = 2 or 3 spatial dims."""
    if spatial_dims == 2:
        return F.pixel_shuffle(x, factor)
    b, c, d, h, w = x.shape
    oc = c // factor**3
    x = x.reshape(b, oc, factor, factor, factor, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, oc, d * factor, h * factor, w * factor)


def _act(name):
    name = name.lower()
    if name in ("swish", "silu"):
        return nn.SiLU()
    if name == "relu":
        return nn.ReLU()
    if name == "gelu":
        return nn.GELU()
    if name in ("leaky_relu", "lrelu"):
        return nn.LeakyReLU(0.2)
    raise InputError(f"unknown activation {name!r}; use swish, relu, gelu or leaky_relu")


def _norm(kind, channels, spatial_dims):
    if kind in (None, "none"):
        return nn.Identity()
    if kind == "group":
        groups = math.gcd(8, channels)
        return nn.GroupNorm(groups, channels)
    if kind == "batch":
        return (nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if spatial_dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    raise InputError(f"unknown norm {kind!r}; use none, group, batch or instance")


class _ResBlock(nn.Module):
    """Pre-activation residual block; the time embedding is projected by a dense layer and added."""

    def __init__(self, cin, cout, *, dims, act, norm, temb_dim, dropout, dilation=1, padding_mode="zeros"):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.norm1 = _norm(norm, cin, dims)
        self.conv1 = conv(cin, cout, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode)
        self.temb = nn.Linear(temb_dim, cout) if temb_dim else None
        self.norm2 = _norm(norm, cout, dims)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv(cout, cout, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode)
        self.skip = conv(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = _act(act)

    def forward(self, x, temb=None):
        h = self.conv1(self.act(self.norm1(x)))
        if self.temb is not None:
            e = self.temb(self.act(temb))
            h = h + e.reshape(*e.shape, *([1] * (h.ndim - 2)))
        h = self.conv2(self.drop(self.act(self.norm2(h))))
        return self.skip(x) + h


class UNet(nn.Module):
    """U-Net with optional time conditioning (for InDI / diffusion-style models).

    Parameters
    ----------
    spatial_dims : {2, 3}
        2D (``B, C, Y, X``) or 3D (``B, C, Z, Y, X``) convolutions.
    in_channels, out_channels : int
        Channels of input and output.
    features : sequence of int
        Channels per resolution level; ``len(features) - 1`` down-samplings by 2. The paper uses 64
        base filters doubling per level, e.g. ``(64, 128, 256, 512)``.
    time_embedding : int or False
        Size of the sin/cos time embedding; False for a network without a time input.
    activation : {"swish", "relu", "gelu", "leaky_relu"}
    first_kernel, last_kernel : int
        Kernel sizes of the first and last convolution (odd; 7 in the paper).
    dilated_bottleneck : bool
        Bottleneck = residual blocks with dilation 1, 2, 4 (wide context without more
        down-sampling), otherwise two plain residual blocks.
    subpixel_upsample : bool
        The last up-sampling (to full resolution) is a convolution to ``2**d ×`` channels
        followed by pixel shuffle; the other up-samplings are nearest-neighbour + convolution.
    output_activation : {"tanh", "sigmoid", None}
    dropout : float
        Dropout inside residual blocks.
    norm : {"none", "group", "batch", "instance"}
        Normalisation in the residual blocks. ``"none"`` (default) keeps the network local, so that tiled
        inference agrees with whole-image inference; statistics-based norms depend on the tile content.
    blocks_per_level : int
        Residual blocks per encoder/decoder level.
    padding_mode : str
        Padding of the 3×3 convolutions (``"zeros"``, ``"reflect"``, ``"replicate"``).

    Examples
    --------
    >>> net = UNet(features=(8, 16, 32), time_embedding=32)
    >>> y = net(torch.zeros(1, 1, 37, 51), t=torch.ones(1))
    >>> tuple(y.shape)
    (1, 1, 37, 51)
    """

    def __init__(
        self,
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        features=(16, 32, 64, 128),
        time_embedding=False,
        activation="swish",
        first_kernel=7,
        last_kernel=7,
        dilated_bottleneck=True,
        subpixel_upsample=True,
        output_activation="tanh",
        dropout=0.0,
        norm="none",
        blocks_per_level=1,
        padding_mode="zeros",
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise InputError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        features = tuple(int(f) for f in features)
        if len(features) < 1 or min(features) < 1:
            raise InputError(f"features must be a non-empty sequence of positive ints, got {features}")
        if first_kernel % 2 == 0 or last_kernel % 2 == 0:
            raise InputError("first_kernel and last_kernel must be odd so that outputs keep the input size")
        if output_activation not in ("tanh", "sigmoid", None, "none"):
            raise InputError(f"output_activation must be tanh, sigmoid or None, got {output_activation!r}")
        self.spatial_dims = spatial_dims
        self.depth = len(features) - 1
        self.temb_dim = int(time_embedding) if time_embedding else 0
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        kw = dict(dims=spatial_dims, act=activation, norm=norm, dropout=dropout, padding_mode=padding_mode)
        td = 4 * self.temb_dim if self.temb_dim else 0

        if self.temb_dim:
            self.time_mlp = nn.Sequential(nn.Linear(self.temb_dim, td), _act(activation), nn.Linear(td, td))
        self.stem = conv(in_channels, features[0], first_kernel, padding=first_kernel // 2)

        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        for i in range(self.depth):
            self.enc.append(
                nn.ModuleList(
                    _ResBlock(features[i], features[i], temb_dim=td, **kw) for _ in range(blocks_per_level)
                )
            )
            self.down.append(conv(features[i], features[i + 1], 3, stride=2, padding=1))

        fb = features[-1]
        dilations = (1, 2, 4) if dilated_bottleneck else (1, 1)
        self.mid = nn.ModuleList(_ResBlock(fb, fb, temb_dim=td, dilation=d, **kw) for d in dilations)

        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(self.depth)):
            cin, cout = features[i + 1], features[i]
            if subpixel_upsample and i == 0:
                f = 2**spatial_dims
                up = nn.Sequential(conv(cin, cout * f, 3, padding=1), _Shuffle(2, spatial_dims))
            else:
                up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(cin, cout, 3, padding=1))
            self.up.append(up)
            blocks = [_ResBlock(2 * cout, cout, temb_dim=td, **kw)]
            blocks += [_ResBlock(cout, cout, temb_dim=td, **kw) for _ in range(blocks_per_level - 1)]
            self.dec.append(nn.ModuleList(blocks))

        self.head_act = _act(activation)
        self.head = conv(features[0], out_channels, last_kernel, padding=last_kernel // 2)
        self.out_act = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}.get(output_activation, nn.Identity())

    def _time(self, t, x):
        if not self.temb_dim:
            return None
        if t is None:
            raise InputError("this U-Net is time-conditioned; pass t (a float or one value per batch item)")
        t = torch.as_tensor(t, dtype=torch.float32, device=x.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(x.shape[0])
        if t.numel() != x.shape[0]:
            raise InputError(
                f"t has {t.numel()} values for a batch of {x.shape[0]}; give one per item or one"
            )
        return self.time_mlp(sinusoidal_embedding(t, self.temb_dim))

    def forward(self, x, t=None):
        """Apply the network; ``t`` is required when ``time_embedding`` was set.

        The input is replicate-padded to a multiple of ``2**depth`` per spatial axis and the output
        cropped back.
        """
        if x.ndim != self.spatial_dims + 2:
            raise InputError(
                f"expected a {self.spatial_dims + 2}D tensor (batch, channel, "
                f"{self.spatial_dims} spatial axes), "
                f"got shape {tuple(x.shape)}"
            )
        temb = self._time(t, x)
        size = x.shape[2:]
        m = 2**self.depth
        pad = []
        for s in reversed(size):  # F.pad lists the last axis first
            pad += [0, (-s) % m]
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        h = self.stem(x)
        skips = []
        for blocks, down in zip(self.enc, self.down, strict=True):
            for b in blocks:
                h = b(h, temb)
            skips.append(h)
            h = down(h)
        for b in self.mid:
            h = b(h, temb)
        for up, blocks in zip(self.up, self.dec, strict=True):
            h = torch.cat([up(h), skips.pop()], dim=1)
            for b in blocks:
                h = b(h, temb)
        y = self.out_act(self.head(self.head_act(h)))
        if any(pad):
            y = y[(..., *(slice(0, s) for s in size))]
        return y


class _Shuffle(nn.Module):
    def __init__(self, factor, dims):
        super().__init__()
        self.factor, self.dims = factor, dims

    def forward(self, x):
        return pixel_shuffle(x, self.factor, self.dims)

"""The one configurable 2D/3D U-Net of matsight, used by restore (InDI), segment and tem (spot detector).

Defaults follow the InDI nano-tomography paper (Fig. 1E and Methods): Swish activations, 7×7 first and last
convolutions, residual blocks into which a sin/cos time embedding is added through a dense layer, dilated plus
non-dilated convolutions in the bottleneck, a sub-pixel convolution (pixel shuffle) as the last
up-sampling and a tanh output. Every switch can be turned off to get a plain segmentation U-Net
(ReLU double convolutions, max-pooling, transposed convolutions, logits, no time input), and segment's
attention gates on the skip connections can be turned on.

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


class _DoubleConv(nn.Module):
    """The plain U-Net block: conv → norm → act, twice (a time embedding is added after the first)."""

    def __init__(self, cin, cout, *, dims, act, norm, temb_dim, dropout, dilation=1, padding_mode="zeros"):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.conv1 = conv(cin, cout, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode)
        self.norm1 = _norm(norm, cout, dims)
        self.temb = nn.Linear(temb_dim, cout) if temb_dim else None
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.conv2 = conv(cout, cout, 3, padding=dilation, dilation=dilation, padding_mode=padding_mode)
        self.norm2 = _norm(norm, cout, dims)
        self.act = _act(act)

    def forward(self, x, temb=None):
        h = self.act(self.norm1(self.conv1(x)))
        if self.temb is not None:
            e = self.temb(self.act(temb))
            h = h + e.reshape(*e.shape, *([1] * (h.ndim - 2)))
        return self.act(self.norm2(self.conv2(self.drop(h))))


class _AttentionGate(nn.Module):
    """Additive attention (Oktay et al. 2018): the decoder signal ``g`` weights the skip features ``x``."""

    def __init__(self, cx, cg, cint, dims):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.wx = conv(cx, cint, 1)
        self.wg = conv(cg, cint, 1)
        self.psi = conv(cint, 1, 1)

    def forward(self, x, g):
        a = F.relu(self.wx(x) + self.wg(g))
        return x * torch.sigmoid(self.psi(a))


_BLOCKS = {"residual": _ResBlock, "double_conv": _DoubleConv}


class UNet(nn.Module):
    """The one U-Net of matsight: 2D/3D, with or without time conditioning, residual or plain blocks.

    Every method that uses a U-Net configures this class: restore's InDI denoiser (the defaults), segment's
    attention residual U-Net and tem's FFT spot detector.

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
        down-sampling), otherwise two plain residual blocks. ``bottleneck`` overrides it.
    subpixel_upsample : bool
        The last up-sampling (to full resolution) is a convolution to ``2**d ×`` channels
        followed by pixel shuffle; the other up-samplings follow ``upsample``.
    output_activation : {"tanh", "sigmoid", None}
    dropout : float
        Dropout inside the blocks.
    norm : {"none", "group", "batch", "instance"}
        Normalisation in the blocks. ``"none"`` (default) keeps the network local, so that tiled
        inference agrees with whole-image inference; statistics-based norms depend on the tile content.
    blocks_per_level : int
        Blocks per encoder/decoder level.
    padding_mode : str
        Padding of the 3×3 convolutions (``"zeros"``, ``"reflect"``, ``"replicate"``).
    block : {"residual", "double_conv"}
        Pre-activation residual blocks, or the plain U-Net's two conv → act layers.
    attention : bool
        Additive attention gates (Oktay et al. 2018) on the skip connections.
    stem : bool
        A first convolution (``first_kernel``) to ``features[0]`` channels; without it the first block
        takes the input channels.
    downsample : {"conv", "maxpool"}
        Strided 3×3 convolution to the next level's width, or 2× max-pooling (the next level's first
        block then changes the width).
    upsample : {"nearest", "transpose"}
        Nearest-neighbour up-sampling + 3×3 convolution, or a 2×2 transposed convolution.
    bottleneck : sequence of int, optional
        Dilation of each bottleneck block (default from ``dilated_bottleneck``).
    head_activation : bool
        Apply ``activation`` before the last convolution.

    Examples
    --------
    >>> net = UNet(features=(8, 16, 32), time_embedding=32)
    >>> y = net(torch.zeros(1, 1, 37, 51), t=torch.ones(1))
    >>> tuple(y.shape)
    (1, 1, 37, 51)

    A plain segmentation U-Net (ReLU double convolutions, max-pooling, transposed convolutions, logits):

    >>> seg = UNet(in_channels=2, out_channels=3, features=(8, 16), activation="relu", block="double_conv",
    ...            stem=False, downsample="maxpool", upsample="transpose", subpixel_upsample=False,
    ...            bottleneck=(1,), head_activation=False, last_kernel=1, output_activation=None)
    >>> tuple(seg(torch.zeros(1, 2, 16, 16)).shape)
    (1, 3, 16, 16)
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
        *,
        block="residual",
        attention=False,
        stem=True,
        downsample="conv",
        upsample="nearest",
        bottleneck=None,
        head_activation=True,
    ):
        super().__init__()
        features = tuple(int(f) for f in features)
        _check_options(
            spatial_dims, features, first_kernel, last_kernel, output_activation, block, downsample, upsample
        )
        self.spatial_dims = spatial_dims
        self.features = features
        self.depth = len(features) - 1
        self.temb_dim = int(time_embedding) if time_embedding else 0
        self.attention = bool(attention)
        td = 4 * self.temb_dim if self.temb_dim else 0
        kw = dict(dims=spatial_dims, act=activation, norm=norm, dropout=dropout, padding_mode=padding_mode)
        make = _BLOCKS[block]

        def blocks(cin, cout, n, dilations=None):
            dilations = dilations or (1,) * n
            return nn.ModuleList(
                make(cin if k == 0 else cout, cout, temb_dim=td, dilation=d, **kw)
                for k, d in enumerate(dilations)
            )

        if self.temb_dim:
            self.time_mlp = nn.Sequential(nn.Linear(self.temb_dim, td), _act(activation), nn.Linear(td, td))
        c = self._encoder(in_channels, features, stem, first_kernel, downsample, blocks_per_level, blocks)
        if bottleneck is None:
            bottleneck = (1, 2, 4) if dilated_bottleneck else (1, 1)
        self.mid = blocks(c, features[-1], len(bottleneck), tuple(int(d) for d in bottleneck))
        self._decoder(features, subpixel_upsample, upsample, blocks_per_level, blocks)
        self.head_act = _act(activation) if head_activation else nn.Identity()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.head = conv(features[0], out_channels, last_kernel, padding=last_kernel // 2)
        self.out_act = {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid()}.get(output_activation, nn.Identity())

    def _encoder(self, in_channels, features, stem, first_kernel, downsample, n_blocks, blocks):
        """Build the stem, encoder levels and down-samplings (in that order); return the next width in."""
        d = self.spatial_dims
        conv = nn.Conv2d if d == 2 else nn.Conv3d
        c = in_channels
        if stem:
            self.stem = conv(in_channels, features[0], first_kernel, padding=first_kernel // 2)
            c = features[0]
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        for i in range(self.depth):
            self.enc.append(blocks(c, features[i], n_blocks))
            if downsample == "conv":
                self.down.append(conv(features[i], features[i + 1], 3, stride=2, padding=1))
                c = features[i + 1]
            else:
                self.down.append((nn.MaxPool2d if d == 2 else nn.MaxPool3d)(2))
                c = features[i]
        return c

    def _decoder(self, features, subpixel_upsample, upsample, n_blocks, blocks):
        """Build the up-samplings, attention gates and decoder levels, deepest first."""
        d = self.spatial_dims
        conv = nn.Conv2d if d == 2 else nn.Conv3d
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        if self.attention:
            self.gates = nn.ModuleList()
        for i in reversed(range(self.depth)):
            cin, cout = features[i + 1], features[i]
            if subpixel_upsample and i == 0:
                up = nn.Sequential(conv(cin, cout * 2**d, 3, padding=1), _Shuffle(2, d))
            elif upsample == "transpose":
                up = (nn.ConvTranspose2d if d == 2 else nn.ConvTranspose3d)(cin, cout, 2, stride=2)
            else:
                up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), conv(cin, cout, 3, padding=1))
            self.up.append(up)
            if self.attention:
                self.gates.append(_AttentionGate(cout, cout, max(1, cout // 2), d))
            self.dec.append(blocks(2 * cout, cout, n_blocks))

    @property
    def multiple(self):
        """Inputs are padded to a multiple of this per spatial axis (``2**depth``)."""
        return 2**self.depth

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
        m = self.multiple
        pad = []
        for s in reversed(size):  # F.pad lists the last axis first
            pad += [0, (-s) % m]
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        h = self.stem(x) if hasattr(self, "stem") else x
        skips = []
        for blocks, down in zip(self.enc, self.down, strict=True):
            for b in blocks:
                h = b(h, temb)
            skips.append(h)
            h = down(h)
        for b in self.mid:
            h = b(h, temb)
        gates = self.gates if self.attention else [None] * len(self.up)
        for up, gate, blocks in zip(self.up, gates, self.dec, strict=True):
            g, s = up(h), skips.pop()
            h = torch.cat([g, s if gate is None else gate(s, g)], dim=1)
            for b in blocks:
                h = b(h, temb)
        y = self.out_act(self.head(self.head_act(h)))
        if any(pad):
            y = y[(..., *(slice(0, s) for s in size))]
        return y


def _check_options(
    spatial_dims, features, first_kernel, last_kernel, output_activation, block, downsample, upsample
):
    """Reject impossible U-Net settings with a message naming the option."""
    if spatial_dims not in (2, 3):
        raise InputError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    if len(features) < 1 or min(features) < 1:
        raise InputError(f"features must be a non-empty sequence of positive ints, got {features}")
    if first_kernel % 2 == 0 or last_kernel % 2 == 0:
        raise InputError("first_kernel and last_kernel must be odd so that outputs keep the input size")
    if output_activation not in ("tanh", "sigmoid", None, "none"):
        raise InputError(f"output_activation must be tanh, sigmoid or None, got {output_activation!r}")
    if block not in _BLOCKS:
        raise InputError(f"block must be residual or double_conv, got {block!r}")
    if downsample not in ("conv", "maxpool"):
        raise InputError(f"downsample must be conv or maxpool, got {downsample!r}")
    if upsample not in ("nearest", "transpose"):
        raise InputError(f"upsample must be nearest or transpose, got {upsample!r}")


class _Shuffle(nn.Module):
    def __init__(self, factor, dims):
        super().__init__()
        self.factor, self.dims = factor, dims

    def forward(self, x):
        return pixel_shuffle(x, self.factor, self.dims)

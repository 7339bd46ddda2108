"""The segmentation network: a configured :class:`matsight.nn.unet.UNet` (2D, logits per phase).

The InDI nano-tomography paper segments with an attention residual U-Net: residual convolution blocks and the
additive attention gates of Oktay et al. (2018) on the skip connections, trained on one labelled slice. Here
the same design is small enough for a CPU (widths 16-32-64 by default, ~0.2 M parameters): 3×3 first
convolution, ReLU, no normalisation layers (per-tile statistics would make a crop-trained network behave
differently on the larger tiles used at inference), one block per level and in the bottleneck,
nearest-neighbour up-sampling, a 1×1 convolution to class logits. ``residual=False`` gives plain double
convolutions instead.

Models saved before the network became a :class:`~matsight.nn.unet.UNet` (matsight's ``SegUNet``) load
through :func:`legacy_state_dict`, and :func:`build_network` draws its initial weights in that network's
order, so a seed gives the same network, the same training and the same labels as before.
"""

import re
from itertools import chain

import torch
from torch import nn

from ..nn.unet import UNet

__all__ = ["build_network", "legacy_state_dict", "load_weights"]


def build_network(n_classes, config, *, in_channels=1):
    """The segmentation U-Net for ``n_classes`` phases.

    Parameters
    ----------
    n_classes : int
    config : UNetConfig
        ``widths`` (channels per level; ``len(widths) - 1`` down-samplings), ``attention``, ``residual``.
    in_channels : int

    Returns
    -------
    UNet
        Input ``(B, in_channels, Y, X)`` of any size, output logits ``(B, n_classes, Y, X)``.

    Examples
    --------
    >>> from matsight.segment.config import UNetConfig
    >>> net = build_network(3, UNetConfig(widths=[4, 8]))
    >>> tuple(net(torch.zeros(1, 1, 21, 30)).shape)
    (1, 3, 21, 30)
    """
    with torch.random.fork_rng(devices=[]):  # the weights are drawn below, in the earlier order
        net = UNet(
            spatial_dims=2,
            in_channels=in_channels,
            out_channels=n_classes,
            features=tuple(config.widths),
            activation="relu",
            first_kernel=3,
            last_kernel=1,
            bottleneck=(1,),
            subpixel_upsample=False,
            output_activation=None,
            block="residual" if config.residual else "double_conv",
            attention=config.attention,
            head_activation=False,
        )
    _draw_weights_in_earlier_order(net)
    return net


def _draw_weights_in_earlier_order(net):
    """Initialise every layer as its constructor does, in ``SegUNet``'s order (all encoder blocks, then all
    down-samplings; then bottleneck; then per level up-sampling, gate, decoder; head).
    """
    gates = net.gates if net.attention else [nn.Identity()] * len(net.up)
    decoder = chain.from_iterable(zip(net.up, gates, net.dec, strict=True))
    for part in (net.stem, *net.enc, *net.down, net.mid, *decoder, net.head):
        for m in part.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.reset_parameters()


_OLD = [
    (r"^enc\.(\d+)\.body\.0\.", r"enc.\1.0.conv1."),
    (r"^enc\.(\d+)\.body\.2\.", r"enc.\1.0.conv2."),
    (r"^dec\.(\d+)\.body\.0\.", r"dec.\1.0.conv1."),
    (r"^dec\.(\d+)\.body\.2\.", r"dec.\1.0.conv2."),
    (r"^mid\.body\.0\.", "mid.0.conv1."),
    (r"^mid\.body\.2\.", "mid.0.conv2."),
    (r"^(enc|dec)\.(\d+)\.(conv1|conv2|skip)\.", r"\1.\2.0.\3."),
    (r"^mid\.(conv1|conv2|skip)\.", r"mid.0.\1."),
]


def legacy_state_dict(state):
    """Rename the parameters of a ``SegUNet`` state dict (models of earlier versions) to the
    :class:`~matsight.nn.unet.UNet` names; a current state dict passes unchanged.
    """
    out = {}
    for key, value in state.items():
        for pattern, repl in _OLD:
            new = re.sub(pattern, repl, key)
            if new != key:
                key = new
                break
        out[key] = value
    return out


def load_weights(net, state):
    """Load ``state`` (current or earlier parameter names) into ``net``; raises RuntimeError on a misfit."""
    net.load_state_dict(legacy_state_dict(state))
    return net

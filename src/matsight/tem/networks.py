"""The spot detector's network: a small plain U-Net on the half spectrum (see :mod:`matsight.tem.detector`).

:func:`SpotUNet` builds matsight's one U-Net, :class:`matsight.nn.unet.UNet`, configured as a plain 4-level
U-Net (8-16-32-64 channels, ~120 k parameters, 0.5 MB): double 3×3 conv + ReLU blocks without a stem, 2×
max-pooling down, 2×2 transposed convolutions up, skip concatenation, a 1×1 convolution to one logit. Two
input channels (:data:`IN_CHANNELS`, built by :func:`matsight.tem.detector.half_features`). It is trained on
synthetic lattice FFTs; the trained weights ship in ``matsight/tem/weights/spot_unet.safetensors``.

Those weights were saved by the detector's earlier own class (parameters ``enc.i.0``, ``enc.i.2``, ...); they
load unchanged, their names mapped on loading (:func:`earlier_names`), and give identical outputs; the
initial weights are drawn in the same order as before, so a seed trains the same detector.
"""

import re

from ..nn.unet import UNet

__all__ = ["IN_CHANNELS", "SpotUNet", "earlier_names"]

IN_CHANNELS = 2


def SpotUNet(in_channels=IN_CHANNELS, features=(8, 16, 32, 64)):  # the earlier class name, kept for callers
    """The spot detector: a :class:`~matsight.nn.unet.UNet` as a plain U-Net with one logit out.

    Parameters
    ----------
    in_channels : int
    features : sequence of int
        Channels per level; ``len(features) - 1`` poolings (inputs are padded to a multiple of
        ``net.multiple = 2**depth``).

    Returns
    -------
    UNet
        Logits ``(B, 1, H, W)`` for inputs ``(B, in_channels, H, W)``; ``load_state_dict`` also takes the
        parameter names of the detector's earlier class.
    """
    features = tuple(int(f) for f in features)
    net = UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=1,
        features=features,
        activation="relu",
        block="double_conv",
        stem=False,
        downsample="maxpool",
        upsample="transpose",
        subpixel_upsample=False,
        bottleneck=(1,),
        head_activation=False,
        last_kernel=1,
        output_activation=None,
    )
    net.register_load_state_dict_pre_hook(_rename_earlier)
    return net


def earlier_names(state, depth):
    """Map the earlier class's parameter names to :class:`~matsight.nn.unet.UNet`'s.

    Earlier: ``enc.{i}.{0,2}`` and ``dec.{j}.{0,2}`` (the two convolutions of a block; the deepest ``enc``
    block is the bottleneck). Current names pass unchanged.
    """
    out = {}
    for key, value in state.items():
        m = re.fullmatch(r"(.*?)(enc|dec)\.(\d+)\.([02])\.(weight|bias)", key)
        if m:
            prefix, part, i, j, kind = m.groups()
            conv = "conv1" if j == "0" else "conv2"
            level = "mid.0" if part == "enc" and int(i) == depth else f"{part}.{i}.0"
            key = f"{prefix}{level}.{conv}.{kind}"
        out[key] = value
    return out


def _rename_earlier(module, state_dict, prefix, *args):
    """``load_state_dict`` pre-hook: rename, in place, earlier parameter names under ``prefix``."""
    mine = {k: state_dict.pop(k) for k in list(state_dict) if k.startswith(prefix)}
    state_dict.update(earlier_names(mine, module.depth))

"""The spot detector's network: a small plain U-Net on the half spectrum (see :mod:`matsight.tem.detector`).

:class:`SpotUNet` is a 4-level U-Net (8-16-32-64 channels, ~120 k parameters, 0.5 MB) with two input
channels (:data:`IN_CHANNELS`, built by :func:`matsight.tem.detector.half_features`) and one logit out. It is
trained on synthetic lattice FFTs; the trained weights ship in ``matsight/tem/weights/spot_unet.safetensors``.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["IN_CHANNELS", "SpotUNet"]

IN_CHANNELS = 2


def _block(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class SpotUNet(nn.Module):
    """Plain U-Net: double 3×3 conv blocks, max-pool down, transposed-conv up, skip concatenation, logit out.

    Parameters
    ----------
    in_channels : int
    features : sequence of int
        Channels per level; ``len(features) - 1`` poolings (inputs are padded to a multiple of ``2**depth``).
    """

    def __init__(self, in_channels=IN_CHANNELS, features=(8, 16, 32, 64)):
        super().__init__()
        features = tuple(int(f) for f in features)
        self.features = features
        self.enc = nn.ModuleList()
        c = in_channels
        for f in features:
            self.enc.append(_block(c, f))
            c = f
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(len(features) - 1)):
            self.up.append(nn.ConvTranspose2d(features[i + 1], features[i], 2, stride=2))
            self.dec.append(_block(2 * features[i], features[i]))
        self.head = nn.Conv2d(features[0], 1, 1)

    @property
    def multiple(self):
        """Spatial sizes must be multiples of this (handled by :func:`matsight.tem.detector.predict_half`)."""
        return 2 ** (len(self.features) - 1)

    def forward(self, x):
        """Logits ``(B, 1, H, W)`` for inputs ``(B, C, H, W)`` with H, W multiples of :attr:`multiple`."""
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x)
            if i < len(self.enc) - 1:
                skips.append(x)
                x = F.max_pool2d(x, 2)
        for up, dec in zip(self.up, self.dec, strict=True):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)

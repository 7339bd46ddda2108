"""A small 2D segmentation U-Net, optionally with residual blocks and attention gates, and its training loop.

The InDI nano-tomography paper segments with an attention residual U-Net (residual convolution blocks;
additive attention gates of Oktay et al. 2018 on the skip connections) trained on one labelled slice. Here the
same design is small enough for a CPU (widths 16-32-64 by default, ~0.2 M parameters) and is trained on
*sparse* labels: the cross-entropy is averaged over labelled pixels only (unlabelled and held-out pixels carry
the ignore index), so a few strokes per phase are enough to start and more labels simply add terms.

The residual block is :mod:`matsight.nn.unet`'s pre-activation block (without time input).
"""

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..nn.unet import _ResBlock

log = logging.getLogger(__name__)

__all__ = ["SegUNet", "train_unet", "unet_predict_proba"]

IGNORE = -1


class _ConvBlock(nn.Module):
    """Two 3×3 conv + ReLU (the plain U-Net block, when ``residual=False``).

    No normalisation layers anywhere: per-tile statistics would make a crop-trained network behave
    differently on the larger tiles used at inference.
    """

    def __init__(self, cin, cout):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1),
            nn.ReLU(),
        )

    def forward(self, x):
        return self.body(x)


class _AttentionGate(nn.Module):
    """Additive attention (Oktay et al. 2018): the decoder signal ``g`` weights the skip features ``x``."""

    def __init__(self, cx, cg, cint):
        super().__init__()
        self.wx = nn.Conv2d(cx, cint, 1)
        self.wg = nn.Conv2d(cg, cint, 1)
        self.psi = nn.Conv2d(cint, 1, 1)

    def forward(self, x, g):
        a = F.relu(self.wx(x) + self.wg(g))
        return x * torch.sigmoid(self.psi(a))


class SegUNet(nn.Module):
    """2D U-Net returning class logits ``(B, n_classes, Y, X)`` for any input size (padded internally).

    Parameters
    ----------
    n_classes : int
    widths : sequence of int
        Channels per level; ``len(widths) - 1`` down-samplings.
    attention : bool
        Attention gates on the skip connections.
    residual : bool
        Residual blocks (from :mod:`matsight.nn.unet`) instead of plain double convolutions.
    in_channels : int
    """

    def __init__(self, n_classes, widths=(16, 32, 64), *, attention=True, residual=True, in_channels=1):
        super().__init__()
        widths = [int(w) for w in widths]
        self.depth = len(widths) - 1

        def block(cin, cout):
            if residual:
                return _ResBlock(cin, cout, dims=2, act="relu", norm="none", temb_dim=0, dropout=0.0)
            return _ConvBlock(cin, cout)

        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.enc = nn.ModuleList(block(widths[i], widths[i]) for i in range(self.depth))
        self.down = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1) for i in range(self.depth)
        )
        self.mid = block(widths[-1], widths[-1])
        self.up = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.dec = nn.ModuleList()
        for i in reversed(range(self.depth)):
            self.up.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(widths[i + 1], widths[i], 3, padding=1),
                )
            )
            self.gates.append(
                _AttentionGate(widths[i], widths[i], max(1, widths[i] // 2)) if attention else nn.Identity()
            )
            self.dec.append(block(2 * widths[i], widths[i]))
        self.head = nn.Conv2d(widths[0], n_classes, 1)
        self.attention = attention

    def forward(self, x):
        """Logits ``(B, n_classes, Y, X)`` of ``x`` ``(B, C, Y, X)``."""
        size = x.shape[2:]
        m = 2**self.depth
        pad = [0, (-size[1]) % m, 0, (-size[0]) % m]
        if any(pad):
            x = F.pad(x, pad, mode="replicate")
        h = self.stem(x)
        skips = []
        for enc, down in zip(self.enc, self.down, strict=True):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.mid(h)
        for up, gate, dec in zip(self.up, self.gates, self.dec, strict=True):
            g = up(h)
            s = skips.pop()
            s = gate(s, g) if self.attention else s
            h = dec(torch.cat([g, s], dim=1))
        y = self.head(h)
        return y[..., : size[0], : size[1]]


def _sample_crop(img, tgt, crop, rng, labelled):
    """A random crop (YX) centred near a random labelled pixel, randomly flipped / rotated by 90°."""
    z, y, x = labelled[rng.integers(len(labelled))]
    h, w = img.shape[1:]
    cy, cx = min(crop, h), min(crop, w)
    y0 = int(np.clip(y - rng.integers(cy), 0, h - cy))
    x0 = int(np.clip(x - rng.integers(cx), 0, w - cx))
    a = img[z, y0 : y0 + cy, x0 : x0 + cx]
    b = tgt[z, y0 : y0 + cy, x0 : x0 + cx]
    k = int(rng.integers(4))
    a, b = np.rot90(a, k), np.rot90(b, k)
    if rng.random() < 0.5:
        a, b = a[:, ::-1], b[:, ::-1]
    if a.shape != (crop, crop):  # small images: pad to a fixed batch shape, padding is ignored by the loss
        pa = ((0, crop - a.shape[0]), (0, crop - a.shape[1]))
        a = np.pad(a, pa, mode="reflect" if min(a.shape) > 1 else "edge")
        b = np.pad(b, pa, constant_values=IGNORE)
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def train_unet(images, targets, config, *, n_classes, progress=False):
    """Train a :class:`SegUNet` on normalised slices with sparse targets.

    Parameters
    ----------
    images : ndarray
        ``(S, Y, X)`` float32 slices (normalised grey values).
    targets : ndarray
        ``(S, Y, X)`` int64 class indices, :data:`IGNORE` (-1) where unlabelled or held out.
    config : SegmentConfig
    n_classes : int
    progress : bool

    Returns
    -------
    (SegUNet, list of float)
        The trained network (eval mode, CPU) and the loss per iteration.
    """
    from ..nn.device import resolve_device, seed_everything

    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)
    device = resolve_device(config.device)
    net = SegUNet(n_classes, config.unet_widths, attention=config.attention, residual=config.residual).to(
        device
    )
    opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.learning_rate, total_steps=config.iterations
    )
    labelled = np.argwhere(targets != IGNORE)
    # class-balanced loss: rare phases (few stroke pixels) count as much as common ones
    counts = np.bincount(targets[targets != IGNORE], minlength=n_classes).astype(np.float64)
    weight = torch.tensor(
        counts.sum() / np.maximum(counts, 1) / n_classes, dtype=torch.float32, device=device
    )
    losses = []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task("U-Net training", total=config.iterations)
    net.train()
    try:
        for _ in range(config.iterations):
            batch = [
                _sample_crop(images, targets, config.crop, rng, labelled) for _ in range(config.batch_size)
            ]
            x = torch.from_numpy(np.stack([b[0] for b in batch]))[:, None].to(device)
            t = torch.from_numpy(np.stack([b[1] for b in batch]).astype(np.int64)).to(device)
            loss = F.cross_entropy(net(x), t, weight=weight, ignore_index=IGNORE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    net.eval()
    return net.cpu(), losses


def unet_predict_proba(net, image, *, tile=512, device="cpu", progress=False):
    """Class probabilities ``(Y, X, C)`` of one normalised 2D slice, by overlapped tiles of ``tile`` px."""
    from ..nn.tiling import sliding_window_inference

    dev = torch.device(device)
    net = net.to(dev)

    def predictor(tiles):
        return torch.softmax(net(tiles), dim=1)

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None].to(dev)
    with torch.no_grad():
        p = sliding_window_inference(x, tile, predictor, sw_batch_size=2, overlap=0.25, progress=progress)
    return np.moveaxis(p[0].cpu().numpy(), 0, -1)

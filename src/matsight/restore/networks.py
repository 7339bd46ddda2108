"""The InDI network ``F(x_t, t)`` (:class:`InDINet`), its LQ slice context, and loading a trained model.

The nano-tomography paper's network (Methods): a U-Net with 64 base filters doubling per down-sampling block,
dilated and plain convolutions in the bottleneck, Swish, 7×7 first/last convolutions, a sub-pixel last
up-sampling, a tanh output and a sin/cos time embedding added in the residual blocks — the shared
:class:`matsight.nn.unet.UNet`, configured by :class:`~matsight.restore.config.ModelConfig`.

``F`` is given in one of two equivalent ways (``ModelConfig.prediction``): ``"clean"`` outputs ``x̂`` (the
paper); ``"residual"`` outputs the degradation ``d̂ ≈ y − x`` and ``F = x_t − t·d̂`` (since
``x_t − x = t·(y − x)``), so ``F → x_t`` as ``t → 0`` and an imperfect net cannot blur the detail the first
sampling steps restored. The loss is the same; ``N = 1`` is still ``F(y, 1) = y − d̂``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._errors import InputError
from ..nn.checkpoint import load_checkpoint
from ..nn.device import resolve_device
from ..nn.unet import UNet
from .config import load_config

__all__ = ["InDINet", "build_network", "context_slices", "load_model", "MODEL_FILE", "STATE_FILE"]

MODEL_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"


class InDINet(nn.Module):
    """The InDI denoiser ``F(x_t, t)``: a time-conditioned :class:`~matsight.nn.unet.UNet`, optionally run
    on a ``s × s`` space-to-depth rearrangement of the image (lossless; ``s = 1`` is the paper's
    full-resolution net).

    Input and output are ``(B, 1, Y, X)`` in [−1, 1]; any ``Y, X`` (padded by replication to a multiple of
    ``s`` and cropped back).

    Parameters
    ----------
    config : ModelConfig or RestoreConfig
        The network settings (a whole :class:`~matsight.restore.config.RestoreConfig` gives its ``model``).
    """

    def __init__(self, config):
        super().__init__()
        config = getattr(config, "model", config)
        self.s = int(config.space_to_depth)
        self.residual = config.prediction == "residual"
        self.context = int(config.context)
        # a tanh output spans [-1, 1]; the residual y - x of two [-1, 1] images spans [-2, 2]
        self.gain = 2.0 if self.residual and config.output_activation == "tanh" else 1.0
        self.unet = UNet(**config.unet_kwargs())

    def forward(self, x, t, cond=None):
        """``F(x_t, t)`` for ``(B, 1, Y, X)`` inputs and one ``t`` per item (or one for all).

        ``cond``: ``(B, 2·context, Y, X)`` neighbouring LQ slices for a network with ``context`` > 0 (2.5D),
        concatenated to ``x_t`` as extra input channels; they stay LQ along the whole InDI path.
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise InputError(f"InDINet expects (batch, 1, Y, X) tensors, got shape {tuple(x.shape)}")
        want = 2 * self.context
        got = 0 if cond is None else cond.shape[1]
        if got != want or (cond is not None and cond.shape[-2:] != x.shape[-2:]):
            raise InputError(
                f"this network takes {want} neighbouring LQ slices as context, got "
                f"{'none' if cond is None else tuple(cond.shape)}"
            )
        z = x if cond is None else torch.cat([x, cond], 1)
        s = self.s
        if s == 1:
            out = self.unet(z, t=t)
        else:
            h, w = x.shape[-2:]
            ph, pw = (-h) % s, (-w) % s
            z = F.pad(z, (0, pw, 0, ph), mode="replicate") if (ph or pw) else z
            out = F.pixel_shuffle(self.unet(F.pixel_unshuffle(z, s), t=t), s)[..., :h, :w]
        if not self.residual:
            return out
        tt = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        return x - tt * (self.gain * out)


def context_slices(stack, index, *, context, step=1):
    """The ``2·context`` neighbours of slice ``index`` in a ``(S, Y, X)`` stack, ``step`` slices apart.

    Order ``index − context·step, …, index − step, index + step, …, index + context·step``; indices past the
    ends are clamped (the edge slice repeats), as a volume's border would be padded.

    Returns
    -------
    ndarray of shape ``(2·context, Y, X)``.

    Examples
    --------
    >>> stack = np.arange(4)[:, None, None] * np.ones((4, 2, 2))
    >>> context_slices(stack, 0, context=1)[:, 0, 0].tolist()
    [0.0, 1.0]
    """
    n = stack.shape[0]
    offsets = [-j * step for j in range(context, 0, -1)] + [j * step for j in range(1, context + 1)]
    return np.stack([stack[min(max(index + o, 0), n - 1)] for o in offsets]) if offsets else stack[:0]


def build_network(config):
    """Instantiate :class:`InDINet` for a :class:`~matsight.restore.config.RestoreConfig`."""
    return InDINet(config)


def load_model(model_dir, *, device="cpu"):
    """Load a trained restore model: returns ``(net, meta)``.

    ``meta`` has ``config`` (a :class:`~matsight.restore.config.RestoreConfig`; folders saved with the flat
    config of earlier versions load too), ``stats`` (LQ/HQ normalisation), ``transform`` (scale, ...),
    ``steps_auto`` (the validated InDI step count) and training info.

    Parameters
    ----------
    model_dir : path
        A model folder of :func:`~matsight.restore.train.train`, or its ``model.safetensors``.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``.
    """
    model_dir = Path(model_dir)
    path = model_dir / MODEL_FILE if model_dir.is_dir() else model_dir
    if not path.is_file():
        raise InputError(
            f"no restore model at {model_dir}; train one with `matsight restore train PAIR --out MODEL`"
        )
    dev = resolve_device(device)
    groups, meta = load_checkpoint(path, device="cpu")
    if meta.get("format") != "matsight-restore-model":
        raise InputError(f"{path} is not a matsight restore model (format {meta.get('format')!r})")
    config = load_config(meta["config"])
    net = build_network(config)
    net.load_state_dict(groups["model"])
    net.to(dev).eval()
    meta = dict(meta)
    meta["config"] = config
    return net, meta

"""InDI's training objective (Delbracio & Milanfar 2023; as trained in ``papers/indi_4d_nanotomography.txt``).

Notation of the InDI paper: ``x`` is the high-quality (HQ) image, ``y`` the low-quality (LQ) image upscaled
onto the HQ grid, ``F`` the network (:class:`~matsight.restore.networks.InDINet`). Each equation is written
once, in the function that computes it:

- the degradation path ``x_t = (1 − t)·x + t·y (+ t·ε·η)`` — :func:`degrade_path`;
- the time distribution ``t ~ 1/(1+a)·U[0, 1] + a/(1+a)·δ(t − 1)`` — :func:`sample_t`;
- the nano-tomography paper's reverse Huber ("berHu") loss ``ρ`` — :func:`reverse_huber`;
- the objective ``E_{t, (x, y)} ρ(F(x_t, t) − x)`` on a batch — :func:`indi_loss`.

The sampler that inverts the path is in :mod:`matsight.restore.indi`.
"""

from __future__ import annotations

import torch

from .._errors import InputError

__all__ = ["sample_t", "degrade_path", "reverse_huber", "indi_loss"]


def sample_t(n, *, a=0.5, generator=None, device="cpu"):
    """Draw ``n`` times from ``1/(1+a)·U[0, 1] + a/(1+a)·δ(t − 1)``.

    The point mass at ``t = 1`` trains the first sampling step, ``F(y, 1)``, the hardest, more often.

    Parameters
    ----------
    n : int
    a : float
        Relative weight of the point mass at ``t = 1`` (0: uniform only; the public implementation uses 0.5).
    generator : torch.Generator, optional

    Examples
    --------
    >>> t = sample_t(1000, a=1.0, generator=torch.Generator().manual_seed(0))
    >>> bool(((t >= 0) & (t <= 1)).all()), 0.4 < float((t == 1).float().mean()) < 0.6
    (True, True)
    """
    if a < 0:
        raise InputError(f"the mass weight a must be >= 0, got {a}")
    u = torch.rand(n, generator=generator, device=device)
    at_one = torch.rand(n, generator=generator, device=device) < a / (1.0 + a)
    return torch.where(at_one, torch.ones_like(u), u)


def degrade_path(x, y, t, *, eps=0.0, generator=None):
    """``x_t = (1 − t)·x + t·y + t·ε·η``, ``η ~ N(0, 1)``, with one ``t`` per batch item.

    ``x_0 = x`` (HQ) and ``x_1 = y`` (LQ on the HQ grid); ``t`` broadcasts over the other axes.

    Examples
    --------
    >>> x, y = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    >>> degrade_path(x, y, torch.tensor([0.25, 1.0]))[:, 0, 0, 0].tolist()
    [0.25, 1.0]
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1, *([1] * (x.ndim - 1)))
    xt = (1 - t) * x + t * y
    if eps:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        xt = xt + t * eps * noise
    return xt


def reverse_huber(pred, target, *, c=0.5, weight=None):
    """Mean reverse-Huber loss: ``ρ(e) = |e|`` for ``|e| ≤ c``, ``(e² + c²)/(2c)`` above; ``e = pred − x``.

    The nano-tomography paper's loss (Methods: MAE for errors up to 0.5, MSE above). The MSE branch meets the
    MAE branch with equal value and slope at ``c`` — the reverse of torch's ``HuberLoss``, which is quadratic
    near zero. ``weight`` (same shape, e.g. a field-of-view mask) gives a weighted mean.

    Examples
    --------
    >>> float(reverse_huber(torch.tensor([0.25, 1.5]), torch.zeros(2)))  # (0.25 + (1.5² + 0.5²) / 1) / 2
    1.375
    """
    e = (pred - target).abs()
    per = torch.where(e <= c, e, (e * e + c * c) / (2 * c))
    return _mean(per, weight)


def _mean(per, weight):
    if weight is None:
        return per.mean()
    weight = weight.to(per.dtype)
    return (per * weight).sum() / weight.sum().clamp_min(1e-8)


def indi_loss(net, x, y, *, config, generator=None, weight=None, cond=None):
    """``ρ(F(x_t, t) − x)`` on a batch: draw ``t`` (:func:`sample_t`), form ``x_t`` (:func:`degrade_path`),
    predict ``x`` with ``net`` and score it (:func:`reverse_huber`, or L1/L2).

    Parameters
    ----------
    net : InDINet
    x, y : torch.Tensor
        HQ and LQ crops ``(B, 1, Y, X)`` in [−1, 1].
    config : RestoreConfig or TrainingConfig
        ``objective`` (``"onestep"``: ``t = 1`` and ``x_t = y`` for every crop — plain LQ → HQ regression),
        ``t_mass_at_one`` (a), ``eps`` (ε), ``loss`` and ``huber_c`` (c).
    generator : torch.Generator, optional
        For ``t`` and ``η``.
    weight : torch.Tensor, optional
        Per-pixel weights (the field-of-view mask).
    cond : torch.Tensor, optional
        The neighbouring LQ slices of a 2.5D network.
    """
    cfg = getattr(config, "training", config)
    if getattr(cfg, "objective", "indi") == "onestep":  # direct regression: t = 1, x_t = LQ, no path noise
        t, xt = torch.ones(x.shape[0], device=x.device, dtype=x.dtype), y
    else:
        t = sample_t(x.shape[0], a=cfg.t_mass_at_one, generator=generator, device=x.device)
        xt = degrade_path(x, y, t, eps=cfg.eps, generator=generator)
    pred = net(xt, t, cond=cond)
    if cfg.loss == "reverse_huber":
        return reverse_huber(pred, x, c=cfg.huber_c, weight=weight)
    per = (pred - x).abs() if cfg.loss == "l1" else (pred - x).square()
    if weight is None:
        return per.mean()
    return (per * weight).sum() / weight.sum().clamp_min(1e-8)

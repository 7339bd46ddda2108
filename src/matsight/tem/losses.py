"""The spot detector's training objective (the paper's eq. 6, with a soft Dice term).

The phase identification itself is not learned: FFT, spot finding, d-spacing matching and the masked inverse
FFT maps are fixed computations with no objective to optimise. Only the optional learned spot detector
(:class:`~matsight.tem.networks.SpotUNet`) is trained, on synthetic lattice FFTs
(:func:`matsight.tem.train.train`), with the loss below.
"""

import torch
import torch.nn.functional as F

__all__ = ["detector_loss"]


def detector_loss(logits, y, v, pos_weight=3.0):
    """Weighted binary cross-entropy plus soft Dice, counted inside the analysed annulus only.

    The paper's eq. 6, ``BCE = -[y log p + (1 - y) log(1 - p)]`` with ``p = σ(logits)``, averaged over the
    valid pixels (``v = 1``: inside ``d_min ≤ d ≤ d_max``), spot pixels weighted by ``pos_weight`` (spots are
    a tiny share of the spectrum); plus ``1 - (2 Σ p y + 1) / (Σ p + Σ y + 1)``, a soft version of the Dice
    coefficient (eq. 7) the epochs are chosen by.

    Parameters
    ----------
    logits, y, v : torch.Tensor, ``(B, 1, H, W)``
        Network output, labels (0/1) and the valid-pixel mask (0/1), float.
    pos_weight : float

    Returns
    -------
    torch.Tensor
        Scalar loss.
    """
    bce = F.binary_cross_entropy_with_logits(
        logits, y, weight=v, pos_weight=torch.tensor(pos_weight, device=logits.device), reduction="sum"
    ) / v.sum().clamp_min(1.0)
    p = torch.sigmoid(logits) * v
    inter = (p * y).sum()
    dice = 1.0 - (2 * inter + 1.0) / (p.sum() + (y * v).sum() + 1.0)
    return bce + dice

r"""The U-Net's objective: a class-balanced cross-entropy over the labelled (stroke) pixels only.

With sparse labels most pixels carry no label; they, the held-out strokes and the padding of small crops
carry the ignore index :data:`IGNORE` and add nothing. Over the set :math:`\Omega` of labelled pixels ``i``
with phase :math:`y_i` and logits :math:`z_i` of the :math:`C` phases,

.. math::

    L = \frac{\sum_{i \in \Omega} w_{y_i} \, \left(-\log \operatorname{softmax}(z_i)_{y_i}\right)}
             {\sum_{i \in \Omega} w_{y_i}},
    \qquad w_c = \frac{N}{C \, N_c},

where :math:`N_c` is the number of training pixels of phase :math:`c` and :math:`N = \sum_c N_c`: a rare phase
(a few short strokes) counts as much as a common one, so a few strokes per phase are enough to start and more
labels simply add terms.

The random forest has no loss function here: scikit-learn grows each tree by minimising the Gini impurity
of its splits on the labelled pixels' features (:func:`matsight.segment.forest.fit_forest`).
"""

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["IGNORE", "class_weights", "stroke_loss"]

#: Target value of unlabelled, held-out and padding pixels.
IGNORE = -1


def class_weights(targets, n_classes, device=None):
    """The weights :math:`w_c = N / (C N_c)` of the phases in ``targets`` (:data:`IGNORE` skipped).

    Examples
    --------
    >>> class_weights(np.array([0, 0, 0, 1, -1]), 2)
    tensor([0.6667, 2.0000])
    """
    targets = np.asarray(targets)
    counts = np.bincount(targets[targets != IGNORE], minlength=n_classes).astype(np.float64)
    w = counts.sum() / np.maximum(counts, 1) / n_classes
    return torch.tensor(w, dtype=torch.float32, device=device)


def stroke_loss(logits, targets, weight):
    """:math:`L` of logits ``(B, C, Y, X)`` against int64 targets ``(B, Y, X)`` with weights ``(C,)``."""
    return F.cross_entropy(logits, targets, weight=weight, ignore_index=IGNORE)

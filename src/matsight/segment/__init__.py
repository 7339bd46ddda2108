"""segment — grayscale images and volumes to phase labels, from a few hand-drawn strokes per phase.

The same face as every method of matsight:

- :func:`train` ``((image, strokes), out_dir, *, config, budget, callback)`` — a random forest on multi-scale
  features (the ilastik / Weka approach; seconds on a CPU) or a small attention residual U-Net, from sparse
  labels (0 = unlabelled, k = phase k − 1), scored on held-out strokes;
- :func:`predict` — 2D slice-wise or 3D, in tiles, with optional clean-up;
- :func:`evaluate` — pixel accuracy, Dice and IoU per phase of a prediction against reference labels;
- :class:`SegmentConfig` — every setting (model / training / inference), saved with the model;
- :func:`load` — a model folder (safetensors + JSON, no pickle).

Modules: :mod:`~matsight.segment.config`, :mod:`~matsight.segment.networks` (the U-Net, a configured
:class:`matsight.nn.unet.UNet`), :mod:`~matsight.segment.losses` (its stroke-masked loss),
:mod:`~matsight.segment.train`, :mod:`~matsight.segment.predict`, :mod:`~matsight.segment.evaluate`; and the
method's own parts: :mod:`~matsight.segment.strokes` (label checks, held-out split),
:mod:`~matsight.segment.features` (the filter bank), :mod:`~matsight.segment.forest` (the pickle-free random
forest), :mod:`~matsight.segment.model` (the saved model), :mod:`~matsight.segment.synthetic` (test images).
"""

from .config import SegmentConfig
from .evaluate import evaluate
from .model import load
from .predict import predict
from .train import train

__all__ = ["train", "predict", "evaluate", "SegmentConfig", "load"]

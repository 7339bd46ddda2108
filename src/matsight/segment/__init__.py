"""segment — grayscale images and volumes to phase labels, from a few hand-drawn strokes per phase.

- :func:`train` — random forest on multi-scale features (the ilastik / Weka approach; seconds on a CPU) or a
  small attention residual U-Net, from sparse labels (0 = unlabelled, k = phase k − 1), scored on held-out
  strokes.
- :func:`apply` / :func:`predict_proba` — 2D slice-wise or 3D, in tiles, with optional clean-up
  (:func:`clean_labels`).
- :func:`load_model`, :class:`SegmentModel` — models are folders of safetensors + JSON (no pickle).
- :mod:`~matsight.segment.features` — the filter bank; :mod:`~matsight.segment.config` — settings.

Importing this package does not import torch (only the U-Net method does).
"""

from .apply import apply, clean_labels, predict_proba
from .config import FeatureConfig, SegmentConfig, make_config
from .features import compute_features, feature_names
from .model import SegmentModel, load_model
from .train import check_labels, label_scores, split_holdout, train

__all__ = [
    "FeatureConfig",
    "SegmentConfig",
    "SegmentModel",
    "apply",
    "check_labels",
    "clean_labels",
    "compute_features",
    "feature_names",
    "label_scores",
    "load_model",
    "make_config",
    "predict_proba",
    "split_holdout",
    "train",
]

"""A trained segmentation model and its on-disk form (a folder: ``model.safetensors`` + ``model.json``).

``model.safetensors`` holds the arrays (forest node tables, or U-Net weights) and, in its metadata, the
JSON description (config, phases, intensity scaling, held-out scores); ``model.json`` is a readable copy.
Loading never unpickles.
"""

import json
import logging
from pathlib import Path

import numpy as np

from .._atomic import atomic_path, write_json
from .._errors import InputError
from .config import SegmentConfig
from .features import feature_names

log = logging.getLogger(__name__)

__all__ = ["SegmentModel", "load_model"]

FORMAT = "matsight.segment/1"
WEIGHTS = "model.safetensors"


class SegmentModel:
    """A trained segmenter: config, phases, intensity scaling and the fitted estimator.

    Attributes
    ----------
    config : SegmentConfig
    classes : list of int
        Stroke values the model was trained on; class ``i`` is written as phase ``classes[i] - 1``.
    intensity : (float, float)
        Grey values mapped to 0 and 1 before feature extraction (from the training image).
    ndim : int
        2 = slice-wise features / network, 3 = volumetric features.
    estimator : Forest or SegUNet
    scores : dict
        Held-out scores from :func:`matsight.segment.train` (empty when nothing was held out).
    """

    def __init__(self, config, *, classes, intensity, ndim, estimator, scores=None, info=None):
        self.config = config
        self.classes = [int(c) for c in classes]
        self.intensity = (float(intensity[0]), float(intensity[1]))
        self.ndim = int(ndim)
        self.estimator = estimator
        self.scores = dict(scores or {})
        self.info = dict(info or {})

    @property
    def method(self):
        """``"forest"`` or ``"unet"``."""
        return self.config.method

    @property
    def n_classes(self):
        """Number of phases the model predicts."""
        return len(self.classes)

    @property
    def phases(self):
        """Output label of each class (stroke value − 1)."""
        return [c - 1 for c in self.classes]

    def feature_names(self):
        """Names of the forest's feature channels (empty for U-Nets)."""
        return feature_names(self.config.features, self.ndim) if self.method == "forest" else []

    def __repr__(self):
        return f"SegmentModel(method={self.method!r}, ndim={self.ndim}, phases={self.phases})"

    def _meta(self):
        return {
            "format": FORMAT,
            "config": self.config.model_dump(mode="json"),
            "classes": self.classes,
            "phases": self.phases,
            "intensity": list(self.intensity),
            "ndim": self.ndim,
            "scores": self.scores,
            "info": self.info,
            "feature_names": self.feature_names(),
        }

    def save(self, path):
        """Write the model folder ``path`` atomically and return it.

        An existing folder's model files are replaced; anything else in it (the user's images) is kept.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise InputError(
                f"{path} exists and is not a folder; give a folder name for the model (e.g. model/)"
            )
        meta = self._meta()
        with atomic_path(path, directory=True, keep_other=True) as tmp:
            if self.method == "forest":
                from safetensors.numpy import save_file

                arrays = {f"forest/{k}": v for k, v in self.estimator.arrays.items()}
                meta["n_features"] = self.estimator.n_features
                save_file(arrays, str(tmp / WEIGHTS), metadata={"matsight": json.dumps(meta)})
            else:
                from ..nn.checkpoint import save_checkpoint

                save_checkpoint(tmp / WEIGHTS, {"unet": self.estimator.state_dict()}, meta)
            write_json(tmp / "model.json", meta)
        return path


def _read_meta(file):
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="np") as f:
            header = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise InputError(
            f"{file} is not a readable model file ({exc}); retrain with matsight segment train"
        ) from exc
    if "matsight" not in header:
        raise InputError(f"{file} has no matsight metadata; it was not written by matsight segment train")
    meta = json.loads(header["matsight"])
    if meta.get("format") != FORMAT:
        raise InputError(
            f"{file} is not a segmentation model (format {meta.get('format')!r}); give a segment model"
        )
    return meta


def load_model(path):
    """Read a model folder written by :meth:`SegmentModel.save` (or its ``model.safetensors``)."""
    path = Path(path)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise InputError(
            f"no segmentation model at {path}; give the --out folder of `matsight segment train`"
        )
    meta = _read_meta(file)
    config = SegmentConfig(**meta["config"])
    classes = meta["classes"]
    if config.method == "forest":
        from safetensors.numpy import load_file

        from .forest import Forest

        arrays = {k.split("/", 1)[1]: v for k, v in load_file(str(file)).items() if k.startswith("forest/")}
        estimator = Forest(arrays, meta["n_features"], len(classes))
        n_expected = len(feature_names(config.features, meta["ndim"]))
        if estimator.n_features != n_expected:
            raise InputError(
                f"{file}: forest expects {estimator.n_features} features, config gives {n_expected}"
            )
    else:
        from ..nn.checkpoint import load_checkpoint
        from .unet import SegUNet

        groups, _ = load_checkpoint(file)
        estimator = SegUNet(
            len(classes), config.unet_widths, attention=config.attention, residual=config.residual
        )
        estimator.load_state_dict(groups["unet"])
        estimator.eval()
    return SegmentModel(
        config,
        classes=classes,
        intensity=meta["intensity"],
        ndim=meta["ndim"],
        estimator=estimator,
        scores=meta.get("scores"),
        info=meta.get("info"),
    )


def class_to_phase_lut(model):
    """Lookup table class index → output label (uint8 where possible)."""
    phases = np.asarray(model.phases)
    dtype = np.uint8 if phases.max() < 256 else np.uint16
    return phases.astype(dtype)

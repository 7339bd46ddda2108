"""A trained segmentation model and its on-disk form (a folder: ``model.safetensors`` + ``model.json``).

``model.safetensors`` holds the arrays (forest node tables, or U-Net weights) and, in its metadata, the
JSON description (config, phases, intensity scaling, held-out scores); ``model.json`` is a readable copy.
Loading never unpickles.
"""

import json
import logging
from pathlib import Path

import numpy as np
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from .._atomic import atomic_path, printable, read_json, write_json
from .._errors import InputError
from ..nn.checkpoint import load_checkpoint, save_checkpoint
from .config import SegmentConfig
from .features import feature_names
from .forest import Forest
from .networks import build_network, load_weights

log = logging.getLogger(__name__)

__all__ = ["SegmentModel", "load", "load_model"]

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
    estimator : Forest or matsight.nn.unet.UNet
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
        return self.config.model.method

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
        return feature_names(self.config.model.forest.features, self.ndim) if self.method == "forest" else []

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
                arrays = {f"forest/{k}": v for k, v in self.estimator.arrays.items()}
                meta["n_features"] = self.estimator.n_features
                save_file(arrays, str(tmp / WEIGHTS), metadata={"matsight": json.dumps(meta)})
            else:
                save_checkpoint(tmp / WEIGHTS, {"unet": self.estimator.state_dict()}, meta)
            write_json(tmp / "model.json", meta)
        return path


def _read_meta(file):
    try:
        with safe_open(str(file), framework="np") as f:
            header = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise InputError(
            f"{file} is not a readable model file ({exc}); retrain with matsight segment train"
        ) from exc
    if "matsight" not in header:
        raise InputError(f"{file} has no matsight metadata; it was not written by matsight segment train")
    try:
        meta = json.loads(header["matsight"])
    except ValueError:
        meta = None
    if not isinstance(meta, dict):
        raise InputError(f"{file} has damaged metadata; retrain with matsight segment train")
    if meta.get("format") != FORMAT:
        raise InputError(
            f"{file} is not a segmentation model (another matsight command wrote it); "
            "give the --out folder of `matsight segment train`"
        )
    return meta


def _check_meta(file, meta):
    """Validate the description read from a model file; return ``(config, classes, intensity, ndim)``.

    Configs of either layout load: the nested one and the flat one of earlier versions.
    """
    damaged = f"{file} is damaged ({{}}); retrain with matsight segment train"
    try:
        config = SegmentConfig(**meta["config"])
    except KeyError:
        raise InputError(damaged.format("no config")) from None
    except (TypeError, ValidationError) as exc:
        raise InputError(damaged.format(f"invalid config: {str(exc).splitlines()[0]}")) from None
    classes, intensity, ndim = meta.get("classes"), meta.get("intensity"), meta.get("ndim")
    if (
        not isinstance(classes, list)
        or len(classes) < 2
        or not all(isinstance(c, int) and c >= 1 for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise InputError(damaged.format(f"phase list {classes!r}"))
    ok = (
        isinstance(intensity, list)
        and len(intensity) == 2
        and all(isinstance(v, int | float) and np.isfinite(v) for v in intensity)
        and intensity[1] > intensity[0]
    )
    if not ok:
        raise InputError(damaged.format(f"intensity scaling {intensity!r}"))
    if ndim not in (2, 3):
        raise InputError(damaged.format(f"dimensionality {ndim!r}"))
    return config, [int(c) for c in classes], intensity, ndim


def _int_keys(scores):
    """JSON turns the per-phase keys into strings; give them back as the phase numbers."""
    scores = dict(scores or {})
    per = scores.get("per_phase")
    if isinstance(per, dict):
        scores["per_phase"] = {int(k) if str(k).lstrip("-").isdigit() else k: v for k, v in per.items()}
    return scores


def load(path):
    """Read a model folder written by :meth:`SegmentModel.save` (or its ``model.safetensors``).

    Models of earlier versions (flat config, the U-Net's earlier parameter names) load unchanged.
    """
    path = Path(path)
    file = path / WEIGHTS if path.is_dir() else path
    if not file.is_file():
        raise InputError(
            f"no segmentation model at {path}; give the --out folder of `matsight segment train`"
        )
    meta = _read_meta(file)
    config, classes, intensity, ndim = _check_meta(file, meta)
    if path.is_dir() and (path / "model.json").exists():
        # the readable copy: damage there means the folder was edited or half copied, so say so
        fix = "retrain with `matsight segment train`, or delete it (model.safetensors holds the model)"
        copy = read_json(path / "model.json", what="segmentation model description", fix=fix)
        if copy.get("format") != FORMAT:
            raise InputError(
                f"{printable(path / 'model.json')} is not a segmentation model description; {fix}"
            )
    read = _load_forest if config.model.method == "forest" else _load_unet
    return SegmentModel(
        config,
        classes=classes,
        intensity=intensity,
        ndim=ndim,
        estimator=read(file, meta, config, classes, ndim),
        scores=_int_keys(meta.get("scores")),
        info=meta.get("info"),
    )


load_model = load  # the earlier name


def _load_forest(file, meta, config, classes, ndim):
    try:
        loaded = load_file(str(file))
    except Exception as exc:  # safetensors' own error types for damaged data
        raise InputError(f"{file} is not a readable model file ({exc}); retrain") from exc
    arrays = {k.split("/", 1)[1]: v for k, v in loaded.items() if k.startswith("forest/")}
    n_expected = len(feature_names(config.model.forest.features, ndim))
    if not isinstance(meta.get("n_features"), int) or meta["n_features"] != n_expected:
        raise InputError(
            f"{file}: forest expects {meta.get('n_features')} features, config gives {n_expected}; "
            "the model file is damaged"
        )
    return Forest(arrays, n_expected, len(classes))


def _load_unet(file, meta, config, classes, ndim):
    groups, _ = load_checkpoint(file)
    net = build_network(len(classes), config.model.unet)
    try:
        load_weights(net, groups["unet"])
    except (KeyError, RuntimeError) as exc:
        reason = "no U-Net weights" if isinstance(exc, KeyError) else "weights do not fit the config"
        raise InputError(f"{file} is damaged ({reason}); retrain with matsight segment train") from None
    return net.eval()


def class_to_phase_lut(model):
    """Lookup table class index → output label (uint8 where possible)."""
    phases = np.asarray(model.phases)
    dtype = np.uint8 if phases.max() < 256 else np.uint16
    return phases.astype(dtype)

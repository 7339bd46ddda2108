"""The pair folder of restore: a registered LQ/HQ :class:`Pair` and its files.

:func:`save_pair` writes ``lq.tif``, ``hq.tif``, ``mask.tif``, ``pair.json`` and a before/after
``overlay.png``; :func:`load_pair` reads the folder back. Pairs are made by
:func:`matsight.restore.register.prepare_pair`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from matsight._errors import InputError

__all__ = ["Pair", "load_pair", "save_pair"]


@dataclass
class Pair:
    """A registered LQ/HQ training pair on the HQ grid, both normalised to [-1, 1].

    Attributes
    ----------
    lq_up : ndarray of float32
        LQ upscaled, registered and cropped (the InDI input ``y``).
    hq : ndarray of float32
        HQ cropped to the same region (the target ``x``).
    transform : dict
        ``scale``, ``rotation_deg``, ``shift`` (HQ pixels), ``crop`` ([start, stop] per axis, HQ grid),
        ``deformable`` and registration quality (``ncc_before``, ``ncc_after``).
    stats : dict
        ``{"lq": {...}, "hq": {...}}`` normalisation statistics
        (:func:`~matsight.restore.register.normalise`).
    mask : ndarray of bool or None
        Field of view on the cropped grid (True = sample).
    """

    lq_up: np.ndarray
    hq: np.ndarray
    transform: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    mask: np.ndarray | None = None
    before: np.ndarray | None = field(default=None, repr=False)  # LQ upscaled, unregistered (for the overlay)


def _mid(a):
    return a[a.shape[0] // 2] if a.ndim == 3 else a


def _overlay_png(path, pair):
    """Before/after figure: magenta = LQ, green = HQ; grey where they agree. Pixels of the HQ grid (the pair
    carries no calibration), so the scale bar is in pixels; the colour key is outside the images.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from matsight.report.style import colour_legend, save_figure, show_image

    def rgb(lq, hq):
        a = (np.clip(lq, -1, 1) + 1) / 2
        b = (np.clip(hq, -1, 1) + 1) / 2
        return np.stack([a, b, a], axis=-1)

    hq = _mid(pair.hq)
    panels = [("after registration", _mid(pair.lq_up))]
    if pair.before is not None:
        panels.insert(0, ("before registration", _mid(pair.before)))
    fig = Figure(figsize=(4.5 * len(panels) + 1.6, 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    where = f"slice {pair.hq.shape[0] // 2} of {pair.hq.shape[0]}, " if pair.hq.ndim == 3 else ""
    for ax, (title, lq) in zip(axes, panels, strict=True):
        show_image(ax, rgb(lq, hq), title=f"{title} ({where}{hq.shape[0]}×{hq.shape[1]} px)")
    key = {"LQ brighter": "#FF00FF", "HQ brighter": "#00FF00", "agree": "#808080"}
    colour_legend(axes[-1], key, title="overlay")
    save_figure(fig, path, vector=False)  # a check of the registration, not a figure for a paper


def save_pair(pair, out_dir):
    """Write ``pair`` to ``out_dir`` atomically.

    Files: ``lq.tif``, ``hq.tif`` (float32, [-1, 1]), ``mask.tif`` (if any),
    ``pair.json`` (stats, transform, shapes) and ``overlay.png`` (before/after). Returns the folder path.
    """
    from matsight._atomic import atomic_path, write_json
    from matsight.io import write_volume

    out_dir = Path(out_dir)
    with atomic_path(out_dir, directory=True, keep_other=True) as tmp:
        write_volume(tmp / "lq.tif", pair.lq_up.astype(np.float32))
        write_volume(tmp / "hq.tif", pair.hq.astype(np.float32))
        if pair.mask is not None:
            write_volume(tmp / "mask.tif", pair.mask.astype(np.uint8))
        meta = {
            "format": "matsight-restore-pair",
            "version": 1,
            "shape": list(pair.hq.shape),
            "stats": pair.stats,
            "transform": pair.transform,
            "files": {"lq": "lq.tif", "hq": "hq.tif", "mask": "mask.tif" if pair.mask is not None else None},
        }
        write_json(tmp / "pair.json", meta)
        _overlay_png(tmp / "overlay.png", pair)
    return out_dir


def load_pair(pair_dir):
    """Read a folder written by :func:`save_pair` back into a :class:`Pair`."""
    from matsight._atomic import read_json, require
    from matsight.io import read_volume

    pair_dir = Path(pair_dir)
    meta_path = pair_dir / "pair.json"
    if not meta_path.is_file():
        raise InputError(
            f"{pair_dir} is not a pair folder (no pair.json); "
            "create one with `matsight restore register LQ HQ --out`"
        )
    # a damaged or edited pair.json: one line naming it, not a KeyError deep in training
    what, fix = "pair description", "rerun `matsight restore register` to recreate the pair folder"
    meta = read_json(meta_path, what=what, fix=fix)
    num = (int, float)
    fields = {"files.lq": str, "files.hq": str, "transform": dict}
    if "mask" in (meta.get("files") or {}):
        fields["files.mask"] = (str, type(None))
    fields.update({f"stats.{s}.{k}": num for s in ("lq", "hq") for k in ("lo", "hi")})
    require(meta, fields, path=meta_path, what=what, fix=fix)
    lq = np.asarray(read_volume(pair_dir / meta["files"]["lq"]), dtype=np.float32)
    hq = np.asarray(read_volume(pair_dir / meta["files"]["hq"]), dtype=np.float32)
    m = meta["files"].get("mask")
    mask = np.asarray(read_volume(pair_dir / m)).astype(bool) if m else None
    return Pair(lq_up=lq, hq=hq, transform=meta["transform"], stats=meta["stats"], mask=mask)

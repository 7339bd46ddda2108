"""Enhancement of LQ slices, volumes and time series with a trained InDI model.

Workflow of the nano-tomography paper (Fig. 1D): every xy slice of the LQ volume is upscaled bicubically onto
the HQ pixel size, normalised as in training, enhanced with the ``N``-step sampler (tiles with overlap for
large slices), and the enhanced slices are interpolated cubically along z onto the HQ voxel size. Option
``z_mode="triplanar"``: upscale the whole volume first and average the enhancement of the xy, xz and yz
slices.

Every result carries a *data-consistency map*: the output degraded back onto the LQ grid (area averaging) and
compared with the input after a least-squares grey-level match. Where the model invents structure that the
measurement does not support, the residual shows it (the hallucination concern of generative restoration).

``indi_steps="auto"`` uses the ``N`` chosen on the training pair's validation slices at the end of training
(:mod:`matsight.restore.steps`); the ``N``-step update itself is :func:`matsight.restore.indi.indi_sample`.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage
from skimage.transform import resize

from .._atomic import atomic_path, write_json
from .._errors import InputError
from ..io import read_volume, write_volume
from ..progress import report
from .indi import sample_image
from .networks import context_slices, load_model
from .register import apply_grey_map, denormalise, normalise, upscale
from .series_io import folder_volumes
from .steps import resolve_steps
from .zinterp import zoom_z

log = logging.getLogger(__name__)

TRIPLANAR_PAD = 16  # voxels of mirrored volume around the input in the tri-planar mode

__all__ = [
    "Enhancement",
    "predict",
    "predict_series",
    "predict_path",
    "save_enhancement",
    "consistency_map",
    "read_series",
]


@dataclass
class Enhancement:
    """Result of :func:`predict` (intensities in HQ units when the model has normalisation statistics).

    Attributes
    ----------
    image : ndarray
        The InDI result on the HQ grid.
    bicubic : ndarray
        The baseline: the network input ``y`` (LQ upscaled bicubically, normalised like training) mapped by
        the grey-level line fitted on the training pair (``info["grey_map"]``), in the same units.
    onestep : ndarray or None
        ``N = 1`` (one-step regression) result, when requested.
    consistency : ndarray
        Data-consistency residual on the LQ grid (normalised LQ units, smoothed by one LQ pixel).
    steps : int
    info : dict
        ``consistency_rms`` (InDI), ``consistency_rms_bicubic`` (the floor: interpolation alone),
        ``consistency_rms_onestep``, the scale and timing, the normalisation ``stats`` used (``{"lq", "hq"}``)
        and the training pair's field-of-view radius ``fov_radius`` (HQ pixels; None: no FOV mask).
    """

    image: np.ndarray
    bicubic: np.ndarray
    onestep: np.ndarray | None
    consistency: np.ndarray
    steps: int
    info: dict = field(default_factory=dict)


# -------------------------------------------------------------------------------------------------- helpers
def _load(model, device):
    if isinstance(model, tuple) and len(model) == 2:
        return model
    return load_model(model, device=device)


def _scale_of(meta, ndim, scale):
    if scale is not None:
        s = np.atleast_1d(np.asarray(scale, dtype=float))
    else:
        s = np.atleast_1d(np.asarray(meta.get("transform", {}).get("scale", [1.0]), dtype=float))
    if s.size == 1:
        s = np.repeat(s, ndim)
    elif s.size == 2 and ndim == 3:
        s = np.r_[s[0], s]  # a 2D-trained model: isotropic voxels, z like y
    elif s.size == 3 and ndim == 2:
        s = s[1:]
    if s.size != ndim or np.any(s <= 0):
        raise InputError(
            f"cannot use the scale ({', '.join(f'{v:g}' for v in s)}) for a {ndim}D input; "
            "pass scale= (LQ voxel / HQ voxel)"
        )
    return s


def _check_input(lq, slice_axis):
    a = np.asarray(lq)
    if a.dtype.kind not in "biuf":
        raise InputError(f"the input must be a numeric image, got dtype {a.dtype}")
    if a.ndim == 3 and slice_axis is None:
        raise InputError(
            "the model is 2D (slice-wise) and the input is a 3D volume; pass slice_axis=0 "
            "(xy slices of a ZYX "
            "volume; --slice-axis z on the command line)"
        )
    if a.ndim == 4:
        raise InputError(
            f"the input is 4D {a.shape}; for a time series use predict_series (or a folder of volumes)"
        )
    if a.ndim not in (2, 3):
        raise InputError(f"the input must be a 2D slice or a 3D volume, got shape {a.shape}")
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        n = int((~np.isfinite(a)).sum())
        raise InputError(
            f"the input contains {n} NaN/inf values; fill or crop them (e.g. np.nan_to_num) first"
        )
    return a


def _norm(a, stats):
    if not stats:
        return np.clip(a, -1, 1).astype(np.float32)
    return normalise(a, stats=stats)[0]


def _denorm(a, stats):
    return denormalise(a, stats) if stats else a.astype(np.float32)


def _downsample(img, scale):
    """Area-average ``img`` onto a grid ``scale`` times coarser (per axis; integer or fractional)."""
    s = np.asarray(scale, dtype=float)
    if np.allclose(s, np.round(s)) and np.all(np.round(s) >= 1):
        k = np.round(s).astype(int)
        crop = tuple(slice(0, (n // f) * f) for n, f in zip(img.shape, k, strict=True))
        a = img[crop]
        shape = []
        for n, f in zip(a.shape, k, strict=True):
            shape += [n // f, f]
        return a.reshape(shape).mean(axis=tuple(range(1, 2 * a.ndim, 2)))
    out_shape = tuple(max(1, int(round(n / f))) for n, f in zip(img.shape, s, strict=True))
    return resize(img, out_shape, order=1, anti_aliasing=True, preserve_range=True)


def consistency_map(output, lq, scale, *, smooth=1.0):
    """Degrade ``output`` (HQ grid) back onto the LQ grid and compare with ``lq``.

    ``output`` is area-averaged by ``scale``, matched to ``lq`` by a least-squares grey-level line (the LQ and
    HQ scans may differ in contrast), and subtracted; the residual is smoothed by ``smooth`` LQ pixels so that
    the reconstruction noise of the LQ scan does not dominate.

    Returns
    -------
    residual : ndarray
        ``lq - (a · degrade(output) + b)`` on the LQ grid (cropped to the common shape).
    rms : float
        Root-mean-square of the residual.
    """
    d = _downsample(np.asarray(output, dtype=np.float64), scale)
    lq = np.asarray(lq, dtype=np.float64)
    shape = tuple(min(m, n) for m, n in zip(d.shape, lq.shape, strict=True))
    sl = tuple(slice(0, n) for n in shape)
    d, lq = d[sl], lq[sl]
    A = np.stack([d.ravel(), np.ones(d.size)], 1)
    coef, *_ = np.linalg.lstsq(A, lq.ravel(), rcond=None)
    res = lq - (coef[0] * d + coef[1])
    if smooth:
        res = ndimage.gaussian_filter(res, smooth)
    return res.astype(np.float32), float(np.sqrt(np.mean(res**2)))


def baseline_description(grey_map):
    """How the ``LQ bicubic`` row was produced, in words (for reports and ``enhance.json``)."""
    if grey_map:
        return (
            "LQ upscaled bicubically, normalised with the training LQ's percentiles, grey levels mapped by "
            f"the least-squares line fitted on the training pair (gain {grey_map['gain']:.4g}, offset "
            f"{grey_map['offset']:.4g}), in HQ units"
        )
    return (
        "LQ upscaled bicubically, grey levels mapped percentile to percentile (training LQ's 0.5/99.5 onto "
        "the HQ's): the model predates the fitted line, retrain it for the fair baseline"
    )


# -------------------------------------------------------------------------------------------------- predict
@dataclass
class _Job:
    """One enhancement: the model, the input as slices along axis 0, its grid and normalisation."""

    net: object
    meta: dict
    a: np.ndarray  # the input, slice axis first
    n_steps: int
    s: np.ndarray  # scale per axis (ones when upscaled)
    spacing: np.ndarray  # LQ slice spacing on the enhanced grid, per axis (ones without LQ context)
    lq_stats: dict | None
    hq_stats: dict | None
    tile: int
    overlap: float
    batch: int
    ensemble: bool
    callback: object = None
    seconds: dict = field(default_factory=dict)  # sampling time per N, so an extra N = 1 pass is not billed

    @property
    def context(self):
        return int(self.meta["config"].model.context)

    def slices(self, stack, n, desc, step=1, rows=None):
        """Enhance the slices ``rows`` (default all) of ``stack`` (normalised, on the HQ grid) with ``n`` InDI
        steps; the other slices of ``stack`` serve as the 2.5D network's neighbours only.
        """
        t0 = time.perf_counter()
        rows = range(len(stack)) if rows is None else rows
        out = np.empty((len(rows),) + stack.shape[1:], stack.dtype)
        k, b = self.context, self.batch
        for i in range(0, len(rows), b):
            idx = rows[i : i + b]
            ctx = np.stack([context_slices(stack, j, context=k, step=step) for j in idx]) if k else None
            out[i : i + len(idx)] = sample_image(
                self.net,
                stack[idx.start : idx.stop],
                steps=n,
                tile=self.tile,
                overlap=self.overlap,
                batch=b,
                ensemble=self.ensemble,
                context=ctx,
            )
            report(self.callback, step=i + len(idx), total=len(rows), message=desc)
        self.seconds[n] = self.seconds.get(n, 0.0) + time.perf_counter() - t0
        return out


def is_onestep(meta):
    """Whether the model was trained for direct regression (``training.objective = "onestep"``): applied in
    one network pass. Models saved before the setting existed are InDI models.
    """
    return getattr(meta["config"].training, "objective", "indi") == "onestep"


def _onestep_steps(indi_steps):
    if indi_steps not in (None, 1, "1", "auto") and str(indi_steps).strip().lower() != "auto":
        log.warning(
            "a one-step model (trained for direct regression LQ -> HQ) is applied in one pass; "
            "ignoring --indi-steps %s",
            indi_steps,
        )
    return 1


def _job(model, lq, indi_steps, slice_axis, scale, upscaled, renormalise, tiling, ensemble, device):
    """Load the model and check and orient the input: a :class:`_Job`."""
    a = _check_input(lq, slice_axis)
    if a.ndim == 3:
        if slice_axis not in (0, 1, 2, -1, -2, -3):
            raise InputError(f"slice_axis must be 0, 1 or 2 for a 3D volume, got {slice_axis!r}")
        a = np.moveaxis(a, slice_axis, 0)
    job = setup_job(model, a.ndim, indi_steps, slice_axis, scale, upscaled, tiling, ensemble, device)
    job.a = a
    if renormalise:
        old = job.lq_stats or {}
        pct, span = old.get("percentiles", (0.5, 99.5)), old.get("span", 1.0)
        job.lq_stats = normalise(a, percentiles=pct, span=span)[1]
    return job


def setup_job(model, ndim, indi_steps, slice_axis, scale, upscaled, tiling, ensemble, device):
    """The model, the step count, the grid and the normalisation for an ``ndim``-D input (no pixels yet).

    A :class:`_Job` whose input ``a`` is None; :mod:`matsight.restore.slabs` runs it slab by slab.
    """
    net, meta = _load(model, device)
    cfg = meta["config"].inference
    n_steps = _onestep_steps(indi_steps) if is_onestep(meta) else resolve_steps(indi_steps, meta)
    s = np.ones(ndim) if upscaled else _scale_of(meta, ndim, scale)
    if ndim == 3 and slice_axis not in (0, -3) and scale is None and not upscaled:
        s = np.full(3, s[-1])  # the training scale is in-plane; for other slice axes assume isotropic voxels
    stats = dict(meta.get("stats") or {})
    k_ctx = int(meta["config"].model.context)
    if k_ctx and ndim == 2:
        log.warning("the model reads neighbouring slices (2.5D); the one input slice stands in for them")
    # a 2.5D network was trained with neighbours one LQ slice apart: `scale` slices on an upscaled grid
    spacing = (_scale_of(meta, ndim, scale) if upscaled else s) if k_ctx else np.ones(ndim)
    tile, overlap, batch = tiling
    tile = int(tile or cfg.tile)
    overlap = cfg.overlap if overlap is None else float(overlap)
    return _Job(
        net, meta, None, n_steps, s, spacing, stats.get("lq"), stats.get("hq"), tile, overlap, batch, ensemble
    )


def _cubic(job, wanted, upscaled):
    """The paper's way: enhance the xy slices, then cubic interpolation along z. ``(y, {N: result})``."""
    a, s = job.a, job.s
    plane = a if a.ndim == 3 else a[None]
    sxy = s[-2:]
    y = np.stack([upscale(p, sxy) for p in plane]) if not np.allclose(sxy, 1) else plane.copy()
    y = _norm(y, job.lq_stats)
    # native LQ slices are one LQ slice apart; an input already on the HQ grid, `scale` slices
    step = max(1, int(round(job.spacing[0]))) if upscaled and a.ndim == 3 else 1
    results = {n: job.slices(y, n, f"InDI N={n}", step) for n in wanted}
    if a.ndim == 2:
        return y[0], {n: r[0] for n, r in results.items()}
    if not math.isclose(s[0], 1.0):
        # the slab-wise series path (matsight.restore.slabs) interpolates z with this same function
        n_out = max(1, int(round(len(y) * s[0])))
        y = zoom_z(y, n_in=len(y), n_out=n_out)
        results = {n: zoom_z(r, n_in=len(r), n_out=n_out) for n, r in results.items()}
    return y, results


def _triplanar(job, wanted):
    """Upscale the volume, enhance its slices along all three axes and average. ``(y, {N: result})``."""
    a, s = job.a, job.s
    y = _norm(upscale(a, s), job.lq_stats) if not np.allclose(s, 1) else _norm(a, job.lq_stats)
    # the xz and yz slices end at the volume's first and last z slice, where the network's zero padding
    # darkened them (end slices −1.1 / −0.8 dB against the cubic mode on a synthetic block): mirror the
    # volume by TRIPLANAR_PAD voxels on every side first, so that every border the network sees is inside
    pad = [(min(TRIPLANAR_PAD, n - 1),) * 2 for n in y.shape]
    yp = np.pad(y, pad, mode="reflect")
    inner = tuple(slice(p, p + n) for (p, _), n in zip(pad, y.shape, strict=True))
    results = {}
    for n in wanted:
        acc = np.zeros_like(yp)
        for ax in range(3):
            st = np.moveaxis(yp, ax, 0)
            step = max(1, int(round(job.spacing[ax])))
            st = job.slices(np.ascontiguousarray(st), n, f"InDI N={n} axis {ax}", step)
            acc += np.moveaxis(st, 0, ax)
        results[n] = acc[inner] / 3
    return y, results


def predict(
    model,
    lq,
    *,
    indi_steps=None,
    slice_axis=None,
    z_mode="cubic",
    scale=None,
    upscaled=False,
    onestep=True,
    renormalise=False,
    tile=None,
    overlap=None,
    batch=4,
    ensemble=False,
    device="auto",
    callback=None,
):
    """Enhance an LQ slice or volume with a trained InDI model.

    Parameters
    ----------
    model : path or (net, meta)
        A model folder from :func:`~matsight.restore.train.train` (or what :func:`~.networks.load_model`
        returns).
    lq : ndarray
        LQ slice (YX) or volume (ZYX) on its own (coarse) grid, in raw intensity units.
    indi_steps : int, "auto" or None
        InDI sampling steps ``N`` (1 = one-step regression); ``"auto"``: the ``N`` validated on the training
        pair; None: the config's default (``inference.indi_steps``).
    slice_axis : int, optional
        Required for volumes (the model is 2D): the axis along which slices are taken (0 = xy slices of ZYX).
    z_mode : {"cubic", "triplanar"}
        ``"cubic"`` (paper): enhance the LQ slices, then cubic interpolation along the slice axis;
        ``"triplanar"``: upscale the volume, enhance slices along all three axes and average.
    scale : float or sequence, optional
        LQ voxel / HQ voxel; default the training pair's.
    upscaled : bool
        The input is already on the HQ grid (no upscaling; the consistency map is then taken at that grid).
    onestep : bool
        Also compute the one-step (``N = 1``) result for comparison (not when ``N`` is 1: it is the result).
    renormalise : bool
        Normalise the input by its own percentiles instead of the training LQ statistics (for scans whose grey
        levels drifted).
    tile, overlap, batch
        Tiling of large slices; defaults from the model config.
    ensemble : bool
        Average each step's prediction over the 8 flips/rotations of the slice (8× the time).
    device : str
    callback : callable, optional
        A :mod:`matsight.progress` callback: slices done of each stack.

    Returns
    -------
    Enhancement
    """
    if z_mode not in ("cubic", "triplanar"):
        raise InputError(f"z_mode must be 'cubic' or 'triplanar', got {z_mode!r}")
    tiling = (tile, overlap, batch)
    job = _job(model, lq, indi_steps, slice_axis, scale, upscaled, renormalise, tiling, ensemble, device)
    job.callback = callback
    lq_n = _norm(job.a, job.lq_stats)  # normalised LQ on its own grid, for the consistency check
    t0 = time.perf_counter()
    onestep = onestep and job.n_steps != 1  # N = 1 is the one-step result itself: no second, identical copy
    wanted = [job.n_steps] + ([1] if onestep else [])
    if job.a.ndim == 2 or z_mode == "cubic":
        y, results = _cubic(job, wanted, upscaled)
    else:
        y, results = _triplanar(job, wanted)
    # the enhancement's own time: the extra N = 1 pass for comparison is reported apart
    extra = job.seconds.get(1, 0.0) if onestep else None
    info = {"steps": job.n_steps, "scale": [float(v) for v in job.s], "z_mode": z_mode}
    info["objective"] = "onestep" if is_onestep(job.meta) else "indi"
    info.update(
        ensemble=bool(ensemble), seconds=time.perf_counter() - t0 - (extra or 0.0), seconds_onestep=extra
    )
    return _enhancement(
        job, y, results, lq_n, info, onestep=onestep, upscaled=upscaled, slice_axis=slice_axis
    )


def _enhancement(job, y, results, lq_n, info, *, onestep, upscaled, slice_axis):
    """The :class:`Enhancement`: consistency maps, HQ units, the input's axis order."""
    n_steps = job.n_steps
    ds = job.s if not upscaled else np.ones(job.a.ndim)
    cons, rms = consistency_map(results[n_steps], lq_n, ds)
    info.update(
        consistency_rms=rms,
        consistency_rms_bicubic=consistency_map(y, lq_n, ds)[1],
        # what `evaluate --lq` needs to put a raw LQ baseline into the output's (HQ) units, and the FOV
        stats={"lq": job.lq_stats, "hq": job.hq_stats},
        fov_radius=(job.meta.get("transform") or {}).get("fov_radius"),
    )
    if onestep:
        info["consistency_rms_onestep"] = consistency_map(results[1], lq_n, ds)[1]

    def back(v):
        v = _denorm(v, job.hq_stats)
        return np.moveaxis(v, 0, slice_axis) if v.ndim == 3 else v

    # the baseline gets the grey-level line fitted on the training pair, as InDI learned its mapping there;
    # models trained before it was recorded keep the percentile-to-percentile map (understated, issue #38)
    grey_map = job.meta.get("grey_map")
    info["baseline"] = baseline_description(grey_map)
    info["classical"] = job.meta.get("classical")  # tuned denoisers for the classical rows of evaluate
    info["grey_map"] = grey_map

    if job.a.ndim == 3:
        cons = np.moveaxis(cons, 0, slice_axis)
    return Enhancement(
        image=back(results[n_steps]),
        bicubic=back(apply_grey_map(y, grey_map)),
        onestep=back(results[1]) if onestep else None,
        consistency=cons,
        steps=n_steps,
        info=info,
    )


def read_series(source):
    """Frames of a time series: a folder of volumes/images (sorted by name), a list of arrays or a 4D array.

    Returns a list of ``(name, array)``.
    """
    if isinstance(source, str | Path) and Path(source).is_dir():
        files = folder_volumes(Path(source))
        return [(p.stem, np.asarray(read_volume(p))) for p in files]
    if isinstance(source, np.ndarray) and source.ndim == 4:
        return [(f"t{i:03d}", f) for i, f in enumerate(source)]
    if isinstance(source, list | tuple):
        return [(f"t{i:03d}", np.asarray(f)) for i, f in enumerate(source)]
    raise InputError("a time series must be a folder of volumes, a list of arrays or a 4D (T, Z, Y, X) array")


def predict_series(model, frames, **kwargs):
    """Enhance every time step of a series with one model (no retraining); returns ``[(name, Enhancement)]``.

    ``frames`` as :func:`read_series`; keyword arguments as :func:`predict` (the model is loaded once).
    """
    device = kwargs.pop("device", "auto")
    loaded = _load(model, device)
    out = []
    for name, frame in read_series(frames):
        log.info("enhancing time step %s %s", name, frame.shape)
        out.append((name, predict(loaded, frame, device=device, **kwargs)))
    return out


def predict_path(model, source, out_dir, *, slice_axis=0, device="auto", **kwargs):
    """Enhance a file (slice or volume) or a folder of time steps and save every result.

    Parameters
    ----------
    model : path
        Model folder of :func:`~matsight.restore.train.train`.
    source : path
        An LQ image/volume file, or a folder with one volume per time step (sorted by name).
    out_dir : path
        Output folder: :func:`save_enhancement`'s files, or one sub-folder per time step.
    slice_axis : int
        Slice axis for volumes (0 = xy slices of ZYX); ignored for 2D images.
    device : str
        Torch device.
    **kwargs
        As :func:`predict` (``indi_steps``, ``z_mode``, ``upscaled``, ``onestep``, ``callback``, ...).

    Returns
    -------
    list of (str, Enhancement)
        ``("", result)`` for a single file; ``(name, result)`` per time step of a folder.
    """
    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise InputError(f"input not found: {source}")
    if source.is_dir() and source.suffix.lower() != ".zarr":
        frames = predict_series(model, source, slice_axis=slice_axis, device=device, **kwargs)
        for name, res in frames:
            save_enhancement(res, out_dir / name, extra={"model": str(model), "input": name})
        return frames
    lq = np.asarray(read_volume(source))
    res = predict(model, lq, slice_axis=slice_axis if lq.ndim == 3 else None, device=device, **kwargs)
    save_enhancement(res, out_dir, extra={"model": str(model), "input": str(source)})
    return [("", res)]


def save_enhancement(result, out_dir, *, extra=None):
    """Write an :class:`Enhancement` to ``out_dir`` atomically: ``enhanced.tif``, ``bicubic.tif``,
    ``onestep.tif`` (if computed), ``consistency.tif`` and ``enhance.json`` (steps, scale, timings, extra).
    """
    out_dir = Path(out_dir)
    with atomic_path(out_dir, directory=True, keep_other=True) as tmp:
        write_volume(tmp / "enhanced.tif", result.image.astype(np.float32))
        write_volume(tmp / "bicubic.tif", result.bicubic.astype(np.float32))
        if result.onestep is not None:
            write_volume(tmp / "onestep.tif", result.onestep.astype(np.float32))
        write_volume(tmp / "consistency.tif", result.consistency.astype(np.float32))
        write_json(tmp / "enhance.json", {**result.info, **(extra or {})})
    return out_dir

"""Enhancement of LQ slices, volumes and time series with a trained InDI model.

Workflow of the nano-tomography paper (Fig. 1D): every xy slice of the LQ volume is upscaled bicubically onto
the HQ pixel size, normalised as in training, enhanced with the ``N``-step sampler (tiles with overlap for
large slices), and the enhanced slices are interpolated cubically along z onto the HQ voxel size. Option
``z_mode="triplanar"``: upscale the whole volume first and average the enhancement of the xy, xz and yz
slices.

Every result carries a *data-consistency map*: the output degraded back onto the LQ grid (area averaging) and
compared with the input after a least-squares grey-level match. Where the model invents structure that the
measurement does not support, the residual shows it (the hallucination concern of generative restoration).

``steps="auto"`` uses the ``N`` chosen on the training pair's validation slices at the end of training
(:mod:`matsight.restore.steps`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .._errors import InputError
from .steps import resolve_steps

log = logging.getLogger(__name__)

__all__ = [
    "Enhancement",
    "enhance",
    "enhance_series",
    "consistency_map",
    "read_series",
]


@dataclass
class Enhancement:
    """Result of :func:`enhance` (intensities in HQ units when the model has normalisation statistics).

    Attributes
    ----------
    image : ndarray
        The InDI result on the HQ grid.
    bicubic : ndarray
        The network input ``y`` (LQ upscaled bicubically, normalised like training) in the same units.
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
    from .train import load_model

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
            f"the input is 4D {a.shape}; for a time series use enhance_series (or a folder of volumes)"
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
    from .register import normalise

    if not stats:
        return np.clip(a, -1, 1).astype(np.float32)
    return normalise(a, stats=stats)[0]


def _denorm(a, stats):
    from .register import denormalise

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
    from skimage.transform import resize

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


# -------------------------------------------------------------------------------------------------- enhance
def enhance(
    model,
    lq,
    *,
    steps=None,
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
    progress=False,
):
    """Enhance an LQ slice or volume with a trained InDI model.

    Parameters
    ----------
    model : path or (net, meta)
        A model folder from :func:`~matsight.restore.train.train` (or what :func:`load_model` returns).
    lq : ndarray
        LQ slice (YX) or volume (ZYX) on its own (coarse) grid, in raw intensity units.
    steps : int, "auto" or None
        Sampling steps ``N`` (1 = one-step regression); ``"auto"``: the ``N`` validated on the training pair;
        None: the config's default.
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
        Also compute the one-step (``N = 1``) result for comparison.
    renormalise : bool
        Normalise the input by its own percentiles instead of the training LQ statistics (for scans whose grey
        levels drifted).
    tile, overlap, batch
        Tiling of large slices; defaults from the model config.
    ensemble : bool
        Average each step's prediction over the 8 flips/rotations of the slice (8× the time).
    device : str
    progress : bool

    Returns
    -------
    Enhancement
    """
    import time

    from .indi import context_slices, sample_image
    from .register import normalise, upscale

    net, meta = _load(model, device)
    cfg = meta["config"]
    n_steps = resolve_steps(steps, meta)
    if z_mode not in ("cubic", "triplanar"):
        raise InputError(f"z_mode must be 'cubic' or 'triplanar', got {z_mode!r}")
    a = _check_input(lq, slice_axis)
    if a.ndim == 3:
        if slice_axis not in (0, 1, 2, -1, -2, -3):
            raise InputError(f"slice_axis must be 0, 1 or 2 for a 3D volume, got {slice_axis!r}")
        a = np.moveaxis(a, slice_axis, 0)
    s = np.ones(a.ndim) if upscaled else _scale_of(meta, a.ndim, scale)
    if a.ndim == 3 and slice_axis not in (0, -3) and scale is None and not upscaled:
        s = np.full(3, s[-1])  # the training scale is in-plane; for other slice axes assume isotropic voxels
    stats = dict(meta.get("stats") or {})
    lq_stats, hq_stats = stats.get("lq"), stats.get("hq")
    if renormalise:
        lq_stats = normalise(a, percentiles=(lq_stats or {}).get("percentiles", (0.5, 99.5)))[1]
    tile = int(tile or cfg.tile)
    overlap = cfg.overlap if overlap is None else float(overlap)
    lq_n = _norm(a, lq_stats)  # normalised LQ on its own grid, for the consistency check
    k_ctx = int(cfg.context)
    if k_ctx and a.ndim == 2:
        log.warning("the model reads neighbouring slices (2.5D); the one input slice stands in for them")
    # a 2.5D network was trained with neighbours one LQ slice apart: `scale` slices on an upscaled grid
    spacing = (_scale_of(meta, a.ndim, scale) if upscaled else s) if k_ctx else np.ones(a.ndim)
    t0 = time.perf_counter()

    def run(stack, n, ctx):
        return sample_image(
            net, stack, steps=n, tile=tile, overlap=overlap, batch=batch, ensemble=ensemble, context=ctx
        )

    def slices_of(stack, n, desc, step=1):
        out = np.empty_like(stack)
        bar = None
        if progress and len(stack) > 1:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task(desc, total=len(stack))
        try:
            for i in range(0, len(stack), batch):
                idx = range(i, min(i + batch, len(stack)))
                ctx = (
                    np.stack([context_slices(stack, j, context=k_ctx, step=step) for j in idx])
                    if k_ctx
                    else None
                )
                out[i : i + batch] = run(stack[i : i + batch], n, ctx)
                if bar is not None:
                    bar.advance(task, min(batch, len(stack) - i))
        finally:
            if bar is not None:
                bar.stop()
        return out

    results = {}
    wanted = [n_steps] + ([1] if onestep and n_steps != 1 else [])
    if a.ndim == 2 or z_mode == "cubic":
        plane = a if a.ndim == 3 else a[None]
        sxy = s[-2:]
        y = np.stack([upscale(p, sxy) for p in plane]) if not np.allclose(sxy, 1) else plane.copy()
        y = _norm(y, lq_stats)
        # native LQ slices are one LQ slice apart; an input already on the HQ grid, `scale` slices
        step = max(1, int(round(spacing[0]))) if upscaled and a.ndim == 3 else 1
        for n in wanted:
            results[n] = slices_of(y, n, f"InDI N={n}", step)
        if a.ndim == 2:
            y = y[0]
            results = {n: r[0] for n, r in results.items()}
        elif not math.isclose(s[0], 1.0):
            y = upscale(y, (s[0], 1, 1))
            results = {n: upscale(r, (s[0], 1, 1)) for n, r in results.items()}
    else:
        y = _norm(upscale(a, s), lq_stats) if not np.allclose(s, 1) else _norm(a, lq_stats)
        for n in wanted:
            acc = np.zeros_like(y)
            for ax in range(3):
                st = np.moveaxis(y, ax, 0)
                step = max(1, int(round(spacing[ax])))
                st = slices_of(np.ascontiguousarray(st), n, f"InDI N={n} axis {ax}", step)
                acc += np.moveaxis(st, 0, ax)
            results[n] = acc / 3
    dt = time.perf_counter() - t0
    ds = s if not upscaled else np.ones(a.ndim)
    cons, rms = consistency_map(results[n_steps], lq_n, ds)
    info = {
        "steps": n_steps,
        "scale": [float(v) for v in s],
        "z_mode": z_mode,
        "ensemble": bool(ensemble),
        "seconds": dt,
        "consistency_rms": rms,
        "consistency_rms_bicubic": consistency_map(y, lq_n, ds)[1],
        # what `evaluate --lq` needs to put a raw LQ baseline into the output's (HQ) units, and the FOV
        "stats": {"lq": lq_stats, "hq": hq_stats},
        "fov_radius": (meta.get("transform") or {}).get("fov_radius"),
    }
    if onestep:
        info["consistency_rms_onestep"] = consistency_map(results[1], lq_n, ds)[1]

    def back(v):
        v = _denorm(v, hq_stats)
        return np.moveaxis(v, 0, slice_axis) if v.ndim == 3 else v

    if a.ndim == 3:
        cons = np.moveaxis(cons, 0, slice_axis)
    return Enhancement(
        image=back(results[n_steps]),
        bicubic=back(y),
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
        from ..io import read_volume

        exts = {".tif", ".tiff", ".npy", ".zarr"}
        files = sorted(p for p in Path(source).iterdir() if p.suffix.lower() in exts)
        if not files:
            raise InputError(f"{source} holds no .tif/.npy/.zarr frames; put one volume per time step there")
        # each time step is named (and saved) by its file's stem: T0.tif and T0.npy would overwrite each other
        by_stem = {}
        for p in files:
            if p.stem in by_stem:
                raise InputError(
                    f"{source} holds two time steps named {p.stem}: {by_stem[p.stem].name} and {p.name}; "
                    "keep one of them or rename the other"
                )
            by_stem[p.stem] = p
        return [(p.stem, np.asarray(read_volume(p))) for p in files]
    if isinstance(source, np.ndarray) and source.ndim == 4:
        return [(f"t{i:03d}", f) for i, f in enumerate(source)]
    if isinstance(source, list | tuple):
        return [(f"t{i:03d}", np.asarray(f)) for i, f in enumerate(source)]
    raise InputError("a time series must be a folder of volumes, a list of arrays or a 4D (T, Z, Y, X) array")


def enhance_series(model, frames, **kwargs):
    """Enhance every time step of a series with one model (no retraining); returns ``[(name, Enhancement)]``.

    ``frames`` as :func:`read_series`; keyword arguments as :func:`enhance` (the model is loaded once).
    """
    device = kwargs.pop("device", "auto")
    loaded = _load(model, device)
    out = []
    for name, frame in read_series(frames):
        log.info("enhancing time step %s %s", name, frame.shape)
        out.append((name, enhance(loaded, frame, device=device, **kwargs)))
    return out


def enhance_path(model, source, out_dir, *, slice_axis=0, device="auto", **kwargs):
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
        As :func:`enhance` (``steps``, ``z_mode``, ``upscaled``, ``onestep``, ``progress``, ...).

    Returns
    -------
    list of (str, Enhancement)
        ``("", result)`` for a single file; ``(name, result)`` per time step of a folder.
    """
    from ..io import read_volume

    source, out_dir = Path(source), Path(out_dir)
    if not source.exists():
        raise InputError(f"input not found: {source}")
    if source.is_dir() and source.suffix.lower() != ".zarr":
        frames = enhance_series(model, source, slice_axis=slice_axis, device=device, **kwargs)
        for name, res in frames:
            save_enhancement(res, out_dir / name, extra={"model": str(model), "input": name})
        return frames
    lq = np.asarray(read_volume(source))
    res = enhance(model, lq, slice_axis=slice_axis if lq.ndim == 3 else None, device=device, **kwargs)
    save_enhancement(res, out_dir, extra={"model": str(model), "input": str(source)})
    return [("", res)]


def save_enhancement(result, out_dir, *, extra=None):
    """Write an :class:`Enhancement` to ``out_dir`` atomically: ``enhanced.tif``, ``bicubic.tif``,
    ``onestep.tif`` (if computed), ``consistency.tif`` and ``enhance.json`` (steps, scale, timings, extra).
    """
    from .._atomic import atomic_path, write_json
    from ..io import write_volume

    out_dir = Path(out_dir)
    with atomic_path(out_dir, directory=True, keep_other=True) as tmp:
        write_volume(tmp / "enhanced.tif", result.image.astype(np.float32))
        write_volume(tmp / "bicubic.tif", result.bicubic.astype(np.float32))
        if result.onestep is not None:
            write_volume(tmp / "onestep.tif", result.onestep.astype(np.float32))
        write_volume(tmp / "consistency.tif", result.consistency.astype(np.float32))
        write_json(tmp / "enhance.json", {**result.info, **(extra or {})})
    return out_dir

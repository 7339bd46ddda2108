"""SuperRes prediction (generation): any LR volume → super-resolved n-phase volume(s), tile by tile.

The generator is fully convolutional, so a volume of any size is generated as a grid of LR tiles, each
padded by a halo at least as wide as the generator's receptive field (computed from its layers by
:func:`receptive_radius`). Inside a tile, feature maps are cropped after the LR trunk and after every
upsampling stage to the margin the remaining layers still need, so the costly full-resolution layers do
almost no redundant work. Tiles that touch a face of the volume see the same replicate padding as the whole
volume would, so the tiled output equals the untiled one (up to float rounding: the convolution kernels
oneDNN picks depend on the tile's shape, so a voxel whose two best logits tie may flip).

The noise channel is one field over the whole LR volume, drawn block by block (``NOISE_BLOCK`` LR voxels
per edge, each block seeded from ``(seed, sample, block index)``), so any tile can draw its part without
the field ever being held in memory, and the result does not depend on the tiling.

Peak memory depends on the tile size, not on the volume: labels are written tile by tile into the output
(a numpy array for .tif/.npy or in-memory results, or a zarr store streamed to disk). With ``samples=K``
the generator runs K times per tile with K noise fields, and the per-voxel phase entropy across the
samples is the uncertainty map.

Alignment with the LR grid: output voxel ``j`` lies in LR voxel ``floor(j / sf)``. For a fractional
``sf = p/q`` the LR volume is padded at its far faces (replicate) to a multiple of ``q`` voxels and the
output is cut back to ``floor(N·sf)`` voxels. By default one LR voxel (``ceil(sf)`` output voxels) is
cropped from every face, as in the paper: the generator never sees context beyond the volume there.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .._errors import InputError
from ..nn.device import resolve_device
from ..progress import report
from .config import FuseConfig, InferenceConfig
from .run import load

log = logging.getLogger(__name__)

__all__ = [
    "NOISE_BLOCK",
    "SCHEDULERS",
    "Generated",
    "border_voxels",
    "generate",
    "predict",
    "noise_field",
    "output_shape",
    "receptive_radius",
    "sample_paths",
]

SCHEDULERS = ("threads", "processes", "synchronous")  # dask's names that need no running cluster
NOISE_BLOCK = 16  # LR voxels per edge of one independently seeded noise block (fixed: part of the result)


@dataclass
class Generated:
    """What :func:`predict` returns.

    Attributes
    ----------
    labels : ndarray or zarr.Array
        The first sample, ``uint8`` phase labels (ZYX).
    samples : list
        All ``K`` samples (``samples[0] is labels``).
    entropy : ndarray or zarr.Array or None
        Per-voxel phase entropy across the samples divided by ``ln(n_phases)`` (0 = all samples agree,
        1 = all phases equally often); ``None`` for one sample.
    paths : dict
        ``{"samples": [Path, ...], "entropy": Path}`` of the files written (empty without ``out``).
    scale : float
        Scale factor.
    border : int
        Output voxels cropped from every face.
    seconds : float
        Wall time of the generation.
    """

    labels: object
    samples: list
    entropy: object
    paths: dict = field(default_factory=dict)
    scale: float = 1.0
    border: int = 0
    seconds: float = 0.0

    @property
    def voxels_per_second(self):
        """Output voxels (all samples) per second of wall time."""
        n = int(np.prod(self.labels.shape)) * len(self.samples)
        return n / self.seconds if self.seconds > 0 else float("nan")


# ------------------------------------------------------------------------------------------ geometry
def _scale_of(d):
    return Fraction(64, int(d))


def border_voxels(scale):
    """Output voxels cropped per face by default: one LR voxel, ``ceil(sf)``."""
    return int(math.ceil(float(scale) - 1e-9))


def output_shape(lr_shape, scale, *, crop=True):
    """Shape of the generated volume for an LR volume of ``lr_shape`` (``floor(N·sf)`` minus the border)."""
    sf = Fraction(scale).limit_denominator(64)
    b = border_voxels(sf) if crop else 0
    return tuple(int(math.floor(n * sf)) - 2 * b for n in lr_shape)


def sample_paths(out, samples):
    """``(sample paths, entropy path)`` for ``out``: ``SR.tif``, ``SR_sample1.tif``…, ``SR_entropy.tif``."""
    out = Path(out)
    suffix = out.suffix
    stem = out.name[: -len(suffix)] if suffix else out.name
    paths = [out] + [out.with_name(f"{stem}_sample{k}{suffix}") for k in range(1, samples)]
    ent = out.with_name(f"{stem}_entropy{suffix}") if samples > 1 else None
    return paths, ent


@dataclass
class _Group:
    """A run of generator layers between two crop points."""

    fn: object
    factor: Fraction  # spatial scale factor of the group
    c_in: Fraction  # cumulative scale (output voxels per LR voxel) at the group's input
    radius: Fraction  # receptive radius of the group in LR voxels
    need_after: Fraction = Fraction(0)  # radius of all later groups, LR voxels


def _conv_radius(module):
    import torch.nn as nn

    r = 0
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            k, dil = m.kernel_size[0], m.dilation[0]
            r += dil * (k - 1) // 2
    return r


def _groups(gen):
    """Split a SuperRes :class:`~matsight.fuse.networks.Generator` into crop-able groups with their radii."""
    import torch.nn.functional as F

    needed = ("conv_in", "bn_in", "res", "up", "conv_out", "d")
    if not all(hasattr(gen, a) for a in needed):
        raise InputError(
            f"{type(gen).__name__} is not a SuperRes generator; give a run folder or matsight.fuse Generator"
        )

    def trunk(x):
        first = F.relu(gen.bn_in(gen.conv_in(x)))
        return first + gen.res(first)

    groups = [
        _Group(trunk, Fraction(1), Fraction(1), Fraction(_conv_radius(gen.conv_in) + _conv_radius(gen.res)))
    ]
    c = Fraction(1)
    for stage in gen.up:
        f = Fraction(stage.factor)
        if stage.kind == "convT":
            # ConvTranspose3d(k4, s2, p1): an output voxel depends on inputs within 0.75 input voxels
            rad = Fraction(1) / c
        else:
            # trilinear resampling reaches < 1 input voxel; then a k3 conv at the output resolution
            rad = (Fraction(1) if f != 1 else Fraction(0)) / c + Fraction(_conv_radius(stage.conv)) / (c * f)
        groups.append(_Group(stage, f, c, rad))
        c = c * f
    groups.append(_Group(gen.conv_out, Fraction(1), c, Fraction(_conv_radius(gen.conv_out)) / c))
    total = Fraction(0)
    for g in reversed(groups):
        g.need_after = total
        total += g.radius
    if c != _scale_of(gen.d):
        raise InputError(f"generator stages give scale {c}, expected 64/{gen.d}")
    return groups


def receptive_radius(gen):
    """Receptive radius of the generator in LR voxels (an upper bound; exact Fraction)."""
    return sum((g.radius for g in _groups(gen)), Fraction(0))


def _lcm_den(values):
    out = 1
    for v in values:
        out = math.lcm(out, Fraction(v).denominator)
    return out


def _scales_after(groups, i):
    """Cumulative scales at the outputs of groups ``i..`` (for alignment of crops at group ``i``'s output)."""
    c = groups[i].c_in * groups[i].factor
    return [(g.c_in * g.factor) / c for g in groups[i + 1 :]]


def _forward_tile(groups, x, lo, hi):
    """Run the groups on tile ``x`` (margins ``lo``/``hi`` LR voxels per axis), return the core's logits."""
    lo = [Fraction(v) for v in lo]
    hi = [Fraction(v) for v in hi]
    h = x
    for i, g in enumerate(groups):
        h = g.fn(h)
        c_out = g.c_in * g.factor
        step = _lcm_den(_scales_after(groups, i))  # kept margins must stay whole voxels downstream
        idx = [slice(None), slice(None)]
        for a in range(3):
            sl = []
            for m in (lo, hi):
                avail = m[a] * c_out  # voxels of margin at this resolution (integer by alignment)
                keep = min(avail, math.ceil(g.need_after * c_out / step) * step)
                sl.append(avail - keep)
                m[a] = keep / c_out
            n = h.shape[2 + a]
            idx.append(slice(int(sl[0]), n - int(sl[1])))
        h = h[tuple(idx)]
    return h


# ------------------------------------------------------------------------------------------ noise
def _block_noise(seed, sample, block):
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(sample), *(int(b) for b in block)])
    return rng.standard_normal((NOISE_BLOCK,) * 3, dtype=np.float32)


def noise_field(origin, size, *, seed=0, sample=0):
    """The N(0, 1) noise of region ``[origin, origin + size)`` of the (unbounded) LR noise field.

    Deterministic per ``(seed, sample)`` and independent of how the volume is tiled: the field is made of
    ``NOISE_BLOCK³`` blocks, each drawn from its own seeded generator.
    """
    origin = [int(o) for o in origin]
    size = [int(s) for s in size]
    out = np.empty(size, dtype=np.float32)
    ranges = [
        range(o // NOISE_BLOCK, (o + s - 1) // NOISE_BLOCK + 1) for o, s in zip(origin, size, strict=True)
    ]
    for block in itertools.product(*ranges):
        b0 = [k * NOISE_BLOCK for k in block]
        lo = [max(o, b) for o, b in zip(origin, b0, strict=True)]
        hi = [min(o + s, b + NOISE_BLOCK) for o, s, b in zip(origin, size, b0, strict=True)]
        noise = _block_noise(seed, sample, block)
        src = tuple(slice(lo_ - b, hi_ - b) for lo_, hi_, b in zip(lo, hi, b0, strict=True))
        dst = tuple(slice(lo_ - o, hi_ - o) for lo_, hi_, o in zip(lo, hi, origin, strict=True))
        out[dst] = noise[src]
    return out


# ------------------------------------------------------------------------------------------ inputs
def _resolve_generator(generator_or_run, device):
    import torch

    """``(generator, inference settings)`` of a run folder, checkpoint, generator or ``load``'s tuple."""
    inference = InferenceConfig()
    if isinstance(generator_or_run, str | Path):
        gen, cfg, _ = load(generator_or_run, device=device)
        inference = cfg.inference
    elif isinstance(generator_or_run, tuple | list) and isinstance(generator_or_run[0], torch.nn.Module):
        gen = copy.deepcopy(generator_or_run[0])  # the caller's module is left as it was
        if len(generator_or_run) > 1 and isinstance(generator_or_run[1], FuseConfig):
            inference = generator_or_run[1].inference
    elif isinstance(generator_or_run, torch.nn.Module):
        gen = copy.deepcopy(generator_or_run)
    else:
        raise InputError(
            f"give a run folder, a checkpoint or a Generator, got {type(generator_or_run).__name__}"
        )
    # channels-last 3D: oneDNN's fast path for the full-resolution convolutions (~2x on CPU, measured)
    return gen.to(device).eval().to(memory_format=torch.channels_last_3d), inference


def _read_lr(lr, lo, hi):
    """LR region ``[lo, hi)`` as a numpy array; beyond the volume's far faces the edge is replicated."""
    n = lr.shape
    src = tuple(slice(a, min(b, s)) for a, b, s in zip(lo, hi, n, strict=True))
    block = np.asarray(lr[src])
    pad = [(0, max(0, b - s)) for b, s in zip(hi, n, strict=True)]
    if any(p[1] for p in pad):
        block = np.pad(block, pad, mode="edge")
    return block


def _check_lr(lr, n_lr):
    if lr.ndim != 3:
        raise InputError(f"the LR volume must be 3D (ZYX), got shape {tuple(lr.shape)}")
    if any(s < 1 for s in lr.shape):
        raise InputError(f"the LR volume is empty (shape {tuple(lr.shape)})")
    if isinstance(lr, np.ndarray):
        from .data import as_labels

        lr = as_labels(lr, name="LR volume")
        if int(lr.max()) >= n_lr:
            raise InputError(
                f"the LR volume has labels up to {int(lr.max())} but the generator was trained on {n_lr} LR "
                f"phases (0..{n_lr - 1}); give the LR volume the run was trained with, or relabel it"
            )
    elif np.dtype(lr.dtype).kind not in "biu":
        raise InputError(f"the LR volume must hold integer labels, got {lr.dtype}; segment it first")
    return lr


def _tile_input(lr_tile, n_lr, noise):
    """One-hot LR + noise, ``(1, n_lr + 1, z, y, x)`` float32, built without an int64 one-hot copy."""
    import torch

    x = torch.empty((1, n_lr + 1, *lr_tile.shape), dtype=torch.float32)
    t = torch.from_numpy(np.ascontiguousarray(lr_tile))
    for c in range(n_lr):
        x[0, c].copy_(t == c)
    x[0, n_lr].copy_(torch.from_numpy(noise))
    return x


def _entropy(labels, n_phases):
    """Phase entropy across samples (first axis), normalised by ``ln(n_phases)``; float32."""
    k = labels.shape[0]
    h = np.zeros(labels.shape[1:], dtype=np.float32)
    for p in range(n_phases):
        c = np.count_nonzero(labels == p, axis=0)
        if not c.any():
            continue
        pr = c.astype(np.float32) / k
        with np.errstate(divide="ignore", invalid="ignore"):
            h -= np.where(pr > 0, pr * np.log(pr), 0).astype(np.float32)
    return h / np.float32(math.log(n_phases)) if n_phases > 1 else h


# ------------------------------------------------------------------------------------------ main
@dataclass
class _Plan:
    """Where the tiles lie: the LR grid, the output grid and the generator's halo."""

    groups: list
    n_lr: int
    n_hr: int
    sf: Fraction
    shape: tuple
    padded: tuple
    out_len: tuple
    border: int
    final: tuple
    halo: int
    tiles: list


def _plan(gen, shape, *, tile, overlap, crop):
    groups = _groups(gen)
    sf = _scale_of(gen.d)
    q = _lcm_den([g.c_in * g.factor for g in groups])
    padded = tuple(-(-s // q) * q for s in shape)
    out_len = tuple(int(math.floor(s * sf)) for s in shape)
    b = border_voxels(sf) if crop else 0
    final = tuple(n - 2 * b for n in out_len)
    if min(final) < 1:
        raise InputError(
            f"an LR volume of {shape} gives no output after cropping {b} voxels per face; give a larger LR "
            "volume or keep the border (crop=False / --keep-border)"
        )
    halo = _halo(gen, q, overlap)
    tile = _tile_edge(tile, sf, q)
    # tiles whose core output meets the kept window [b, out_len - b)
    starts = []
    for ax in range(3):
        ax_starts = []
        for o in range(0, padded[ax], tile):
            e = min(o + tile, padded[ax])
            if int(e * sf) > b and int(o * sf) < out_len[ax] - b:
                ax_starts.append((o, e))
        starts.append(ax_starts)
    return _Plan(
        groups=groups,
        n_lr=gen.conv_in.in_channels - 1,
        n_hr=gen.conv_out.out_channels,
        sf=sf,
        shape=shape,
        padded=padded,
        out_len=out_len,
        border=b,
        final=final,
        halo=halo,
        tiles=list(itertools.product(*starts)),
    )


def _halo(gen, q, overlap):
    """The halo: the receptive radius (or ``overlap``) in whole LR voxels, aligned to ``q``."""
    radius = receptive_radius(gen)
    h_min = -(-math.ceil(radius) // q) * q
    if overlap is None:
        return h_min
    halo = -(-int(overlap) // q) * q
    if halo < math.ceil(radius):
        raise InputError(
            f"overlap {overlap} LR voxels is below the generator's receptive radius ({float(radius):.3g}); "
            f"use at least {h_min} (or leave it out) so tiles join without seams"
        )
    return halo


def _tile_edge(tile, sf, q):
    if tile is None:
        tile = max(q, int(128 / sf) // q * q)
    tile = int(tile)
    if tile < 1:
        raise InputError(f"tile must be a positive number of LR voxels, got {tile}")
    return max(q, tile // q * q)


def _run_tile(plan, lr, core, *, seed, samples, device):
    """The ``samples`` label tiles of one tile core (with its halo), as uint8 arrays."""
    import torch

    lo = [max(0, o - plan.halo) for o, _ in core]
    hi = [min(p, e + plan.halo) for (_, e), p in zip(core, plan.padded, strict=True)]
    lr_tile = _read_lr(lr, lo, hi)
    if not isinstance(lr, np.ndarray) and lr_tile.size and int(lr_tile.max()) >= plan.n_lr:
        raise InputError(
            f"the LR volume has label {int(lr_tile.max())} but the generator knows {plan.n_lr} LR phases"
        )
    labs = []
    for k in range(samples):
        noise = noise_field(lo, [e - s for s, e in zip(lo, hi, strict=True)], seed=seed, sample=k)
        x = _tile_input(lr_tile, plan.n_lr, noise).to(device).contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            logits = _forward_tile(
                plan.groups,
                x,
                [o - s for (o, _), s in zip(core, lo, strict=True)],
                [e_in - e for (_, e), e_in in zip(core, hi, strict=True)],
            )
            labs.append(logits[0].argmax(0).to(torch.uint8).cpu().numpy())
        del x, logits
    return labs


def _destinations(stack, plan, out, samples, seed, out_sp):
    """``(sample arrays, entropy array or None)``: zarr stores being written for ``.zarr``, else numpy."""
    if out is None or Path(out).suffix.lower() != ".zarr":
        dests = [np.zeros(plan.final, dtype=np.uint8) for _ in range(samples)]
        return dests, np.zeros(plan.final, dtype=np.float32) if samples > 1 else None
    import zarr

    from .._atomic import atomic_path

    paths, ent_path = sample_paths(out, samples)
    attrs = {"axes": "ZYX", "scale": float(plan.sf), "border": plan.border, "seed": int(seed)}
    if out_sp is not None:
        attrs.update(spacing=list(out_sp), unit="nm")
    chunks = tuple(min(64, n) for n in plan.final)

    def zarr_array(p, dtype, extra):
        tmp = stack.enter_context(atomic_path(p, directory=True))
        return zarr.create_array(
            store=str(tmp),
            shape=plan.final,
            dtype=dtype,
            chunks=chunks,
            attributes={**attrs, **extra},
            overwrite=True,
            fill_value=0,
        )

    dests = [zarr_array(p, np.uint8, {"sample": k}) for k, p in enumerate(paths)]
    ent = zarr_array(ent_path, np.float32, {"what": "phase entropy / ln(n)"}) if samples > 1 else None
    return dests, ent


def _store(plan, dests, ent, core, labs):
    """Write the core of a tile's samples (and their entropy) into the destination arrays."""
    sf, b = plan.sf, plan.border
    src, dst = [], []
    for (o, e), n in zip(core, plan.out_len, strict=True):
        a, z = int(o * sf), int(e * sf)  # exact: o, e are multiples of q
        lo_, hi_ = max(a, b), min(z, n - b)
        src.append(slice(lo_ - a, hi_ - a))
        dst.append(slice(lo_ - b, hi_ - b))
    src, dst = tuple(src), tuple(dst)
    for k, lab in enumerate(labs):
        dests[k][dst] = lab[src]
    if ent is not None:
        ent[dst] = _entropy(np.stack([lab[src] for lab in labs]), plan.n_hr)


def _check_args(seed, samples, scheduler, out):
    samples = int(samples)
    if samples < 1:
        raise InputError(f"samples must be ≥ 1, got {samples}")
    if int(seed) < 0:
        raise InputError(f"seed must be ≥ 0, got {seed}")
    if isinstance(scheduler, str) and scheduler not in SCHEDULERS:
        raise InputError(f"unknown dask scheduler {scheduler!r}; use {', '.join(SCHEDULERS)}")
    if out is not None and Path(out).suffix.lower() not in (".tif", ".tiff", ".npy", ".zarr"):
        raise InputError(f"--out must end in .tif, .tiff, .npy or .zarr, got {Path(out).name!r}")
    return samples


def _generate(plan, lr, out, samples, seed, out_sp, dev, scheduler, callback):
    """Run every tile into the destinations and write them: ``(samples, entropy, paths, entropy path)``."""

    def run_tile(core):
        return _run_tile(plan, lr, core, seed=seed, samples=samples, device=dev)

    def store(core, labs):
        _store(plan, dests, ent, core, labs)

    paths, ent_path = sample_paths(out, samples) if out is not None else ([], None)
    zarr_out = out is not None and Path(out).suffix.lower() == ".zarr"
    with contextlib.ExitStack() as stack:
        dests, ent = _destinations(stack, plan, out, samples, seed, out_sp)
        _run_tiles(plan, run_tile, store, scheduler, callback)
        if out is not None and not zarr_out:
            from ..io import write_volume

            for p, arr in zip(paths, dests, strict=True):
                write_volume(p, arr, spacing=out_sp)
            if ent is not None:
                write_volume(ent_path, ent, spacing=out_sp)
    if zarr_out:  # reopen at the final paths (the temporary stores were renamed)
        import zarr

        dests = [zarr.open_array(str(p), mode="r") for p in paths]
        ent = zarr.open_array(str(ent_path), mode="r") if ent_path is not None else None
    return dests, ent, paths, ent_path


def predict(
    run,
    lr_labels,
    *,
    seed=0,
    samples=1,
    tile=None,
    overlap=None,
    crop=None,
    out=None,
    spacing=None,
    device="auto",
    scheduler=None,
    callback=None,
):
    """Super-resolve an LR label volume of any size with a trained SuperRes generator.

    Parameters
    ----------
    run : str, Path, Generator or tuple
        A run folder / checkpoint (``best.safetensors`` preferred), a generator module, or the tuple
        returned by :func:`matsight.fuse.load`.
    lr_labels : array_like
        LR label volume (ZYX), phases ``0..m-1`` as in training. numpy, zarr or dask arrays (read per tile).
    seed : int
        Seed (≥ 0) of the noise field: the same seed gives the same volume, however it is tiled.
    samples : int
        Number of stochastic samples ``K`` (noise fields ``(seed, 0..K-1)``); with ``K > 1`` the per-voxel
        phase entropy across samples is returned too.
    tile : int, optional
        Tile core edge in LR voxels (a multiple of ``q`` for ``sf = p/q``); default the run's
        ``inference.tile``, else about 128 output voxels. Peak memory grows with ``(tile·sf)³``.
    overlap : int, optional
        Halo per tile side in LR voxels; default (and minimum) the generator's receptive radius.
    crop : bool, optional
        Cut one LR voxel from every face (default: the run's ``inference.crop``, true as the paper).
    out : str or Path, optional
        ``.tif``/``.tiff``/``.npy`` (written at the end) or ``.zarr`` (streamed, tile by tile). More than one
        sample: ``NAME_sample1.ext``…, and the entropy map ``NAME_entropy.ext``. Written atomically.
    spacing : float or sequence of float, optional
        LR voxel size (nm); the output's is ``spacing / sf``.
    device : {"auto", "cpu", "cuda"}
        ``"auto"``: cuda when available.
    scheduler : str or dask.distributed.Client, optional
        Run tiles in parallel with dask (``"threads"``, ``"processes"``, ``"synchronous"`` or a Client);
        needs the ``scale`` extra. Default: one tile after the other (torch uses all cores per tile).
    callback : callable, optional
        A :data:`matsight.progress.Callback` called after every tile.

    Returns
    -------
    Generated
    """
    t0 = time.perf_counter()
    dev = resolve_device(device)
    samples = _check_args(seed, samples, scheduler, out)
    gen, inference = _resolve_generator(run, dev)
    if not hasattr(lr_labels, "shape") or not hasattr(lr_labels, "dtype"):
        lr_labels = np.asarray(lr_labels)
    lr = _check_lr(lr_labels, gen.conv_in.in_channels - 1)
    tile = inference.tile if tile is None else tile
    crop = inference.crop if crop is None else bool(crop)
    plan = _plan(gen, tuple(int(s) for s in lr.shape), tile=tile, overlap=overlap, crop=crop)
    out_sp = None if spacing is None else tuple(float(s / plan.sf) for s in np.broadcast_to(spacing, (3,)))

    dests, ent, paths, ent_path = _generate(plan, lr, out, samples, seed, out_sp, dev, scheduler, callback)
    res = Generated(
        labels=dests[0],
        samples=dests,
        entropy=ent,
        scale=float(plan.sf),
        border=plan.border,
        paths={"samples": paths, "entropy": ent_path} if out is not None else {},
    )
    res.seconds = time.perf_counter() - t0
    log.info(
        "generated %s × %d in %.1f s (%.3g voxels/s)", plan.final, samples, res.seconds, res.voxels_per_second
    )
    return res


generate = predict  # the name before the package's face (the CLI command stays `fuse generate`)


def _run_tiles(plan, run_tile, store, scheduler, callback):
    """Every tile of ``plan``, one after the other or with dask; ``callback`` after each."""
    done = [0]

    def advance():
        done[0] += 1
        report(callback, step=done[0], total=len(plan.tiles), message=f"tile {done[0]} of {len(plan.tiles)}")

    if scheduler is None:
        for core in plan.tiles:
            store(core, run_tile(core))
            advance()
    else:
        _run_dask(plan.tiles, run_tile, store, scheduler, advance)


def _run_dask(tiles, run_tile, store, scheduler, advance):
    """Tiles in parallel with dask, a few batches at a time so that memory stays bounded."""
    try:
        import dask
    except ImportError:
        raise InputError("scheduler= needs dask: pip install 'matsight[scale]'") from None
    import os

    import torch

    n_workers = getattr(scheduler, "ncores", None)
    n_workers = sum(n_workers().values()) if callable(n_workers) else (os.cpu_count() or 1)
    batch = max(1, 2 * n_workers)
    threads = torch.get_num_threads()
    if scheduler == "threads":
        torch.set_num_threads(1)  # dask's threads give the parallelism; avoid oversubscribing cores
    try:
        for i in range(0, len(tiles), batch):
            chunk = tiles[i : i + batch]
            results = dask.compute(*[dask.delayed(run_tile)(c) for c in chunk], scheduler=scheduler)
            for core, labs in zip(chunk, results, strict=True):
                store(core, labs)
                advance()
    finally:
        torch.set_num_threads(threads)

"""Training-pair preparation for restore: upscale LQ to the HQ grid, register, crop, normalise.

The InDI paper (``papers/indi_4d_nanotomography.txt``, Methods) upscales the low-quality (LQ) scan bicubically
by the voxel-size ratio, masks the periphery with a circular field of view, registers LQ onto HQ (SPAM,
non-rigid) and normalises both to [-1, 1]. Here the registration is rigid and sub-pixel (phase correlation for
the translation, a bounded search over the in-plane angle for the rotation), with optional deformable
refinement by scikit-image's optical flow.

Conventions: arrays are YX (2D) or ZYX (3D). A rigid transform is ``{"rotation_deg": a, "shift": s}`` and maps
image content as ``p_out = R(a) (p_in - c) + c + s`` with ``c`` the array centre and ``R(a)`` a rotation in
the YX plane, counter-clockwise as displayed (the sign of :func:`skimage.transform.rotate`); for 3D volumes
the rotation is about the Z axis and ``s`` has three components. :func:`register_rigid` returns the transform
that maps *moving* onto *fixed*, and :func:`apply_rigid` applies one.

:func:`prepare_pair` makes a :class:`~matsight.restore.pair_io.Pair`; :mod:`matsight.restore.pair_io` writes
and reads the pair folder.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy import ndimage, optimize

from matsight._errors import InputError

from .pair_io import Pair

log = logging.getLogger(__name__)

LOW_NCC = 0.2  # below this registered NCC the two scans likely do not show the same region

__all__ = [
    "apply_grey_map",
    "apply_rigid",
    "as_image",
    "crop_common",
    "denormalise",
    "fit_grey_map",
    "fov_mask",
    "normalise",
    "parse_scale",
    "prepare_pair",
    "refine_deformable",
    "register_rigid",
    "upscale",
]


# ------------------------------------------------------------------------------------------------- validation
def as_image(a, name, *, ndim=(2, 3)):
    """``a`` as an array after checking it is a finite numeric 2D image or 3D volume.

    Parameters
    ----------
    a : array_like
        Image (YX) or volume (ZYX).
    name : str
        What the caller calls it, for the one-line :class:`InputError` messages.
    ndim : tuple of int
        Accepted numbers of dimensions.

    Returns
    -------
    ndarray
        ``np.asarray(a)``, unchanged.
    """
    a = np.asarray(a)
    if a.ndim not in ndim:
        raise InputError(
            f"{name} must be a 2D image (YX) or a 3D volume (ZYX), got {a.ndim}D with shape {a.shape}; "
            "pass a single slice or a stack"
        )
    if a.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric, got dtype {a.dtype}; convert it to a float image")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        n = int((~np.isfinite(a)).sum())
        raise InputError(
            f"{name} contains {n} NaN/inf values; fill or crop them away (e.g. np.nan_to_num) first"
        )
    if min(a.shape) < 2:
        raise InputError(f"{name} has shape {a.shape}; every axis needs at least 2 pixels")
    return a


def _nums(values):
    """``(96, 64.5)``: plain numbers for messages (not numpy reprs such as ``np.float64(96.0)``)."""
    return "(" + ", ".join(f"{float(v):g}" for v in np.atleast_1d(values)) + ")"


def _per_axis(value, ndim, name):
    v = np.atleast_1d(np.asarray(value, dtype=float))
    if v.size == 1:
        v = np.repeat(v, ndim)
    if v.size != ndim:
        raise InputError(f"{name} needs 1 or {ndim} values (one per axis), got {v.size}")
    return v


# ---------------------------------------------------------------------------------------------------- upscale
def upscale(lq, factor, *, order=3, shape=None):
    """Interpolate ``lq`` onto a grid ``factor`` times finer (bicubic by default).

    Parameters
    ----------
    lq : ndarray
        2D or 3D image.
    factor : float or sequence of float
        Voxel-size ratio LQ/HQ, one value or one per axis; integer or fractional (e.g. 2, 1.5, (1, 2, 2)).
    order : int, optional
        Spline order; 3 = bicubic (the paper), 1 = linear, 0 = nearest.
    shape : tuple of int, optional
        Exact output shape (e.g. to match rounding of a fractional factor); defaults to ``round(lq.shape *
        factor)``.

    Returns
    -------
    ndarray of float32
        The upscaled image. Pixel *areas* are aligned (``grid_mode=True``): the first and last LQ pixels cover
        the same extent as the first/last ``factor`` HQ pixels, so down- then up-sampling does not shift
        content.
    """
    lq = as_image(lq, "lq")
    f = _per_axis(factor, lq.ndim, "factor")
    if np.any(f <= 0) or not np.all(np.isfinite(f)):
        raise InputError(
            f"upscale factor must be positive, got {_nums(f)}; use LQ voxel size / HQ voxel size"
        )
    if shape is None:
        shape = tuple(max(1, int(round(n * k))) for n, k in zip(lq.shape, f, strict=False))
    shape = tuple(int(s) for s in shape)
    if len(shape) != lq.ndim:
        raise InputError(f"shape {shape} has {len(shape)} axes but lq has {lq.ndim}")
    zoom = [s / n for s, n in zip(shape, lq.shape, strict=False)]
    out = ndimage.zoom(lq.astype(np.float32, copy=False), zoom, order=order, mode="reflect", grid_mode=True)
    return out.astype(np.float32, copy=False)


def fov_mask(shape, *, radius=None, center=None, margin=0):
    """Circular field-of-view mask in the YX plane (repeated along Z for volumes).

    Parameters
    ----------
    shape : tuple of int
        (Y, X) or (Z, Y, X).
    radius : float, optional
        Radius in pixels; default the inscribed circle, ``min(Y, X) / 2``.
    center : (float, float), optional
        Centre (y, x) in pixels; default the array centre.
    margin : float, optional
        Pixels to shrink the radius by (keeps reconstruction edge artefacts out).

    Returns
    -------
    ndarray of bool
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise InputError(f"fov_mask needs a 2D or 3D shape, got {shape}")
    ny, nx = shape[-2:]
    cy, cx = ((ny - 1) / 2, (nx - 1) / 2) if center is None else center
    r = (min(ny, nx) / 2 if radius is None else float(radius)) - margin
    if r <= 0:
        raise InputError(
            f"field-of-view radius must be positive, got {r}; give a larger radius or smaller margin"
        )
    yy, xx = np.ogrid[:ny, :nx]
    m = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    if len(shape) == 3:
        m = np.broadcast_to(m, shape).copy()
    return m


# ------------------------------------------------------------------------------------------- rigid transforms
def _rotation_matrix(angle_deg, ndim):
    a = np.deg2rad(angle_deg)
    c, s = np.cos(a), np.sin(a)
    # (y, x) coordinates with y pointing down: counter-clockwise as displayed, like skimage.transform.rotate
    r2 = np.array([[c, -s], [s, c]])
    if ndim == 2:
        return r2
    r = np.eye(3)
    r[1:, 1:] = r2
    return r


def _affine(image, rotation_deg, shift, *, order=3, mode="constant", cval=0.0, prefilter=True):
    nd = image.ndim
    s = _per_axis(shift, nd, "shift")
    r = _rotation_matrix(rotation_deg, nd)
    c = (np.asarray(image.shape, dtype=float) - 1) / 2
    # affine_transform pulls: input = M @ output + offset, i.e. the inverse of the content map
    m = r.T
    offset = c - m @ (c + s)
    return ndimage.affine_transform(
        image, m, offset=offset, order=order, mode=mode, cval=cval, prefilter=prefilter, output=np.float32
    )


def apply_rigid(image, *, rotation_deg=0.0, shift=0.0, order=3, mode="constant", cval=0.0):
    """Rotate ``image`` about its centre (YX plane) and then shift it, in one interpolation.

    Content at ``p`` moves to ``R (p - c) + c + shift`` (see the module docstring).

    Parameters
    ----------
    image : ndarray
        2D or 3D.
    rotation_deg : float
        Counter-clockwise in-plane angle in degrees.
    shift : float or sequence of float
        Translation in pixels per axis (as :func:`scipy.ndimage.shift`).
    order : int
        Spline order of the interpolation.
    mode, cval
        Boundary handling, as :func:`scipy.ndimage.affine_transform`.

    Returns
    -------
    ndarray of float32
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise InputError(f"apply_rigid needs a 2D or 3D array, got shape {image.shape}")
    image = image.astype(np.float32, copy=False)
    if image.ndim == 2 or order not in (1, 3):
        return _affine(image, rotation_deg, shift, order=order, mode=mode, cval=cval)
    # the rotation is in-plane, so the 3D tensor-product spline separates exactly: 2D per slice, then 1D
    # along Z — 16 + 4 taps per voxel instead of 64
    s = _per_axis(shift, 3, "shift")
    planes = np.stack([_affine(sl, rotation_deg, s[1:], order=order, mode=mode, cval=cval) for sl in image])
    if s[0] == 0:
        return planes
    return _shift_axis0(planes, float(s[0]), order=order, mode=mode, cval=cval)


def _shift_axis0(a, dz, *, order, mode, cval):
    """Shift along axis 0 (content moves to +dz) by linear or cubic B-spline interpolation."""
    n = a.shape[0]
    pos = np.arange(n) - dz
    if order == 3:
        pre = (
            mode if mode in ("reflect", "mirror", "nearest", "wrap", "grid-wrap", "grid-mirror") else "mirror"
        )
        out = _zshift(ndimage.spline_filter1d(a, order=3, axis=0, mode=pre, output=np.float32), dz)
    else:
        i = np.floor(pos).astype(int)
        t = (pos - i).astype(np.float32)[:, None, None]
        out = (1 - t) * a[np.clip(i, 0, n - 1)] + t * a[np.clip(i + 1, 0, n - 1)]
    if mode in ("constant", "grid-constant"):
        outside = (pos < -1e-6) | (pos > n - 1 + 1e-6)
        out[outside] = cval
    return out.astype(np.float32, copy=False)


def _robust_scale(a, mask=None):
    v = a[mask] if mask is not None else a
    lo, hi = np.percentile(v, [1, 99])
    if hi <= lo:
        hi = lo + 1.0
    return (a - lo) / (hi - lo)


def _local_contrast(a, sigma):
    """(a - local mean) / local sd, Gaussian scale ``sigma`` in-plane (slice by slice for volumes)."""
    a = a.astype(np.float32)
    sig = (0,) * (a.ndim - 2) + (sigma, sigma)
    d = a - ndimage.gaussian_filter(a, sig)
    v = ndimage.gaussian_filter(d * d, sig)
    return (d / np.sqrt(v + 0.1 * float(v.mean()) + 1e-12)).astype(np.float32)


def _taper(shape, mask):
    """Smooth window for phase correlation: the FOV mask (or the full frame) with soft edges."""
    if mask is None:
        w = np.ones(shape, dtype=np.float32)
        # Tukey-like fall-off over 1/8 of each in-plane axis to suppress wrap-around edges
        for ax in range(len(shape) - 2, len(shape)):
            n = shape[ax]
            k = max(2, n // 8)
            ramp = np.ones(n, dtype=np.float32)
            t = 0.5 - 0.5 * np.cos(np.pi * (np.arange(k) + 0.5) / k)
            ramp[:k] = t
            ramp[n - k :] = t[::-1]
            sh = [1] * len(shape)
            sh[ax] = n
            w = w * ramp.reshape(sh)
        return w
    sigma = [0] * (len(shape) - 2) + [max(1.0, min(shape[-2:]) / 64)] * 2
    return ndimage.gaussian_filter(mask.astype(np.float32), sigma)


def _ncc(a, b, w):
    a = a - np.average(a, weights=w)
    b = b - np.average(b, weights=w)
    den = np.sqrt(np.sum(w * a * a) * np.sum(w * b * b))
    return float(np.sum(w * a * b) / den) if den > 0 else 0.0


def _translation(moving, fixed, window, upsample_factor):
    from skimage.registration import phase_cross_correlation

    # normalization=None (plain cross-correlation) is more robust to noise than pure phase correlation
    shift, _, _ = phase_cross_correlation(
        fixed * window, moving * window, upsample_factor=upsample_factor, normalization=None
    )
    return np.asarray(shift, dtype=float)


def _affine_stack(stack, angle, shift2, **kw):
    """In-plane rigid transform of a 2D image or of every slice of a (n, Y, X) stack (2D splines: 16 taps)."""
    if stack.ndim == 2:
        return _affine(stack, angle, shift2, **kw)
    return np.stack([_affine(sl, angle, shift2, **kw) for sl in stack])


def _translation2(stack, fixed, window, upsample_factor):
    t = _translation(stack, fixed, window, upsample_factor)
    return t[-2:]  # for stacks of aligned slices the stack-axis component is ~0 by construction


def _prefilter(a):
    """Cubic B-spline coefficients per 2D slice (for repeated interpolation with ``prefilter=False``)."""
    if a.ndim == 2:
        return ndimage.spline_filter(a, order=3, mode="mirror", output=np.float32)
    return np.stack([ndimage.spline_filter(sl, order=3, mode="mirror", output=np.float32) for sl in a])


def _polish(mov, fix, window, angle, shift2, *, rotation, tol=0.002, step=0.25, max_rotation_deg=None):
    """Maximise the windowed NCC over (angle, dy, dx) by Nelder-Mead, cubic splines prefiltered once.

    The angle stays within ``±max_rotation_deg`` (unbounded if None).
    """
    coeffs = _prefilter(mov)

    def unpack(p):
        return (p[0] if rotation else angle), p[int(rotation) :]

    def cost(p):
        a, sh = unpack(p)
        if rotation and max_rotation_deg is not None and abs(a) > max_rotation_deg:
            # a wall worse than any NCC: on unrelated images the simplex would otherwise wander off
            return 1.0 + abs(a) - max_rotation_deg
        moved = _affine_stack(coeffs, a, sh, order=3, mode="mirror", prefilter=False)
        return -_ncc(moved, fix, window)

    x0 = np.r_[[angle] if rotation else [], shift2].astype(float)
    simplex = [x0]
    for i in range(len(x0)):
        v = x0.copy()
        v[i] += step
        simplex.append(v)
    res = optimize.minimize(
        cost,
        x0,
        method="Nelder-Mead",
        options={"initial_simplex": np.array(simplex), "xatol": tol, "fatol": 1e-6, "maxiter": 200 * len(x0)},
    )
    best = res.x if res.fun <= cost(x0) else x0
    a, sh = unpack(best)
    return float(a), np.asarray(sh, dtype=float)


def _zshift(coeffs, dz):
    """Shift along axis 0 by ``dz`` (content moves to +dz), from cubic B-spline coefficients along axis 0."""
    n = coeffs.shape[0]
    pos = np.arange(n) - dz
    i = np.floor(pos).astype(int)
    t = (pos - i).astype(np.float32)[:, None, None]
    w = ((1 - t) ** 3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6, (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6)
    out = np.zeros(coeffs.shape, dtype=np.float32)
    for k, wk in zip(range(-1, 3), w, strict=True):
        out += wk * coeffs[np.clip(i + k, 0, n - 1)]
    return out


def _block_mean(a, f):
    """Mean over f x f blocks in the last two axes (cropped to a multiple of f)."""
    ny, nx = (a.shape[-2] // f) * f, (a.shape[-1] // f) * f
    a = a[..., :ny, :nx]
    return a.reshape(a.shape[:-2] + (ny // f, f, nx // f, f)).mean(axis=(-3, -1)).astype(np.float32)


def _search_inplane(mov, fix, window, rotation, max_rotation_deg, upsample_factor, *, tol):
    """Angle by a grid then a bounded scalar search, translation by cross-correlation; polished if ``tol``."""
    coeffs = _prefilter(mov)

    def fit(angle):
        # the same cubic interpolation at every angle (0 included): a smoothing that varied with the angle
        # would lower the noise of some candidates and bias the search towards them
        rot = _affine_stack(coeffs, angle, (0.0, 0.0), order=3, mode="mirror", prefilter=False)
        sh = _translation2(rot, fix, window, upsample_factor)
        moved = _affine_stack(coeffs, angle, sh, order=3, mode="mirror", prefilter=False)
        return sh, _ncc(moved, fix, window)

    angle = 0.0
    if rotation:
        step = max(0.25, max_rotation_deg / 10)
        grid = np.arange(-max_rotation_deg, max_rotation_deg + step / 2, step)
        grid = np.clip(grid, -max_rotation_deg, max_rotation_deg)  # the last point may overshoot the bound
        scores = [fit(a)[1] for a in grid]
        best = float(grid[int(np.argmax(scores))])
        res = optimize.minimize_scalar(
            lambda a: -fit(a)[1],
            bounds=(max(best - step, -max_rotation_deg), min(best + step, max_rotation_deg)),
            method="bounded",
            options={"xatol": 0.005},
        )
        angle = float(res.x) if -res.fun >= max(scores) else best
    rot = _affine_stack(coeffs, angle, (0.0, 0.0), order=3, mode="mirror", prefilter=False)
    # rotation about the centre, then translation: the pulled image equals apply_rigid(angle, shift)
    shift2 = _translation2(rot, fix, window, upsample_factor)
    if tol is not None:
        angle, shift2 = _polish(
            mov, fix, window, angle, shift2, rotation=rotation, tol=tol, max_rotation_deg=max_rotation_deg
        )
    return angle, shift2


def register_rigid(
    moving,
    fixed,
    *,
    mask=None,
    rotation=True,
    max_rotation_deg=5.0,
    upsample_factor=20,
    max_slices=6,
    max_polish_slices=2,
    coarse_size=256,
    contrast="local",
    local_sigma=0.04,
    min_gain_sigmas=3.0,
):
    """Sub-pixel rigid registration of ``moving`` onto ``fixed`` (same shape, 2D or 3D).

    Translation by cross-correlation with sub-pixel upsampling; in-plane rotation by a grid over
    ``±max_rotation_deg`` then a bounded search, maximising the masked normalised cross-correlation (NCC) at
    the best translation; then all in-plane parameters polished on the NCC itself. For volumes the Z shift
    comes from the 3D cross-correlation, the in-plane parameters from ``max_slices`` evenly spaced slices.

    Parameters
    ----------
    moving, fixed : ndarray
        Images of equal shape (intensities need not match).
    mask : ndarray of bool, optional
        Where the images carry information (e.g. :func:`fov_mask`); outside is ignored.
    rotation : bool
        Also estimate the in-plane rotation (about Z for volumes).
    max_rotation_deg : float
        Bound of the rotation: the result lies within ``±max_rotation_deg``.
    upsample_factor : int
        Sub-pixel precision of the cross-correlation peak is ``1 / upsample_factor`` px (before polishing).
    max_slices, max_polish_slices : int
        For volumes, the in-plane search uses at most this many evenly spaced Z slices, its polish that many.
    coarse_size : int
        Images wider than 1.5 times this are searched on block means about this wide first (coarse to
        fine); 0 disables.
    contrast : {"local", "global"}
        ``"local"`` (default): both images locally normalised (Gaussian scale ``local_sigma`` × width) so
        every structure weighs alike (a bright, round steel can would hide the rotation); ``"global"``:
        robust min-max scaling only.
    local_sigma : float
        Scale of the local normalisation as a fraction of the smaller in-plane size.
    min_gain_sigmas : float
        Each part found (in-plane; Z shift) is applied only if it raises the NCC over the identity by this
        many standard errors of its tile-to-tile spread (:func:`_gain_beyond_noise`): on an aligned pair the
        search otherwise lands on a spurious sub-pixel transform whose interpolation merely smooths noise.
        0 applies whatever the search found.

    Returns
    -------
    dict
        ``rotation_deg``, ``shift`` (for :func:`apply_rigid`, mapping ``moving`` onto ``fixed``), ``ncc`` and
        ``ncc_identity`` (smoothed, contrast-normalised images with the transform and without), ``accepted``
        and ``gain_sigmas`` per part (``"in-plane"``, ``"z"``).
    """
    moving, fixed, mask = _checked_pair(moving, fixed, mask)
    mov0, fix = _contrast_images(moving, fixed, mask, contrast, local_sigma)
    window = _taper(fixed.shape, mask)
    dz, mov = None, mov0
    if fixed.ndim == 3:
        dz, mov = _z_shift(mov0, fix, window, upsample_factor)
    angle, shift2, ncc = _inplane(
        mov, fix, window, rotation and max_rotation_deg > 0, max_rotation_deg, upsample_factor,
        max_slices=max_slices, max_polish_slices=max_polish_slices, coarse_size=coarse_size,
    )  # fmt: skip
    shift = [float(v) for v in shift2] if dz is None else [dz, *(float(v) for v in shift2)]
    tr = _keep_beyond_noise(mov0, fix, mask, angle, shift, dz is not None, min_gain_sigmas)
    log.info("rigid registration: rotation %.3f deg, shift %s px, NCC %.4f -> %.4f (search NCC %.4f)",
             tr["rotation_deg"], np.round(tr["shift"], 3), tr["ncc_identity"], tr["ncc"], ncc)  # fmt: skip
    return tr


def _checked_pair(moving, fixed, mask):
    """``(moving, fixed, mask)`` checked for :func:`register_rigid`: one shape, a non-empty mask."""
    moving = as_image(moving, "moving")
    fixed = as_image(fixed, "fixed")
    if moving.shape != fixed.shape:
        raise InputError(
            f"moving {moving.shape} and fixed {fixed.shape} differ in shape; upscale/crop them to one grid "
            "first (prepare_pair does this)"
        )
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), fixed.shape)
        if not mask.any():
            raise InputError("the registration mask is empty; give a mask that covers the sample")
    return moving, fixed, mask


def _keep_beyond_noise(mov, fix, mask, angle, shift, has_z, min_gain_sigmas):
    """The transform's parts that raise the NCC beyond noise (:func:`_gain_beyond_noise`), the others reset.

    The in-plane part and the Z shift are judged apart: a real in-plane misalignment must not carry a
    spurious sub-slice shift along (nor the reverse). Returns :func:`register_rigid`'s dict.
    """
    parts = {"in-plane": (angle, [0.0, *shift[1:]] if has_z else shift)}
    if has_z:
        parts["z"] = (0.0, [shift[0], 0.0, 0.0])
    gains = {}
    for name, (a, s) in parts.items():
        gains[name], ncc_identity, _ = _gain_beyond_noise(mov, fix, mask, a, s)
    keep = {k: not min_gain_sigmas or g >= min_gain_sigmas for k, g in gains.items()}
    for name, ok in keep.items():
        if not ok:
            log.info("rigid registration: the %s part gains %.1f standard errors only: not applied",
                     name, gains[name])  # fmt: skip
    if not keep["in-plane"]:
        angle, shift = 0.0, [*shift[:-2], 0.0, 0.0]
    if has_z and not keep["z"]:
        shift = [0.0, *shift[1:]]
    ncc = _gain_beyond_noise(mov, fix, mask, angle, shift)[2] if any(keep.values()) else ncc_identity
    return {
        "rotation_deg": float(angle),
        "shift": [float(v) for v in shift],
        "ncc": float(ncc),
        "ncc_identity": float(ncc_identity),
        "accepted": keep,
        "gain_sigmas": {k: float(v) for k, v in gains.items()},
    }


def _contrast_images(moving, fixed, mask, contrast, local_sigma):
    """Both images contrast-normalised for the search (locally by default, see :func:`register_rigid`)."""
    if contrast == "local":
        sigma = max(2.0, local_sigma * min(fixed.shape[-2:]))
        return _local_contrast(moving, sigma), _local_contrast(fixed, sigma)
    if contrast == "global":
        mov = _robust_scale(moving.astype(np.float32), mask).astype(np.float32)
        return mov, _robust_scale(fixed.astype(np.float32), mask).astype(np.float32)
    raise InputError(f"unknown contrast {contrast!r}; use 'local' or 'global'")


def _z_shift(mov, fix, window, upsample_factor):
    """The Z shift of a volume and ``mov`` shifted by it: 3D cross-correlation, then the NCC polished."""
    dz0 = float(_translation(mov, fix, window, upsample_factor)[0])
    # the window pulls the correlation peak towards zero: polish dz by maximising the NCC directly, on
    # in-plane block means (cheap) with cubic B-spline interpolation along Z only
    fz = max(1, min(fix.shape[-2:]) // 128)
    cz = ndimage.spline_filter1d(_block_mean(mov, fz) if fz > 1 else mov, order=3, axis=0, mode="mirror")
    fxz = _block_mean(fix, fz) if fz > 1 else fix
    wz = _block_mean(window, fz) if fz > 1 else window
    res = optimize.minimize_scalar(
        lambda d: -_ncc(_zshift(cz, d), fxz, wz),
        bounds=(dz0 - 1, dz0 + 1),
        method="bounded",
        options={"xatol": 0.005},
    )
    dz = float(res.x) if -res.fun >= _ncc(_zshift(cz, dz0), fxz, wz) else dz0
    return dz, _zshift(ndimage.spline_filter1d(mov, order=3, axis=0, mode="mirror"), dz)


def _inplane(
    mov, fix, window, rot_on, max_rotation_deg, upsample_factor, *, max_slices, max_polish_slices, coarse_size
):
    """``(angle, (dy, dx), ncc)``: the in-plane search, coarse to fine, then the full-resolution polish."""
    if mov.ndim == 3 and mov.shape[0] > max_slices:
        # avoid the end slices, which the Z shift filled by extrapolation
        idx = np.linspace(0, mov.shape[0] - 1, max_slices + 2)[1:-1].round().astype(int)
        mov, fix, window = mov[idx], fix[idx], window[idx]
    # coarse-to-fine: the search runs on block means ~256 px wide, the full-resolution polish starts close
    f = max(1, int(round(min(fix.shape[-2:]) / coarse_size))) if coarse_size else 1
    if f > 1:
        mc, fc, wc = (_block_mean(a, f) for a in (mov, fix, window))
        angle, shift2 = _search_inplane(mc, fc, wc, rot_on, max_rotation_deg, upsample_factor, tol=0.02)
        shift2 = shift2 * f
        step0, tol = 0.1, 0.01
    else:
        angle, shift2 = _search_inplane(mov, fix, window, rot_on, max_rotation_deg, upsample_factor, tol=None)
        step0, tol = 0.25, 0.002
    if mov.ndim == 3 and mov.shape[0] > max_polish_slices:
        idx = np.linspace(0, mov.shape[0] - 1, max_polish_slices).round().astype(int)
        mov, fix, window = mov[idx], fix[idx], window[idx]
    angle, shift2 = _polish(
        mov,
        fix,
        window,
        angle,
        shift2,
        rotation=rot_on,
        step=step0,
        tol=tol,
        max_rotation_deg=max_rotation_deg,
    )
    ncc = _ncc(_affine_stack(mov, angle, shift2, order=1, mode="nearest"), fix, window)
    return angle, shift2, ncc


def _gain_beyond_noise(mov, fix, mask, angle, shift, *, tiles=4, max_slices=8, smooth=1.0):
    """How far the transform raises the match above the identity's, in standard errors: ``(gain, ncc
    identity, ncc moved)``.

    Both the moved and the unmoved image are smoothed by ``smooth`` px before the NCC, so that the
    interpolation of a sub-pixel transform (which itself low-passes the noise and so raises the NCC of *any*
    fractional shift) does not count as a better match. The NCC gain is taken on ``tiles`` × ``tiles``
    in-plane tiles of up to ``max_slices`` slices; gain = mean / standard error of the tile gains.
    """
    w = np.ones(fix.shape, np.float32) if mask is None else mask.astype(np.float32)
    if fix.ndim == 3:
        n = fix.shape[0]
        # interior slices: a Z shift leaves the end slices to extrapolation
        idx = np.arange(n) if n <= 2 else np.linspace(0, n - 1, min(n, max_slices) + 2)[1:-1]
        idx = np.unique(np.round(idx).astype(int))
        if shift[0]:
            moved = apply_rigid(mov, rotation_deg=angle, shift=shift, order=3, mode="mirror")[idx]
        else:  # in-plane only: the chosen slices suffice
            moved = _affine_stack(mov[idx], angle, shift[1:], order=3, mode="mirror")
        b, f, w = mov[idx], fix[idx], w[idx]
    else:
        moved = apply_rigid(mov, rotation_deg=angle, shift=shift, order=3, mode="mirror")[None]
        b, f, w = mov[None], fix[None], w[None]
    # in-plane smoothing of every slice (axis 0 indexes slices here)
    a, b, f = (ndimage.gaussian_filter(x, (0, smooth, smooth)) for x in (moved, b, f))
    gains = []
    ny, nx = fix.shape[-2:]
    for k in range(len(f)):
        for ys in np.array_split(np.arange(ny), tiles):
            for xs in np.array_split(np.arange(nx), tiles):
                sl = (k, slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
                if w[sl].sum() >= 0.25 * w[sl].size:
                    gains.append(_ncc(a[sl], f[sl], w[sl]) - _ncc(b[sl], f[sl], w[sl]))
    total = (_ncc(b, f, w), _ncc(a, f, w))
    g = np.asarray(gains)
    if g.size < 2:
        return (math.inf if total[1] > total[0] else 0.0), *total
    se = float(g.std(ddof=1)) / math.sqrt(g.size)
    gain = float(g.mean()) / se if se > 0 else (math.inf if g.mean() > 0 else 0.0)
    return gain, *total


def refine_deformable(
    moving,
    fixed,
    *,
    method="ilk",
    mask=None,
    per_slice=True,
    smooth=1.0,
    flow_sigma=0.03,
    max_displacement=5.0,
    **kwargs,
):
    """Deformable refinement by optical flow (:func:`skimage.registration.optical_flow_tvl1` or ``_ilk``).

    Optical flow on noisy tomograms invents large displacements where there is no structure (background,
    flat regions), so the estimate is regularised: both images are locally contrast-normalised and smoothed
    (``smooth`` px) first; the flow is then averaged with a Gaussian (``flow_sigma`` × the in-plane width),
    weighted by the HQ's gradient energy (structure = confidence), faded out outside ``mask`` and clipped to
    ``max_displacement`` pixels. The warp is applied to the original values.

    Parameters
    ----------
    moving, fixed : ndarray
        Rigidly registered images of equal shape, 2D or 3D.
    method : {"ilk", "tvl1"}
        Lucas-Kanade (default: fewer spurious displacements on noisy tomograms) or TV-L1.
    mask : ndarray of bool, optional
        Where the images carry information (e.g. :func:`fov_mask`).
    per_slice : bool
        For volumes, estimate an in-plane flow per Z slice (fast; the paper's deformation is mostly in-plane)
        instead of one 3D flow.
    smooth, flow_sigma, max_displacement
        Regularisation, as above.
    **kwargs
        Passed to the scikit-image optical-flow function.

    Returns
    -------
    (ndarray, ndarray)
        ``moving`` warped onto ``fixed`` (float32) and the displacement field (one component per axis,
        pixels; the Z component is 0 with ``per_slice``).
    """
    from skimage.registration import optical_flow_ilk, optical_flow_tvl1
    from skimage.transform import warp

    moving = as_image(moving, "moving")
    fixed = as_image(fixed, "fixed")
    if moving.shape != fixed.shape:
        raise InputError(f"moving {moving.shape} and fixed {fixed.shape} differ; register rigidly first")
    funcs = {"tvl1": optical_flow_tvl1, "ilk": optical_flow_ilk}
    if method not in funcs:
        raise InputError(f"unknown deformable method {method!r}; use one of {sorted(funcs)}")
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), fixed.shape)
    # local contrast normalisation: LQ and HQ differ in contrast and noise, and brightness constancy (which
    # optical flow assumes) holds far better for locally normalised images
    ls = max(2.0, 0.04 * min(fixed.shape[-2:]))
    mv = _local_contrast(moving, ls)
    fx = _local_contrast(fixed, ls)
    two_d = fixed.ndim == 2 or per_slice
    sig_img = (0,) * (fixed.ndim - 2) + (smooth,) * 2 if two_d else smooth
    if smooth:
        mv = ndimage.gaussian_filter(mv, sig_img)
        fx = ndimage.gaussian_filter(fx, sig_img)
    if fixed.ndim == 3 and per_slice:
        flow2 = np.stack([funcs[method](f, m, **kwargs) for f, m in zip(fx, mv, strict=True)], axis=1)
        flow = np.concatenate([np.zeros((1,) + fixed.shape, np.float32), flow2.astype(np.float32)])
    else:
        flow = np.asarray(funcs[method](fx, mv, **kwargs), dtype=np.float32)
    flow = _regularise_flow(flow, fixed, mask, two_d, flow_sigma, max_displacement)
    grid = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in fixed.shape], indexing="ij")
    coords = np.stack([g + f for g, f in zip(grid, flow, strict=True)])
    warped = warp(moving.astype(np.float32), coords, order=3, mode="edge", preserve_range=True)
    return warped.astype(np.float32), flow.astype(np.float32)


def _regularise_flow(flow, fixed, mask, two_d, flow_sigma, max_displacement):
    """Optical flow smoothed where the HQ has structure, faded outside ``mask``, clipped in length."""
    fs = max(1.0, flow_sigma * min(fixed.shape[-2:]))
    sig_flow = (0,) * (fixed.ndim - 2) + (fs, fs) if two_d else fs
    # confidence of the flow: gradient energy of the (globally scaled) HQ — flat or empty regions, where
    # optical flow follows the noise, get little weight; then a normalised convolution smooths the flow
    gs = (0,) * (fixed.ndim - 2) + (2.0, 2.0) if two_d else 2.0
    g = ndimage.gaussian_gradient_magnitude(_robust_scale(fixed.astype(np.float32), mask), gs) ** 2
    weight = (g / max(float(np.percentile(g, 99)), 1e-12)).clip(0, 1).astype(np.float32)
    if mask is not None:
        weight *= mask
    wsm = ndimage.gaussian_filter(weight, sig_flow)
    flow = np.stack([ndimage.gaussian_filter(c * weight, sig_flow) / np.maximum(wsm, 1e-6) for c in flow])
    # fade out where there is (almost) no support, e.g. outside the field of view
    support = ndimage.gaussian_filter(
        np.ones_like(weight) if mask is None else mask.astype(np.float32), sig_flow
    )
    flow *= np.clip(support, 0, 1)[None]
    mag = np.sqrt(np.sum(flow.astype(np.float64) ** 2, axis=0))
    over = mag > max_displacement
    if over.any():
        flow[:, over] *= (max_displacement / mag[over]).astype(np.float32)
    return flow


def crop_common(valid):
    """Largest axis-aligned box inside which ``valid`` is True everywhere.

    Greedy: shrink the face with the most invalid voxels until none are left (exact for the nearly-full,
    convex valid regions a small rigid misalignment leaves).

    Returns
    -------
    tuple of slice
    """
    valid = np.asarray(valid, dtype=bool)
    if not valid.any():
        raise InputError("the images do not overlap after registration; check the scale and the inputs")
    # start from the bounding box of the valid region
    lo, hi = [], []
    for ax in range(valid.ndim):
        other = tuple(i for i in range(valid.ndim) if i != ax)
        idx = np.flatnonzero(valid.any(axis=other))
        lo.append(int(idx[0]))
        hi.append(int(idx[-1]) + 1)
    while True:
        box = valid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))]
        if box.size == 0:
            raise InputError("no common region after registration; the misalignment is too large")
        if box.all():
            return tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))
        bad = ~box
        worst, where = -1, None
        for ax in range(valid.ndim):
            if box.shape[ax] <= 1:
                continue
            other = tuple(i for i in range(valid.ndim) if i != ax)
            counts = bad.sum(axis=other)
            for side, n in (("lo", counts[0]), ("hi", counts[-1])):
                if n > worst:
                    worst, where = n, (ax, side)
        if where is None:
            raise InputError("no common region after registration; the misalignment is too large")
        ax, side = where
        if side == "lo":
            lo[ax] += 1
        else:
            hi[ax] -= 1


# ------------------------------------------------------------------------------------------------ normalising
PAIR_SPAN = 0.8  # prepare_pair maps the percentiles to ±0.8: 12.5 % of the range of headroom on either side


def normalise(image, *, stats=None, percentiles=(0.5, 99.5), mask=None, clip=True, span=1.0):
    """Map intensities into [-1, 1] by robust percentiles; returns ``(normalised, stats)``.

    ``stats = {"lo": ..., "hi": ..., "percentiles": [...], "span": s}``: ``lo`` maps to ``-s`` and ``hi`` to
    ``+s``; values beyond are clipped to [-1, 1] (with ``clip``). Pass the stats of a training pair to
    normalise new data the same way; :func:`denormalise` inverts (exactly, for values that were not clipped,
    or with ``clip=False``). ``span`` < 1 (new stats only) leaves headroom: with ``s = 1`` every grey level
    beyond the percentiles is clipped, so a network trained on such a pair never outputs the brightest 0.5 %
    of the HQ, and slices where a bright phase exceeds the pair's 99.5th percentile come out darkened
    (issue #38: by 700–1700 grey levels on a synthetic pair).
    """
    image = np.asarray(image)
    if stats is None:
        v = image[np.broadcast_to(mask, image.shape)] if mask is not None else image
        if v.size == 0:
            raise InputError("cannot normalise: the mask selects no pixels")
        p = [float(q) for q in percentiles]
        if not 0 <= p[0] < p[1] <= 100:
            raise InputError(f"percentiles must satisfy 0 <= low < high <= 100, got {p}")
        if not 0 < float(span) <= 1:
            raise InputError(f"span must be in (0, 1], got {span}")
        lo, hi = (float(x) for x in np.percentile(v, p))
        if hi <= lo:
            raise InputError(
                f"image is constant ({lo}); nothing to normalise — check that the input has content"
            )
        stats = {"lo": lo, "hi": hi, "percentiles": p, "span": float(span)}
    lo, hi, s = float(stats["lo"]), float(stats["hi"]), float(stats.get("span", 1.0))
    out = (s * (2.0 * (image.astype(np.float64) - lo) / (hi - lo) - 1.0)).astype(np.float32)
    if clip:
        np.clip(out, -1.0, 1.0, out=out)
    return out, dict(stats)


def denormalise(image, stats):
    """Inverse of :func:`normalise`: [-1, 1] back to the original intensity units."""
    lo, hi, s = float(stats["lo"]), float(stats["hi"]), float(stats.get("span", 1.0))
    return ((np.asarray(image, dtype=np.float64) / s + 1.0) * 0.5 * (hi - lo) + lo).astype(np.float32)


def fit_grey_map(lq, hq, mask=None, *, max_pixels=2_000_000):
    """Least-squares line ``hq ≈ gain · lq + offset`` over the pixels in ``mask``: ``{"gain", "offset"}``.

    Fitted on the training pair (normalised units), it is the grey-level mapping a baseline gets that InDI
    also learns there: mapping the noisy LQ by its own percentiles instead stretches its noise into the
    contrast and understates the bicubic baseline by 2–3 dB (issue #38).
    """
    lq = np.asarray(lq, dtype=np.float64)
    hq = np.asarray(hq, dtype=np.float64)
    sel = np.ones(lq.shape, bool) if mask is None else np.broadcast_to(np.asarray(mask, bool), lq.shape)
    a, b = lq[sel], hq[sel]
    if a.size < 2 or np.ptp(a) == 0:
        return {"gain": 1.0, "offset": 0.0}
    k = max(1, a.size // int(max_pixels))  # an even subsample: the line needs no more pixels than this
    gain, offset = np.polyfit(a[::k], b[::k], 1)
    return {"gain": float(gain), "offset": float(offset)}


def apply_grey_map(image, grey_map):
    """``gain · image + offset`` (float32); the image unchanged for ``grey_map`` None."""
    if not grey_map:
        return np.asarray(image, dtype=np.float32)
    return (float(grey_map["gain"]) * np.asarray(image, np.float64) + float(grey_map["offset"])).astype(
        np.float32
    )


# ------------------------------------------------------------------------------------------------------ pairs
def _fit_shape(a, shape, cval):
    """Centre-crop or pad ``a`` to ``shape``; returns the array and its valid-data mask."""
    out = np.full(shape, cval, dtype=np.float32)
    valid = np.zeros(shape, dtype=bool)
    src, dst = [], []
    for n, m in zip(a.shape, shape, strict=False):
        if n >= m:
            o = (n - m) // 2
            src.append(slice(o, o + m))
            dst.append(slice(0, m))
        else:
            o = (m - n) // 2
            src.append(slice(0, n))
            dst.append(slice(o, o + n))
    out[tuple(dst)] = a[tuple(src)]
    valid[tuple(dst)] = True
    return out, valid


def parse_scale(text):
    """``"2"`` → 2.0, ``"1,2,2"`` → [1.0, 2.0, 2.0] (LQ voxel / HQ voxel size), or :class:`InputError`."""
    try:
        vals = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise InputError(
            f"scale must be a number (LQ voxel / HQ voxel, e.g. 2) or 'SZ,SY,SX', got {text!r}"
        ) from None
    if not vals or len(vals) not in (1, 2, 3) or any(not (v > 0 and np.isfinite(v)) for v in vals):
        raise InputError(f"scale must be one positive number or one per axis, got {text!r}")
    return vals[0] if len(vals) == 1 else vals


def _pair_scale(lq, hq, scale, shape_tolerance):
    """The scale per axis, checked against the shapes: ``lq.shape * scale`` must be about ``hq.shape``."""
    if lq.ndim != hq.ndim:
        raise InputError(
            f"lq is {lq.ndim}D {lq.shape} but hq is {hq.ndim}D {hq.shape}; "
            "give both as 2D slices or both as volumes"
        )
    f = _per_axis(scale, hq.ndim, "scale")
    if np.any(f <= 0):
        raise InputError(f"scale must be positive, got {_nums(f)}; use LQ voxel size / HQ voxel size")
    expected = np.asarray(lq.shape) * f
    rel = np.abs(expected - np.asarray(hq.shape)) / np.asarray(hq.shape)
    if np.any(rel > shape_tolerance):
        raise InputError(
            f"lq {lq.shape} × scale {_nums(f)} = {_nums(np.round(expected, 1))} "
            f"does not match hq {hq.shape} (beyond what registration can fix); "
            "check --scale (LQ voxel / HQ voxel) or crop both to "
            "the same field of view"
        )
    return f


def _deformable_if_better(registered, hqf, method, reg_mask, moved_valid, fov):
    """Optical-flow refinement of the rigidly registered image, kept only if it matches HQ better.

    Returns the image to use and the ``deformable`` entry of the transform.
    """
    warped, flow = refine_deformable(registered, hqf, method=method, mask=reg_mask)
    mag = np.sqrt(np.sum(flow.astype(np.float64) ** 2, axis=0))
    inside = mag if fov is None else mag[fov]
    # keep the deformable result only if it matches HQ better (noise can drive optical flow astray)
    w = _taper(hqf.shape, reg_mask & moved_valid)
    ref = _local_contrast(hqf, max(2.0, 0.04 * min(hqf.shape[-2:])))
    ncc_rigid = _ncc(_local_contrast(registered, max(2.0, 0.04 * min(hqf.shape[-2:]))), ref, w)
    ncc_def = _ncc(_local_contrast(warped, max(2.0, 0.04 * min(hqf.shape[-2:]))), ref, w)
    used = ncc_def > ncc_rigid + 1e-3
    if used:
        registered = warped
    else:
        log.warning(
            "deformable refinement did not improve the match (local NCC %.4f, rigid %.4f); keeping rigid",
            ncc_def, ncc_rigid,
        )  # fmt: skip
    info = {
        "method": method,
        "mean_px": float(inside.mean()),
        "max_px": float(inside.max()),
        "ncc_rigid": ncc_rigid,
        "ncc_deformable": ncc_def,
        "used": bool(used),
    }
    return registered, info


def prepare_pair(
    lq,
    hq,
    *,
    scale,
    mask=True,
    deformable=False,
    rotation=True,
    max_rotation_deg=5.0,
    percentiles=(0.5, 99.5),
    shape_tolerance=0.25,
):
    """Turn a raw LQ scan and an HQ scan of the same sample into a registered, normalised :class:`Pair`.

    Steps (paper Methods): bicubic upscaling of LQ onto the HQ grid; optional circular field-of-view mask;
    rigid registration (:func:`register_rigid`); optional deformable refinement (:func:`refine_deformable`);
    cropping to the common region (:func:`crop_common`); normalisation (:func:`normalise`).

    Parameters
    ----------
    lq, hq : ndarray
        2D images or 3D volumes (ZYX) of the same dimensionality.
    scale : float or sequence of float
        LQ voxel size / HQ voxel size (e.g. 2 for 100 nm vs 50 nm), one or one per axis.
    mask : bool or float
        True: inscribed circular FOV; a number: FOV radius in HQ pixels; False: no mask.
    deformable : bool or {"ilk", "tvl1"}
        Optical-flow refinement after the rigid step.
    rotation, max_rotation_deg
        Passed to :func:`register_rigid` (which applies only the parts that beat the noise).
    percentiles : (float, float)
        Normalisation percentiles, computed inside the mask; they map to ±0.8 (:data:`PAIR_SPAN`), leaving
        headroom for grey levels beyond them.
    shape_tolerance : float
        Largest relative difference per axis of ``lq.shape * scale`` and ``hq.shape`` (else an InputError).

    Returns
    -------
    Pair
        Its ``transform`` records the NCC before and after registration.
    """
    lq = as_image(lq, "lq")
    hq = as_image(hq, "hq")
    f = _pair_scale(lq, hq, scale, shape_tolerance)
    up = upscale(lq, f)
    before, valid = _fit_shape(up, hq.shape, cval=float(np.median(up)))
    hqf = hq.astype(np.float32)
    fov = None
    if mask is not False and mask is not None:
        fov = fov_mask(hq.shape, radius=None if mask is True else float(mask))
    reg_mask = valid if fov is None else (valid & fov)
    tr = register_rigid(before, hqf, mask=reg_mask, rotation=rotation, max_rotation_deg=max_rotation_deg)
    registered, moved_valid = _moved(before, valid, tr)
    flow_info = None
    if deformable:
        method = deformable if isinstance(deformable, str) else "ilk"
        registered, flow_info = _deformable_if_better(registered, hqf, method, reg_mask, moved_valid, fov)
    crop = crop_common(moved_valid if fov is None else (moved_valid | ~fov))
    lq_c, hq_c = registered[crop], hqf[crop]
    fov_c = None if fov is None else fov[crop]
    ncc_before, ncc_after = (_pair_ncc(a, hq_c, fov_c) for a in (before[crop], lq_c))
    lq_n, lq_stats = normalise(lq_c, percentiles=percentiles, mask=fov_c, span=PAIR_SPAN)
    hq_n, hq_stats = normalise(hq_c, percentiles=percentiles, mask=fov_c, span=PAIR_SPAN)
    transform = {
        "scale": [float(v) for v in f],
        **{k: tr[k] for k in ("rotation_deg", "shift")},
        "crop": [[s.start, s.stop] for s in crop],
        "hq_shape": list(hq.shape),
        "lq_shape": list(lq.shape),
        "fov_radius": None if fov is None else (min(hq.shape[-2:]) / 2 if mask is True else float(mask)),
        "deformable": flow_info,
        "ncc_before": ncc_before,
        "ncc_after": ncc_after,
        # which parts of the rigid transform beat the noise (and by how many standard errors)
        **{k: tr[k] for k in ("accepted", "gain_sigmas")},
    }
    log.info("pair prepared: %s, NCC %.3f -> %.3f", hq_n.shape, ncc_before, ncc_after)
    before_n = normalise(before[crop], stats=lq_stats)[0]
    stats = {"lq": lq_stats, "hq": hq_stats}
    return Pair(lq_up=lq_n, hq=hq_n, transform=transform, stats=stats, mask=fov_c, before=before_n)


def _pair_ncc(a, b, fov):
    """NCC of two images of the pair, robustly scaled, tapered at the field of view."""
    return _ncc(_robust_scale(a, fov), _robust_scale(b, fov), _taper(b.shape, fov))


def _moved(before, valid, tr):
    """The upscaled LQ moved by the rigid transform ``tr`` and where it still holds data after the move."""
    fill = float(np.median(before))
    moved = apply_rigid(before, rotation_deg=tr["rotation_deg"], shift=tr["shift"], order=3, cval=fill)
    moved_valid = apply_rigid(
        valid.astype(np.float32), rotation_deg=tr["rotation_deg"], shift=tr["shift"], order=1
    )
    return moved, moved_valid > 0.999

"""Tortuosity factor and transport efficiency of one phase by a steady diffusion solve.

Physics and discretisation follow TauFactor (Kench et al., SoftwareX 2023), so the numbers agree with
it; the solver differs: instead of TauFactor's over-relaxed Jacobi sweeps, the finite-volume system is
solved once, on the voxels that can carry flux only, by conjugate gradients preconditioned with
algebraic multigrid (pyamg aggregation hierarchy applied as a K-cycle).

:func:`tortuosity` solves ``∇·(D ∇c) = 0`` in the voxels of the phase and reports ``τ = VF · D_bulk / D_eff``;
it agrees with ``taufactor.Solver`` to within that solver's convergence accuracy.

Definitions (flux along ``axis``; the chosen phase conducts, everything else is insulating):

- Unknowns: one concentration per voxel of the phase. Two face-sharing voxels of the phase are joined
  by a conductance of 1 (unit bulk diffusivity, unit voxels; see ``spacing`` for anisotropic voxels).
  Voxels of other phases and the four faces parallel to ``axis`` are no-flux.
- Boundaries: ``c = 0`` and ``c = 1`` are held half a voxel outside the volume, in front of the first
  and behind the last plane along ``axis`` (TauFactor's convention). A phase voxel on either face is
  joined to its reservoir by a conductance of 2 (half a voxel), and ``c`` drops over ``N`` voxels.
- ``D_eff / D_bulk = J · N / (A · Δc)`` with ``J`` the steady total flux, ``A`` the cross-section of
  the whole volume in voxels and ``Δc = 1``: the *transport efficiency* (ε/τ) of the SuperRes paper.
- ``τ = VF · D_bulk / D_eff`` with ``VF`` the volume fraction of the **whole** phase (isolated and
  dead-end voxels included: they hold material but carry no flux).

Only face-connected clusters touching both faces carry flux: the rest of the phase is dropped before the
solve (connected-component labelling), and so are dangling chains of voxels with a single link (pruned
repeatedly). Neither changes the solution on the voxels left, while the system shrinks and becomes
non-singular.

Options of :func:`tortuosity`:

- ``spacing`` (anisotropic voxels, e.g. FIB-SEM): a face normal to axis ``k`` has conductance
  ``(spacing[axis] / spacing[k])**2`` relative to faces normal to ``axis`` (TauFactor's
  ``AnisotropicSolver``).
- ``tol``: the target relative accuracy of ``tau``. CG minimises the dissipated energy, which converges to
  the flux from above at twice the rate of the residual; iterations stop when the geometrically
  extrapolated remaining change of that estimate is below ``tol``.
- ``method``: ``"amg"`` is conjugate gradients preconditioned by aggregation multigrid (pyamg);
  ``"direct"`` a sparse LU (small systems only); ``"auto"`` direct up to :data:`DIRECT_MAX_UNKNOWNS`
  unknowns, AMG above.

Example: a straight channel has ``tau = 1`` and a transport efficiency equal to its volume fraction.

>>> import numpy as np
>>> img = np.zeros((20, 20, 20), dtype=np.uint8)
>>> img[:, :10, :10] = 1
>>> res = tortuosity(img, phase=1, axis=0)
>>> round(res.tau, 6), round(res.transport_efficiency, 6)
(1.0, 0.25)
"""

from __future__ import annotations

import logging
import numbers
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .._errors import InputError

__all__ = ["TortuosityResult", "tortuosity"]

logger = logging.getLogger(__name__)

#: Systems up to this many unknowns are solved directly (sparse LU) by ``method="auto"``.
DIRECT_MAX_UNKNOWNS = 20_000


@dataclass(frozen=True)
class TortuosityResult:
    """Outcome of :func:`tortuosity`.

    Attributes
    ----------
    tau : float
        Tortuosity factor ``τ = VF · D_bulk / D_eff``: 1 for straight channels, ``inf`` when the
        phase does not percolate along ``axis``.
    transport_efficiency : float
        ``VF / τ`` (the SuperRes paper's metric), equal to ``D_eff / D_bulk``; 0 if not percolating.
    effective_diffusivity : float
        ``D_eff / D_bulk``, the relative effective diffusivity (same number as
        ``transport_efficiency``).
    volume_fraction : float
        Fraction of all voxels that belong to the phase (isolated and dead-end voxels included).
    percolating_fraction : float
        Fraction of the phase's voxels in face-connected clusters that touch both faces normal to
        ``axis``. Dead-end branches of such clusters count as percolating.
    axis : int
        Axis of the flux (non-negative).
    phase : int
        Label of the conductive phase.
    iterations : int
        Conjugate-gradient iterations (0 for a direct solve or a non-percolating phase).
    converged : bool
        Whether the estimated relative error of ``tau`` reached ``tol``.
    residual : float
        Final relative residual ``‖b − A c‖ / ‖b‖`` of the linear system (0 if nothing was solved).
    tau_error : float
        Estimated relative error of ``tau`` when the solve stopped (see ``tol`` in
        :func:`tortuosity`).
    method : str
        ``"amg"``, ``"direct"`` or ``"none"`` (nothing to solve: not percolating).
    timings : dict
        Seconds per stage: ``label`` (network), ``assemble``, ``setup`` (multigrid), ``solve``,
        ``total``.
    """

    tau: float
    transport_efficiency: float
    effective_diffusivity: float
    volume_fraction: float
    percolating_fraction: float
    axis: int
    phase: int
    iterations: int
    converged: bool
    residual: float
    tau_error: float = 0.0
    method: str = "none"
    timings: dict = field(default_factory=dict, compare=False, repr=False)


def tortuosity(
    labels,
    *,
    phase: int = 1,
    axis: int = 0,
    spacing: Sequence[float] | None = None,
    tol: float = 1e-6,
    method: str = "auto",
    maxiter: int = 500,
    progress: bool = False,
) -> TortuosityResult:
    """Tortuosity factor of one phase from a steady diffusion simulation (method: see the module docstring).

    Parameters
    ----------
    labels : array_like of int or bool, 2D or 3D
        Label image (ZYX); only voxels equal to ``phase`` conduct. A boolean mask is read as ``True = 1``; a
        2D image is treated as one voxel thick.
    phase : int, default 1
        Label of the conductive phase.
    axis : int, default 0
        Axis of the flux (the two faces normal to it hold ``c = 0`` and ``c = 1``).
    spacing : sequence of float, optional
        Voxel size per axis, for anisotropic voxels (e.g. FIB-SEM). Default: cubic voxels.
    tol : float, default 1e-6
        Target relative accuracy of ``tau`` (the stopping rule is in the module docstring).
    method : {"auto", "amg", "direct"}, default "auto"
        ``"amg"``: multigrid-preconditioned conjugate gradients; ``"direct"``: sparse LU (small systems);
        ``"auto"``: direct up to :data:`DIRECT_MAX_UNKNOWNS` unknowns, AMG above.
    maxiter : int, default 500
        Maximum number of conjugate-gradient iterations.
    progress : bool, default False
        Show a status line (stage and iteration) on stderr.

    Returns
    -------
    TortuosityResult
        ``tau``, ``transport_efficiency`` (= VF/τ = D_eff/D_bulk), ``volume_fraction``,
        ``percolating_fraction`` and solver diagnostics.

    Warns
    -----
    RuntimeWarning
        If the phase does not percolate along ``axis`` (then ``tau = inf`` and
        ``transport_efficiency = 0``), or if the solve did not reach ``tol`` in ``maxiter`` steps.

    Raises
    ------
    InputError
        For an array that is not 2D/3D or is empty, non-integer labels, or a bad ``phase``,
        ``axis``, ``spacing``, ``tol``, ``method`` or ``maxiter``.
    """
    t_start = time.perf_counter()
    mask, axis, weights, shape = _prepare(labels, phase=phase, axis=axis, spacing=spacing)
    _check_solver_options(tol, method, maxiter)
    timings = {}
    with _Progress(progress) as prog:
        perc, n_phase, n_perc = _flux_network(mask, prog, timings)
        vf = n_phase / mask.size
        perc_fraction = n_perc / n_phase if n_phase else 0.0
        if n_perc == 0:
            return _no_flux_result(phase, axis, shape, n_phase, vf, perc_fraction, timings, t_start)
        energy, solver = _solve_network(perc, weights, method, tol, maxiter, prog, timings, (n_phase, n_perc))
    # energy = total flux for Δc = 1 in units of the axial link conductance (module docstring)
    n_axis = perc.shape[0]
    d_rel = energy * n_axis / (perc.size // n_axis)  # per cross-section voxel
    tau = vf / d_rel if d_rel > 0 else float("inf")
    timings["total"] = time.perf_counter() - t_start
    logger.debug("tortuosity timings: %s", timings)
    return TortuosityResult(
        tau=float(tau),
        transport_efficiency=float(d_rel),
        effective_diffusivity=float(d_rel),
        volume_fraction=vf,
        percolating_fraction=perc_fraction,
        axis=axis,
        phase=int(phase),
        timings=timings,
        **solver,
    )


def _check_solver_options(tol, method, maxiter):
    """Check the solver arguments of :func:`tortuosity`."""
    if not (isinstance(tol, numbers.Real) and 0 < tol < 1):
        raise InputError(f"tol must be a number in (0, 1), got {tol!r}; e.g. tol=1e-6")
    if method not in ("auto", "amg", "direct"):
        raise InputError(f"method must be 'auto', 'amg' or 'direct', got {method!r}")
    if not (isinstance(maxiter, int | np.integer) and maxiter >= 1):
        raise InputError(f"maxiter must be a positive integer, got {maxiter!r}")


def _flux_network(mask, prog, timings):
    """The voxels of ``mask`` that can carry flux: its percolating clusters with dead ends pruned.

    Returns the network (bool, the shape of ``mask``), the number of voxels of the phase and the number in
    percolating clusters (before pruning); records ``timings["label"]``.
    """
    n_phase = int(np.count_nonzero(mask))
    prog.update("finding the percolating network")
    t0 = time.perf_counter()
    perc = _percolating(mask)
    n_perc = int(np.count_nonzero(perc))
    if n_perc:
        _prune_dead_ends(perc)
    timings["label"] = time.perf_counter() - t0
    return perc, n_phase, n_perc


def _no_flux_result(phase, axis, shape, n_phase, vf, perc_fraction, timings, t_start):
    """Warn (at the caller of :func:`tortuosity`) that the phase does not percolate: ``tau = inf``."""
    warnings.warn(
        _no_path_message(phase, axis, n_phase, shape),
        RuntimeWarning,
        stacklevel=3,
    )
    timings["total"] = time.perf_counter() - t_start
    return TortuosityResult(
        tau=float("inf"),
        transport_efficiency=0.0,
        effective_diffusivity=0.0,
        volume_fraction=vf,
        percolating_fraction=perc_fraction,
        axis=axis,
        phase=int(phase),
        iterations=0,
        converged=True,
        residual=0.0,
        tau_error=0.0,
        method="none",
        timings=timings,
    )


def _solve_network(perc, weights, method, tol, maxiter, prog, timings, counts):
    """Assemble and solve the diffusion system on the flux network ``perc``.

    Returns the energy (the flux) and the solver's diagnostics as :class:`TortuosityResult` fields; records
    the ``assemble``, ``setup`` and ``solve`` timings; warns (at :func:`tortuosity`'s caller) when AMG misses
    ``tol``. ``counts``: the phase and percolating voxel counts, for the log.
    """
    prog.update(f"assembling {int(np.count_nonzero(perc)):,} unknowns")
    t0 = time.perf_counter()
    A, b, x0 = _assemble(perc, weights)
    timings["assemble"] = time.perf_counter() - t0
    n = A.shape[0]
    use_direct = method == "direct" or (method == "auto" and n <= DIRECT_MAX_UNKNOWNS)
    logger.debug("tortuosity: %d phase voxels, %d percolating, %d unknowns after pruning", *counts, n)

    if use_direct:
        from scipy.sparse.linalg import spsolve

        prog.update(f"direct solve of {n:,} unknowns")
        t0 = time.perf_counter()
        x = spsolve(A.tocsc(), b)
        timings["setup"] = 0.0
        timings["solve"] = time.perf_counter() - t0
        r = b - A @ x
        energy = float(b.sum() - b @ x - x @ r)
        iterations, tau_error, converged, used = 0, 0.0, True, "direct"
    else:
        prog.update(f"multigrid setup for {n:,} unknowns")
        t0 = time.perf_counter()
        precond = _amg_preconditioner(A)
        timings["setup"] = time.perf_counter() - t0
        t0 = time.perf_counter()

        def report(it, err):
            prog.update(f"conjugate gradients: iteration {it}, estimated error {err:.1e}")

        x, r, energy, iterations, tau_error = _pcg_energy(
            A, b, x0, precond, tol=tol, maxiter=maxiter, callback=report
        )
        timings["solve"] = time.perf_counter() - t0
        converged, used = tau_error <= tol, "amg"
        if not converged:
            warnings.warn(
                f"tortuosity solve stopped after {iterations} iterations with estimated relative error "
                f"{tau_error:.1e} > tol={tol:g}; raise maxiter or tol",
                RuntimeWarning,
                stacklevel=3,
            )
    nb = float(np.linalg.norm(b))
    residual = float(np.linalg.norm(r) / nb) if nb else 0.0
    diagnostics = {
        "iterations": int(iterations),
        "converged": bool(converged),
        "residual": residual,
        "tau_error": float(tau_error),
        "method": used,
    }
    return energy, diagnostics


# --------------------------------------------------------------------------------------------------
# input


def _prepare(labels, *, phase, axis, spacing):
    """Validate; return the phase mask with the flux axis first (C-contiguous), the axis, and link weights."""
    arr = np.asarray(labels)
    if arr.ndim not in (2, 3):
        raise InputError(
            f"labels must be a 2D or 3D label image, got {arr.ndim}D with shape {arr.shape}; "
            "pass a segmented slice or volume"
        )
    if arr.size == 0:
        raise InputError(f"labels is empty (shape {arr.shape}); pass a non-empty label image")
    if arr.dtype.kind not in "biuf":
        raise InputError(f"labels must be integers or booleans, got dtype {arr.dtype}; pass a label image")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            n_values = np.unique(arr).size
            raise InputError(
                f"labels must be integers, got {arr.dtype} with {n_values} distinct values; "
                "segment the image first (matsight segment) or pass a label image"
            )
    if isinstance(phase, bool) or not isinstance(phase, int | np.integer):
        raise InputError(f"phase must be an integer label, got {phase!r}")
    if isinstance(axis, bool) or not isinstance(axis, int | np.integer) or not -arr.ndim <= axis < arr.ndim:
        raise InputError(
            f"axis must be an integer in [{-arr.ndim}, {arr.ndim - 1}] for a {arr.ndim}D image, got {axis!r}"
        )
    axis = int(axis) % arr.ndim

    if arr.dtype == bool:
        if phase not in (0, 1):
            raise InputError(f"phase must be 0 or 1 for a boolean mask, got {phase}")
        mask = arr if phase == 1 else ~arr
    else:
        mask = arr == phase

    if spacing is None:
        spacing = (1.0,) * arr.ndim
    try:
        spacing = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        raise InputError(
            f"spacing must be a sequence of {arr.ndim} positive numbers, got {spacing!r}"
        ) from None
    if len(spacing) != arr.ndim or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise InputError(f"spacing must be {arr.ndim} positive numbers (one per axis), got {spacing!r}")

    mask = np.moveaxis(mask, axis, 0)
    spacing = (spacing[axis],) + tuple(s for k, s in enumerate(spacing) if k != axis)
    if mask.ndim == 2:  # a slice is a one-voxel-thick volume
        mask = mask[:, :, None]
        spacing = spacing + (1.0,)
    weights = tuple((spacing[0] / s) ** 2 for s in spacing)
    return np.ascontiguousarray(mask, dtype=bool), axis, weights, arr.shape


def _no_path_message(phase, axis, n_phase, shape):
    if n_phase == 0:
        return f"phase {phase} does not occur in the image (shape {shape}); tau = inf, transport efficiency 0"
    return (
        f"phase {phase} does not percolate along axis {axis}: no face-connected path of phase-{phase} voxels "
        f"joins the two faces normal to axis {axis} (shape {shape}); tau = inf, transport efficiency 0"
    )


# --------------------------------------------------------------------------------------------------
# network


def _percolating(mask):
    """Voxels of face-connected clusters that touch both the first and last plane along axis 0."""
    from scipy import ndimage

    lab, n = ndimage.label(mask)  # default structure = face connectivity, the only way flux can pass
    if n == 0:
        return np.zeros_like(mask)
    first = np.unique(lab[0])
    last = np.unique(lab[-1])
    keep = np.zeros(n + 1, dtype=bool)
    keep[np.intersect1d(first, last)] = True
    keep[0] = False
    return keep[lab]


def _shift_pairs(ndim=3):
    """For each axis k, the (lower, upper) slices selecting face-neighbour pairs along k."""
    pairs = []
    for k in range(ndim):
        lo = [slice(None)] * ndim
        hi = [slice(None)] * ndim
        lo[k] = slice(0, -1)
        hi[k] = slice(1, None)
        pairs.append((tuple(lo), tuple(hi)))
    return pairs


def _link_count(perc):
    """Conductive links of each voxel: phase neighbours, plus reservoir links on the end planes."""
    links = np.zeros(perc.shape, dtype=np.uint8)
    for lo, hi in _shift_pairs():
        both = perc[lo] & perc[hi]
        links[lo] += both
        links[hi] += both
    links[0] += 1
    links[-1] += 1
    return links


def _prune_dead_ends(perc, max_passes=50, min_fraction=1e-3):
    """Remove (in place) voxels with a single link, repeatedly: dangling chains carry no flux.

    Stops when a pass removes fewer than ``min_fraction`` of the remaining voxels: each pass sweeps
    the whole volume, while the few short chains left over are cheap to keep.
    """
    n = int(np.count_nonzero(perc))
    for _ in range(max_passes):
        leaves = perc & (_link_count(perc) <= 1)
        n_leaves = int(np.count_nonzero(leaves))
        if n_leaves == 0:
            break
        perc &= ~leaves
        n -= n_leaves
        if n_leaves < min_fraction * n:
            break
    return perc


def _assemble(perc, weights):
    """Finite-volume matrix (CSR, sorted columns), right-hand side and linear initial guess."""
    import scipy.sparse as sp

    shape = perc.shape
    n = int(np.count_nonzero(perc))
    itype = np.int32 if 7 * n < np.iinfo(np.int32).max else np.int64
    idx = np.full(shape, -1, dtype=itype)
    idx[perc] = np.arange(n, dtype=itype)

    # Compact index of each unknown's neighbour in the six directions (-1: none). With C-order
    # numbering the columns of a row ascend as -axis0, -axis1, -axis2, self, +axis2, +axis1, +axis0,
    # so CSR is filled in that order directly instead of sorting ~7n COO entries.
    shifted = np.empty(shape, dtype=itype)
    minus, plus = [], []
    for k, (lo, hi) in enumerate(_shift_pairs()):
        face = [slice(None)] * 3
        face[k] = 0
        shifted[hi] = idx[lo]
        shifted[tuple(face)] = -1
        minus.append((shifted[perc], weights[k]))
        face[k] = -1
        shifted[lo] = idx[hi]
        shifted[tuple(face)] = -1
        plus.append((shifted[perc], weights[k]))
    del shifted, idx
    slots = [minus[0], minus[1], minus[2], None, plus[2], plus[1], plus[0]]

    plane = np.nonzero(perc)[0]  # position along the flux axis of each unknown
    inlet, outlet = plane == 0, plane == shape[0] - 1
    diag = np.zeros(n)
    diag[inlet] += 2.0 * weights[0]  # half a voxel to the c = 0 reservoir
    diag[outlet] += 2.0 * weights[0]  # half a voxel to the c = 1 reservoir
    counts = np.ones(n, dtype=itype)
    for nb, w in minus + plus:
        has = nb >= 0
        counts += has
        diag += w * has
    indptr = np.zeros(n + 1, dtype=itype)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=itype)
    data = np.empty(int(indptr[-1]))
    fill = indptr[:-1].copy()
    for slot in slots:
        if slot is None:
            indices[fill] = np.arange(n, dtype=itype)
            data[fill] = diag
            fill += 1
            continue
        nb, w = slot
        has = nb >= 0
        pos = fill[has]
        indices[pos] = nb[has]
        data[pos] = -w
        fill += has
    A = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    A.has_sorted_indices = True

    b = np.zeros(n)
    b[outlet] = 2.0 * weights[0]
    x0 = (plane + 0.5) / shape[0]  # linear profile between reservoirs half a voxel outside
    return A, b, x0


# --------------------------------------------------------------------------------------------------
# solve


def _amg_preconditioner(A):
    """Plain-aggregation AMG applied as a K-cycle (Notay & Vassilevski 2008): a function r -> z.

    Plain aggregation has a very cheap setup but a poor V-cycle; the K-cycle restores size-independent
    convergence by accelerating each coarse-level correction with two Krylov steps (7 CG iterations
    at 64³ and at 256³). Smoothed aggregation or Ruge-Stüben need as few iterations, but their setup
    (Galerkin products with wide prolongators) costs several times the whole solve here.
    """
    import pyamg

    ml = pyamg.smoothed_aggregation_solver(
        A,
        symmetry="hermitian",
        smooth=None,  # plain aggregation: piecewise-constant prolongator, sparse Galerkin products
        strength=None,  # every link is equally strong (theta = 0 would keep them all anyway)
        improve_candidates=None,
        # forward sweep before, backward after: symmetric, at half the cost of symmetric sweeps
        presmoother=("gauss_seidel", {"sweep": "forward"}),
        postsmoother=("gauss_seidel", {"sweep": "backward"}),
        max_coarse=500,
    )
    logger.debug("AMG levels: %s", [lvl.A.shape[0] for lvl in ml.levels])
    return _kcycle(ml)


def _kcycle(ml):
    levels = ml.levels
    coarse_solve = ml.coarse_solver
    for L in levels:
        # aggregation leaves coarse operators as 1x1-block BSR, whose smoothers are ~4x slower
        L.A = L.A.tocsr()
        if hasattr(L, "P"):
            L.P = L.P.tocsr()
            L.R = L.R.tocsr()
    last = len(levels) - 1

    def coarse_correction(lvl, rc):
        """Approximate ``A_lvl e = rc``: the cycle, accelerated by two Krylov steps."""
        if lvl == last:
            return np.asarray(coarse_solve(levels[lvl].A, rc)).ravel()
        Ac = levels[lvl].A
        c = cycle(lvl, rc)
        v = Ac @ c
        rho1 = float(c @ v)
        if rho1 <= 0.0:
            return c
        a1 = float(c @ rc)
        rt = rc - (a1 / rho1) * v
        d = cycle(lvl, rt)
        w = Ac @ d
        gamma, beta, a2 = float(d @ v), float(d @ w), float(d @ rt)
        rho2 = beta - gamma * gamma / rho1
        if rho2 <= 1e-12 * beta:  # second direction adds nothing new
            return (a1 / rho1) * c
        return (a1 / rho1 - gamma * a2 / (rho1 * rho2)) * c + (a2 / rho2) * d

    def cycle(lvl, b):
        L = levels[lvl]
        if lvl == last:
            return np.asarray(coarse_solve(L.A, b)).ravel()
        x = np.zeros_like(b)
        L.presmoother(L.A, x, b)
        x += L.P @ coarse_correction(lvl + 1, L.R @ (b - L.A @ x))
        L.postsmoother(L.A, x, b)
        return x

    return lambda r: cycle(0, r)


def _pcg_energy(A, b, x, precond: Callable, *, tol, maxiter, callback=None):
    """Flexible PCG that stops on the accuracy of the flux, estimated from the dissipated energy.

    For ``A c = b`` (reservoir terms in ``b``) the energy ``E(c) = c·A·c − 2 b·c + Σb`` equals the
    total flux ``J`` at the solution and exceeds it by ``‖c − c*‖²_A`` elsewhere. Every CG step
    minimises it exactly along the search direction, so it decreases monotonically; its decrease per
    iteration, extrapolated geometrically, estimates the remaining relative error of ``J`` (so of τ).
    The Polak-Ribière update keeps CG robust with the K-cycle, a slightly nonlinear preconditioner.
    """
    sb = float(b.sum())
    r = b - A @ x
    z = precond(r)
    p = z.copy()
    rz = float(r @ z)
    energy = energy_prev = sb - float(b @ x) - float(x @ r)
    delta_prev = None
    err = np.inf
    it = 0
    while it < maxiter and rz > 0.0:
        q = A @ p
        alpha = float(r @ p) / float(p @ q)
        x += alpha * p
        r_prev = r.copy()
        r -= alpha * q
        it += 1
        energy = sb - float(b @ x) - float(x @ r)
        delta = abs(energy_prev - energy) / max(abs(energy), np.finfo(float).tiny)
        rho = 0.9 if not delta_prev else min(delta / delta_prev, 0.95)
        err = delta * rho / (1.0 - rho)
        if callback is not None:
            callback(it, err)
        if it >= 2 and err <= tol:
            break
        energy_prev, delta_prev = energy, delta
        z = precond(r)
        rz_new = float(r @ z)
        beta = max((rz_new - float(r_prev @ z)) / rz, 0.0)
        p *= beta
        p += z
        rz = rz_new
    if rz <= 0.0:  # exact solution reached (r = 0)
        err = 0.0
    return x, r, energy, it, float(err)


class _Progress:
    """A one-line rich status (stage + iteration) when enabled; a no-op otherwise."""

    def __init__(self, enabled):
        self.enabled = enabled
        self._status = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console

            self._status = Console(stderr=True).status("tortuosity")
            self._status.__enter__()
        return self

    def update(self, text):
        if self._status is not None:
            self._status.update(f"tortuosity: {text}")

    def __exit__(self, *exc):
        if self._status is not None:
            self._status.__exit__(*exc)
        return False

"""The verdict of a SuperRes evaluation: what is off in a super-resolved volume, in a few findings.

:func:`verdict` reads the results of :func:`matsight.fuse.evaluate.evaluate` (``metrics.json``) and, if
given, the training run's ``status.json``, and lists each problem it finds as a dict with ``kind``,
``severity`` (``"major"`` or ``"minor"``), ``values`` (the numbers behind it) and ``message`` (one sentence).
An empty list means no problem was found. The rules and their thresholds:

- **grid** (grid-aligned textures, e.g. a checkerboard of dots): the SR's FFT orientation ratio (power along
  the diagonals / along the axes, ``fft_orientation_ratio``) of a phase in any slicing plane is below
  :data:`GRID_RATIO` (0.5) × the HR image's for that plane (the truth's without HR images). Major below
  0.25 ×.
- **shell** (a uniform layer of one phase wrapped round another): from :func:`interface_coverage`, the share
  ``c_pq(d)`` of the pixels at distance ``d`` from phase ``p`` that are phase ``q``. A layer of ``q`` of
  thickness ``t`` round every grain of ``p`` makes ``c_pq(d) ≈ 1`` for ``d ≤ t``. A shell is found where, for
  a run of at least :data:`SHELL_MIN_THICKNESS` (3) consecutive distances starting at 1 or 2 pixels, the SR
  has ``c_pq ≥`` :data:`SHELL_COVERAGE` (0.8) and exceeds the HR image's by at least :data:`SHELL_SURPLUS`
  (0.25), and that ends (within 3 pixels past the run the SR's ``c_pq`` falls below 0.8: a layer, not a
  matrix); its thickness is the run's last distance. Major from 5 pixels.
- **interface**: an interface face fraction of the SR volume differs from the HR image's (the truth's
  without HR images) by more than :data:`INTERFACE_REL` (25 %). Major beyond 50 %.
- **lr**: LR consistency below :data:`LR_MIN` (95 %). Major below 90 %.
- **training**: the run's ``status.json`` says it has not converged (minor: its sentence is repeated).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "GRID_RATIO",
    "INTERFACE_REL",
    "LR_MIN",
    "SHELL_COVERAGE",
    "SHELL_MIN_THICKNESS",
    "SHELL_SURPLUS",
    "interface_coverage",
    "verdict",
]

GRID_RATIO = 0.5
SHELL_SURPLUS = 0.25
SHELL_COVERAGE = 0.8
SHELL_MIN_THICKNESS = 3
INTERFACE_REL = 0.25
LR_MIN = 0.95


def interface_coverage(images, phases, max_distance=16):
    """Per ordered phase pair ``"p-q"``: the share of the pixels at distance ``d`` from phase ``p`` that are
    phase ``q``, for ``d = 1..max_distance`` (Euclidean distance to the nearest ``p`` pixel, rounded).

    Parameters
    ----------
    images : ndarray
        Stack of 2D label images ``(N, H, W)`` (or one image).
    phases : sequence of int
        The phases counted.
    max_distance : int
        Largest distance (pixels).

    Returns
    -------
    dict
        ``{"p-q": [c(1), ..., c(max_distance)]}``, None where no pixel lies at that distance.
    """
    from scipy import ndimage

    stack = np.asarray(images)
    stack = stack[None] if stack.ndim == 2 else stack
    phases = [int(p) for p in phases]
    n_lab = max([*phases, int(stack.max())]) + 1
    counts = np.zeros((len(phases), max_distance + 1, n_lab), dtype=np.int64)
    for img in stack:
        for i, p in enumerate(phases):
            mask = img == p
            if not mask.any() or mask.all():
                continue
            band = np.rint(ndimage.distance_transform_edt(~mask)).astype(np.int64)
            sel = (band >= 1) & (band <= max_distance)
            flat = band[sel] * n_lab + img[sel].astype(np.int64)
            counts[i] += np.bincount(flat, minlength=(max_distance + 1) * n_lab).reshape(-1, n_lab)
    out = {}
    for i, p in enumerate(phases):
        tot = counts[i, 1:].sum(axis=1)
        for q in phases:
            if q != p:
                share = counts[i, 1:, q] / np.maximum(tot, 1)
                out[f"{p}-{q}"] = [float(s) if t else None for s, t in zip(share, tot, strict=True)]
    return out


def verdict(metrics, status=None):
    """The problems an evaluation's results show, as a list of findings (empty: none found).

    Parameters
    ----------
    metrics : dict
        Results of :func:`matsight.fuse.evaluate.evaluate` (``metrics.json``); missing parts are skipped.
    status : dict, optional
        The training run's ``status.json``.

    Returns
    -------
    list of dict
        ``{"kind", "severity", "values", "message"}`` per finding; the rules are in the module docstring.
    """
    found = []
    found += _grid(metrics.get("fft_orientation_ratio") or {})
    found += _shells(metrics.get("interface_coverage") or {})
    found += _interfaces(metrics.get("whole") or {})
    found += _lr(metrics.get("lr_consistency"))
    if status and status.get("converged") is False:
        found.append(
            _finding("training", "minor", {"converged": False}, f"training: {status.get('verdict', '')}")
        )
    return found


def _finding(kind, severity, values, message):
    return {"kind": kind, "severity": severity, "values": values, "message": message}


def _ok(v):
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def _grid(orient):
    """Grid finding: planes and phases whose SR orientation ratio is below GRID_RATIO × the reference's."""
    bad = {}
    for ax in "ZYX":
        sr = orient.get(f"SR ⟂ {ax}")
        ref = orient.get(f"HR ⟂ {ax}") or orient.get("HR") or orient.get(f"truth ⟂ {ax}")
        if not sr or not ref:
            continue
        for p, v in sr.items():
            r = ref.get(p)
            if _ok(v) and _ok(r) and r > 0 and v < GRID_RATIO * r:
                bad[f"⟂ {ax}, phase {p}"] = {"SR": v, "reference": r, "ratio": v / r}
    if not bad:
        return []
    worst_key = min(bad, key=lambda k: bad[k]["ratio"])
    w = bad[worst_key]
    return [
        _finding(
            "grid",
            "major" if w["ratio"] < GRID_RATIO / 2 else "minor",
            bad,
            f"grid artefacts: the SR's FFT orientation ratio ({worst_key}) is {w['SR']:.2f} against the HR "
            f"image's {w['reference']:.2f} (below {GRID_RATIO}×): textures aligned with the voxel grid, "
            "e.g. a checkerboard or lattice of dots",
        )
    ]


def _shell_run(sr, ref):
    """``(first, last)`` distances of the leading run that makes a shell, or None."""
    run = []
    for d, (c, r) in enumerate(zip(sr, ref, strict=False), start=1):
        good = c is not None and r is not None and c >= SHELL_COVERAGE and c - r >= SHELL_SURPLUS
        if good:
            run.append(d)
        elif run or d >= 2:
            break
    if len(run) < SHELL_MIN_THICKNESS:
        return None
    # a shell ends: within 3 distances past the run, the SR's coverage falls below SHELL_COVERAGE
    after = [c for c in sr[run[-1] : run[-1] + 3] if c is not None]
    return (run[0], run[-1]) if any(c < SHELL_COVERAGE for c in after) else None


def _shells(cov):
    """Shell findings: pairs p-q whose SR coverage is a leading surplus over the reference's."""
    sr_cov = cov.get("SR") or {}
    ref_name = next((n for n in ("HR", "truth") if n in cov), None)
    if ref_name is None:
        return []
    out = []
    for key, sr in sr_cov.items():
        ref = cov[ref_name].get(key)
        run = _shell_run(sr, ref) if ref else None
        if run is None:
            continue
        p, q = key.split("-")
        a, b = run
        c_sr = float(np.mean(sr[a - 1 : b]))
        c_ref = float(np.mean(ref[a - 1 : b]))
        out.append(
            _finding(
                "shell",
                "major" if b >= 5 else "minor",
                {"phase": int(p), "shell_phase": int(q), "thickness": b, "SR": c_sr, ref_name: c_ref},
                f"shells: phase {p} is wrapped in a layer of phase {q} about {b} voxels thick — "
                f"{100 * c_sr:.0f}% of the voxels within {b} of phase {p} are phase {q} in the SR against "
                f"{100 * c_ref:.0f}% in the {ref_name}",
            )
        )
    return out


def _interfaces(whole):
    """Interface findings: SR face fractions more than INTERFACE_REL off the reference's."""
    ref_name = next((n for n in ("HR", "truth") if n in whole), None)
    if "SR" not in whole or ref_name is None:
        return []
    sr, ref = whole["SR"]["interface_face_fraction"], whole[ref_name]["interface_face_fraction"]
    out = []
    for k, r in ref.items():
        v = sr.get(k, 0.0)
        if not _ok(r) or r <= 0 or not _ok(v):
            continue
        rel = (v - r) / r
        if abs(rel) > INTERFACE_REL:
            a, b = k.split("-")
            out.append(
                _finding(
                    "interface",
                    "major" if abs(rel) > 2 * INTERFACE_REL else "minor",
                    {"interface": k, "SR": v, ref_name: r, "relative": rel},
                    f"interface {'deficit' if rel < 0 else 'surplus'}: the {a}/{b} interface is {rel:+.0%} "
                    f"off the {ref_name}'s (face fraction {v:.4f} against {r:.4f}; allowed "
                    f"±{INTERFACE_REL:.0%})",
                )
            )
    return out


def _lr(cons):
    if not cons or not _ok(cons.get("consistency")) or cons["consistency"] >= LR_MIN:
        return []
    c = cons["consistency"]
    return [
        _finding(
            "lr",
            "major" if c < LR_MIN - 0.05 else "minor",
            {"consistency": c, "per_phase": cons.get("per_phase")},
            f"LR disagreement: degrading the SR reproduces {100 * c:.1f}% of the LR voxels "
            f"(target ≥ {100 * LR_MIN:.0f}%)",
        )
    ]

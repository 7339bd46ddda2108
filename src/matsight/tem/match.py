"""Match FFT spots to phases: d-spacing within a tolerance, then pairs of spots indexed in one zone axis.

1. *Candidates*: a spot may be reflection family ``{hkl}`` of phase P when ``|d_spot − d_hkl| ≤ tol · d_hkl``.
2. *Zone indexing*: two non-collinear spots ``g_i, g_j`` seed a crystal of phase P when some members
   ``h_i ∈ {hkl}_i, h_j ∈ {hkl}_j`` have the measured inter-plane angle (within ``angle_tolerance``) in P's
   metric. Their plane fixes the orientation (zone axis ``[uvw] ∥ h_i × h_j``, measured handedness), so
   every other candidate spot is predicted in 3D and indexed only if some member of its families lies there —
   ``d`` *and* direction must agree. Crystals are taken greedily, most indexed spots first; this is what
   separates phases with close d (e.g. Li (110) 2.482 Å vs Li2CO3 (020) 2.486 Å).
3. Spots outside every crystal keep a d-only match if they are strong (``min_snr_d_only``); when several
   phases fit they are flagged ``ambiguous`` (phases already identified by a crystal win). Spots with no
   reflection within the tolerance stay ``"unknown"`` — they are never forced onto the nearest entry.
"""

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from .._errors import InputError
from .crystals import load_phases
from .merit import MAX_ANISOTROPY, MIN_MERIT, crystal_merit

log = logging.getLogger(__name__)

__all__ = ["SpotMatch", "MatchResult", "match_spots", "UNKNOWN"]

UNKNOWN = "unknown"


@dataclass
class SpotMatch:
    """The identification of one spot."""

    phase: str = UNKNOWN
    hkl: tuple | None = None
    d_ref: float = float("nan")
    d_error: float = float("nan")  # relative: (d_spot - d_ref) / d_ref
    grain: int = -1  # index into MatchResult.grains, -1 = d-only match
    zone: tuple | None = None
    ambiguous: bool = False
    alternatives: list = field(default_factory=list)
    fraction: int = 1  # 3 for the 1/3{422}-type reflections of <111> cubic grains (hkl holds the integers)

    @property
    def label(self):
        """``"LiF (200)"``, ``"LiF 1/3(4-2-2)"``, or ``"unknown"``."""
        if self.phase == UNKNOWN or self.hkl is None:
            return UNKNOWN
        pre = f"1/{self.fraction}" if self.fraction != 1 else ""
        return f"{self.phase} {pre}{_hkl_str(self.hkl)}"


@dataclass
class MatchResult:
    """Per-spot matches, indexed crystals (grains) and the phases found."""

    matches: list
    grains: list  # dicts: phase, zone, spots (indices), hkl (per spot), merit (dict), scale
    phases: list  # names of the phases searched
    #: pixel-size scale the spots were indexed at: 1, or the ratio method's fit (true = scale × given)
    scale: float = 1.0
    min_merit: float = MIN_MERIT
    #: the best crystal per phase and zone tried, named or not (figure of merit, share, ...), best first
    candidates: list = field(default_factory=list)

    def merit_table(self):
        """Per phase searched: the best figure of merit of its crystals and whether it is named."""
        out = []
        for name in self.phases:
            cs = [c for c in self.candidates if c["phase"] == name]
            c = max(cs, key=lambda c: c["merit"]) if cs else None
            out.append(
                {
                    "phase": name,
                    "named": name in self.phases_found,
                    "merit": c["merit"] if c else 0.0,
                    "zone": "[" + " ".join(map(str, c["zone"])) + "]" if c else "",
                    "spots": c["spots"] if c else 0,
                    "share": c["share"] if c else 0.0,
                    "angle_rms_deg": c["angle_rms_deg"] if c else None,
                    "scale": c["scale"] if c else 1.0,
                }
            )
        return out

    def verdict(self, pixel_size_nm=None):
        """One sentence: the phases named, the scale fitted, or that no phase of the database fits."""
        if not self.phases_found:
            close = ", ".join(
                f"{c['phase']} [{' '.join(map(str, c['zone']))}] merit {c['merit']:.2f}"
                for c in self.candidates[:3]
            )
            return f"no phase of the database fits (figure of merit below {self.min_merit:g})" + (
                f"; closest: {close}" if close else ""
            )
        msg = "phases: " + ", ".join(self.phases_found)
        if abs(self.scale - 1) > 1e-9:
            g = max(self.grains, key=lambda g: g["merit"]["merit"])
            msg = f"spots fit {g['phase']} [{' '.join(map(str, g['zone']))}] with a scale of {self.scale:.3f}"
            if pixel_size_nm is not None:
                py, px = np.broadcast_to(np.asarray(pixel_size_nm, float), (2,))
                if np.isclose(py, px, rtol=1e-9):
                    fix, was = f"{py * self.scale:.5g}", f"{py:.5g}"
                else:  # per axis, y then x
                    fix = f"{py * self.scale:.5g} (y), {px * self.scale:.5g} (x)"
                    was = f"{py:.5g} (y), {px:.5g} (x)"
                msg += f": your pixel size is probably {fix} nm, not {was} nm"
        return msg

    @property
    def phases_found(self):
        """Phases with at least one matched spot, in database order."""
        found = {m.phase for m in self.matches if m.phase != UNKNOWN}
        return [p for p in self.phases if p in found]

    def to_records(self):
        """One dict per spot."""
        out = []
        for m in self.matches:
            r = asdict(m)
            r["hkl"] = _hkl_str(m.hkl) if m.hkl is not None else ""
            r["zone"] = "[" + " ".join(map(str, m.zone)) + "]" if m.zone is not None else ""
            r["alternatives"] = "; ".join(m.alternatives)
            out.append(r)
        return out


def _hkl_str(hkl):
    if max(abs(i) for i in hkl) > 9:
        return "(" + " ".join(map(str, hkl)) + ")"
    return "(" + "".join(map(str, hkl)) + ")"


def _reduce(v):
    v = np.asarray(np.round(v), int)
    g = np.gcd.reduce(np.abs(v[v != 0])) if np.any(v) else 1
    v = v // max(g, 1)
    nz = v[np.flatnonzero(v)[0]] if np.any(v) else 1
    return tuple(int(i) for i in (v if nz > 0 else -v))


class _PhaseCands:
    """Candidate reflection members of one phase for every spot (padded arrays for vectorised indexing)."""

    def __init__(self, phase, d_spots, tol, d_min, d_max, min_intensity):
        self.phase = phase
        refl = phase.reflections(
            d_min=max(0.5, d_min * (1 - tol)), d_max=d_max * (1 + tol), min_intensity=min_intensity
        )
        self.refl = refl
        d_ref = np.array([r.d for r in refl]) if refl else np.zeros(0)
        self.fams = []  # per spot: list of family indices
        for d in d_spots:
            err = np.abs(d - d_ref) / d_ref if refl else np.zeros(0)
            self.fams.append([int(i) for i in np.flatnonzero(err <= tol)])
        n = len(d_spots)
        m = max([sum(len(refl[f].members) for f in fl) for fl in self.fams] + [1])
        self.G = np.full((n, m, 3), np.nan)  # Cartesian g of every candidate member (1/Å)
        self.H = np.zeros((n, m, 3), int)
        self.F = np.full((n, m), -1, int)  # family index
        for k, fl in enumerate(self.fams):
            if not fl:
                continue
            mem = np.concatenate([refl[f].members for f in fl])
            fam = np.concatenate([[f] * len(refl[f].members) for f in fl])
            self.G[k, : len(mem)] = phase.g_vectors(mem)
            self.H[k, : len(mem)] = mem
            self.F[k, : len(mem)] = fam

    def has(self, k):
        return bool(self.fams[k])


def _index_from_seed(pc, i, j, hi, hj, v2, order_ok, ang_tol, tol):
    """Index every spot in the crystal frame set by spots i, j ↔ members hi, hj."""
    Gi, Gj = pc.phase.g_vectors([hi, hj])
    n3 = np.cross(Gi, Gj)
    nn = np.linalg.norm(n3)
    if nn < 1e-12:
        return None
    # measured handedness: the 2D cross product of v_i and v_j sets which side the normal points to
    s = np.sign(v2[i, 0] * v2[j, 1] - v2[i, 1] * v2[j, 0])
    n3 = s * n3 / nn
    e1 = Gi / np.linalg.norm(Gi)
    e2 = np.cross(n3, e1)
    ai = np.arctan2(v2[i, 1], v2[i, 0])
    alpha = np.arctan2(v2[:, 1], v2[:, 0]) - ai
    mag = np.hypot(v2[:, 0], v2[:, 1]) / 10.0  # 1/nm → 1/Å
    pred = mag[:, None] * (np.cos(alpha)[:, None] * e1 + np.sin(alpha)[:, None] * e2)  # (n, 3)
    G = pc.G
    dots = np.einsum("nmk,nk->nm", G, pred)
    norms = np.linalg.norm(G, axis=2) * np.linalg.norm(pred, axis=1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        ang = np.degrees(np.arccos(np.clip(dots / norms, -1, 1)))
    ang = np.where(np.isnan(ang), np.inf, ang)
    best = np.argmin(ang, axis=1)
    best_ang = ang[np.arange(len(best)), best]
    ok = (best_ang <= ang_tol) & order_ok
    zone = _reduce(s * np.cross(np.asarray(hi, int), np.asarray(hj, int)))  # [uvw] = h_i × h_j
    return best, best_ang, ok, zone, pred


def _completion(phase, pred, free, zone, tol):
    """Spots of a grain that sit on its zone's lattice but were not d-candidates.

    Dynamical and double scattering light up kinematically weak reflections (Li2O (200), (420)), and a <111>
    cubic crystal whose thickness is not a whole number of its ABC stacking periods shows the "forbidden"
    1/3{422} reflections (fcc; 1/3{112} for bcc) — both sit exactly on the grain's (super)lattice. Returns
    ``{spot: (hkl, fraction, error / tol)}`` for spots ``free`` within ``tol`` (relative position error).
    """
    Rinv = np.linalg.inv(phase._recip.T)
    out = {}
    z = np.abs(np.asarray(zone))
    dens = (1, 3) if phase._is_cubic and sorted(z.tolist()) == [1, 1, 1] else (1,)
    mag = np.linalg.norm(pred, axis=1)
    for k in np.flatnonzero(free):
        h = pred[k] @ Rinv
        for den in dens:
            r = np.round(h * den)
            if not r.any():
                continue
            err = np.linalg.norm(pred[k] - (r / den) @ phase._recip.T) / mag[k]
            # no space-group absence completes a grain: is_absent drops centring and glide/screw absences
            # alike (double diffraction can light the latter; such spots then stay outside the grain)
            if err <= tol and not phase.is_absent(tuple(int(x) for x in r)):
                g = np.gcd.reduce(r.astype(int))
                if den == 3 and g % 3 == 0:
                    break  # an integer reflection: handled by den = 1
                out[int(k)] = (tuple(int(x) for x in r), den, float(err / tol))
                break
    return out


def match_spots(
    spots,
    phases=None,
    *,
    tolerance=0.02,
    angle_tolerance=2.0,
    min_intensity=0.01,
    d_min=1.0,
    d_max=15.0,
    max_seed_spots=16,
    min_snr_d_only=6.5,
    scale_range=0.08,
    min_merit=MIN_MERIT,
    max_anisotropy=MAX_ANISOTROPY,
):
    """Identify the phase and (hkl) of every spot.

    Parameters
    ----------
    spots : SpotTable
    phases : list of names/paths/Phase, optional
        Default: every shipped phase.
    tolerance : float
        Relative d tolerance.
    angle_tolerance : float
        Inter-plane angle tolerance in degrees.
    min_intensity : float
        Ignore reflections weaker than this (relative kinematic |F|²).
    d_min, d_max : float
        Range of reference reflections (Å).
    max_seed_spots : int
        Only the strongest spots of each phase seed crystals (speed); all are indexed.
    min_snr_d_only : float
        A spot outside every indexed crystal is matched on its d alone only when its peak stands this far out
        of the noise (``SpotTable.snr``); weaker lone spots stay ``unknown`` (their candidates are listed), so
        that a faint streak or a dynamical reflection does not declare a phase.
    scale_range : float
        When no phase is named at the given pixel size, try pixel-size scales within ``±scale_range`` (the
        ratio method: d ratios and angles fix the phase, the scale follows) and report the best one
        (``MatchResult.scale``). 0 turns the search off.
    min_merit : float
        A crystal names its phase only with a figure of merit at least this (:mod:`matsight.tem.merit`);
        weaker ones are listed in ``MatchResult.candidates`` and their spots stay ``unknown``.
    max_anisotropy : float
        A crystal whose zone net must be stretched more than this (largest over smallest principal stretch
        − 1) to fit its spots names no phase (:mod:`matsight.tem.merit`).

    Returns
    -------
    MatchResult
    """
    if not 0 < tolerance < 0.5:
        raise InputError(f"tolerance {tolerance} must be a relative d error in (0, 0.5), e.g. 0.02 for 2 %")
    if not 0 <= scale_range < 0.5:
        raise InputError(f"scale_range {scale_range} must be in [0, 0.5), e.g. 0.08 for ±8 %")
    plist = load_phases(phases)
    names = [p.name for p in plist]
    if len(spots) == 0:
        return MatchResult([], [], names, min_merit=min_merit)
    kw = {
        "tolerance": tolerance,
        "angle_tolerance": angle_tolerance,
        "min_intensity": min_intensity,
        "d_min": d_min,
        "d_max": d_max,
        "max_seed_spots": max_seed_spots,
        "min_snr_d_only": min_snr_d_only,
        "min_merit": min_merit,
        "max_anisotropy": max_anisotropy,
        "scale_range": scale_range,
    }
    res = _match_at_scale(spots, plist, 1.0, kw)
    if scale_range > 0 and not res.grains:
        res = _scale_search(spots, plist, scale_range, kw, res)
    return res


def _view(spots, scale):
    """The spots' d, 2D g (1/nm), intensity and SNR as if the pixel size were ``scale`` × the given one."""
    snr = getattr(spots, "snr", None)
    return (
        np.asarray(spots.d, float) * scale,
        np.column_stack([spots.gx, spots.gy]) / scale,
        np.asarray(spots.intensity, float),
        None if snr is None else np.asarray(snr, float),
    )


def _match_at_scale(spots, plist, scale, kw, n_scale=1.0):
    """:func:`match_spots` at one pixel-size ``scale``: crystals with their figure of merit, then d-only."""
    d, v2, inten, snr = _view(spots, scale)
    n = len(d)
    tol, atol = kw["tolerance"], kw["angle_tolerance"]
    matches = [SpotMatch() for _ in range(n)]
    cands = [_PhaseCands(p, d, tol, kw["d_min"], kw["d_max"], kw["min_intensity"]) for p in plist]
    order = np.argsort(-inten)
    assigned = np.zeros(n, bool)
    grains, rejected, skip = [], [], set()
    ctx = {
        "tolerance": tol,
        "angle_tolerance": atol,
        "d_lo": max(kw["d_min"], d.min() * (1 - tol)),
        "d_hi": min(kw["d_max"], d.max() * (1 + tol)) if d.max() * (1 + tol) > kw["d_min"] else kw["d_max"],
        "n_scale": n_scale,
        "intensity": inten,
        "g": v2,
        "max_anisotropy": kw.get("max_anisotropy", MAX_ANISOTROPY),
        "scale_range": kw.get("scale_range", 0.0),
        "min_intensity": kw["min_intensity"],
        "pos_tol": min(tol, np.radians(atol)),
    }
    if ctx["d_hi"] <= ctx["d_lo"]:
        ctx["d_lo"], ctx["d_hi"] = kw["d_min"], kw["d_max"]
    while True:
        best = _best_grain(cands, order, assigned, v2, d, snr, skip=skip, **_grain_kw(kw))
        if best is None:
            break
        _, pi, res = best
        m = _merit(cands[pi], res, assigned, ctx, kw["max_seed_spots"])
        if m["merit"] < kw["min_merit"]:
            rejected.append(_candidate(cands[pi].phase.name, res["zone"], m, scale))
            skip.add(pi)
            continue
        _assign_grain(cands[pi].phase, res, d, matches, assigned, grains)
        grains[-1].update(merit=m, scale=scale)
        skip.clear()  # the free spots changed: a phase rejected beside them may now fit
    identified = {g["phase"] for g in grains}
    _match_d_only(cands, d, snr, assigned, identified, matches, tol, kw["min_snr_d_only"])
    out = MatchResult(matches, grains, [p.name for p in plist], scale=scale, min_merit=kw["min_merit"])
    out.candidates = sorted(
        [_candidate(g["phase"], g["zone"], g["merit"], scale) for g in grains] + rejected,
        key=lambda c: -c["merit"],
    )
    return out


def _grain_kw(kw):
    keys = ("tolerance", "angle_tolerance", "max_seed_spots", "min_snr_d_only")
    return {k: kw[k] for k in keys}


def _merit(pc, res, assigned, ctx, max_seed_spots):
    """:func:`~matsight.tem.merit.crystal_merit` of crystal ``res`` given the spots still free."""
    free = ~assigned
    n_cand = sum(1 for k in np.flatnonzero(free) if pc.has(k))
    m = min(n_cand, max_seed_spots)
    ctx = dict(ctx, free=free, n_free=int(free.sum()), n_pairs=max(1, m * (m - 1) // 2))
    return crystal_merit(pc, res, ctx)


def _candidate(phase, zone, merit, scale):
    return {"phase": phase, "zone": tuple(int(x) for x in zone), "scale": float(scale), **merit}


def _scale_search(spots, plist, scale_range, kw, nominal):
    """The ratio method: match at pixel-size scales within ``±scale_range``, keep the best, refine the scale.

    Scales are tried every ``tolerance`` (each d window is ``±tolerance`` wide, so neighbouring trials
    overlap by half); the figure of merit pays for the ``range / tolerance`` independent trials. The best
    scale is refined to the median ``d_ref / d`` of the spots its crystals index and matched again there.
    Returns ``nominal`` (the result at scale 1) when no scale names a phase; its candidates then list the
    closest crystals over every scale.
    """
    tol = kw["tolerance"]
    lo, hi = np.log(1 - scale_range), np.log(1 + scale_range)
    trials = np.exp(np.arange(lo, hi + 1e-9, tol))
    n_scale = max(1.0, (hi - lo) / (2 * tol))
    best, cands = None, list(nominal.candidates)
    for s in trials:
        r = _match_at_scale(spots, plist, float(s), kw, n_scale)
        cands += r.candidates
        if not r.grains:
            continue
        r = _refine_scale(spots, plist, r, kw, n_scale, scale_range)
        if r is None:
            continue
        cands += r.candidates
        key = (max(g["merit"]["merit"] for g in r.grains), -_rms_d_error(r))
        if best is None or key > best[0]:
            best = (key, r)
    if best is None:
        nominal.candidates = _closest(cands)
        return nominal
    out = best[1]
    out.candidates = _closest(out.candidates + cands)
    return out


def _rms_d_error(r):
    e = [m.d_error for m in r.matches if m.grain >= 0 and m.fraction == 1]
    return float(np.sqrt(np.mean(np.square(e)))) if e else 1.0


def _refine_scale(spots, plist, r, kw, n_scale, scale_range):
    """Match again at the median ``d_ref / d`` of the spots ``r``'s crystals index; None outside the range."""
    ratios = [1 / (1 + m.d_error) for m in r.matches if m.grain >= 0 and m.fraction == 1]
    s_ref = r.scale * float(np.median(ratios)) if ratios else r.scale
    if abs(np.log(s_ref)) > np.log1p(scale_range):
        return None
    refined = _match_at_scale(spots, plist, s_ref, kw, n_scale)
    return refined if refined.grains else r


def _closest(cands):
    """The best candidate per phase and zone, highest figure of merit first."""
    best = {}
    for c in cands:
        key = (c["phase"], c["zone"])
        if key not in best or c["merit"] > best[key]["merit"]:
            best[key] = c
    return sorted(best.values(), key=lambda c: -c["merit"])


def _best_grain(
    cands, order, assigned, v2, d, snr, *, tolerance, angle_tolerance, max_seed_spots, min_snr_d_only, skip=()
):
    """The best-scoring crystal over every phase and seed pair of unassigned spots.

    Returns ``(score, phase index, {"spots": {spot: hkl}, "zone": uvw, "extra": completion})``, or None when
    no seed pair indexes a crystal.
    """
    n = len(d)
    cos_collinear = np.cos(np.radians(max(5.0, 2 * angle_tolerance)))
    pos_tol = min(tolerance, np.radians(angle_tolerance))  # relative position error for grain completion
    best, n_hyp = None, {}
    for pi, pc in enumerate(cands):
        if pi in skip:
            continue
        avail = [k for k in order if not assigned[k] and pc.has(k)]
        seeds = avail[:max_seed_spots]
        if len(seeds) < 2:
            continue
        order_ok = ~assigned & np.array([pc.has(k) for k in range(n)])
        for i, j, fi, hi, hj in _seed_pairs(pc, seeds, v2, cos_collinear, angle_tolerance):
            n_hyp[pi] = n_hyp.get(pi, 0) + 1
            indexed = _index_from_seed(pc, i, j, hi, hj, v2, order_ok, angle_tolerance, tolerance)
            if indexed is None:
                continue
            scored = _score_crystal(
                pc,
                i,
                j,
                fi,
                hi,
                indexed,
                d,
                snr,
                assigned,
                tolerance=tolerance,
                angle_tolerance=angle_tolerance,
                pos_tol=pos_tol,
                min_snr_d_only=min_snr_d_only,
            )
            if scored is not None and (best is None or scored[0] > best[0]):
                best = (scored[0], pi, scored[1])
    if best is not None:
        best[2]["n_hyp"] = n_hyp[best[1]]  # orientation hypotheses tried for that phase (look-elsewhere)
    return best


def _seed_pairs(pc, seeds, v2, cos_collinear, angle_tolerance):
    """Seed hypotheses of one phase: two non-collinear spots and family members at their measured angle.

    Yields ``(i, j, fi, hi, hj)``: spots ``i, j`` of ``seeds``, a family ``fi`` of spot ``i`` with its member
    ``hi``, and a member ``hj`` of a family of spot ``j`` at the measured angle within ``angle_tolerance``.
    """
    for a in range(len(seeds)):
        i = seeds[a]
        for b in range(a + 1, len(seeds)):
            j = seeds[b]
            vi, vj = v2[i], v2[j]
            c = np.dot(vi, vj) / (np.linalg.norm(vi) * np.linalg.norm(vj))
            if abs(c) > cos_collinear:
                continue
            theta = np.degrees(np.arccos(np.clip(c, -1, 1)))
            for fi in pc.fams[i]:
                hi = np.array(pc.refl[fi].hkl)  # any member: the others are symmetry images
                Gi = pc.phase.g_vectors([hi])[0]
                sel = np.flatnonzero(pc.F[j] >= 0)
                Gj = pc.G[j, sel]
                cj = Gj @ Gi / (np.linalg.norm(Gj, axis=1) * np.linalg.norm(Gi))
                aj = np.degrees(np.arccos(np.clip(cj, -1, 1)))
                for m in sel[np.abs(aj - theta) <= angle_tolerance]:
                    yield i, j, fi, hi, pc.H[j, m]


def _score_crystal(
    pc, i, j, fi, hi, indexed, d, snr, assigned, *, tolerance, angle_tolerance, pos_tol, min_snr_d_only
):
    """Score the crystal indexed from seed spots ``i, j`` (``indexed``: :func:`_index_from_seed`'s result).

    Returns ``(score, {"spots": {spot: hkl}, "zone": uvw, "extra": completion})``, or None when the crystal
    rests on two faint spots only. Scores compare as tuples: soft spot count, then minus the mean errors.
    """
    bm, bang, ok, zone, pred = indexed
    ok[i] = ok[j] = True
    idx = np.flatnonzero(ok)
    hk = {int(k): tuple(int(x) for x in pc.H[k, bm[k]]) for k in idx if k != i}
    hk[int(i)] = tuple(int(x) for x in hi)
    dref = np.array([pc.phase.d_spacing(hk[int(k)]) for k in idx])
    ed = np.abs(d[idx] - dref) / dref / tolerance
    ea = np.where(np.isfinite(bang[idx]), bang[idx], 0.0) / angle_tolerance
    fam = np.array([fi if k == i else pc.F[k, bm[k]] for k in idx])
    rel = np.array([pc.refl[f].intensity for f in fam])
    extra = _completion(pc.phase, pred, ~assigned & ~ok, zone, pos_tol)
    if len(idx) + len(extra) <= 2 and snr is not None and snr[idx].min() < min_snr_d_only:
        return None  # two faint spots are no more evidence of a crystal than one
    ex = np.array([e for *_, e in extra.values()])
    # soft count: a spot counts fully when its d and angle fit well and its reference reflection is strong;
    # near-coincidences of weak high-index reflections of a large cell (Li2CO3 [304] mimics Li [011] to
    # 0.35 %) then lose to the simple phase
    w = np.clip(1 - 0.5 * ed**2 - 0.5 * ea**2, 0.1, 1) * (0.5 + 0.5 * np.minimum(rel / 0.1, 1))
    w_extra = np.clip(1 - 0.5 * ex**2, 0.1, 1) if ex.size else np.zeros(0)
    score = (float(w.sum() + w_extra.sum()), -float(ed.mean() + ea.mean()))
    res = {"spots": hk, "zone": zone, "extra": extra, "seed": (int(i), int(j)), "pred": pred}
    res["angle_err"] = [float(a) for k, a in zip(idx, bang[idx], strict=True) if k != i and np.isfinite(a)]
    return score, res


def _assign_grain(phase, res, d, matches, assigned, grains):
    """Record crystal ``res`` of ``phase`` as a new grain: its spots' matches, ``assigned`` and ``grains``."""
    gidx = len(grains)
    grains.append(
        {
            "phase": phase.name,
            "zone": res["zone"],
            "spots": sorted(res["spots"]),
            "hkl": {k: _hkl_str(h) for k, h in res["spots"].items()},
        }
    )
    for k, h in res["spots"].items():
        d_ref = phase.d_spacing(h)
        matches[k] = SpotMatch(
            phase=phase.name, hkl=h, d_ref=d_ref, d_error=(d[k] - d_ref) / d_ref, grain=gidx, zone=res["zone"]
        )
        assigned[k] = True
    for k, (h, den, _) in res["extra"].items():
        d_ref = phase.d_spacing(h) * den
        matches[k] = SpotMatch(
            phase=phase.name,
            hkl=h,
            d_ref=d_ref,
            d_error=(d[k] - d_ref) / d_ref,
            grain=gidx,
            zone=res["zone"],
            fraction=den,
        )
        assigned[k] = True
        grains[-1]["spots"].append(k)
        grains[-1]["hkl"][k] = matches[k].label.split(" ", 1)[1]
    grains[-1]["spots"].sort()


def _match_d_only(cands, d, snr, assigned, identified, matches, tolerance, min_snr_d_only):
    """Match the spots outside every grain on their d alone (strong spots only; see :func:`match_spots`)."""
    for k in range(len(d)):
        if assigned[k]:
            continue
        opts = []
        for pc in cands:
            for f in pc.fams[k]:
                r = pc.refl[f]
                opts.append(
                    (pc.phase.name in identified, -abs(d[k] - r.d) / r.d / tolerance + r.intensity, pc, r)
                )
        if not opts:
            continue
        opts.sort(key=lambda o: (o[0], o[1]), reverse=True)
        # a phase is named only by a crystal with evidence: a lone d matches a phase already named
        if not opts[0][0] or (snr is not None and snr[k] < min_snr_d_only):
            matches[k] = SpotMatch(alternatives=sorted({f"{o[2].phase.name} {o[3].label}" for o in opts}))
            continue
        _, _, pc, r = opts[0]
        # only other phases make a spot ambiguous: the winner's own other reflections are no alternative
        others = [o for o in opts[1:] if o[2].phase.name != pc.phase.name]
        alts = [f"{o[2].phase.name} {o[3].label}" for o in others]
        matches[k] = SpotMatch(
            phase=pc.phase.name,
            hkl=r.hkl,
            d_ref=r.d,
            d_error=(d[k] - r.d) / r.d,
            # an identified winner beats phases never identified; it is ambiguous only against another
            # identified phase (or when no candidate phase was identified)
            ambiguous=bool(others) and not (opts[0][0] and not any(o[0] for o in others)),
            alternatives=sorted(set(alts)),
        )

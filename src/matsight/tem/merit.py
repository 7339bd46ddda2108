"""Figure of merit of an indexed crystal: is it more than a chance coincidence of d-spacings and angles?

A phase with a dense reflection list (a large low-symmetry cell: Li2CO3, monoclinic) has a reflection within
2 % of almost any d-spacing and, for almost any pair of spots, two members at the measured angle. Counting
matched spots therefore says little; what counts is how unlikely the match would be for *random* spots. For a
crystal (a grain: one phase, one zone axis) indexed from a seed pair ``i, j`` plus ``k`` further spots among
the ``n`` other spots of the frame:

- ``p_d`` — the chance that a random spot (uniform over the analysed annulus of the spectrum) has a d within
  ``tolerance`` of some reflection of the phase: the area of the ``±tolerance`` rings over the annulus area;
- ``p_angle`` — the share of [0°, 180°] covered, within ``angle_tolerance``, by the inter-plane angles between
  the candidate reflections of the seed spots;
- ``p_zone`` — once the seed fixes the orientation, the chance that a random spot lands on one of the zone's
  reflections: the error boxes (``2·tolerance·|g|`` radially × ``2·angle_tolerance`` across) of every
  reflection of the zone over the annulus area.

The chance that *random spots* index as well is ``P_a = min(1, N_pairs · p_d² · p_angle) · B(k; n, p_zone) ·
N_scale`` (``N_pairs`` seed pairs tried — the look-elsewhere factor; ``B`` the binomial tail P(X ≥ k);
``N_scale`` independent scales tried by the ratio method, 1 at the nominal pixel size).

But the spots of a real crystal are integer combinations of two lattice vectors: once its seed pair fits,
the rest of its net fits too, whatever the phase, so ``P_a`` overstates the evidence (a dense low-symmetry
phase has a zone net of nearly any shape). What a crystal shows is its **2D net**: the reduced basis
``(|g1| ≤ |g2|, γ ∈ [60°, 90°])``. The chance that a *real crystal of another phase* fits is the chance
``P_net`` that a random net lies within the windows of one of the phase's zone nets (:func:`zone_nets`:
every zone with |u|, |v|, |w| ≤ 6 whose reduced basis lies in the analysed d-range, equal nets once). A random
net has ``ln|g1|, ln|g2|`` uniform over the range (log length ``L``) and γ uniform over [60°, 90°], so for
a window of ``±w`` per length and ``±a`` on γ

``P_net = Σ_zones (4 w² + 8 S w) · 2 a / (L² / 2 · 30°)``  (halved for ``|g1| ≈ |g2|``)

with ``S = ln(1 + scale_range)`` when the pixel-size scale is fitted (the window slides along the scale
diagonal; ``S = 0`` at the given pixel size). A cubic phase has ~10 distinct nets in 1–4 Å, monoclinic
Li2CO3 ~280: the same net is ~50× weaker evidence for Li2CO3. The windows are the crystal's *observed*
misfit — the stretch its zone net needs (:func:`net_misfit`; half its log-anisotropy when the scale is
fitted) and its rms angle error — floored at :data:`NET_PRECISION` of the tolerances, so a net matched
tightly by many spots is stronger evidence than one matched at the edge of the tolerances; further
combination spots add nothing else. Spots off the net's integer positions (1/3-order reflections of a <111>
cubic grain) are extra evidence: ``P_net`` is multiplied by their binomial tail. The chance probability is
``P = max(P_a, P_net)`` — both alternatives must be unlikely — and the evidence is ``−log10 P``. When the
net's shape is free (calibration: ``max_anisotropy`` ≥ :data:`SHAPE_FREE`, the phase given), any net maps
onto any other and only ``P_a`` applies.

The evidence is multiplied by the crystal's **share**: the intensity of its spots over that of its spots
plus every unexplained spot lying on a half- or third-order position of its lattice (a crystal that explains
the (200) and (220) spots of a cell twice its size, but not the stronger (100) and (110), is the wrong cell).
When the ratio method fits the pixel-size scale (one more free parameter), a crystal must also explain
:data:`MIN_SHARE` (75 %) of the intensity on its lattice, else it is a superlattice of the phase and is not
named (SrTiO3 [110], indexed as rock-salt LiF [110] at a scale of 1.03, leaves its strong (001) and (1-10)
spots on LiF's half-order positions); at the given pixel size the share only weighs the merit, because a
big cell's dense half- and third-order positions catch the spots of a neighbouring grain.
The product is the **figure of merit**; a phase is named only when one of its crystals reaches
:data:`MIN_MERIT` (2: about a 1 % chance that random spots, or a crystal of another phase, index as well).

The shape of the net is also a hard limit. The affine map from the phase's zone net to the measured spots
(:func:`fit_net`) is split into a rotation and a symmetric stretch; its **anisotropy** (largest over
smallest principal stretch, − 1) is what the scan would have to distort the frame by for the spots to be
that zone. A crystal needing more than :data:`MAX_ANISOTROPY` (3 %) is not named (its merit is 0): real
scans are distorted by 0.5–2.5 % (the SrTiO3 frames of the real-image tests), while SrTiO3 [110] nets
indexed as Li2CO3 [0 2 −1] at a fitted scale need 4.5–5.2 %. Measure a larger scan distortion with
``tem calibrate`` and pass the calibration.
"""

import functools
import itertools
import math

import numpy as np

__all__ = [
    "MAX_ANISOTROPY",
    "MIN_MERIT",
    "MIN_SHARE",
    "crystal_merit",
    "d_coverage",
    "fit_net",
    "net_anisotropy",
    "net_chance",
    "zone_coverage",
    "zone_nets",
]

#: a crystal is named only with a figure of merit at least this (−log10 of the chance probability × share)
MIN_MERIT = 2.0
#: a crystal's brightest spot should reach this share of the brightest spot not yet explained (else its
#: share is scaled down in proportion): weak coincidences beside unexplained strong spots name no phase
STRONG = 0.1
#: a crystal whose zone net must be stretched anisotropically by more than this to fit the spots is not named
MAX_ANISOTROPY = 0.03
#: at a fitted scale, a crystal explaining less than this share of its lattice's intensity is not named
MIN_SHARE = 0.75


def _annulus(d_lo, d_hi):
    return math.pi * (1.0 / d_lo**2 - 1.0 / d_hi**2)


def d_coverage(d_ref, tolerance, d_lo, d_hi):
    """Share (by area) of the annulus ``d_lo ≤ d ≤ d_hi`` within ``tolerance`` of some ``d_ref``."""
    g_lo, g_hi = 1.0 / d_hi, 1.0 / d_lo
    iv = sorted(
        (max(g_lo, 1 / (d * (1 + tolerance))), min(g_hi, 1 / (d * (1 - tolerance))))
        for d in np.asarray(d_ref, float)
    )
    area, cur = 0.0, None
    for a, b in iv + [(np.inf, np.inf)]:
        if cur is not None and a > cur[1]:
            area += math.pi * max(0.0, cur[1] ** 2 - cur[0] ** 2)
            cur = None
        if b <= a or not np.isfinite(a):
            continue
        cur = (a, b) if cur is None else (cur[0], max(cur[1], b))
    return min(1.0, area / _annulus(d_lo, d_hi))


def zone_coverage(phase, zone, tolerance, angle_tolerance, d_lo, d_hi):
    """Chance that a random spot lands within the position tolerance of one reflection of ``zone``."""
    _, d, _ = phase.zone_reflections(zone, d_min=d_lo, d_max=d_hi, min_intensity=0.0)
    if len(d) == 0:
        return 0.0
    g = 1.0 / d
    area = np.sum((2 * tolerance * g) * (2 * np.radians(angle_tolerance) * g))
    return float(min(1.0, area / _annulus(d_lo, d_hi)))


def angle_coverage(pc, i, j, angle_tolerance):
    """Share of [0°, 180°] within ``angle_tolerance`` of an angle between candidates of spots i and j."""
    gi = np.concatenate([pc.phase.g_vectors(pc.refl[f].members) for f in pc.fams[i]])
    gj = np.concatenate([pc.phase.g_vectors(pc.refl[f].members) for f in pc.fams[j]])
    c = (gi / np.linalg.norm(gi, axis=1)[:, None]) @ (gj / np.linalg.norm(gj, axis=1)[:, None]).T
    ang = np.degrees(np.arccos(np.clip(c.ravel(), -1, 1)))
    hit = np.zeros(1800, bool)  # 0.1° bins
    grid = np.arange(1800) * 0.1 + 0.05
    for a in np.unique(np.round(ang, 1)):
        hit |= np.abs(grid - a) <= angle_tolerance
    return float(hit.mean())


def binom_tail(k, n, p):
    """P(X ≥ k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    from scipy.stats import binom

    return float(binom.sf(k - 1, n, p))


def lattice_share(phase, pred, spot_ids, free, intensity, pos_tol):
    """Intensity share of the crystal's spots among them + the free spots on its 1/2- or 1/3-order lattice."""
    Rinv = np.linalg.inv(phase._recip.T)
    mag = np.linalg.norm(pred, axis=1)
    own = float(np.sum(intensity[list(spot_ids)]))
    other = 0.0
    for k in np.flatnonzero(free):
        h = pred[k] @ Rinv
        for den in (2, 3):
            r = np.round(h * den)
            if r.any() and np.linalg.norm(pred[k] - (r / den) @ phase._recip.T) / mag[k] <= pos_tol:
                other += float(intensity[k])
                break
    return own / (own + other) if own + other > 0 else 0.0


def fit_net(phase, hkl, g_measured):
    """Fit ``g_measured ≈ M r``: the 2D affine map from the zone net of reflections ``hkl`` to the spots.

    Parameters
    ----------
    phase : Phase
    hkl : (n, 3) ints, n ≥ 2 non-collinear, all of one zone
    g_measured : (n, 2) measured reciprocal vectors in 1/nm (either axis order)

    Returns
    -------
    M : (2, 2) the map from in-plane reference coordinates (1/nm) to the measured axes
    r : (n, 2) the reflections' in-plane reference coordinates (1/nm)
    residual : rms relative misfit
    Raises ValueError when the reflections are collinear.
    """
    G = phase.g_vectors(np.asarray(hkl, float)) * 10.0  # 1/nm
    m = np.asarray(g_measured, float)
    e1 = G[0] / np.linalg.norm(G[0])
    cr = np.cross(G[0], G)
    k = int(np.argmax(np.linalg.norm(cr, axis=1)))
    if np.linalg.norm(cr[k]) < 1e-9 * np.linalg.norm(G[0]) ** 2:
        raise ValueError("collinear reflections")
    n = cr[k] / np.linalg.norm(cr[k])
    e2 = np.cross(n, e1)
    r = np.column_stack([G @ e1, G @ e2])
    M = np.linalg.lstsq(r, m, rcond=None)[0].T
    if np.linalg.det(M) < 0:  # the other handedness of the in-plane basis
        r[:, 1] *= -1
        M = np.linalg.lstsq(r, m, rcond=None)[0].T
    res = np.linalg.norm(m - r @ M.T, axis=1) / np.linalg.norm(m, axis=1)
    return M, r, float(np.sqrt(np.mean(res**2)))


def net_anisotropy(phase, hkl, g_measured):
    """Largest over smallest principal stretch − 1 of :func:`fit_net`'s map; 0 for collinear spots."""
    try:
        M, _, _ = fit_net(phase, hkl, g_measured)
    except ValueError:
        return 0.0
    s = np.linalg.svd(M, compute_uv=False)
    return float(s[0] / s[1] - 1) if s[1] > 0 else float("inf")


#: a measured net is known no better than this share of the tolerances (peak-position precision), however
#: well its spots fit: the floor of the observed-misfit window of :func:`net_chance`
NET_PRECISION = 0.25
#: a caller allowing the zone net this much stretch (calibration: the phase is given, the stretch measured)
#: leaves its shape free, so the net tests nothing: only the chance of random spots applies
SHAPE_FREE = 0.1
#: zone axes [uvw] with |u|, |v|, |w| up to this are enumerated for a phase's nets
MAX_ZONE_INDEX = 6


def _reduced(g1, g2):
    """Gauss-reduce the 2D net spanned by g1, g2: (|g1|, |g2|, angle in [60°, 90°])."""
    for _ in range(64):
        if g2 @ g2 < g1 @ g1:
            g1, g2 = g2, g1
        m = round(float(g1 @ g2) / float(g1 @ g1))
        if m == 0:
            break
        g2 = g2 - m * g1
    a1, a2 = float(np.linalg.norm(g1)), float(np.linalg.norm(g2))
    return a1, a2, float(np.degrees(np.arccos(min(1.0, abs(float(g1 @ g2)) / (a1 * a2)))))


@functools.lru_cache(maxsize=256)
def zone_nets(phase, d_lo, d_hi, min_intensity=0.01):
    """The distinct 2D nets of ``phase``'s zones whose reduced basis lies in ``d_lo ≤ d ≤ d_hi`` Å.

    Returns an ``(n, 3)`` array of ``(ln |g1|, ln |g2|, angle°)``, ``|g1| ≤ |g2|``, angle in [60°, 90°];
    symmetry-equivalent zones (same net) are counted once.
    """
    refl = phase.reflections(d_lo, d_hi, min_intensity)
    if not refl:
        return np.zeros((0, 3))
    M = np.concatenate([r.members for r in refl])
    G = phase.g_vectors(M)
    order = np.argsort(np.linalg.norm(G, axis=1))
    M, G = M[order], G[order]
    r = range(-MAX_ZONE_INDEX, MAX_ZONE_INDEX + 1)
    U = np.array([u for u in itertools.product(r, r, r) if any(u) and math.gcd(*map(abs, u)) == 1])
    in_zone = (M @ U.T) == 0
    nets = set()
    for z in range(len(U)):
        idx = np.flatnonzero(in_zone[:, z])
        if len(idx) < 2:
            continue
        g1 = G[idx[0]]
        cross = np.linalg.norm(np.cross(g1, G[idx]), axis=1)
        nc = idx[cross > 1e-6 * float(g1 @ g1)]
        if len(nc) == 0:
            continue
        a1, a2, gam = _reduced(g1, G[nc[0]])
        if 1 / d_hi - 1e-9 <= a1 and a2 <= 1 / d_lo + 1e-9:
            nets.add((round(math.log(a1), 3), round(math.log(a2), 3), round(gam, 1)))
    return np.array(sorted(nets), float).reshape(-1, 3)


def net_chance(nets, d_lo, d_hi, width, angle, scale_range=0.0):
    """Chance that a random net matches one of ``nets`` (:func:`zone_nets`) within the given windows.

    A random net is ``(ln |g1|, ln |g2|, γ)`` uniform over ``ln |g1| ≤ ln |g2|`` in the analysed range and
    γ in [60°, 90°]. A zone's window: each length within ``±width`` (relative), γ within ``±angle`` degrees;
    with the pixel-size scale free within ``±scale_range`` the length window is swept along the scale
    diagonal (area ``4 w² + 8 S w`` instead of ``4 w²``). The windows are summed (an upper bound on their
    union).
    """
    if len(nets) == 0:
        return 0.0
    L = math.log(d_hi / d_lo)
    w, S = float(width), math.log1p(scale_range)
    area = 4 * w * w + 8 * S * w
    # the part of each window on the ordered side ln|g1| ≤ ln|g2| (half for a square-ish net)
    side = np.where(np.abs(nets[:, 1] - nets[:, 0]) < w, 0.5 + 0.5 * np.abs(nets[:, 1] - nets[:, 0]) / w, 1.0)
    span = np.clip(np.minimum(90.0, nets[:, 2] + angle) - np.maximum(60.0, nets[:, 2] - angle), 0, None)
    vol = np.sum(area * side * span)
    return float(min(1.0, vol / (0.5 * L * L * 30.0)))


def net_misfit(phase, hkl, g_measured, scale_free):
    """Relative misfit of the measured net to the zone net: the stretch :func:`fit_net` needs.

    ``max |ln s_i|`` of the map's principal stretches (half their log ratio when the scale is free), or the
    fit's rms residual if larger; 0 for collinear spots.
    """
    try:
        M, _, residual = fit_net(phase, hkl, g_measured)
    except ValueError:
        return 0.0
    s = np.log(np.linalg.svd(M, compute_uv=False))
    w = 0.5 * float(s[0] - s[1]) if scale_free else float(np.max(np.abs(s)))
    return max(w, residual)


def crystal_merit(pc, grain, ctx):
    """The figure of merit of crystal ``grain`` of candidate phase ``pc`` (see the module docstring).

    ``grain``: ``seed`` (i, j), ``spots``, ``extra`` (completion), ``zone``, ``pred``, ``angle_err``;
    ``ctx``: ``d_lo``, ``d_hi``, ``tolerance``, ``angle_tolerance``, ``n_free`` (unassigned spots before),
    ``n_pairs``, ``n_scale``, ``intensity``, ``free`` (bool mask of unassigned spots), ``pos_tol``, ``g``
    (the spots' 2D g, 1/nm), ``max_anisotropy`` (default :data:`MAX_ANISOTROPY`).
    Returns a dict: merit, evidence, chance, share, spots, p_d, p_zone, angle_rms_deg, anisotropy.
    """
    i, j = grain["seed"]
    tol, atol = ctx["tolerance"], ctx["angle_tolerance"]
    d_ref = [r.d for r in pc.refl]
    p_d = d_coverage(d_ref, tol, ctx["d_lo"], ctx["d_hi"])
    p_seed = min(1.0, ctx["n_pairs"] * p_d**2 * angle_coverage(pc, i, j, atol))
    p_zone = zone_coverage(pc.phase, grain["zone"], tol, atol, ctx["d_lo"], ctx["d_hi"])
    members = set(grain["spots"]) | set(grain["extra"])
    k_frac = sum(1 for _, den, _ in grain["extra"].values() if den != 1)
    k, n_other = len(members) - 2 - k_frac, max(ctx["n_free"] - 2, 0)
    # look-elsewhere: every orientation hypothesis tried could have indexed as many spots by chance; the
    # 1/3-order completion spots of a <111> cubic grain sit on a lattice with 8 more points per cell
    tail = binom_tail(k, n_other, p_zone) * binom_tail(k_frac, n_other, min(1.0, 8 * p_zone))
    tail = min(1.0, grain.get("n_hyp", 1) * tail)
    frac_tail = binom_tail(k_frac, n_other, min(1.0, 8 * p_zone))
    idx = sorted(grain["spots"])
    p_net, width = _net_term(pc, grain, ctx, idx)
    # random spots must index as well (p_seed · tail), or a real crystal of another phase have a net
    # this close to one of the phase's zone nets (p_net): the claim must beat both
    # (not when the net's shape is free, as in calibration: any net then maps onto any other)
    net_free = ctx.get("max_anisotropy", MAX_ANISOTROPY) >= SHAPE_FREE
    chance = max(min(1.0, p_seed * tail * ctx["n_scale"]), 0.0 if net_free else min(1.0, p_net * frac_tail))
    evidence = max(0.0, -math.log10(max(chance, 1e-30)))
    free = ctx["free"].copy()
    free[list(members)] = False
    share = lattice_share(pc.phase, grain["pred"], members, free, ctx["intensity"], ctx["pos_tol"])
    # the crystal must hold a strong spot: its brightest one within STRONG of the brightest free spot
    ref = float(np.max(ctx["intensity"][ctx["free"]]))
    strong = min(1.0, float(np.max(ctx["intensity"][list(members)])) / (STRONG * ref)) if ref > 0 else 1.0
    share *= strong
    ang = np.asarray(grain.get("angle_err", []), float)
    max_aniso = ctx.get("max_anisotropy", MAX_ANISOTROPY)
    # at the given pixel size a big cell's dense 1/2- and 1/3-order positions catch a neighbour grain's spots
    share_ok = share >= MIN_SHARE or ctx["n_scale"] <= 1
    aniso = net_anisotropy(pc.phase, [grain["spots"][k] for k in idx], ctx["g"][idx]) if "g" in ctx else 0.0
    return {
        "merit": round(evidence * share, 3) if aniso <= max_aniso and share_ok else 0.0,
        "evidence": round(evidence, 3),
        "chance": float(chance),
        "share": round(share, 3),
        "spots": len(members),
        "p_d": round(float(p_d), 4),
        "p_zone": round(p_zone, 4),
        "angle_rms_deg": round(float(np.sqrt(np.mean(ang**2))), 3) if ang.size else 0.0,
        "anisotropy": round(aniso, 4),
        "p_net": float(p_net),
        "net_misfit": round(width, 4),
    }


def _net_term(pc, grain, ctx, idx):
    """:func:`net_chance` of the crystal's phase with windows set by its observed misfit (floored)."""
    tol, atol = ctx["tolerance"], ctx["angle_tolerance"]
    scale_range = ctx.get("scale_range", 0.0) if ctx["n_scale"] > 1 else 0.0
    hkl = [grain["spots"][k] for k in idx]
    w = net_misfit(pc.phase, hkl, ctx["g"][idx], scale_range > 0) if "g" in ctx else tol
    width = max(w, NET_PRECISION * tol)
    ang = np.asarray(grain.get("angle_err", []), float)
    a = max(float(np.sqrt(np.mean(ang**2))) if ang.size else 0.0, NET_PRECISION * atol)
    # the range rounded outward to 5 % steps: frames and scale trials then share one enumeration
    step = math.log(1.05)
    lo = round(math.exp(math.floor(math.log(ctx["d_lo"]) / step) * step), 6)
    hi = round(math.exp(math.ceil(math.log(ctx["d_hi"]) / step) * step), 6)
    key = (lo, hi, ctx.get("min_intensity", 0.01))
    nets = zone_nets(pc.phase, *key)
    return net_chance(nets, key[0], key[1], width, a, scale_range), width

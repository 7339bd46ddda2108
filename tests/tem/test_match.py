import numpy as np
import pytest

from matsight.tem import crystals, fft
from matsight.tem.match import UNKNOWN, match_spots
from matsight.tem.spots import SpotTable


def _table(gy, gx, shape=(512, 512), ps=(0.02, 0.02)):
    gy, gx = np.asarray(gy, float), np.asarray(gx, float)
    r, c = fft.g_to_pixel(gy, gx, shape, ps)
    n = len(gy)
    return SpotTable(
        r,
        c,
        gy,
        gx,
        fft.d_spacing(gy, gx),
        np.arange(n, 0, -1.0),
        np.full(n, 10.0),
        np.full(n, 5.0),
        shape,
        ps,
    )


def _zone_spots(phase, zone, rot=0.3, d_min=1.2, strain=1.0):
    from matsight.tem.lattice import _plane_basis

    p = crystals.load_phase(phase)
    hkl, d, _ = p.zone_reflections(zone, d_min=d_min, min_intensity=0.02)
    e1, e2 = _plane_basis(p, zone)
    G = p.g_vectors(hkl) * 10 / strain
    x, y = G @ e1, G @ e2
    gx, gy = np.cos(rot) * x - np.sin(rot) * y, np.sin(rot) * x + np.cos(rot) * y
    keep = (gx > 1e-9) | ((np.abs(gx) <= 1e-9) & (gy > 0))
    return gy[keep], gx[keep], hkl[keep]


def test_zone_indexing_lif_011():
    gy, gx, hkl = _zone_spots("LiF", (0, 1, 1), d_min=1.4)
    res = match_spots(_table(gy, gx))
    assert res.phases_found == ["LiF"]
    assert len(res.grains) == 1 and res.grains[0]["phase"] == "LiF"
    z = np.array(res.grains[0]["zone"])
    assert sorted(np.abs(z)) == [0, 1, 1]
    for m in res.matches:
        assert m.phase == "LiF" and abs(m.d_error) < 1e-6 and m.grain == 0
        assert np.dot(m.hkl, m.zone) == 0


def test_close_d_disambiguated_by_angles():
    # Li (110) 2.482 Å and Li2CO3 (020) 2.486 Å differ by 0.15 %: d alone cannot tell them apart
    li, lc = crystals.load_phase("Li"), crystals.load_phase("Li2CO3")
    assert abs(li.d_spacing((1, 1, 0)) - lc.d_spacing((0, 2, 0))) / 2.482 < 0.002
    gy, gx, _ = _zone_spots("Li", (0, 0, 1))
    res = match_spots(_table(gy, gx), ["Li", "Li2CO3"])
    assert {m.phase for m in res.matches} == {"Li"}
    assert not any(m.ambiguous for m in res.matches)
    # ... and a Li2CO3 [001] pattern is not mistaken for Li
    gy, gx, _ = _zone_spots("Li2CO3", (0, 0, 1), d_min=1.8)
    res = match_spots(_table(gy, gx), ["Li", "Li2CO3"])
    assert {m.phase for m in res.matches} == {"Li2CO3"}


def test_single_spot_names_no_phase_but_lists_candidates():
    # issue #36: a lone d is no evidence of a phase (Li2CO3 has a reflection near almost any d)
    g = 10 / 2.484  # between Li (110) and Li2CO3 (020)
    res = match_spots(_table([0.0], [g]), ["Li", "Li2CO3"])
    m = res.matches[0]
    assert m.phase == UNKNOWN and m.grain == -1
    assert "Li (110)" in m.alternatives and "Li2CO3 (020)" in m.alternatives
    assert res.phases_found == [] and res.verdict().startswith("no phase of the database fits")


def test_unknown_not_forced():
    # 3.3 Å matches nothing within 2 % in Li / LiF / Li2O (nearest LiF(111) 2.325, Li2O(111) 2.662)
    res = match_spots(_table([0.0, 10 / 3.3], [10 / 3.3, 0.0]), ["Li", "LiF", "Li2O"])
    assert [m.phase for m in res.matches] == [UNKNOWN, UNKNOWN]
    assert res.phases_found == []
    # a lone spot within the tolerance of Li2O (111) lists it, but does not name it
    res = match_spots(_table([0.0], [10 / 2.70]), ["Li2O"], tolerance=0.02)
    assert res.matches[0].phase == UNKNOWN and res.matches[0].alternatives == ["Li2O (111)"]


def test_calibration_error_within_tolerance():
    gy, gx, _ = _zone_spots("LiF", (0, 0, 1), strain=1.035)  # d 3.5 % high, like a mis-calibrated scan
    assert match_spots(_table(gy, gx), ["LiF"], scale_range=0).phases_found == []
    # the ratio method finds it and fits the scale (issue #36)
    res = match_spots(_table(gy, gx), ["LiF"])
    assert res.phases_found == ["LiF"] and res.scale == pytest.approx(1 / 1.035, rel=0.002)
    assert "with a scale of 0.966" in res.verdict()
    res = match_spots(_table(gy, gx), ["LiF"], tolerance=0.05)
    assert res.phases_found == ["LiF"] and res.grains and res.grains[0]["zone"] == (0, 0, 1)


def test_bad_tolerance():
    from matsight import InputError

    with pytest.raises(InputError, match="tolerance"):
        match_spots(_table([1.0], [1.0]), ["LiF"], tolerance=2)


def test_lif_111_with_forbidden_third_422_is_not_li():
    # LiF [111] of a thickness that is not whole ABC periods shows 1/3{422} at 2.466 Å, 0.6 % from Li (110):
    # the pattern then mimics Li [111]; grain completion on LiF's 1/3 superlattice keeps it LiF
    from matsight.tem.lattice import _plane_basis

    lif = crystals.load_phase("LiF")
    zone = (1, 1, 1)
    hkl = np.array([(2, -2, 0), (0, 2, -2), (-2, 0, 2)] + [(4, -2, -2), (-2, 4, -2), (-2, -2, 4)], float)
    hkl[3:] /= 3
    e1, e2 = _plane_basis(lif, zone)
    G = lif.g_vectors(hkl) * 10
    gx, gy = G @ e1, G @ e2
    res = match_spots(_table(gy, gx), ["Li", "LiF"])
    assert res.phases_found == ["LiF"]
    assert sorted(m.fraction for m in res.matches) == [1, 1, 1, 3, 3, 3]
    assert all(abs(m.d_error) < 1e-6 for m in res.matches)
    assert any(m.label.startswith("LiF 1/3(") for m in res.matches)


def test_weak_reflection_completes_grain_instead_of_new_phase():
    # Li2O [001]: (200) is kinematically weak (left out by min_intensity) but real in dynamical images
    gy, gx, _ = _zone_spots("Li2O", (0, 0, 1), d_min=1.0)
    res = match_spots(_table(gy, gx), min_intensity=0.2)
    assert res.phases_found == ["Li2O"] and all(m.grain == 0 for m in res.matches)


def test_faint_lone_spot_is_unknown_with_candidates():
    t = _table([0.0], [10 / 2.325], ps=(0.02, 0.02))
    m = match_spots(t, ["LiF"]).matches[0]  # snr 10, but a lone spot names no phase (issue #36)
    assert m.phase == UNKNOWN and m.alternatives == ["LiF (111)"]
    t.snr[:] = 4.0
    m = match_spots(t, ["LiF"]).matches[0]
    assert m.phase == UNKNOWN and m.alternatives == ["LiF (111)"]


def test_lone_spot_not_ambiguous_by_the_winners_own_reflections():
    # a Li2CO3 grain plus a lone 2.45 Å spot off its zone: that d fits Li2CO3 (020) and (31-1) and Li (110);
    # Li is never identified, so the winner's second reflection must not make the spot ambiguous
    lc = crystals.load_phase("Li2CO3")
    d_lone = 2.45
    near = [r.label for r in lc.reflections(d_min=2.0, d_max=3.0) if abs(d_lone - r.d) / r.d <= 0.02]
    assert len(near) >= 2  # the premise: two reflections of the winner fit
    gy, gx, _ = _zone_spots("Li2CO3", (0, 0, 1), d_min=1.8)
    a = np.radians(40.0)
    res = match_spots(_table(np.r_[gy, np.sin(a) * 10 / d_lone], np.r_[gx, np.cos(a) * 10 / d_lone]))
    assert res.phases_found == ["Li2CO3"] and len(res.grains) == 1
    m = res.matches[-1]
    assert m.grain == -1 and m.phase == "Li2CO3"
    assert not m.ambiguous
    assert m.alternatives == ["Li (110)"]  # listed, but it does not make the match ambiguous

import numpy as np
import pytest

from matsight import InputError
from matsight.tem import crystals

EXPECTED = [
    ("Li", (1, 1, 0), 2.482),
    ("Li", (2, 0, 0), 1.755),
    ("LiF", (2, 0, 0), 2.014),
    ("LiF", (1, 1, 1), 2.325),
    ("LiF", (2, 2, 0), 1.424),
    ("Li2O", (1, 1, 1), 2.662),
    ("Li2O", (2, 2, 0), 1.630),
    ("Li2CO3", (0, 0, 2), 2.812),
    ("Li2CO3", (1, 1, 0), 4.159),
    ("Li2CO3", (2, 0, -2), 2.921),
]


@pytest.mark.parametrize(("name", "hkl", "d"), EXPECTED)
def test_d_spacings(name, hkl, d):
    p = crystals.load_phase(name)
    assert p.d_spacing(hkl) == pytest.approx(d, rel=0.002)
    refl = {r.hkl: r for r in p.reflections()}
    fam = [r for r in refl.values() if any((m == hkl).all() for m in r.members)]
    assert len(fam) == 1 and fam[0].d == pytest.approx(d, rel=0.002)


def test_shipped_names():
    assert crystals.builtin_phase_names() == ["Li", "Li2CO3", "Li2O", "LiF"]


def test_forbidden_reflections_absent():
    lif = crystals.load_phase("LiF")
    assert lif.is_absent((1, 0, 0)) and lif.is_absent((1, 1, 0))
    labels = {r.label for r in lif.reflections()}
    assert "(100)" not in labels and "(110)" not in labels and {"(111)", "(200)", "(220)"} <= labels
    li = crystals.load_phase("Li")  # bcc: h+k+l odd absent
    assert "(100)" not in {r.label for r in li.reflections()}
    # C2/c: (h0l) needs l even, (hkl) needs h+k even
    lc = crystals.load_phase("Li2CO3")
    assert lc.is_absent((0, 0, 1)) and lc.is_absent((1, 0, 0)) and not lc.is_absent((0, 0, 2))


def test_extinction_by_atom_positions():
    # diamond Si (222): allowed by the space group, zero structure factor from the 8a positions
    si = crystals.phase_from_dict(
        {
            "name": "Si",
            "space_group": "F d -3 m",
            "cell": {"a": 5.431},
            "atoms": [{"element": "Si", "xyz": [0, 0, 0]}],
        }
    )
    assert not si.is_absent((2, 2, 2))
    assert abs(si.structure_factor([[2, 2, 2]])[0]) < 1e-6
    labels = {r.label for r in si.reflections(min_intensity=1e-8)}
    assert "(222)" not in labels and "(111)" in labels and "(220)" in labels


def test_structure_factor_rocksalt_closed_form():
    import gemmi

    lif = crystals.load_phase("LiF")
    F = lif.structure_factor([[2, 0, 0], [1, 1, 1]])
    s2 = [1 / (4 * lif.d_spacing(h) ** 2) for h in [(2, 0, 0), (1, 1, 1)]]
    fli = [gemmi.Element("Li").c4322.calculate_sf(s) for s in s2]
    ff = [gemmi.Element("F").c4322.calculate_sf(s) for s in s2]
    assert F[0].real == pytest.approx(4 * (fli[0] + ff[0]), rel=1e-6)  # even: 4(f_Li + f_F)
    assert F[1].real == pytest.approx(4 * (fli[1] - ff[1]), rel=1e-6)  # odd: 4(f_Li - f_F)


def test_angles_and_multiplicity():
    lif = crystals.load_phase("LiF")
    assert lif.angle((1, 1, 1), (2, 0, 0)) == pytest.approx(54.7356, abs=1e-3)
    assert lif.angle((1, 1, 1), (1, -1, 1)) == pytest.approx(70.5288, abs=1e-3)
    fams = {r.label: len(r.members) for r in lif.reflections()}
    assert fams["(111)"] == 8 and fams["(200)"] == 6 and fams["(220)"] == 12
    lc = crystals.load_phase("Li2CO3")
    g = lc.g_vectors([(0, 0, 2)])[0]
    assert 1 / np.linalg.norm(g) == pytest.approx(lc.d_spacing((0, 0, 2)))


def test_zone_reflections_lif():
    lif = crystals.load_phase("LiF")
    hkl, d, _ = lif.zone_reflections((0, 0, 1), d_min=1.3)
    assert {tuple(abs(h)) for h in hkl} == {(2, 0, 0), (0, 2, 0), (2, 2, 0)}
    hkl, _, _ = lif.zone_reflections((0, 1, 1), d_min=2.0)  # (111) shows in [011], not in [001]
    assert any(tuple(np.abs(h)) == (1, 1, 1) for h in hkl)


SRTIO3_YAML = """\
name: SrTiO3
space_group: P m -3 m
cell: {a: 3.905}
atoms:
  - {element: Sr, xyz: [0, 0, 0]}
  - {element: Ti, xyz: [0.5, 0.5, 0.5]}
  - {element: O, xyz: [0.5, 0.5, 0]}
"""

LIF_CIF = """\
data_LiF
_cell_length_a 4.027
_cell_length_b 4.027
_cell_length_c 4.027
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'F m -3 m'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
Li1 Li 0 0 0
F1 F 0.5 0.5 0.5
"""


def test_user_yaml_and_cif(tmp_path):
    y = tmp_path / "sto.yaml"
    y.write_text(SRTIO3_YAML)
    sto = crystals.load_phase(y)
    assert sto.name == "SrTiO3"
    assert sto.d_spacing((1, 1, 0)) == pytest.approx(2.761, rel=1e-3)
    c = tmp_path / "lif.cif"
    c.write_text(LIF_CIF)
    lif = crystals.load_phase(c)
    ref = crystals.load_phase("LiF")
    assert [(r.label, round(r.d, 4)) for r in lif.reflections()] == [
        (r.label, round(r.d, 4)) for r in ref.reflections()
    ]
    assert [p.name for p in crystals.load_phases(f"LiF,{y}")] == ["LiF", "SrTiO3"]


@pytest.mark.parametrize(
    ("spec", "msg"),
    [
        (
            {
                "name": "x",
                "space_group": "Q 9",
                "cell": {"a": 3},
                "atoms": [{"element": "Li", "xyz": [0, 0, 0]}],
            },
            "space group",
        ),
        (
            {
                "name": "x",
                "space_group": "P 1",
                "cell": {"a": -3},
                "atoms": [{"element": "Li", "xyz": [0, 0, 0]}],
            },
            "invalid cell",
        ),
        ({"name": "x", "space_group": "P 1", "cell": {"a": 3}}, "lacks atoms"),
        (
            {
                "name": "x",
                "space_group": "P 1",
                "cell": {"a": 3},
                "atoms": [{"element": "Xx", "xyz": [0, 0, 0]}],
            },
            "element",
        ),
    ],
)
def test_bad_phase_entries(spec, msg):
    with pytest.raises(InputError, match=msg):
        crystals.phase_from_dict(spec)


def test_unknown_phase_name():
    with pytest.raises(InputError, match="shipped phases are"):
        crystals.load_phase("Unobtainium")


def test_phase_pickles_for_process_workers():
    import pickle

    p = crystals.load_phase("Li2CO3")
    p.reflections()  # fills gemmi caches, which do not pickle themselves
    q = pickle.loads(pickle.dumps(p))
    assert q == p and [r.label for r in q.reflections()] == [r.label for r in p.reflections()]

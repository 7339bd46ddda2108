"""Phase database built from crystal structures: allowed reflections with d, (hkl) and relative intensity.

A :class:`Phase` is a unit cell + space group + atoms (a small YAML file, or any CIF gemmi reads). Its
reflections come from the structure, not from a hand-typed list:

- d-spacings from the cell metric (``gemmi.UnitCell.calculate_d``);
- reflections forbidden by the space group (centring, glides, screws) removed with
  ``GroupOps.is_systematically_absent``;
- kinematic electron structure factors ``F(hkl) = Σ f_e(s) occ exp(2πi h·r)`` over every atom of the unit
  cell (gemmi's International Tables C 4.3.2.2 electron form factors), which gives relative intensities and
  removes reflections that vanish because of where the atoms sit (e.g. diamond (222)), not only by symmetry.

Shipped entries (``phases/*.yaml``): Li (bcc), LiF (rock salt), Li2O (antifluorite), Li2CO3 (C2/c). Users add
their own with :func:`load_phase` on a YAML or CIF path, or :func:`phase_from_dict`.

Intensities are kinematic (single scattering, no thickness, no CTF): a guide to which spots can appear, not
a prediction of HRTEM contrast.
"""

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._errors import InputError

log = logging.getLogger(__name__)

__all__ = [
    "Phase",
    "Reflection",
    "builtin_phase_names",
    "load_phase",
    "load_phase_file",
    "load_phases",
    "phase_from_dict",
    "select_phases",
]

_PHASE_DIR = Path(__file__).with_name("phases")


@dataclass(frozen=True)
class Reflection:
    """One family of symmetry-equivalent reflections ``{hkl}``.

    Attributes
    ----------
    hkl : tuple of int
        Representative indices (the largest member in lexicographic order, e.g. (1, 1, 0), (2, 0, -2)).
    d : float
        Spacing in Å.
    intensity : float
        Kinematic |F|² relative to the strongest reflection of the phase (0..1).
    members : ndarray of int, shape (m, 3)
        Every member of the family, including Friedel mates (-h -k -l).
    """

    hkl: tuple
    d: float
    intensity: float
    members: np.ndarray = field(repr=False, compare=False)

    @property
    def label(self):
        """``(hkl)`` written the crystallographers' way, minus signs before the digit, e.g. ``(20-2)``."""
        if max(abs(i) for i in self.hkl) > 9:
            return "(" + " ".join(str(i) for i in self.hkl) + ")"
        return "(" + "".join(str(i) for i in self.hkl) + ")"


@dataclass
class Phase:
    """A crystal structure: cell (Å, degrees), space group (Hermann–Mauguin), atoms (fractional coordinates).

    Parameters
    ----------
    name : str
    cell : tuple of 6 float
        ``(a, b, c, alpha, beta, gamma)``.
    space_group : str
        Hermann–Mauguin symbol or number understood by gemmi, e.g. ``"F m -3 m"``, ``"C 1 2/c 1"``, ``"225"``.
    atoms : list of dict
        ``{"element": "Li", "xyz": [x, y, z], "occupancy": 1.0}`` per asymmetric-unit site.
    source : str
        Where the structure comes from (shown in reports).
    """

    name: str
    cell: tuple
    space_group: str
    atoms: list
    source: str = ""
    formula: str = ""

    def __post_init__(self):
        import gemmi

        if len(self.cell) != 6:
            raise InputError(f"phase {self.name}: cell needs a, b, c, alpha, beta, gamma; got {self.cell}")
        a, b, c, al, be, ga = (float(v) for v in self.cell)
        if min(a, b, c) <= 0 or not all(0 < ang < 180 for ang in (al, be, ga)):
            raise InputError(
                f"phase {self.name}: invalid cell {self.cell}; lengths in Å > 0, angles in (0, 180)°"
            )
        self.cell = (a, b, c, al, be, ga)
        try:
            sg = gemmi.SpaceGroup(str(self.space_group))
        except (ValueError, RuntimeError) as exc:
            raise InputError(
                f"phase {self.name}: unknown space group {self.space_group!r}; use a Hermann–Mauguin symbol "
                "like 'F m -3 m' or the space-group number"
            ) from exc
        self._sg = sg
        self.space_group = sg.hm
        self._cell = gemmi.UnitCell(a, b, c, al, be, ga)
        if not self.atoms:
            raise InputError(f"phase {self.name}: no atoms; list the asymmetric-unit sites (element + xyz)")
        for at in self.atoms:
            try:
                z = gemmi.Element(str(at["element"])).atomic_number
            except Exception:  # noqa: BLE001 - gemmi raises various types for junk
                z = 0
            if z == 0:
                raise InputError(
                    f"phase {self.name}: unknown element {at.get('element')!r}; use a symbol like 'Li'"
                )
            if len(at.get("xyz", ())) != 3:
                raise InputError(f"phase {self.name}: atom {at} needs xyz = [x, y, z] fractional coordinates")

    # ------------------------------------------------------------------ geometry
    def d_spacing(self, hkl):
        """Spacing of ``(hkl)`` in Å (gemmi's cell metric)."""
        return float(self._cell.calculate_d(list(map(int, hkl))))

    @functools.cached_property
    def _recip(self):
        # rows of frac.mat are the reciprocal basis vectors a*, b*, c* (Cartesian, 1/Å): g = frac.mat^T · hkl
        return np.array(self._cell.frac.mat.tolist()).T

    @property
    def _is_cubic(self):
        a, b, c, al, be, ga = self.cell
        return np.allclose([a, a], [b, c]) and np.allclose([al, be, ga], 90.0)

    def g_vectors(self, hkl):
        """Cartesian reciprocal vectors (1/Å) of an ``(n, 3)`` array of Miller indices; ``|g| = 1/d``."""
        return np.asarray(hkl, float) @ self._recip.T

    def angle(self, hkl1, hkl2):
        """Angle in degrees between the normals of planes ``(hkl1)`` and ``(hkl2)`` in this cell's metric."""
        g1, g2 = self.g_vectors([hkl1, hkl2])
        c = np.dot(g1, g2) / (np.linalg.norm(g1) * np.linalg.norm(g2))
        return float(np.degrees(np.arccos(np.clip(c, -1.0, 1.0))))

    # ------------------------------------------------------------------ symmetry
    @functools.cached_property
    def _ops(self):
        return self._sg.operations()

    @functools.cached_property
    def _rotations(self):
        # point-group rotations acting on hkl (row vector h·R), plus inversion (Friedel's law)
        rots = {tuple(np.array(op.rot).ravel() // op.DEN) for op in self._ops.sym_ops}
        mats = [np.array(r).reshape(3, 3) for r in sorted(rots)]
        mats += [-m for m in mats]
        return np.unique(np.array(mats), axis=0)

    def is_absent(self, hkl):
        """True if the space group forbids ``(hkl)`` (centring, glide planes, screw axes)."""
        return bool(self._ops.is_systematically_absent(list(map(int, hkl))))

    def equivalents(self, hkl):
        """All members of the family of ``(hkl)``, Friedel mates included, as an ``(m, 3)`` int array."""
        h = np.asarray(hkl, int)
        return np.unique(np.einsum("i,nij->nj", h, self._rotations), axis=0)

    @functools.cached_property
    def _unit_cell_sites(self):
        """All atoms in the unit cell: (fractional xyz (n, 3), element symbols, occupancies)."""
        xyz, els, occ = [], [], []
        for at in self.atoms:
            pos = np.array(at["xyz"], float)
            images = []
            for op in self._ops:  # includes centring translations
                p = np.array(op.apply_to_xyz(pos.tolist())) % 1.0
                if not any(np.allclose(_wrap(p - q), 0, atol=1e-4) for q in images):
                    images.append(p)
            xyz += images
            els += [at["element"]] * len(images)
            occ += [float(at.get("occupancy", 1.0))] * len(images)
        return np.array(xyz), els, np.array(occ)

    def structure_factor(self, hkl):
        """Kinematic electron structure factors ``F(hkl)`` (complex, Å) for an ``(n, 3)`` array of indices."""
        import gemmi

        hkl = np.atleast_2d(np.asarray(hkl, float))
        xyz, els, occ = self._unit_cell_sites
        d = np.array([self._cell.calculate_d(list(map(int, h))) for h in hkl])
        stol2 = 1.0 / (4.0 * d**2)
        F = np.zeros(len(hkl), complex)
        for el in sorted(set(els)):
            idx = [i for i, e in enumerate(els) if e == el]
            coefs = gemmi.Element(el).c4322
            f = np.array([coefs.calculate_sf(float(s)) for s in stol2])
            phase = np.exp(2j * np.pi * hkl @ xyz[idx].T)  # (n, atoms)
            F += f * (phase * occ[idx]).sum(axis=1)
        return F

    # ------------------------------------------------------------------ the table
    @functools.lru_cache(maxsize=16)  # noqa: B019 - phases are few and long-lived
    def reflections(self, d_min=1.0, d_max=20.0, min_intensity=0.005):
        """Allowed reflection families with ``d_min ≤ d ≤ d_max`` Å and relative |F|² ≥ ``min_intensity``.

        Returns
        -------
        list of Reflection
            Sorted by decreasing d.
        """
        a_star = np.linalg.norm(self._recip, axis=1)  # |a*|, |b*|, |c*|
        hmax = np.ceil(1.0 / (d_min * a_star * np.sqrt(1 - 1e-9))).astype(int) + 1
        grids = np.meshgrid(*(np.arange(-m, m + 1) for m in hmax), indexing="ij")
        hkl = np.stack([g.ravel() for g in grids], axis=1)
        hkl = hkl[np.any(hkl != 0, axis=1)]
        glen = np.linalg.norm(self.g_vectors(hkl), axis=1)
        keep = (glen <= 1.0 / d_min + 1e-9) & (glen >= 1.0 / d_max - 1e-9)
        hkl = hkl[keep]
        hkl = np.array([h for h in hkl if not self._ops.is_systematically_absent(h.tolist())], int)
        if hkl.size == 0:
            return []
        # one representative per family
        seen, fams = set(), []
        for h in hkl:
            if tuple(h) in seen:
                continue
            members = self.equivalents(h)
            seen.update(map(tuple, members))
            rep = max(map(tuple, members))
            fams.append((rep, members))
        reps = np.array([f[0] for f in fams])
        F = self.structure_factor(reps)
        inten = np.abs(F) ** 2
        inten = inten / inten.max() if inten.max() > 0 else inten
        out = [
            Reflection(tuple(int(i) for i in rep), self.d_spacing(rep), float(inten_k), members)
            for (rep, members), inten_k in zip(fams, inten, strict=True)
            if inten_k >= min_intensity
        ]
        return sorted(out, key=lambda r: (-r.d, -r.intensity))

    def zone_reflections(self, zone, *, d_min=1.0, d_max=20.0, min_intensity=0.005):
        """Single reflections ``h`` with ``h · [uvw] = 0``: the spots of a zone-axis pattern.

        Returns
        -------
        hkl : ndarray of int, shape (n, 3)
        d : ndarray of float (Å)
        intensity : ndarray of float (relative |F|²)
        """
        u = np.asarray(zone, int)
        rows = []
        for ref in self.reflections(d_min, d_max, min_intensity):
            for m in ref.members:
                if int(np.dot(m, u)) == 0:
                    rows.append((m, ref.d, ref.intensity))
        if not rows:
            return np.zeros((0, 3), int), np.zeros(0), np.zeros(0)
        return (
            np.array([r[0] for r in rows]),
            np.array([r[1] for r in rows]),
            np.array([r[2] for r in rows]),
        )

    def to_dict(self):
        """The YAML/JSON form (what :func:`phase_from_dict` reads)."""
        a, b, c, al, be, ga = self.cell
        return {
            "name": self.name,
            "formula": self.formula,
            "space_group": self.space_group,
            "cell": {"a": a, "b": b, "c": c, "alpha": al, "beta": be, "gamma": ga},
            "atoms": [dict(at) for at in self.atoms],
            "source": self.source,
        }

    def __hash__(self):
        return hash((self.name, self.cell, self.space_group))

    def __reduce__(self):
        # gemmi objects (space group, cached operations) do not pickle: rebuild from the plain fields,
        # so phases travel to dask process / distributed workers
        return (
            _phase_from_fields,
            (self.name, self.cell, self.space_group, self.atoms, self.source, self.formula),
        )

    def __eq__(self, other):
        return isinstance(other, Phase) and self.to_dict() == other.to_dict()


def _phase_from_fields(name, cell, space_group, atoms, source, formula):
    return Phase(name, cell, space_group, atoms, source, formula)


def _wrap(v):
    return v - np.round(v)


def _number(value, where, what):
    """``value`` as a finite float, or an :class:`InputError` naming ``where`` and the field ``what``."""
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise InputError(f"{where}: {what} must be a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{where}: {what} must be a number, got {value!r}") from None
    if not np.isfinite(out):
        raise InputError(f"{where}: {what} must be a finite number, got {value!r}")
    return out


def _text(value, where, what):
    """A non-empty scalar field (YAML may read ``name: 123`` as a number) as a string."""
    if isinstance(value, bool) or not isinstance(value, str | int | float) or not str(value).strip():
        raise InputError(f"{where}: {what} must be a non-empty text, got {value!r}")
    return str(value).strip()


_CELL_KEYS = ("a", "b", "c", "alpha", "beta", "gamma")


def _cell_from_spec(cell, where):
    if isinstance(cell, dict):
        unknown = [str(k) for k in cell if k not in _CELL_KEYS]
        if unknown:
            raise InputError(f"{where}: cell has unknown key {unknown[0]!r}; use {', '.join(_CELL_KEYS)}")
        if "a" not in cell:
            raise InputError(f"{where}: cell needs at least a (Å), e.g. cell: {{a: 3.905}}")
        vals = {k: _number(v, where, f"cell.{k}") for k, v in cell.items()}
        a = vals["a"]
        # b and c default to a, the angles to 90°: a cubic cell needs only a
        return tuple(vals.get(k, a if k in "bc" else 90.0) for k in _CELL_KEYS)
    if isinstance(cell, list | tuple) and len(cell) == 6:
        return tuple(_number(v, where, f"cell[{i}]") for i, v in enumerate(cell))
    raise InputError(
        f"{where}: cell must be a mapping like {{a: 3.905, b: 3.905, c: 3.905, alpha: 90, beta: 90, "
        f"gamma: 90}} (b, c, angles optional) or a list of 6 numbers, got {cell!r}"
    )


def _atom_from_spec(at, k, where):
    if not isinstance(at, dict) or "element" not in at:
        raise InputError(
            f"{where}: atom {k} must be a mapping with element and xyz, "
            f"e.g. {{element: Li, xyz: [0, 0, 0]}}; got {at!r}"
        )
    el = _text(at["element"], where, f"atom {k} element")
    what = f"atom {k} ({el})"
    xyz = at.get("xyz")
    if not isinstance(xyz, list | tuple) or len(xyz) != 3:
        raise InputError(f"{where}: {what} xyz must be 3 fractional coordinates [x, y, z], got {xyz!r}")
    out = {"element": el, "xyz": [_number(v, where, f"{what} xyz[{i}]") for i, v in enumerate(xyz)]}
    if "occupancy" in at:
        occ = _number(at["occupancy"], where, f"{what} occupancy")
        if not 0 < occ <= 1:
            raise InputError(f"{where}: {what} occupancy must be in (0, 1], got {at['occupancy']!r}")
        out["occupancy"] = occ
    if "label" in at:
        out["label"] = _text(at["label"], where, f"{what} label")
    return out


def phase_from_dict(spec, *, source=""):
    """Build a :class:`Phase` from the YAML form.

    Every field is checked: a problem raises one :class:`InputError` naming ``source`` (the file) and the
    field.

    Examples
    --------
    >>> sto = phase_from_dict({"name": "SrTiO3", "space_group": "P m -3 m",
    ...     "cell": {"a": 3.905}, "atoms": [{"element": "Sr", "xyz": [0, 0, 0]},
    ...     {"element": "Ti", "xyz": [0.5, 0.5, 0.5]}, {"element": "O", "xyz": [0.5, 0.5, 0]}]})
    >>> round(sto.d_spacing((1, 1, 0)), 3)
    2.761
    """
    where = str(source) if source else "phase entry"
    if not isinstance(spec, dict):
        got = "nothing" if spec is None else type(spec).__name__
        raise InputError(
            f"{where}: a phase must be a mapping with name, space_group, cell, atoms (see phases/LiF.yaml); "
            f"got {got}"
        )
    missing = [k for k in ("name", "space_group", "cell", "atoms") if k not in spec]
    if missing:
        raise InputError(
            f"{where}: phase entry {spec.get('name', '?')} lacks {', '.join(missing)}; see phases/LiF.yaml"
        )
    name = _text(spec["name"], where, "name")
    if not source:
        where = f"phase {name}"
    space_group = _text(spec["space_group"], where, "space_group")
    cell = _cell_from_spec(spec["cell"], where)
    atoms = spec["atoms"]
    if not isinstance(atoms, list) or not atoms:
        raise InputError(
            f"{where}: atoms must be a non-empty list of sites, e.g. [{{element: Li, xyz: [0, 0, 0]}}]; "
            f"got {atoms!r}"
        )
    atoms = [_atom_from_spec(at, k, where) for k, at in enumerate(atoms, 1)]
    formula = _text(spec["formula"], where, "formula") if spec.get("formula") is not None else name
    try:
        return Phase(
            name=name,
            cell=cell,
            space_group=space_group,
            atoms=atoms,
            source=str(spec["source"]) if spec.get("source") is not None else str(source),
            formula=formula,
        )
    except InputError as exc:
        if not source:
            raise
        raise InputError(f"{source}: {exc}") from None


def _phase_from_cif(path):
    import gemmi

    try:
        ss = gemmi.read_small_structure(str(path))
    except Exception as exc:
        raise InputError(
            f"cannot read CIF {path}: {exc}; check the file is a small-molecule/crystal CIF"
        ) from exc
    c = ss.cell
    sg = ss.spacegroup_hm or (ss.find_spacegroup().hm if hasattr(ss, "find_spacegroup") else "")
    if not sg:
        raise InputError(f"CIF {path} has no space group (_symmetry_space_group_name_H-M); add it")
    atoms = [
        {
            "element": s.element.name,
            "xyz": [s.fract.x, s.fract.y, s.fract.z],
            "occupancy": s.occ,
            "label": s.label,
        }
        for s in ss.sites
    ]
    name = ss.name or Path(path).stem
    return Phase(
        name=Path(path).stem if name.isdigit() else name,
        cell=(c.a, c.b, c.c, c.alpha, c.beta, c.gamma),
        space_group=sg,
        atoms=atoms,
        source=str(path),
    )


def builtin_phase_names():
    """Names of the shipped phase entries."""
    return sorted(p.stem for p in _PHASE_DIR.glob("*.yaml"))


@functools.lru_cache(maxsize=64)
def _load_cached(key):
    path = Path(key)
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at position {exc.start}); "
                "save it as UTF-8"
            ) from None
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())  # PyYAML's message spans several lines
            raise InputError(f"cannot parse {path}: {detail}") from None
        return phase_from_dict(spec, source=str(path))
    if path.suffix.lower() == ".cif":
        return _phase_from_cif(path)
    raise InputError(f"phase file {path} must be .yaml, .yml, .json or .cif")


_PHASE_FILE_SUFFIXES = (".yaml", ".yml", ".json", ".cif")


def load_phase_file(path):
    """A :class:`Phase` from a YAML/JSON/CIF file; a missing file or a folder raises :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"phase file {path} not found; check the path (--phase-file)")
    if not path.is_file():
        raise InputError(f"phase file {path} is a folder; give a .yaml or .cif file (--phase-file)")
    return _load_cached(str(path.resolve()))


def load_phase(name_or_path):
    """A shipped phase by name (``"LiF"``), a YAML/CIF path, a dict, or a :class:`Phase` (returned as is)."""
    if isinstance(name_or_path, Phase):
        return name_or_path
    if isinstance(name_or_path, dict):
        return phase_from_dict(name_or_path)
    key = str(name_or_path)
    builtin = {n.lower(): n for n in builtin_phase_names()}
    if key.lower() in builtin:
        return _load_cached(str(_PHASE_DIR / f"{builtin[key.lower()]}.yaml"))
    path = Path(key)
    if path.is_file() or isinstance(name_or_path, Path) or path.suffix.lower() in _PHASE_FILE_SUFFIXES:
        return load_phase_file(path)
    raise InputError(
        f"unknown phase {key!r}; shipped phases are {', '.join(builtin_phase_names())}, "
        "or give a YAML/CIF file (--phase-file)"
    )


def load_phases(phases=None):
    """A list of :class:`Phase` from names/paths/dicts (or a comma-separated string); default: all shipped."""
    if phases is None:
        phases = builtin_phase_names()
    if isinstance(phases, str | Path | Phase | dict):
        phases = [p.strip() for p in phases.split(",")] if isinstance(phases, str) else [phases]
    out = [load_phase(p) for p in phases if not (isinstance(p, str) and not p.strip())]
    names = [p.name for p in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(
            f"phase names must be unique, got {', '.join(sorted(dup))} twice; list each phase once "
            "(or change the name: in your phase file)"
        )
    if not out:
        raise InputError("no phases given; name at least one (e.g. --phases LiF,Li)")
    return out


def select_phases(names=None, files=()):
    """The phases to search, from ``--phases`` names and ``--phase-file`` files.

    Parameters
    ----------
    names : str or list of str, optional
        Comma-separated names (or a list): shipped phases, names of phases in ``files``, or file paths.
        Default: every shipped phase.
    files : sequence of path
        YAML/CIF phase files. Each one is searched (whether or not ``names`` lists it) and can be selected by
        its name in ``names``; a file whose phase has a shipped name (e.g. ``LiF``) replaces the shipped one.

    Returns
    -------
    list of Phase
    """
    by_name, file_of = {}, {}
    for f in files or ():
        p = load_phase_file(f)
        key = p.name.lower()
        if key in by_name:
            raise InputError(
                f"--phase-file {f} defines {p.name}, as does {file_of[key]}; "
                "give each phase once (or change the name: in one file)"
            )
        by_name[key], file_of[key] = p, f
    if names is None:
        wanted = builtin_phase_names()
    elif isinstance(names, str):
        wanted = [n.strip() for n in names.split(",") if n.strip()]
    else:
        wanted = [str(n).strip() for n in names if str(n).strip()]
    out, used = [], set()
    for n in wanted:
        p = by_name.get(n.lower())
        if p is not None:
            used.add(p.name.lower())
            out.append(p)
        else:
            out.append(n)
    out += [p for k, p in by_name.items() if k not in used]
    shipped = {n.lower() for n in builtin_phase_names()}
    for key, p in by_name.items():
        if key in shipped:
            log.info("phase %s from %s replaces the shipped one", p.name, file_of[key])
    return load_phases(out)

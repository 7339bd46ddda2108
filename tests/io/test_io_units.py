import numpy as np
import pytest

from matsight._errors import InputError
from matsight.io import is_reciprocal, parse_length_unit, to_inv_nm, to_nm


@pytest.mark.parametrize(
    ("value", "unit", "nm"),
    [
        (250.0, "pm", 0.25),
        (2.0, "Å", 0.2),
        (2.0, "\u212b", 0.2),  # ANGSTROM SIGN, not the letter
        (2.0, "A", 0.2),  # DigitalMicrograph's spelling
        (2.0, "angstrom", 0.2),
        (3.0, "nm", 3.0),
        (0.5, "µm", 500.0),  # micro sign
        (0.5, "μm", 500.0),  # Greek mu
        (0.5, "um", 500.0),
        (0.5, "micron", 500.0),
        (0.5, "\\u00B5m", 500.0),  # ImageJ's escaped description
        (1.5, "mm", 1.5e6),
        (2e-9, "m", 2.0),
    ],
)
def test_to_nm(value, unit, nm):
    assert to_nm(value, unit) == pytest.approx(nm, rel=1e-12)


def test_to_nm_array():
    np.testing.assert_allclose(to_nm([1, 2], "um"), [1000.0, 2000.0])


@pytest.mark.parametrize("unit", ["1/nm", "1/Å", "1/A", "nm^-1", "nm-1", "nm⁻¹", "1 / nm"])
def test_reciprocal_units_detected(unit):
    assert is_reciprocal(unit)
    with pytest.raises(InputError, match="reciprocal"):
        to_nm(1.0, unit)


def test_to_inv_nm():
    assert to_inv_nm(1.0, "1/Å") == pytest.approx(10.0)
    assert to_inv_nm(2.0, "1/nm") == pytest.approx(2.0)
    with pytest.raises(InputError):
        to_inv_nm(1.0, "nm")


@pytest.mark.parametrize("unit", [None, "", "<undefined>", "px", "furlong"])
def test_not_a_length(unit):
    assert parse_length_unit(unit) is None
    assert not is_reciprocal(unit)
    with pytest.raises(InputError, match="unknown length unit"):
        to_nm(1.0, unit)


# ----------------------------------------------------------------------------------------- #36: one table
@pytest.mark.parametrize(
    ("unit", "canonical", "nm_per_unit", "reciprocal"),
    [
        ("n_m", "nm", 1.0, False),  # ncempy / Velox .emd
        ("nm", "nm", 1.0, False),
        ("NM", "nm", 1.0, False),
        ("nanometer", "nm", 1.0, False),
        ("Nanometre", "nm", 1.0, False),
        ("[nm]", "nm", 1.0, False),
        ("Å", "Å", 0.1, False),  # U+00C5
        ("\u212b", "Å", 0.1, False),  # U+212B ANGSTROM SIGN
        ("A", "Å", 0.1, False),
        ("angstrom", "Å", 0.1, False),
        ("Angstrom", "Å", 0.1, False),
        ("Ångström", "Å", 0.1, False),
        ("pm", "pm", 1e-3, False),
        ("\u00b5m", "µm", 1e3, False),  # MICRO SIGN
        ("\u03bcm", "µm", 1e3, False),  # GREEK SMALL LETTER MU
        ("um", "µm", 1e3, False),
        ("u_m", "µm", 1e3, False),
        ("micron", "µm", 1e3, False),
        ("micrometer", "µm", 1e3, False),
        ("mm", "mm", 1e6, False),
        ("cm", "cm", 1e7, False),
        ("m", "m", 1e9, False),
        (b"nm", "nm", 1.0, False),
        ("1/nm", "1/nm", 1.0, True),
        ("1/n_m", "1/nm", 1.0, True),
        ("nm^-1", "1/nm", 1.0, True),
        ("nm\u22121", "1/nm", 1.0, True),  # MINUS SIGN
        ("nm⁻¹", "1/nm", 1.0, True),
        ("1/Å", "1/Å", 0.1, True),
        ("1/\u212b", "1/Å", 0.1, True),
        ("Å^-1", "1/Å", 0.1, True),
        ("1/A", "1/Å", 0.1, True),
    ],
)
def test_unit_table(unit, canonical, nm_per_unit, reciprocal):
    from matsight.io.units import canonical_unit, is_uncalibrated

    assert canonical_unit(unit) == canonical
    p = parse_length_unit(unit)
    assert p[1] == pytest.approx(nm_per_unit, rel=1e-12)
    assert p[2] is reciprocal
    assert is_reciprocal(unit) is reciprocal
    assert not is_uncalibrated(unit)


@pytest.mark.parametrize("unit", [None, "", " ", "<undefined>", "undefined", "px", "pixel", "Pixels", "none"])
def test_uncalibrated_units(unit):
    from matsight.io.units import canonical_unit, is_uncalibrated, length_calibration

    assert is_uncalibrated(unit)
    assert canonical_unit(unit) == ""
    assert length_calibration(1.0, unit) is None


def test_length_calibration():
    from matsight.io.units import length_calibration

    assert length_calibration(0.0122465, "n_m") == (pytest.approx(0.0122465, rel=1e-12), False)
    assert length_calibration(8.17, "pm") == (pytest.approx(0.00817, rel=1e-12), False)
    assert length_calibration(2.0, "1/Å") == (pytest.approx(20.0, rel=1e-12), True)
    for bad in (-1.0, 0.0, float("nan"), float("inf"), None, "x"):
        assert length_calibration(bad, "nm") is None
    assert length_calibration(1.0, "furlong") is None

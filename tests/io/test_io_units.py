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

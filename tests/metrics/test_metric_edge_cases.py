"""Edge cases of the microstructure metrics: physical lags, bad distances."""

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.metrics import microstructure as ms


def test_axis_correlation_max_distance_in_spacing_units_is_not_floored_short(rng):
    lab = rng.integers(0, 3, (12, 14, 16)).astype(np.uint8)
    c = ms.two_point_correlation(lab, 1, axis=0, max_distance=0.3, spacing=(0.1, 1, 1))
    np.testing.assert_allclose(c.distance, [0.0, 0.1, 0.2, 0.3])
    ref = ms.two_point_correlation(lab, 1, axis=0, max_distance=3)
    np.testing.assert_allclose(c.probability, ref.probability)


@pytest.mark.parametrize("bad", [float("nan"), "far", -1.0])
@pytest.mark.parametrize("axis", [None, 0])
def test_bad_max_distance_is_an_input_error(rng, bad, axis):
    lab = rng.integers(0, 2, (8, 8)).astype(np.uint8)
    with pytest.raises(InputError, match="max_distance"):
        ms.two_point_correlation(lab, 1, axis=axis, max_distance=bad)

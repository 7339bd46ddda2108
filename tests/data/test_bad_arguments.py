"""Bad arguments to the synthetic generators and the degradation give one-line InputErrors."""

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.data import grayscale
from matsight.data.degrade import degrade
from matsight.data.microstructures import particle_electrode, two_phase


@pytest.mark.parametrize("shape", [(8.7, 8, 8), ("8", 8, 8), (True, 8, 8), (-5, 8, 8), 8, None])
def test_microstructure_shapes_must_be_whole_positive_sizes(shape):
    with pytest.raises(InputError, match="shape"):
        particle_electrode(shape, volume_fraction=0.4, radius=2)
    with pytest.raises(InputError, match="shape"):
        two_phase(shape, volume_fraction=0.4, size=2)


def test_whole_float_shapes_are_accepted():
    assert two_phase((8.0, 8, 8), volume_fraction=0.4, size=2).shape == (8, 8, 8)


@pytest.mark.parametrize("seed", [-1, 1.5, "a"])
def test_bad_seeds(seed):
    with pytest.raises(InputError, match="seed"):
        two_phase((8, 8, 8), volume_fraction=0.4, seed=seed)
    with pytest.raises(InputError, match="seed"):
        particle_electrode((8, 8, 8), volume_fraction=0.4, radius=2, seed=seed)


def test_grayscale_bad_arguments():
    with pytest.raises(InputError, match="shape"):
        grayscale.synthetic_grayscale((8.5, 16, 16))
    with pytest.raises(InputError, match="shape"):
        grayscale.synthetic_grayscale(16)


@pytest.fixture(scope="module")
def hr():
    return particle_electrode((17, 23, 30), volume_fraction=0.5, radius=3, seed=0)


@pytest.mark.parametrize("scale", ["x", None])
def test_degrade_bad_scale(hr, scale):
    with pytest.raises(InputError, match="scale"):
        degrade(hr, scale)


def test_degrade_rejects_negative_labels_and_flat_merge(hr):
    with pytest.raises(InputError, match="labels 0, 1, 2"):
        degrade(hr.astype(np.int8) - 1, 2)  # the -1 phase used to vanish silently
    with pytest.raises(InputError, match="list of phase groups"):
        degrade(hr, 2, merge=[0, 1])


def test_degrade_bool_and_labels_beyond_255(hr):
    lr, groups = degrade(hr > 0, 2)
    assert lr.shape == (8, 12, 15) and groups == [[0], [1]]
    big = hr.astype(np.int32) * 300
    lr, groups = degrade(big, 2)
    ref, _ = degrade(hr, 2)
    np.testing.assert_array_equal(lr, ref.astype(np.int64) * 300)
    assert groups[300] == [300]

"""Synthetic grayscale images and volumes."""

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.data.grayscale import grayscale_from_labels, synthetic_grayscale


def test_synthetic_grayscale_seeded():
    a = synthetic_grayscale((12, 40, 40), seed=4)
    b = synthetic_grayscale((12, 40, 40), seed=4)
    c = synthetic_grayscale((12, 40, 40), seed=5)
    assert a.shape == (12, 40, 40) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.std() > 0.1  # particles and background present


def test_grayscale_from_labels():
    lab = np.zeros((6, 32, 32), np.uint8)
    lab[:, 8:24, 8:24] = 1
    lab[:, 12:20, 12:20] = 2
    img = grayscale_from_labels(lab, levels=(0.1, 0.5, 0.9), texture=0, blur=0, noise=0)
    np.testing.assert_allclose(img[lab == 2], 0.9)
    np.testing.assert_allclose(img[lab == 0], 0.1)
    noisy = grayscale_from_labels(lab, seed=1)
    assert noisy[lab == 2].mean() > noisy[lab == 1].mean() > noisy[lab == 0].mean()
    np.testing.assert_array_equal(noisy, grayscale_from_labels(lab, seed=1))
    with pytest.raises(InputError, match="one level per phase"):
        grayscale_from_labels(lab, levels=(0.1, 0.5))
    with pytest.raises(InputError):
        grayscale_from_labels(np.random.default_rng(0).random((8, 8)))

import numpy as np
import pytest

from matsight.fuse.data import HRSampler, dihedral


def _orientations(sampler, axis, n=64):
    crops = sampler.sample(n, axis).argmax(1).numpy().astype(np.uint8)
    return {c.tobytes() for c in crops}


def test_hr_crops_are_augmented_per_slicing_axis():
    # an 8×8 image with no symmetry: its 8 dihedral orientations all differ
    image = np.zeros((8, 8), np.uint8)
    image[0, :3] = 1
    image[1, 0] = 2
    assert len({dihedral(image, k).tobytes() for k in range(8)}) == 8
    stacks = [image[None]] * 3  # z, y, x
    rng = np.random.default_rng(0)
    sampler = HRSampler(stacks, size=8, n_phases=3, augment=(False, False, True), rng=rng)
    assert _orientations(sampler, 0) == _orientations(sampler, 1) == {image.tobytes()}
    assert _orientations(sampler, 2) == {dihedral(image, k).tobytes() for k in range(8)}
    # one flag for every axis, as before
    every = HRSampler([image[None]], size=8, n_phases=3, augment=True, rng=rng)
    assert all(len(_orientations(every, a)) == 8 for a in range(3))
    none = HRSampler([image[None]], size=8, n_phases=3, augment=False, rng=rng)
    assert all(_orientations(none, a) == {image.tobytes()} for a in range(3))
    with pytest.raises(ValueError, match="one flag per slicing axis"):
        HRSampler(stacks, size=8, n_phases=3, augment=(True, False), rng=rng)

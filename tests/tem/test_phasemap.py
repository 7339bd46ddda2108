import pytest

from matsight.tem.phasemap import opening_kernel


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 5])
def test_opening_stays_the_papers_size_in_frame_pixels(factor):
    # 7×7 × 2 iterations = one 13×13 opening in frame pixels; frames above 1024 px are segmented on a grid
    # downsampled `factor` times, where the kernel used to stay 13 working px (26 frame px at 2048²)
    k = opening_kernel(7, 2, factor)
    assert k % 2 == 1 and k >= 3
    assert abs(k * factor - 13) <= factor


def test_opening_kernel_limits():
    assert opening_kernel(7, 0, 1) == 1 and opening_kernel(1, 2, 1) == 1  # no opening asked for
    assert opening_kernel(7, 2, 8) == 3  # never below 3 working px when an opening is asked for
    assert opening_kernel(3, 1, 1) == 3

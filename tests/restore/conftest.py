import numpy as np
import pytest


@pytest.fixture(scope="session")
def disk_scene():
    """``(rng, n=64) -> image``: bright disks (0.6 or 0.9) on a 0.2 background, a tiny HQ slice."""

    def make(rng, n=64):
        img = np.full((n, n), 0.2, np.float32)
        yy, xx = np.mgrid[:n, :n]
        for _ in range(8):
            cy, cx, r = rng.uniform(0, n, 2).tolist() + [rng.uniform(4, 10)]
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.choice([0.6, 0.9])
        return img

    return make


@pytest.fixture(scope="session")
def tiny_indi():
    """Settings of a tiny InDI model that trains in seconds on a CPU."""
    return dict(features=[4, 8], time_embedding=8, crop=16, batch=2, val_crop=24, auto_steps=[1, 2], steps=2)

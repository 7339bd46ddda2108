import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import clear_border

from matsight import InputError
from matsight.data.microstructures import particle_electrode, two_phase


def test_particle_electrode_hits_fractions_exactly_and_is_seeded():
    shape = (40, 44, 48)
    img = particle_electrode(shape, volume_fraction=0.45, binder_fraction=0.12, radius=5, seed=3)
    assert img.dtype == np.uint8 and img.shape == shape
    counts = np.bincount(img.ravel(), minlength=3)
    n = img.size
    assert counts[1] == round(0.45 * n) and counts[2] == round(0.12 * n) and counts.size == 3
    kw = {"volume_fraction": 0.45, "binder_fraction": 0.12, "radius": 5}
    assert np.array_equal(img, particle_electrode(shape, **kw, seed=3))
    other = particle_electrode(shape, **kw, seed=4)
    assert (other != img).mean() > 0.2


def test_binder_sits_on_particles_and_particles_are_round():
    img = particle_electrode((48, 48, 48), volume_fraction=0.4, binder_fraction=0.08, radius=6, seed=0)
    binder, active = img == 2, img == 1
    # binder voxels lie within a few voxels of active material (bridges and coatings, not free blobs);
    # near the faces the nearest particle may lie outside the box, so look inside
    dist = ndi.distance_transform_edt(~active)
    inner = (slice(6, -6),) * 3
    assert dist[inner][binder[inner]].max() <= 3.0
    # necks: binder is much closer to two particles than pore is on average
    assert dist[binder].mean() < 0.5 * dist[img == 0].mean()
    # monodisperse: every particle inside the box is at least one whole sphere of the given radius
    two = particle_electrode((48,) * 3, n_phases=2, volume_fraction=0.1, radius=6, polydispersity=0, seed=0)
    assert set(np.unique(two)) == {0, 1}
    lab, _ = ndi.label(two)
    lab = clear_border(lab)  # whole particles (or clusters) only
    sizes = np.bincount(lab.ravel())[1:]
    sizes = sizes[sizes > 0]
    sphere = 4 / 3 * np.pi * 6**3
    assert sizes.size >= 3 and sizes.min() > 0.85 * sphere


def test_two_dimensional_and_two_phase_generators():
    disc = particle_electrode((64, 64), n_phases=2, volume_fraction=0.3, radius=4, seed=1)
    assert disc.shape == (64, 64) and (disc == 1).sum() == round(0.3 * 64 * 64)
    blobs = two_phase((32, 40, 36), volume_fraction=0.35, size=(2, 4, 4), seed=2)
    assert blobs.dtype == np.uint8 and blobs.sum() == round(0.35 * blobs.size)
    assert np.array_equal(blobs, two_phase((32, 40, 36), volume_fraction=0.35, size=(2, 4, 4), seed=2))
    # anisotropic size: longer correlation along Y/X than Z → more phase changes along Z
    changes = [np.count_nonzero(np.diff(blobs, axis=k)) / blobs.size for k in range(3)]
    assert changes[0] > 1.5 * changes[1] and changes[0] > 1.5 * changes[2]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shape": (10,)},
        {"shape": 10},
        {"shape": (16, 16, 16), "volume_fraction": 1.2},
        {"shape": (16, 16, 16), "volume_fraction": 0.7, "binder_fraction": 0.4},
        {"shape": (16, 16, 16), "radius": 0},
        {"shape": (16, 16, 16), "n_phases": 4},
    ],
)
def test_bad_parameters_raise_input_error(kwargs):
    shape = kwargs.pop("shape")
    with pytest.raises(InputError):
        particle_electrode(shape, **kwargs)


def test_two_phase_rejects_bad_size():
    with pytest.raises(InputError, match="size"):
        two_phase((8, 8, 8), size=(1, 2))
    with pytest.raises(InputError, match="size"):
        two_phase((8, 8, 8), size=-1)

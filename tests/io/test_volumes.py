"""Volumes and labels: tif (ImageJ/OME axes), npy, zarr (lazy), atomic writes, label validation."""

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.io import read_image, read_labels, read_spacing, read_volume, validate_labels, write_volume

tifffile = pytest.importorskip("tifffile")


@pytest.fixture
def vol(rng):
    return rng.integers(0, 3, (5, 12, 16)).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- tif
def test_imagej_hyperstack_singleton_axes_dropped(tmp_path, vol):
    p = tmp_path / "hyper.tif"
    # TZCYXS order as ImageJ stores it: 1 time point, 5 slices, 1 channel
    tifffile.imwrite(p, vol[None, :, None], imagej=True, metadata={"axes": "TZCYX"})
    out = read_volume(p)
    assert out.shape == (5, 12, 16)
    np.testing.assert_array_equal(out, vol)


def test_imagej_calibration_in_nm(tmp_path, vol):
    p = tmp_path / "cal.tif"
    tifffile.imwrite(
        p,
        vol,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.5),
        metadata={"axes": "ZYX", "unit": "micron", "spacing": 2.0},
    )
    assert read_spacing(p) == pytest.approx((2000.0, 500.0, 250.0))


def test_imagej_channels_and_extra_axes_are_errors(tmp_path, vol):
    two_ch = np.stack([vol, vol + 1], axis=1)  # ZCYX with different channels
    p = tmp_path / "channels.tif"
    tifffile.imwrite(p, two_ch, imagej=True, metadata={"axes": "ZCYX"})
    with pytest.raises(InputError, match="2-channel"):
        read_volume(p)
    same = tmp_path / "same_channels.tif"
    tifffile.imwrite(same, np.stack([vol, vol], axis=1), imagej=True, metadata={"axes": "ZCYX"})
    assert read_volume(same).shape == vol.shape  # identical channels carry one image
    tz = tmp_path / "tz.tif"
    tifffile.imwrite(tz, np.stack([vol, vol]), imagej=True, metadata={"axes": "TZYX"})
    with pytest.raises(InputError, match="more than one stack dimension"):
        read_volume(tz)


def test_time_series_tif_reads_frames_first(tmp_path, vol):
    p = tmp_path / "t.tif"
    tifffile.imwrite(p, vol, imagej=True, metadata={"axes": "TYX"})
    assert read_volume(p).shape == vol.shape


def test_ome_tif_axes_and_calibration(tmp_path, rng):
    data = rng.random((1, 4, 1, 10, 12)).astype(np.float32)  # TZCYX
    p = tmp_path / "img.ome.tif"
    tifffile.imwrite(
        p,
        data,
        ome=True,
        metadata={
            "axes": "TZCYX",
            "PhysicalSizeX": 0.5,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": 0.5,
            "PhysicalSizeYUnit": "µm",
            "PhysicalSizeZ": 20.0,
            "PhysicalSizeZUnit": "Å",
        },
    )
    out = read_volume(p)
    assert out.shape == (4, 10, 12)
    np.testing.assert_array_equal(out, data[0, :, 0])
    assert read_spacing(p) == pytest.approx((2.0, 500.0, 500.0))


def test_rgb_tif_volume_is_an_error_but_image_is_gray(tmp_path, rng):
    rgb = rng.integers(0, 255, (8, 9, 3)).astype(np.uint8)
    p = tmp_path / "rgb.tif"
    tifffile.imwrite(p, rgb, photometric="rgb")
    with pytest.raises(InputError, match="RGB"):
        read_volume(p)
    g = read_image(p)
    assert g.shape == (8, 9)
    np.testing.assert_allclose(g, rgb @ np.array([0.2125, 0.7154, 0.0721]))


# ------------------------------------------------------------------------------------------------- npy / zarr
def test_npy_round_trip_and_lazy(tmp_path, vol):
    p = write_volume(tmp_path / "v.npy", vol)
    np.testing.assert_array_equal(read_volume(p), vol)
    lazy = read_volume(p, lazy=True)
    assert isinstance(lazy, np.memmap)
    np.testing.assert_array_equal(lazy[2], vol[2])


def test_zarr_lazy_round_trip_with_spacing(tmp_path, rng):
    zarr = pytest.importorskip("zarr")
    v = rng.random((20, 30, 40)).astype(np.float32)
    p = write_volume(tmp_path / "v.zarr", v, spacing=(2.0, 1.0, 1.0), chunks=(8, 16, 16))
    lazy = read_volume(p, lazy=True)
    assert isinstance(lazy, zarr.Array) and lazy.chunks == (8, 16, 16)
    np.testing.assert_array_equal(lazy[3:5], v[3:5])
    np.testing.assert_array_equal(read_volume(p), v)
    assert read_spacing(p) == pytest.approx((2.0, 1.0, 1.0))
    # a lazy source is written slab by slab, never loaded whole
    q = write_volume(tmp_path / "copy.zarr", lazy)
    np.testing.assert_array_equal(read_volume(q), v)


def test_zarr_group_with_one_array(tmp_path, vol):
    zarr = pytest.importorskip("zarr")
    g = zarr.open_group(str(tmp_path / "g.zarr"), mode="w")
    g.create_array("labels", shape=vol.shape, dtype=vol.dtype)[...] = vol
    np.testing.assert_array_equal(read_volume(tmp_path / "g.zarr"), vol)
    g.create_array("other", shape=(2, 2), dtype="u1")
    with pytest.raises(InputError, match="2 arrays"):
        read_volume(tmp_path / "g.zarr")


# ---------------------------------------------------------------------------------------------------- writing
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.int32, np.float64, bool])
@pytest.mark.parametrize("ext", [".tif", ".npy", ".zarr"])
def test_write_read_round_trip(tmp_path, rng, dtype, ext):
    if ext == ".zarr":
        pytest.importorskip("zarr")
    a = (rng.random((3, 7, 9)) * 100).astype(dtype)
    p = write_volume(tmp_path / f"a{ext}", a, spacing=(3.0, 1.5, 1.5) if ext != ".npy" else None)
    out = read_volume(p)
    np.testing.assert_array_equal(out, a.astype(np.uint8) if dtype is bool else a)
    if ext != ".npy":
        assert read_spacing(p) == pytest.approx((3.0, 1.5, 1.5))
    assert [q.name for q in tmp_path.iterdir()] == [p.name]  # no temporary files left


def test_write_2d_and_units(tmp_path, rng):
    img = rng.random((10, 11)).astype(np.float32)
    p = write_volume(tmp_path / "i.tif", img, spacing=0.5, unit="µm")
    np.testing.assert_array_equal(read_volume(p), img)
    assert read_spacing(p) == pytest.approx((500.0, 500.0))


def test_write_is_atomic(tmp_path, vol, monkeypatch):
    p = write_volume(tmp_path / "keep.tif", vol)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", boom)
    with pytest.raises(OSError, match="disk full"):
        write_volume(p, vol + 1)
    np.testing.assert_array_equal(read_volume(p), vol)  # the old file is intact
    with pytest.raises(OSError):
        write_volume(tmp_path / "new.tif", vol)
    assert sorted(q.name for q in tmp_path.iterdir()) == ["keep.tif"]


def test_write_errors(tmp_path, vol):
    with pytest.raises(InputError, match=".tif/.tiff, .npy or .zarr"):
        write_volume(tmp_path / "v.png", vol)
    with pytest.raises(InputError, match="2D or 3D"):
        write_volume(tmp_path / "v.tif", np.arange(5))
    with pytest.raises(InputError, match="spacing"):
        write_volume(tmp_path / "v.tif", vol, spacing=(1, 2))
    with pytest.raises(InputError, match="unit"):
        write_volume(tmp_path / "v.tif", vol, spacing=1, unit="furlong")
    with pytest.raises(InputError, match="type"):
        write_volume(tmp_path / "v.tif", np.array([["a", "b"], ["c", "d"]]))
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------------- labels
def test_read_labels_ok(tmp_path, vol):
    p = write_volume(tmp_path / "l.tif", vol)
    out = read_labels(p)
    assert out.dtype.kind in "iu"
    np.testing.assert_array_equal(out, vol)
    # floats holding integer values are accepted and cast; bools become uint8
    f = write_volume(tmp_path / "f.tif", vol.astype(np.float32))
    assert read_labels(f).dtype == np.uint8
    assert validate_labels(vol > 0).dtype == np.uint8


def test_read_labels_float_image_with_many_values(tmp_path, rng):
    p = write_volume(tmp_path / "gray.tif", rng.random((4, 30, 30)).astype(np.float32))
    with pytest.raises(InputError, match="distinct float values .* grayscale image, not labels"):
        read_labels(p)
    q = write_volume(tmp_path / "half.npy", np.array([[0.5, 1.0], [0.0, 0.5]]))
    with pytest.raises(InputError, match="non-integer values"):
        read_labels(q)


def test_read_labels_1d_missing_and_other_errors(tmp_path):
    p = tmp_path / "line.npy"
    np.save(p, np.arange(10))
    with pytest.raises(InputError, match="1D array"):
        read_labels(p)
    with pytest.raises(InputError, match="no such file"):
        read_labels(tmp_path / "missing.tif")
    neg = tmp_path / "neg.npy"
    np.save(neg, -np.ones((3, 3), int))
    with pytest.raises(InputError, match="negative"):
        read_labels(neg)
    gray = tmp_path / "u16.npy"
    np.save(gray, np.arange(400, dtype=np.uint16).reshape(20, 20))
    with pytest.raises(InputError, match="grayscale"):
        read_labels(gray, max_labels=10)
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(InputError, match="NaN"):
        read_labels(nan)
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tif at all")
    with pytest.raises(InputError, match="not a readable tif"):
        read_volume(junk)


# -------------------------------------------------------------------------------------------------- real data
def test_shared_label_and_grayscale_volumes(shared_data):
    nmc = read_labels(shared_data / "superres" / "nmc_lr.tif")
    assert nmc.shape == (128, 128, 128)
    assert set(np.unique(nmc).tolist()) == {0, 1}
    assert abs(float((nmc == 0).mean()) - 0.580) < 0.01
    hr = read_labels(shared_data / "superres" / "nmc_hr.tif")
    assert hr.shape == (1024, 1024) and set(np.unique(hr).tolist()) == {0, 1, 2}
    sep = read_volume(shared_data / "superres" / "separator_lr.tif", lazy=True)
    assert sep.shape == (156, 75, 75)
    sl = read_volume(shared_data / "xct" / "cell_slice_1.tif")
    assert sl.shape == (576, 576) and sl.dtype == np.uint16
    with pytest.raises(InputError, match="grayscale"):
        read_labels(shared_data / "xct" / "cell_slice_1.tif", max_labels=50)

"""Edge cases of the volume readers/writers: broken files, page-by-page tifs, escaped units, OME-Zarr axes."""

import logging

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.io import read_image, read_labels, read_spacing, read_volume, write_volume

tifffile = pytest.importorskip("tifffile")


@pytest.fixture
def vol(rng):
    return rng.integers(0, 3, (4, 5, 6)).astype(np.uint8)


def test_empty_truncated_and_folder_files_are_one_line_input_errors(tmp_path, rng):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty or truncated"):
        read_volume(empty)
    full = write_volume(tmp_path / "full.tif", rng.random((20, 64, 64)).astype(np.float32))
    cut = tmp_path / "cut.tif"
    cut.write_bytes(full.read_bytes()[:5000])
    with pytest.raises(InputError, match="truncated") as err:
        read_volume(cut)
    assert "\n" not in str(err.value)
    folder = tmp_path / "stack.tif"
    folder.mkdir()
    with pytest.raises(InputError, match="is a folder"):
        read_volume(folder)
    png = tmp_path / "empty.png"
    png.write_bytes(b"")
    with pytest.raises(InputError) as err:
        read_volume(png)
    assert "\n" not in str(err.value)


def test_tif_written_page_by_page_reads_as_the_whole_stack(tmp_path, vol):
    p = tmp_path / "pages.tif"
    with tifffile.TiffWriter(p) as w:
        for z in vol:
            w.write(z)  # each page its own (shaped) series
    out = read_volume(p)
    assert out.shape == vol.shape
    np.testing.assert_array_equal(out, vol)


def test_imagej_unicode_escaped_angstrom_unit(tmp_path, vol):
    p = tmp_path / "angstrom.tif"
    md = {"axes": "ZYX", "unit": "\\u00C5", "spacing": 5.0}  # how ImageJ writes Å
    tifffile.imwrite(p, vol, imagej=True, resolution=(1 / 2.0, 1 / 3.0), metadata=md)
    assert read_spacing(p) == pytest.approx((0.5, 0.3, 0.2))


def test_grey_alpha_png_reads_as_grey(tmp_path, rng):
    iio = pytest.importorskip("imageio.v3")
    g = rng.integers(0, 255, (8, 9)).astype(np.uint8)
    p = tmp_path / "la.png"
    iio.imwrite(p, np.stack([g, np.full_like(g, 255)], -1))
    np.testing.assert_array_equal(read_image(p), g)
    np.testing.assert_array_equal(read_labels(p), g)
    alpha = rng.integers(0, 255, (8, 9)).astype(np.uint8)
    q = tmp_path / "la_varying.png"
    iio.imwrite(q, np.stack([g, alpha], -1))
    np.testing.assert_array_equal(read_image(q), g)  # grayscale reader ignores transparency
    with pytest.raises(InputError, match="alpha"):
        read_volume(q)


def test_ome_zarr_singleton_time_and_channel_axes_are_dropped(tmp_path, vol):
    zarr = pytest.importorskip("zarr")
    p = tmp_path / "ome.zarr"
    g = zarr.open_group(str(p), mode="w", zarr_format=2)
    g.create_array("0", shape=(1, 1, *vol.shape), dtype=vol.dtype)[...] = vol[None, None]
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"}]
    axes += [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    scale = [{"type": "scale", "scale": [1.0, 1.0, 3.0, 2.0, 1.0]}]
    g.attrs["multiscales"] = [
        {"version": "0.4", "axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
    ]
    np.testing.assert_array_equal(read_volume(p), vol)
    assert read_volume(p, lazy=True).shape == vol.shape
    assert read_spacing(p) == pytest.approx((3.0, 2.0, 1.0))


def test_npy_dimensions(tmp_path, vol):
    for shape in [(), (5,)]:
        p = tmp_path / f"d{len(shape)}.npy"
        np.save(p, np.zeros(shape, np.uint8))
        with pytest.raises(InputError, match="must be 2D"):
            read_volume(p)
    p = tmp_path / "lead1.npy"
    np.save(p, vol[None])
    np.testing.assert_array_equal(read_volume(p), vol)
    p = tmp_path / "fortran_be.npy"
    np.save(p, np.asfortranarray(vol.astype(">i4")))
    np.testing.assert_array_equal(read_labels(p), vol)


def test_write_volume_bad_spacing_and_chunks_are_input_errors(tmp_path, vol):
    with pytest.raises(InputError, match="spacing"):
        write_volume(tmp_path / "a.tif", vol, spacing="abc")
    pytest.importorskip("zarr")
    with pytest.raises(InputError, match="chunks"):
        write_volume(tmp_path / "a.zarr", vol, chunks=(0, 2, 2))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", [np.int8, np.int64, np.uint32])
def test_label_types_round_trip_with_calibration(tmp_path, rng, dtype, caplog):
    a = rng.integers(0, 100, (3, 5, 6)).astype(dtype)
    a[0, 0, 0] = 100 if dtype == np.int8 else 300
    for ext in (".tif", ".zarr"):
        if ext == ".zarr":
            pytest.importorskip("zarr")
        p = write_volume(tmp_path / f"l{ext}", a, spacing=(2, 1, 0.5), unit="µm")
        out = read_labels(p)
        assert out.dtype == a.dtype
        np.testing.assert_array_equal(out, a)
        assert read_spacing(p) == pytest.approx((2000.0, 1000.0, 500.0))
    with caplog.at_level(logging.WARNING):
        read_volume(tmp_path / "l.tif")
    assert not caplog.records

"""Every real microscope file in ../shared/data/tem/: shape, pixel size and unit per axis, stacks, errors."""

import math
import os

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.io import iter_frames, read_microscope, read_spacing, read_volume

pytest.importorskip("rsciio")

# file -> (shape, pixel size in nm per spatial axis, the file's unit per axis of data)
CALIBRATED = {
    "128x128-TEM_search.emi": ((128, 128), (5.261214, 5.261214), ("nm", "nm")),
    "128x128-TEM_search_1.ser": ((128, 128), (5.261214, 5.261214), ("nm", "nm")),
    # SrTiO3 STEM image, 0.100 Å per pixel
    "16_STOimage.emi": ((1024, 1024), (0.0100127, 0.0100127), ("nm", "nm")),
    "16_STOimage_1.ser": ((1024, 1024), (0.0100127, 0.0100127), ("nm", "nm")),
    "HAADFscan.mrc": ((16, 16), (5.679131, 5.679131), ("nm", "nm")),
    # a 3D DM image: z in µm (4 µm), y in nm (3 nm), x in pm (2 pm) — every axis converted on its own
    "dmTest_3D_int16_64_65_66.dm4": ((66, 65, 64), (4000.0, 3.0, 0.002), ("um", "nm", "pm")),
    # y in Å (2 Å = 0.2 nm), x in nm (1 nm): different units per axis
    "dmTest_float32_nonSquare_diffPixelSize.dm3": ((64, 128), (0.2, 1.0), ("A", "nm")),
    "dmTest_float32_nonSquare_diffPixelSize.dm4": ((64, 128), (0.2, 1.0), ("A", "nm")),
    # Velox 2-frame stack in pm, frames 0.8 s apart
    "fei_example_tem_stack.emd": ((2, 3, 3), (0.008172883, 0.008172883), ("s", "pm", "pm")),
    # two signals: the 512² HAADF image is chosen over the 1D plot
    "multi_signal.dm3": ((512, 512), (0.01775158, 0.01775158), ("nm", "nm")),
    "temp.mrc": ((3, 128, 128), (0.2, 0.2), ("", "nm", "nm")),
    "test_STEM_image.dm3": ((68, 68), (0.2485380, 0.2485380), ("nm", "nm")),
    # µm units: 0.16867 µm = 168.67 nm
    "test_dm_image_um_unit.dm3": ((68, 68), (168.674693, 168.674693), ("µm", "µm")),
}
# movies whose header says -1 nm (no calibration), and a 2x2 image without a unit
UNCALIBRATED = {
    "Custom_movie.mrc": (30, 16, 16),
    "ROI_Random_Scan_movie.mrc": (348, 16, 16),
    "test-1.dm4": (2, 2),
}
DIFFRACTION = {"test_diffraction_pattern.dm3": ((87, 87), 0.17443286)}  # 1/nm per pixel


@pytest.fixture(scope="module")
def tem(shared_data):
    d = shared_data / "tem"
    if not d.is_dir():
        pytest.skip("shared/data/tem not present")
    return d


def test_every_file_is_covered(tem):
    known = set(CALIBRATED) | set(UNCALIBRATED) | set(DIFFRACTION)
    assert set(os.listdir(tem)) == known


@pytest.mark.parametrize("name", sorted(CALIBRATED))
def test_calibrated_file(tem, name):
    shape, ps, units = CALIBRATED[name]
    mi = read_microscope(tem / name)
    assert tuple(mi.data.shape) == shape
    np.testing.assert_allclose(mi.pixel_size_nm, ps, rtol=1e-5)
    assert mi.units == units
    assert mi.metadata["pixel_size_source"] == "file"
    assert not mi.reciprocal
    assert mi.is_stack == (len(shape) == 3)
    data, pixel_size, meta = mi  # unpacks as (data, pixel_size_nm, metadata)
    assert pixel_size == mi.pixel_size_nm and meta["source"].endswith(name)
    assert np.asarray(mi).shape == shape
    # read_volume gives the same pixels; read_spacing the same calibration
    np.testing.assert_array_equal(read_volume(tem / name), np.asarray(mi.data))
    sp = read_spacing(tem / name)
    assert sp[-2:] == pytest.approx(ps[-2:], rel=1e-5)


def test_nonsquare_pixels_keep_each_axis(tem):
    for ext in ("dm3", "dm4"):
        mi = read_microscope(tem / f"dmTest_float32_nonSquare_diffPixelSize.{ext}")
        py, px = mi.pixel_size_nm
        assert py == pytest.approx(0.2) and px == pytest.approx(1.0)  # 2 Å and 1 nm, not 2 nm and 1 nm
        assert mi.data.dtype == np.float32
        assert mi.axes == ("y", "x")


def test_3d_dm_stack_axis_is_calibrated(tem):
    mi = read_microscope(tem / "dmTest_3D_int16_64_65_66.dm4")
    assert mi.data.dtype == np.int16 and mi.n_frames == 66
    assert mi.axes == ("z", "y", "x")
    frames = list(iter_frames(tem / "dmTest_3D_int16_64_65_66.dm4"))
    assert len(frames) == 66 and frames[0].data.shape == (65, 64)
    assert frames[0].pixel_size_nm == pytest.approx((3.0, 0.002))


def test_emd_stack_frames_and_times(tem):
    mi = read_microscope(tem / "fei_example_tem_stack.emd")
    assert mi.axes == ("Time", "y", "x")
    np.testing.assert_allclose(mi.frame_times, [0.0, 0.8])
    frames = list(iter_frames(tem / "fei_example_tem_stack.emd"))
    assert [f.metadata["time_s"] for f in frames] == pytest.approx([0.0, 0.8])
    np.testing.assert_array_equal(frames[1].data, mi.data[1])


def test_ser_and_emi_agree(tem):
    for stem in ("16_STOimage", "128x128-TEM_search"):
        a = read_microscope(tem / f"{stem}.emi")
        b = read_microscope(tem / f"{stem}_1.ser")
        np.testing.assert_array_equal(a.data, b.data)
        assert a.pixel_size_nm == b.pixel_size_nm


def test_multi_signal_picks_the_image(tem):
    mi = read_microscope(tem / "multi_signal.dm3")
    assert mi.metadata["n_signals"] == 2 and mi.metadata["signal_index"] == 0
    assert mi.data.shape == (512, 512)
    with pytest.raises(InputError, match="1D signal, not a 2D image"):
        read_microscope(tem / "multi_signal.dm3", signal=1)
    with pytest.raises(InputError, match="out of range"):
        read_microscope(tem / "multi_signal.dm3", signal=5)


@pytest.mark.parametrize("name", sorted(UNCALIBRATED))
def test_uncalibrated_needs_pixel_size(tem, name):
    with pytest.raises(InputError, match="no valid pixel size") as e:
        read_microscope(tem / name)
    assert "--pixel-size" in str(e.value)
    if name.endswith(".mrc"):
        assert "-1" in str(e.value)  # the bogus header value is named, not silently used
    mi = read_microscope(tem / name, pixel_size=0.25)
    assert tuple(mi.data.shape) == UNCALIBRATED[name]
    assert mi.pixel_size_nm == (0.25, 0.25)
    assert mi.metadata["pixel_size_source"] == "user"
    assert read_spacing(tem / name) is None
    with pytest.raises(InputError, match="pixel size"):
        read_microscope(tem / name, pixel_size=-1)


def test_movies_as_frames(tem):
    mi = read_microscope(tem / "Custom_movie.mrc", pixel_size=(0.3, 0.4))
    assert mi.is_stack and mi.n_frames == 30 and mi.axes == ("frame", "y", "x")
    assert mi.pixel_size_nm == (0.3, 0.4)
    frames = list(iter_frames(tem / "Custom_movie.mrc", pixel_size=0.3))
    assert len(frames) == 30
    assert all(f.data.shape == (16, 16) and f.pixel_size_nm == (0.3, 0.3) for f in frames)
    assert [f.metadata["frame_index"] for f in frames] == list(range(30))
    np.testing.assert_array_equal(frames[7].data, mi.data[7])
    with pytest.raises(InputError, match="no valid pixel size"):
        next(iter_frames(tem / "ROI_Random_Scan_movie.mrc"))
    n = sum(1 for _ in iter_frames(tem / "ROI_Random_Scan_movie.mrc", pixel_size=1.0))
    assert n == 348
    lazy = read_microscope(tem / "ROI_Random_Scan_movie.mrc", pixel_size=1.0, lazy=True)
    assert lazy.data.shape == (348, 16, 16)
    assert not isinstance(lazy.data, np.ndarray)  # dask array (or memory map): nothing loaded yet
    assert isinstance(read_microscope(tem / "Custom_movie.mrc", pixel_size=1.0).data, np.ndarray)
    np.testing.assert_array_equal(
        np.asarray(lazy.data[100]), read_volume(tem / "ROI_Random_Scan_movie.mrc")[100]
    )


def test_diffraction_pattern_refused_unless_allowed(tem):
    name = "test_diffraction_pattern.dm3"
    with pytest.raises(InputError, match=r"diffraction pattern \(axes in 1/nm\), not a real-space image"):
        read_microscope(tem / name)
    with pytest.raises(InputError, match="diffraction"):
        next(iter_frames(tem / name))
    shape, inv = DIFFRACTION[name]
    mi = read_microscope(tem / name, allow_reciprocal=True)
    assert mi.reciprocal and mi.data.shape == shape
    assert mi.pixel_size_nm == pytest.approx((inv, inv))
    assert "nm⁻¹" in repr(mi)


def test_given_pixel_size_overrides_file(tem, caplog):
    mi = read_microscope(tem / "test_STEM_image.dm3", pixel_size=0.5)
    assert mi.pixel_size_nm == (0.5, 0.5)
    assert mi.metadata["file_pixel_size_nm"] == pytest.approx((0.248538, 0.248538), rel=1e-5)
    assert any("instead of the file's calibration" in r.message for r in caplog.records)


def test_folder_of_frames_counts_each_image_once(tem, tmp_path):
    for name in ("16_STOimage.emi", "16_STOimage_1.ser", "test_STEM_image.dm3", "HAADFscan.mrc"):
        (tmp_path / name).symlink_to(tem / name)
    frames = list(iter_frames(tmp_path))
    # the .emi reads its own _1.ser: 3 images, not 4; natural sort order of names
    assert [os.path.basename(f.metadata["file"]) for f in frames] == [
        "16_STOimage.emi",
        "HAADFscan.mrc",
        "test_STEM_image.dm3",
    ]
    assert all(math.isfinite(f.pixel_size_nm[0]) for f in frames)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_microscope(tmp_path / "nothing.dm3")
    bad = tmp_path / "x.foo"
    bad.write_text("hello")
    with pytest.raises(InputError, match="unsupported file type"):
        read_microscope(bad)
    corrupt = tmp_path / "broken.dm3"
    corrupt.write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="could not be read"):
        read_microscope(corrupt)


# #36: in-plane pixel size (y, x) to 1e-6 and the tag it was read from (full precision, from the files' tags)
TAGS = {
    "128x128-TEM_search.emi": ((5.261214205047081,) * 2, "TIA .ser header CalibrationDeltaX"),
    "128x128-TEM_search_1.ser": ((5.261214205047081,) * 2, "TIA .ser header CalibrationDeltaX"),
    "16_STOimage.emi": ((0.010012704240403384,) * 2, "TIA .ser header CalibrationDeltaX"),
    "16_STOimage_1.ser": ((0.010012704240403384,) * 2, "TIA .ser header CalibrationDeltaX"),
    "HAADFscan.mrc": ((908.661 / 16 / 10,) * 2, "MRC header Xlen/MX"),  # Xlen 908.661 Å over 16 px
    "dmTest_3D_int16_64_65_66.dm4": ((3.0, 0.002), "ImageData/Calibrations/Dimension"),
    "dmTest_float32_nonSquare_diffPixelSize.dm3": ((0.2, 1.0), "ImageData/Calibrations/Dimension"),
    "dmTest_float32_nonSquare_diffPixelSize.dm4": ((0.2, 1.0), "ImageData/Calibrations/Dimension"),
    "fei_example_tem_stack.emd": ((8.1728831922978511e-3,) * 2, "Velox BinaryResult/PixelSize"),
    "multi_signal.dm3": ((0.017751578241586685,) * 2, "ImageData/Calibrations/Dimension"),
    "temp.mrc": ((0.2, 0.2), "MRC header Xlen/MX"),
    "test_STEM_image.dm3": ((0.24853801727294922,) * 2, "ImageData/Calibrations/Dimension"),
    "test_dm_image_um_unit.dm3": ((168.67469251155853,) * 2, "ImageData/Calibrations/Dimension"),
}


def test_tags_cover_every_calibrated_file():
    assert set(TAGS) == set(CALIBRATED)


@pytest.mark.parametrize("name", sorted(TAGS))
def test_calibration_source_and_precision(tem, name):
    ps, tag = TAGS[name]
    mi = read_microscope(tem / name, lazy=True, _quiet=True)
    np.testing.assert_allclose(mi.pixel_size_nm[-2:], ps, rtol=1e-6)
    assert mi.calibration_source.startswith("file: ") and tag in mi.calibration_source
    assert name in mi.calibration_source
    frame = next(iter_frames(tem / name))
    assert frame.metadata["calibration_source"] == mi.calibration_source

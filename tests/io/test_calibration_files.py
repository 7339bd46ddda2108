"""#36: the calibration of real files from each vendor (tests/data/microscope/, see its README), its source.

Synthetic files cover the spellings and tags no small real file here carries (ncempy's "n_m", OME, FEI_SFEG).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from matsight._errors import InputError
from matsight.io import iter_frames, read_microscope
from matsight.io.calibration import Calibration, read_calibration, write_calibration

pytest.importorskip("rsciio")

DATA = Path(__file__).resolve().parents[1] / "data" / "microscope"

# file -> (shape, pixel size (y, x) in nm, the file's unit of the image axes, words in the calibration source)
REAL = {
    "test_STEM_image.dm3": ((68, 68), (0.24853801727294922,) * 2, "nm", "Calibrations/Dimension"),
    "test_dm_image_um_unit.dm3": ((68, 68), (168.67469251155853,) * 2, "µm", "Calibrations/Dimension"),
    "test_loading_image_saved_with_imageJ.tif": ((68, 68), (1e3 / 5.928571,) * 2, "micron", "ImageJ"),
    "test_loading_image_saved_with_DM.tif": ((68, 68), (168.67469251155853,) * 2, "µm", "DigitalMicrograph"),
    # non-square pixels: y 1.68674 µm, x 0.168674 µm (hyperspy reads the same)
    "test_loading_image_saved_with_DM_stack.tif": (
        (2, 68, 68),
        (1686.7400407791138, 168.67400705814362),
        "µm",
        "DigitalMicrograph",
    ),
    "FEI-Helios-Ebeam-8bits.tif": ((471, 512), (3372.4,) * 2, "m", "FEI_HELIOS Scan/PixelWidth"),
    # SmartSEM's 5.824988 nm are those of a 1024-px frame: 512 px wide → ×2
    "test_tiff_Zeiss_SEM_512pix.tif": ((384, 512), (11.649976,) * 2, "m", "CZ_SEM"),
    "64x64_TEM_images_acquire.emi": ((64, 64), (6.281833616298531,) * 2, "nm", "CalibrationDeltaX"),
    "64x64_TEM_images_acquire_1.ser": ((64, 64), (6.281833616298531,) * 2, "nm", "CalibrationDeltaX"),
    # Velox: BinaryResult/PixelSize 2.1557341700960707e-10 m
    "velox_1532_Camera_Ceta.emd": (
        (64, 64),
        (0.21557341700960707,) * 2,
        "nm",
        "Velox BinaryResult/PixelSize",
    ),
    # Prismatic/Berkeley EMD: dim datasets with units "[n_m]"
    "Si100_2x1x1_3D.emd": ((22, 44), (0.25, 0.25), "nm", "EMD dim1/dim2"),
    # NCEM TEAM 0.5 Berkeley EMD v0.2 (ncempy's writer): dims in "n_m"; a 640² crop of the 1024² frame
    "Acquisition_18.emd": ((640, 640), (0.012246525846421719,) * 2, "n_m", "EMD dim1/dim2"),
    # MRC header: 228 Å over 20 voxels
    "EMD-3197.mrc": ((20, 20, 20), (1.14, 1.14), "nm", "MRC header Xlen/MX"),
}
# HyperSpy hspy (atomap): a scale with no unit
UNCALIBRATED = [
    "test_loading_image_saved_with_imageJ_no_scale.tif",
    "example_image.emd",
    "test_ADF_cropped.hspy",
    "test_ABF_cropped.hspy",
]


def test_data_files_documented_and_small():
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    files = [p for p in DATA.iterdir() if p.name != "README.md" and not p.name.startswith("LICENSE")]
    assert set(REAL) | set(UNCALIBRATED) | {"test_diffraction_pattern.dm3"} <= {p.name for p in files}
    for p in files:
        assert p.name.split("_1.ser")[0].replace(".emi", "") in readme, p.name
        assert p.stat().st_size < 1 << 20, p.name
    assert sum(p.stat().st_size for p in DATA.iterdir()) < 5 << 20


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_file_calibration(name):
    shape, ps, unit, tag = REAL[name]
    mi = read_microscope(DATA / name, _quiet=True)
    assert mi.data.shape == shape
    np.testing.assert_allclose(mi.pixel_size_nm[-2:], ps, rtol=1e-6)
    assert mi.units[-2:] == (unit, unit)
    assert mi.metadata["pixel_size_source"] == "file"
    assert mi.calibration_source.startswith("file: ")
    assert tag in mi.calibration_source
    assert name.split("_1.ser")[0].split(".")[0] in mi.calibration_source  # names the file


def test_non_square_pixels_kept_per_axis_in_frames():
    frames = list(iter_frames(DATA / "test_loading_image_saved_with_DM_stack.tif"))
    assert len(frames) == 2
    for fr in frames:
        np.testing.assert_allclose(fr.pixel_size_nm, (1686.7400407791138, 168.67400705814362), rtol=1e-6)
        assert "DigitalMicrograph" in fr.metadata["calibration_source"]


@pytest.mark.parametrize("name", UNCALIBRATED)
def test_real_uncalibrated_files(name):
    with pytest.raises(InputError, match="no valid pixel size.*--pixel-size.*--calibration"):
        read_microscope(DATA / name, _quiet=True)
    mi = read_microscope(DATA / name, pixel_size=0.5, pixel_size_source="--pixel-size", _quiet=True)
    assert mi.pixel_size_nm[-2:] == (0.5, 0.5)
    assert mi.calibration_source == "--pixel-size"
    assert mi.metadata["pixel_size_source"] == "user"


def test_real_diffraction_pattern():
    with pytest.raises(InputError, match="diffraction pattern.*1/nm"):
        read_microscope(DATA / "test_diffraction_pattern.dm3")
    mi = read_microscope(DATA / "test_diffraction_pattern.dm3", allow_reciprocal=True)
    assert mi.reciprocal
    np.testing.assert_allclose(mi.pixel_size_nm, (0.17443285882472992,) * 2, rtol=1e-6)


def test_override_records_the_file_value(caplog):
    mi = read_microscope(
        DATA / "test_STEM_image.dm3", pixel_size=(0.2, 0.3), pixel_size_source="--pixel-size"
    )
    assert mi.pixel_size_nm == (0.2, 0.3)
    assert mi.calibration_source == "--pixel-size"
    np.testing.assert_allclose(mi.metadata["file_pixel_size_nm"], (0.24853801727294922,) * 2, rtol=1e-6)
    assert "instead of the file's calibration" in caplog.text


# ------------------------------------------------------------------------------------------- calibration file
def _cal(tmp_path, **fields):
    obj = {"kind": "matsight.calibration", "pixel_size_nm": [0.0123, 0.0124], "shear": 0.0} | fields
    p = tmp_path / "cal.json"
    p.write_text(json.dumps(obj), encoding="utf-8")
    return p


def test_calibration_file_overrides(tmp_path):
    cal = _cal(tmp_path, source="Si [110] reference", note="Titan 620 kx")
    mi = read_microscope(DATA / "test_STEM_image.dm3", calibration=cal, _quiet=True)
    assert mi.pixel_size_nm == (0.0123, 0.0124)
    assert mi.calibration_source == f"calibration file {cal}"
    assert mi.metadata["pixel_size_source"] == "calibration"
    assert mi.metadata["calibration"]["source"] == "Si [110] reference"
    # an uncalibrated file is read with it too
    mi = read_microscope(DATA / "example_image.emd", calibration=cal, _quiet=True)
    assert mi.pixel_size_nm[-2:] == (0.0123, 0.0124)
    frames = list(iter_frames(DATA / "test_loading_image_saved_with_DM_stack.tif", calibration=cal))
    assert all(f.calibration_source == f"calibration file {cal}" for f in frames)


def test_calibration_file_roundtrip_and_scalar(tmp_path):
    p = write_calibration(tmp_path / "c.json", {"pixel_size_nm": 0.02, "source": "test"})
    obj = json.loads(p.read_text())
    assert obj == {"kind": "matsight.calibration", "pixel_size_nm": [0.02, 0.02], "shear": 0.0,
                   "source": "test", "note": ""}  # fmt: skip
    assert read_calibration(p) == Calibration(pixel_size_nm=(0.02, 0.02), source="test")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not readable JSON"),
        ('{"pixel_size_nm": [1, 1]}', "is not a calibration.*kind"),
        ('{"kind": "matsight.calibration", "pixel_size_nm": [0, 1]}', "pixel_size_nm.*positive"),
        ('{"kind": "matsight.calibration", "pixel_size_nm": [1, 2, 3]}', "pixel_size_nm"),
        ('{"kind": "matsight.calibration", "pixel_size_nm": [1, 1], "colour": 1}', "colour"),
    ],
)
def test_bad_calibration_files(tmp_path, content, match):
    p = tmp_path / "cal.json"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=match) as e:
        read_calibration(p)
    assert "\n" not in str(e.value)


def test_calibration_and_pixel_size_together_refused(tmp_path):
    with pytest.raises(InputError, match="either"):
        read_microscope(DATA / "test_STEM_image.dm3", pixel_size=0.1, calibration=_cal(tmp_path))
    with pytest.raises(InputError, match="does not exist"):
        read_microscope(DATA / "test_STEM_image.dm3", calibration=tmp_path / "none.json")


# ---------------------------------------------------------------------------------------- synthetic spellings
def _ncem_emd(path, units, scale):
    """A Berkeley EMD as ncempy writes it: dims with ``units`` attributes, no brackets."""
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs.update({"version_major": 0, "version_minor": 2})
        g = f.create_group("data/stem")
        g.attrs["emd_group_type"] = 1
        g.create_dataset("data", data=np.arange(64 * 48, dtype="float32").reshape(64, 48))
        for i, n in ((1, 64), (2, 48)):
            d = g.create_dataset(f"dim{i}", data=np.arange(n) * scale)
            d.attrs["name"], d.attrs["units"] = ("y", "x")[i - 1], units
    return path


@pytest.mark.parametrize(
    ("units", "scale", "nm"),
    [("n_m", 0.0122465, 0.0122465), ("[n_m]", 0.0122465, 0.0122465), ("Å", 0.122465, 0.0122465),
     ("A", 0.122465, 0.0122465), ("pm", 12.2465, 0.0122465), ("u_m", 1.22465e-5, 0.0122465)],
)  # fmt: skip
def test_ncem_emd_unit_spellings(tmp_path, units, scale, nm):
    """The #36 bug: "has no valid pixel size (scale 0.0122465 n_m)"."""
    mi = read_microscope(_ncem_emd(tmp_path / "stem.emd", units, scale), _quiet=True)
    np.testing.assert_allclose(mi.pixel_size_nm, (nm, nm), rtol=1e-6)
    assert "EMD dim1/dim2" in mi.calibration_source


def test_ome_tif_physical_size(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    p = tmp_path / "ome.ome.tif"
    meta = {"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeXUnit": "Å", "PhysicalSizeY": 0.06,
            "PhysicalSizeYUnit": "nm"}  # fmt: skip
    tifffile.imwrite(p, np.zeros((8, 10), "uint16"), ome=True, metadata=meta)
    mi = read_microscope(p)
    np.testing.assert_allclose(mi.pixel_size_nm, (0.06, 0.05), rtol=1e-6)
    assert "OME" in mi.calibration_source and "PhysicalSizeX" in mi.calibration_source


def test_imagej_tif_angstrom_escape(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, np.zeros((8, 8), "uint8"), imagej=True, resolution=(1 / 1.5, 1 / 2.5),
                     metadata={"unit": "\\u00C5"})  # fmt: skip
    mi = read_microscope(p)
    np.testing.assert_allclose(mi.pixel_size_nm, (0.25, 0.15), rtol=1e-6)
    assert "ImageJ" in mi.calibration_source


def test_fei_sfeg_tif(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    p = tmp_path / "sfeg.tif"
    text = "[User]\nDate=01/01/2024\n[Scan]\nPixelWidth=1.234e-10\nPixelHeight=1.234e-10\n"
    tifffile.imwrite(p, np.zeros((8, 8), "uint8"), extratags=[(34680, "s", 0, text, True)])
    mi = read_microscope(p)
    np.testing.assert_allclose(mi.pixel_size_nm, (0.1234, 0.1234), rtol=1e-6)
    assert "FEI_SFEG Scan/PixelWidth" in mi.calibration_source


def test_velox_pixel_size_tag_when_axes_lost_it():
    """A Velox signal whose axes carry no unit still has BinaryResult/PixelSize (in m) in its own metadata."""
    from matsight.io.microscope import _signal_to_image

    sig = {
        "data": np.zeros((4, 6), "float32"),
        "axes": [{"name": "y", "size": 4, "scale": 1.0, "units": ""}, {"name": "x", "size": 6, "scale": 1.0}],
        "metadata": {},
        "original_metadata": {
            "BinaryResult": {
                "PixelSize": {"width": "1.22465e-11", "height": "2.4493e-11"},
                "PixelUnitX": "m",
                "PixelUnitY": "m",
            }
        },
    }
    mi = _signal_to_image(
        sig, Path("velox.emd"), "emd", 0, 1, pixel_size=None, allow_reciprocal=False, lazy=False, quiet=True
    )
    np.testing.assert_allclose(mi.pixel_size_nm, (0.024493, 0.0122465), rtol=1e-9)
    assert "Velox BinaryResult/PixelSize" in mi.calibration_source


def test_io_exports_calibration():
    import matsight.io as mio

    assert mio.read_calibration is read_calibration and mio.Calibration is Calibration

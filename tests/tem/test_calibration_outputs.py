"""#36: `tem analyze`/`tem series` print and store the pixel size used per axis and where it came from
(file tag, --pixel-size, --calibration file); a non-square pixel is kept per axis."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight.tem import lattice
from matsight.tem.frames import calibration_line

pytest.importorskip("rsciio")


@pytest.fixture(scope="module")
def frame():
    return lattice.two_phase_image((256, 256), 0.02, seed=0).image.astype(np.float32)  # Li and LiF at 0.02 nm


def _imagej_tif(path, image, py, px, unit="nm"):
    import tifffile

    tifffile.imwrite(path, image, imagej=True, resolution=(1 / px, 1 / py), metadata={"unit": unit})
    return path


def _cal(path, ps, source="Si reference"):
    path.write_text(json.dumps({"kind": "matsight.calibration", "pixel_size_nm": list(ps), "source": source}))
    return path


def _run(*args):
    from matsight.cli import app

    return CliRunner().invoke(app, ["tem", *map(str, args)])


def test_calibration_line():
    line = calibration_line((0.0122465, 0.0122465), "file: Velox BinaryResult/PixelSize (a.emd)")
    assert (
        line
        == "calibration: 0.012247 nm/px (x), 0.012247 (y) from file tag Velox BinaryResult/PixelSize (a.emd)"
    )
    assert calibration_line((0.02, 0.03), "--pixel-size").endswith(
        "0.03 nm/px (x), 0.02 (y) from --pixel-size"
    )


def test_analyze_records_file_tag(tmp_path, frame):
    # 0.2 Å = 0.02 nm, Å escaped as ImageJ writes it
    src = _imagej_tif(tmp_path / "f.tif", frame, 0.2, 0.2, unit="\\u00C5")
    out = tmp_path / "out"
    r = _run("analyze", src, "--phases", "Li,LiF", "--no-maps", "-o", out)
    assert r.exit_code == 0, r.output
    assert "calibration: 0.02 nm/px (x), 0.02 (y) from file tag ImageJ XResolution/YResolution" in r.output
    meta = json.loads((out / "spots.json").read_text())
    assert meta["calibration"]["pixel_size_nm"] == pytest.approx({"y": 0.02, "x": 0.02}, rel=1e-6)
    assert meta["calibration"]["source"].startswith("file: ImageJ")
    assert meta["summary"]["pixel size source"].startswith("file: ImageJ")
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "pixel size source" in html and "ImageJ XResolution" in html
    assert "LiF" in meta["summary"]["phases found"]


def test_pixel_size_option_and_calibration_file(tmp_path, frame):
    src = _imagej_tif(tmp_path / "f.tif", frame, 0.05, 0.05)
    r = _run("analyze", src, "--pixel-size", "0.02", "--phases", "Li,LiF", "--no-maps", "-o", tmp_path / "a")
    assert r.exit_code == 0, r.output
    assert "calibration: 0.02 nm/px (x), 0.02 (y) from --pixel-size" in r.output
    assert json.loads((tmp_path / "a" / "spots.json").read_text())["calibration"]["source"] == "--pixel-size"

    cal = _cal(tmp_path / "cal.json", [0.02, 0.02])
    r = _run("analyze", src, "--calibration", cal, "--phases", "Li,LiF", "--no-maps", "-o", tmp_path / "b")
    assert r.exit_code == 0, r.output
    assert f"from calibration file {cal}" in r.output
    meta = json.loads((tmp_path / "b" / "spots.json").read_text())
    assert meta["calibration"]["source"] == f"calibration file {cal}"
    # the calibration file's 0.02 nm was used, not the tif's 0.05 nm (with which neither phase is found)
    assert "LiF" in meta["summary"]["phases found"]


def test_calibration_option_errors(tmp_path, frame):
    src = _imagej_tif(tmp_path / "f.tif", frame, 0.02, 0.02)
    cal = _cal(tmp_path / "cal.json", [0.02, 0.02])
    r = _run("analyze", src, "--calibration", cal, "--pixel-size", "0.02", "-o", tmp_path / "o")
    assert r.exit_code != 0 and "either --pixel-size or --calibration" in r.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "matsight.calibration", "pixel_size_nm": [-1, 1]}')
    r = _run("series", src, "--calibration", bad, "-o", tmp_path / "o2")
    assert r.exit_code != 0 and "positive" in r.output
    assert not (tmp_path / "o2").exists()


def test_non_square_pixels_passed_per_axis(tmp_path, frame):
    """The FFT takes (py, px): a frame stretched along x with px = py/2 still gives the lattice's d."""
    from matsight.tem import analyze_file

    stretched = np.repeat(frame, 2, axis=1)  # x sampled twice as finely: px = 0.01 nm, py = 0.02 nm
    src = _imagej_tif(tmp_path / "s.tif", stretched, 0.02, 0.01)
    res, img = analyze_file(src, phases=["Li", "LiF"], maps=False)
    assert img.shape == (256, 512)
    assert res.pixel_size_nm == pytest.approx((0.02, 0.01), rel=1e-6)
    assert res.calibration()["pixel_size_nm"] == pytest.approx({"y": 0.02, "x": 0.01}, rel=1e-6)
    ref, _ = analyze_file(
        _imagej_tif(tmp_path / "q.tif", frame, 0.02, 0.02), phases=["Li", "LiF"], maps=False
    )
    assert set(res.phases_found) == set(ref.phases_found) == {"Li", "LiF"}


def test_series_records_calibration(tmp_path, frame):
    src = tmp_path / "stack.tif"
    import tifffile

    tifffile.imwrite(src, np.stack([frame, frame]), imagej=True, resolution=(50, 50), metadata={"unit": "nm"})
    out = tmp_path / "s"
    r = _run("series", src, "--phases", "Li,LiF", "-o", out)
    assert r.exit_code == 0, r.output
    assert "calibration: 0.02 nm/px (x), 0.02 (y) from file tag ImageJ" in r.output
    meta = json.loads((out / "series.json").read_text())
    assert meta["calibration"]["pixel_size_nm"] == pytest.approx({"y": 0.02, "x": 0.02}, rel=1e-6)
    assert meta["calibration"]["source"].startswith("file: ImageJ")
    assert "pixel size source" in (out / "index.html").read_text(encoding="utf-8")

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight.tem import analyze, lattice
from matsight.tem.report import write_analysis


def test_write_analysis_outputs(tmp_path):
    li = lattice.two_phase_image((192, 192), 0.02, seed=1, dose=1500)
    res = analyze(li.image, 0.02, ["Li", "LiF"])
    html = write_analysis(res, li.image, tmp_path, source="synthetic")
    assert html.name == "index.html"
    for name in ("spots.csv", "spots.json", "fft_spots.png", "phase_map.png", "phase_labels.tif"):
        assert (tmp_path / name).stat().st_size > 0, name
    meta = json.loads((tmp_path / "spots.json").read_text())
    assert len(meta["spots"]) == len(res.spots)
    assert {"phase", "hkl", "d_angstrom", "intensity"} <= set(meta["spots"][0])
    import tifffile

    lab = tifffile.imread(tmp_path / "phase_labels.tif")
    assert lab.shape == (192, 192) and lab.max() <= len(res.maps.phase_names)


def _io_ready():
    try:
        from matsight.io import read_microscope  # noqa: F401
    except ImportError:
        return False
    return True


needs_io = pytest.mark.skipif(not _io_ready(), reason="matsight.io.read_microscope not available yet")


@needs_io
def test_cli_analyze_tif(tmp_path):
    import tifffile

    from matsight.cli import app

    li = lattice.two_phase_image((192, 192), 0.02, seed=1, dose=1500)
    src = tmp_path / "frame.tif"
    tifffile.imwrite(src, li.image.astype(np.float32))
    out = tmp_path / "out"
    r = CliRunner().invoke(
        app, ["tem", "analyze", str(src), "--pixel-size", "0.02", "--phases", "Li,LiF", "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    assert (out / "index.html").exists() and "phases found" in r.output


@needs_io
def test_cli_errors(tmp_path, shared_data):
    from matsight.cli import app

    r = CliRunner().invoke(
        app,
        [
            "tem",
            "analyze",
            str(shared_data / "tem" / "test_diffraction_pattern.dm3"),
            "-o",
            str(tmp_path / "a"),
        ],
    )
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "a").exists()
    r = CliRunner().invoke(
        app,
        ["tem", "analyze", str(shared_data / "tem" / "ROI_Random_Scan_movie.mrc"), "-o", str(tmp_path / "b")],
    )
    assert r.exit_code == 2 and "pixel" in r.output.lower()
    r = CliRunner().invoke(app, ["tem", "analyze", "x.dm3", "--pixel-size", "-1", "-o", str(tmp_path / "c")])
    assert r.exit_code == 2


def test_cli_help():
    from matsight.cli import app

    r = CliRunner().invoke(app, ["tem", "--help"])
    assert r.exit_code == 0
    for cmd in ("analyze", "series", "train-detector"):
        assert cmd in r.output


@needs_io
def test_cli_analyze_unet_detector(tmp_path):
    import tifffile

    from matsight.cli import app
    from matsight.tem.detector import DEFAULT_WEIGHTS

    li = lattice.two_phase_image((192, 192), 0.02, seed=1, dose=1500)
    src = tmp_path / "frame.tif"
    tifffile.imwrite(src, li.image.astype(np.float32))
    args = ["tem", "analyze", str(src), "--pixel-size", "0.02", "--phases", "Li,LiF", "--detector", "unet"]
    r = CliRunner().invoke(app, [*args, "--weights", str(DEFAULT_WEIGHTS), "-o", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "unet" in r.output and (tmp_path / "o" / "spots.csv").exists()
    r = CliRunner().invoke(
        app, [*args, "--weights", str(tmp_path / "none.safetensors"), "-o", str(tmp_path / "p")]
    )
    assert r.exit_code == 2 and "weights not found" in r.output


def test_cli_train_detector_bad_setting_is_one_line(tmp_path):
    from matsight.cli import app

    out = tmp_path / "w.safetensors"
    args = ["tem", "train-detector", "--n-train", "4", "--size", "32", "--out", str(out)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "Traceback" not in r.output
    line = r.output.strip()
    assert "\n" not in line and "n_train" in line and "size" in line
    assert not out.exists()

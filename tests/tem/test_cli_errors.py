"""User mistakes in `matsight tem` give one `error:` line, exit code 2 and no output (house rules)."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight import InputError
from matsight.cli import app
from matsight.tem import crystals, lattice

DOCS = Path(__file__).resolve().parents[2] / "docs" / "howto" / "tem-frame.md"

SRTIO3_YAML = """\
name: SrTiO3
space_group: P m -3 m
cell: {a: 3.905}
atoms:
  - {element: Sr, xyz: [0, 0, 0]}
  - {element: Ti, xyz: [0.5, 0.5, 0.5]}
  - {element: O, xyz: [0.5, 0.5, 0]}
"""


def _run(*args):
    return CliRunner().invoke(app, ["tem", *map(str, args)])


@pytest.fixture(scope="module")
def frame_tif(tmp_path_factory):
    import tifffile

    li = lattice.two_phase_image((128, 128), 0.02, seed=1, dose=1500)
    path = tmp_path_factory.mktemp("frame") / "frame.tif"
    tifffile.imwrite(path, li.image.astype(np.float32))
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command starts reading or analysing before refusing its options."""

    def boom(*a, **k):
        raise AssertionError("the command did work before checking its options")

    monkeypatch.setattr("matsight.tem.analyze_file", boom)
    monkeypatch.setattr(sys.modules["matsight.tem.predict"], "analyze_series_file", boom)
    monkeypatch.setattr("matsight.tem.train", boom)


# ------------------------------------------------------------------------------------- 1. output paths
def test_out_existing_file_refused_before_work(tmp_path, frame_tif, no_work, one_error_line):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    one_error_line(_run("analyze", frame_tif, "--pixel-size", "0.02", "--out", taken), "--out", "file")
    one_error_line(_run("series", frame_tif, "--pixel-size", "0.02", "--out", taken), "--out", "file")
    r = _run("train-detector", "--out", taken / "w.safetensors", "--evaluate", "0")
    one_error_line(r, "--out", "is a file")
    assert taken.read_text() == "mine"


# ------------------------------------------------------------------------------------------ 2. d range
@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--d-min", "0"], "--d-min"),
        (["--d-max", "0"], "--d-max"),
        (["--d-min", "nan"], "--d-min"),
        (["--d-min", "-1"], "--d-min"),
        (["--d-max", "-5"], "--d-max"),
        (["--d-min", "inf"], "--d-min"),
        (["--d-min", "20", "--d-max", "10"], "--d-max"),
    ],
)
def test_analyze_refuses_bad_d_range(tmp_path, frame_tif, no_work, args, option, one_error_line):
    out = tmp_path / "o"
    one_error_line(_run("analyze", frame_tif, "--pixel-size", "0.02", "-o", out, *args), option, "Å")
    assert not out.exists()


def test_spot_detectors_refuse_bad_d_range():
    from matsight.tem.spots import detect_spots

    img = np.random.default_rng(0).random((64, 64))
    for d_min, d_max in ((0, 15), (1, 0), (float("nan"), 15), (5, 2)):
        with pytest.raises(InputError, match="--d-m"):
            detect_spots(img, 0.02, d_min=d_min, d_max=d_max)


# --------------------------------------------------------------------------------------- 3. phase YAML
_ATOM = "atoms: [{element: Sr, xyz: [0, 0, 0]}]\n"
_HEAD = "name: X\nspace_group: P m -3 m\n"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (_HEAD + "cell: {a: abc}\n" + _ATOM, "cell.a"),
        (_HEAD + "cell: 3.905\n" + _ATOM, "cell"),
        (_HEAD + "cell: {a: 3.9, q: 1}\n" + _ATOM, "cell"),
        (_HEAD + "cell: {a: .nan}\n" + _ATOM, "cell.a"),
        (_HEAD + "cell: {a: 3.9}\natoms:\n", "atoms"),
        (_HEAD + "cell: {a: 3.9}\natoms: 5\n", "atoms"),
        (_HEAD + "cell: {a: 3.9}\natoms: [5]\n", "atom 1"),
        (_HEAD + "cell: {a: 3.9}\natoms: [{element: Sr, xyz: [a, 0, 0]}]\n", "xyz"),
        (_HEAD + "cell: {a: 3.9}\natoms: [{element: Sr, xyz: 0}]\n", "xyz"),
        (_HEAD + "cell: {a: 3.9}\natoms: [{element: Sr, xyz: [0, 0, 0], occupancy: abc}]\n", "occupancy"),
        (_HEAD + "cell: {a: 3.9}\natoms: [{element: Sr, xyz: [0, 0, 0], occupancy: 2}]\n", "occupancy"),
        (_HEAD + "cell: {a: 3.9}\natoms: [{element: [Sr], xyz: [0, 0, 0]}]\n", "element"),
        ("name: [X]\nspace_group: P 1\ncell: {a: 3.9}\n" + _ATOM, "name"),
        ("name: X\nspace_group: Q 9\ncell: {a: 3.9}\n" + _ATOM, "space group"),
        ("", "mapping"),
        ("- a\n- b\n", "mapping"),
        ("name: X\n  bad: [indent\n", "cannot parse"),
    ],
)
def test_malformed_phase_yaml_is_one_line(tmp_path, frame_tif, no_work, text, field, one_error_line):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=re.escape(field)) as err:
        crystals.load_phase_file(bad)
    assert "bad.yaml" in str(err.value)
    r = _run("analyze", frame_tif, "--pixel-size", "0.02", "--phase-file", bad, "-o", tmp_path / "o")
    one_error_line(r, "bad.yaml", field)
    assert not (tmp_path / "o").exists()


def test_non_utf8_phase_file(tmp_path, frame_tif, no_work, one_error_line):
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"name: X\nspace_group: P 1\ncell: {a: 3.9\xff}\n" + _ATOM.encode())
    r = _run("analyze", frame_tif, "--pixel-size", "0.02", "--phase-file", bad, "-o", tmp_path / "o")
    one_error_line(r, "latin.yaml", "UTF-8")


# ---------------------------------------------------------------------------------------- 4. scheduler
def test_series_unreachable_scheduler(tmp_path, frame_tif, monkeypatch, one_error_line):
    pytest.importorskip("distributed")
    monkeypatch.setattr("matsight.tem.series.CONNECT_TIMEOUT_S", 1)
    out = tmp_path / "s"
    r = _run("series", frame_tif, "--pixel-size", "0.02", "--scheduler", "tcp://127.0.0.1:1", "-o", out)
    one_error_line(r, "cannot reach the dask scheduler tcp://127.0.0.1:1; check the address")
    assert not out.exists()


# ------------------------------------------------------------------------------------ 5. option ranges
@pytest.mark.parametrize(
    ("command", "args", "option"),
    [
        ("analyze", ["--angle-tolerance", "0"], "--angle-tolerance"),
        ("analyze", ["--angle-tolerance", "-3"], "--angle-tolerance"),
        ("analyze", ["--angle-tolerance", "91"], "--angle-tolerance"),
        ("analyze", ["--min-intensity", "1"], "--min-intensity"),
        ("analyze", ["--min-intensity", "-0.1"], "--min-intensity"),
        ("analyze", ["--min-intensity", "nan"], "--min-intensity"),
        ("analyze", ["--tolerance", "nan"], "--tolerance"),
        ("series", ["--angle-tolerance", "0"], "--angle-tolerance"),
        ("series", ["--frame-time", "nan"], "--frame-time"),
        ("series", ["--frame-time", "0"], "--frame-time"),
        ("series", ["--frame-time", "-2"], "--frame-time"),
        ("series", ["--workers", "0"], "--workers"),
        ("series", ["--workers", "-1", "--scheduler", "threads"], "--workers"),
        ("series", ["--scheduler", "cluster"], "scheduler"),
    ],
)
def test_out_of_range_options(tmp_path, frame_tif, no_work, command, args, option, one_error_line):
    out = tmp_path / "o"
    one_error_line(_run(command, frame_tif, "--pixel-size", "0.02", "-o", out, *args), option)
    assert not out.exists()


def test_library_refuses_out_of_range_settings():
    from matsight.tem import analyze, analyze_series

    img = np.zeros((64, 64))
    with pytest.raises(InputError, match="--angle-tolerance"):
        analyze(img, 0.02, angle_tolerance=0)
    with pytest.raises(InputError, match="--min-intensity"):
        analyze(img, 0.02, min_intensity=1.5)
    with pytest.raises(InputError, match="--frame-time"):
        analyze_series(np.zeros((1, 64, 64)), 0.02, frame_time=float("nan"))
    with pytest.raises(InputError, match="--workers"):
        analyze_series(np.zeros((1, 64, 64)), 0.02, scheduler="threads", workers=0)


# ------------------------------------------------------------------------------- 6. --frame, --weights
def test_frame_on_single_image_and_weights_without_unet(tmp_path, frame_tif, one_error_line):
    out = tmp_path / "o"
    r = _run("analyze", frame_tif, "--pixel-size", "0.02", "--frame", "3", "-o", out)
    one_error_line(r, "--frame 3", "one frame")
    r = _run("analyze", frame_tif, "--pixel-size", "0.02", "--weights", tmp_path / "w.safetensors", "-o", out)
    one_error_line(r, "--weights needs --detector unet")
    r = _run("series", frame_tif, "--pixel-size", "0.02", "--weights", tmp_path / "w.safetensors", "-o", out)
    one_error_line(r, "--weights needs --detector unet")
    assert not out.exists()


# ------------------------------------------------------------------------------- 7. missing phase file
def test_missing_phase_file(tmp_path, frame_tif, no_work, one_error_line):
    r = _run("analyze", frame_tif, "--phase-file", tmp_path / "nonexist.yaml", "-o", tmp_path / "o")
    text = one_error_line(r, "nonexist.yaml", "not found")
    assert "unknown phase" not in text
    with pytest.raises(InputError, match="not found"):
        crystals.load_phase("nonexist.yaml")


# --------------------------------------------------------------------------------------- 8. file types
def test_unsupported_file_lists_what_is_read(tmp_path, one_error_line):
    from matsight.tem.frames import frame_suffixes

    bad = tmp_path / "bad.txt"
    bad.write_text("hello")
    text = one_error_line(_run("analyze", bad, "--pixel-size", "0.02", "-o", tmp_path / "o"), "'.txt'")
    for suffix in (".npy", ".jpg", ".png", ".tif", ".dm4", ".emi"):
        assert suffix in text and suffix in frame_suffixes()


def test_series_reads_a_folder_of_png_frames(tmp_path):
    import imageio.v3 as iio

    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        im = lattice.two_phase_image((128, 128), 0.02, seed=i, dose=1500).image
        iio.imwrite(frames / f"f{i}.png", (255 * (im - im.min()) / np.ptp(im)).astype(np.uint8))
    (frames / "notes.txt").write_text("not a frame")
    out = tmp_path / "s"
    r = _run("series", frames, "--pixel-size", "0.02", "-o", out)
    assert r.exit_code == 0, r.output
    rows = (out / "series.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[1].startswith("f0.png:0")


# ------------------------------------------------------------------------------------ 9. user LiF.yaml
def test_user_phase_with_shipped_name_replaces_it(tmp_path, frame_tif):
    lif = tmp_path / "LiF.yaml"
    lif.write_text(
        "name: LiF\nspace_group: F m -3 m\ncell: {a: 4.03}\n"
        "atoms: [{element: Li, xyz: [0, 0, 0]}, {element: F, xyz: [0.5, 0.5, 0.5]}]\n"
    )
    out = tmp_path / "o"
    r = _run("analyze", frame_tif, "--pixel-size", "0.02", "--phase-file", lif, "-o", out, "--no-maps")
    assert r.exit_code == 0, r.output
    phases = json.loads((out / "spots.json").read_text())["phases"]
    assert sorted(p["name"] for p in phases) == crystals.builtin_phase_names()
    assert next(p for p in phases if p["name"] == "LiF")["cell"]["a"] == pytest.approx(4.03)
    # two user files of one name: the error names the fix
    other = tmp_path / "other.yaml"
    other.write_text(lif.read_text())
    with pytest.raises(InputError, match="give each phase once"):
        crystals.select_phases(None, [lif, other])


# ------------------------------------------------------------------------------------------ 10. stacks
def test_stack_messages_name_the_option(tmp_path, one_error_line):
    rgb = tmp_path / "rgb.npy"
    np.save(rgb, np.random.default_rng(0).random((64, 64, 3)).astype(np.float32))
    text = one_error_line(_run("analyze", rgb, "--pixel-size", "0.02", "-o", tmp_path / "o"), "colour")
    assert "64 frames" not in text
    stack = tmp_path / "stack.npy"
    np.save(stack, np.random.default_rng(0).random((3, 64, 64)).astype(np.float32))
    r = _run("analyze", stack, "--pixel-size", "0.02", "-o", tmp_path / "o")
    one_error_line(r, "3 frames", "--frame")
    r = _run("analyze", stack, "--pixel-size", "0.02", "--frame", "5", "-o", tmp_path / "o")
    one_error_line(r, "--frame 5", "3 frames")
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------- 11. --phases + file
def test_phase_file_names_are_selectable(tmp_path):
    sto = tmp_path / "SrTiO3.yaml"
    sto.write_text(SRTIO3_YAML)
    assert [p.name for p in crystals.select_phases("SrTiO3", [sto])] == ["SrTiO3"]
    assert [p.name for p in crystals.select_phases("Li,srtio3", [sto])] == ["Li", "SrTiO3"]
    assert [p.name for p in crystals.select_phases("Li", [sto])] == ["Li", "SrTiO3"]
    shipped = crystals.builtin_phase_names()
    assert [p.name for p in crystals.select_phases(None, [sto])] == [*shipped, "SrTiO3"]
    with pytest.raises(InputError, match="unknown phase 'SrTiO3'"):
        crystals.select_phases("SrTiO3", [])


def _documented_sto_example():
    text = DOCS.read_text(encoding="utf-8")
    yaml_text = re.search(r"```yaml\n(# SrTiO3\.yaml.*?)```", text, re.S).group(1)
    cmd = re.search(r"`matsight tem analyze 16_STOimage\.emi ([^`]*)`", text).group(1)
    return yaml_text, cmd.split()


def test_docs_srtio3_example_finds_srtio3_only(tmp_path, shared_data, monkeypatch):
    yaml_text, args = _documented_sto_example()
    assert "--phase-file" in args  # the file alone: its phase must win over the built-in ones on evidence
    monkeypatch.chdir(tmp_path)
    Path("SrTiO3.yaml").write_text(yaml_text, encoding="utf-8")
    r = _run("analyze", shared_data / "tem" / "16_STOimage.emi", *args, "-o", "sto", "--no-maps")
    assert r.exit_code == 0, r.output
    found = re.search(r"phases found\s+(.*)", r.output).group(1).strip()
    assert found == "SrTiO3"


# ----------------------------------------------------------------------------------- 12. stale outputs
def test_rerun_removes_stale_outputs_keeps_user_files(tmp_path, frame_tif):
    out = tmp_path / "o"
    args = ["analyze", frame_tif, "--pixel-size", "0.02", "--phases", "Li,LiF", "-o", out]
    assert _run(*args).exit_code == 0
    assert (out / "phase_labels.tif").exists() and (out / "phase_map.png").exists()
    (out / "notes.txt").write_text("mine")
    r = _run(*args, "--no-maps")
    assert r.exit_code == 0, r.output
    assert not (out / "phase_labels.tif").exists() and not (out / "phase_map.png").exists()
    assert (out / "notes.txt").read_text() == "mine" and (out / "spots.csv").exists()
    assert "phase_map" not in (out / "index.html").read_text()

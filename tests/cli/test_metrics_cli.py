import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from matsight.cli import app
from matsight.data.microstructures import particle_electrode

runner = CliRunner()


def test_metrics_on_nmc_lr_gives_paper_volume_fractions_and_finite_tau(shared_data, tmp_path):
    out = tmp_path / "out.json"
    res = runner.invoke(
        app, ["metrics", str(shared_data / "superres" / "nmc_lr.tif"), "--json", str(out), "--axis", "0"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["volume_fraction"] == {
        "0": pytest.approx(0.580, abs=5e-4),
        "1": pytest.approx(0.420, abs=5e-4),
    }
    for phase in ("0", "1"):
        tau = data["tortuosity"][phase]["0"]["tau"]
        assert tau is not None and 1 < tau < 20
    assert "VF 0.5797" in res.output and "τ[0]" in res.output


def test_metrics_writes_json_and_report_for_a_three_phase_volume(tmp_path):
    vol = tmp_path / "electrode.npy"
    np.save(vol, particle_electrode((32, 32, 32), radius=4, seed=0))
    out, plots = tmp_path / "m.json", tmp_path / "plots"
    args = ["metrics", str(vol), "--json", str(out), "--plot", str(plots), "--spacing", "2"]
    res = runner.invoke(
        app, args + ["--axis", "1", "--subvolumes", "5", "--subvolume-size", "16", "--subvolume-tau"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert data["unit"] == "spacing units" and data["spacing"] == [2.0, 2.0, 2.0]
    assert set(data["tortuosity"]["1"]) == {"1"} and data["triple_phase_boundary"] > 0
    assert len(data["subvolumes"]["triple_phase_boundary"]) == 5
    assert len(data["subvolumes"]["transport_efficiency"]["0"]) == 5
    pngs = {p.name for p in plots.glob("*.png")}
    assert {
        "volume_fractions.png",
        "two_point_correlation.png",
        "chord_lengths.png",
        "subvolume_violins.png",
    } <= pngs
    assert "TPB density" in (plots / "index.html").read_text()


@pytest.mark.parametrize("case", ["float", "1d", "missing", "spacing"])
def test_metrics_user_errors_are_one_line_exit_2(case, tmp_path, rng):
    path = tmp_path / "vol.npy"
    extra = []
    if case == "float":
        np.save(path, rng.random((16, 16, 16)).astype(np.float32))
    elif case == "1d":
        np.save(path, np.arange(100, dtype=np.uint8) % 2)
    elif case == "spacing":
        np.save(path, np.zeros((8, 8, 8), dtype=np.uint8))
        extra = ["--spacing", "1,2"]
    out = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "matsight", "metrics", str(path), "--json", str(out), *extra],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert not out.exists()
    if case == "float":
        assert "distinct" in lines[0] and "segment" in lines[0]


def test_one_slice_npy_is_a_2d_image(tmp_path):
    # a (1, Y, X) .npy is read as the tif reader reads it: one 2D image, not a volume one voxel thick
    img = np.zeros((16, 16), dtype=np.uint8)
    img[4:8, 4:8] = 1
    img[10:14, 9:13] = 1
    np.save(tmp_path / "flat.npy", img)
    np.save(tmp_path / "one.npy", img[None])
    out = {}
    for name in ("flat", "one"):
        res = runner.invoke(
            app, ["metrics", str(tmp_path / f"{name}.npy"), "--json", str(tmp_path / f"{name}.json")]
        )
        assert res.exit_code == 0, res.output
        out[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert out["one"]["euler_density"] == out["flat"]["euler_density"]
    assert out["one"]["euler_density"]["1"] > 0
    assert set(out["one"]["tortuosity"]["1"]) == {"0", "1"}


def test_bad_output_paths_are_refused_before_the_work(tmp_path):
    vol = tmp_path / "v.npy"
    np.save(vol, particle_electrode((16, 16, 16), radius=3, seed=0))
    (tmp_path / "afile").write_text("x")
    for args, message in [
        (["--json", str(tmp_path / "j.json"), "--plot", str(tmp_path / "afile")], "is a file; give a folder"),
        (["--json", str(tmp_path)], "is a folder"),
        (["--json", str(vol)], "also an input"),
    ]:
        res = runner.invoke(app, ["metrics", str(vol), *args])
        assert res.exit_code == 2 and message in res.output and "phase 0" not in res.output, res.output
    assert not (tmp_path / "j.json").exists()


@pytest.mark.parametrize("spacing", ["inf", "1,inf,1"])
def test_metrics_non_finite_spacing_names_the_option(tmp_path, spacing):
    p = tmp_path / "l.npy"
    np.save(p, np.zeros((4, 5, 6), np.uint8))
    res = runner.invoke(app, ["metrics", str(p), "--spacing", spacing, "--no-tortuosity"])
    assert res.exit_code == 2
    assert "--spacing must be positive numbers" in res.output

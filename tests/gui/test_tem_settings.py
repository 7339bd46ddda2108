"""The tem page's calibration, added phases and saved settings; the fuse run's status (issues #36, #37)."""

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from .test_server import _get, _post

FOO_YAML = """name: Foo
space_group: P m -3 m
cell: {a: 4.1}
atoms:
  - {element: Sr, xyz: [0, 0, 0]}
  - {element: O, xyz: [0.5, 0.5, 0]}
"""


@pytest.fixture
def tem_root(tmp_path):
    import tifffile

    from matsight.tem import lattice

    d = tmp_path / "data"
    (d / "phases").mkdir(parents=True)
    li = lattice.two_phase_image((192, 192), 0.02, seed=1, dose=1500)
    tifffile.imwrite(d / "frame.tif", li.image.astype(np.float32))
    cal = {"kind": "matsight.calibration", "pixel_size_nm": [0.02, 0.02], "source": "Si [110] reference"}
    (d / "cal.json").write_text(json.dumps(cal))
    shutil.copy(Path(__file__).parents[1] / "tem" / "data" / "SrTiO3.yaml", d / "phases" / "SrTiO3.yaml")
    return d


def _job(url, body, path="/api/tem/analyze"):
    status, job = _post(url + path, body)
    assert status == 200, job
    t0 = time.monotonic()
    while job["state"] not in ("done", "failed", "stopped"):
        assert time.monotonic() - t0 < 120, job
        time.sleep(0.1)
        job = json.loads(_get(f"{url}/api/jobs/{job['id']}")[2])
    assert job["state"] == "done", job
    return job


def test_calibration_file_picked_is_the_results_source(tem_root, gui_server):
    with gui_server(tem_root) as (url, _):
        body = {"path": "frame.tif", "calibration": "cal.json", "phases": ["Li", "LiF"]}
        res = _job(url, body)["result"]
        assert "calibration file" in res["calibration"]["source"]
        assert "cal.json" in res["calibration"]["source"]
        assert res["calibration"]["pixel_size_nm"] == {"y": 0.02, "x": 0.02}
        assert res["calibration_line"].startswith("calibration: 0.02 nm/px (x)")
        assert "cal.json" in res["calibration_line"]
        # the typed pixel size instead: its source says so
        res = _job(url, {"path": "frame.tif", "pixel_size": "0.02", "phases": ["Li"]})["result"]
        assert res["calibration"]["source"] == "the pixel size field"
        # the file shows the calibration's pixel size and source when opened
        status, _, raw = _get(f"{url}/api/tem/open?path=frame.tif&calibration=cal.json")
        assert status == 200 and "cal.json" in json.loads(raw)["calibration_line"]
        # both at once is a one-line message, nothing queued
        status, out = _post(url + "/api/tem/analyze", {**body, "pixel_size": "0.02"})
        assert status == 400 and "either a pixel size or a calibration file" in out["error"]


def test_added_phases_are_listed_and_toggled(tem_root, gui_server):
    with gui_server(tem_root) as (url, _):
        status, out = _post(
            url + "/api/tem/phases", {"phase_files": ["phases/SrTiO3.yaml"], "phase_yaml": FOO_YAML}
        )
        assert status == 200, out
        added = {p["name"]: p["file"] for p in out["added"]}
        assert added == {"SrTiO3": "phases/SrTiO3.yaml", "Foo": "phase entry (YAML box)"}
        assert {"Li", "LiF"} <= {p["name"] for p in out["builtin"]}
        status, out = _post(url + "/api/tem/phases", {"phase_yaml": "name: [unclosed"})
        assert status == 400 and "YAML" in out["error"]

        body = {"path": "frame.tif", "pixel_size": "0.02", "phases": ["Li", "LiF"], "phase_yaml": FOO_YAML}
        on = _job(url, body)["result"]
        off = _job(url, {**body, "phases_off": ["Foo"]})["result"]
        assert "Foo" in [p["name"] for p in on["phases"]]
        assert "Foo" not in [p["name"] for p in off["phases"]]
        status, out = _post(
            url + "/api/tem/analyze", {**body, "phases": [], "phases_off": ["Foo"]}
        )  # nothing left ticked: the job fails with one line
        assert status == 200
        job = out
        while job["state"] not in ("done", "failed"):
            time.sleep(0.1)
            job = json.loads(_get(f"{url}/api/jobs/{job['id']}")[2])
        assert job["state"] == "failed" and "no phase is ticked" in job["error"]


def test_saved_folder_records_the_full_settings(tem_root, gui_server):
    with gui_server(tem_root) as (url, _):
        body = {
            "path": "frame.tif",
            "calibration": "cal.json",
            "phases": ["Li", "LiF"],
            "phase_files": ["phases/SrTiO3.yaml"],
            "phase_yaml": FOO_YAML,
            "phases_off": ["Foo"],
            "tolerance": "0.03",
            "angle_tolerance": "3",
            "detector": "classical",
        }
        job = _job(url, body)
        saved = _job(url, {"run": "runs/a"}, f"/api/tem/{job['id']}/save")
        assert saved["run_dir"] == "runs/a"
        meta = json.loads((tem_root / "runs" / "a" / "spots.json").read_text())
        st = meta["settings"]
        assert st["tolerance"] == 0.03 and st["angle_tolerance"] == 3.0 and st["detector"] == "classical"
        assert st["calibration_file"] == "cal.json" and "cal.json" in st["calibration"]["source"]
        assert st["calibration"]["pixel_size_nm"] == {"y": 0.02, "x": 0.02}
        phases = {p["name"]: p["file"] for p in st["phases"]}
        assert phases == {"Li": "shipped", "LiF": "shipped", "SrTiO3": "phases/SrTiO3.yaml"}
        assert all(p["source"] for p in st["phases"] if p["name"] == "SrTiO3")
        assert st["phase_files"] == ["phases/SrTiO3.yaml"] and st["phases_off"] == ["Foo"]
        assert "Foo" in st["phase_yaml"]
        assert "angle_tolerance" in (tem_root / "runs" / "a" / "index.html").read_text()

        series = _job(url, {k: v for k, v in body.items() if k != "detector"}, "/api/tem/series")
        assert "cal.json" in series["result"]["calibration_line"]
        _job(url, {"run": "runs/s"}, f"/api/tem/{series['id']}/save")
        st = json.loads((tem_root / "runs" / "s" / "settings.json").read_text())
        assert st["tolerance"] == 0.03 and "cal.json" in st["calibration"]["source"]
        assert {p["name"]: p["file"] for p in st["phases"]}["SrTiO3"] == "phases/SrTiO3.yaml"
        assert {p["name"] for p in st["phases"]} == {"Li", "LiF", "SrTiO3"}


def test_fuse_run_endpoint_returns_the_status(tmp_path, gui_server):
    root = tmp_path / "data"
    run = root / "runs" / "f"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps([{"iteration": 2, "score": 0.5}]))
    status = {
        "converged": False,
        "verdict": "not converged — train longer (resume with the same command)",
        "stopped_by": "steps",
        "gaps": {"0": {"vf_gap": 0.01, "interfaces_gap": -0.2, "euler_gap": None}},
        "inputs": {"mismatch": True, "warning": "the LR volume's phase fractions differ"},
    }
    (run / "status.json").write_text(json.dumps(status))
    with gui_server(root) as (url, _):
        code, _, raw = _get(f"{url}/api/run?run=runs/f")
        assert code == 200
        assert json.loads(raw)["status"] == status
        (run / "status.json").unlink()
        assert json.loads(_get(f"{url}/api/run?run=runs/f")[2])["status"] is None

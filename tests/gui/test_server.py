"""The GUI's HTTP API without a browser: loopback-only hosts, POST guard, path safety, errors as JSON.

Access control, limits and the worker pool have their own module, ``test_guard.py``.
"""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

TOKEN = "test-token-0123456789"  # what conftest's run_server gives create_app
AUTH = {"Authorization": f"token {TOKEN}"}


def _get(url, headers=None, *, auth=True):
    req = urllib.request.Request(url, headers={**(AUTH if auth else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read()


def _post(url, body, *, guard=True):
    headers = {"Content-Type": "application/json", **AUTH}
    if guard:
        headers["X-Matsight"] = "1"
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture
def root(tmp_path):
    import tifffile

    d = tmp_path / "data"
    d.mkdir()
    (tmp_path / "secret.txt").write_text("top secret")
    vol = np.zeros((5, 6, 7), np.uint8)
    vol[2:, :, 3:] = 1
    tifffile.imwrite(d / "vol.tif", vol)
    (d / "report").mkdir()
    (d / "report" / "index.html").write_text("<h1>report</h1>")
    return d


def test_pages_and_files(root, gui_server):
    with gui_server(root) as (url, _):
        for page in ("/", "/tem", "/fuse", "/restore", "/static/common.js"):
            assert _get(url + page)[0] == 200, page
        assert _get(url + "/nope")[0] == 404
        status, ctype, body = _get(url + "/files/report/index.html")
        assert status == 200 and b"report" in body


@pytest.mark.parametrize(
    "path",
    [
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/..%2fsecret.txt",
        "/api/ls?path=..",
        "/api/ls?path=/etc",
        "/api/volume/info?path=../secret.txt",
        "/api/tem/open?path=%2Fetc%2Fpasswd",
    ],
)
def test_traversal_refused(root, gui_server, path):
    with gui_server(root) as (url, _):
        status, ctype, body = _get(url + path)
        assert status in (400, 404) and b"top secret" not in body
        if status == 400:
            assert "outside the data folder" in json.loads(body)["error"]


def test_foreign_host_and_unguarded_post_refused(root, gui_server):
    with gui_server(root) as (url, _):
        assert _get(url + "/api/info", {"Host": "evil.example:80"})[0] == 400  # DNS rebinding
        assert _get(url + "/api/info", {"Host": "localhost"})[0] == 200
        status, body = _post(url + "/api/tem/analyze", {"path": "vol.tif"}, guard=False)
        assert status == 403 and "X-Matsight" in body["error"]
        assert not _get(url + "/api/jobs")[2].count(b'"id"')  # nothing was started


def test_volume_slices(root, gui_server):
    from PIL import Image

    with gui_server(root) as (url, _):
        status, _, body = _get(url + "/api/volume/info?path=vol.tif")
        info = json.loads(body)
        assert info["shape"] == [5, 6, 7] and info["labels"] is True
        for axis, shape in ((0, (6, 7)), (1, (5, 7)), (2, (5, 6))):
            status, ctype, png = _get(url + f"/api/volume/slice?path=vol.tif&axis={axis}&index=4")
            assert status == 200 and ctype == "image/png"
            img = np.asarray(Image.open(__import__("io").BytesIO(png)))
            assert img.shape[:2] == shape
        # z slice 4: label 1 where x >= 3, label colour 1 (red-ish) vs black
        img = np.asarray(
            Image.open(__import__("io").BytesIO(_get(url + "/api/volume/slice?path=vol.tif&index=4")[2]))
        )
        assert (img[:, :3] == 0).all() and (img[:, 3:, 0] > 100).all()
        status, _, body = _get(url + "/api/volume/slice?path=vol.tif&axis=0&index=5")
        assert status == 400 and "out of range" in json.loads(body)["error"]


def test_invalid_settings_are_messages(root, gui_server):
    with gui_server(root) as (url, _):
        ok = {"lr": "vol.tif", "hr": "vol.tif", "iterations": 1}
        cases = [
            (
                "/api/tem/analyze",
                {"path": "vol.tif", "tolerance": "abc"},
                "tolerance: Input should be a valid number",
            ),
            ("/api/tem/analyze", {"path": "vol.tif", "phase_yaml": "a: [1"}, "not valid YAML"),
            ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif", "budget": "soon"}, "read the duration"),
            ("/api/fuse/train", {**ok, "overrides": "{"}, "JSON"),
            ("/api/fuse/train", {**ok, "overrides": '{"nope": 1}'}, "nope"),
            ("/api/fuse/train", {**ok, "lr": "../secret.txt"}, "outside"),
            ("/api/fuse/train", {**ok, "run": "../x"}, "outside"),
            ("/api/restore/register", {"lq": "vol.tif"}, "choose the hq file"),
            ("/api/restore/register", {"lq": "vol.tif", "hq": "vol.tif", "scale": "0"}, "scale must be"),
            ("/api/restore/register", {"lq": "nope.tif", "hq": "vol.tif"}, "does not exist"),
            ("/api/restore/evaluate", {"out": "vol.tif", "hq": "vol.tif"}, "folder"),
            ("/api/restore/evaluate", {"out": "report", "hq": "vol.tif", "spacing": "x"}, "pixel size"),
        ]
        for path, body, expect in cases:
            status, out = _post(url + path, body)
            assert status == 400, (body, out)
            assert expect in out["error"], (body, out)
            assert "Traceback" not in out["error"]
        # a file that is not an HRTEM image: the job fails with a one-line message
        status, job = _post(url + "/api/tem/analyze", {"path": "vol.tif", "pixel_size": "0.02"})
        assert status == 200
        import time

        t0 = time.monotonic()
        while time.monotonic() - t0 < 90:  # a worker process starts first: slow on a loaded machine
            job = json.loads(_get(url + f"/api/jobs/{job['id']}")[2])
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert job["state"] == "failed" and "frames" in job["error"] and "\n" not in job["error"]


def _no_process(app):
    """Make any worker start fail the test: a refused request must not start one."""

    def refuse(*a, **k):
        raise AssertionError("a worker process was started")

    app.state.runner.submit_process = refuse


@pytest.mark.parametrize(
    "path, body, expect",
    [
        # wrong JSON types: one-line 400 messages, never a 500
        ("/api/tem/analyze", {"path": "vol.tif", "phases": 5}, "phases must be a list"),
        ("/api/tem/analyze", {"path": "vol.tif", "phase_files": 1.5}, "phase files must be a list"),
        ("/api/tem/analyze", {"path": "vol.tif", "phase_yaml": 7}, "must be text"),
        ("/api/tem/analyze", {"path": "vol.tif", "detector": "fancy"}, "unknown detector"),
        ("/api/tem/analyze", {"path": ["vol.tif"]}, "must be text"),
        ("/api/tem/analyze", {"path": ""}, "no file chosen"),
        ("/api/tem/analyze", {"path": "x" * 5000}, "not a usable path"),
        (
            "/api/tem/series",
            {"path": "vol.tif", "frame_time": 0},
            "--frame-time must be a positive number",
        ),
        ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif", "budget": 60}, "time budget must be text"),
        (
            "/api/fuse/train",
            {"lr": "vol.tif", "hr": "vol.tif", "iterations": 1, "overrides": 5},
            "JSON object",
        ),
        ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif", "iterations": 1e999}, "whole number"),
        ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif", "iterations": 1.5}, "whole number"),
        ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif", "iterations": True}, "whole number"),
        (
            "/api/restore/train",
            {"pair": "report", "iterations": 0},
            "training.steps: Input should be greater",
        ),
        ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif", "seed": -1}, "seed: Input should be greater"),
        ("/api/tem/analyze", {"path": "vol.tif", "d_min": "nan"}, "--d-min must be a positive spacing"),
        ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif", "iterations": 10**30}, "too large"),
        ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif", "iterations": 1, "device": "gpu"}, "device"),
        (
            "/api/fuse/train",
            {"lr": "vol.tif", "hr": "vol.tif", "iterations": 1, "anisotropic": "x"},
            "anisotropic: Input should be a valid boolean",
        ),
        (
            "/api/fuse/train",
            {"lr": "vol.tif", "hr": "vol.tif", "iterations": 1, "run": "vol.tif/r"},
            "is a file",
        ),
        ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif", "iterations": 1, "run": 3}, "must be text"),
        ("/api/fuse/generate", {"lr": "vol.tif"}, "choose the run folder"),
        ("/api/fuse/generate", {"run": "report", "lr": "vol.tif", "seed": -1}, "seed must be"),
        ("/api/restore/train", {"pair": "report", "budget": "5m", "overrides": '{"nope": 1}'}, "nope"),
        ("/api/restore/train", {"pair": "report", "budget": "5m", "preset": "huge"}, "unknown preset"),
        ("/api/restore/apply", {"model": "report", "volume": "vol.tif", "steps": "-2"}, "indi_steps: Input"),
        ("/api/restore/apply", {"model": "report", "volume": "vol.tif", "steps": [8]}, "indi_steps: Input"),
        ("/api/restore/apply", {"model": "report", "volume": "vol.tif", "steps": True}, "steps N must be"),
        ("/api/restore/evaluate", {"out": "report", "hq": "vol.tif", "spacing": 0}, "> 0"),
        ("/api/restore/register", {"lq": "vol.tif", "hq": "vol.tif", "scale": True}, "scale must be"),
    ],
)
def test_wrong_types_and_ranges_are_400_messages(root, gui_server, path, body, expect):
    with gui_server(root) as (url, app):
        _no_process(app)
        status, out = _post(url + path, body)
        assert status == 400, (body, out)
        assert expect in out["error"], (body, out)
        assert "\n" not in out["error"] and len(out["error"]) < 300
        assert not _get(url + "/api/jobs")[2].count(b'"id"')  # nothing was started


@pytest.mark.parametrize(
    "path, body, expect",
    [
        ("/api/fuse/generate", {"run": "report", "lr": "vol.tif", "out": "vol.tif"}, "also an input"),
        ("/api/fuse/generate", {"run": "report", "lr": "vol.tif", "out": "sr.txt"}, "must end in .tif"),
        (
            "/api/fuse/generate",
            {"run": "report", "lr": "vol.tif", "out": "vol.tif/sr.tif"},
            "vol.tif is a file",
        ),
        ("/api/fuse/generate", {"run": "report", "lr": "vol.tif", "out": "../sr.tif"}, "outside"),
        ("/api/restore/apply", {"model": "report", "volume": "vol.tif", "out": "report"}, "also an input"),
        ("/api/restore/apply", {"model": "report", "volume": "vol.tif", "out": "."}, "data folder itself"),
        ("/api/restore/apply", {"model": "report", "volume": "sub/v.tif", "out": "sub"}, "would be replaced"),
        ("/api/restore/register", {"lq": "sub/v.tif", "hq": "vol.tif", "run": "sub"}, "would be replaced"),
        ("/api/restore/train", {"pair": "report", "iterations": 1, "run": "report"}, "also an input"),
        ("/api/restore/evaluate", {"out": "report", "hq": "vol.tif", "report": "report"}, "also an input"),
        ("/api/fuse/evaluate", {"sr": "vol.tif", "hr": "vol.tif", "run": "vol.tif"}, "also an input"),
    ],
)
def test_outputs_never_replace_inputs(root, gui_server, path, body, expect):
    (root / "sub").mkdir()
    (root / "sub" / "v.tif").write_bytes((root / "vol.tif").read_bytes())
    before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
    with gui_server(root) as (url, app):
        _no_process(app)
        status, out = _post(url + path, body)
        assert status == 400 and expect in out["error"], (body, out)
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) == before  # nothing written


def test_run_listing_skips_symlinks_out_of_the_data_folder(root, gui_server):
    import os

    os.symlink(root.parent / "secret.txt", root / "report" / "leak.tif")
    with gui_server(root) as (url, _):
        status, _, body = _get(url + "/api/run?run=report")
        assert status == 200, body
        info = json.loads(body)
        assert info["reports"] == ["report/index.html"] and info["volumes"] == []
        status, _, body = _get(url + "/api/volume/info?path=report")
        assert status == 400 and "is a folder" in json.loads(body)["error"]


def test_page_values_are_accepted(root, gui_server):
    """What the pages send (numbers as text, checkbox booleans, 'auto' steps) still starts the jobs."""
    started = []
    with gui_server(root) as (url, app):
        app.state.runner.submit_process = lambda kind, task, kw, **k: (
            started.append((task, kw))
            or (__import__("matsight.gui.jobs", fromlist=["Job"]).Job(id="1", kind=kind, title=task))
        )
        ok = [
            (
                "/api/restore/apply",
                {"model": "report", "volume": "vol.tif", "steps": "auto", "device": "cpu"},
            ),
            ("/api/restore/apply", {"model": "report", "volume": "vol.tif", "steps": "2"}),
            ("/api/restore/evaluate", {"out": "report", "hq": "vol.tif", "spacing": "0.5", "sift": False}),
            ("/api/fuse/generate", {"run": "report", "lr": "vol.tif", "samples": "2", "seed": "3"}),
            ("/api/restore/register", {"lq": "vol.tif", "hq": "vol.tif", "scale": "1,2,2", "mask": True}),
            ("/api/restore/train", {"pair": "report", "budget": "5m", "resume": True}),
        ]
        for path, body in ok:
            status, out = _post(url + path, body)
            assert status == 200, (path, out)
    kws = dict(started)
    assert kws["restore.apply"]["steps"] == 2 and kws["restore.evaluate"]["spacing"] == 0.5
    assert kws["restore.evaluate"]["sift"] is False
    assert kws["fuse.generate"]["samples"] == 2 and kws["fuse.generate"]["out"].endswith("report/sr.tif")
    assert kws["restore.register"]["scale"] == [1.0, 2.0, 2.0]


def test_restore_budget_without_iterations_trains_until_the_budget():
    from matsight.gui.tasks import restore_train_config
    from matsight.restore.config import UNLIMITED_STEPS

    def limits(*args):
        tr = restore_train_config("cpu", *args).training
        return tr.steps, tr.budget_s

    assert limits(None, "5m", None) == (UNLIMITED_STEPS, 300.0)
    assert limits(50, "5m", None) == (50, 300.0)
    assert limits(None, "5m", {"max_steps": 7}) == (7, 300.0)
    assert limits(None, "5m", {"training.steps": 7, "val_slices": [1]}) == (7, 300.0)

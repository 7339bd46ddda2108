"""The GUI's HTTP API without a browser: loopback-only hosts, POST guard, path safety, errors as JSON."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("content-type", ""), e.read()


def _post(url, body, *, guard=True):
    headers = {"Content-Type": "application/json"}
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
            ("/api/tem/analyze", {"path": "vol.tif", "tolerance": "abc"}, "tolerance must be a number"),
            ("/api/tem/analyze", {"path": "vol.tif", "phase_yaml": "a: [1"}, "not valid YAML"),
            ("/api/fuse/train", {"lr": "vol.tif", "hr": "vol.tif"}, "time budget"),
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

        for _ in range(200):
            job = json.loads(_get(url + f"/api/jobs/{job['id']}")[2])
            if job["state"] in ("done", "failed"):
                break
            time.sleep(0.05)
        assert job["state"] == "failed" and "frames" in job["error"] and "\n" not in job["error"]

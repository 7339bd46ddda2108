"""What a hostile file, request or local process can do to the GUI server: nothing that freezes or leaks.

Library calls run in worker processes with a time limit (``/api/info`` answers in < 0.5 s while a call
hangs; SIGTERM stops ``matsight gui`` at once); bodies and nesting are limited; every request needs the
launch's token; foreign origins cannot POST; every response carries nosniff, no-referrer and a CSP.
"""

import asyncio
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from matsight.gui import pool

TOKEN = "test-token-0123456789"  # what conftest's run_server gives create_app
AUTH = {"Authorization": f"token {TOKEN}"}

SLOW_CALLS = """
import os, signal, time
from pathlib import Path

PIDS = Path({pids!r})


def hang(*args, **kwargs):  # a reader stuck on a crafted file
    PIDS.write_text(str(os.getpid()))
    time.sleep(300)


def oom(*args, **kwargs):
    raise MemoryError("cannot allocate 3.6 PiB")


def crash(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGSEGV)
"""


def _request(url, *, method="GET", body=None, headers=None, auth=True, timeout=30):
    h = {**(AUTH if auth else {}), **(headers or {})}
    req = urllib.request.Request(url, data=body, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _post(url, obj, **kw):
    headers = {"Content-Type": "application/json", "X-Matsight": "1", **kw.pop("headers", {})}
    body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return _request(url, method="POST", body=body, headers=headers, **kw)


def _error(body):
    msg = json.loads(body)["error"]
    assert "\n" not in msg and "Traceback" not in msg and len(msg) < 300, msg
    return msg


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait(cond, timeout, what):
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, what
        time.sleep(0.05)


@pytest.fixture
def root(tmp_path):
    import tifffile

    d = tmp_path / "data"
    d.mkdir()
    tifffile.imwrite(d / "vol.tif", np.arange(5 * 6 * 7, dtype=np.uint16).reshape(5, 6, 7))
    (d / "report").mkdir()
    (d / "report" / "index.html").write_text("<h1>report</h1>")
    return d


@pytest.fixture
def slow(tmp_path, monkeypatch):
    """A module ``gui_slow_calls`` the worker processes can import (they get the server's sys.path)."""
    mod = tmp_path / "mods"
    mod.mkdir()
    pids = tmp_path / "hang.pid"
    (mod / "gui_slow_calls.py").write_text(SLOW_CALLS.format(pids=str(pids)))
    monkeypatch.syspath_prepend(str(mod))
    return pids


# ---------------------------------------------------------------------------------------- off the loop
def test_a_hanging_library_call_freezes_nothing_and_is_killed(root, gui_server, slow, monkeypatch):
    monkeypatch.setitem(pool.CALLS, "tem.open", "gui_slow_calls:hang")
    with gui_server(root, call_timeout=3) as (url, app):
        assert _request(url + "/api/info")[0] == 200  # imports done once, before the clock runs
        out = {}
        th = threading.Thread(target=lambda: out.update(r=_request(url + "/api/tem/open?path=vol.tif")))
        th.start()
        _wait(slow.exists, 20, "the hanging call never started")
        for _ in range(5):
            t0 = time.monotonic()
            status, _, body = _request(url + "/api/info", timeout=5)
            assert status == 200 and time.monotonic() - t0 < 0.5
            assert _request(url + "/api/volume/info?path=vol.tif")[0] == 200  # the other worker reads
        th.join(15)
        status, _, body = out["r"]
        assert status == 504 and "longer than 3 s" in _error(body)
        _wait(lambda: not _alive(int(slow.read_text())), 5, "the hanging worker was not killed")


def test_worker_errors_are_one_line_statuses(root, gui_server, slow, monkeypatch):
    with gui_server(root) as (url, app):
        for fn, expect in (("oom", 507), ("crash", 500)):
            monkeypatch.setitem(pool.CALLS, "volume.info", f"gui_slow_calls:{fn}")
            status, _, body = _request(url + "/api/volume/info?path=vol.tif")
            assert status == expect, body
            assert ("3.6 PiB" if fn == "oom" else "crashed") in _error(body)
        monkeypatch.setitem(pool.CALLS, "volume.info", "matsight.gui.views:volume_info")
        status, _, body = _request(url + "/api/volume/info?path=vol.tif")  # a fresh worker after the crash
        assert status == 200 and json.loads(body)["shape"] == [5, 6, 7]
        status, _, body = _request(url + "/api/volume/slice?path=vol.tif&axis=2&index=9")
        assert status == 400 and "out of range" in _error(body)  # the worker's InputError


def test_volume_cache_stays_with_one_worker(root, gui_server):
    with gui_server(root) as (url, app):
        for i in range(5):
            assert _request(url + f"/api/volume/slice?path=vol.tif&index={i}")[0] == 200
        calls = app.state.calls
        assert len(calls._idle) == 1 and calls._idle[0].keys == [str(root / "vol.tif")]


def test_pool_busy_and_stopped(slow, monkeypatch):
    monkeypatch.setitem(pool.CALLS, "tem.open", "gui_slow_calls:hang")
    p = pool.CallPool(1, timeout=None)
    out = {}

    def job():
        try:
            p.run("tem.open", "x")
        except Exception as exc:  # noqa: BLE001
            out["exc"] = exc

    th = threading.Thread(target=job)
    th.start()
    _wait(slow.exists, 20, "the hanging call never started")
    got = {}

    def request():  # a thread of its own: Playwright's sync API may hold this thread's event loop
        try:
            asyncio.run(p.call("volume.info", "x", timeout=0.3))
        except pool.Busy as exc:
            got["busy"] = str(exc)

    req = threading.Thread(target=request)
    req.start()
    req.join(10)
    assert "busy" in got.get("busy", "")
    p.close()
    th.join(5)
    assert isinstance(out["exc"], pool.Stopped) and not _alive(int(slow.read_text()))


def test_stopping_a_job_kills_its_hanging_call(slow, monkeypatch):
    from pathlib import Path

    from matsight.gui import tasks
    from matsight.gui.jobs import JobRunner

    monkeypatch.setitem(pool.CALLS, "tem.series", "gui_slow_calls:hang")
    runner, p = JobRunner(), pool.CallPool(1, timeout=None)
    job = runner.submit(
        "tem.series", lambda job: tasks.tem_series(job, call=p.run, path=Path("movie.ser")), stoppable=True
    )
    _wait(slow.exists, 20, "the hanging call never started")
    t0 = time.monotonic()
    runner.stop(job.id)
    runner.wait(job.id, timeout=5)
    assert time.monotonic() - t0 < 2
    assert job.state == "stopped" and job.error is None  # a stop, not "unexpected error (Stopped)"
    _wait(lambda: not _alive(int(slow.read_text())), 5, "the stopped job's worker is still running")
    p.close()
    runner.shutdown()


def test_sigterm_stops_the_cli_during_a_hanging_request(root, slow):
    code = (
        "import matsight.gui.pool as p; p.CALLS['tem.open'] = 'gui_slow_calls:hang'; "
        "from matsight.cli import main; main()"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(slow.parent / "mods"), *sys.path]))
    cmd = [sys.executable, "-c", code, "gui", "--data", str(root), "--port", "0", "--no-browser"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        line = proc.stdout.readline()
        assert "?token=" in line, line + proc.stderr.read()
        url = line.split()[2]
        base, token = url.split("/?token=")

        def hanging():
            with contextlib.suppress(OSError, http.client.HTTPException):  # the server goes away mid-request
                _request(f"{base}/api/tem/open?path=vol.tif", headers={"Authorization": f"token {token}"})

        th = threading.Thread(target=hanging, daemon=True)
        th.start()
        _wait(slow.exists, 30, "the hanging call never started")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert time.monotonic() - t0 < 5
        _wait(lambda: not _alive(int(slow.read_text())), 5, "the worker outlived the server")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------- limits
def test_large_and_deep_bodies_are_refused(root, gui_server):
    with gui_server(root) as (url, app):
        big = b'{"path": "' + b"x" * (2 << 20) + b'"}'
        status, _, body = _post(url + "/api/tem/analyze", big)
        assert status == 413 and "KiB" in _error(body)
        host, port = url.removeprefix("http://").split(":")
        headers = {"X-Matsight": "1", "Content-Type": "application/json", **AUTH}
        # no Content-Length (chunked): refused once it passes the limit
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        chunks = iter([b'{"path": "'] + [b"x" * 65536] * 40 + [b'"}'])
        conn.request("POST", "/api/tem/analyze", body=chunks, headers=headers, encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 413 and "KiB" in _error(resp.read())
        conn.close()
        # a declared 200 MB: refused before a byte of it is read
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.putrequest("POST", "/api/tem/analyze")
        for k, v in {**headers, "Content-Length": str(200 << 20)}.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413
        conn.close()
        deep = "[" * 100_000 + "]" * 100_000
        for b in (
            deep.encode(),
            json.dumps({"path": "vol.tif", "phases": [[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]}),
        ):
            status, _, body = _post(url + "/api/tem/analyze", b if isinstance(b, bytes) else b.encode())
            assert status == 400 and "nested" in _error(body)
        ok = {"lr": "vol.tif", "hr": "vol.tif", "iterations": 1}
        status, _, body = _post(url + "/api/fuse/train", {**ok, "overrides": deep})
        assert status == 400 and "nested" in _error(body)
        yaml_deep = "a: " + "[" * 5000 + "]" * 5000
        status, _, body = _post(url + "/api/tem/analyze", {"path": "vol.tif", "phase_yaml": yaml_deep})
        assert status == 400 and ("nested" in _error(body) or "YAML" in _error(body))
        assert app.state.runner.list() == []  # nothing was started


# ---------------------------------------------------------------------------------------- access
@pytest.mark.parametrize(
    "path", ["/api/info", "/api/ls", "/api/jobs", "/files/report/index.html", "/tem", "/"]
)
def test_requests_without_the_token_are_refused(root, gui_server, path):
    with gui_server(root) as (url, _):
        for headers in ({}, {"Authorization": "token wrong"}, {"Cookie": "matsight-token-1=" + TOKEN}):
            status, _, body = _request(url + path, headers=headers, auth=False)
            assert status == 403 and b"printed" in body and b"report" not in body, headers
        assert _request(url + path + "?token=wrong", auth=False)[0] == 403
        assert _request(url + path)[0] == 200  # Authorization: token ...
        sep = "&" if "?" in path else "?"
        if path.startswith(("/api/", "/files/")):
            assert _request(url + path + sep + "token=" + TOKEN, auth=False)[0] == 200


def test_token_in_the_url_becomes_a_cookie_and_goes_away(root, gui_server):
    with gui_server(root) as (url, _):
        port = url.rsplit(":", 1)[1]
        conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
        conn.request("GET", f"/tem?token={TOKEN}&x=1")
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 303 and resp.getheader("location") == "/tem?x=1"
        cookie = resp.getheader("set-cookie")
        assert cookie.startswith(f"matsight-token-{port}={TOKEN}")
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        conn.close()
        jar = {"Cookie": cookie.split(";")[0]}
        assert _request(url + "/api/info", headers=jar, auth=False)[0] == 200
        assert _request(url + "/tem", headers=jar, auth=False)[0] == 200


def test_posts_from_another_origin_are_refused(root, gui_server):
    with gui_server(root) as (url, app):
        for origin in ("http://evil.example", "null", url.replace("127.0.0.1", "localhost")):
            status, _, body = _post(url + "/api/tem/analyze", {"path": "vol.tif"}, headers={"Origin": origin})
            assert status == 403 and "another web page" in _error(body)
        assert app.state.runner.list() == []
        status, _, body = _post(url + "/api/jobs/1/stop", {}, headers={"Origin": url})
        assert status == 400 and "no job" in _error(body)  # its own origin passes the check


def test_security_headers_on_every_response(root, gui_server):
    (root / "evil.html").write_text("<script>alert(1)</script>")
    with gui_server(root) as (url, _):
        for path, auth in (("/tem", True), ("/static/common.js", True), ("/api/info", True),
                           ("/api/volume/slice?path=vol.tif", True), ("/nope", True), ("/api/info", False),
                           ("/files/evil.html", True), ("/files/vol.tif", True)):  # fmt: skip
            status, headers, _ = _request(url + path, auth=auth)
            assert headers["X-Content-Type-Options"] == "nosniff", path
            assert headers["Referrer-Policy"] == "no-referrer", path
            csp = headers["Content-Security-Policy"]
            if path.startswith("/files/"):
                assert (
                    csp.startswith("sandbox ") and "allow-scripts" not in csp and "default-src 'none'" in csp
                )
            else:
                assert (
                    "default-src 'self'" in csp
                    and "unsafe-inline" not in csp
                    and "frame-ancestors 'none'" in csp
                )

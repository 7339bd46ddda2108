"""GUI test harness: a server on a free loopback port (in a thread) and headless Chromium via Playwright.

Browser tests skip when Playwright's Python package or a Chromium binary is absent; CI installs Debian's
``chromium`` (no browser download at run time: Playwright is pointed at the system binary).
Screenshots go to ``$MATSIGHT_TEST_ARTIFACTS/gui`` (default ``test-artifacts/gui`` in the checkout, ignored by
git), where they stay after the run for a person (or CI) to look at.
"""

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")


TOKEN = "test-token-0123456789"  # the access token of the test servers (``create_app(token=...)``)


@contextlib.contextmanager
def run_server(root, **kw):
    """Serve ``create_app(root, token=TOKEN)`` on 127.0.0.1:<free port> in a thread; yields ``(url, app)``."""
    import uvicorn

    from matsight.gui.server import create_app

    kw.setdefault("token", TOKEN)
    app = create_app(root, **kw)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    t0 = time.monotonic()
    while not server.started:
        if time.monotonic() - t0 > 20 or not th.is_alive():
            raise RuntimeError("GUI server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        th.join(timeout=15)
        sock.close()


def _chromium():
    for cand in (os.environ.get("MATSIGHT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser"), shutil.which("google-chrome")):  # fmt: skip
        if cand and Path(cand).is_file():
            return cand
    return None


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright (skips when either is missing)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python package) not installed")
    exe = _chromium()
    if exe is None:
        pytest.skip("no Chromium binary (apt-get install chromium)")
    with sync_api.sync_playwright() as pw:
        try:
            b = pw.chromium.launch(
                executable_path=exe,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a broken browser install is an environment problem
            pytest.skip(f"Chromium does not start: {str(exc).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


@pytest.fixture(scope="session")
def artifacts(pytestconfig):
    """Folder for screenshots: ``$MATSIGHT_TEST_ARTIFACTS/gui`` or ``<checkout>/test-artifacts/gui``."""
    base = os.environ.get("MATSIGHT_TEST_ARTIFACTS") or pytestconfig.rootpath / "test-artifacts"
    p = Path(base) / "gui"
    p.mkdir(parents=True, exist_ok=True)
    return p


@pytest.fixture
def gui_server():
    """:func:`run_server` as a fixture: ``with gui_server(root) as (url, app): ...``."""
    return run_server

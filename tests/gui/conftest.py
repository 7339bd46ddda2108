"""GUI test harness: a server on a free loopback port (in a thread) and headless Chromium via Playwright.

Browser tests skip when Playwright's Python package or a Chromium binary is absent (the session's ``browser``
fixture is in ``tests/conftest.py``, shared with the report tests).
Screenshots go to ``$MATSIGHT_TEST_ARTIFACTS/gui`` (default ``test-artifacts/gui`` in the checkout, ignored by
git), where they stay after the run for a person (or CI) to look at.
"""

import contextlib
import socket
import threading
import time

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


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    ctx.close()


@pytest.fixture
def gui_server():
    """:func:`run_server` as a fixture: ``with gui_server(root) as (url, app): ...``."""
    return run_server

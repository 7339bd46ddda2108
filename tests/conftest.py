import os
import shutil
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not SHARED_DATA.is_dir():  # CI clones main beside shared/; a checkout elsewhere may set the path
    SHARED_DATA = Path(os.environ.get("MATSIGHT_SHARED_DATA", "/nonexistent"))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MATSIGHT_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow; set MATSIGHT_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope="session")
def _cpu_two_threads():
    os.environ.setdefault("MATSIGHT_PROGRESS", "0")
    # one thread count for every test and the processes they start, whatever the machine's load: results
    # compared bit for bit (resume, stored references) depend on the order threads sum floats in
    os.environ["MATSIGHT_THREADS"] = "2"
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(2)


@pytest.fixture
def one_error_line():
    """Check a CLI result is a user error: exit code 2, one ``error:`` line holding every needle.

    Returns the checker ``(result, *needles) -> line``; no traceback may be printed.
    """

    def check(result, *needles):
        assert result.exit_code == 2, result.output
        text = result.output.strip()
        assert text.startswith("error: ") and "\n" not in text and "Traceback" not in text, text
        for n in needles:
            assert n in text, (n, text)
        return text

    return check


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def shared_data():
    """Path of ../shared/data; tests that need it skip when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("shared sample data not present")
    return SHARED_DATA


def _chromium():
    for cand in (os.environ.get("MATSIGHT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                 shutil.which("chromium-browser"), shutil.which("google-chrome")):  # fmt: skip
        if cand and Path(cand).is_file():
            return cand
    return None


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright, one for the whole session (the GUI pages, the reports;
    Playwright's sync API allows one instance per process). Skips when either is missing; CI installs Debian's
    ``chromium`` (no browser download at run time: Playwright is pointed at the system binary).
    """
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


@pytest.fixture(scope="module")
def artifacts(request):
    """Folder for screenshots of a test folder's tests: ``$MATSIGHT_TEST_ARTIFACTS/<folder>`` (e.g. ``gui``,
    ``report``), or ``<checkout>/test-artifacts/<folder>``."""
    base = os.environ.get("MATSIGHT_TEST_ARTIFACTS") or request.config.rootpath / "test-artifacts"
    p = Path(base) / request.path.parent.name
    p.mkdir(parents=True, exist_ok=True)
    return p
